//! The concurrency shim the mutex's lock word and the reader-writer
//! lock's state word are written against.
//!
//! Normally these names *are* std's atomics, parking_lot's mutex and the
//! real clock, re-exported or inlined: zero cost. Built with
//! `RUSTFLAGS="--cfg loom"` (the model checks, `.ci/loom`), they are
//! loom's, and loom runs the production `Mutex` (its lock word, its queue
//! and the waiter nodes it parks on through `goro_runtime::park`, whose
//! thread path is loom-aware in the same build) under every interleaving
//! within a preemption bound. See goro-runtime's `loom.rs` for the pattern.
//!
//! A model must make the same decisions on every run, so under loom the
//! two clock-driven decisions of the mutex (has the head waited past the
//! starvation threshold; is this the 64th contended unlock) read a
//! per-test switch instead ([`set_starving`]), and spinning is one yield.
//!
//! `RwLock` (its state word with the upgradable-read protocol, its queues
//! and grants) is written against this shim too, and checked by the models
//! in `rwlock.rs`.
//!
//! What stays on std: the other primitives' state words (`Semaphore`,
//! `WaitGroup`, `Once`, `Barrier`, `Condvar`), which keep `const`
//! constructors and are not model-checked.

use std::time::{Duration, Instant};

/// Defines a function that is `const` except under loom, whose atomics
/// have no `const` constructors.
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use parking_lot::Mutex;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
    }
}

#[cfg(not(loom))]
pub(crate) use std::hint::spin_loop;

/// Whether a waiter that started waiting at `since` has waited `threshold`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn waited(since: Instant, threshold: Duration) -> bool {
    since.elapsed() >= threshold
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
    }

    /// loom's mutex with parking_lot's interface (no poisoning).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;

#[cfg(loom)]
std::thread_local! {
    static STARVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Under loom: every waiter counts as having waited past any threshold
/// (`true`) or none (`false`, the default), for the models run on this
/// thread (loom runs all of a model's threads on the test's thread).
#[cfg(all(loom, test))]
pub(crate) fn set_starving(starving: bool) {
    STARVING.with(|s| s.set(starving));
}

/// Under loom: the switch set by [`set_starving`], not the clock.
#[cfg(loom)]
pub(crate) fn waited(_since: Instant, _threshold: Duration) -> bool {
    STARVING.with(|s| s.get())
}
