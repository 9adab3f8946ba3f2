//! `examples/graceful_shutdown.rs`: the program runs in a child process
//! (this test binary, re-run for `child_server`, calls the example's
//! `run`), gets SIGTERM by pid while requests are in flight, finishes
//! them, closes idle connections and its listener, and exits cleanly.
//! A second test drives the example's `serve` in process to check the
//! cut-off at the end of the grace period.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use goro::context::Context;
use goro::net::{TcpListener, TcpStream};

#[allow(dead_code)]
#[path = "../examples/graceful_shutdown.rs"]
mod graceful_shutdown;

const CHILD: &str = "child_server";

/// The server, when this binary runs as the child; a no-op otherwise.
#[test]
fn child_server() {
    if support::in_child(CHILD) {
        let report = graceful_shutdown::run("127.0.0.1:0".parse().unwrap(), support::PATIENCE)
            .expect("the server runs");
        assert_eq!(report.cut_off, 0);
    }
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::PATIENCE)).unwrap();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn ask(&mut self, req: &str) {
        self.w.write_all(format!("{req}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
}

#[test]
fn sigterm_drains_in_flight_requests_and_closes_the_listener() {
    if support::in_child(CHILD) {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD, "--nocapture", "--test-threads=1"])
        .env("GORO_CHILD", CHILD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server child");
    let pid = child.id() as libc::pid_t;
    // Kill the child whatever happens below (its pid, ours alone).
    struct KillOnDrop(libc::pid_t);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // SAFETY: kill(2) on our own child's pid; harmless if it exited.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _guard = KillOnDrop(pid);
    let stdout = child.stdout.take().unwrap();
    let (out_tx, out_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if out_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        out_rx
            .recv_timeout(support::PATIENCE)
            .unwrap_or_else(|_| panic!("watchdog: the child printed no {what}"))
    };
    let addr: SocketAddr = loop {
        let l = next_line("address");
        // libtest's "test child_server ... " may share the line.
        if let Some(i) = l.find("listening on ") {
            break l[i + "listening on ".len()..].trim().parse().unwrap();
        }
    };

    let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let probes_seen = probes.clone();
    support::within("the shutdown conversation", move || {
        // Three uploads in flight (each answered `started`, body not
        // finished), one idle connection that has been served once.
        let mut busy: Vec<Conn> = (0..3)
            .map(|_| {
                let mut c = Conn::open(addr);
                c.ask("UPLOAD");
                assert_eq!(c.line(), "started");
                c.ask("part 1");
                c
            })
            .collect();
        let mut idle = Conn::open(addr);
        idle.ask("PING");
        assert_eq!(idle.line(), "PONG");

        // SAFETY: kill(2) on the pid of the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

        // Shutdown has begun once the listener is closed: new connections
        // are refused. The uploads are still in flight.
        // A probe that connects before the listener closes may be accepted
        // (and then closed unserved): the summary's count allows for them.
        support::eventually("the listener to close", || match TcpStream::connect(addr) {
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            Ok(_) => {
                probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }
        });
        let mut rest = Vec::new();
        idle.r.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "the idle connection is closed, not answered"
        );
        for c in &mut busy {
            c.ask("part 2");
            c.ask("END");
            assert_eq!(
                c.line(),
                "done 2 lines",
                "an in-flight request was not finished"
            );
            assert_eq!(c.line(), "", "the connection is closed after its drain");
        }
    });

    let deadline = Instant::now() + support::PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: the server did not exit"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let summary = std::iter::from_fn(|| out_rx.recv_timeout(Duration::from_secs(5)).ok())
        .find(|l| l.starts_with("shut down:"))
        .expect("the server's summary");
    assert!(status.success(), "the server exited with {status}");
    // Four connections of ours were accepted and served; probes that got
    // in before the close were accepted too, and served nothing.
    let probes = probes_seen.load(std::sync::atomic::Ordering::Relaxed);
    let accepted: usize = summary
        .strip_prefix("shut down: accepted ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected summary: {summary}"));
    assert!(
        (4..=4 + probes).contains(&accepted),
        "accepted {accepted} with {probes} probes: {summary}"
    );
    assert_eq!(
        summary,
        format!("shut down: accepted {accepted} completed 4 drained 3 cut off 0")
    );
}

/// In process: work still running when the grace period ends is cut off,
/// and `serve` returns soon after.
#[test]
fn grace_period_cuts_off_long_work() {
    support::within("cut off", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, cancel) = Context::with_cancel(&Context::background());
        let server = goro::go!(move || {
            graceful_shutdown::serve(listener, &shutdown, Duration::from_millis(50))
        });
        let mut long = Conn::open(addr);
        long.ask("WORK 600000");
        assert_eq!(long.line(), "started");
        let mut short = Conn::open(addr);
        short.ask("WORK 1");
        assert_eq!(short.line(), "started");
        assert_eq!(short.line(), "done 1");
        cancel.cancel();
        assert_eq!(long.line(), "cut off");
        let report = server.join().unwrap();
        assert_eq!(
            report,
            graceful_shutdown::Report {
                accepted: 2,
                completed: 1,
                drained: 0,
                cut_off: 1
            }
        );
    });
}
