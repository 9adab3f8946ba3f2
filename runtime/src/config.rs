//! Runtime configuration: `Config` in code, `GORO_WORKERS`,
//! `GORO_STACK_SIZE`, `GORO_STACK_GUARDS` and `GORO_BLOCKED_WORKER_MS` in
//! the environment.
//!
//! Values set with [`Config::apply`] win over the environment; the
//! environment fills what was not set; defaults fill the rest. Configuration
//! is read exactly once, when the runtime starts (on first use), and an
//! unparseable environment value stops start-up with a message naming the
//! variable and the value, rather than silently falling back to a default.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::reactor::IoBackend;
use crate::scheduler::watchdog::{BlockedWorker, DEFAULT_THRESHOLD, MIN_THRESHOLD};
use crate::stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};

/// The most workers a runtime may have.
pub const MAX_WORKERS: usize = 1024;

/// Runtime settings, applied before the runtime starts.
///
/// ```
/// // In main, before anything spawns:
/// let _ = goro::Config::new().workers(2).stack_size(128 << 10).apply();
/// ```
///
/// | setting | method | environment | default |
/// |---|---|---|---|
/// | worker threads | [`workers`](Config::workers) | `GORO_WORKERS` | available parallelism |
/// | stack size | [`stack_size`](Config::stack_size) | `GORO_STACK_SIZE` | 64 KiB |
/// | guard layout | | `GORO_STACK_GUARDS` | `light` |
/// | blocked-worker report after | [`blocked_worker_threshold`](Config::blocked_worker_threshold) | `GORO_BLOCKED_WORKER_MS` (0 = off) | 1 s |
/// | shared stacks by default | [`shared_stacks`](Config::shared_stacks) | `GORO_SHARED_STACKS` (`1`/`0`) | off |
/// | shared stacks per worker | | `GORO_SHARED_STACKS_PER_WORKER` | 4 |
/// | blocked-worker reporter | [`on_blocked_worker`](Config::on_blocked_worker) | | one line on stderr |
/// | on a global deadlock | [`on_deadlock`](Config::on_deadlock) | `GORO_DEADLOCK` (`panic`, `abort`, `report`, `off`) | panic the blocked threads |
/// | dump on a signal | [`dump_signal`](Config::dump_signal) | `GORO_DUMP_SIGNAL` (`QUIT`, `USR1`, ...) | none |
/// | IO backend | [`io`](Config::io) | `GORO_IO` (`uring`, `epoll`, `auto`) | io_uring where it works, else epoll |
#[derive(Clone, Debug, Default)]
pub struct Config {
    workers: Option<usize>,
    stack_size: Option<usize>,
    unguarded_stacks: bool,
    blocked_worker_threshold: Option<Duration>,
    blocked_worker_reporter: Option<Reporter>,
    shared_stacks: Option<bool>,
    deadlock: Option<crate::DeadlockAction>,
    dump_signal: Option<Option<i32>>,
    io: Option<IoBackend>,
}

/// A user's blocked-worker reporter ([`Config::on_blocked_worker`]).
#[derive(Clone)]
pub(crate) struct Reporter(pub(crate) Arc<dyn Fn(&BlockedWorker) + Send + Sync>);

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter(..)")
    }
}

/// Why [`Config::apply`] refused a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The runtime already started (something spawned, slept or parked
    /// first), so the configuration can no longer change.
    AlreadyStarted,
    /// The worker count is 0 or above [`MAX_WORKERS`].
    InvalidWorkers(usize),
    /// The stack size is outside `MIN_STACK_SIZE..=MAX_STACK_SIZE`.
    InvalidStackSize(usize),
    /// The blocked-worker threshold is above zero but below one
    /// millisecond ([`Config::blocked_worker_threshold`]).
    InvalidBlockedWorkerThreshold(Duration),
    /// [`Config::dump_signal`] named a signal that cannot be caught (or
    /// no signal at all).
    InvalidSignal(i32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::AlreadyStarted => write!(
                f,
                "the goro runtime has already started; apply Config before the first spawn, sleep or park"
            ),
            ConfigError::InvalidWorkers(n) => {
                write!(f, "invalid worker count {n}: expected 1 to {MAX_WORKERS}")
            }
            ConfigError::InvalidStackSize(n) => write!(
                f,
                "invalid stack size {n} bytes: expected {MIN_STACK_SIZE} to {MAX_STACK_SIZE}"
            ),
            ConfigError::InvalidBlockedWorkerThreshold(d) => write!(
                f,
                "invalid blocked-worker threshold {d:?}: expected zero (off) or at least {MIN_THRESHOLD:?}"
            ),
            ConfigError::InvalidSignal(s) => {
                write!(f, "invalid dump signal {s}: it cannot be caught")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

struct Pending {
    config: Config,
    started: bool,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    config: Config {
        workers: None,
        stack_size: None,
        unguarded_stacks: false,
        blocked_worker_threshold: None,
        blocked_worker_reporter: None,
        shared_stacks: None,
        deadlock: None,
        dump_signal: None,
        io: None,
    },
    started: false,
});

impl Config {
    /// A configuration that changes nothing.
    pub fn new() -> Config {
        Config::default()
    }

    /// Number of worker threads (default: `GORO_WORKERS`, else the
    /// available parallelism).
    pub fn workers(mut self, n: usize) -> Config {
        self.workers = Some(n);
        self
    }

    /// Default coroutine stack size in bytes (default: `GORO_STACK_SIZE`,
    /// else 64 KiB). Rounded up to whole pages.
    pub fn stack_size(mut self, bytes: usize) -> Config {
        self.stack_size = Some(bytes);
        self
    }

    /// Lets every coroutine of the process run on a stack without a guard
    /// page of its own when no guarded stack can be had: what
    /// [`Builder::allow_unguarded_stack`](crate::Builder::allow_unguarded_stack)
    /// does for one coroutine, for all of them, including those spawned
    /// with `go!`/`spawn` and by libraries.
    ///
    /// It matters only under mapped guard pages (kernels before Linux
    /// 6.13, or `GORO_STACK_GUARDS=mapped`), where the process otherwise
    /// holds at most `vm.max_map_count / 8` live coroutines; it is how a
    /// million coroutines run on such a kernel without raising
    /// `vm.max_map_count`. There is deliberately no environment variable
    /// for it: whoever sets the environment is not the code whose
    /// soundness depends on it.
    ///
    /// # Safety
    ///
    /// Every coroutine spawned in this process, by any code, must never
    /// use more stack than its stack size; see
    /// [`Builder::allow_unguarded_stack`](crate::Builder::allow_unguarded_stack)
    /// for what an overflow on a canary stack does (it corrupts another
    /// coroutine's stack, possibly undetected). A program that cannot vouch
    /// for every coroutine it runs should opt in per coroutine instead.
    pub unsafe fn allow_unguarded_stacks(mut self) -> Config {
        self.unguarded_stacks = true;
        self
    }

    /// Whether `spawn`, `go!` and a [`Builder`](crate::Builder) that says
    /// neither [`shared_stack`](crate::Builder::shared_stack) nor
    /// [`private_stack`](crate::Builder::private_stack) run the coroutine
    /// on a shared stack (default: `GORO_SHARED_STACKS=1`, else private
    /// stacks). See [`Builder::shared_stack`](crate::Builder::shared_stack)
    /// for what that costs and forbids. `GORO_SHARED_STACKS_PER_WORKER`
    /// (1 to 64, default 4) sets how many shared stacks each worker has
    /// per stack size.
    ///
    /// ```
    /// // In main, before anything spawns: ten million idle coroutines fit.
    /// let _ = goro::Config::new().shared_stacks(true).apply();
    /// ```
    pub fn shared_stacks(mut self, on: bool) -> Config {
        self.shared_stacks = Some(on);
        self
    }

    /// How long a worker may run one coroutine without a switch before the
    /// blocked-worker watchdog reports it (default: `GORO_BLOCKED_WORKER_MS`
    /// milliseconds, else 1 s); `Duration::ZERO` turns the watchdog off.
    /// A nonzero threshold below one millisecond is refused
    /// ([`ConfigError::InvalidBlockedWorkerThreshold`]).
    ///
    /// A coroutine that calls something goro cannot park (a
    /// `std::sync::Mutex`, `std::thread::sleep`, a plain `std::net` read
    /// without the `hook` feature, a long CPU loop) holds its worker
    /// thread, and every other coroutine that lives on that worker waits
    /// for it. The watchdog reports such a worker once per episode, naming
    /// the coroutine, how long it has held the worker, and (on Linux) the
    /// system call it is blocked in; it never interrupts or unblocks
    /// anything. See the crate docs, "The blocked-worker watchdog".
    ///
    /// The default of one second is far above any scheduling delay a
    /// healthy program shows (a coroutine normally switches within
    /// microseconds), so a report is worth reading when it comes, and far
    /// below the time in which a stuck service is noticed by other means.
    /// Go's sysmon acts after 10-20 µs of system call because it *acts*
    /// (hands the processor to another thread, which is cheap to undo);
    /// a report is read by a person, and a report for every 30 ms
    /// computation would teach people to ignore it.
    ///
    /// ```
    /// use std::time::Duration;
    /// // Stricter, for a latency-sensitive service:
    /// let _ = goro::Config::new()
    ///     .blocked_worker_threshold(Duration::from_millis(100))
    ///     .apply();
    /// ```
    pub fn blocked_worker_threshold(mut self, threshold: Duration) -> Config {
        self.blocked_worker_threshold = Some(threshold);
        self
    }

    /// Replaces the blocked-worker watchdog's line on stderr with `report`,
    /// called once per episode on the watchdog's own thread (to log it
    /// elsewhere, count it, or fail a test). [`BlockedWorker`]'s `Display`
    /// is the line goro would have printed.
    ///
    /// `report` should return quickly: while it runs, no other blocked
    /// worker is reported. A panic in it is caught and printed.
    ///
    /// ```
    /// let _ = goro::Config::new()
    ///     .on_blocked_worker(|b| eprintln!("[warn] {b}"))
    ///     .apply();
    /// ```
    pub fn on_blocked_worker(
        mut self,
        report: impl Fn(&BlockedWorker) + Send + Sync + 'static,
    ) -> Config {
        self.blocked_worker_reporter = Some(Reporter(Arc::new(report)));
        self
    }

    /// What to do when every coroutine and every goro-waiting thread is
    /// blocked for good (the crate docs' "Seeing inside"); the
    /// default is [`DeadlockAction::Panic`](crate::DeadlockAction::Panic),
    /// `GORO_DEADLOCK` overrides the default, this overrides both.
    ///
    /// ```
    /// let _ = goro::Config::new()
    ///     .on_deadlock(goro::DeadlockAction::Abort)
    ///     .apply();
    /// ```
    pub fn on_deadlock(mut self, action: crate::DeadlockAction) -> Config {
        self.deadlock = Some(action);
        self
    }

    /// Prints [`dump`](crate::dump) to stderr whenever the process gets
    /// signal `signal` (`libc::SIGQUIT`, `SIGUSR1`...; `None`: no
    /// handler), from a thread of its own, without stopping the program.
    /// Overrides `GORO_DUMP_SIGNAL`. Signals that cannot be caught make
    /// `apply` fail with `InvalidSignal`.
    ///
    /// ```
    /// let _ = goro::Config::new().dump_signal(Some(libc::SIGUSR1)).apply();
    /// ```
    pub fn dump_signal(mut self, signal: Option<i32>) -> Config {
        self.dump_signal = Some(signal);
        self
    }

    /// The reactor's kernel interface (default: `GORO_IO`, else
    /// [`IoBackend::Auto`]): io_uring where `io_uring_setup` works, epoll
    /// where it is refused (seccomp, `kernel.io_uring_disabled`, old
    /// kernels). Asking for io_uring where it is refused also falls back
    /// to epoll; [`stats`](crate::stats)`().io_backend` names the one that
    /// runs.
    ///
    /// ```
    /// use goro::reactor::IoBackend;
    /// let _ = goro::Config::new().io(IoBackend::Epoll).apply();
    /// ```
    pub fn io(mut self, backend: IoBackend) -> Config {
        self.io = Some(backend);
        self
    }

    /// Makes this configuration the one the runtime will start with.
    pub fn apply(self) -> Result<(), ConfigError> {
        if let Some(Some(sig)) = self.dump_signal
            && crate::diag::signal::parse_signal(&sig.to_string()).is_err()
        {
            return Err(ConfigError::InvalidSignal(sig));
        }
        if let Some(d) = self.blocked_worker_threshold
            && !d.is_zero()
            && d < MIN_THRESHOLD
        {
            return Err(ConfigError::InvalidBlockedWorkerThreshold(d));
        }
        if let Some(n) = self.workers
            && !(1..=MAX_WORKERS).contains(&n)
        {
            return Err(ConfigError::InvalidWorkers(n));
        }
        if let Some(s) = self.stack_size
            && !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&s)
        {
            return Err(ConfigError::InvalidStackSize(s));
        }
        let mut p = PENDING.lock();
        if p.started {
            return Err(ConfigError::AlreadyStarted);
        }
        if self.workers.is_some() {
            p.config.workers = self.workers;
        }
        if self.stack_size.is_some() {
            p.config.stack_size = self.stack_size;
        }
        p.config.unguarded_stacks |= self.unguarded_stacks;
        if self.blocked_worker_threshold.is_some() {
            p.config.blocked_worker_threshold = self.blocked_worker_threshold;
        }
        if self.blocked_worker_reporter.is_some() {
            p.config.blocked_worker_reporter = self.blocked_worker_reporter;
        }
        if self.shared_stacks.is_some() {
            p.config.shared_stacks = self.shared_stacks;
        }
        if let Some(a) = self.deadlock {
            crate::diag::deadlock::set_action(a);
        }
        if let Some(sig) = self.dump_signal {
            crate::diag::signal::configure(sig);
        }
        if self.io.is_some() {
            p.config.io = self.io;
        }
        Ok(())
    }
}

/// The configuration the runtime runs with.
pub(crate) struct Resolved {
    pub(crate) workers: usize,
    pub(crate) stack_size: usize,
    /// Whether stacks may use light guard pages (`GORO_STACK_GUARDS`).
    pub(crate) light_guards: bool,
    /// The blocked-worker watchdog's threshold; zero: no watchdog.
    pub(crate) blocked_worker_threshold: Duration,
    /// Who reports a blocked worker (`None`: a line on stderr).
    pub(crate) blocked_worker_reporter: Option<Reporter>,
    /// The IO backend asked for.
    pub(crate) io: IoBackend,
}

/// Whether coroutines run on shared stacks unless their builder says
/// otherwise, and how many shared stacks a worker has per stack size; set
/// when the runtime starts, before any spawn.
static SHARED_STACKS: AtomicBool = AtomicBool::new(false);
static SHARED_PER_WORKER: AtomicUsize = AtomicUsize::new(crate::stack::shared::SHARED_PER_WORKER);

/// Whether spawns default to shared stacks (read after start).
pub(crate) fn shared_stacks() -> bool {
    SHARED_STACKS.load(Ordering::Relaxed)
}

/// Shared stacks per worker and stack size (read after start).
pub(crate) fn shared_per_worker() -> usize {
    SHARED_PER_WORKER.load(Ordering::Relaxed)
}

/// Whether `Config::allow_unguarded_stacks` was applied; set when the
/// runtime starts, before any spawn takes a stack.
static UNGUARDED_STACKS: AtomicBool = AtomicBool::new(false);

/// Whether every spawn may take a canary stack (the process-wide `unsafe`
/// opt-in). Read after the runtime started, whose one-time start orders
/// the store before this load.
pub(crate) fn unguarded_stacks() -> bool {
    UNGUARDED_STACKS.load(Ordering::Relaxed)
}

/// Resolves the configuration and forbids later `apply` calls.
pub(crate) fn resolve_and_lock() -> Result<Resolved, String> {
    let mut p = PENDING.lock();
    p.started = true;
    UNGUARDED_STACKS.store(p.config.unguarded_stacks, Ordering::Relaxed);
    let workers = match p.config.workers {
        Some(n) => n,
        None => match std::env::var("GORO_WORKERS") {
            Ok(v) => parse_workers(&v)?,
            Err(std::env::VarError::NotPresent) => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_WORKERS),
            Err(e) => return Err(format!("GORO_WORKERS is not valid Unicode: {e}")),
        },
    };
    let stack_size = match p.config.stack_size {
        Some(n) => n,
        None => match std::env::var("GORO_STACK_SIZE") {
            Ok(v) => parse_stack_size(&v)?,
            Err(std::env::VarError::NotPresent) => DEFAULT_STACK_SIZE,
            Err(e) => return Err(format!("GORO_STACK_SIZE is not valid Unicode: {e}")),
        },
    };
    let light_guards = match std::env::var("GORO_STACK_GUARDS") {
        Ok(v) => parse_stack_guards(&v)?,
        Err(std::env::VarError::NotPresent) => true,
        Err(e) => return Err(format!("GORO_STACK_GUARDS is not valid Unicode: {e}")),
    };
    let blocked_worker_threshold = match p.config.blocked_worker_threshold {
        Some(d) => d,
        None => match std::env::var("GORO_BLOCKED_WORKER_MS") {
            Ok(v) => parse_blocked_worker_ms(&v)?,
            Err(std::env::VarError::NotPresent) => DEFAULT_THRESHOLD,
            Err(e) => return Err(format!("GORO_BLOCKED_WORKER_MS is not valid Unicode: {e}")),
        },
    };
    let shared = match p.config.shared_stacks {
        Some(b) => b,
        None => match std::env::var("GORO_SHARED_STACKS") {
            Ok(v) => parse_shared_stacks(&v)?,
            Err(std::env::VarError::NotPresent) => false,
            Err(e) => return Err(format!("GORO_SHARED_STACKS is not valid Unicode: {e}")),
        },
    };
    let per_worker = match std::env::var("GORO_SHARED_STACKS_PER_WORKER") {
        Ok(v) => parse_shared_per_worker(&v)?,
        Err(std::env::VarError::NotPresent) => crate::stack::shared::SHARED_PER_WORKER,
        Err(e) => {
            return Err(format!(
                "GORO_SHARED_STACKS_PER_WORKER is not valid Unicode: {e}"
            ));
        }
    };
    SHARED_STACKS.store(shared, Ordering::Relaxed);
    SHARED_PER_WORKER.store(per_worker, Ordering::Relaxed);
    let io = match p.config.io {
        Some(b) => b,
        None => match std::env::var("GORO_IO") {
            Ok(v) => parse_io(&v)?,
            Err(std::env::VarError::NotPresent) => IoBackend::Auto,
            Err(e) => return Err(format!("GORO_IO is not valid Unicode: {e}")),
        },
    };
    Ok(Resolved {
        io,
        workers,
        stack_size,
        light_guards,
        blocked_worker_threshold,
        blocked_worker_reporter: p.config.blocked_worker_reporter.clone(),
    })
}

/// `GORO_BLOCKED_WORKER_MS`: the blocked-worker threshold in whole
/// milliseconds; 0 turns the watchdog off.
pub(crate) fn parse_blocked_worker_ms(v: &str) -> Result<Duration, String> {
    v.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| {
        format!(
            "GORO_BLOCKED_WORKER_MS={v:?} is not a valid threshold (expected whole milliseconds, \
             e.g. 1000, or 0 to turn the blocked-worker watchdog off)"
        )
    })
}

/// `GORO_STACK_GUARDS`: `light` (the default: a guard page for every stack
/// where the kernel has `MADV_GUARD_INSTALL`) or `mapped` (the layout for
/// older kernels: `mprotect`ed guard pages within a budget of
/// `vm.max_map_count / 8` stacks, beyond which spawning fails; see the
/// `stack` module). Either way every stack safe code gets has a guard
/// page, so the variable chooses cost and capacity, never soundness.
/// Returns whether light guards are allowed.
pub(crate) fn parse_stack_guards(v: &str) -> Result<bool, String> {
    match v.trim() {
        "light" => Ok(true),
        "mapped" => Ok(false),
        _ => Err(format!(
            "GORO_STACK_GUARDS={v:?} is not a valid guard mode (expected light or mapped)"
        )),
    }
}

/// `GORO_SHARED_STACKS`: `1` (or `true`) makes shared stacks the default,
/// `0` (or `false`) keeps private stacks.
pub(crate) fn parse_shared_stacks(v: &str) -> Result<bool, String> {
    match v.trim() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!(
            "GORO_SHARED_STACKS={v:?} is not valid (expected 1 or 0)"
        )),
    }
}

/// `GORO_SHARED_STACKS_PER_WORKER`: 1 to `MAX_PER_WORKER`.
pub(crate) fn parse_shared_per_worker(v: &str) -> Result<usize, String> {
    let max = crate::stack::shared::MAX_PER_WORKER;
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "GORO_SHARED_STACKS_PER_WORKER={v:?} is not valid (expected an integer from 1 to {max})"
        )),
    }
}

/// `GORO_IO`: `uring`, `epoll` or `auto`.
pub(crate) fn parse_io(v: &str) -> Result<IoBackend, String> {
    match v.trim() {
        "uring" | "io_uring" => Ok(IoBackend::Uring),
        "epoll" => Ok(IoBackend::Epoll),
        "auto" | "" => Ok(IoBackend::Auto),
        _ => Err(format!(
            "GORO_IO={v:?} is not a valid IO backend (expected uring, epoll or auto)"
        )),
    }
}

pub(crate) fn parse_workers(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "GORO_WORKERS={v:?} is not a valid worker count (expected an integer from 1 to {MAX_WORKERS})"
        )),
    }
}

/// Parses a byte count with an optional `k`/`K`, `m`/`M` or `g`/`G` suffix
/// (powers of 1024).
pub(crate) fn parse_stack_size(v: &str) -> Result<usize, String> {
    let bad = || {
        format!(
            "GORO_STACK_SIZE={v:?} is not a valid stack size (expected bytes from {MIN_STACK_SIZE} to {MAX_STACK_SIZE}, \
             optionally with a K, M or G suffix, e.g. 64K)"
        )
    };
    let t = v.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: usize = digits.parse().map_err(|_| bad())?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or_else(bad)?;
    if (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_parse_or_name_the_variable() {
        assert_eq!(parse_io("uring"), Ok(IoBackend::Uring));
        assert_eq!(parse_io(" epoll"), Ok(IoBackend::Epoll));
        assert!(
            parse_io("kqueue")
                .unwrap_err()
                .contains("GORO_IO=\"kqueue\"")
        );
        assert_eq!(parse_workers("4"), Ok(4));
        assert!(
            parse_workers("0")
                .unwrap_err()
                .contains("GORO_WORKERS=\"0\"")
        );
        assert!(
            parse_workers("lots")
                .unwrap_err()
                .contains("GORO_WORKERS=\"lots\"")
        );
        assert_eq!(parse_stack_size("64K"), Ok(64 << 10));
        assert_eq!(parse_stack_size("1m"), Ok(1 << 20));
        assert_eq!(parse_stack_size("65536"), Ok(65536));
        assert!(
            parse_stack_size("4k")
                .unwrap_err()
                .contains("GORO_STACK_SIZE=\"4k\"")
        );
        assert!(parse_stack_size("12q").is_err());
        assert_eq!(parse_stack_guards("light"), Ok(true));
        assert_eq!(parse_stack_guards(" mapped\n"), Ok(false));
        assert!(
            parse_stack_guards("on")
                .unwrap_err()
                .contains("GORO_STACK_GUARDS=\"on\"")
        );
        assert!(parse_stack_size("99999999999999999999G").is_err());
        assert_eq!(
            parse_blocked_worker_ms(" 250\n"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(parse_blocked_worker_ms("0"), Ok(Duration::ZERO));
        for bad in ["", "1s", "-5", "1.5", "soon"] {
            assert!(
                parse_blocked_worker_ms(bad)
                    .unwrap_err()
                    .contains(&format!("GORO_BLOCKED_WORKER_MS={bad:?}")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn apply_validates_its_input() {
        assert_eq!(
            Config::new().workers(0).apply(),
            Err(ConfigError::InvalidWorkers(0))
        );
        assert_eq!(
            Config::new().stack_size(100).apply(),
            Err(ConfigError::InvalidStackSize(100))
        );
        let short = Duration::from_micros(999);
        assert_eq!(
            Config::new().blocked_worker_threshold(short).apply(),
            Err(ConfigError::InvalidBlockedWorkerThreshold(short))
        );
        assert!(
            ConfigError::InvalidBlockedWorkerThreshold(short)
                .to_string()
                .contains("at least 1ms")
        );
    }
}
