//! The concurrency shim the checked protocols are written against.
//!
//! Normally every name here *is* std's (or parking_lot's) item, re-exported:
//! the shim is a set of aliases and costs nothing. Built with
//! `RUSTFLAGS="--cfg loom"` (the model checks, see `.ci/loom` and
//! CONTRIBUTING.md), the same names are loom's mock types, and loom then
//! runs the *production* code that uses them under every interleaving and
//! every weak-memory outcome it allows, within a preemption bound. This is
//! how tokio checks its own protocols (its `tokio/src/loom/`).
//!
//! # What goes through the shim
//!
//! - the park token (`park.rs`, `ParkState`) and the thread path of
//!   [`park`](crate::park::park) (loom's thread park under `cfg(loom)`, so
//!   that goro-channel's and goro-sync's waits run on loom threads);
//! - the idle workers' sleeper list and searcher accounting, and each
//!   worker's `searching` flag (`scheduler/idle.rs`, `Searchers`);
//! - the reactor's wake-up latch (`wake_latch.rs`).
//!
//! # What stays on std, and why
//!
//! Statics that need `const` constructors and are no part of a checked
//! protocol: spawn's id counter, the runtime's `OnceLock`, the coroutine
//! id cache. Per-worker counters read only by `stats()`, the scheduling
//! state shown by the coroutine dump, a task's `home` (written once before
//! anyone can wake the task), the registry, timers and the reactor's slab:
//! those are either single-writer statistics or guarded by locks whose
//! correctness is parking_lot's. The idle protocol's reactor ownership and
//! timer fields stay on std as well: the model covers the searcher count
//! and the sleeper list, which is where the historical bug was.
//!
//! Loom runs every model thread on one OS thread, so code reached from a
//! model must not block the OS thread (a real lock held across a loom
//! operation would deadlock it) and must behave the same on every run of
//! the model (no clocks or thread-local state that carries over between
//! runs into a decision).

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use parking_lot::Mutex;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};
    }
}

#[cfg(not(loom))]
pub(crate) mod thread {
    pub(crate) use std::thread::{Thread, current, park, park_timeout};
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};
    }

    /// loom's mutex with parking_lot's interface (no poisoning).
    ///
    /// A contended `lock` retries `try_lock` and yields in between instead
    /// of blocking in loom's `lock`: loom 0.7 makes a thread blocked on a
    /// mutex runnable when someone unparks it (the idle model's wakers do
    /// that to sleepers queueing on the sleeper list) and then fails its
    /// own "expected to be able to acquire lock" assertion.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            loop {
                match self.0.try_lock() {
                    Ok(guard) => return guard,
                    Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => loom::thread::yield_now(),
                }
            }
        }
    }
}

#[cfg(loom)]
pub(crate) mod thread {
    pub(crate) use loom::thread::{Thread, current, park};

    /// loom has no timed park. A timed park may return early (the park
    /// contract allows spurious returns), so it is modelled as a yield:
    /// the caller re-checks its condition and its deadline.
    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        loom::thread::yield_now();
    }
}
