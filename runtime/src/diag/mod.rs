//! Diagnostics: wait reasons, the coroutine dump, deadlock detection and
//! the leak report (Go's goroutine dump, "all goroutines are asleep" and
//! goroutine-leak profile).
//!
//! - `wait.rs`: what every park records (operation, caller's line, since
//!   when) for coroutines and for threads blocked in goro calls.
//! - `dump.rs`: the Go-style grouped report ([`dump`](crate::dump)).
//! - `deadlock.rs`: the "nothing can ever run again" check.
//! - `leaks.rs`: coroutines that can never be woken.
//! - `owner.rs`: who holds a lock and which lock a coroutine waits for
//!   (the leak report's wait-for edges).
//! - `signal.rs`: the opt-in dump on a signal.
//!
//! # The clocks
//!
//! Times here are measured from one process-wide epoch (taken on first
//! use). Coroutines stamp their waits with the *coarse tick*: milliseconds
//! since the epoch, refreshed by workers at each maintenance round (every
//! 61 picks), when a worker wakes, and by the watchdog's monitor thread at
//! each of its rounds. Reading it is one relaxed load, which is what keeps
//! a park's record under its 2 ns budget; reading `Instant::now()` there
//! would cost 20 ns or more.

pub(crate) mod deadlock;
pub(crate) mod dump;
pub(crate) mod leaks;
pub(crate) mod owner;
pub(crate) mod signal;
pub(crate) mod wait;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use deadlock::DeadlockAction;
pub use dump::{dump, dump_to};
pub use leaks::{Leak, leaks};
pub use wait::{WaitInfo, WaitKind};

static EPOCH: OnceLock<Instant> = OnceLock::new();
static COARSE_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// The coarse tick (see "The clocks").
#[inline(always)]
pub(crate) fn coarse_tick() -> u64 {
    COARSE_MS.load(Ordering::Relaxed)
}

/// Reads the clock into the coarse tick.
pub(crate) fn refresh_coarse() {
    let ms = epoch().elapsed().as_millis() as u64;
    // Never backwards (two refreshers may race).
    COARSE_MS.fetch_max(ms, Ordering::Relaxed);
}

/// Microseconds since the epoch, exact (threads' waits).
pub(crate) fn micros_now() -> u64 {
    epoch().elapsed().as_micros() as u64
}

pub(crate) fn instant_of_ms(ms: u64) -> Instant {
    epoch() + Duration::from_millis(ms)
}

pub(crate) fn instant_of_us(us: u64) -> Instant {
    epoch() + Duration::from_micros(us)
}

/// The calling thread's kernel id (0 where there is none).
pub(crate) fn gettid() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions and cannot fail.
        unsafe { libc::gettid() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Kernel ids of the threads the runtime started (workers, the watchdog,
/// the blocking pool, the signal thread): threads that never call user
/// code except through coroutines or blocking jobs, both of which the
/// deadlock check sees.
static RUNTIME_TIDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Called first thing by every thread the runtime starts.
pub(crate) fn runtime_thread_started() {
    RUNTIME_TIDS.lock().push(gettid());
}

/// Called by a runtime thread that exits (blocking-pool threads do).
pub(crate) fn runtime_thread_exits() {
    let me = gettid();
    RUNTIME_TIDS.lock().retain(|&t| t != me);
}

pub(crate) fn is_runtime_thread(tid: i32) -> bool {
    RUNTIME_TIDS.lock().contains(&tid)
}

/// Writes `bytes` to file descriptor 2 with `write(2)`, bypassing std's
/// stderr lock (a report may be written while another thread holds it).
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice of `bytes.len()` bytes that
        // `write` only reads; a bad fd 2 makes it fail, nothing worse.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
