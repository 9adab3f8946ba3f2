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
//! # Panics in coroutines
//!
//! A panic ends only its coroutine: it is caught where the coroutine
//! started and [`JoinHandle::join`] returns it as `Err(payload)`; the
//! runtime keeps running. This does not depend on any panic hook.
//!
//! What is *printed* comes from the process's panic hook. When the runtime
//! starts (on first use) it takes the hook installed at that moment (std's
//! default, or the program's own, such as an error reporter) and installs
//! its own in front of it: for a panic inside a coroutine goro writes one
//! line to stderr, `coroutine 'name' (id N) panicked on thread
//! 'goro-worker-K'`, then calls the previous hook, which reports the panic
//! as it would for a thread (std's default prints `thread 'goro-worker-K'
//! panicked at file:line:` and the message, so the message is printed
//! once). The previous hook runs inside the coroutine, so it can call
//! [`current_id`] to tell which. Panics outside coroutines go to the
//! previous hook alone.
//!
//! So install your hook *before* the first spawn to keep goro's line. A
//! hook installed after the runtime started replaces goro's, as
//! `std::panic::set_hook` always replaces: coroutine panics are still
//! caught and returned by `join`, but only your hook reports them (no
//! coroutine line). To keep goro's line then, chain to the hook you
//! replace (`let prev = std::panic::take_hook();` and call `prev(info)` from
//! yours).
//!
//! # Coroutine-locals
//!
//! [`coroutine_local!`] values live as long as their coroutine and are
//! dropped on its own worker thread, inside it, after everything that runs
//! on its behalf (its closure, and the drop of a result whose handle was
//! already gone) and before `join` returns; touching one during or after
//! its destruction fails as std's thread-locals do ([`LocalKey::try_with`]
//! returns [`AccessError`], [`LocalKey::with`] panics). [`LocalKey`] says
//! in which order values are dropped and what their destructors may use.
//!
//! # The blocked-worker watchdog
//!
//! Every coroutine on a worker waits while one of them holds the worker
//! thread, and goro cannot take a worker back: a started coroutine never
//! changes threads (rule 1) and nothing preempts a thread. So a call goro
//! cannot park is a stall for its neighbours, and a hang if what it waits
//! for lives on a blocked worker: `std::sync::Mutex` and `Condvar`,
//! `std::thread::JoinHandle::join` and other futex waits,
//! `std::thread::sleep`, a plain `std::net` read (without the `hook`
//! feature), a blocking call libc makes internally, or a loop that computes
//! for long without a switch. Two coroutines reading from plain
//! `std::net::TcpStream`s on a two-worker runtime, against a server
//! coroutine on the same runtime, block both workers in `recv`, and the
//! server never runs.
//!
//! A monitor thread makes that loud. When a worker has run one coroutine
//! without a switch for longer than the threshold (default 1 s;
//! [`Config::blocked_worker_threshold`] or `GORO_BLOCKED_WORKER_MS`, 0
//! turns it off) it writes one line to stderr, once per episode (an
//! episode ends when the worker switches), such as
//!
//! ```text
//! goro: worker 1 has run coroutine 'client-0' (id 2) for 1.0s without switching;
//! it is blocked in the system call recvfrom (kernel wait: wait_woken). ...
//! ```
//!
//! (one line in reality), and counts the episode in
//! [`Stats::blocked_worker_episodes`]; [`Config::on_blocked_worker`]
//! replaces the line with a function of your own. What it sees: the
//! coroutine's id and name, a lower bound of how long it has held the
//! worker (the report comes between one and one and a half thresholds after
//! its last switch), and, on Linux, what the thread is doing: the system
//! call it is in (`futex` for std's locks, `join` and condition variables,
//! `clock_nanosleep` for `thread::sleep`, `recvfrom` for a socket read...)
//! or `running` for a loop. What it cannot do: unblock, interrupt or
//! preempt anything. The program stays as stuck as it was; the report
//! tells you where. It does not see a coroutine that switches now and then
//! but is slow overall, nor blocking on the blocking pool
//! ([`blocking`]), which is where such calls belong. A worker thread the OS
//! does not run for a whole threshold (a badly overloaded machine) looks
//! stuck too, and is reported as running.
//!
//! It costs the workers two relaxed stores per resume, and an idle
//! runtime nothing: with every worker asleep the monitor sleeps with no
//! timeout (`scheduler/watchdog.rs` has the details).
//!
//! # Seeing inside: wait reasons, the dump, deadlocks
//!
//! Every park records what it waits on ([`WaitKind`]), the user's source
//! line and since when ([`WaitInfo`], in [`coroutines`]); [`dump`] prints
//! a Go-style report grouped by state, operation and line (see
//! `diag/dump.rs`), and `GORO_DUMP_SIGNAL=QUIT` or
//! [`Config::dump_signal`] prints it on a signal. When nothing can ever
//! run again (every coroutine parked on goro primitives, no timer, IO
//! wait or blocking job, and every thread of the process the runtime's or
//! blocked in an untimed goro wait) the runtime prints
//! [`DEADLOCK_MESSAGE`] with the dump and panics the blocked threads
//! ([`Config::on_deadlock`]). `diag/deadlock.rs` lists exactly what is and
//! is not detected; [`leaks`] says what the leak report can know.
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
//! # Configuration
//!
//! The runtime starts on first use with `GORO_WORKERS` workers (default:
//! available parallelism) and `GORO_STACK_SIZE` stacks (default 64 KiB), or
//! what [`Config::apply`] set before that. `GORO_STACK_GUARDS=mapped`
//! switches stacks to the guard layout of kernels before 6.13 (see the
//! stack module docs and rule 6); the default, `light`, uses
//! `MADV_GUARD_INSTALL` where the kernel has it. No environment variable
//! enables unguarded stacks: only code can make that `unsafe` promise.
//! `GORO_BLOCKED_WORKER_MS` sets the threshold of the blocked-worker
//! watchdog above (whole milliseconds, 0 = off). The [`Config`] docs list
//! every setting.
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

pub use blocking::blocking;
pub use bridge::block_on;
pub use config::{Config, ConfigError, MAX_WORKERS};
pub use diag::deadlock::DEADLOCK_MESSAGE;
pub use diag::{DeadlockAction, Leak, WaitInfo, WaitKind, dump, dump_to, leaks};
pub use join::{JoinHandle, PanicPayload};
pub use local::{AccessError, LocalKey};
pub use scheduler::watchdog::{BlockedIn, BlockedWorker};
pub use scope::{Scope, ScopedJoinHandle, scope};
pub use spawn::{Builder, current_id, is_coroutine, sleep, spawn, yield_now};
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use stats::{CoroutineInfo, State, Stats, WorkerStats, coroutines, stats};
