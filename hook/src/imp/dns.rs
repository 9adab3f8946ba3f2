//! Name lookups (`getaddrinfo`, `gethostbyname*`): in a coroutine they run
//! on goro's blocking pool while the coroutine parks, since glibc's
//! resolver blocks inside libc where no hook can see it. `errno` and
//! `h_errno`, thread-local to the pool thread that ran the lookup, are
//! copied back to the caller's thread.

use libc::{addrinfo, c_char, c_int, hostent, size_t};

use super::{errno, in_coroutine, real, set_errno};

unsafe extern "C" {
    /// glibc's `h_errno` slot of the calling thread.
    fn __h_errno_location() -> *mut c_int;
}

/// Raw pointers the caller keeps valid while it is parked in
/// `goro_runtime::blocking` (which does not return before the job ran).
struct Parked<T>(T);
// SAFETY: see above: the pointers are used only while the caller, who
// owns what they point to, waits for the job.
unsafe impl<T> Send for Parked<T> {}

fn h_errno() -> c_int {
    // SAFETY: this thread's h_errno slot.
    unsafe { *__h_errno_location() }
}

fn set_h_errno(v: c_int) {
    // SAFETY: this thread's h_errno slot.
    unsafe { *__h_errno_location() = v };
}

/// Runs `f` on the blocking pool, then copies its thread's errno and
/// h_errno to the caller's.
fn on_pool<T>(f: impl FnOnce() -> T + Send) -> T
where
    T: Send,
{
    let (v, e, h) = goro_runtime::blocking(move || {
        let v = f();
        (v, errno(), h_errno())
    });
    set_errno(e);
    set_h_errno(h);
    v
}

/// Hooked `getaddrinfo(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if !in_coroutine() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    }
    let a = Parked((node, service, hints, res));
    on_pool(move || {
        let a = a;
        // SAFETY: the caller's arguments, valid while it waits (`Parked`).
        unsafe { real::getaddrinfo(a.0.0, a.0.1, a.0.2, a.0.3) }
    })
}

/// Hooked `gethostbyname(3)` (its result lives in libc's static buffer,
/// as it always does).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    if !in_coroutine() {
        // SAFETY: passed on.
        return unsafe { real::gethostbyname(name) };
    }
    let a = Parked(name);
    on_pool(move || {
        let a = a;
        // SAFETY: as in `getaddrinfo`.
        Parked(unsafe { real::gethostbyname(a.0) })
    })
    .0
}

/// Hooked `gethostbyname2(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent {
    if !in_coroutine() {
        // SAFETY: passed on.
        return unsafe { real::gethostbyname2(name, af) };
    }
    let a = Parked(name);
    on_pool(move || {
        let a = a;
        // SAFETY: as in `getaddrinfo`.
        Parked(unsafe { real::gethostbyname2(a.0, af) })
    })
    .0
}

/// Hooked `gethostbyname_r(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    len: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !in_coroutine() {
        // SAFETY: passed on.
        return unsafe { real::gethostbyname_r(name, ret, buf, len, result, h_errnop) };
    }
    let a = Parked((name, ret, buf, result, h_errnop));
    on_pool(move || {
        let a = a;
        // SAFETY: as in `getaddrinfo`.
        unsafe { real::gethostbyname_r(a.0.0, a.0.1, a.0.2, len, a.0.3, a.0.4) }
    })
}

/// Hooked `gethostbyname2_r(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    len: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !in_coroutine() {
        // SAFETY: passed on.
        return unsafe { real::gethostbyname2_r(name, af, ret, buf, len, result, h_errnop) };
    }
    let a = Parked((name, ret, buf, result, h_errnop));
    on_pool(move || {
        let a = a;
        // SAFETY: as in `getaddrinfo`.
        unsafe { real::gethostbyname2_r(a.0.0, af, a.0.1, a.0.2, len, a.0.3, a.0.4) }
    })
}
