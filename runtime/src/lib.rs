//! goro-runtime: stackful coroutines on an M:N work-stealing scheduler.
//!
//! This crate is the foundation of [goro](https://docs.rs/goro): it runs
//! coroutines ("goroutines") on a few worker threads and provides the one
//! primitive everything else waits with, [`park`]. Most users should depend
//! on the `goro` facade, which re-exports all of this.
//!
//! ```
//! let handles: Vec<_> = (0..10u64).map(|i| goro::go!(move || i * i)).collect();
//! let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 285);
//! ```
//!
//! # Glossary
//!
//! - **coroutine**: a function running on its own small stack (64 KiB by
//!   default, pooled), switched in and out by [corosensei]. Suspending one
//!   costs a few nanoseconds and no system call.
//! - **task**: the runtime's header for one coroutine (`task.rs`).
//! - **worker**: one of `GORO_WORKERS` OS threads that run coroutines
//!   (`scheduler/worker.rs`).
//! - **park / unpark**: block the current coroutine (or thread) until woken
//!   (`park.rs`). Channels, locks, timers, `join`, IO all use it.
//! - **runnext**: a worker's one-slot fast lane for the coroutine the
//!   running one just woke (Go's `runnext`).
//! - **reactor**: the epoll instance or io_uring ring the idle worker
//!   sleeps in (`reactor/`).
//!
//! # The rules this runtime keeps
//!
//! 1. **A started coroutine never changes threads.** Rust code may hold
//!    references into thread-local storage across calls and LLVM may cache a
//!    thread-local's address inside a function; moving a suspended
//!    coroutine to another thread would make such code read another
//!    thread's data. So only coroutines that have not started are stolen by
//!    idle workers. Code inside a coroutine may therefore use
//!    `thread_local!`, `RefCell`s in TLS and the like exactly as on a
//!    thread, with one caveat: several coroutines share one worker thread,
//!    so a thread-local *value* is shared by the coroutines of that worker.
//!    Use [`coroutine_local!`] for per-coroutine state. Code that holds no
//!    thread-bound state across parks may opt into migration with the
//!    `unsafe` [`Builder::migratable`]: such a coroutine is woken onto the
//!    waker's worker (as Go does) and may be stolen by idle workers, which
//!    makes cross-worker hand-offs cheaper. goro's own crates never cache a
//!    thread-local across a park (their TLS accesses sit in
//!    `#[inline(never)]` functions), so they are safe to use from it.
//! 2. **Everything waits through [`park`]**, which works for coroutines and
//!    threads alike, so every blocking call in goro works from both and
//!    coroutines and threads can meet on the same channel or lock.
//! 3. **No lost wake-up, no double resume**: a coroutine is marked parked
//!    by its worker only after it has switched off its stack, and only the
//!    waker that sees it parked queues it (`park.rs`).
//! 4. **A parked coroutine is never unwound or freed behind its back**: the
//!    runtime keeps every live coroutine (see [`coroutines`]) until it
//!    returns. A coroutine parked forever is leaked, like a goroutine
//!    blocked forever in Go.
//! 5. **Bad input gets an error, not a hang**: stack sizes out of range are
//!    `InvalidInput`; failing to map a stack is the OS error from
//!    [`Builder::spawn`]; a stack overflow aborts with a message naming the
//!    coroutine and its stack size (`stack/`). As with `std::thread`, only
//!    a failure to allocate a coroutine's small heap header aborts (Rust's
//!    allocation error handler).
//! 6. **No stack without a guard page in safe code.** On Linux 6.13 and
//!    later every stack gets one that costs no mapping
//!    (`MADV_GUARD_INSTALL`). On older kernels (or with
//!    `GORO_STACK_GUARDS=mapped`) each guard page costs two mappings, so at
//!    most `vm.max_map_count / 8` coroutines (8,191 on a default kernel)
//!    can hold a stack at once; beyond that [`Builder::spawn`] fails with
//!    `OutOfMemory` and says how to raise the limit. Stacks guarded only by
//!    a canary exist behind the `unsafe` [`Builder::allow_unguarded_stack`]
//!    and [`Config::allow_unguarded_stacks`].
//!
//! # For users
//!
//! How the runtime behaves for its users (panics in coroutines,
//! coroutine-locals, the blocked-worker watchdog, the dump and deadlock
//! reports, configuration) is on the crate page of the `goro` facade:
//! <https://docs.rs/goro/latest/goro/>. Item docs here that say "the
//! crate docs" mean that page.
//!
//! # Rejected alternatives
//!
//! - *Migrating started coroutines by default* (as `may` does) makes the
//!   scheduler fairer under imbalance but is unsound with thread-locals
//!   (rule 1); goro offers it only as the `unsafe` opt-in above.
//! - *One `mmap` with a guard page per stack* stops near 32,000 coroutines
//!   on a default kernel (`vm.max_map_count`); goro carves stacks from slabs
//!   whose guard pages cost no mapping where the kernel allows (`stack/`).
//! - *Canary-only stacks beyond the map budget*, for safe code: a frame
//!   that reaches past the canary corrupts a neighbour's live stack
//!   undetected, so they are an `unsafe` opt-in (rule 6).
//! - *A timer thread* adds a context switch to every timer; workers drive
//!   per-worker timing wheels themselves (`timer/`).
//! - *Idle polling* (waking every few milliseconds to look for work) burns
//!   CPU on an idle service; idle workers sleep until woken
//!   (`scheduler/idle.rs`).
//!
//! [corosensei]: https://docs.rs/corosensei

pub mod alarm;
mod blocking;
mod bridge;
mod config;
mod context;
mod diag;
mod join;
mod local;
mod loom;
mod panic_report;
pub mod park;
pub mod reactor;
mod registry;
mod scheduler;
mod scope;
mod spawn;
mod stack;
mod stats;
mod task;
pub mod testing;
mod timer;
mod wake_latch;
mod worker_threads;

pub use blocking::blocking;
pub use bridge::block_on;
pub use config::{Config, ConfigError, MAX_WORKERS};
pub use diag::deadlock::DEADLOCK_MESSAGE;
#[doc(hidden)]
pub use diag::owner::LockOwner;
pub use diag::{DeadlockAction, Leak, WaitInfo, WaitKind, dump, dump_to, leaks};
pub use join::{JoinHandle, PanicPayload};
pub use local::{AccessError, LocalKey};
pub use scheduler::watchdog::{BlockedIn, BlockedWorker};
pub use scope::{Scope, ScopedJoinHandle, scope};
pub use spawn::{Builder, current_id, is_coroutine, sleep, spawn, yield_now};
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use stats::{CoroutineInfo, State, Stats, WorkerStats, coroutines, stats};
