//! goro-runtime: stackful coroutines on an M:N work-stealing scheduler.
//!
//! This crate is the foundation of [goro](https://docs.rs/goro): it runs
//! coroutines ("goroutines") on a few worker threads and provides the one
//! primitive everything else waits with, [`park`]. Most users should depend
//! on the `goro` facade, which re-exports all of this.
//!
//! ```
//! let handles: Vec<_> = (0..10u64).map(|i| goro_runtime::go!(move || i * i)).collect();
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
//! - **reactor**: the epoll instance the idle worker sleeps in
//!   (`reactor.rs`).
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
//!    coroutine and its stack size (`stack/`).
//!
//! # Rejected alternatives
//!
//! - *Migrating started coroutines by default* (as `may` does) makes the
//!   scheduler fairer under imbalance but is unsound with thread-locals
//!   (rule 1); goro offers it only as the `unsafe` opt-in above.
//! - *One `mmap` with a guard page per stack* stops near 32,000 coroutines
//!   on a default kernel (`vm.max_map_count`); goro carves stacks from slabs
//!   and keeps guard pages while a map budget lasts (`stack/`).
//! - *A timer thread* adds a context switch to every timer; workers drive
//!   per-worker timing wheels themselves (`timer/`).
//! - *Idle polling* (waking every few milliseconds to look for work) burns
//!   CPU on an idle service; idle workers sleep until woken
//!   (`scheduler/idle.rs`).
//!
//! # Configuration
//!
//! The runtime starts on first use with `GORO_WORKERS` workers (default:
//! available parallelism) and `GORO_STACK_SIZE` stacks (default 64 KiB), or
//! what [`Config::apply`] set before that. `GORO_STACK_GUARDS=mapped`
//! switches stacks to the guard layout of kernels before 6.13 (see the
//! stack module docs); the default, `light`, uses `MADV_GUARD_INSTALL`
//! where the kernel has it.
//!
//! [corosensei]: https://docs.rs/corosensei

mod blocking;
mod config;
mod context;
mod join;
mod local;
mod loom;
pub mod park;
pub mod reactor;
mod registry;
mod scheduler;
mod scope;
mod spawn;
mod stack;
mod stats;
mod task;
mod timer;
mod wake_latch;

pub use blocking::blocking;
pub use config::{Config, ConfigError, MAX_WORKERS};
pub use join::{JoinHandle, PanicPayload};
pub use local::LocalKey;
pub use scope::{Scope, ScopedJoinHandle, scope};
pub use spawn::{Builder, current_id, is_coroutine, sleep, spawn, yield_now};
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use stats::{CoroutineInfo, State, Stats, coroutines, stats};
