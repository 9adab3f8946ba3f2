//! goro-sync: locks and signals for goro coroutines, Go's `sync` package
//! for Rust.
//!
//! The user guide (what is here, the mapping from Go, the semantics,
//! examples) is the `goro::sync` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/sync/>. This page is about how the
//! crate is built.
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
