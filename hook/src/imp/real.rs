//! The original libc functions behind the hooks.
//!
//! # Invariants
//!
//! 1. Every call the hook layer makes to a function it also defines goes
//!    through this module. Calling `libc::recv` from this crate would bind
//!    to the crate's own `recv` and recurse.
//! 2. An original is looked up once, lazily, with `dlsym(RTLD_NEXT, name)`
//!    on its first call, which may come before `main` (std polls fds 0-2
//!    while it starts). The address is kept in a plain `AtomicUsize`: no
//!    lock (a hook that runs inside `dlsym`, or in a signal handler while
//!    another thread resolves, could deadlock on one), no allocation by
//!    this code. Two threads that race to resolve the same name get the
//!    same address and store it twice, which is harmless.
//! 3. Where `dlsym` yields nothing (a static glibc build, where
//!    `RTLD_NEXT` finds no next object), the original is a raw
//!    `libc::syscall` with the same contract. The few functions that are
//!    not system calls (`getaddrinfo`, `gethostbyname*`) then fail with a
//!    lookup error instead of recursing.

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{
    addrinfo, c_char, c_int, c_long, c_uint, c_ulong, c_void, clockid_t, epoll_event, fd_set,
    hostent, iovec, msghdr, nfds_t, pollfd, sigset_t, size_t, sockaddr, socklen_t, ssize_t,
    timespec, timeval, useconds_t,
};

/// Looks `name` (NUL-terminated) up in the objects after this one, or
/// returns `fallback`.
#[cold]
fn resolve(name: &'static [u8], fallback: usize) -> usize {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: `name` is a NUL-terminated static string; `dlsym` with
    // `RTLD_NEXT` only reads it and the loader's tables.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if p.is_null() { fallback } else { p as usize }
}

macro_rules! originals {
    ($(
        $(#[$m:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $fallback:ident;
    )*) => {$(
        $(#[$m])*
        #[inline]
        pub(crate) unsafe fn $name($($arg: $ty),*) -> $ret {
            type F = unsafe extern "C" fn($($ty),*) -> $ret;
            static ADDR: AtomicUsize = AtomicUsize::new(0);
            /// The first call: resolves, then calls (out of line, and of
            /// the C ABI like the hooks, so that the resolved path is one
            /// load and a tail jump and this one a tail jump too).
            #[cold]
            #[inline(never)]
            unsafe extern "C" fn first($($arg: $ty),*) -> $ret {
                let a = resolve(concat!(stringify!($name), "\0").as_bytes(), $fallback as F as usize);
                ADDR.store(a, Ordering::Relaxed);
                // SAFETY: as below.
                let f = unsafe { std::mem::transmute::<usize, F>(a) };
                // SAFETY: the caller upholds the C function's contract.
                unsafe { f($($arg),*) }
            }
            let a = ADDR.load(Ordering::Relaxed);
            if a == 0 {
                // SAFETY: the caller upholds the C function's contract.
                return unsafe { first($($arg),*) };
            }
            // SAFETY: `a` is either libc's function of this name, whose C
            // prototype is `F`, or our fallback of type `F` (invariant 3).
            let f = unsafe { std::mem::transmute::<usize, F>(a) };
            // SAFETY: the caller upholds the C function's contract.
            unsafe { f($($arg),*) }
        }
    )*};
}

originals! {
    /// socket(2)
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int = sys_socket;
    /// socketpair(2)
    fn socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: *mut c_int) -> c_int = sys_socketpair;
    /// connect(2)
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int = sys_connect;
    /// accept4(2)
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int = sys_accept4;
    /// read(2)
    fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t = sys_read;
    /// readv(2)
    fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t = sys_readv;
    /// write(2)
    fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t = sys_write;
    /// writev(2)
    fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t = sys_writev;
    /// recv(2)
    fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t = sys_recv;
    /// recvfrom(2)
    fn recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t = sys_recvfrom;
    /// recvmsg(2)
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t = sys_recvmsg;
    /// send(2)
    fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t = sys_send;
    /// sendto(2)
    fn sendto(fd: c_int, buf: *const c_void, n: size_t, flags: c_int, addr: *const sockaddr, len: socklen_t) -> ssize_t = sys_sendto;
    /// sendmsg(2)
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t = sys_sendmsg;
    /// poll(2)
    fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int = sys_poll;
    /// ppoll(2)
    fn ppoll(fds: *mut pollfd, n: nfds_t, ts: *const timespec, mask: *const sigset_t) -> c_int = sys_ppoll;
    /// select(2)
    fn select(nfds: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, tv: *mut timeval) -> c_int = sys_select;
    /// epoll_wait(2)
    fn epoll_wait(epfd: c_int, events: *mut epoll_event, max: c_int, timeout: c_int) -> c_int = sys_epoll_wait;
    /// epoll_pwait(2)
    fn epoll_pwait(epfd: c_int, events: *mut epoll_event, max: c_int, timeout: c_int, mask: *const sigset_t) -> c_int = sys_epoll_pwait;
    /// nanosleep(2)
    fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int = sys_nanosleep;
    /// clock_nanosleep(2): returns the error number, not -1.
    fn clock_nanosleep(clock: clockid_t, flags: c_int, req: *const timespec, rem: *mut timespec) -> c_int = sys_clock_nanosleep;
    /// usleep(3)
    fn usleep(usec: useconds_t) -> c_int = sys_usleep;
    /// sleep(3)
    fn sleep(secs: c_uint) -> c_uint = sys_sleep;
    /// close(2)
    fn close(fd: c_int) -> c_int = sys_close;
    /// dup(2)
    fn dup(fd: c_int) -> c_int = sys_dup;
    /// dup2(2)
    fn dup2(old: c_int, new: c_int) -> c_int = sys_dup2;
    /// dup3(2)
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int = sys_dup3;
    /// setsockopt(2)
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int = sys_setsockopt;
    /// getsockopt(2)
    fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int = sys_getsockopt;
    /// getaddrinfo(3)
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int = no_getaddrinfo;
    /// gethostbyname(3)
    fn gethostbyname(name: *const c_char) -> *mut hostent = no_gethostbyname;
    /// gethostbyname2(3)
    fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent = no_gethostbyname2;
    /// gethostbyname_r(3)
    fn gethostbyname_r(name: *const c_char, ret: *mut hostent, buf: *mut c_char, len: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int = no_gethostbyname_r;
    /// gethostbyname2_r(3)
    fn gethostbyname2_r(name: *const c_char, af: c_int, ret: *mut hostent, buf: *mut c_char, len: size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int = no_gethostbyname2_r;
}

/// fcntl(2) (variadic in C; every command's argument fits a `c_ulong`).
#[inline]
pub(crate) unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    type F = unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    let mut a = ADDR.load(Ordering::Relaxed);
    if a == 0 {
        a = resolve(b"fcntl\0", sys_fcntl as *const () as usize);
        ADDR.store(a, Ordering::Relaxed);
    }
    // SAFETY: libc's `fcntl`, or our fallback, which reads its one
    // argument where a variadic call puts it (see `sys_fcntl`).
    let f = unsafe { std::mem::transmute::<usize, F>(a) };
    // SAFETY: the caller upholds fcntl's contract for `cmd`.
    unsafe { f(fd, cmd, arg) }
}

/// ioctl(2) (variadic in C; the argument is a pointer or an integer).
#[inline]
pub(crate) unsafe fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    type F = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    let mut a = ADDR.load(Ordering::Relaxed);
    if a == 0 {
        a = resolve(b"ioctl\0", sys_ioctl as *const () as usize);
        ADDR.store(a, Ordering::Relaxed);
    }
    // SAFETY: libc's `ioctl`, or our fallback (see `sys_fcntl`).
    let f = unsafe { std::mem::transmute::<usize, F>(a) };
    // SAFETY: the caller upholds ioctl's contract for `req`.
    unsafe { f(fd, req, arg) }
}

// ---- raw system call fallbacks (invariant 3) ----

fn ret_int(r: c_long) -> c_int {
    r as c_int
}

macro_rules! sys {
    ($nr:expr $(, $a:expr)*) => {
        // SAFETY: a raw system call with the arguments the caller passed
        // to the libc function it stands in for, under the same contract.
        unsafe { libc::syscall($nr $(, $a as c_long)*) }
    };
}

unsafe extern "C" fn sys_socket(d: c_int, t: c_int, p: c_int) -> c_int {
    ret_int(sys!(libc::SYS_socket, d, t, p))
}
unsafe extern "C" fn sys_socketpair(d: c_int, t: c_int, p: c_int, sv: *mut c_int) -> c_int {
    ret_int(sys!(libc::SYS_socketpair, d, t, p, sv))
}
unsafe extern "C" fn sys_connect(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int {
    ret_int(sys!(libc::SYS_connect, fd, a, l))
}
unsafe extern "C" fn sys_accept4(
    fd: c_int,
    a: *mut sockaddr,
    l: *mut socklen_t,
    f: c_int,
) -> c_int {
    ret_int(sys!(libc::SYS_accept4, fd, a, l, f))
}
unsafe extern "C" fn sys_read(fd: c_int, b: *mut c_void, n: size_t) -> ssize_t {
    sys!(libc::SYS_read, fd, b, n) as ssize_t
}
unsafe extern "C" fn sys_readv(fd: c_int, v: *const iovec, c: c_int) -> ssize_t {
    sys!(libc::SYS_readv, fd, v, c) as ssize_t
}
unsafe extern "C" fn sys_write(fd: c_int, b: *const c_void, n: size_t) -> ssize_t {
    sys!(libc::SYS_write, fd, b, n) as ssize_t
}
unsafe extern "C" fn sys_writev(fd: c_int, v: *const iovec, c: c_int) -> ssize_t {
    sys!(libc::SYS_writev, fd, v, c) as ssize_t
}
unsafe extern "C" fn sys_recv(fd: c_int, b: *mut c_void, n: size_t, f: c_int) -> ssize_t {
    sys!(libc::SYS_recvfrom, fd, b, n, f, 0usize, 0usize) as ssize_t
}
unsafe extern "C" fn sys_recvfrom(
    fd: c_int,
    b: *mut c_void,
    n: size_t,
    f: c_int,
    a: *mut sockaddr,
    l: *mut socklen_t,
) -> ssize_t {
    sys!(libc::SYS_recvfrom, fd, b, n, f, a, l) as ssize_t
}
unsafe extern "C" fn sys_recvmsg(fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t {
    sys!(libc::SYS_recvmsg, fd, m, f) as ssize_t
}
unsafe extern "C" fn sys_send(fd: c_int, b: *const c_void, n: size_t, f: c_int) -> ssize_t {
    sys!(libc::SYS_sendto, fd, b, n, f, 0usize, 0usize) as ssize_t
}
unsafe extern "C" fn sys_sendto(
    fd: c_int,
    b: *const c_void,
    n: size_t,
    f: c_int,
    a: *const sockaddr,
    l: socklen_t,
) -> ssize_t {
    sys!(libc::SYS_sendto, fd, b, n, f, a, l) as ssize_t
}
unsafe extern "C" fn sys_sendmsg(fd: c_int, m: *const msghdr, f: c_int) -> ssize_t {
    sys!(libc::SYS_sendmsg, fd, m, f) as ssize_t
}
unsafe extern "C" fn sys_poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    let ts;
    let p = if timeout < 0 {
        std::ptr::null()
    } else {
        ts = timespec {
            tv_sec: (timeout / 1000) as libc::time_t,
            tv_nsec: ((timeout % 1000) * 1_000_000) as libc::c_long,
        };
        &ts as *const timespec
    };
    ret_int(sys!(libc::SYS_ppoll, fds, n, p, 0usize, 0usize))
}
unsafe extern "C" fn sys_ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    m: *const sigset_t,
) -> c_int {
    let size = if m.is_null() { 0 } else { 8usize };
    ret_int(sys!(libc::SYS_ppoll, fds, n, ts, m, size))
}
unsafe extern "C" fn sys_select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    // pselect6 takes a timespec and does not update it; convert both ways.
    let mut ts = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let p = if tv.is_null() {
        std::ptr::null_mut()
    } else {
        // SAFETY: the caller passes a valid timeval or null.
        let t = unsafe { *tv };
        ts.tv_sec = t.tv_sec;
        ts.tv_nsec = t.tv_usec * 1000;
        &mut ts as *mut timespec
    };
    ret_int(sys!(libc::SYS_pselect6, nfds, r, w, e, p, 0usize))
}
unsafe extern "C" fn sys_epoll_wait(
    ep: c_int,
    ev: *mut epoll_event,
    max: c_int,
    t: c_int,
) -> c_int {
    ret_int(sys!(libc::SYS_epoll_pwait, ep, ev, max, t, 0usize, 0usize))
}
unsafe extern "C" fn sys_epoll_pwait(
    ep: c_int,
    ev: *mut epoll_event,
    max: c_int,
    t: c_int,
    m: *const sigset_t,
) -> c_int {
    let size = if m.is_null() { 0 } else { 8usize };
    ret_int(sys!(libc::SYS_epoll_pwait, ep, ev, max, t, m, size))
}
unsafe extern "C" fn sys_nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    ret_int(sys!(libc::SYS_nanosleep, req, rem))
}
unsafe extern "C" fn sys_clock_nanosleep(
    c: clockid_t,
    f: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    if sys!(libc::SYS_clock_nanosleep, c, f, req, rem) < 0 {
        super::errno()
    } else {
        0
    }
}
unsafe extern "C" fn sys_usleep(usec: useconds_t) -> c_int {
    let ts = timespec {
        tv_sec: (usec / 1_000_000) as libc::time_t,
        tv_nsec: ((usec % 1_000_000) * 1000) as libc::c_long,
    };
    ret_int(sys!(libc::SYS_nanosleep, &ts as *const timespec, 0usize))
}
unsafe extern "C" fn sys_sleep(secs: c_uint) -> c_uint {
    let ts = timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let mut rem = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if sys!(
        libc::SYS_nanosleep,
        &ts as *const timespec,
        &mut rem as *mut timespec
    ) < 0
    {
        rem.tv_sec as c_uint
    } else {
        0
    }
}
unsafe extern "C" fn sys_close(fd: c_int) -> c_int {
    ret_int(sys!(libc::SYS_close, fd))
}
unsafe extern "C" fn sys_dup(fd: c_int) -> c_int {
    ret_int(sys!(libc::SYS_dup, fd))
}
unsafe extern "C" fn sys_dup2(old: c_int, new: c_int) -> c_int {
    if old == new {
        // dup2 with equal fds checks `old` and returns it; dup3 refuses.
        if sys!(libc::SYS_fcntl, old, libc::F_GETFD) < 0 {
            return -1;
        }
        return new;
    }
    ret_int(sys!(libc::SYS_dup3, old, new, 0))
}
unsafe extern "C" fn sys_dup3(old: c_int, new: c_int, f: c_int) -> c_int {
    ret_int(sys!(libc::SYS_dup3, old, new, f))
}
// The two variadic fallbacks are defined with one fixed argument (Rust
// cannot define C-variadic functions on stable) and called through a
// variadic pointer: on the x86-64 and AArch64 Linux ABIs a variadic
// call passes its integer arguments in the same registers as a fixed
// one, so the callee reads the argument where the caller put it.
unsafe extern "C" fn sys_fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    ret_int(sys!(libc::SYS_fcntl, fd, cmd, arg))
}
unsafe extern "C" fn sys_ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    ret_int(sys!(libc::SYS_ioctl, fd, req, arg))
}
unsafe extern "C" fn sys_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    v: *const c_void,
    l: socklen_t,
) -> c_int {
    ret_int(sys!(libc::SYS_setsockopt, fd, level, name, v, l))
}
unsafe extern "C" fn sys_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    v: *mut c_void,
    l: *mut socklen_t,
) -> c_int {
    ret_int(sys!(libc::SYS_getsockopt, fd, level, name, v, l))
}
unsafe extern "C" fn no_getaddrinfo(
    _: *const c_char,
    _: *const c_char,
    _: *const addrinfo,
    _: *mut *mut addrinfo,
) -> c_int {
    super::set_errno(libc::ENOSYS);
    libc::EAI_SYSTEM
}
unsafe extern "C" fn no_gethostbyname(_: *const c_char) -> *mut hostent {
    std::ptr::null_mut()
}
unsafe extern "C" fn no_gethostbyname2(_: *const c_char, _: c_int) -> *mut hostent {
    std::ptr::null_mut()
}
unsafe extern "C" fn no_gethostbyname_r(
    _: *const c_char,
    _: *mut hostent,
    _: *mut c_char,
    _: size_t,
    result: *mut *mut hostent,
    _: *mut c_int,
) -> c_int {
    if !result.is_null() {
        // SAFETY: the caller passes a valid out-pointer or null.
        unsafe { *result = std::ptr::null_mut() };
    }
    libc::ENOSYS
}
unsafe extern "C" fn no_gethostbyname2_r(
    _: *const c_char,
    _: c_int,
    _: *mut hostent,
    _: *mut c_char,
    _: size_t,
    result: *mut *mut hostent,
    _: *mut c_int,
) -> c_int {
    if !result.is_null() {
        // SAFETY: the caller passes a valid out-pointer or null.
        unsafe { *result = std::ptr::null_mut() };
    }
    libc::ENOSYS
}
