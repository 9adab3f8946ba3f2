//! Socket hooks: creation, IO, connect/accept, close, the `dup` family and
//! the calls that change a socket's blocking flag or timeouts.
//!
//! Every IO hook has the same shape. It asks [`blocking_socket`] whether
//! the fd is a tracked socket the program treats as blocking (one table
//! lookup); if not, or if the call says `MSG_DONTWAIT`, it calls the
//! original. Otherwise [`emulate`] decides: outside a coroutine, on a
//! socket the hook never made non-blocking, the original runs as is (the
//! kernel blocks the thread); in a coroutine the socket is made
//! non-blocking first (once). Then [`io`] tries the call and, on `EAGAIN`,
//! waits in [`wait_loop`]: parked on the socket's reactor registration in
//! a coroutine, in `poll(2)` on a plain thread.

use std::time::Instant;

use goro_runtime::reactor::Interest;
use libc::{
    EAGAIN, EBADF, EINPROGRESS, EINTR, MSG_DONTWAIT, MSG_WAITALL, O_NONBLOCK, SOCK_NONBLOCK,
    SOCK_STREAM, c_int, c_ulong, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t,
};

use super::fdtable::{self, FdState, GORO_NONBLOCK, HookReg, STREAM, USER_NONBLOCK};
use super::{deadline_in, errno, in_coroutine, poll, real, set_errno, sys};

const SOCK_TYPE_MASK: c_int = 0xf;
/// `SO_RCVTIMEO_NEW`/`SO_SNDTIMEO_NEW` (64-bit time on every ABI; the
/// same layout as `timeval` on the 64-bit targets this crate supports).
const SO_RCVTIMEO_NEW: c_int = 66;
const SO_SNDTIMEO_NEW: c_int = 67;

/// What an IO hook on `fd` does (see the module docs): `None` calls the
/// original unchanged; `Some((slot, flags, in a coroutine))` emulates a
/// blocking call on a socket the program treats as blocking.
///
/// This is the check every hooked IO call makes, so it is kept to one
/// load of the fd's flags word (a static slot for fds below
/// `fdtable::DIRECT`), then one thread-local load when the socket is a
/// tracked blocking one; everything else is out of line.
#[inline(always)]
fn must_emulate(fd: c_int) -> Option<(&'static FdState, u32, bool)> {
    let st = fdtable::get(fd)?;
    let f = st.flags();
    if f & (fdtable::TRACKED | USER_NONBLOCK) != fdtable::TRACKED {
        return None;
    }
    let co = in_coroutine();
    if f & GORO_NONBLOCK != 0 {
        return Some((st, f, co));
    }
    if co {
        first_in_coroutine(fd, st, f)
    } else {
        None
    }
}

/// The first emulated call on a user-blocking socket in a coroutine:
/// turns the real `O_NONBLOCK` on (if that fails the call blocks for
/// real).
#[cold]
#[inline(never)]
fn first_in_coroutine(
    fd: c_int,
    st: &'static FdState,
    f: u32,
) -> Option<(&'static FdState, u32, bool)> {
    make_nonblocking(fd, st).then_some((st, f | GORO_NONBLOCK, true))
}

/// Whether to emulate blocking on this user-blocking socket (`Some(in a
/// coroutine)`) or let the original block for real (`None`).
#[inline]
fn emulate(fd: c_int, st: &FdState, flags: u32) -> Option<bool> {
    let co = in_coroutine();
    if flags & GORO_NONBLOCK != 0 {
        return Some(co);
    }
    if co && make_nonblocking(fd, st) {
        Some(true)
    } else {
        None
    }
}

/// Turns the real `O_NONBLOCK` on under a user-blocking socket.
#[cold]
fn make_nonblocking(fd: c_int, st: &FdState) -> bool {
    let e = errno();
    // SAFETY: plain fcntl calls on an fd the caller passed us.
    let ok = unsafe {
        let fl = real::fcntl(fd, libc::F_GETFL, 0);
        fl >= 0
            && (fl & O_NONBLOCK != 0
                || real::fcntl(fd, libc::F_SETFL, (fl | O_NONBLOCK) as c_ulong) == 0)
    };
    set_errno(e);
    if ok {
        st.set(GORO_NONBLOCK);
    }
    ok
}

/// A call's deadline, computed when it first has to wait.
#[derive(Clone, Copy)]
enum Deadline {
    Unset,
    At(Option<Instant>),
}

impl Deadline {
    fn get(&mut self, st: &FdState, dir: Interest) -> Option<Instant> {
        match *self {
            Deadline::At(at) => at,
            Deadline::Unset => {
                let at = deadline_in(st.timeout(dir));
                *self = Deadline::At(at);
                at
            }
        }
    }
}

/// An emulated call: tries `op(0)` and returns at once when the socket
/// was ready (the common case: the call, made directly (`sys.rs`), and a
/// test of its result; `errno` is not touched). Otherwise, out of line,
/// waits (`EAGAIN`) and, for a blocking stream transfer of `len` bytes
/// (`Some`), repeats `op(done)` until everything moved, the peer closed
/// (a 0), or an error or the timeout cut it short (then the count moved
/// so far, if any, as the kernel reports it).
///
/// `op` has the kernel's contract (`sys.rs`, invariant 2): a count, or
/// `-errno`.
#[inline(always)]
fn attempt(
    fd: c_int,
    st: &FdState,
    dir: Interest,
    len: Option<usize>,
    op: impl Fn(usize) -> ssize_t,
) -> ssize_t {
    let r = op(0);
    if r >= 0 {
        if len.is_none_or(|len| r == 0 || r as usize >= len) {
            return r;
        }
    } else if r != -(EAGAIN as ssize_t) {
        return failed(r);
    }
    after_first(fd, st, dir, len, r, &op)
}

/// Turns a kernel result `-errno` into libc's: `errno` set, `-1`.
#[cold]
#[inline(never)]
fn failed(r: ssize_t) -> ssize_t {
    set_errno(-r as c_int);
    -1
}

/// The rest of [`attempt`]: `r` is the first result, `-EAGAIN` or a
/// partial count of a stream transfer. `errno` is still the caller's.
#[cold]
#[inline(never)]
fn after_first(
    fd: c_int,
    st: &FdState,
    dir: Interest,
    len: Option<usize>,
    r: ssize_t,
    raw: &dyn Fn(usize) -> ssize_t,
) -> ssize_t {
    // The waiting helpers take libc's contract.
    let op = |done: usize| {
        let r = raw(done);
        if r < 0 {
            set_errno(-r as c_int);
            -1
        } else {
            r
        }
    };
    let entry = errno();
    let mut deadline = Deadline::Unset;
    let r = if r < 0 {
        wait_loop(
            fd,
            st,
            in_coroutine(),
            dir,
            &mut deadline,
            entry,
            &mut || op(0),
        )
    } else {
        r
    };
    let Some(len) = len else { return r };
    if r <= 0 || r as usize >= len {
        return r;
    }
    let entry = errno();
    let mut done = r as usize;
    while done < len {
        let r = io(fd, st, dir, &mut deadline, || op(done));
        if r <= 0 {
            if r < 0 {
                set_errno(entry);
            }
            break;
        }
        done += r as usize;
    }
    done as ssize_t
}

/// Tries `op`, waiting on `EAGAIN` (see the module docs). On a ready
/// socket this is the caller's `errno` read (kept for a call that parks
/// and then succeeds), the call and a test of its result.
#[inline(always)]
fn io(
    fd: c_int,
    st: &FdState,
    dir: Interest,
    deadline: &mut Deadline,
    mut op: impl FnMut() -> ssize_t,
) -> ssize_t {
    let entry = errno();
    let r = op();
    if r >= 0 || errno() != EAGAIN {
        return r;
    }
    // Whether to park or poll is read only now that the call must wait:
    // every emulated socket is non-blocking underneath, so a ready one
    // needs no more than the flags word the hook already read.
    wait_loop(fd, st, in_coroutine(), dir, deadline, entry, &mut op)
}

/// The waiting half of [`io`]: returns the first result of `op` that is
/// not `EAGAIN`, or `EAGAIN` when the timeout passes; sets `errno` last
/// (restoring `entry` on success).
#[cold]
#[inline(never)]
fn wait_loop(
    fd: c_int,
    st: &FdState,
    co: bool,
    dir: Interest,
    deadline: &mut Deadline,
    entry: c_int,
    op: &mut dyn FnMut() -> ssize_t,
) -> ssize_t {
    let at = deadline.get(st, dir);
    let res = if co {
        match st.registration(fd) {
            Ok(hr) => {
                let res = park_loop(&hr, dir, at, op);
                // May run the deferred close (and so touch errno): drop
                // before errno is set.
                drop(hr);
                res
            }
            // Registered by someone else (or not pollable by epoll):
            // wait through a private epoll set instead.
            Err(_) => poll::park_on(&[(fd, events(dir))], at, || {
                let r = op();
                if r >= 0 {
                    return Some(Ok(r));
                }
                let e = errno();
                (e != EAGAIN).then_some(Err(e))
            })
            .unwrap_or(Err(EAGAIN)),
        }
    } else {
        loop {
            if !poll_one(fd, dir, at) {
                break Err(EAGAIN);
            }
            let r = op();
            if r >= 0 {
                break Ok(r);
            }
            let e = errno();
            if e != EAGAIN {
                break Err(e);
            }
        }
    };
    match res {
        Ok(r) => {
            set_errno(entry);
            r
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// Parks on the socket's registration until `op` stops saying `EAGAIN`
/// (the reactor's sequence protocol: read the sequence, try, wait for it
/// to move).
fn park_loop(
    hr: &HookReg,
    dir: Interest,
    at: Option<Instant>,
    op: &mut dyn FnMut() -> ssize_t,
) -> Result<ssize_t, c_int> {
    loop {
        if hr.closed() {
            return Err(EBADF);
        }
        let seen = hr.reg().seq(dir);
        let r = op();
        if r >= 0 {
            return Ok(r);
        }
        let e = errno();
        if e != EAGAIN {
            return Err(e);
        }
        match hr.reg().wait(dir, seen, at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(EAGAIN),
            Err(_) => return Err(EBADF),
        }
    }
}

fn events(dir: Interest) -> u32 {
    match dir {
        Interest::Readable => (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) as u32,
        Interest::Writable => libc::POLLOUT as u32,
    }
}

/// Blocks the thread in `poll(2)` until `fd` is ready for `dir` (or has an
/// error to report); `false` once `at` passes.
fn poll_one(fd: c_int, dir: Interest, at: Option<Instant>) -> bool {
    loop {
        let ms = match at {
            None => -1,
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    return false;
                }
                (at - now)
                    .as_nanos()
                    .div_ceil(1_000_000)
                    .min(i32::MAX as u128) as c_int
            }
        };
        let mut p = libc::pollfd {
            fd,
            events: events(dir) as i16,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { real::poll(&mut p, 1, ms) };
        if n > 0 {
            return true;
        }
        if n < 0 && errno() != EINTR {
            // Let the operation itself report the problem.
            return true;
        }
    }
}

/// Whether `fd` is ready for `dir` right now.
fn ready_now(fd: c_int, dir: Interest) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: events(dir) as i16,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { real::poll(&mut p, 1, 0) != 0 }
}

/// Starts tracking `fd`, a new socket of type `ty` (as passed to
/// `socket`), made non-blocking by the hook if `goro_nb`.
fn track(fd: c_int, ty: c_int, goro_nb: bool) {
    let Some(s) = fdtable::get_or_create(fd) else {
        return;
    };
    let mut flags = 0;
    if ty & SOCK_TYPE_MASK == SOCK_STREAM {
        flags |= STREAM;
    }
    if ty & SOCK_NONBLOCK != 0 {
        flags |= USER_NONBLOCK;
    }
    if goro_nb {
        flags |= GORO_NONBLOCK;
    }
    s.start(flags);
}

/// `new` is a fresh number for the same open file as `from` (the `dup`
/// family), or for something the hook does not track.
fn adopt(new: c_int, from: Option<&FdState>) {
    match from {
        Some(f) => {
            if let Some(s) = fdtable::get_or_create(new) {
                f.copy_to(s);
            }
        }
        None => {
            if let Some((s, _)) = fdtable::tracked(new) {
                // A stale slot (its close was not seen): forget it.
                if let Some(r) = s.reset() {
                    drop(r);
                }
            }
        }
    }
}

// ---- the hooks ----

/// Hooked `socket(2)`: tracks the socket; in a coroutine creates it
/// non-blocking underneath.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let add = ty & SOCK_NONBLOCK == 0 && in_coroutine();
    let real_ty = if add { ty | SOCK_NONBLOCK } else { ty };
    // SAFETY: the caller's arguments, passed on.
    let fd = unsafe { real::socket(domain, real_ty, protocol) };
    if fd >= 0 {
        track(fd, ty, add);
    }
    fd
}

/// Hooked `socketpair(2)`: tracks both ends.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    let add = ty & SOCK_NONBLOCK == 0 && in_coroutine();
    let real_ty = if add { ty | SOCK_NONBLOCK } else { ty };
    // SAFETY: the caller's arguments, passed on.
    let r = unsafe { real::socketpair(domain, real_ty, protocol, sv) };
    if r == 0 {
        // SAFETY: on success the kernel wrote two fds to `sv`.
        let (a, b) = unsafe { (*sv, *sv.add(1)) };
        track(a, ty, add);
        track(b, ty, add);
    }
    r
}

/// Hooked `connect(2)`: a blocking connect parks until it completes (or
/// fails with the real error, or `SO_SNDTIMEO` passes: `EINPROGRESS`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if let Some((st, _, co)) = must_emulate(fd) {
        return connect_blocking(fd, st, co, addr, len);
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::connect(fd, addr, len) }
}

#[cold]
fn connect_blocking(
    fd: c_int,
    st: &FdState,
    co: bool,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    let entry = errno();
    // SAFETY: the caller's arguments, passed on.
    let r = unsafe { real::connect(fd, addr, len) };
    if r == 0 {
        return 0;
    }
    let mut deadline = Deadline::Unset;
    match errno() {
        // A Unix socket whose listener's backlog is full: a blocking
        // connect waits for room, so retry once the socket is writable.
        EAGAIN => {
            let r = wait_loop(
                fd,
                st,
                co,
                Interest::Writable,
                &mut deadline,
                entry,
                &mut || {
                    // SAFETY: as above.
                    unsafe { real::connect(fd, addr, len) as ssize_t }
                },
            );
            r as c_int
        }
        EINPROGRESS => {
            let r = wait_loop(
                fd,
                st,
                co,
                Interest::Writable,
                &mut deadline,
                entry,
                &mut || {
                    if ready_now(fd, Interest::Writable) {
                        0
                    } else {
                        set_errno(EAGAIN);
                        -1
                    }
                },
            );
            if r < 0 {
                if errno() == EAGAIN {
                    // What Linux reports when SO_SNDTIMEO ends a blocking
                    // connect.
                    set_errno(EINPROGRESS);
                }
                return -1;
            }
            let mut err: c_int = 0;
            let mut l = size_of::<c_int>() as socklen_t;
            // SAFETY: an int-sized out-parameter for SO_ERROR.
            let g = unsafe {
                real::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut err as *mut c_int).cast(),
                    &mut l,
                )
            };
            if g < 0 {
                return -1;
            }
            if err != 0 {
                set_errno(err);
                return -1;
            }
            set_errno(entry);
            0
        }
        _ => r,
    }
}

/// Hooked `accept(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { accept4(fd, addr, len, 0) }
}

/// Hooked `accept4(2)`: a blocking accept parks until a connection comes
/// (or `SO_RCVTIMEO` passes: `EAGAIN`); tracks the new socket.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let add = flags & SOCK_NONBLOCK == 0 && in_coroutine();
    let real_flags = if add { flags | SOCK_NONBLOCK } else { flags };
    // SAFETY: the caller's arguments, passed on.
    let op = || unsafe { real::accept4(fd, addr, len, real_flags) as ssize_t };
    let listener = fdtable::tracked(fd);
    let r = match listener {
        Some((st, f)) if f & USER_NONBLOCK == 0 => match emulate(fd, st, f) {
            Some(_) => io(fd, st, Interest::Readable, &mut Deadline::Unset, op),
            None => op(),
        },
        _ => op(),
    } as c_int;
    if r >= 0 {
        let stream = match listener {
            Some((_, f)) => f & STREAM != 0,
            None => sock_type(r) == SOCK_STREAM,
        };
        let ty = if stream { SOCK_STREAM } else { 0 } | (flags & SOCK_NONBLOCK);
        track(r, ty, add);
    }
    r
}

fn sock_type(fd: c_int) -> c_int {
    let e = errno();
    let mut ty: c_int = 0;
    let mut l = size_of::<c_int>() as socklen_t;
    // SAFETY: an int-sized out-parameter for SO_TYPE.
    unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut c_int).cast(),
            &mut l,
        )
    };
    set_errno(e);
    ty
}

/// The first, inline, check of an IO hook (see [`io_hook!`]).
enum Fast {
    /// Not a socket whose blocking the hook emulates: call the original.
    Pass,
    /// A blocking socket the hook already made non-blocking underneath:
    /// the common case of an emulated call.
    Emulate(&'static FdState),
    /// Anything else (an fd above `fdtable::DIRECT`, the first call on a
    /// blocking socket in a coroutine): decided out of line by
    /// [`must_emulate`].
    Slow,
}

/// Classifies a call on `fd` with one load of its flags word and, only
/// for a tracked blocking socket the hook has not made non-blocking, the
/// runtime's worker filter (the thread pointer and one shared word, no
/// thread-local read: that, in position-independent code, the compiler
/// treats as a call, which makes the hook save its arguments). Everything
/// else that may call a function is left to the emulation, so that a hook
/// ends in a tail jump, to the original or to the emulation.
#[inline(always)]
fn fast_check(fd: c_int) -> Fast {
    let i = fd as u32 as usize;
    if i >= fdtable::DIRECT {
        return Fast::Slow;
    }
    let st = fdtable::direct(i);
    let f = st.flags();
    if f & (fdtable::TRACKED | USER_NONBLOCK) != fdtable::TRACKED {
        return Fast::Pass;
    }
    if f & GORO_NONBLOCK != 0 {
        // Non-blocking underneath: try the call, and only if it must wait
        // find out whether to park (a coroutine) or poll (a thread).
        return Fast::Emulate(st);
    }
    // The exact answer is a thread-local read, which would make the hook
    // save its arguments; the worker filter reads none, and a thread it
    // cannot rule out (a worker) is decided out of line.
    if goro_runtime::reactor::may_be_in_coroutine() {
        Fast::Slow
    } else {
        Fast::Pass
    }
}

/// Defines a hooked IO function: the exported hook is the inline
/// [`fast_check`] (after the `MSG_DONTWAIT` test, where the call has
/// flags) ending in a tail call, either of the original or of the
/// emulation, which is a function of its own out of line.
macro_rules! io_hook {
    (
        $(#[$m:meta])*
        fn $name:ident($fd:ident: $fdty:ty $(, $arg:ident: $ty:ty)*) -> $ret:ty;
        $(dontwait($flags:ident);)?
        emulated $emu:ident(
            $dir:ident,
            |$f:ident| $len:expr,
            |$done:ident| $op:expr
        )
    ) => {
        $(#[$m])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($fd: $fdty $(, $arg: $ty)*) -> $ret {
            // SAFETY: the caller's arguments, passed on.
            let original = || unsafe { real::$name($fd $(, $arg)*) };
            $(
                if $flags & MSG_DONTWAIT != 0 {
                    return original();
                }
            )?
            match fast_check($fd) {
                Fast::Pass => original(),
                // SAFETY: the caller's arguments, passed on, and the slot
                // `fast_check` found.
                Fast::Emulate(st) => unsafe { $emu($fd, $($arg,)* st) },
                // SAFETY: the caller's arguments, passed on.
                Fast::Slow => unsafe { $emu($fd, $($arg,)* std::ptr::null()) },
            }
        }

        #[doc = concat!(
            "`", stringify!($name), "` past [`fast_check`]: `hot` is the \
             slot [`Fast::Emulate`] found, null to decide with \
             [`must_emulate`]. (`extern \"C\"` like the hook, so that the \
             hook's call of it can be a tail jump.)"
        )]
        #[inline(never)]
        unsafe extern "C" fn $emu(
            $fd: $fdty,
            $($arg: $ty,)*
            hot: *const FdState,
        ) -> $ret {
            // SAFETY: a non-null `hot` is a `&'static FdState` from
            // `fast_check`.
            let st = match unsafe { hot.as_ref() } {
                Some(st) => st,
                None => match must_emulate($fd) {
                    Some((st, _, _)) => st,
                    // SAFETY: the caller's arguments, passed on.
                    None => return unsafe { real::$name($fd $(, $arg)*) },
                },
            };
            let $f = st.flags();
            let len: Option<usize> = $len;
            // SAFETY: the caller's arguments, passed on; `done <= n` where
            // it offsets the caller's buffer (see `attempt`).
            let op = move |$done: usize| unsafe { $op };
            attempt($fd, st, Interest::$dir, len, op)
        }
    };
}

io_hook! {
    /// Hooked `read(2)`: parks on a blocking socket; anything else passes
    /// through.
    fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t;
    emulated read_emulated(Readable, |_f| None, |done| sys::read(fd, buf.byte_add(done), n - done))
}

io_hook! {
    /// Hooked `readv(2)`.
    fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t;
    emulated readv_emulated(Readable, |_f| None, |_done| sys::readv(fd, iov, cnt))
}

io_hook! {
    /// Hooked `write(2)`: on a blocking stream socket, writes everything.
    fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t;
    emulated write_emulated(
        Writable,
        |f| (f & STREAM != 0).then_some(n),
        |done| sys::write(fd, buf.byte_add(done), n - done)
    )
}

io_hook! {
    /// Hooked `writev(2)` (a short count is possible, as POSIX allows).
    fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t;
    emulated writev_emulated(Writable, |_f| None, |_done| sys::writev(fd, iov, cnt))
}

io_hook! {
    /// Hooked `recv(2)` (`MSG_WAITALL` on a stream waits for all of it).
    fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t;
    dontwait(flags);
    emulated recv_emulated(
        Readable,
        |f| (flags & MSG_WAITALL != 0 && f & STREAM != 0).then_some(n),
        |done| sys::recv(fd, buf.byte_add(done), n - done, flags)
    )
}

io_hook! {
    /// Hooked `recvfrom(2)`.
    fn recvfrom(
        fd: c_int,
        buf: *mut c_void,
        n: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t
    ) -> ssize_t;
    dontwait(flags);
    emulated recvfrom_emulated(
        Readable,
        |f| (flags & MSG_WAITALL != 0 && f & STREAM != 0).then_some(n),
        |done| sys::recvfrom(fd, buf.byte_add(done), n - done, flags, addr, len)
    )
}

io_hook! {
    /// Hooked `recvmsg(2)`.
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    dontwait(flags);
    emulated recvmsg_emulated(Readable, |_f| None, |_done| sys::recvmsg(fd, msg, flags))
}

io_hook! {
    /// Hooked `send(2)`: on a blocking stream socket, sends everything.
    fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t;
    dontwait(flags);
    emulated send_emulated(
        Writable,
        |f| (f & STREAM != 0).then_some(n),
        |done| sys::send(fd, buf.byte_add(done), n - done, flags)
    )
}

io_hook! {
    /// Hooked `sendto(2)`.
    fn sendto(
        fd: c_int,
        buf: *const c_void,
        n: size_t,
        flags: c_int,
        addr: *const sockaddr,
        len: socklen_t
    ) -> ssize_t;
    dontwait(flags);
    emulated sendto_emulated(
        Writable,
        |f| (f & STREAM != 0).then_some(n),
        |done| sys::sendto(fd, buf.byte_add(done), n - done, flags, addr, len)
    )
}

io_hook! {
    /// Hooked `sendmsg(2)` (a short count is possible, as POSIX allows).
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    dontwait(flags);
    emulated sendmsg_emulated(Writable, |_f| None, |_done| sys::sendmsg(fd, msg, flags))
}

/// Hooked `close(2)`: forgets the socket and ends its registration before
/// the number is released (see `fdtable`, invariants 2 and 4).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if let Some((st, _)) = fdtable::tracked(fd)
        && let Some(reg) = st.reset()
    {
        return HookReg::close(reg);
    }
    // SAFETY: the caller's fd, passed on.
    unsafe { real::close(fd) }
}

/// Hooked `dup(2)`: the copy inherits the tracked state.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's fd, passed on.
    let r = unsafe { real::dup(fd) };
    if r >= 0 {
        adopt(r, fdtable::tracked(fd).map(|t| t.0));
    }
    r
}

/// Ends the registration of a tracked `new` that a `dup2`/`dup3` is about
/// to replace (the kernel closes it inside the call).
fn before_replace(old: c_int, new: c_int) {
    if old != new
        && let Some((st, _)) = fdtable::tracked(new)
    {
        st.drop_registration();
    }
}

/// Hooked `dup2(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    before_replace(old, new);
    // SAFETY: the caller's fds, passed on.
    let r = unsafe { real::dup2(old, new) };
    if r >= 0 && old != new {
        adopt(r, fdtable::tracked(old).map(|t| t.0));
    }
    r
}

/// Hooked `dup3(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    before_replace(old, new);
    // SAFETY: the caller's fds, passed on.
    let r = unsafe { real::dup3(old, new, flags) };
    if r >= 0 {
        adopt(r, fdtable::tracked(old).map(|t| t.0));
    }
    r
}

/// Hooked `fcntl(2)`: keeps the user's `O_NONBLOCK` apart from the real
/// one and tracks `F_DUPFD` copies. (C declares it variadic; every command
/// passes at most one integer or pointer, which arrives in `arg` on the
/// supported ABIs, see `real::sys_fcntl`.)
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { fcntl_impl(fd, cmd, arg) }
}

/// Hooked `fcntl64` (glibc's name for `fcntl` under 64-bit file offsets).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { fcntl_impl(fd, cmd, arg) }
}

unsafe fn fcntl_impl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    match cmd {
        libc::F_GETFL => {
            // SAFETY: the caller's arguments, passed on.
            let r = unsafe { real::fcntl(fd, cmd, arg) };
            match fdtable::tracked(fd) {
                Some((_, f)) if r >= 0 && f & GORO_NONBLOCK != 0 && f & USER_NONBLOCK == 0 => {
                    r & !O_NONBLOCK
                }
                _ => r,
            }
        }
        libc::F_SETFL => {
            let Some((st, f)) = fdtable::tracked(fd) else {
                // SAFETY: the caller's arguments, passed on.
                return unsafe { real::fcntl(fd, cmd, arg) };
            };
            let user_nb = arg as c_int & O_NONBLOCK != 0;
            let real_arg = if f & GORO_NONBLOCK != 0 {
                arg | O_NONBLOCK as c_ulong
            } else {
                arg
            };
            // SAFETY: the caller's fd with flags that differ at most in
            // O_NONBLOCK.
            let r = unsafe { real::fcntl(fd, cmd, real_arg) };
            if r >= 0 {
                set_user_nonblock(st, user_nb);
            }
            r
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            // SAFETY: the caller's arguments, passed on.
            let r = unsafe { real::fcntl(fd, cmd, arg) };
            if r >= 0 {
                adopt(r, fdtable::tracked(fd).map(|t| t.0));
            }
            r
        }
        // SAFETY: the caller's arguments, passed on.
        _ => unsafe { real::fcntl(fd, cmd, arg) },
    }
}

fn set_user_nonblock(st: &FdState, on: bool) {
    if on {
        st.set(USER_NONBLOCK);
        st.release_idle_registration();
    } else {
        st.clear(USER_NONBLOCK);
    }
}

/// Hooked `ioctl(2)`: `FIONBIO` sets the user's blocking flag (std's
/// `set_nonblocking` uses it); everything else passes through.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    if req == libc::FIONBIO as c_ulong
        && arg != 0
        && let Some((st, f)) = fdtable::tracked(fd)
    {
        // SAFETY: FIONBIO's argument points to an int.
        let on = unsafe { *(arg as *const c_int) } != 0;
        let one: c_int = 1;
        let real_arg = if f & GORO_NONBLOCK != 0 {
            &one as *const c_int as c_ulong
        } else {
            arg
        };
        // SAFETY: FIONBIO with a pointer to a live int.
        let r = unsafe { real::ioctl(fd, req, real_arg) };
        if r >= 0 {
            set_user_nonblock(st, on);
        }
        return r;
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::ioctl(fd, req, arg) }
}

/// Hooked `setsockopt(2)`: records `SO_RCVTIMEO`/`SO_SNDTIMEO` for the
/// waits the hook emulates (and sets them in the kernel as well, which is
/// why `getsockopt` needs no hook).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    let r = unsafe { real::setsockopt(fd, level, name, val, len) };
    if r == 0
        && level == libc::SOL_SOCKET
        && !val.is_null()
        && len as usize >= size_of::<libc::timeval>()
        && let Some(dir) = match name {
            libc::SO_RCVTIMEO | SO_RCVTIMEO_NEW => Some(Interest::Readable),
            libc::SO_SNDTIMEO | SO_SNDTIMEO_NEW => Some(Interest::Writable),
            _ => None,
        }
        && let Some((st, _)) = fdtable::tracked(fd)
    {
        // SAFETY: the kernel accepted `val` as a timeval of `len` bytes.
        let tv = unsafe { std::ptr::read_unaligned(val.cast::<libc::timeval>()) };
        st.set_timeout(dir, timeval_nanos(tv));
    }
    r
}

/// Linux's reading of a socket timeout: zero is "forever"; a negative one
/// does not wait at all (kept as 1 ns).
fn timeval_nanos(tv: libc::timeval) -> u64 {
    if tv.tv_sec < 0 {
        return 1;
    }
    (tv.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add((tv.tv_usec.max(0) as u64).saturating_mul(1000))
}
