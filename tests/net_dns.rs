//! Name resolution through `goro::net`: `lookup_host` and `connect` with
//! host names, inside coroutines (on the blocking pool) and on threads.

mod support;

use std::io::{self, Read, Write};

use goro::net::{TcpListener, TcpStream, lookup_host};

#[test]
fn lookup_host_localhost_inside_a_coroutine() {
    support::within("a lookup of localhost in a coroutine", || {
        let addrs = goro::go!(|| lookup_host("localhost:80"))
            .join()
            .unwrap()
            .unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()),
            "{addrs:?}"
        );
        // The lookup ran on the blocking pool, which therefore has a thread
        // (they linger for seconds after their last job).
        assert!(goro::stats().blocking_threads >= 1);
    });
}

#[test]
fn lookup_host_on_a_plain_thread_and_for_literals() {
    support::within("lookups on a plain thread", || {
        let addrs = lookup_host("localhost:443").unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 443 && a.ip().is_loopback())
        );
        let lit = lookup_host("127.0.0.1:8080").unwrap();
        assert_eq!(lit, vec!["127.0.0.1:8080".parse().unwrap()]);
        let v6 = lookup_host("[::1]:9").unwrap();
        assert_eq!(v6, vec!["[::1]:9".parse().unwrap()]);
    });
}

#[test]
fn bad_host_port_strings_are_errors() {
    support::within("lookups of malformed host:port strings", || {
        for bad in ["localhost", "localhost:port", ":80x"] {
            let e = goro::go!(move || lookup_host(bad)).join().unwrap();
            assert_eq!(
                e.unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    });
}

#[test]
fn connect_by_host_name_from_coroutines() {
    support::within("20 coroutines connecting to localhost by name", || {
        // Listen on IPv4 loopback only; "localhost" may also resolve to ::1,
        // which is then refused: connect must try every address in turn.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Hold the same port on ::1 without listening, so a connect there
        // is refused rather than reaching someone else's server (where the
        // host has no IPv6 loopback, there is nothing to hold).
        let _hold_v6 = {
            let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None);
            s.ok().filter(|s| {
                s.bind(&std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)).into())
                    .is_ok()
            })
        };
        goro::go!(move || {
            for c in listener.incoming() {
                let mut c = c.unwrap();
                let _ = c.write_all(b"hi");
            }
        });
        let handles: Vec<_> = (0..20)
            .map(|i| {
                goro::go!(move || {
                    let mut c = if i % 2 == 0 {
                        TcpStream::connect(format!("localhost:{port}")).unwrap()
                    } else {
                        TcpStream::connect(("localhost", port)).unwrap()
                    };
                    let mut s = String::new();
                    c.read_to_string(&mut s).unwrap();
                    s
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), "hi");
        }
    });
}
