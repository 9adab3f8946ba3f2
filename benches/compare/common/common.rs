//! Shared plumbing for the Rust peers of the comparison suite (may, tokio,
//! threads, goro): command-line parsing, default sizes, RSS reading, the seeded
//! random sleep durations, the `RESULT` line, and the `echo` loops of the
//! three blocking-style peers (may, threads, goro), which are the same code.
//!
//! Each Rust peer includes this file with `#[path = "../../common/common.rs"]`
//! so the four binaries agree on sizes and output format without a shared
//! crate. The Go peer (`go/main.go`) mirrors the same constants by hand: change
//! both together.
//!
//! Output contract (parsed by `table.py`): exactly one line on stdout,
//! `RESULT <workload> <metric>=<value> [key=value ...]`; everything else goes
//! to stderr.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Every workload, in the order the table prints them.
pub const WORKLOADS: &[&str] = &[
    "spawn", "pingpong", "chan_mpmc", "select", "mutex", "idle", "echo", "timers", "chain",
];

/// Largest sleep in the `timers` workload, in microseconds (50 ms).
pub const TIMER_MAX_SLEEP_US: u64 = 50_000;
/// Seed of the `timers` workload's sleep durations; every peer uses it.
pub const TIMER_SEED: u64 = 42;
/// Producers and consumers in `chan_mpmc`.
pub const MPMC_PRODUCERS: usize = 4;
/// Consumers in `chan_mpmc`.
pub const MPMC_CONSUMERS: usize = 4;
/// Channel capacity in `chan_mpmc`.
pub const MPMC_CAP: usize = 128;
/// Channels (and producers) the `select` receiver waits on.
pub const SELECT_CHANNELS: usize = 4;
/// Tasks contending on the lock in `mutex`.
pub const MUTEX_TASKS: usize = 8;
/// Bytes per request in `echo`.
pub const ECHO_MSG: usize = 64;

/// Parsed command line: `<bin> <workload> [--quick] [--n N] [--values V] [--secs S]`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Workload name, one of [`WORKLOADS`].
    pub workload: String,
    /// Tiny sizes, to prove the workload runs and loses nothing.
    pub quick: bool,
    /// Main size of the workload (see [`Args::n`]); `None` = default.
    pub n: Option<usize>,
    /// Values pushed through `chain`; `None` = default.
    pub values: Option<usize>,
    /// Seconds of load in `echo`; `None` = default.
    pub secs: Option<f64>,
}

impl Args {
    /// Parses `std::env::args()`; prints usage and exits with status 2 on bad input.
    pub fn parse() -> Args {
        let argv: Vec<String> = std::env::args().collect();
        match Args::parse_from(&argv[1..]) {
            Ok(a) => a,
            Err(msg) => {
                eprintln!("error: {msg}");
                eprintln!(
                    "usage: {} <{}> [--quick] [--n N] [--values V] [--secs S]",
                    argv.first().map(String::as_str).unwrap_or("peer"),
                    WORKLOADS.join("|")
                );
                std::process::exit(2);
            }
        }
    }

    fn parse_from(args: &[String]) -> Result<Args, String> {
        let mut it = args.iter();
        let workload = it.next().ok_or("missing workload")?.clone();
        if !WORKLOADS.contains(&workload.as_str()) {
            return Err(format!("unknown workload {workload:?}"));
        }
        let mut out = Args { workload, quick: false, n: None, values: None, secs: None };
        while let Some(flag) = it.next() {
            let mut value = |name: &str| {
                it.next().cloned().ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--quick" => out.quick = true,
                "--n" => out.n = Some(parse_num(&value("--n")?)?),
                "--values" => out.values = Some(parse_num(&value("--values")?)?),
                "--secs" => {
                    let v = value("--secs")?;
                    out.secs = Some(v.parse().map_err(|_| format!("bad --secs {v:?}"))?);
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(out)
    }

    /// The workload's main size: `--n` if given, else the default for this mode.
    /// `small` replaces the default for a peer that cannot run the full size
    /// (OS threads); pass `None` to use the common default.
    pub fn n(&self, small: Option<(usize, usize)>) -> usize {
        if let Some(n) = self.n {
            return n;
        }
        let (normal, quick) = small.unwrap_or_else(|| default_n(&self.workload));
        if self.quick { quick } else { normal }
    }

    /// Values pushed through `chain`.
    pub fn values(&self, small: Option<(usize, usize)>) -> usize {
        if let Some(v) = self.values {
            return v;
        }
        let (normal, quick) = small.unwrap_or((100, 10));
        if self.quick { quick } else { normal }
    }

    /// Seconds of load in `echo`.
    pub fn secs(&self) -> f64 {
        self.secs.unwrap_or(if self.quick { 0.3 } else { 3.0 })
    }
}

fn parse_num(s: &str) -> Result<usize, String> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    match clean.parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!("bad count {s:?}")),
    }
}

/// (normal, quick) default of each workload's main size. Meaning of n:
/// spawn tasks, pingpong round trips, chan_mpmc and select messages in total,
/// mutex increments in total, idle tasks, echo connections, timers tasks,
/// chain tasks. Mirrored in go/main.go.
pub fn default_n(workload: &str) -> (usize, usize) {
    match workload {
        "spawn" => (100_000, 1_000),
        "pingpong" => (200_000, 1_000),
        "chan_mpmc" => (1_000_000, 10_000),
        "select" => (1_000_000, 10_000),
        "mutex" => (1_000_000, 10_000),
        "idle" => (100_000, 1_000),
        "echo" => (100, 4),
        "timers" => (100_000, 1_000),
        "chain" => (10_000, 100),
        _ => (1, 1),
    }
}

/// Builds and prints the one `RESULT` line.
pub struct Report {
    line: String,
}

impl Report {
    /// Starts `RESULT <workload> <metric>=<value>`.
    pub fn new(workload: &str, metric: &str, value: f64) -> Report {
        let mut line = String::new();
        let _ = write!(line, "RESULT {workload} {metric}={}", fmt_num(value));
        Report { line }
    }

    /// Adds ` key=value`.
    pub fn kv(mut self, key: &str, value: impl std::fmt::Display) -> Report {
        let _ = write!(self.line, " {key}={value}");
        self
    }

    /// Adds ` key=value` for a float, with sensible precision.
    pub fn kf(mut self, key: &str, value: f64) -> Report {
        let _ = write!(self.line, " {key}={}", fmt_num(value));
        self
    }

    /// Prints the line on stdout and flushes it.
    pub fn print(self) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.line);
        let _ = out.flush();
    }
}

/// Four significant digits or one decimal, whichever is longer; no exponent.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "nan".to_string();
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

/// Nanoseconds per operation.
pub fn ns_per(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_nanos() as f64 / ops.max(1) as f64
}

/// The process's resident set size in bytes (VmRSS of /proc/self/status), 0 if unreadable.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, written out
/// here and in go/main.go so every peer sleeps the very same durations.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The `timers` workload's `n` sleep durations: uniform in 0..=50 ms, microsecond grain.
pub fn timer_durations(n: usize) -> Vec<Duration> {
    let mut rng = SplitMix64::new(TIMER_SEED);
    (0..n)
        .map(|_| Duration::from_micros(rng.next_u64() % (TIMER_MAX_SLEEP_US + 1)))
        .collect()
}

/// Prints the `timers` RESULT from each task's lateness (ms), the wall time
/// of the whole run and the longest requested sleep.
pub fn report_timers(mut late_ms: Vec<f64>, expected: usize, wall: Duration, ideal: Duration) {
    let done = late_ms.len();
    late_ms.sort_by(f64::total_cmp);
    let p99 = percentile(&late_ms, 0.99);
    let max = late_ms.last().copied().unwrap_or(f64::NAN);
    let wall_ms = wall.as_secs_f64() * 1e3;
    let ideal_ms = ideal.as_secs_f64() * 1e3;
    Report::new("timers", "p99_late_ms", p99)
        .kf("max_late_ms", max)
        .kf("wall_ms", wall_ms)
        .kf("ideal_ms", ideal_ms)
        .kf("overrun_ms", wall_ms - ideal_ms)
        .kv("n", expected)
        .kv("lost", expected - done)
        .print();
}

/// Nearest-rank percentile of sorted data (`p` in 0..=1); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sum of 0..per, the checksum one producer contributes.
pub fn sum_below(per: usize) -> u64 {
    let per = per as u64;
    per * per.saturating_sub(1) / 2
}

/// The `echo` server's side of one connection, in every blocking-style peer:
/// echoes `ECHO_MSG`-byte requests until the client goes away.
pub fn echo_serve(mut s: impl Read + Write) {
    let mut buf = [0u8; ECHO_MSG];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            break;
        }
    }
}

/// The `echo` measuring loop of client `id`, in every blocking-style peer:
/// request, wait for the echo, compare, until `deadline`. Returns
/// (requests done, errors).
pub fn echo_client(mut s: impl Read + Write, id: usize, deadline: Instant) -> (u64, u64) {
    let mut msg = [0u8; ECHO_MSG];
    let mut back = [0u8; ECHO_MSG];
    let (mut done, mut errors) = (0u64, 0u64);
    while Instant::now() < deadline {
        msg[..8].copy_from_slice(&(done ^ ((id as u64) << 40)).to_le_bytes());
        if s.write_all(&msg).is_err() || s.read_exact(&mut back).is_err() {
            errors += 1;
            break;
        }
        if back != msg {
            errors += 1;
        }
        done += 1;
    }
    (done, errors)
}

/// Prints the `echo` RESULT: `reqs` requests served by `conns` clients in
/// `secs` seconds, `errors` of them failed or wrong.
pub fn report_echo(conns: usize, secs: f64, reqs: u64, errors: u64) {
    Report::new("echo", "req_per_s", reqs as f64 / secs)
        .kv("n", conns)
        .kf("secs", secs)
        .kv("requests", reqs)
        .kv("errors", errors)
        .print();
}
