//! The concurrency shim the channel protocols are written against.
//!
//! Normally these names *are* std's atomics and crossbeam's `Backoff`,
//! re-exported: zero cost. Built with `RUSTFLAGS="--cfg loom"` (the model
//! checks, `.ci/loom`), they are loom's, and loom runs the production
//! channel code (the spin lock, the waiter's decision word, packets and
//! hand-offs) under every interleaving within a preemption bound. Waiting
//! goes through `goro_runtime::park`, whose thread path is loom-aware in
//! the same build. See goro-runtime's `loom.rs` for the pattern.
//!
//! What stays on std: the per-thread block cache (`blocks.rs`, plain
//! memory, no atomics) and the timer channels' state (`timer.rs`), which
//! the models do not use.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
    }
}

#[cfg(not(loom))]
pub(crate) use crossbeam_utils::Backoff;

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
    }
}

/// A spinning contender yields to the model's scheduler: a loom thread
/// that spins without yielding never lets the holder run.
#[cfg(loom)]
pub(crate) struct Backoff;

#[cfg(loom)]
impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff
    }

    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
    }
}
