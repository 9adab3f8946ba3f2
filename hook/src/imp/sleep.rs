//! `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`: in a coroutine they
//! park it on the worker's timing wheel (`goro_runtime::sleep`, millisecond
//! resolution, never early) instead of sleeping the worker.
//!
//! An invalid request (a null pointer, a negative time, nanoseconds out
//! of range) goes to the original, which reports it at once without
//! sleeping. A parked sleep is never cut short by a signal, so it never
//! fails with `EINTR` and leaves `rem` alone.

use std::time::Duration;

use libc::{c_int, c_uint, clockid_t, timespec, useconds_t};

use super::{errno, in_coroutine, real, set_errno};

/// A valid request as a duration.
fn duration(ts: *const timespec) -> Option<Duration> {
    if ts.is_null() {
        return None;
    }
    // SAFETY: the caller passes a valid timespec or null.
    let t = unsafe { *ts };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return None;
    }
    Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
}

/// Parks for `d`, keeping the caller's errno.
fn park_for(d: Duration) {
    let e = errno();
    goro_runtime::sleep(d);
    set_errno(e);
}

/// Hooked `nanosleep(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    if in_coroutine()
        && let Some(d) = duration(req)
    {
        park_for(d);
        return 0;
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::nanosleep(req, rem) }
}

/// Hooked `clock_nanosleep(2)` for the realtime, monotonic and boottime
/// clocks, relative or absolute (`TIMER_ABSTIME`); other clocks pass
/// through. Returns an error number, like the original.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let clock_ok = matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME
    );
    if clock_ok
        && in_coroutine()
        && let Some(d) = duration(req)
    {
        let d = if flags & libc::TIMER_ABSTIME != 0 {
            let mut now = timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let e = errno();
            // SAFETY: a valid out-pointer for a supported clock.
            unsafe { libc::clock_gettime(clock, &mut now) };
            set_errno(e);
            let now = Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec as u32);
            d.saturating_sub(now)
        } else {
            d
        };
        park_for(d);
        return 0;
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::clock_nanosleep(clock, flags, req, rem) }
}

/// Hooked `usleep(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usleep(usec: useconds_t) -> c_int {
    if in_coroutine() {
        park_for(Duration::from_micros(usec as u64));
        return 0;
    }
    // SAFETY: passed on.
    unsafe { real::usleep(usec) }
}

/// Hooked `sleep(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if in_coroutine() {
        park_for(Duration::from_secs(secs as u64));
        return 0;
    }
    // SAFETY: passed on.
    unsafe { real::sleep(secs) }
}
