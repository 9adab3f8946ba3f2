//! The blocked-worker watchdog: Go's sysmon and Loom's pinned-thread
//! report, done for goro.
//!
//! # What it is for
//!
//! A coroutine that calls something goro cannot park (`std::sync::Mutex`
//! and `Condvar`, `JoinHandle::join` and other futex waits,
//! `std::thread::sleep`, a plain `std::net` read without the `hook`
//! feature, a blocking call made inside libc itself) or that computes for a
//! long time without a switch holds its worker thread, and every coroutine
//! that lives on that worker waits for it. goro cannot take the worker
//! back: a started coroutine never changes threads (the crate docs, rule
//! 1), and nothing preempts a thread inside a system call. What it can do
//! is say so, instead of leaving a program that hangs or stalls in silence.
//! So a monitor thread reports every worker that has run one coroutine
//! without a switch for longer than the threshold
//! (`Config::blocked_worker_threshold`, `GORO_BLOCKED_WORKER_MS`; default
//! [`DEFAULT_THRESHOLD`]), once per episode, and counts the episodes
//! (`Stats::blocked_worker_episodes`). It never interrupts, unblocks or
//! preempts anything.
//!
//! # How it sees a stuck worker
//!
//! Each worker publishes in `Progress` its pick counter `tick` (advanced at
//! every pick, and when a coroutine is resumed again at once, so it changes
//! at every resume) and `running`, the id of the coroutine it is inside
//! `resume` for (0 between resumes). The monitor samples both every
//! `threshold / 2`. An *episode* is a run of samples in which one worker
//! shows the same nonzero `running` and the same `tick`: the worker has been
//! inside one resume of one coroutine all along. It starts at the first such
//! sample and ends at the first that differs (the worker switched). It is
//! reported once, when the monitor has seen it last `threshold`: between
//! `threshold` and `1.5 × threshold` after the coroutine's last switch, and
//! the duration in the report is the part the monitor saw (a lower bound).
//!
//! A report cannot be false about the switch: two samples a threshold apart
//! with the same tick and coroutine mean no resume happened in between
//! (wrapping the 32-bit tick within half a threshold would take billions of
//! picks). The one thing that looks like a stuck worker without being one
//! is a worker thread the OS did not run for a whole threshold (a badly
//! overloaded machine); it is reported as running. When the monitor itself
//! was not run on time (its sleep of a period took more than two), it
//! restarts its clocks rather than count time it did not watch.
//!
//! # What it costs the workers
//!
//! Two relaxed stores per resume (`running` before and after), into the
//! cache line where the worker already stores `tick` at every pick: plain
//! moves on x86-64 and AArch64, no fence, no read-modify-write, no clock
//! read. The monitor reads that line twice per threshold, so it changes
//! cores about as often. A start time per resume would have cost a clock
//! read on every switch; sampling gives the duration to within half a
//! threshold for nothing.
//!
//! # No idle polling
//!
//! The monitor samples every period only while some worker is awake. When
//! every worker sleeps (`idle.rs`: `PARKED` or `POLLING`) no coroutine runs
//! and none can be stuck, so the monitor sleeps with no timeout, and an
//! idle runtime stays at ~0% CPU. Going to sleep and being woken follow
//! Dekker's pattern, as in `idle.rs`: the monitor stores `parked = true`,
//! then reads every worker's `sleep` and sleeps only if none is `AWAKE`; a
//! worker leaving its sleep stores `AWAKE` (in `idle::sleep`), then reads
//! `parked` and, if it is set, clears it and unparks the monitor (all
//! SeqCst). Either the monitor sees the awake worker or the worker sees the
//! sleeping monitor. Workers pay one load per return from idle (which made
//! a system call to sleep anyway) and one `unpark` per sleep of the
//! monitor; since the monitor then sleeps a whole period before it may
//! sleep for good again, a runtime that goes idle and busy all the time
//! unparks it at most once per period.
//!
//! # What the report says
//!
//! The coroutine's id and name (looked up in the registry by id: a stuck
//! coroutine is live, so it is there), how long, and, on Linux, what the
//! worker thread is doing: the first field of `/proc/self/task/<tid>/syscall`
//! (a system call number, named for the common ones, or `running`) and its
//! `wchan` (where the kernel has it waiting). A thread seen running is
//! looked at a few more times, a millisecond apart, so that a coroutine
//! which mostly waits is not reported as running for the moment it woke
//! (`inspect`). Both are read after the episode was seen; if the worker
//! switched meanwhile nothing is reported, so a report never gives another
//! coroutine's reason. The line goes to
//! file descriptor 2 with `write(2)` directly, not through `std::io::Stderr`:
//! a coroutine stuck while printing holds std's stderr lock, and a report
//! must not wait for it (nor land in a test harness's captured output).
//!
//! Rejected: signalling the stuck thread to take a backtrace (unwinding in
//! a signal handler is not async-signal-safe, and the interrupted system
//! call returns `EINTR` to code that may not retry it); a start time per
//! resume (a clock read per switch, see above); a timer on the reactor
//! (the reactor owner may be the stuck worker).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::{Shared, idle};
use crate::config::Reporter;

/// The threshold when neither `Config` nor `GORO_BLOCKED_WORKER_MS` sets
/// one (see `Config::blocked_worker_threshold` for why one second).
pub(crate) const DEFAULT_THRESHOLD: Duration = Duration::from_secs(1);

/// The shortest nonzero threshold: the monitor samples twice per
/// threshold, and the environment variable counts whole milliseconds.
pub(crate) const MIN_THRESHOLD: Duration = Duration::from_millis(1);

/// A worker the blocked-worker watchdog found stuck in one coroutine, as
/// given to [`Config::on_blocked_worker`](crate::Config::on_blocked_worker).
/// Its `Display` is the line the watchdog prints by default.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockedWorker {
    /// The worker's index (its thread is named `goro-worker-<index>`).
    pub worker: usize,
    /// The coroutine's id ([`JoinHandle::id`](crate::JoinHandle::id)).
    pub coroutine: u64,
    /// The coroutine's name ([`Builder::name`](crate::Builder::name)).
    pub name: Option<String>,
    /// How long the watchdog has seen the coroutine hold the worker without
    /// a switch: at least the threshold; it started up to half a threshold
    /// earlier.
    pub stuck_for: Duration,
    /// What the worker thread is doing, as far as the OS tells.
    pub blocked_in: BlockedIn,
    /// Where the kernel has the thread waiting (Linux's `wchan`, a kernel
    /// function name such as `futex_wait_queue` or `hrtimer_nanosleep`), if
    /// it tells.
    pub wchan: Option<String>,
}

/// What a blocked worker's thread is doing ([`BlockedWorker::blocked_in`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockedIn {
    /// Inside a system call: its number on this architecture, and its name
    /// for the common ones (`futex`, `recvfrom`, `clock_nanosleep`, ...).
    Syscall {
        /// The system call number.
        number: i64,
        /// Its name, if goro knows it.
        name: Option<&'static str>,
    },
    /// Running user code, not inside a system call: a loop that does not
    /// switch, or (on an overloaded machine) a thread the OS has not run.
    Running,
    /// The OS does not tell (not Linux, or `/proc` is not readable).
    Unknown,
}

impl fmt::Display for BlockedWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "goro: worker {} has run coroutine '{}' (id {}) for {:.1?} without switching; ",
            self.worker,
            self.name.as_deref().unwrap_or("<unnamed>"),
            self.coroutine,
            self.stuck_for,
        )?;
        match self.blocked_in {
            BlockedIn::Syscall {
                name: Some(name), ..
            } => write!(f, "it is blocked in the system call {name}")?,
            BlockedIn::Syscall { number, name: None } => {
                write!(f, "it is blocked in system call {number}")?
            }
            BlockedIn::Running => write!(f, "it is running, not in a system call")?,
            BlockedIn::Unknown => write!(f, "it is blocked or busy")?,
        }
        if let Some(w) = &self.wchan {
            write!(f, " (kernel wait: {w})")?;
        }
        write!(
            f,
            ". Other coroutines on this worker wait until it switches: in coroutines, use \
             goro's sync, net and sleep (or the hook feature), goro::blocking for other \
             blocking calls, and yield_now in long loops (GORO_BLOCKED_WORKER_MS=0 turns \
             this report off)"
        )
    }
}

/// The watchdog's shared state (in `Shared`).
pub(crate) struct Watchdog {
    /// Zero when the watchdog is off (no monitor thread).
    threshold: Duration,
    reporter: Option<Reporter>,
    /// Set by the monitor before it sleeps with no timeout; cleared by the
    /// worker that wakes it (see "No idle polling").
    parked: AtomicBool,
    /// The monitor thread, set by itself before it first sleeps.
    thread: OnceLock<Thread>,
    /// Episodes reported (`Stats::blocked_worker_episodes`).
    episodes: AtomicU64,
}

/// What the monitor last saw of one worker.
#[derive(Clone, Copy)]
struct Sample {
    tick: u32,
    running: u64,
    /// When the monitor first saw this (tick, running).
    since: Instant,
    /// Whether this episode was reported.
    reported: bool,
}

impl Watchdog {
    pub(crate) fn new(threshold: Duration, reporter: Option<Reporter>) -> Watchdog {
        Watchdog {
            threshold,
            reporter,
            parked: AtomicBool::new(false),
            thread: OnceLock::new(),
            episodes: AtomicU64::new(0),
        }
    }

    /// Episodes reported since start.
    pub(crate) fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }

    /// Called by a worker after it left `idle::sleep` (its `sleep` is
    /// `AWAKE` again): wakes the monitor if it sleeps with no timeout.
    #[inline]
    pub(crate) fn worker_awake(&self) {
        if self.parked.load(Ordering::SeqCst)
            && self.parked.swap(false, Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    /// Sleeps with no timeout if every worker sleeps; returns whether it
    /// slept.
    fn sleep_while_idle(&self, rt: &Shared) -> bool {
        self.parked.store(true, Ordering::SeqCst);
        let all_asleep = rt
            .workers
            .iter()
            .all(|w| w.sleep.load(Ordering::SeqCst) != idle::AWAKE);
        if !all_asleep {
            self.parked.store(false, Ordering::SeqCst);
            return false;
        }
        // Spurious wake-ups and stale unpark tokens are possible: only the
        // worker that cleared the flag ends the sleep.
        while self.parked.load(Ordering::SeqCst) {
            thread::park();
        }
        true
    }

    /// Looks at worker `index` (see "How it sees a stuck worker").
    fn check(&self, rt: &Shared, index: usize, seen: &mut Sample, now: Instant) {
        let progress = &rt.workers[index].progress;
        let tick = progress.tick.load(Ordering::Relaxed);
        let running = progress.running.load(Ordering::Relaxed);
        if running == 0 || tick != seen.tick || running != seen.running {
            *seen = Sample {
                tick,
                running,
                since: now,
                reported: false,
            };
            return;
        }
        let stuck_for = now.duration_since(seen.since);
        if seen.reported || stuck_for < self.threshold {
            return;
        }
        seen.reported = true;
        let (blocked_in, wchan) = inspect(progress.tid.load(Ordering::Relaxed));
        if progress.tick.load(Ordering::Relaxed) != tick
            || progress.running.load(Ordering::Relaxed) != running
        {
            // It switched while we looked: what we read may be another
            // coroutine's, and the episode is over anyway.
            return;
        }
        let name = rt
            .registry
            .find(running, index)
            .and_then(|t| t.name().map(str::to_owned));
        self.episodes.fetch_add(1, Ordering::Relaxed);
        self.report(&BlockedWorker {
            worker: index,
            coroutine: running,
            name,
            stuck_for,
            blocked_in,
            wchan,
        });
    }

    fn report(&self, blocked: &BlockedWorker) {
        match &self.reporter {
            Some(Reporter(f)) => {
                if catch_unwind(AssertUnwindSafe(|| f(blocked))).is_err() {
                    write_stderr(&format!(
                        "goro: the blocked-worker reporter panicked; its report was: {blocked}\n"
                    ));
                }
            }
            None => write_stderr(&format!("{blocked}\n")),
        }
    }
}

/// Starts the monitor thread unless the watchdog is off. Not fatal if the
/// OS refuses the thread: the runtime runs without the watchdog and says
/// so.
pub(crate) fn launch(rt: &'static Shared) {
    if rt.watchdog.threshold.is_zero() {
        return;
    }
    let spawned = thread::Builder::new()
        .name("goro-watchdog".into())
        .spawn(move || monitor(rt));
    if let Err(e) = spawned {
        write_stderr(&format!(
            "goro: cannot start the blocked-worker watchdog thread ({e}); running without it\n"
        ));
    }
}

/// The monitor thread's loop.
fn monitor(rt: &'static Shared) {
    crate::diag::runtime_thread_started();
    let wd = &rt.watchdog;
    let _ = wd.thread.set(thread::current());
    let period = wd.threshold / 2;
    let start = Instant::now();
    let mut seen = vec![
        Sample {
            tick: 0,
            running: 0,
            since: start,
            reported: false,
        };
        rt.workers.len()
    ];
    let mut last = start;
    loop {
        let now = Instant::now();
        crate::diag::refresh_coarse();
        if now.duration_since(last) > 2 * period {
            // Not run on time, or back from sleeping while every worker
            // slept: do not count time that was not watched.
            for s in &mut seen {
                s.since = now;
            }
        }
        let mut awake = false;
        for (index, s) in seen.iter_mut().enumerate() {
            awake |= rt.workers[index].sleep.load(Ordering::Relaxed) == idle::AWAKE;
            wd.check(rt, index, s, now);
        }
        // After the checks, so that the time a report took (its looks at
        // /proc) does not count as the monitor running late.
        last = Instant::now();
        if awake || !wd.sleep_while_idle(rt) {
            thread::park_timeout(period);
        }
    }
}

/// Writes `text` to file descriptor 2 with `write(2)`, bypassing std's
/// stderr lock (see "What the report says"). Gives up on an error.
fn write_stderr(text: &str) {
    let mut buf = text.as_bytes();
    while !buf.is_empty() {
        // SAFETY: `buf` is a live byte slice of `buf.len()` bytes; `write`
        // only reads it. A closed or invalid fd 2 makes it fail, nothing
        // worse.
        let n = unsafe { libc::write(2, buf.as_ptr().cast(), buf.len()) };
        if n > 0 {
            buf = &buf[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else {
            return;
        }
    }
}

/// How many more times a thread seen running is looked at, and how far
/// apart (see `inspect`).
const RUNNING_RESAMPLES: u32 = 4;
const RESAMPLE_GAP: Duration = Duration::from_millis(1);

/// What the thread with OS id `tid` is doing, and its `wchan`.
///
/// One look is a point sample. A coroutine that mostly waits in a system
/// call but wakes now and then (a loop around `thread::sleep`, whose timer
/// may fire in step with the monitor's own) can be caught in the moment it
/// runs; so a thread seen running is looked at up to `RUNNING_RESAMPLES`
/// more times, `RESAMPLE_GAP` apart, and the first system call seen wins.
/// A loop that never enters the kernel is still reported as running, a few
/// milliseconds later.
#[cfg(target_os = "linux")]
fn inspect(tid: i32) -> (BlockedIn, Option<String>) {
    if tid <= 0 {
        return (BlockedIn::Unknown, None);
    }
    let dir = format!("/proc/self/task/{tid}");
    let look = || {
        std::fs::read_to_string(format!("{dir}/syscall"))
            .map_or(BlockedIn::Unknown, |s| parse_syscall(&s))
    };
    let mut blocked_in = look();
    for _ in 0..RUNNING_RESAMPLES {
        if blocked_in != BlockedIn::Running {
            break;
        }
        thread::sleep(RESAMPLE_GAP);
        blocked_in = look();
    }
    let wchan = std::fs::read_to_string(format!("{dir}/wchan"))
        .ok()
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty() && w != "0");
    (blocked_in, wchan)
}

#[cfg(not(target_os = "linux"))]
fn inspect(_tid: i32) -> (BlockedIn, Option<String>) {
    (BlockedIn::Unknown, None)
}

/// Parses `/proc/<pid>/task/<tid>/syscall`: `running` (on a CPU), `-1 ...`
/// (not in a system call), or the system call number and its arguments.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_syscall(text: &str) -> BlockedIn {
    match text.split_whitespace().next() {
        Some("running") => BlockedIn::Running,
        Some(field) => match field.parse::<i64>() {
            Ok(-1) => BlockedIn::Running,
            Ok(number) if number >= 0 => BlockedIn::Syscall {
                number,
                name: syscall_name(number),
            },
            _ => BlockedIn::Unknown,
        },
        None => BlockedIn::Unknown,
    }
}

/// The name of a common blocking system call on this architecture.
#[cfg(target_os = "linux")]
fn syscall_name(number: i64) -> Option<&'static str> {
    use libc::*;
    const NAMES: &[(c_long, &str)] = &[
        (SYS_futex, "futex"),
        (SYS_futex_waitv, "futex_waitv"),
        (SYS_read, "read"),
        (SYS_write, "write"),
        (SYS_readv, "readv"),
        (SYS_writev, "writev"),
        (SYS_pread64, "pread64"),
        (SYS_pwrite64, "pwrite64"),
        (SYS_preadv, "preadv"),
        (SYS_pwritev, "pwritev"),
        (SYS_recvfrom, "recvfrom"),
        (SYS_recvmsg, "recvmsg"),
        (SYS_recvmmsg, "recvmmsg"),
        (SYS_sendto, "sendto"),
        (SYS_sendmsg, "sendmsg"),
        (SYS_sendmmsg, "sendmmsg"),
        (SYS_accept, "accept"),
        (SYS_accept4, "accept4"),
        (SYS_connect, "connect"),
        (SYS_ppoll, "ppoll"),
        (SYS_pselect6, "pselect6"),
        (SYS_epoll_pwait, "epoll_pwait"),
        (SYS_epoll_pwait2, "epoll_pwait2"),
        (SYS_io_uring_enter, "io_uring_enter"),
        (SYS_nanosleep, "nanosleep"),
        (SYS_clock_nanosleep, "clock_nanosleep"),
        (SYS_wait4, "wait4"),
        (SYS_waitid, "waitid"),
        (SYS_rt_sigtimedwait, "rt_sigtimedwait"),
        (SYS_rt_sigsuspend, "rt_sigsuspend"),
        (SYS_flock, "flock"),
        (SYS_fcntl, "fcntl"),
        (SYS_ioctl, "ioctl"),
        (SYS_fsync, "fsync"),
        (SYS_fdatasync, "fdatasync"),
        (SYS_openat, "openat"),
        (SYS_close, "close"),
        (SYS_splice, "splice"),
        (SYS_sendfile, "sendfile"),
        (SYS_copy_file_range, "copy_file_range"),
        (SYS_getrandom, "getrandom"),
        (SYS_msgrcv, "msgrcv"),
        (SYS_msgsnd, "msgsnd"),
        (SYS_semop, "semop"),
        (SYS_semtimedop, "semtimedop"),
        (SYS_mq_timedreceive, "mq_timedreceive"),
        (SYS_mq_timedsend, "mq_timedsend"),
        (SYS_sched_yield, "sched_yield"),
        (SYS_mmap, "mmap"),
        (SYS_munmap, "munmap"),
        (SYS_madvise, "madvise"),
        #[cfg(target_arch = "x86_64")]
        (SYS_poll, "poll"),
        #[cfg(target_arch = "x86_64")]
        (SYS_select, "select"),
        #[cfg(target_arch = "x86_64")]
        (SYS_epoll_wait, "epoll_wait"),
        #[cfg(target_arch = "x86_64")]
        (SYS_pause, "pause"),
        #[cfg(target_arch = "x86_64")]
        (SYS_open, "open"),
    ];
    // `c_long` is `i32` on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    NAMES
        .iter()
        .find(|&&(n, _)| i64::from(n) == number)
        .map(|&(_, name)| name)
}

#[cfg(not(target_os = "linux"))]
fn syscall_name(_number: i64) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::useless_conversion)] // `c_long` is `i32` on 32-bit targets.
    fn proc_syscall_lines_parse() {
        assert_eq!(parse_syscall("running\n"), BlockedIn::Running, "on a CPU");
        assert_eq!(
            parse_syscall("-1 0x7ffd0 0x55d0\n"),
            BlockedIn::Running,
            "in user space"
        );
        assert_eq!(parse_syscall(""), BlockedIn::Unknown);
        assert_eq!(parse_syscall("what"), BlockedIn::Unknown);
        #[cfg(target_os = "linux")]
        {
            let line = format!(
                "{} 0x3 0x7f 0x1000 0x0 0x0 0x0 0x7ffe 0x7f\n",
                libc::SYS_futex
            );
            assert_eq!(
                parse_syscall(&line),
                BlockedIn::Syscall {
                    number: i64::from(libc::SYS_futex),
                    name: Some("futex")
                }
            );
            assert_eq!(
                syscall_name(i64::from(libc::SYS_clock_nanosleep)),
                Some("clock_nanosleep")
            );
            assert_eq!(syscall_name(99_999), None);
        }
    }

    #[test]
    fn the_report_names_the_coroutine_and_the_call() {
        let b = BlockedWorker {
            worker: 1,
            coroutine: 7,
            name: Some("client".into()),
            stuck_for: Duration::from_millis(1500),
            blocked_in: BlockedIn::Syscall {
                number: 45,
                name: Some("recvfrom"),
            },
            wchan: Some("wait_woken".into()),
        };
        let line = b.to_string();
        assert!(
            line.starts_with(
                "goro: worker 1 has run coroutine 'client' (id 7) for 1.5s without switching; \
                 it is blocked in the system call recvfrom (kernel wait: wait_woken). "
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let unnamed = BlockedWorker {
            name: None,
            blocked_in: BlockedIn::Running,
            wchan: None,
            ..b
        };
        assert!(
            unnamed
                .to_string()
                .contains("coroutine '<unnamed>' (id 7) for 1.5s without switching; it is running"),
            "{unnamed}"
        );
    }
}
