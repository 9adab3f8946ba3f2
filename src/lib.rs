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
//! - Channels and select: [`chan`], [`select!`], [`select_biased!`];
//!   stoppable timers: [`chan::Timer`], [`chan::Ticker`].
//! - Locks and signals: [`sync`].
//! - Sockets: [`net`].
//! - Waiting primitives for your own types: [`park`]; file descriptors:
//!   [`reactor`]; callbacks on goro's timers: [`alarm`].
//! - Settings and introspection: [`Config`], [`stats`], [`coroutines`],
//!   [`dump`], [`leaks`].
//! - Deterministic tests on a virtual clock: [`testing`] (Go's
//!   `testing/synctest`).
//! - Unmodified blocking code in coroutines (`hook` feature): [`hook`].
//! - Cancellation and deadlines: [`context`] (Go's `context`).
//! - Structured concurrency: [`Group`] (Go's errgroup), [`JoinSet`].
//! - Async Rust: [`block_on`], [`chan::Sender::send_async`],
//!   [`chan::Receiver::recv_async`] (see below).
//! - How the runtime behaves: panics in coroutines, coroutine-locals, the
//!   blocked-worker watchdog, the dump and deadlock reports, configuration
//!   (all below).
//!
//! ## Async Rust
//!
//! [`block_on`] runs a future to completion, parking the coroutine (or
//! blocking the thread) while it is pending; its waker unparks. Channels
//! have async forms, so a future and a coroutine can share a channel:
//!
//! ```
//! let (tx, rx) = goro::chan::bounded::<u32>(0);
//! let h = goro::go!(move || rx.recv());
//! goro::block_on(async { tx.send_async(7).await }).unwrap();
//! assert_eq!(h.join().unwrap(), Ok(7));
//! ```
//!
//! A future that needs another runtime's reactor (tokio's sockets and
//! timers, or a client library built on them) must run on that runtime:
//! start a tokio runtime on a side thread, send it requests over a goro
//! channel (`recv_async` there), and let each request carry a goro channel
//! for the answer (`send_async` there, a plain `recv` in the coroutine).
//! `examples/tokio_bridge.rs` is that pattern, tested.
//!
//! ## One rule to know
//!
//! A coroutine that has started running stays on its worker thread for the
//! rest of its life. That keeps `thread_local!` and other TLS-holding code
//! sound inside coroutines; it also means a `thread_local!` *value* is
//! shared by all coroutines on one worker. Use [`coroutine_local!`] for
//! per-coroutine state.
//!
#![doc = include_str!("docs/runtime.md")]

#[doc(inline)]
pub use goro_runtime::{
    AccessError, BlockedIn, BlockedWorker, Builder, Config, ConfigError, CoroutineInfo,
    DEFAULT_STACK_SIZE, JoinHandle, LocalKey, MAX_STACK_SIZE, MAX_WORKERS, MIN_STACK_SIZE,
    PanicPayload, Scope, ScopedJoinHandle, State, Stats, WorkerStats, block_on, blocking,
    coroutines, current_id, is_coroutine, scope, sleep, spawn, stats, yield_now,
};
#[doc(inline)]
pub use goro_runtime::{
    DEADLOCK_MESSAGE, DeadlockAction, Leak, WaitInfo, WaitKind, dump, dump_to, leaks,
};
#[doc(inline)]
pub use goro_runtime::{coroutine_local, go};

pub mod alarm {
    #![doc = include_str!("docs/alarm.md")]
    #[doc(inline)]
    pub use goro_runtime::alarm::*;
}

pub mod context {
    #![doc = include_str!("docs/context.md")]
    #[doc(inline)]
    pub use goro_context::context::*;
}

#[doc(inline)]
pub use goro_context::{Group, GroupError, JoinSet};

pub mod park {
    #![doc = include_str!("docs/park.md")]
    #[doc(inline)]
    pub use goro_runtime::park::*;
}

pub mod testing {
    #![doc = include_str!("docs/testing.md")]
    #[doc(inline)]
    pub use goro_runtime::testing::*;
}

pub mod reactor {
    #![doc = include_str!("docs/reactor.md")]
    #[doc(inline)]
    pub use goro_runtime::reactor::*;
}

pub mod chan {
    #![doc = include_str!("docs/chan.md")]
    #[doc(inline)]
    pub use goro_channel::*;
}

#[doc(inline)]
pub use goro_channel::{select, select_biased};

pub mod sync {
    #![doc = include_str!("docs/sync.md")]
    #[doc(inline)]
    pub use goro_sync::*;
}

pub mod net {
    #![doc = include_str!("docs/net.md")]
    #[doc(inline)]
    pub use goro_net::*;
}

pub mod hook {
    #![doc = include_str!("docs/hook.md")]
    //!
    //! # Linking
    //!
    //! The hooks are libc's function names defined in the `goro-hook` rlib.
    //! The linker uses them only if that rlib is part of the link, which it
    //! is when some linked code names the crate: this module's [`enabled`]
    //! does, so with the feature on every binary that uses goro gets them.
    //! Call [`enabled`] to check.

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
