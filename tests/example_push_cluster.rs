//! Drives `examples/push_server.rs` in cluster mode (compiled in here as a
//! module): a real `redis-server` on a free loopback port, two gateways,
//! each with its own Redis connections as separate processes would have,
//! and clients on both; every room message and broadcast must reach every
//! member exactly once, in one order. Skips, saying so, when
//! `redis-server` is not installed (`.ci/run` installs it).

mod clients;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

#[allow(dead_code)]
#[path = "../examples/push_server.rs"]
mod push_server;

use push_server::Hub;
use push_server::cluster::ClusterConfig;

/// A `redis-server` this test started (killed by pid when dropped).
struct Redis {
    _server: clients::Server,
    addr: String,
}

fn redis(test: &str) -> Option<Redis> {
    let exe = clients::tool(test, "redis-server")?;
    // The port is free when chosen; if another process takes it first,
    // the server exits and we try another.
    for _ in 0..5 {
        let port = clients::free_port();
        let mut cmd = Command::new(&exe);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        let mut server = clients::Server::start(cmd);
        let deadline = Instant::now() + support::PATIENCE;
        while server.running() && Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis {
                    _server: server,
                    addr: format!("127.0.0.1:{port}"),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    panic!("redis-server did not start on any of 5 free ports");
}

/// A gateway in cluster mode on a free loopback port.
fn gateway(redis: &str, node: &str) -> (Arc<Hub>, SocketAddr) {
    let cc = ClusterConfig::new(redis, node);
    let hub = Hub::with_cluster(push_server::Config::default(), cc).unwrap();
    let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = hub.clone();
    goro::go!(move || push_server::serve(h, listener));
    (hub, addr)
}

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn login(addr: SocketAddr, user: &str, room: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::PATIENCE)).unwrap();
        let mut c = Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        };
        c.send(&format!("LOGIN {user} {room}"));
        assert_eq!(c.line(), format!("OK {user}"));
        c
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.r
            .read_line(&mut s)
            .expect("a line before the read timeout");
        s.trim_end().to_string()
    }
}

#[test]
fn every_member_on_every_gateway_gets_each_message_once() {
    let test = "every_member_on_every_gateway_gets_each_message_once";
    // The server stays on this thread, so it is killed however the test
    // ends (the watchdog included).
    let Some(server) = redis(test) else { return };
    let redis = server.addr.clone();
    support::within("two gateways sharing rooms through Redis", move || {
        let (hub_a, a) = gateway(&redis, "a");
        let (_hub_b, b) = gateway(&redis, "b");

        // r1 has members on both gateways; so has r2.
        let mut ann = Client::login(a, "ann", "r1");
        let mut bob = Client::login(b, "bob", "r1");
        let mut cat = Client::login(b, "cat", "r2");
        let mut dan = Client::login(a, "dan", "r2");
        let mut eve = Client::login(b, "eve", "r1");

        // 30 room messages from senders on both gateways, interleaved.
        for i in 0..30 {
            match i % 3 {
                0 => ann.send(&format!("ROOM r1 m{i}")),
                1 => bob.send(&format!("ROOM r1 m{i}")),
                _ => dan.send(&format!("ROOM r1 m{i}")), // not a member: may still send
            }
        }
        let mut orders = Vec::new();
        for c in [&mut ann, &mut bob, &mut eve] {
            let got: Vec<String> = (0..30).map(|_| c.line()).collect();
            let mut texts: Vec<&str> = got.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
            for l in &got {
                assert!(l.starts_with("ROOM r1 "), "{l}");
            }
            texts.sort();
            let mut want: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
            want.sort();
            assert_eq!(texts, want, "each message exactly once");
            orders.push(got);
        }
        assert!(
            orders.windows(2).all(|w| w[0] == w[1]),
            "one order for every member: {orders:?}"
        );

        // A broadcast from gateway b reaches everyone on both, once.
        cat.send("ALL hello everyone");
        for c in [&mut ann, &mut bob, &mut cat, &mut dan, &mut eve] {
            assert_eq!(c.line(), "ALL cat hello everyone");
        }
        // Unicast to a user on the other gateway.
        ann.send("SEND cat psst");
        assert_eq!(cat.line(), "MSG ann psst");
        dan.send("SEND nobody x"); // remote unknown users get no error
        dan.send("PING");
        assert_eq!(dan.line(), "PONG");

        // End markers: for each member the next line must be its room's
        // marker, so no duplicate of anything above came late, and r2's
        // members saw none of r1's messages.
        eve.send("ROOM r1 end");
        dan.send("ROOM r2 end");
        for c in [&mut ann, &mut bob, &mut eve] {
            assert_eq!(c.line(), "ROOM r1 eve end");
        }
        for c in [&mut cat, &mut dan] {
            assert_eq!(c.line(), "ROOM r2 dan end");
        }
        ann.send("STATS");
        let stats = ann.line();
        assert!(stats.contains(" cluster node=a "), "{stats}");
        assert!(stats.contains(" lost=0 redis_errors=0"), "{stats}");
        assert!(hub_a.connections() == 2);
    });
    drop(server);
}

#[test]
fn a_gateway_without_its_redis_fails_to_start_with_an_error() {
    support::within("cluster mode, no Redis", || {
        let (_held, port) = clients::refusing_port();
        let cc = ClusterConfig::new(format!("127.0.0.1:{port}"), "x");
        let err = Hub::with_cluster(push_server::Config::default(), cc)
            .err()
            .expect("an error");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        let cc = ClusterConfig::new("no-such-host.invalid:1", "x");
        assert!(Hub::with_cluster(push_server::Config::default(), cc).is_err());
    });
}
