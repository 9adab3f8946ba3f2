//! Drives `examples/kv_server.rs` (compiled in here as a module, so the
//! tests run exactly the code `cargo run --example kv_server` runs): raw
//! RESP from a test client, garbage and oversized requests, expiry, and
//! the real `redis-cli` and `redis-benchmark`.

mod clients;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;

#[allow(dead_code)]
#[path = "../examples/kv_server.rs"]
mod kv_server;

use kv_server::{Db, glob_match};

fn start() -> (Arc<Db>, SocketAddr) {
    let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let db = Db::new();
    let d = db.clone();
    goro::go!(move || kv_server::serve(d, listener));
    (db, addr)
}

/// A RESP2 reply, as the test client reads it.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

use Reply::*;

fn bulk(s: &str) -> Reply {
    Bulk(Some(s.as_bytes().to_vec()))
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
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

    fn raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    fn send(&mut self, args: &[&str]) {
        self.raw(&encode(args));
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.reply()
    }

    fn reply(&mut self) -> Reply {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("a reply line");
        assert!(n > 0, "the server closed the connection");
        let line = line.trim_end_matches("\r\n");
        let (tag, rest) = line.split_at(1);
        match tag {
            "+" => Simple(rest.into()),
            "-" => Error(rest.into()),
            ":" => Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Bulk(None);
                }
                let mut v = vec![0; n as usize + 2];
                self.r.read_exact(&mut v).unwrap();
                assert_eq!(&v[n as usize..], b"\r\n");
                v.truncate(n as usize);
                Bulk(Some(v))
            }
            "*" => {
                let n: usize = rest.parse().unwrap();
                Array((0..n).map(|_| self.reply()).collect())
            }
            _ => panic!("not a RESP reply: {line:?}"),
        }
    }

    /// Reads replies until PONG; every one before it must be an error.
    /// Returns how many errors came first.
    fn errors_then_pong(&mut self) -> usize {
        for i in 0..8 {
            match self.reply() {
                Simple(s) if s == "PONG" => return i,
                Error(e) => assert!(e.starts_with("ERR"), "{e}"),
                r => panic!("expected an error or PONG, got {r:?}"),
            }
        }
        panic!("no PONG after 8 replies");
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

#[test]
fn every_listed_command_answers_as_redis_does() {
    support::within("kv commands", || {
        let (_db, addr) = start();
        let mut c = Conn::new(addr);
        let cases: &[(&[&str], Reply)] = &[
            (&["PING"], Simple("PONG".into())),
            (&["ping", "hi"], bulk("hi")),
            (&["ECHO", "hello world"], bulk("hello world")),
            (&["GET", "k"], Bulk(None)),
            (&["SET", "k", "v1"], Simple("OK".into())),
            (&["GET", "k"], bulk("v1")),
            (&["SET", "k", "v2", "NX"], Bulk(None)),
            (&["SET", "k", "v2", "XX"], Simple("OK".into())),
            (&["GET", "k"], bulk("v2")),
            (&["SET", "new", "x", "XX"], Bulk(None)),
            (&["SET", "new", "x", "NX"], Simple("OK".into())),
            (
                &["SET", "k", "v", "NX", "XX"],
                Error("ERR syntax error".into()),
            ),
            (
                &["SET", "k", "v", "EX", "0"],
                Error("ERR invalid expire time in 'set' command".into()),
            ),
            (
                &["SET", "k", "v", "EX", "x"],
                Error("ERR value is not an integer or out of range".into()),
            ),
            (
                &["SET", "k", "v", "BOGUS"],
                Error("ERR syntax error".into()),
            ),
            (&["EXISTS", "k", "new", "nope", "k"], Int(3)),
            (&["DEL", "new", "nope"], Int(1)),
            (&["EXISTS", "new"], Int(0)),
            (&["INCR", "n"], Int(1)),
            (&["INCR", "n"], Int(2)),
            (&["DECR", "n"], Int(1)),
            (&["INCRBY", "n", "41"], Int(42)),
            (&["DECRBY", "n", "-8"], Int(50)),
            (&["GET", "n"], bulk("50")),
            (
                &["INCR", "k"],
                Error("ERR value is not an integer or out of range".into()),
            ),
            (&["SET", "big", "9223372036854775807"], Simple("OK".into())),
            (
                &["INCR", "big"],
                Error("ERR increment or decrement would overflow".into()),
            ),
            (&["MSET", "a", "1", "b", "2", "c", "3"], Simple("OK".into())),
            (
                &["MSET", "a", "1", "b"],
                Error("ERR wrong number of arguments for 'mset' command".into()),
            ),
            (
                &["MGET", "a", "nope", "c"],
                Array(vec![bulk("1"), Bulk(None), bulk("3")]),
            ),
            (&["TTL", "a"], Int(-1)),
            (&["TTL", "nope"], Int(-2)),
            (&["EXPIRE", "a", "100"], Int(1)),
            (&["TTL", "a"], Int(100)),
            (&["PERSIST", "a"], Int(1)),
            (&["TTL", "a"], Int(-1)),
            (&["EXPIRE", "nope", "100"], Int(0)),
            (&["EXPIRE", "b", "0"], Int(1)),
            (&["GET", "b"], Bulk(None)),
            (&["SET", "e", "x", "EX", "1000"], Simple("OK".into())),
            (&["TTL", "e"], Int(1000)),
            (&["SET", "e", "y", "KEEPTTL"], Simple("OK".into())),
            (&["TTL", "e"], Int(1000)),
            (&["SET", "e", "z"], Simple("OK".into())),
            (&["TTL", "e"], Int(-1)),
            (
                &["GET"],
                Error("ERR wrong number of arguments for 'get' command".into()),
            ),
            (
                &["NOSUCH", "x"],
                Error("ERR unknown command 'NOSUCH', with args beginning with: 'x'".into()),
            ),
            (&["SELECT", "0"], Simple("OK".into())),
            (
                &["SELECT", "1"],
                Error("ERR DB index is out of range".into()),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(&c.cmd(args), want, "{args:?}");
        }
        match c.cmd(&["DBSIZE"]) {
            Int(n) => assert_eq!(n, 6, "k n big a c e"),
            r => panic!("{r:?}"),
        }
        assert_eq!(c.cmd(&["FLUSHALL"]), Simple("OK".into()));
        assert_eq!(c.cmd(&["DBSIZE"]), Int(0));
        assert_eq!(c.cmd(&["QUIT"]), Simple("OK".into()));
        let mut rest = Vec::new();
        c.r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "QUIT closes the connection");
    });
}

#[test]
fn keys_matches_redis_globs() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "anything", true),
        ("*", "", true),
        ("h?llo", "hello", true),
        ("h?llo", "hllo", false),
        ("h*llo", "heeeello", true),
        ("h*llo", "hellox", false),
        ("h[ae]llo", "hallo", true),
        ("h[ae]llo", "hillo", false),
        ("h[^e]llo", "hallo", true),
        ("h[^e]llo", "hello", false),
        ("h[a-b]llo", "hbllo", true),
        ("h[a-b]llo", "hcllo", false),
        ("h\\*llo", "h*llo", true),
        ("h\\*llo", "hello", false),
        ("user:*:name", "user:42:name", true),
        ("user:*:name", "user:42:age", false),
        ("*a*b*", "xxaxxbxx", true),
        ("*a*b*", "xxbxxaxx", false),
    ];
    for &(p, s, want) in cases {
        assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), want, "{p} vs {s}");
    }
    support::within("KEYS over the wire", || {
        let (_db, addr) = start();
        let mut c = Conn::new(addr);
        for k in ["user:1", "user:2", "session:1", "u"] {
            c.cmd(&["SET", k, "x"]);
        }
        let mut keys = match c.cmd(&["KEYS", "user:*"]) {
            Array(v) => v,
            r => panic!("{r:?}"),
        };
        keys.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(keys, vec![bulk("user:1"), bulk("user:2")]);
        assert!(matches!(c.cmd(&["KEYS", "*"]), Array(v) if v.len() == 4));
        assert_eq!(c.cmd(&["KEYS", "nothing*"]), Array(vec![]));
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    support::within("pipelining", || {
        let (_db, addr) = start();
        let mut c = Conn::new(addr);
        // 2,000 requests in one write, spanning many reads on the server.
        let mut batch = Vec::new();
        for i in 0..1000 {
            batch.extend(encode(&["SET", &format!("k{i}"), &format!("v{i}")]));
            batch.extend(encode(&["GET", &format!("k{i}")]));
        }
        // Inline requests mix with RESP arrays.
        batch.extend_from_slice(b"PING\r\nECHO inline\n");
        c.raw(&batch);
        for i in 0..1000 {
            assert_eq!(c.reply(), Simple("OK".into()));
            assert_eq!(c.reply(), bulk(&format!("v{i}")));
        }
        assert_eq!(c.reply(), Simple("PONG".into()));
        assert_eq!(c.reply(), bulk("inline"));
        // A request split byte by byte across writes.
        for b in encode(&["ECHO", "split"]) {
            c.raw(&[b]);
        }
        assert_eq!(c.reply(), bulk("split"));
        // A 1 MiB value, bigger than the server's read buffer.
        let big = "x".repeat(1 << 20);
        assert_eq!(c.cmd(&["SET", "big", &big]), Simple("OK".into()));
        assert_eq!(c.cmd(&["GET", "big"]), bulk(&big));
    });
}

#[test]
fn framing_errors_get_error_replies_and_the_connection_lives() {
    support::within("bad input", || {
        let (db, addr) = start();
        let mut c = Conn::new(addr);
        let bad: &[&[u8]] = &[
            b"*x\r\n",
            b"*99999999999\r\n",
            b"*1\r\nfoo\r\n",
            b"*1\r\n$-3\r\n",
            // A 1 GiB bulk length: refused before any of it is buffered.
            b"*2\r\n$3\r\nSET\r\n$1073741824\r\n",
            b"*1\r\n$3\r\nabcXY\r\n",
            b"*1\r\n$99999999999999999999999\r\n",
        ];
        for input in bad {
            c.raw(input);
            c.raw(&encode(&["PING"]));
            let errors = c.errors_then_pong();
            assert!(
                errors >= 1,
                "{:?} got no error",
                String::from_utf8_lossy(input)
            );
        }
        // An inline line longer than 64 KiB, no newline yet: an error,
        // then the rest of that line is discarded.
        c.raw(&vec![b'a'; 70 << 10]);
        c.raw(b"still the same line\r\n");
        c.raw(&encode(&["PING"]));
        assert_eq!(c.errors_then_pong(), 1);

        // Random garbage (no '*' or '$', so it frames as inline lines),
        // then a marker: every reply before the marker is an error.
        let mut rng = fastrand::Rng::with_seed(support::stress_seed("kv garbage"));
        let garbage: Vec<u8> = (0..20_000)
            .map(|_| rng.u8(..))
            .filter(|b| !matches!(b, b'*' | b'$'))
            .collect();
        let lines = garbage.iter().filter(|&&b| b == b'\n').count();
        c.raw(&garbage);
        c.raw(b"\r\n");
        c.send(&["ECHO", "marker"]);
        let mut seen = 0;
        loop {
            match c.reply() {
                Error(_) => seen += 1,
                r if r == bulk("marker") => break,
                r => panic!("garbage produced {r:?}"),
            }
            assert!(seen <= lines + 2, "more replies than garbage lines");
        }
        // The server and other connections are unharmed.
        let mut d = Conn::new(addr);
        assert_eq!(d.cmd(&["SET", "after", "ok"]), Simple("OK".into()));
        assert_eq!(c.cmd(&["GET", "after"]), bulk("ok"));
        assert!(!db.is_empty());
    });
}

#[test]
fn expired_keys_vanish_read_or_not() {
    support::within("expiry", || {
        let (db, addr) = start();
        let mut c = Conn::new(addr);
        assert_eq!(
            c.cmd(&["SET", "short", "x", "PX", "30"]),
            Simple("OK".into())
        );
        assert_eq!(
            c.cmd(&["SET", "long", "x", "EX", "1000"]),
            Simple("OK".into())
        );
        match c.cmd(&["PTTL", "short"]) {
            Int(ms) => assert!((0..=30).contains(&ms), "{ms}"),
            r => panic!("{r:?}"),
        }
        support::eventually("the short key to expire", || {
            c.cmd(&["GET", "short"]) == Bulk(None)
        });
        assert_eq!(c.cmd(&["TTL", "short"]), Int(-2));
        assert_eq!(c.cmd(&["GET", "long"]), bulk("x"));
        // Keys nobody reads are removed by the sweeper (goro's ticker).
        for i in 0..200 {
            c.cmd(&["SET", &format!("t{i}"), "x", "PX", "20"]);
        }
        // Overwritten without a TTL before it is due: must survive.
        c.cmd(&["SET", "t0", "kept"]);
        support::eventually("the sweeper to remove unread expired keys", || {
            db.stored() == 2
        });
        assert_eq!(c.cmd(&["GET", "t0"]), bulk("kept"));
    });
}

#[test]
fn concurrent_increments_are_not_lost() {
    support::within("concurrent INCR", || {
        let (_db, addr) = start();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = Conn::new(addr);
                    // Pipelined in batches of 50.
                    for _ in 0..10 {
                        let mut b = Vec::new();
                        for _ in 0..50 {
                            b.extend(encode(&["INCR", "counter"]));
                            b.extend(encode(&["MSET", "x", "1", "y", "1"]));
                        }
                        c.raw(&b);
                        for _ in 0..100 {
                            assert!(!matches!(c.reply(), Error(_)));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut c = Conn::new(addr);
        assert_eq!(c.cmd(&["GET", "counter"]), bulk("4000"));
    });
}

#[test]
fn redis_cli_drives_it_unmodified() {
    let Some(cli) = clients::tool("redis_cli_drives_it_unmodified", "redis-cli") else {
        return;
    };
    support::within("redis-cli", move || {
        let (_db, addr) = start();
        let port = addr.port().to_string();
        let cli = |args: &[&str]| {
            let mut c = Command::new(&cli);
            c.args(["-h", "127.0.0.1", "-p", &port]).args(args);
            clients::run_ok(c, support::PATIENCE).trim_end().to_string()
        };
        assert_eq!(cli(&["ping"]), "PONG");
        assert_eq!(cli(&["set", "greeting", "hello world"]), "OK");
        assert_eq!(cli(&["get", "greeting"]), "hello world");
        assert_eq!(cli(&["incr", "n"]), "1");
        assert_eq!(cli(&["mset", "a", "1", "b", "2"]), "OK");
        // The nil prints as an empty line, trimmed away here.
        assert_eq!(cli(&["mget", "zz", "a", "b"]), "\n1\n2");
        assert_eq!(cli(&["set", "t", "x", "ex", "500"]), "OK");
        assert_eq!(cli(&["ttl", "t"]), "500");
        assert_eq!(cli(&["exists", "a", "b", "zz"]), "2");
        assert_eq!(cli(&["del", "a", "b"]), "2");
        assert_eq!(cli(&["keys", "gr*"]), "greeting");
        assert_eq!(cli(&["dbsize"]), "3");
        // Errors come back as errors (redis-cli prints them with "ERR").
        assert!(cli(&["incr", "greeting"]).contains("ERR value is not an integer"));
        assert!(cli(&["nosuch"]).contains("ERR unknown command"));
        assert_eq!(cli(&["flushall"]), "OK");
        assert_eq!(cli(&["dbsize"]), "0");
    });
}

#[test]
fn redis_benchmark_drives_it_unmodified() {
    let Some(bench) = clients::tool("redis_benchmark_drives_it_unmodified", "redis-benchmark")
    else {
        return;
    };
    support::within("redis-benchmark", move || {
        let (db, addr) = start();
        let port = addr.port().to_string();
        for pipeline in ["1", "16"] {
            let mut c = Command::new(&bench);
            c.args(["-h", "127.0.0.1", "-p", &port, "-c", "20", "-n", "4000"])
                .args(["-P", pipeline, "-q", "-t", "ping,set,get,incr,mset"]);
            let out = clients::run_ok(c, support::PATIENCE);
            for t in [
                "PING_INLINE",
                "PING_MBULK",
                "SET",
                "GET",
                "INCR",
                "MSET (10 keys)",
            ] {
                assert!(
                    out.contains(&format!("{t}: ")) && !out.to_lowercase().contains("error"),
                    "-P {pipeline}: no {t} result in:\n{out}"
                );
            }
        }
        // redis-benchmark's keys are there, with its 3-byte values.
        let mut c = Conn::new(addr);
        assert!(matches!(c.cmd(&["GET", "key:__rand_int__"]), Bulk(Some(v)) if v.len() == 3));
        assert_eq!(c.cmd(&["GET", "counter:__rand_int__"]), bulk("8000"));
        assert!(db.len() >= 2);
    });
}

#[test]
fn args_parse() {
    let a = kv_server::parse_args(
        ["--port", "0", "--workers", "2"]
            .map(String::from)
            .into_iter(),
    )
    .unwrap();
    assert_eq!(
        (a.port, a.workers, a.bind.as_str()),
        (0, Some(2), "127.0.0.1")
    );
    assert!(kv_server::parse_args(["--port", "x"].map(String::from).into_iter()).is_err());
    assert!(kv_server::parse_args(["--nope"].map(String::from).into_iter()).is_err());
}
