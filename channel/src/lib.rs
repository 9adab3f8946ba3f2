//! goro-channel: Go's channels for goro coroutines and plain threads.
//!
//! Most users reach this crate as `goro::chan` and `goro::select!`.
//!
//! ```
//! use goro_channel::{bounded, select, after};
//! use std::time::Duration;
//!
//! let (jobs_tx, jobs_rx) = bounded::<u32>(16);
//! let (results_tx, results_rx) = bounded::<u32>(16);
//! for _ in 0..4 {
//!     let (jobs, results) = (jobs_rx.clone(), results_tx.clone());
//!     goro_runtime::go!(move || {
//!         for j in &jobs {
//!             results.send(j * 2).unwrap();
//!         }
//!     });
//! }
//! drop((jobs_rx, results_tx));
//! for j in 0..10 {
//!     jobs_tx.send(j).unwrap();
//! }
//! drop(jobs_tx); // closes `jobs`: the workers' loops end
//!
//! let deadline = after(Duration::from_secs(10));
//! let mut sum = 0;
//! loop {
//!     select! {
//!         recv(results_rx) -> r => match r {
//!             Ok(v) => sum += v,
//!             Err(_) => break, // every worker is done
//!         },
//!         recv(deadline) -> _ => panic!("workers stalled"),
//!     }
//! }
//! assert_eq!(sum, 90);
//! ```
//!
//! # What is here
//!
//! - Channels: [`bounded`] (`bounded(0)` is an unbuffered rendezvous, like
//!   Go's `make(chan T)`), [`unbounded`], [`never()`] (Go's nil channel).
//! - Timers as channels: [`after`], [`at`] (one message: the instant they
//!   fired) and [`tick`] (like Go's `Ticker`: at most one pending tick);
//!   [`Timer`] and [`Ticker`] when they must be stopped or reset (Go
//!   1.23's `time.Timer` and `time.Ticker`: no stale value after `stop`
//!   or `reset`).
//! - [`select!`]: wait on several operations, exactly one completes
//!   ([`select_biased!`]: the first ready arm wins); and [`Select`] for a
//!   set of operations built at run time, with crossbeam's readiness API
//!   ([`Select::ready`] and friends).
//! - Async operations: [`Sender::send_async`], [`Receiver::recv_async`],
//!   for futures under `block_on` or another executor (tokio).
//! - Typed errors that hand back unsent messages: [`SendError`],
//!   [`TrySendError`], [`SendTimeoutError`], [`RecvError`],
//!   [`TryRecvError`], [`RecvTimeoutError`].
//!
//! # Semantics
//!
//! Channels are multi-producer multi-consumer; [`Sender`] and [`Receiver`]
//! are `Clone`, and `Send + Sync` when `T: Send`. Every message is received
//! exactly once, and messages from one sender arrive in the order sent.
//!
//! A channel is closed by [`Sender::close`] on any sender, or when the last
//! sender is dropped. Receivers then drain what is buffered, then get `Err`
//! every time. A send on a closed channel, or after the last receiver was
//! dropped, returns the message in `Err`; a sender blocked when that
//! happens wakes with its own message in `Err`. A second `close` returns
//! `false` and changes nothing. (Go panics on a send to a closed channel
//! and on a double close; goro returns errors instead.)
//!
//! Every blocking operation parks the coroutine when called in one and
//! blocks the thread otherwise, so coroutines and threads can meet on the
//! same channel in every direction, unbuffered ones included.
//!
//! # How it works
//!
//! Each channel is one lock around a buffer and two queues of waiting
//! operations (`engine.rs`), like Go's `hchan`: a sender meeting a waiting
//! receiver hands the message over directly, and vice versa. Waiting
//! operations are heap packets (`waiter.rs`) carrying a one-shot decision
//! word; claiming that word by compare-and-swap is what keeps `select!`
//! atomic across channels (`select.rs`). Waiting is only ever done with
//! goro's `park`, never by spinning. Timer channels have no queue and no
//! background task: they are their schedule (`timer.rs`).

#![deny(missing_docs)]

mod blocks;
mod engine;
mod err;
mod future;
mod handles;
mod lock;
mod loom;
#[cfg(all(test, loom))]
mod loom_tests;
mod select;
mod select_macro;
mod time;
mod timer;
mod waiter;

pub use err::{
    ReadyTimeoutError, RecvError, RecvTimeoutError, SelectTimeoutError, SendError,
    SendTimeoutError, TryReadyError, TryRecvError, TrySelectError, TrySendError,
};
pub use future::{RecvFuture, SendFuture};
pub use handles::{
    IntoIter, Iter, Receiver, Sender, TryIter, after, at, bounded, bounded_waiting_as, never, tick,
    unbounded,
};
pub use select::{Select, SelectedOperation};
pub use time::{Ticker, Timer};

/// What the `select!` macro expands to. Not a public API: no stability
/// promise.
#[doc(hidden)]
pub mod internal {
    pub use crate::engine::Deadline;
    pub use crate::select::{
        Case, CaseSet, RecvCase, RecvTarget, Registration, SendCase, SendTarget, recv_target, run,
        run_biased, send_target,
    };
    pub use crate::waiter::Waiter;

    /// Ends a case's life (and its borrow of the channel) before the arm's
    /// body runs.
    #[inline]
    pub fn done<C>(case: C) {
        drop(case);
    }
}
