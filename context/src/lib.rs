//! goro-context: Go's `context` and structured concurrency for goro.
//!
//! The user guide (what is here, the mapping from Go, the semantics,
//! examples) is the `goro::context` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/context/>. This page is about how the
//! crate is built.
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
