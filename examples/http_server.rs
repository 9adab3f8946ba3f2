//! An HTTP/1.1 server: a coroutine per connection, keep-alive,
//! pipelining, chunked request bodies, request size limits, a small JSON
//! endpoint and a static-file endpoint whose file IO runs on goro's
//! blocking pool. Requests are parsed with `httparse`.
//!
//! ```sh
//! cargo run --release --example http_server -- --port 8080 --root . --workers 2
//! curl -s http://127.0.0.1:8080/json
//! curl -s --data-binary @Cargo.toml -H 'Transfer-Encoding: chunked' http://127.0.0.1:8080/echo
//! wrk -t 2 -c 100 -d 10s http://127.0.0.1:8080/json
//! ```
//!
//! Options: `--port N` (8080; 0 picks a free port), `--root DIR` (what
//! `/static/` serves; default the current directory), `--workers N`.
//!
//! # Endpoints
//!
//! | request | response |
//! |---|---|
//! | `GET /` | `hello, world\n` (text/plain) |
//! | `GET /json` | `{"message":"Hello, World!"}` (application/json) |
//! | `POST /echo` | the request body (Content-Length or chunked) |
//! | `GET /static/<path>` | the file under `--root`, read with `goro::blocking`; `..` is refused |
//! | anything else | 404 (unknown path) or 405 (wrong method) |
//!
//! # Limits and errors
//!
//! A request head over 16 KiB gets 431, a body over 1 MiB 413, a
//! malformed head, bad Content-Length or bad chunk framing 400; each of
//! these closes the connection after the response (the stream cannot be
//! re-framed), the server lives on. HTTP/1.1 connections stay open unless
//! the client sends `Connection: close`; HTTP/1.0 ones close unless it
//! sends `Connection: keep-alive`. Every complete request in one read is
//! answered in order and the responses go out in one write (pipelining).
//!
//! # Measured
//!
//! `wrk -t 2 -c 100 -d 10s http://127.0.0.1:PORT/json` against this server
//! and against Go's `net/http` (benches/compare/http/go) on the same
//! machine in the same sitting: see BENCHMARKS.md, "http_server against
//! Go net/http". The tests (`tests/example_http_server.rs`) run this code
//! in-process with curl, wrk and a raw client.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use goro::net::{TcpListener, TcpStream};

/// Longest request head (request line and headers).
pub const MAX_HEAD: usize = 16 << 10;
/// Longest request body, either framing.
pub const MAX_BODY: usize = 1 << 20;
/// Most headers in one request.
const MAX_HEADERS: usize = 32;
/// Most input discarded after a fatal error before closing.
const LINGER_BYTES: usize = 256 << 10;
/// Bytes read per `read` call when the buffer is empty.
const READ_CHUNK: usize = 8 << 10;

/// What the server serves.
pub struct Site {
    /// The directory `/static/` maps to.
    pub root: PathBuf,
}

/// A parsed request: what the router needs.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    body: Vec<u8>,
}

/// Why a request cannot be served; each closes the connection.
#[derive(Debug, PartialEq, Eq)]
enum Fatal {
    BadRequest,
    HeadTooLarge,
    BodyTooLarge,
}

impl Fatal {
    fn status(&self) -> (u16, &'static str) {
        match self {
            Fatal::BadRequest => (400, "Bad Request"),
            Fatal::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Fatal::BodyTooLarge => (413, "Content Too Large"),
        }
    }
}

/// The outcome of parsing at the start of a buffer.
enum Parsed<'a> {
    Incomplete,
    Request {
        req: Request<'a>,
        keep_alive: bool,
        len: usize,
    },
}

fn parse(buf: &[u8]) -> Result<Parsed<'_>, Fatal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(Fatal::HeadTooLarge)
            } else {
                Ok(Parsed::Incomplete)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Fatal::HeadTooLarge),
        Err(_) => return Err(Fatal::BadRequest),
    };
    if head > MAX_HEAD {
        return Err(Fatal::HeadTooLarge);
    }
    let version = req.version.unwrap_or(1);
    let mut keep_alive = version == 1;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(Fatal::BadRequest)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(Fatal::BadRequest);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` (last) is understood; anything else is 400.
            let v = std::str::from_utf8(h.value).map_err(|_| Fatal::BadRequest)?;
            if !v.trim().eq_ignore_ascii_case("chunked") {
                return Err(Fatal::BadRequest);
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if v.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    if chunked && content_length.is_some() {
        // Request smuggling territory (RFC 9112 §6.3): refuse.
        return Err(Fatal::BadRequest);
    }
    let rest = &buf[head..];
    let (body, body_len) = if chunked {
        match dechunk(rest)? {
            Some(x) => x,
            None => return Ok(Parsed::Incomplete),
        }
    } else {
        let n = content_length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(Fatal::BodyTooLarge);
        }
        if rest.len() < n {
            return Ok(Parsed::Incomplete);
        }
        (rest[..n].to_vec(), n)
    };
    Ok(Parsed::Request {
        req: Request {
            method: req.method.unwrap_or(""),
            path: req.path.unwrap_or(""),
            body,
        },
        keep_alive,
        len: head + body_len,
    })
}

/// Decodes a chunked body at the start of `buf`: the body and the bytes
/// it took, `None` if not all there yet.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Fatal> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (start, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) => {
                return if buf.len() - at > 1024 {
                    Err(Fatal::BadRequest)
                } else {
                    Ok(None)
                };
            }
            Err(_) => return Err(Fatal::BadRequest),
        };
        at += start;
        if size == 0 {
            // Trailers (ignored), then an empty line.
            loop {
                let Some(i) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return if buf.len() - at > MAX_HEAD {
                        Err(Fatal::HeadTooLarge)
                    } else {
                        Ok(None)
                    };
                };
                at += i + 2;
                if i == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| Fatal::BodyTooLarge)?;
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(Fatal::BodyTooLarge);
        }
        if buf.len() - at < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(Fatal::BadRequest);
        }
        at += size + 2;
    }
}

fn respond(out: &mut Vec<u8>, status: u16, reason: &str, ctype: &str, body: &[u8], close: bool) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nServer: goro\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    out.extend_from_slice(body);
}

/// The JSON endpoint's body (TechEmpower's "json" test).
pub const JSON_BODY: &[u8] = br#"{"message":"Hello, World!"}"#;

/// Maps `/static/<rel>` to a file under `root`, refusing anything that
/// could leave it.
fn static_path(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = rel.split(['?', '#']).next().unwrap_or("");
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(p))
}

fn route(site: &Site, req: &Request<'_>, out: &mut Vec<u8>, close: bool) {
    let path = req.path.split('?').next().unwrap_or("");
    match (req.method, path) {
        ("GET", "/") => respond(out, 200, "OK", "text/plain", b"hello, world\n", close),
        ("GET", "/json") => respond(out, 200, "OK", "application/json", JSON_BODY, close),
        ("POST", "/echo") => respond(out, 200, "OK", "application/octet-stream", &req.body, close),
        ("GET", p) if p.starts_with("/static/") => {
            let Some(file) = static_path(&site.root, &req.path["/static/".len()..]) else {
                return respond(out, 404, "Not Found", "text/plain", b"not found\n", close);
            };
            // File IO may block on the disk: run it on the blocking pool,
            // parking only this coroutine.
            match goro::blocking(move || std::fs::read(file)) {
                Ok(data) => respond(out, 200, "OK", "application/octet-stream", &data, close),
                Err(_) => respond(out, 404, "Not Found", "text/plain", b"not found\n", close),
            }
        }
        (_, "/" | "/json" | "/echo") => respond(
            out,
            405,
            "Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            close,
        ),
        (_, p) if p.starts_with("/static/") => respond(
            out,
            405,
            "Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            close,
        ),
        _ => respond(out, 404, "Not Found", "text/plain", b"not found\n", close),
    }
}

/// Serves one connection until the client closes it, a request asks to
/// close, a fatal request error, or an IO error.
pub fn handle(site: &Site, mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            } else {
                // Bounded: parse refuses heads over MAX_HEAD and bodies
                // over MAX_BODY before the buffer outgrows both.
                let n = buf.len() * 2;
                buf.resize(n, 0);
            }
        }
        let n = conn.read(&mut buf[end..])?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        let mut close = false;
        while start < end && !close {
            match parse(&buf[start..end]) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Request {
                    req,
                    keep_alive,
                    len,
                }) => {
                    close = !keep_alive;
                    route(site, &req, &mut out, close);
                    start += len;
                }
                Err(f) => {
                    let (code, reason) = f.status();
                    respond(&mut out, code, reason, "text/plain", b"", true);
                    close = true;
                }
            }
        }
        if start == end {
            start = 0;
            end = 0;
            if buf.len() > 4 * READ_CHUNK {
                buf = vec![0u8; READ_CHUNK];
            }
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            out.clear();
        }
        if close {
            // Lingering close (as Go's net/http does): closing with unread
            // input would reset the connection, and the client could lose
            // the response. Send FIN, then drain what is in flight, bounded
            // in bytes and time.
            let _ = conn.shutdown(std::net::Shutdown::Write);
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(1)));
            let mut drained = 0;
            while drained < LINGER_BYTES {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
            return Ok(());
        }
    }
}

/// Accepts connections forever, one coroutine per connection, started on
/// the workers in turn (`Builder::worker`: a coroutine stays where it
/// starts).
pub fn serve(site: Arc<Site>, listener: TcpListener) -> io::Result<()> {
    let workers = goro::stats().workers;
    for (i, conn) in listener.incoming().enumerate() {
        let conn = conn?;
        let site = site.clone();
        let spawned = goro::Builder::new().worker(i % workers).spawn(move || {
            let _ = handle(&site, conn);
        });
        if let Err(e) = spawned {
            // No memory for the coroutine: the connection is closed, the
            // server goes on.
            eprintln!("http_server: dropping a connection: {e}");
        }
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let mut port: u16 = 8080;
    let mut root = PathBuf::from(".");
    let mut workers = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next();
        let parsed = match (flag.as_str(), val) {
            ("--port", Some(v)) => v.parse().map(|p| port = p).map_err(|e| e.to_string()),
            ("--root", Some(v)) => {
                root = PathBuf::from(v);
                Ok(())
            }
            ("--workers", Some(v)) => v
                .parse()
                .map(|n: usize| workers = Some(n))
                .map_err(|e| e.to_string()),
            _ => Err(format!("bad option {flag}")),
        };
        if let Err(e) = parsed {
            eprintln!("{e}\nusage: http_server [--port N] [--root DIR] [--workers N]");
            std::process::exit(2);
        }
    }
    if let Some(n) = workers {
        goro::Config::new()
            .workers(n)
            .apply()
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    println!("http server listening on http://{addr}/ (static files from {root:?})");
    println!("try: curl http://{addr}/json; wrk -c 100 -d 10s http://{addr}/json");
    serve(Arc::new(Site { root }), listener)
}
