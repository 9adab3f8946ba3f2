//! goro-context: Go's `context` and structured concurrency for goro.
//!
//! Most users reach this crate through the `goro` facade as
//! `goro::context`, `goro::Group` and `goro::JoinSet`.
//!
//! - [`context`]: [`Context`](context::Context), its [`Cancel`](context::Cancel)
//!   and [`ContextError`](context::ContextError): cancellation and
//!   deadlines that reach every descendant at once, from a coroutine or a
//!   thread, with a `done()` channel for `select!`.
//! - [`Group`]: Go's errgroup. Members run in coroutines; the first
//!   failure (an `Err` or a panic, as [`GroupError`]) is what
//!   [`Group::wait`] returns, and it cancels the group's context;
//!   [`Group::with_limit`] bounds how many run at once.
//! - [`JoinSet`]: a set of coroutines joined in completion order.
//!
//! # Why a crate of its own
//!
//! A context needs a channel (`done()` returns a `Receiver<()>`) and the
//! runtime's timers (its deadline is an alarm on goro's timing wheel), and
//! it is what cancellable network operations and the errgroup build on.
//! Putting it in `goro-channel` would tie the channel crate, which the
//! network crate does not otherwise need, to cancellation policy and to
//! the errgroup's coroutine spawning; a crate above `goro-channel` keeps
//! the dependency graph one-way (runtime <- channel, sync <- context <-
//! net or applications) and lets `goro-channel` stay a channel library.

#![deny(missing_docs)]

pub mod context;
pub mod group;
pub mod join_set;

pub use group::{Group, GroupError};
pub use join_set::JoinSet;
