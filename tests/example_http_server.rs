//! Drives `examples/http_server.rs` (compiled in here as a module): a raw
//! client for keep-alive, pipelining, chunked bodies, limits and bad
//! input, then the real `curl` and `wrk`.

mod clients;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

#[allow(dead_code)]
#[path = "../examples/http_server.rs"]
mod http_server;

use http_server::{JSON_BODY, MAX_BODY, Site};

fn start() -> SocketAddr {
    let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let site = Arc::new(Site {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    });
    goro::go!(move || http_server::serve(site, listener));
    addr
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

/// One response as the raw client reads it.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::PATIENCE)).unwrap();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn raw(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }

    fn resp(&mut self) -> Resp {
        let mut line = String::new();
        assert!(
            self.r.read_line(&mut line).unwrap() > 0,
            "connection closed"
        );
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let n: usize = r.header("content-length").unwrap().parse().unwrap();
        r.body = vec![0; n];
        self.r.read_exact(&mut r.body).unwrap();
        r
    }

    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

#[test]
fn keep_alive_pipelining_and_endpoints() {
    support::within("http endpoints", || {
        let addr = start();
        let mut c = Conn::new(addr);
        c.raw(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.resp();
        assert_eq!((r.status, r.body.as_slice()), (200, JSON_BODY));
        assert_eq!(r.header("content-type"), Some("application/json"));
        // The same connection again (keep-alive), then 50 pipelined.
        let mut batch = Vec::new();
        for i in 0..50 {
            if i % 2 == 0 {
                batch.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            } else {
                let body = format!("body {i}");
                batch.extend_from_slice(
                    format!(
                        "POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        }
        c.raw(&batch);
        for i in 0..50 {
            let r = c.resp();
            assert_eq!(r.status, 200);
            if i % 2 == 0 {
                assert_eq!(r.body, b"hello, world\n");
            } else {
                assert_eq!(r.body, format!("body {i}").as_bytes());
            }
        }
        // Static file through the blocking pool.
        c.raw(b"GET /static/Cargo.toml HTTP/1.1\r\n\r\n");
        let r = c.resp();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap()
        );
        for bad in ["/static/../Cargo.toml", "/static/nope", "/static/", "/nope"] {
            c.raw(format!("GET {bad} HTTP/1.1\r\n\r\n").as_bytes());
            assert_eq!(c.resp().status, 404, "{bad}");
        }
        c.raw(b"DELETE /json HTTP/1.1\r\n\r\n");
        assert_eq!(c.resp().status, 405);
        // Connection: close is honoured.
        c.raw(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        let r = c.resp();
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
        // HTTP/1.0 closes by default.
        let mut d = Conn::new(addr);
        d.raw(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(d.resp().status, 200);
        assert!(d.closed());
    });
}

#[test]
fn chunked_bodies_split_anywhere() {
    support::within("chunked", || {
        let addr = start();
        let mut c = Conn::new(addr);
        let req = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        // Byte by byte, then whole.
        for &b in req.iter() {
            c.raw(&[b]);
        }
        assert_eq!(c.resp().body, b"hello, world");
        c.raw(req);
        assert_eq!(c.resp().body, b"hello, world");
        // A 300 KiB body in 4 KiB chunks.
        let big: Vec<u8> = (0..300 << 10).map(|i| (i % 251) as u8).collect();
        let mut r = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for ch in big.chunks(4096) {
            r.extend_from_slice(format!("{:x}\r\n", ch.len()).as_bytes());
            r.extend_from_slice(ch);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        c.raw(&r);
        assert_eq!(c.resp().body, big);
    });
}

#[test]
fn limits_and_garbage_get_4xx_and_the_server_lives() {
    support::within("limits", || {
        let addr = start();
        let cases: Vec<(Vec<u8>, u16)> =
            vec![
            (b"garbage\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(), 400),
            (
                b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                    .to_vec(),
                400,
            ),
            (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 400),
            (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400),
            (
                format!("POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1)
                    .into_bytes(),
                413,
            ),
            (
                b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n".to_vec(),
                413,
            ),
            (
                format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20 << 10)).into_bytes(),
                431,
            ),
            // A head that never ends.
            ([b"GET / HTTP/1.1\r\n".as_slice(), &b"X: y\r\n".repeat(4000)].concat(), 431),
        ];
        for (input, want) in cases {
            let mut c = Conn::new(addr);
            c.raw(&input);
            let r = c.resp();
            assert_eq!(
                r.status,
                want,
                "{:?}",
                String::from_utf8_lossy(&input[..40.min(input.len())])
            );
            assert!(c.closed());
        }
        let mut c = Conn::new(addr);
        c.raw(b"GET /json HTTP/1.1\r\n\r\n");
        assert_eq!(c.resp().status, 200);
    });
}

#[test]
fn curl_drives_it() {
    let Some(curl) = clients::tool("curl_drives_it", "curl") else {
        return;
    };
    support::within("curl", move || {
        let addr = start();
        let url = |p: &str| format!("http://{addr}{p}");
        let run = |args: &[&str]| {
            let mut c = Command::new(&curl);
            c.args(["-sS", "--max-time", "15"]).args(args);
            clients::run_ok(c, support::PATIENCE)
        };
        assert_eq!(run(&[&url("/json")]).as_bytes(), JSON_BODY);
        assert_eq!(run(&[&url("/")]), "hello, world\n");
        // Two URLs on one connection (curl reuses it: keep-alive).
        let out = run(&["-v", &url("/"), &url("/json")]);
        assert!(out.contains("hello, world") && out.contains("Hello, World!"));
        // A chunked upload of a real file.
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let echoed = run(&[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{file}"),
            &url("/echo"),
        ]);
        assert_eq!(echoed.as_bytes(), std::fs::read(file).unwrap());
        assert_eq!(
            run(&[&url("/static/Cargo.toml")]).as_bytes(),
            std::fs::read(file).unwrap()
        );
        assert_eq!(
            run(&["-o", "/dev/null", "-w", "%{http_code}", &url("/nope")]),
            "404"
        );
    });
}

#[test]
fn wrk_drives_it() {
    let Some(wrk) = clients::tool("wrk_drives_it", "wrk") else {
        return;
    };
    support::within("wrk", move || {
        let addr = start();
        let mut c = Command::new(&wrk);
        c.args([
            "-t",
            "2",
            "-c",
            "20",
            "-d",
            "1s",
            &format!("http://{addr}/json"),
        ]);
        let out = clients::run_ok(c, support::PATIENCE);
        assert!(out.contains("Requests/sec"), "{out}");
        assert!(!out.contains("Non-2xx"), "{out}");
        assert!(!out.contains("Socket errors"), "{out}");
        let requests: u64 = out
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no request count in {out}"));
        assert!(requests > 0);
    });
}
