//! goro-hook: unmodified blocking code parks the coroutine, not the worker.
//!
//! Most users reach this crate through the `goro` facade's `hook` feature
//! (`goro = { version = "...", features = ["hook"] }`) and check it with
//! `goro::hook::enabled()`. It defines libc's blocking socket and sleep
//! functions (`recv`, `connect`, `poll`, `nanosleep`, ...) under their C
//! names. Because the final binary defines them, the linker binds every
//! call to them (std's, and C shared libraries' such as libcurl's) to
//! these definitions instead of libc's. Each one looks at who calls it:
//!
//! - **outside a coroutine** (plain threads, the runtime's own code, before
//!   `main`) it calls libc's function and returns its result untouched;
//! - **inside a coroutine**, on a socket the program treats as blocking, it
//!   makes the socket non-blocking underneath, tries the call, and when the
//!   call would block it parks the coroutine on goro's reactor until the
//!   socket is ready or the socket's timeout passes, then returns what the
//!   blocking call would have returned, `errno` included.
//!
//! So `std::net::TcpStream`, `std::thread::sleep`, the sync `redis` crate,
//! `ureq`, libcurl and the like run thousands of coroutines on a few
//! workers without a line changed.
//!
//! ```
//! use std::io::{Read, Write};
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! // A server coroutine and a client coroutine, both written with std::net:
//! // with the hook they share one worker instead of blocking it.
//! let server = goro::go!(move || {
//!     let (mut c, _) = listener.accept().unwrap();
//!     let mut b = [0; 5];
//!     c.read_exact(&mut b).unwrap();
//!     c.write_all(&b).unwrap();
//! });
//! let client = goro::go!(move || {
//!     let mut s = std::net::TcpStream::connect(addr).unwrap();
//!     s.write_all(b"hello").unwrap();
//!     let mut b = [0; 5];
//!     s.read_exact(&mut b).unwrap();
//!     b
//! });
//! assert_eq!(&client.join().unwrap(), b"hello");
//! server.join().unwrap();
//! assert!(goro::hook::enabled());
//! ```
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
//! # Invariants
//!
//! 1. **Straight through unless it must park.** A hook calls the original
//!    (`real.rs`) unchanged when the caller is not in a coroutine and the
//!    fd is one the hook never made non-blocking, when the fd is not a
//!    socket the hook saw created (`fdtable.rs`), when the program made
//!    the fd non-blocking itself, or when a timeout of zero asks not to
//!    wait. Nothing starts the runtime: "in a coroutine" is one inline
//!    thread-local read and the runtime is running whenever it is true.
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
//!
//! # What is covered, and what is not
//!
//! Covered (in coroutines): `socket`, `socketpair`, `connect`, `accept`,
//! `accept4`, `read`, `readv`, `write`, `writev`, `recv`, `recvfrom`,
//! `recvmsg`, `send`, `sendto`, `sendmsg` on sockets; `poll`, `ppoll`,
//! `select`, `epoll_wait`, `epoll_pwait` on any fds; `nanosleep`,
//! `clock_nanosleep`, `usleep`, `sleep`; `getaddrinfo`, `gethostbyname`,
//! `gethostbyname2`, `gethostbyname_r`, `gethostbyname2_r` (run on the
//! blocking pool). Kept consistent: `close`, `dup`, `dup2`, `dup3`,
//! `fcntl`/`fcntl64` (`F_GETFL`/`F_SETFL`/`F_DUPFD*`), `ioctl(FIONBIO)`,
//! `setsockopt` (`SO_RCVTIMEO`/`SO_SNDTIMEO`; they are also set in the
//! kernel, so `getsockopt` reads them back without a hook).
//!
//! Not made cooperative, and so still blocking the worker (goro's
//! blocked-worker watchdog reports them):
//!
//! - **`std::sync::Mutex`, `Condvar`, `RwLock`, `std::thread::JoinHandle::join`,
//!   `std::sync::mpsc` and every other futex wait**: there is no libc
//!   function to hook (std calls the `futex` system call directly). Use
//!   `goro::sync` and goro's channels in coroutines.
//! - **CPU-bound loops**: nothing to interpose; split them with
//!   `goro::yield_now` or move them to `goro::blocking`.
//! - **Calls libc makes internally** (glibc's own `__recv` inside
//!   `getaddrinfo`, `fclose`'s close, `system`): they do not go through
//!   the exported symbols. DNS runs on the blocking pool for that reason.
//!   Raw `syscall(SYS_read, ...)` is not seen either.
//! - **Regular files, pipes, ttys and fds the hook never saw created**
//!   pass straight through `read`/`write` (the kernel never says `EAGAIN`
//!   for files; a pipe read blocks the worker). `poll`/`select`/
//!   `epoll_wait` do park for every kind of fd.
//! - **`ppoll`/`epoll_pwait` with a signal mask** pass straight through:
//!   the mask cannot be applied to a parked coroutine.
//! - **Clocks other than realtime, monotonic and boottime** in
//!   `clock_nanosleep` pass straight through.
//!
//! Caveats a blocking program may notice:
//!
//! - **`fork`**: the child has no runtime threads. A `pthread_atfork`
//!   handler turns every hook into a pass-through in the child; sockets
//!   the hook made non-blocking stay non-blocking in the kernel (the flag
//!   belongs to the open file, shared with the parent), and the child's
//!   calls on them block by `poll(2)`, as on any plain thread. A child
//!   that `exec`s passes those fds on with `O_NONBLOCK` set; `vfork` and
//!   `posix_spawn` run no handlers, so their child must only `exec`.
//! - **Signal handlers**: pass-through hooks are async-signal-safe (atomic
//!   loads, a thread-local read). A handler must not make a blocking call
//!   on a blocking socket while it interrupts a coroutine: the hook would
//!   park the interrupted coroutine from inside the handler.
//! - **`EINTR`**: a parked coroutine is not interrupted by signals (they
//!   go to whatever the worker runs), so a hooked call never fails with
//!   `EINTR` while parked, as if `SA_RESTART` were set; `EINTR` from the
//!   system call itself is returned as it is. Hooked sleeps never return
//!   early (`rem` is zeroed).
//! - **Thread-local `errno`**: coroutines on one worker share the
//!   thread's `errno`. Read it right after the failing call (as C code
//!   does), before anything that may park.
//! - **Locks held across a hooked call**: a hooked call that parks keeps
//!   whatever `std::sync` lock its caller holds. std holds its environment
//!   read lock around `getaddrinfo`, so a `std::env::set_var` in another
//!   coroutine while a lookup is parked blocks its worker until the
//!   lookup's coroutine resumes and lets go, which never happens if that
//!   coroutine lives on the same worker.
//! - **Vectored writes** (`writev`, `sendmsg`) may return a short count on a
//!   blocking stream socket, as POSIX allows; `write`/`send`/`sendto` send
//!   everything.
//! - **`dup`**: the copy gets the original's blocking flag and timeouts at
//!   the time of the `dup`; changing them later through one number does
//!   not change the other's view (the kernel shares them).
//! - **Closing a socket another coroutine is blocked on** (impossible in
//!   safe Rust, possible in C): the blocked call keeps waiting, as on
//!   Linux, and fails with `EBADF` once the socket becomes ready; the
//!   number stays in use until then.

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
