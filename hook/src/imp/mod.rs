//! The hooks (Linux): shared helpers; the hooked functions live in `io`,
//! `poll`, `sleep` and `dns`.

mod dns;
mod fdtable;
mod io;
mod poll;
mod real;
mod sleep;
mod sys;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libc::c_int;

/// Set in a child process after `fork` (see the crate docs).
static FORKED: AtomicBool = AtomicBool::new(false);
static FORK_HANDLER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a child forked from a hooked one.
#[inline]
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

extern "C" fn in_child() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Registers the `fork` child handler, once, before the first socket is
/// tracked (nothing needs it earlier).
pub(crate) fn install_fork_handler() {
    if !FORK_HANDLER.load(Ordering::Relaxed) && !FORK_HANDLER.swap(true, Ordering::AcqRel) {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    }
}

/// Whether the caller may park: it runs in a goro coroutine (which
/// implies the runtime is up) and this is not a forked child.
///
/// One thread-local load on a plain thread; the fork flag is read only
/// when that says "coroutine" (a child forked from inside a coroutine).
#[inline(always)]
pub(crate) fn in_coroutine() -> bool {
    goro_runtime::reactor::in_coroutine() && !forked()
}

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> c_int {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
#[inline]
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e };
}

/// The instant `nanos` from now, `None` for 0 (no timeout) or beyond the
/// clock's range.
pub(crate) fn deadline_in(nanos: u64) -> Option<Instant> {
    if nanos == 0 {
        None
    } else {
        Instant::now().checked_add(Duration::from_nanos(nanos))
    }
}

/// Whether `deadline` has passed.
pub(crate) fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// The addresses of every hook.
struct Hooks([*const (); 38]);

// SAFETY: function addresses, never dereferenced as data.
unsafe impl Sync for Hooks {}

/// Every hook, referenced from [`enabled`] so that the linker keeps the
/// object files that define them whenever `enabled` is linked.
#[used]
static HOOKS: Hooks = Hooks([
    io::socket as *const (),
    io::socketpair as *const (),
    io::connect as *const (),
    io::accept as *const (),
    io::accept4 as *const (),
    io::read as *const (),
    io::readv as *const (),
    io::write as *const (),
    io::writev as *const (),
    io::recv as *const (),
    io::recvfrom as *const (),
    io::recvmsg as *const (),
    io::send as *const (),
    io::sendto as *const (),
    io::sendmsg as *const (),
    io::close as *const (),
    io::dup as *const (),
    io::dup2 as *const (),
    io::dup3 as *const (),
    io::fcntl as *const (),
    io::fcntl64 as *const (),
    io::ioctl as *const (),
    io::setsockopt as *const (),
    poll::poll as *const (),
    poll::ppoll as *const (),
    poll::select as *const (),
    poll::epoll_wait as *const (),
    poll::epoll_pwait as *const (),
    sleep::nanosleep as *const (),
    sleep::clock_nanosleep as *const (),
    sleep::usleep as *const (),
    sleep::sleep as *const (),
    dns::getaddrinfo as *const (),
    dns::gethostbyname as *const (),
    dns::gethostbyname2 as *const (),
    dns::gethostbyname_r as *const (),
    dns::gethostbyname2_r as *const (),
    enabled as *const (),
]);

/// See [`crate::enabled`].
pub(crate) fn enabled() -> bool {
    let hooks = std::hint::black_box(&HOOKS);
    // SAFETY: looks a NUL-terminated name up in the global scope.
    let resolved = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"recv".as_ptr()) };
    resolved.cast_const().cast::<()>() == hooks.0[9]
}
