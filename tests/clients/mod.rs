//! Running real clients (redis-cli, redis-benchmark, curl, wrk, go) and
//! real servers (redis-server) from tests, bounded in time.
//!
//! - [`tool`] finds a program on `PATH`; a test whose tool is missing
//!   prints `skipped: ...` and why, and passes (`.ci/run` installs the
//!   Debian packages, so CI runs them).
//! - [`run`] runs a client to completion and kills it if it is still
//!   running after its bound, failing the test with what it printed.
//! - [`Server`] is a child process killed (by its pid) when dropped,
//!   however the test ends.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of `name` on `PATH`, or `None` after printing that `test`
/// skipped because it is missing.
pub fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    println!("skipped: {test}: `{name}` is not installed (.ci/run installs it)");
    None
}

/// Runs `cmd` to completion with piped output; kills it and fails the
/// test if it runs longer than `limit`.
#[track_caller]
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the client") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "watchdog: {what} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.join().unwrap_or_default()),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// [`run`], then asserts the client succeeded; returns its stdout.
#[track_caller]
pub fn run_ok(cmd: Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd, limit);
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server process this test started; killed by pid when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `cmd` with its output discarded.
    pub fn start(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Server {
            child: cmd.spawn().expect("spawn server"),
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port where nothing listens, held for as long as the socket
/// lives: bound but not listening, so a connect there is refused, and no
/// other test running meanwhile can be given the port (a released "free"
/// port can be, and then a connect reaches that test's server).
pub fn refusing_port() -> (socket2::Socket, u16) {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&any.into()).expect("bind 127.0.0.1:0");
    let port = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("a bound port");
    (s, port)
}

/// A free loopback port (bound, then released: the caller's server binds
/// it next; the window is small and a clash fails loudly, never hangs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
