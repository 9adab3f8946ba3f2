//! An echo load generator: C connections, each a coroutine sending a
//! message and waiting for its echo, for a fixed time; prints requests per
//! second and latency percentiles.
//!
//! ```sh
//! # against a running server (examples/echo_server.rs)
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7007 -c 100 -s 64 -d 3
//! # client and server in this one process, on 2 workers (the benchmark)
//! cargo run --release --example echo_client -- --in-process --workers 2
//! ```
//!
//! Options: `--addr HOST:PORT`, `--in-process` (start the echo server of
//! `echo_server.rs` in this process on a free loopback port), `-c N`
//! connections (100), `-s BYTES` message size (64), `-d SECS` duration (3),
//! `--workers N` (GORO_WORKERS; default: the runtime's default).
//!
//! Every request is a ping-pong: `write_all` the message, `read_exact` the
//! echo. Latency is measured per request from before the write to after
//! the read. Connections are opened before the clock starts.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use goro::net::{TcpListener, TcpStream};

#[allow(dead_code)]
#[path = "echo_server.rs"]
mod echo_server;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Server to load; `None` starts one in this process.
    pub addr: Option<SocketAddr>,
    /// Concurrent connections, one coroutine each.
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long to send for.
    pub duration: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    /// Requests completed (echo received) within the run.
    pub requests: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-th percentile latency (`p` in 0..=100).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

/// Starts the echo server of `echo_server.rs` on a free loopback port, in
/// this process; returns its address.
pub fn start_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    goro::go!(move || echo_server::serve(listener));
    Ok(addr)
}

/// Runs the load: opens `connections` connections to `addr`, then each
/// coroutine ping-pongs `size`-byte messages until `duration` has passed.
pub fn run(
    addr: SocketAddr,
    connections: usize,
    size: usize,
    duration: Duration,
) -> io::Result<Report> {
    let conns = (0..connections)
        .map(|_| {
            let c = TcpStream::connect(addr)?;
            c.set_nodelay(true)?;
            Ok(c)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let start = Instant::now();
    let end = start + duration;
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            goro::go!(move || -> io::Result<Vec<Duration>> {
                let msg = vec![b'x'; size];
                let mut back = vec![0u8; size];
                let mut lat = Vec::with_capacity(1 << 12);
                loop {
                    let t = Instant::now();
                    if t >= end {
                        return Ok(lat);
                    }
                    c.write_all(&msg)?;
                    c.read_exact(&mut back)?;
                    lat.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        let lat = h
            .join()
            .map_err(|_| io::Error::other("a client coroutine panicked"))??;
        latencies.extend(lat);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(Report {
        requests: latencies.len() as u64,
        elapsed,
        latencies,
    })
}

/// User and system CPU time this process has used so far.
pub fn cpu_times() -> (Duration, Duration) {
    // SAFETY: an all-zero `rusage` is a valid value to be overwritten.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage on our own process with a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime))
}

fn parse_args() -> Result<(Options, Option<usize>), String> {
    let mut o = Options {
        addr: Some(SocketAddr::from(([127, 0, 0, 1], 7007))),
        connections: 100,
        size: 64,
        duration: Duration::from_secs(3),
    };
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--addr" => {
                o.addr = Some(
                    value("--addr")?
                        .parse()
                        .map_err(|e| format!("--addr: {e}"))?,
                )
            }
            "--in-process" => o.addr = None,
            "-c" | "--connections" => {
                o.connections = value("-c")?.parse().map_err(|e| format!("-c: {e}"))?
            }
            "-s" | "--size" => o.size = value("-s")?.parse().map_err(|e| format!("-s: {e}"))?,
            "-d" | "--duration" => {
                let secs: f64 = value("-d")?.parse().map_err(|e| format!("-d: {e}"))?;
                o.duration = Duration::from_secs_f64(secs);
            }
            "--workers" => {
                workers = Some(
                    value("--workers")?
                        .parse()
                        .map_err(|e| format!("--workers: {e}"))?,
                )
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.connections == 0 || o.size == 0 {
        return Err("-c and -s must be at least 1".into());
    }
    Ok((o, workers))
}

fn main() {
    let (opts, workers) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "{e}\nusage: echo_client [--addr HOST:PORT | --in-process] [-c N] [-s BYTES] [-d SECS] [--workers N]"
            );
            std::process::exit(2);
        }
    };
    if let Some(n) = workers {
        goro::Config::new()
            .workers(n)
            .apply()
            .expect("configure the runtime before first use");
    }
    let addr = match opts.addr {
        Some(a) => a,
        None => start_server().expect("start the in-process echo server"),
    };
    let (u0, s0) = cpu_times();
    let r = run(addr, opts.connections, opts.size, opts.duration).expect("run the load");
    let (u1, s1) = cpu_times();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{} connections, {}-byte messages, {:.1} s, {} workers{}",
        opts.connections,
        opts.size,
        r.elapsed.as_secs_f64(),
        goro::stats().workers,
        if opts.addr.is_none() {
            ", server in-process"
        } else {
            ""
        }
    );
    println!("requests/s: {:.0} ({} requests)", r.rate(), r.requests);
    println!(
        "latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        us(r.percentile(50.0)),
        us(r.percentile(90.0)),
        us(r.percentile(99.0)),
        us(r.percentile(99.9)),
        us(r.percentile(100.0))
    );
    let per = |d: Duration| us(d) / r.requests.max(1) as f64;
    println!(
        "CPU per request (this process{}): {:.2} µs user + {:.2} µs system",
        if opts.addr.is_none() {
            ", client and server"
        } else {
            ", client only"
        },
        per(u1 - u0),
        per(s1 - s0)
    );
}
