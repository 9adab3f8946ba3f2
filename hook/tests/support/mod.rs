//! Helpers shared by the hook's integration tests: a watchdog, the
//! runtime set-up, and starting/stopping external servers.
//!
//! (The workspace's `tests/support` names the `goro` facade, which this
//! crate's tests do not link: the facade would bring a second copy of the
//! hooks.)
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// Generous bound for watchdogs: only a broken hook gets near it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Two workers, as in the scenarios (first caller wins; the rest
/// find the runtime configured). Also checks that the hooks are in
/// effect: naming `goro_hook` here is what links it into every test
/// binary (an rlib no code names is left out of the link).
pub fn two_workers() {
    assert!(goro_hook::enabled(), "the hooks are not linked");
    let _ = goro_runtime::Config::new().workers(2).apply();
}

/// Runs `body` on a fresh thread and returns its value; fails the calling
/// test with `what` if it has not returned within [`PATIENCE`].
#[track_caller]
pub fn within<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(r);
        })
        .expect("spawn watched thread");
    match rx.recv_timeout(PATIENCE) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("watchdog: {what} did not finish within {PATIENCE:?}"),
    }
}

/// A `redis-server` child on a free loopback port, killed (by pid) when
/// dropped.
pub struct RedisServer {
    child: std::process::Child,
    /// The server's port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Starts one, or returns `None` (after printing why) when
    /// `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        let exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(exe) = exe else {
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        };
        // A free port: bind :0, read it, close it. Another process may
        // take it before the server binds, so retry with a new one.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = std::process::Command::new(exe)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let deadline = std::time::Instant::now() + PATIENCE;
            while std::time::Instant::now() < deadline {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!("redis-server on port {port} exited ({status}); retrying");
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(RedisServer { child, port });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body the test HTTP server sends for `path`: `len` bytes derived
/// from the path.
pub fn http_body(path: &str, len: usize) -> Vec<u8> {
    let seed = path
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..len)
        .map(|i| b'a' + (seed.wrapping_add(i as u8) % 26))
        .collect()
}

/// Size of every test HTTP response body.
pub const HTTP_BODY: usize = 8 << 10;

/// A minimal HTTP/1.1 server on goro's own sockets (a coroutine per
/// connection, keep-alive, GET only): answers `GET /x` with
/// `http_body("/x", HTTP_BODY)`. Runs until the process exits.
pub fn http_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = goro_net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    goro_runtime::go!(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            goro_runtime::go!(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let close = head.to_ascii_lowercase().contains("connection: close");
                        let body = http_body(&path, HTTP_BODY);
                        let mut resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
                            body.len(),
                            if close { "Connection: close\r\n" } else { "" }
                        )
                        .into_bytes();
                        resp.extend_from_slice(&body);
                        if c.write_all(&resp).is_err() || close {
                            return;
                        }
                    }
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}
