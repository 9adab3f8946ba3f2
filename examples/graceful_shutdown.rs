//! Graceful shutdown of a TCP server on SIGINT/SIGTERM, Go style: stop
//! accepting, close idle connections, let the requests in flight finish
//! within a grace period, cut off what is still running after it, exit.
//!
//! ```sh
//! cargo run --example graceful_shutdown -- 127.0.0.1:7000 5000
//! # in another shell: printf 'WORK 2000\n' | nc 127.0.0.1 7000 & kill -TERM <pid>
//! ```
//!
//! The protocol is one request per line: `WORK <ms>` (the server answers
//! `started`, works that long, then answers `done <ms>`), `UPLOAD` (the
//! server answers `started`, then takes lines until `END` and answers
//! `done <n> lines`), or `PING` (`PONG`). An upload in progress is in
//! flight as much as work is: shutdown lets it finish. The pieces of goro
//! it shows:
//!
//! - one `Context` (`shutdown`) cancelled by the signal watcher thread;
//!   `TcpListener::incoming_ctx` ends the accept loop on it, and each
//!   connection reads its next request through `with_context(&shutdown)`,
//!   so an idle connection closes at once;
//! - a second `Context` (`hard`), cancelled when the grace period runs
//!   out, that in-flight work and replies watch (`select!` on
//!   `hard.done()`, `write_ctx`);
//! - a `WaitGroup` of the connections, waited for within the grace period.
//!
//! `tests/graceful_shutdown.rs` runs this program's `main` in a child
//! process, sends it SIGTERM by pid, and checks that the requests in
//! flight completed and the listener closed.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use goro::chan;
use goro::context::{Cancel, Context};
use goro::net::{TcpListener, TcpStream};
use goro::sync::WaitGroup;

/// What a server run did, printed on exit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Connections accepted.
    pub accepted: usize,
    /// Requests answered in full.
    pub completed: usize,
    /// Requests that were running when shutdown began and finished within
    /// the grace period.
    pub drained: usize,
    /// Requests cut off when the grace period ran out.
    pub cut_off: usize,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    completed: AtomicUsize,
    drained: AtomicUsize,
    cut_off: AtomicUsize,
}

/// Serves `listener` until `shutdown` is done, then drains: returns once
/// every connection has ended, at most about `grace` after shutdown began
/// (work still running then is cut off). The listener is closed (dropped)
/// before the drain, so new connections are refused from then on.
pub fn serve(listener: TcpListener, shutdown: &Context, grace: Duration) -> Report {
    let (hard, cut) = Context::with_cancel(&Context::background());
    let counters = Arc::new(Counters::default());
    let wg = WaitGroup::new();
    for conn in listener.incoming_ctx(shutdown) {
        let Ok(conn) = conn else { continue };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let (shutdown, hard, counters) = (shutdown.clone(), hard.clone(), counters.clone());
        wg.go(move || handle(conn, &shutdown, &hard, &counters));
    }
    drop(listener); // stop listening: new connections are refused
    drain(&wg, grace, cut);
    Report {
        accepted: counters.accepted.load(Ordering::Relaxed),
        completed: counters.completed.load(Ordering::Relaxed),
        drained: counters.drained.load(Ordering::Relaxed),
        cut_off: counters.cut_off.load(Ordering::Relaxed),
    }
}

/// Waits for the connections within `grace`; then cancels `hard` and
/// waits for the (now quickly ending) rest.
fn drain(wg: &WaitGroup, grace: Duration, hard: Cancel) {
    let (done_tx, done_rx) = chan::bounded::<()>(1);
    let waiter = wg.clone();
    goro::go!(move || {
        waiter.wait();
        let _ = done_tx.send(());
    });
    goro::select! {
        recv(done_rx) -> _ => {},
        recv(chan::after(grace)) -> _ => {
            hard.cancel();
            wg.wait();
        },
    }
}

/// One connection: requests until the peer hangs up or shutdown begins
/// while the connection is idle.
fn handle(conn: TcpStream, shutdown: &Context, hard: &Context, counters: &Counters) {
    let mut lines = BufReader::new(conn.with_context(shutdown));
    let mut line = String::new();
    loop {
        line.clear();
        // Idle: waiting for the next request ends on shutdown.
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply = |msg: &str| conn.write_ctx(msg.as_bytes(), hard).map(drop);
        let req = line.trim();
        if req == "PING" {
            if reply("PONG\n").is_err() {
                return;
            }
            counters.completed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if req == "UPLOAD" {
            if reply("started\n").is_err() {
                return;
            }
            // In flight: read the body under `hard`, not `shutdown`.
            lines.get_mut().set_context(hard);
            let mut n = 0;
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        if hard.is_done() {
                            counters.cut_off.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                    Ok(_) if line.trim() == "END" => break,
                    Ok(_) => n += 1,
                }
            }
            lines.get_mut().set_context(shutdown);
            let draining = shutdown.is_done();
            if reply(&format!("done {n} lines\n")).is_err() {
                return;
            }
            counters.completed.fetch_add(1, Ordering::Relaxed);
            if draining {
                counters.drained.fetch_add(1, Ordering::Relaxed);
                return;
            }
            continue;
        }
        let Some(ms) = req
            .strip_prefix("WORK ")
            .and_then(|ms| ms.parse::<u64>().ok())
        else {
            let _ = reply("ERR bad request\n");
            return;
        };
        if reply("started\n").is_err() {
            return;
        }
        // The request is in flight: shutdown does not stop it, the end of
        // the grace period does.
        let finished = goro::select! {
            recv(chan::after(Duration::from_millis(ms))) -> _ => true,
            recv(hard.done()) -> _ => false,
        };
        if !finished {
            counters.cut_off.fetch_add(1, Ordering::Relaxed);
            let _ = (&conn).write_all(b"cut off\n");
            return;
        }
        // Whether shutdown began while this ran (looked at before the
        // reply, so a client that saw the reply and then shut the server
        // down finds this counted as a plain completion).
        let draining = shutdown.is_done();
        if reply(&format!("done {ms}\n")).is_err() {
            return;
        }
        counters.completed.fetch_add(1, Ordering::Relaxed);
        if draining {
            counters.drained.fetch_add(1, Ordering::Relaxed);
            return; // finished what it had; do not wait for more
        }
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM (on a thread of its
/// own, as signal-hook's iterator wants).
fn cancel_on_signal(shutdown: Cancel) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("graceful_shutdown: signal {sig}, shutting down");
            shutdown.cancel();
        }
    });
    Ok(())
}

/// The program: serve `addr` until SIGINT/SIGTERM, then drain within
/// `grace`. Prints `listening on ADDR` once bound and a summary on exit.
pub fn run(addr: SocketAddr, grace: Duration) -> io::Result<Report> {
    let (shutdown, cancel) = Context::with_cancel(&Context::background());
    cancel_on_signal(cancel)?;
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let report = serve(listener, &shutdown, grace);
    println!(
        "shut down: accepted {} completed {} drained {} cut off {}",
        report.accepted, report.completed, report.drained, report.cut_off
    );
    io::stdout().flush()?;
    Ok(report)
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .map_err(|e| bad(format!("address: {e}")))?;
    let grace_ms: u64 = match args.next() {
        Some(g) => g.parse().map_err(|e| bad(format!("grace (ms): {e}")))?,
        None => 5000,
    };
    run(addr, Duration::from_millis(grace_ms)).map(drop)
}
