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
//! - the reactor's wake-up latch (`wake_latch.rs`);
//! - io_uring's submission gate and op-ring watch
//!   (`reactor/submit_gate.rs`, `reactor/ring_watch.rs`);
//! - the hook's worker filter (`worker_threads.rs`; its model runs on a
//!   local set of marks, since the process-wide one is a `const` static).
//! - epoll's drained mark on the read sequence (`reactor/read_seq.rs`,
//!   written against a small `Word` trait that std's and loom's atomics
//!   both implement, since the reactor's sources stay on std).
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
//! runs into a decision). Model tests park and unpark through
//! [`thread`] here, never through `loom::thread::park` (see there).

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use parking_lot::Mutex;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
        };
    }
}

#[cfg(not(loom))]
pub(crate) mod thread {
    pub(crate) use std::thread::{Thread, current, park, park_timeout, yield_now};
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{
            AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
        };
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

/// Thread parking for model threads: std's token semantics, built from a
/// loom mutex and condition variable rather than on `loom::thread::park`.
///
/// loom 0.7's own unpark makes its target runnable whatever it is blocked
/// on: a target blocked on a mutex or in `JoinHandle::join` then fails
/// loom's internal assertions, and a target that is spinning with
/// `yield_now` loses the token. Runtime wakers unpark threads that may be
/// doing any of those (a worker queueing on the sleeper list, a waiter
/// between its condition check and its park), so the model gets a parker
/// of its own, which leaves every other wait alone.
#[cfg(loom)]
pub(crate) mod thread {
    use std::sync::Arc;

    use loom::sync::{Condvar, Mutex};

    struct Parker {
        id: loom::thread::ThreadId,
        token: Mutex<bool>,
        cv: Condvar,
    }

    /// A model thread's parking handle (`std::thread::Thread`'s part that
    /// the runtime uses).
    #[derive(Clone)]
    pub(crate) struct Thread(Arc<Parker>);

    impl Thread {
        /// Makes the token available, waking the thread if it is parked.
        pub(crate) fn unpark(&self) {
            let mut token = self.0.token.lock().unwrap();
            *token = true;
            self.0.cv.notify_one();
        }

        /// The model thread's id.
        pub(crate) fn id(&self) -> loom::thread::ThreadId {
            self.0.id
        }
    }

    impl std::fmt::Debug for Thread {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("Thread").field(&self.0.id).finish()
        }
    }

    loom::thread_local! {
        static CURRENT: Thread = Thread(Arc::new(Parker {
            id: loom::thread::current().id(),
            token: Mutex::new(false),
            cv: Condvar::new(),
        }));
    }

    pub(crate) use loom::thread::yield_now;

    /// The calling model thread's handle.
    pub(crate) fn current() -> Thread {
        CURRENT.with(Thread::clone)
    }

    /// Blocks until the token is available, then consumes it.
    pub(crate) fn park() {
        CURRENT.with(|t| {
            let mut token = t.0.token.lock().unwrap();
            while !*token {
                token = t.0.cv.wait(token).unwrap();
            }
            *token = false;
        });
    }

    /// loom has no timed wait. A timed park may return early (the park
    /// contract allows spurious returns), so it is modelled as a yield:
    /// the caller re-checks its condition and its deadline.
    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        loom::thread::yield_now();
    }
}
