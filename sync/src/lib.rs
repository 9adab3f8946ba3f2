//! goro-sync: locks and signals for goro coroutines, Go's `sync` package
//! for Rust.
//!
//! Every primitive here parks the calling *coroutine* while it waits (its
//! worker thread goes on running other coroutines) and blocks the calling
//! *thread* when used outside a coroutine, so coroutines and plain threads
//! can share one lock. Most users reach these through the `goro` facade as
//! `goro::sync`.
//!
//! | type | Go | what it does |
//! |---|---|---|
//! | [`Mutex`] | `sync.Mutex` | mutual exclusion; barging with a 1 ms starvation guard |
//! | [`RwLock`] | `sync.RWMutex` | many readers or one writer; waiting writers hold off new readers |
//! | [`Condvar`] | `sync.Cond` | wait for a condition under a [`Mutex`] |
//! | [`Semaphore`] | `x/sync/semaphore` | at most N holders, FIFO, RAII permits |
//! | [`WaitGroup`] | `sync.WaitGroup` | wait for a set of coroutines to finish |
//! | [`Once`] | `sync.Once` | one-time initialization |
//! | [`Barrier`] | (std's `Barrier`) | N parties meet, then all go on |
//!
//! ```
//! use std::sync::Arc;
//! use goro::sync::{Mutex, WaitGroup};
//!
//! let total = Arc::new(Mutex::new(0u64));
//! let wg = WaitGroup::new();
//! for i in 1..=100 {
//!     let total = total.clone();
//!     wg.go(move || *total.lock() += i);
//! }
//! wg.wait();
//! assert_eq!(*total.lock(), 5050);
//! ```
//!
//! # Differences from std
//!
//! - No poisoning: a panic while a guard is held releases the lock, and
//!   `lock()` returns the guard directly. Methods that return a
//!   `LockResult` in std return the value here.
//! - A [`Once`] whose initializer panicked is not poisoned: the next
//!   caller runs its own initializer.
//! - [`Condvar::wait`] takes `&mut MutexGuard` (as `parking_lot` does)
//!   and never wakes spuriously.
//!
//! # How waiting works
//!
//! Each primitive keeps its fast path in one atomic state word, described
//! in an `Invariants:` block at the top of its module. A caller that has to
//! wait puts a heap-allocated node in the primitive's queue (guarded by a
//! short `parking_lot` critical section, never held while anybody waits)
//! and parks through [`goro_runtime::park`]; whoever makes progress
//! possible sets the node's state and unparks it. Nodes never live on a
//! parked coroutine's stack, and are pooled per thread. See `waiter.rs` for
//! the shared protocol.

#[macro_use]
mod loom;

mod barrier;
mod bubble;
mod condvar;
mod mutex;
mod once;
mod rwlock;
mod semaphore;
mod wait_group;
mod waiter;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{MappedMutexGuard, Mutex, MutexGuard, STARVATION_THRESHOLD};
pub use once::Once;
pub use rwlock::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RwLock, RwLockReadGuard,
    RwLockUpgradableReadGuard, RwLockWriteGuard,
};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use wait_group::WaitGroup;
