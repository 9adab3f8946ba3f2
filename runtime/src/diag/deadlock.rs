//! Deadlock detection: Go's "all goroutines are asleep - deadlock!".
//!
//! # What is detected
//!
//! A *global* deadlock: a moment at which nothing in the process can ever
//! make progress again. goro declares one when all of these hold at once:
//!
//! 1. every started coroutine is parked (its park word says `PARKED`, not
//!    merely "last seen parked"), none waits for the network or for a
//!    blocking-pool job ([`WaitKind::is_external`]), and no coroutine is
//!    queued or spawned but not yet started;
//! 2. no timer is pending on any worker (no sleep, no deadline, no alarm,
//!    so no context deadline or `after` can fire);
//! 3. every worker is asleep with nothing queued;
//! 4. at least one thread is blocked in a goro wait *without* a deadline
//!    (a `rx.recv()`, `lock()`, `join()`...), with no wake-up sent to it;
//! 5. every other thread of the process is one the runtime started
//!    (workers, the watchdog, the blocking pool, the signal thread) or is
//!    itself blocked as in 4. This is read from `/proc/self/task`, so
//!    detection works on Linux only.
//!
//! Point 5 is what rules out false positives: a thread outside the
//! runtime that holds a `Sender` and will send later (after a
//! `std::thread::sleep`, a read from stdin, a `std::sync` wait...) is a
//! thread not blocked in goro, so nothing is reported while it lives.
//! The price is that a program whose other threads are merely idle in
//! non-goro waits (a test harness's main thread waiting in `std::sync`, a
//! thread pool of another library) is never reported either: the check
//! cannot know those threads will not send.
//!
//! Not detected: a deadlock among some coroutines while others run (a
//! partial deadlock: see [`leaks`](crate::leaks)); a deadlock through
//! `std::sync` locks or `std::thread::JoinHandle::join` (not goro waits:
//! the blocked-worker watchdog reports those); anything while a socket is
//! being waited on (the peer may answer).
//!
//! # How the check avoids a torn view
//!
//! The check reads everything without stopping the world, so one reading
//! can mix moments: a coroutine seen parked before a thread woke it, that
//! thread seen blocked after it did. So it reads twice, with the workers'
//! pick counters (which change at every resume) and each blocked thread's
//! wait sequence read before, between and after. If the counters are equal
//! in all three readings, no coroutine ran during the whole check; a
//! thread blocked in both readings with the same sequence and no token was
//! blocked all along (`wait.rs` invariant 3). Then at any instant between
//! the two readings every party was blocked, and only a running party can
//! wake a blocked one: nothing ever will.
//!
//! # When it runs
//!
//! When a thread has been in a goro wait without a deadline for 10 ms (on
//! that thread, before it blocks for good: a thread trading messages
//! quickly with coroutines never pays for it), and when a worker is about
//! to sleep while such a thread exists (one relaxed load otherwise). Both
//! are slow paths. So a deadlock is reported about 10 ms after it forms.
//!
//! # What happens then
//!
//! [`DeadlockAction`] (`Config::on_deadlock`, `GORO_DEADLOCK`): by default
//! the dump is printed after the line `goro: all coroutines are asleep -
//! deadlock!` and every deadlocked thread panics with that message (its
//! goro wait unwinds). `Abort` prints and aborts the process; `Report`
//! prints once and leaves the program blocked; `Off` skips the check.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::wait::{self, ThreadWait, WAITING};
use crate::scheduler::{self, Shared, idle};

/// The message of the deadlock report and panic.
pub const DEADLOCK_MESSAGE: &str = "goro: all coroutines are asleep - deadlock!";

/// What goro does when it finds a global deadlock (see the crate docs'
/// "Seeing inside: wait reasons, the dump, deadlocks"). Set with
/// [`Config::on_deadlock`](crate::Config::on_deadlock) or
/// `GORO_DEADLOCK=panic|abort|report|off`.
///
/// ```
/// let _ = goro::Config::new()
///     .on_deadlock(goro::DeadlockAction::Report)
///     .apply();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadlockAction {
    /// Print the report, then panic every deadlocked thread with
    /// `goro: all coroutines are asleep - deadlock!` (the default).
    Panic,
    /// Print the report and abort the process.
    Abort,
    /// Print the report once; leave the program as it is.
    Report,
    /// Do not look for deadlocks.
    Off,
}

const UNSET: u8 = 0;
const PANIC: u8 = 1;
const ABORT: u8 = 2;
const REPORT: u8 = 3;
const OFF: u8 = 4;

static ACTION: AtomicU8 = AtomicU8::new(UNSET);

/// Threads in a goro wait without a deadline right now (the workers' gate).
pub(crate) static UNTIMED_WAITERS: AtomicUsize = AtomicUsize::new(0);

/// One check at a time; holds the signature of the last reported deadlock.
static CHECK: Mutex<Option<Vec<u64>>> = Mutex::new(None);

pub(crate) fn set_action(a: DeadlockAction) {
    ACTION.store(
        match a {
            DeadlockAction::Panic => PANIC,
            DeadlockAction::Abort => ABORT,
            DeadlockAction::Report => REPORT,
            DeadlockAction::Off => OFF,
        },
        Ordering::Relaxed,
    );
}

/// `GORO_DEADLOCK`, parsed.
pub(crate) fn parse_action(v: &str) -> Result<DeadlockAction, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "panic" => Ok(DeadlockAction::Panic),
        "abort" => Ok(DeadlockAction::Abort),
        "report" => Ok(DeadlockAction::Report),
        "off" | "0" => Ok(DeadlockAction::Off),
        _ => Err(format!(
            "GORO_DEADLOCK={v:?} is not valid (expected panic, abort, report or off)"
        )),
    }
}

fn action() -> u8 {
    let a = ACTION.load(Ordering::Relaxed);
    if a != UNSET {
        return a;
    }
    static ENV: OnceLock<u8> = OnceLock::new();
    *ENV.get_or_init(|| match std::env::var("GORO_DEADLOCK") {
        Ok(v) => match parse_action(&v) {
            Ok(a) => {
                set_action(a);
                ACTION.load(Ordering::Relaxed)
            }
            Err(msg) => {
                eprintln!("goro: {msg}; using panic");
                PANIC
            }
        },
        Err(_) => PANIC,
    })
}

/// A thread has waited 10 ms in a goro wait with no deadline and is about
/// to block for good; its state is `WAITING`. Runs the check unless a worker is awake (then the
/// last worker to sleep runs it).
pub(crate) fn thread_waits(me: &ThreadWait) {
    let _ = me;
    UNTIMED_WAITERS.fetch_add(1, Ordering::SeqCst);
    if action() != OFF {
        let awake = scheduler::try_get().is_some_and(|rt| {
            rt.workers
                .iter()
                .any(|w| w.sleep.load(Ordering::SeqCst) == idle::AWAKE)
        });
        if !awake {
            check();
        }
    }
}

/// The thread's wait ended (however).
pub(crate) fn thread_done_waiting() {
    UNTIMED_WAITERS.fetch_sub(1, Ordering::SeqCst);
}

/// A worker is about to sleep (idle.rs): one load unless a thread waits.
#[inline]
pub(crate) fn worker_sleeps() {
    if UNTIMED_WAITERS.load(Ordering::Relaxed) > 0 && action() != OFF {
        check();
    }
}

/// Called by a thread the check marked deadlocked, after it woke.
#[track_caller]
pub(crate) fn on_deadlocked_thread() {
    panic!("{DEADLOCK_MESSAGE}");
}

/// What one reading saw, if everything was blocked.
#[derive(PartialEq, Eq)]
struct Reading {
    /// (tid, wait sequence) of each blocked thread.
    threads: Vec<(i32, u64)>,
    coroutines: usize,
}

/// The workers' pick counters.
fn counters(rt: Option<&Shared>) -> Vec<u64> {
    rt.map_or_else(Vec::new, |rt| {
        rt.workers
            .iter()
            .map(|w| w.progress.tick.load(Ordering::SeqCst) as u64)
            .collect()
    })
}

fn read(rt: Option<&Shared>) -> Option<Reading> {
    if let Some(rt) = rt {
        // 3. Every worker asleep, nothing queued.
        for w in rt.workers.iter() {
            if w.sleep.load(Ordering::SeqCst) == idle::AWAKE || !w.inbox.is_empty() {
                return None;
            }
            if !w.stealer.is_empty() {
                return None;
            }
        }
        if !rt.injector.is_empty() {
            return None;
        }
        // 2. No timer pending.
        if rt.next_timer_tick() != u64::MAX {
            return None;
        }
    }
    // 4. Blocked threads.
    let mut threads = Vec::new();
    let mut external = false;
    wait::for_each_thread(|t| {
        let state = t.state.load(Ordering::SeqCst);
        if state == WAITING && !t.token.load(Ordering::SeqCst) {
            if t.slot.kind().is_external() {
                external = true;
            }
            threads.push((t.tid.load(Ordering::Relaxed), t.seq.load(Ordering::SeqCst)));
        }
    });
    if external || threads.is_empty() {
        return None;
    }
    // 5. Every other thread is the runtime's.
    if !all_threads_accounted(&threads) {
        return None;
    }
    // 1. Every started coroutine parked on a goro primitive, none fresh.
    let mut coroutines = 0usize;
    let mut alive = false;
    if let Some(rt) = rt {
        rt.registry.for_each(|t| {
            coroutines += 1;
            if !t.is_parked_now() || t.wait.kind().is_external() {
                alive = true;
            }
        });
        if alive || crate::stats().coroutines != coroutines as u64 {
            return None;
        }
    }
    // Timers again, after the threads (a thread that set one and then
    // blocked is seen here).
    if rt.is_some_and(|rt| rt.next_timer_tick() != u64::MAX) {
        return None;
    }
    threads.sort_unstable();
    Some(Reading {
        threads,
        coroutines,
    })
}

#[cfg(target_os = "linux")]
fn all_threads_accounted(blocked: &[(i32, u64)]) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    for entry in dir {
        let Ok(entry) = entry else { return false };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            return false;
        };
        if !blocked.iter().any(|&(t, _)| t == tid) && !super::is_runtime_thread(tid) {
            return false;
        }
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn all_threads_accounted(_blocked: &[(i32, u64)]) -> bool {
    false
}

/// Two readings with the counters around them (module docs, "How the
/// check avoids a torn view"): `Some` if everything was blocked for good.
fn settled() -> Option<(Vec<u64>, Reading)> {
    let rt = scheduler::try_get();
    let a = counters(rt);
    let first = read(rt)?;
    let b = counters(rt);
    let second = read(rt)?;
    let c = counters(rt);
    (a == b && b == c && first == second).then_some((c, second))
}

/// Whether the process is globally deadlocked right now (`leaks`).
pub(crate) fn is_settled() -> bool {
    settled().is_some()
}

/// The check.
fn check() {
    let Some(mut last) = CHECK.try_lock() else {
        // Another check is running; it sees what we would.
        return;
    };
    let Some((c, second)) = settled() else { return };
    let mut signature = c.clone();
    signature.extend(second.threads.iter().map(|&(t, s)| ((t as u64) << 32) ^ s));
    if last.as_ref() == Some(&signature) {
        return;
    }
    *last = Some(signature);
    drop(last);
    report(&second);
}

fn report(reading: &Reading) {
    let mut text = format!("{DEADLOCK_MESSAGE}\n\n").into_bytes();
    let _ = super::dump::dump_to(&mut text);
    super::write_stderr(&text);
    match action() {
        ABORT => std::process::abort(),
        PANIC => {
            let mut marked: Vec<Arc<ThreadWait>> = Vec::new();
            wait::for_each_thread_arc(|t| {
                let tid = t.tid.load(Ordering::Relaxed);
                if reading.threads.iter().any(|&(x, _)| x == tid) {
                    marked.push(t.clone());
                }
            });
            for t in marked {
                t.deadlocked.store(true, Ordering::SeqCst);
                t.unpark();
            }
        }
        _ => {}
    }
}
