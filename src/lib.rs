//! # goro: Go's concurrency model for Rust
//!
//! Stackful coroutines on an M:N work-stealing scheduler, channels with a
//! real [`select!`], coroutine-aware locks, coroutine-local variables,
//! timers, and sockets that read like blocking std code but park only the
//! coroutine.
//!
//! ```
//! use goro::chan;
//!
//! let (tx, rx) = chan::bounded::<u64>(0); // unbuffered, like Go's make(chan int)
//! let producer = goro::go!(move || {
//!     for i in 0..10 {
//!         tx.send(i).unwrap();
//!     }
//! });
//! let sum: u64 = rx.iter().sum();
//! producer.join().unwrap();
//! assert_eq!(sum, 45);
//! ```
//!
//! Everything that blocks (a channel operation, a lock, `join`, `sleep`, a
//! socket read) parks the *coroutine* when called inside one and blocks the
//! *thread* when called outside, so libraries built on goro work for both
//! kinds of caller, and coroutines and threads can share channels and locks.
//!
//! ## Index
//!
//! - Coroutines: [`go!`], [`spawn`], [`Builder`], [`JoinHandle`], [`scope`],
//!   [`yield_now`], [`sleep`], [`is_coroutine`], [`blocking`].
//! - Per-coroutine state: [`coroutine_local!`].
//! - Channels and select: [`chan`], [`select!`].
//! - Locks and signals: [`sync`].
//! - Sockets: [`net`].
//! - Waiting primitives for your own types: [`park`].
//! - Settings and introspection: [`Config`], [`stats`], [`coroutines`].
//! - Unmodified blocking code in coroutines (`hook` feature): [`hook`].
//! - Cancellation and deadlines: [`context`] (Go's `context`).
//! - Structured concurrency: [`Group`] (Go's errgroup), [`JoinSet`].
//!
//! ## One rule to know
//!
//! A coroutine that has started running stays on its worker thread for the
//! rest of its life. That keeps `thread_local!` and other TLS-holding code
//! sound inside coroutines; it also means a `thread_local!` *value* is
//! shared by all coroutines on one worker. Use [`coroutine_local!`] for
//! per-coroutine state.

#[doc(inline)]
pub use goro_runtime::{
    AccessError, BlockedIn, BlockedWorker, Builder, Config, ConfigError, CoroutineInfo,
    DEFAULT_STACK_SIZE, JoinHandle, LocalKey, MAX_STACK_SIZE, MAX_WORKERS, MIN_STACK_SIZE,
    PanicPayload, Scope, ScopedJoinHandle, State, Stats, WorkerStats, blocking, coroutines,
    current_id, is_coroutine, scope, sleep, spawn, stats, yield_now,
};
#[doc(inline)]
pub use goro_runtime::{
    DEADLOCK_MESSAGE, DeadlockAction, Leak, WaitInfo, WaitKind, dump, dump_to, leaks,
};
#[doc(inline)]
pub use goro_runtime::{coroutine_local, go};

/// Alarms: short callbacks on goro's timers (what contexts and stoppable
/// timers are built on).
pub mod alarm {
    #[doc(inline)]
    pub use goro_runtime::alarm::*;
}

/// Go's `context`: cancellation and deadlines that reach every
/// descendant at once. See [`Context`](context::Context).
pub mod context {
    #[doc(inline)]
    pub use goro_context::context::*;
}

#[doc(inline)]
pub use goro_context::{Group, GroupError, JoinSet};

/// Parking: the one primitive everything in goro waits with. Build your
/// own coroutine-aware waiting on it.
pub mod park {
    #[doc(inline)]
    pub use goro_runtime::park::*;
}

/// Deterministic tests on a virtual clock (Go's `testing/synctest`):
/// [`testing::bubble`], [`testing::wait`], [`testing::now`].
pub mod testing {
    #[doc(inline)]
    pub use goro_runtime::testing::*;
}

/// Waiting for readiness of raw file descriptors (third-party IO).
pub mod reactor {
    #[doc(inline)]
    pub use goro_runtime::reactor::*;
}

/// Channels: `bounded` (0 = unbuffered), `unbounded`, `never`, `after`,
/// `tick`, and dynamic `Select`.
pub mod chan {
    #[doc(inline)]
    pub use goro_channel::*;
}

#[doc(inline)]
pub use goro_channel::select;

/// Coroutine-aware locks and signals.
pub mod sync {
    #[doc(inline)]
    pub use goro_sync::*;
}

/// Sockets that park only the coroutine.
pub mod net {
    #[doc(inline)]
    pub use goro_net::*;
}

/// The `hook` feature: unmodified blocking code (`std::net`,
/// `std::thread::sleep`, sync clients such as `redis` or libcurl) parks the
/// coroutine instead of its worker.
///
/// Enable it with `goro = { version = "...", features = ["hook"] }`; the
/// crate docs of `goro-hook` list what is covered, what is not (futex
/// waits such as `std::sync::Mutex`, CPU loops, calls inside libc) and the
/// caveats (`fork`, signal handlers, `errno`).
///
/// The hooks are libc's function names defined in the `goro-hook` rlib.
/// The linker uses them only if that rlib is part of the link, which it
/// is when some linked code names the crate: this module's [`enabled`](hook::enabled)
/// does, so with the feature on every binary that uses goro gets them.
/// Call [`enabled`](hook::enabled) to check.
pub mod hook {
    /// Whether the hooks are in effect in this process: the `hook`
    /// feature is on and the process's `recv` resolves to goro's.
    pub fn enabled() -> bool {
        #[cfg(feature = "hook")]
        {
            goro_hook::enabled()
        }
        #[cfg(not(feature = "hook"))]
        {
            false
        }
    }
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
