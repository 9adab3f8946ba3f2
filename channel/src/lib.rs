//! goro-channel: Go's channels for goro coroutines and plain threads.
//!
//! The user guide (what is here, the mapping from Go, the semantics,
//! examples) is the `goro::chan` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/chan/>. This page is about how the
//! crate is built.
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
mod wait_queue;
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
