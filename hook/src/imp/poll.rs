//! `poll`, `ppoll`, `select`, `epoll_wait`, `epoll_pwait`: waiting for any
//! of several fds of any kind.
//!
//! # How a coroutine waits for many fds
//!
//! The runtime's reactor wakes one waiter per fd registration, and an fd
//! can be registered with it only once (goro's own sockets and the hook's
//! tracked sockets already are). So a parking `poll` builds a *private*
//! epoll set holding the polled fds (level-triggered, any kind of fd,
//! however often the same fd is polled elsewhere), registers that one
//! epoll fd with the reactor, and parks until it turns readable, which it
//! does when any fd in it is ready, or until the deadline. Then it asks the
//! original call with a zero timeout what is ready, so results are always
//! the kernel's own. The private set lives for one call: polled fds are
//! borrowed for the call, so none of them can be closed under it.
//!
//! A zero timeout never parks; outside a coroutine everything passes
//! straight through.

use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use goro_runtime::reactor::{Interest, Registration};
use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};

use super::{errno, in_coroutine, passed, real, set_errno};

/// Parks the calling coroutine until `check` returns `Some` (it is called
/// first, and again whenever one of `fds` (fd, poll events) may have
/// become ready), or until `deadline` passes (then `None`, after a last
/// `check`).
pub(crate) fn park_on<R>(
    fds: &[(RawFd, u32)],
    deadline: Option<Instant>,
    mut check: impl FnMut() -> Option<R>,
) -> Option<R> {
    if let Some(r) = check() {
        return Some(r);
    }
    let Some(set) = PrivateSet::new(fds) else {
        return sliced(deadline, check);
    };
    let out = loop {
        let seen = set.reg.seq(Interest::Readable);
        if let Some(r) = check() {
            break Some(r);
        }
        if passed(deadline) {
            break None;
        }
        if set.reg.wait(Interest::Readable, seen, deadline).is_err() {
            // Timed out (or the registration failed): one last look.
            break check();
        }
    };
    // Closing the set may touch errno; `check`'s result carries its own.
    drop(set);
    out
}

/// A private epoll set registered with the reactor (see the module docs).
struct PrivateSet {
    /// Dropped (deregistered) before `ep` is closed.
    reg: ManuallyDrop<Registration>,
    ep: c_int,
}

impl PrivateSet {
    fn new(fds: &[(RawFd, u32)]) -> Option<PrivateSet> {
        let e = errno();
        // SAFETY: a plain system call; the fd is checked and owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            set_errno(e);
            return None;
        }
        for (i, &(fd, _)) in fds.iter().enumerate() {
            // The same fd twice: the first entry takes all its events.
            if fds[..i].iter().any(|&(f, _)| f == fd) {
                continue;
            }
            let all = fds[i..]
                .iter()
                .filter(|&&(f, _)| f == fd)
                .fold(0, |a, &(_, ev)| a | ev);
            let mut ev = epoll_event {
                // poll's event bits are epoll's on Linux.
                events: all,
                u64: 0,
            };
            // SAFETY: adds a caller's fd to our set; failures (a regular
            // file, a bad fd) mean the fd is reported ready by `poll`
            // itself, so they are ignored.
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        }
        // SAFETY: `ep` is ours and is closed only after `reg` is dropped
        // (`Drop` below).
        match unsafe { Registration::new(ep) } {
            Ok(reg) => {
                set_errno(e);
                Some(PrivateSet {
                    reg: ManuallyDrop::new(reg),
                    ep,
                })
            }
            Err(_) => {
                // SAFETY: our fd, never registered.
                unsafe { real::close(ep) };
                set_errno(e);
                None
            }
        }
    }
}

impl Drop for PrivateSet {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here, while `ep` is still open.
        unsafe { ManuallyDrop::drop(&mut self.reg) };
        // SAFETY: our fd, no longer registered.
        unsafe { real::close(self.ep) };
    }
}

/// Without a private set (fd exhaustion): look again at growing intervals
/// (1 ms doubling to 16 ms), parked in between.
fn sliced<R>(deadline: Option<Instant>, mut check: impl FnMut() -> Option<R>) -> Option<R> {
    let mut slice = Duration::from_millis(1);
    loop {
        if let Some(r) = check() {
            return Some(r);
        }
        if passed(deadline) {
            return None;
        }
        let until = Instant::now() + slice;
        goro_runtime::park::park_deadline(deadline.map_or(until, |d| d.min(until)));
        slice = (slice * 2).min(Duration::from_millis(16));
    }
}

fn ms_deadline(timeout: c_int) -> Option<Instant> {
    if timeout < 0 {
        None
    } else {
        Instant::now().checked_add(Duration::from_millis(timeout as u64))
    }
}

/// A valid timespec as a deadline (`Err` for an invalid one, which the
/// original reports).
fn ts_deadline(ts: *const timespec) -> Result<Option<Instant>, ()> {
    if ts.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller passes a valid timespec or null.
    let t = unsafe { *ts };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(());
    }
    let d = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
    Ok(Instant::now().checked_add(d))
}

/// The parking half of `poll`/`ppoll`.
#[cold]
fn poll_parked(fds: *mut pollfd, n: nfds_t, deadline: Option<Instant>) -> c_int {
    let entry = errno();
    let list: Vec<(RawFd, u32)> = if fds.is_null() || n == 0 {
        Vec::new()
    } else {
        // SAFETY: the caller passes `n` valid pollfds.
        unsafe { std::slice::from_raw_parts(fds, n as usize) }
            .iter()
            .filter(|p| p.fd >= 0)
            .map(|p| (p.fd, p.events as u16 as u32))
            .collect()
    };
    let r = park_on(&list, deadline, || {
        // SAFETY: the caller's pollfds, with a zero timeout.
        let r = unsafe { real::poll(fds, n, 0) };
        (r != 0).then(|| (r, errno()))
    });
    match r {
        Some((r, e)) => {
            set_errno(if r < 0 { e } else { entry });
            r
        }
        None => {
            set_errno(entry);
            0
        }
    }
}

/// Hooked `poll(2)`: in a coroutine with a non-zero timeout, parks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    if timeout == 0 || !in_coroutine() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::poll(fds, n, timeout) };
    }
    poll_parked(fds, n, ms_deadline(timeout))
}

/// Hooked `ppoll(2)`: parks like `poll` when no signal mask is given.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    if mask.is_null() && in_coroutine() {
        // SAFETY: a non-null `ts` is valid (the caller's contract).
        let zero = !ts.is_null() && unsafe { (*ts).tv_sec == 0 && (*ts).tv_nsec == 0 };
        if !zero && let Ok(deadline) = ts_deadline(ts) {
            return poll_parked(fds, n, deadline);
        }
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::ppoll(fds, n, ts, mask) }
}

/// Hooked `select(2)`: parks like `poll`; on return the sets and the
/// timeout (the time left, as Linux does) are updated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    let parks = in_coroutine()
        && (0..=libc::FD_SETSIZE as c_int).contains(&nfds)
        // SAFETY: a non-null `tv` is valid (the caller's contract).
        && (tv.is_null() || unsafe {
            let t = *tv;
            t.tv_sec >= 0 && (0..1_000_000).contains(&t.tv_usec) && (t.tv_sec, t.tv_usec) != (0, 0)
        });
    if !parks {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::select(nfds, r, w, e, tv) };
    }
    // SAFETY: checked valid above.
    let deadline = (!tv.is_null()).then(|| unsafe {
        let t = *tv;
        Instant::now().checked_add(Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000))
    });
    let deadline = deadline.flatten();
    // SAFETY: the caller's sets are valid or null.
    let copy = |s: *mut fd_set| (!s.is_null()).then(|| unsafe { *s });
    let (r0, w0, e0) = (copy(r), copy(w), copy(e));
    let entry = errno();
    let mut list = Vec::new();
    for fd in 0..nfds {
        let has = |s: &Option<fd_set>| {
            // SAFETY: `fd` is below FD_SETSIZE.
            s.as_ref().is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) })
        };
        let mut ev = 0;
        if has(&r0) {
            ev |= libc::POLLIN as u32;
        }
        if has(&w0) {
            ev |= libc::POLLOUT as u32;
        }
        if has(&e0) {
            ev |= libc::POLLPRI as u32;
        }
        if ev != 0 {
            list.push((fd, ev));
        }
    }
    let restore = |dst: *mut fd_set, src: &Option<fd_set>| {
        if let Some(s) = src {
            // SAFETY: `dst` is the caller's valid set (non-null: `src` was
            // copied from it).
            unsafe { *dst = *s };
        }
    };
    let res = park_on(&list, deadline, || {
        restore(r, &r0);
        restore(w, &w0);
        restore(e, &e0);
        let mut zero = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: the caller's sets, a zero timeout.
        let n = unsafe { real::select(nfds, r, w, e, &mut zero) };
        (n != 0).then(|| (n, errno()))
    });
    if !tv.is_null() {
        let left = deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        });
        // SAFETY: the caller's valid timeval.
        unsafe {
            (*tv).tv_sec = left.as_secs() as libc::time_t;
            (*tv).tv_usec = left.subsec_micros() as libc::suseconds_t;
        }
    }
    match res {
        Some((n, err)) => {
            set_errno(if n < 0 { err } else { entry });
            n
        }
        None => {
            for s in [r, w, e] {
                if !s.is_null() {
                    // SAFETY: the caller's valid set.
                    unsafe { libc::FD_ZERO(s) };
                }
            }
            set_errno(entry);
            0
        }
    }
}

#[cold]
fn epoll_parked(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    deadline: Option<Instant>,
) -> c_int {
    let entry = errno();
    let r = park_on(&[(epfd, libc::POLLIN as u32)], deadline, || {
        // SAFETY: the caller's arguments, with a zero timeout.
        let r = unsafe { real::epoll_wait(epfd, events, max, 0) };
        (r != 0).then(|| (r, errno()))
    });
    match r {
        Some((r, e)) => {
            set_errno(if r < 0 { e } else { entry });
            r
        }
        None => {
            set_errno(entry);
            0
        }
    }
}

/// Hooked `epoll_wait(2)` (a C library's own event loop): parks on the
/// epoll fd itself.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    if timeout == 0 || !in_coroutine() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::epoll_wait(epfd, events, max, timeout) };
    }
    epoll_parked(epfd, events, max, ms_deadline(timeout))
}

/// Hooked `epoll_pwait(2)`: parks like `epoll_wait` when no signal mask
/// is given.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    if timeout == 0 || !mask.is_null() || !in_coroutine() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::epoll_pwait(epfd, events, max, timeout, mask) };
    }
    epoll_parked(epfd, events, max, ms_deadline(timeout))
}
