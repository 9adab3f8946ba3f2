//! goro-hook: unmodified blocking code parks the coroutine, not the worker.
//!
//! The user guide (what is here, the mapping from Go, the semantics,
//! examples) is the `goro::hook` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/hook/>. This page is about how the
//! crate is built.
//!
//! # Linking: why the crate must be named
//!
//! The hooks are `#[unsafe(no_mangle)]` functions in this rlib. Cargo
//! passes an rlib to the linker only if the final crate graph *uses* the
//! crate (a dependency that no code names is dropped), and only then do
//! its definitions win over libc's. The `goro` facade names this crate
//! from `goro::hook::enabled`, so enabling the feature is enough for any
//! binary that uses goro. `enabled()` tells whether it worked: it checks
//! that the process resolves `recv` to this crate's definition, which is
//! what std and C libraries call.
//!
//!
//! # Invariants
//!
//! 1. **Straight through unless it must park.** A hook calls the original
//!    (`real.rs`) unchanged when the caller is not in a coroutine and the
//!    fd is one the hook never made non-blocking, when the fd is not a
//!    socket the hook saw created (`fdtable.rs`), when the program made
//!    the fd non-blocking itself, or when a timeout of zero asks not to
//!    wait. Nothing starts the runtime: "in a coroutine" is the runtime's
//!    worker filter (the thread pointer against a word of worker marks,
//!    inline) and, on a worker, one thread-local read; the runtime is
//!    running whenever it is true.
//! 2. **No recursion.** The hook's own calls to functions it defines go to
//!    the originals. The runtime's calls (`epoll_wait` in the idle worker,
//!    the reactor's `eventfd` writes) go through the hooks but always pass
//!    straight through: they run outside coroutines (a worker between
//!    coroutines has no current coroutine) or on fds the hook never
//!    tracked.
//! 3. **Syscall first, park only on `EAGAIN`** (goro-net's rule): a ready
//!    socket costs the system call plus one load of the fd's flags word
//!    (a static slot for fds below 4,096), the caller's `errno` read and a
//!    test of the result; the hook reads the coroutine thread-local only
//!    when the call must wait or on a blocking socket it has not yet made
//!    non-blocking (see `io.rs`). Waiting follows the reactor's sequence protocol, so no
//!    readiness edge is lost between the call and the park.
//! 4. **`errno` is set last.** After a park, other coroutines and the
//!    runtime have run on this thread and changed `errno`; the hook sets
//!    it from the final attempt as the very last thing before returning,
//!    and restores the caller's value on success. (A started coroutine
//!    never changes threads, so that is the caller's `errno`.)
//! 5. **A blocking call keeps its meaning.** A user-blocking socket waits
//!    until ready or until its `SO_RCVTIMEO`/`SO_SNDTIMEO` passes (then
//!    `EAGAIN`, as Linux reports; `EINPROGRESS` for `connect`, as Linux
//!    does); a blocking stream `send`/`write` sends everything before it
//!    returns (or returns the count sent when the timeout or an error cuts
//!    it short), as the kernel does; `MSG_DONTWAIT` is honoured per call;
//!    `connect` completes or fails with the real error (`SO_ERROR`).

#![cfg_attr(
    not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )),
    allow(unused)
)]

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod imp;

/// Whether the hooks are in effect in this process: this crate is linked
/// and the process's `recv` (the one std and C libraries call) is this
/// crate's. Always `false` on platforms the hook does not support (it is
/// built for Linux on x86-64 and AArch64).
pub fn enabled() -> bool {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        imp::enabled()
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        false
    }
}
