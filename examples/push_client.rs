//! Holds many idle connections to `push_server`, in its own process, to
//! measure how many connections the machine allows and what each costs the
//! server.
//!
//! ```sh
//! cargo run --release --example push_server -- --listen 127.0.0.1:7100
//! cargo run --release --example push_client -- --addr 127.0.0.1:7100 -n 19000 --hold 30
//! ```
//!
//! Options: `--addr ADDR` (repeatable: connections are spread over the
//! addresses, e.g. `127.0.0.1:7100 --addr 127.0.0.2:7100` against a server
//! listening on `0.0.0.0:7100`, which multiplies the ephemeral ports
//! available), `-n N` connections (1000), `--rooms R` (100), `--ping SECS`
//! heartbeat interval (30), `--hold SECS` how long to hold them (10),
//! `--parallel P` logins in flight at once (256), `--workers N`.
//!
//! Each connection is a coroutine: it connects, sends `LOGIN u<i> r<i % R>`,
//! waits for `OK`, then idles, reading whatever the server pushes and
//! sending `PING` whenever a read has waited a full heartbeat interval
//! (its read timeout). A separate control connection asks the server for
//! `STATS` once all are logged in, and the client prints the server's
//! resident memory per connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goro::chan;
use goro::net::TcpStream;
use goro::sync::Semaphore;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Server addresses; connection `i` goes to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    /// Connections to hold.
    pub conns: usize,
    /// Rooms to spread users over.
    pub rooms: usize,
    /// Heartbeat interval.
    pub ping: Duration,
    /// How long to hold the connections once all are up.
    pub hold: Duration,
    /// Logins in flight at once.
    pub parallel: usize,
    /// How long a login may take.
    pub login_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 7100))],
            conns: 1000,
            rooms: 100,
            ping: Duration::from_secs(30),
            hold: Duration::from_secs(10),
            parallel: 256,
            login_timeout: Duration::from_secs(20),
        }
    }
}

/// What a run achieved.
#[derive(Debug, Default)]
pub struct Report {
    /// Connections that logged in.
    pub logged_in: usize,
    /// Connections that failed to connect or log in.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Time from start until every connection logged in or failed.
    pub setup: Duration,
    /// Heartbeat replies received while holding.
    pub pongs: u64,
    /// The server's `STATS` line, taken once all connections were up.
    pub server_stats: Option<String>,
}

/// Reads one line (without `\n`); bytes after it in the same read are
/// ignored, which is fine for the replies this client waits for.
fn read_line(s: &TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = (&*s).read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match buf[..n].iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            None => line.extend_from_slice(&buf[..n]),
        }
    }
}

fn login(addr: SocketAddr, user: &str, room: &str, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    (&s).write_all(format!("LOGIN {user} {room}\n").as_bytes())?;
    let reply = read_line(&s)?;
    if !reply.starts_with("OK") {
        return Err(io::Error::other(format!("login refused: {reply}")));
    }
    Ok(s)
}

/// An idle connection's life: read what comes, ping when quiet.
fn idle(s: TcpStream, ping: Duration, pongs: &AtomicU64) {
    if s.set_read_timeout(Some(ping)).is_err() {
        return;
    }
    let mut buf = [0u8; 256];
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let k = buf[..n].windows(5).filter(|w| w == b"PONG\n").count();
                pongs.fetch_add(k as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if (&s).write_all(b"PING\n").is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Opens `o.conns` logged-in connections, holds them for `o.hold`, asks
/// the server for its stats, then closes them all.
pub fn run(o: &Options) -> io::Result<Report> {
    let start = Instant::now();
    let ctl = login(
        o.addrs[0],
        &format!("ctl{}", std::process::id()),
        "ctl",
        o.login_timeout,
    )?;
    let sem = Arc::new(Semaphore::new(o.parallel.max(1)));
    let pongs = Arc::new(AtomicU64::new(0));
    let (tx, rx) = chan::unbounded::<Result<TcpStream, String>>();
    let handles: Vec<_> = (0..o.conns)
        .map(|i| {
            let (sem, pongs, tx) = (sem.clone(), pongs.clone(), tx.clone());
            let addr = o.addrs[i % o.addrs.len()];
            let (ping, timeout, room) = (o.ping, o.login_timeout, i % o.rooms.max(1));
            goro::go!(move || {
                let permit = sem.acquire();
                let s = match login(addr, &format!("u{i}"), &format!("r{room}"), timeout) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                drop(permit);
                match s.try_clone() {
                    Ok(c) => {
                        let _ = tx.send(Ok(c));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
                drop(tx);
                idle(s, ping, &pongs);
            })
        })
        .collect();
    drop(tx);
    let mut report = Report::default();
    let mut held = Vec::with_capacity(o.conns);
    let mut last_print = Instant::now();
    for r in rx.iter().take(o.conns) {
        match r {
            Ok(s) => held.push(s),
            Err(e) => {
                report.failed += 1;
                report.first_error.get_or_insert(e);
            }
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            println!(
                "  {} logged in, {} failed ({:.1} s)",
                held.len(),
                report.failed,
                start.elapsed().as_secs_f64()
            );
        }
    }
    report.logged_in = held.len();
    report.setup = start.elapsed();
    // Let the server settle (freed login buffers, finished writers), then
    // ask for its figures.
    goro::sleep(o.hold.min(Duration::from_secs(1)));
    (&ctl).write_all(b"STATS\n")?;
    ctl.set_read_timeout(Some(Duration::from_secs(10)))?;
    report.server_stats = read_line(&ctl).ok();
    goro::sleep(o.hold.saturating_sub(Duration::from_secs(1)));
    for s in &held {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(held);
    for h in handles {
        let _ = h.join();
    }
    report.pongs = pongs.load(Ordering::Relaxed);
    Ok(report)
}

fn parse_args() -> Result<(Options, Option<usize>), String> {
    let mut o = Options::default();
    let mut addrs = Vec::new();
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        let secs = |v: String| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("bad duration {v:?}"))
        };
        let num =
            |v: String| -> Result<usize, String> { v.parse().map_err(|e| format!("{a}: {e}")) };
        match a.as_str() {
            "--addr" => addrs.push(value()?.parse().map_err(|e| format!("--addr: {e}"))?),
            "-n" | "--conns" => o.conns = num(value()?)?,
            "--rooms" => o.rooms = num(value()?)?,
            "--ping" => o.ping = secs(value()?)?.max(Duration::from_millis(1)),
            "--hold" => o.hold = secs(value()?)?,
            "--parallel" => o.parallel = num(value()?)?,
            "--workers" => workers = Some(num(value()?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !addrs.is_empty() {
        o.addrs = addrs;
    }
    Ok((o, workers))
}

/// Raises the soft fd limit to the hard limit; returns the limit.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

fn main() {
    let (o, workers) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "{e}\nusage: push_client [--addr ADDR]... [-n N] [--rooms R] [--ping SECS] [--hold SECS] [--parallel P] [--workers N]"
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
    let fds = raise_fd_limit();
    println!(
        "opening {} connections to {:?} (fd limit {fds})",
        o.conns, o.addrs
    );
    match run(&o) {
        Ok(r) => {
            println!(
                "{} logged in, {} failed, in {:.2} s ({:.0} logins/s); {} pongs while holding {:.0} s",
                r.logged_in,
                r.failed,
                r.setup.as_secs_f64(),
                r.logged_in as f64 / r.setup.as_secs_f64(),
                r.pongs,
                o.hold.as_secs_f64()
            );
            if let Some(e) = &r.first_error {
                println!("first failure: {e}");
            }
            match &r.server_stats {
                Some(s) => println!("server: {s}"),
                None => println!("server: no STATS reply"),
            }
        }
        Err(e) => {
            eprintln!("push_client: {e}");
            std::process::exit(1);
        }
    }
}
