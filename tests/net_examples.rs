//! Drives the net examples (`examples/echo_*.rs`, `examples/push_*.rs`):
//! their logic is compiled in here as modules, so `cargo test` exercises
//! exactly the code `cargo run --example` runs.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::net::{TcpListener, TcpStream};

#[allow(dead_code)]
#[path = "../examples/echo_client.rs"]
mod echo_client;

#[allow(dead_code)]
#[path = "../examples/push_server.rs"]
mod push_server;

#[allow(dead_code)]
#[path = "../examples/push_client.rs"]
mod push_client;

use push_server::{Config, Hub, SlowPolicy};

#[test]
fn echo_server_serves_the_echo_load_generator() {
    support::within("the echo example's server and load generator", || {
        let addr = echo_client::start_server().unwrap();
        let r = echo_client::run(addr, 20, 64, Duration::from_millis(300)).unwrap();
        assert!(r.requests > 0);
        assert_eq!(r.latencies.len() as u64, r.requests);
        assert!(r.percentile(50.0) <= r.percentile(99.0));
        assert!(r.percentile(99.0) <= r.percentile(100.0));
        assert!(r.rate() > 0.0);
        // Larger messages than one segment, fewer connections.
        let r = echo_client::run(addr, 3, 100_000, Duration::from_millis(100)).unwrap();
        assert!(r.requests > 0);
    });
}

fn start_push(cfg: Config) -> (Arc<Hub>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = Hub::new(cfg);
    let h = hub.clone();
    goro::go!(move || push_server::serve(h, listener));
    (hub, addr)
}

/// A test client of the push protocol.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::PATIENCE)).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn login(addr: SocketAddr, user: &str, room: &str) -> Client {
        let mut c = Client::connect(addr);
        c.send(&format!("LOGIN {user} {room}"));
        assert_eq!(c.line(), format!("OK {user}"));
        c
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).unwrap();
        s.trim_end().to_string()
    }

    fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        self.r.read_to_end(&mut rest).unwrap();
    }
}

#[test]
fn push_protocol_unicast_multicast_broadcast() {
    support::within("a push protocol session", || {
        let (hub, addr) = start_push(Config::default());
        let mut alice = Client::login(addr, "alice", "r1");
        let mut bob = Client::login(addr, "bob", "r1");
        let mut carol = Client::login(addr, "carol", "r2");

        alice.send("PING");
        assert_eq!(alice.line(), "PONG");

        alice.send("SEND bob hi there");
        assert_eq!(bob.line(), "MSG alice hi there");
        alice.send("SEND nobody x");
        assert_eq!(alice.line(), "ERR no such user");

        bob.send("ROOM r1 hello room");
        assert_eq!(alice.line(), "ROOM r1 bob hello room");
        assert_eq!(bob.line(), "ROOM r1 bob hello room");

        // Carol is not in r1: the next thing she sees is the broadcast.
        carol.send("ALL everyone");
        for c in [&mut alice, &mut bob, &mut carol] {
            assert_eq!(c.line(), "ALL carol everyone");
        }

        carol.send("JOIN r1");
        assert_eq!(carol.line(), "OK r1");
        alice.send("ROOM r1 three of us");
        for c in [&mut alice, &mut bob, &mut carol] {
            assert_eq!(c.line(), "ROOM r1 alice three of us");
        }
        carol.send("LEAVE r1");
        assert_eq!(carol.line(), "OK r1");

        carol.send("BOGUS");
        assert!(carol.line().starts_with("ERR unknown command"));
        carol.send("STATS");
        let stats = carol.line();
        assert!(stats.starts_with("STATS conns=3 users=3 "), "{stats}");
        assert!(hub.connections() == 3);

        carol.send("QUIT");
        assert_eq!(carol.line(), "BYE");
        carol.expect_eof();

        // A second login under a name in use wins; the first session ends.
        let mut alice2 = Client::login(addr, "alice", "r1");
        alice.expect_eof();
        alice2.send("PING");
        assert_eq!(alice2.line(), "PONG");

        // The first line must be a login.
        let mut stranger = Client::connect(addr);
        stranger.send("PING");
        assert!(stranger.line().starts_with("ERR login first"));
        stranger.expect_eof();
    });
}

#[test]
fn idle_connections_are_closed_and_heartbeats_keep_them_open() {
    support::within_for(
        support::STRESS_PATIENCE,
        "an idle and a heartbeating push client",
        || {
            let (_hub, addr) = start_push(Config {
                idle_timeout: Duration::from_secs(1),
                ..Config::default()
            });
            let mut silent = Client::login(addr, "silent", "r");
            let mut alive = Client::login(addr, "alive", "r");
            let start = Instant::now();
            // Heartbeats every 50 ms, far inside the 1 s timeout.
            while start.elapsed() < Duration::from_millis(1300) {
                alive.send("PING");
                assert_eq!(alive.line(), "PONG");
                goro::sleep(Duration::from_millis(50));
            }
            assert_eq!(silent.line(), "BYE idle");
            silent.expect_eof();
            alive.send("QUIT");
            assert_eq!(alive.line(), "BYE");
        },
    );
}

/// Floods `room` (which `slow` is in and never reads) until the hub
/// reports `counter` above zero; returns how many messages it took.
fn flood_until(hub: &Hub, addr: SocketAddr, room: &str, counter: &str) -> usize {
    let mut flooder = Client::login(addr, "flooder", "elsewhere");
    let text = "x".repeat(1000);
    for i in 1..=200_000 {
        flooder.send(&format!("ROOM {room} {text}"));
        if i % 64 == 0 {
            let stats = hub.stats_line();
            let n: u64 = stats
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(counter))
                .and_then(|v| v.parse().ok())
                .unwrap();
            if n > 0 {
                return i;
            }
        }
    }
    panic!("{counter} never moved: {}", hub.stats_line());
}

#[test]
fn slow_consumers_are_disconnected() {
    support::within(
        "a flood towards a slow push client (disconnect policy)",
        || {
            let (hub, addr) = start_push(Config {
                queue: 4,
                slow: SlowPolicy::Disconnect,
                ..Config::default()
            });
            let mut slow = Client::login(addr, "slow", "busy");
            let mut fine = Client::login(addr, "fine", "quiet");
            flood_until(&hub, addr, "busy", "kicked_slow=");
            // The slow client finds its stream ended once it reads what was sent.
            slow.expect_eof();
            // Everyone else is unaffected.
            fine.send("PING");
            assert_eq!(fine.line(), "PONG");
        },
    );
}

#[test]
fn slow_consumers_lose_messages_but_stay_connected() {
    support::within("a flood towards a slow push client (drop policy)", || {
        let (hub, addr) = start_push(Config {
            queue: 4,
            slow: SlowPolicy::Drop,
            ..Config::default()
        });
        let mut slow = Client::login(addr, "slow", "busy");
        flood_until(&hub, addr, "busy", "dropped=");
        // Drain; a PING answered while the queue is still full loses its PONG
        // too, so a pinger asks again every few milliseconds (by time, not by
        // lines read: the drain may end before any count comes round) until a
        // PONG gets through.
        let got_pong = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pinger = {
            let mut w = slow.w.try_clone().unwrap();
            let got_pong = got_pong.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + support::PATIENCE;
                while !got_pong.load(std::sync::atomic::Ordering::Acquire)
                    && Instant::now() < deadline
                {
                    w.write_all(b"PING\n").unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        loop {
            let l = slow.line();
            if l == "PONG" {
                break;
            }
            assert!(l.starts_with("ROOM busy flooder "), "{l}");
        }
        got_pong.store(true, std::sync::atomic::Ordering::Release);
        pinger.join().unwrap();
    });
}

#[test]
fn push_client_holds_its_connections() {
    support::within_for(
        support::STRESS_PATIENCE,
        "the push client example holding 200 connections",
        || {
            let (hub, addr) = start_push(Config::default());
            let opts = push_client::Options {
                addrs: vec![addr],
                conns: 200,
                rooms: 10,
                ping: Duration::from_millis(100),
                hold: Duration::from_millis(400),
                parallel: 32,
                login_timeout: Duration::from_secs(20),
            };
            let r = push_client::run(&opts).unwrap();
            assert_eq!((r.logged_in, r.failed), (200, 0), "{:?}", r.first_error);
            let stats = r.server_stats.expect("a STATS reply");
            assert!(stats.contains("conns=201 "), "{stats}");
            // Heartbeats flowed while the connections were held.
            assert!(r.pongs > 0);
            // All closed again afterwards (the server notices at its own pace).
            let deadline = Instant::now() + support::PATIENCE;
            while hub.connections() > 0 {
                assert!(Instant::now() < deadline, "{}", hub.stats_line());
                goro::sleep(Duration::from_millis(5));
            }
        },
    );
}
