//! TCP through `goro::net`: echo under concurrency, full duplex, timeouts,
//! refused and timed-out connects, shutdown while another coroutine waits,
//! resets, conversions, and the same code from plain threads.

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::net::{TcpListener, TcpStream};

/// Starts an echo server (a coroutine per connection) on a free port.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    goro::go!(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            goro::go!(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// One client session: `rounds` messages of varying size, each echoed.
fn session(addr: SocketAddr, id: usize, rounds: usize) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    for r in 0..rounds {
        let len = 1 + (id * 31 + r * 17) % 3000;
        let msg: Vec<u8> = (0..len).map(|i| (i + id + r) as u8).collect();
        c.write_all(&msg).unwrap();
        let mut back = vec![0u8; len];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "connection {id}, round {r}");
    }
}

#[test]
fn echo_with_200_concurrent_connections() {
    support::within("echo with 200 concurrent connections", || {
        let addr = echo_server();
        let done = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..200)
            .map(|id| {
                let done = done.clone();
                goro::go!(move || {
                    session(addr, id, 20);
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), 200);
    });
}

#[test]
fn the_same_code_works_from_plain_threads() {
    support::within("the same code works from plain threads", || {
        let addr = echo_server();
        let threads: Vec<_> = (0..8)
            .map(|id| std::thread::spawn(move || session(addr, id, 20)))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // And a server accepting on a plain thread, with coroutine clients.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..4 {
                let (mut c, peer) = listener.accept().unwrap();
                assert_eq!(c.peer_addr().unwrap(), peer);
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                c.write_all(s.to_uppercase().as_bytes()).unwrap();
            }
        });
        let clients: Vec<_> = (0..4)
            .map(|i| {
                goro::go!(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.write_all(format!("hello {i}").as_bytes()).unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut s = String::new();
                    c.read_to_string(&mut s).unwrap();
                    assert_eq!(s, format!("HELLO {i}"));
                })
            })
            .collect();
        for h in clients {
            h.join().unwrap();
        }
        server.join().unwrap();
    });
}

#[test]
fn full_duplex_one_coroutine_reads_while_another_writes() {
    support::within(
        "full duplex one coroutine reads while another writes",
        || {
            // 8 MiB through an echo server: far more than the socket buffers hold,
            // so writing without reading at the same time would deadlock.
            const TOTAL: usize = 8 << 20;
            let addr = echo_server();
            let conn = TcpStream::connect(addr).unwrap();
            let mut writer = conn.try_clone().unwrap();
            let w = goro::go!(move || {
                let chunk: Vec<u8> = (0..65536).map(|i| (i % 251) as u8).collect();
                let mut sent = 0;
                while sent < TOTAL {
                    writer.write_all(&chunk).unwrap();
                    sent += chunk.len();
                }
            });
            let r = goro::go!(move || {
                let mut conn = conn;
                let mut buf = vec![0u8; 65536];
                let mut got = 0usize;
                while got < TOTAL {
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0, "early end of file after {got} bytes");
                    for (i, b) in buf[..n].iter().enumerate() {
                        assert_eq!(*b, ((got + i) % 65536 % 251) as u8);
                    }
                    got += n;
                }
                got
            });
            w.join().unwrap();
            assert_eq!(r.join().unwrap(), TOTAL);
        },
    );
}

#[test]
fn full_duplex_through_shared_references() {
    support::within("full duplex through shared references", || {
        let addr = echo_server();
        let conn = TcpStream::connect(addr).unwrap();
        goro::scope(|s| {
            let c = &conn;
            s.spawn(move || {
                let mut w = c;
                for i in 0..1000u32 {
                    w.write_all(&i.to_le_bytes()).unwrap();
                }
            });
            s.spawn(move || {
                let mut r = c;
                for i in 0..1000u32 {
                    let mut b = [0u8; 4];
                    r.read_exact(&mut b).unwrap();
                    assert_eq!(u32::from_le_bytes(b), i);
                }
            });
        });
    });
}

fn silent_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (s, _) = listener.accept().unwrap();
    (c, s)
}

fn check_read_timeout() {
    let (c, _s) = silent_pair();
    assert_eq!(c.read_timeout().unwrap(), None);
    c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(30)));
    let t = Instant::now();
    let err = (&c).read(&mut [0u8; 8]).unwrap_err();
    // std reports EAGAIN on Linux when SO_RCVTIMEO passes.
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    // The socket still works afterwards, and the timeout can be removed.
    c.set_read_timeout(None).unwrap();
    assert_eq!(c.read_timeout().unwrap(), None);
}

#[test]
fn read_timeout_gives_would_block_as_std_does() {
    support::within("read timeout gives would block as std does", || {
        goro::go!(check_read_timeout).join().unwrap();
        check_read_timeout();
    });
}

fn check_write_timeout() {
    let (c, s) = silent_pair();
    c.set_write_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let chunk = vec![7u8; 1 << 16];
    let mut written = 0usize;
    let err = loop {
        match (&c).write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(written < 1 << 30, "the peer never stopped accepting data");
    };
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    assert!(written > 0);
    drop(s);
}

#[test]
fn write_timeout_gives_would_block_when_the_peer_stops_reading() {
    support::within(
        "write timeout gives would block when the peer stops reading",
        || {
            goro::go!(check_write_timeout).join().unwrap();
            check_write_timeout();
        },
    );
}

#[test]
fn zero_timeouts_are_invalid_input() {
    support::within("zero timeouts are invalid input", || {
        let (c, _s) = silent_pair();
        for r in [
            c.set_read_timeout(Some(Duration::ZERO)),
            c.set_write_timeout(Some(Duration::ZERO)),
        ] {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
        let addr = c.peer_addr().unwrap();
        let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn timeouts_are_shared_by_clones_like_socket_options() {
    support::within("timeouts are shared by clones like socket options", || {
        let (c, _s) = silent_pair();
        let d = c.try_clone().unwrap();
        c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(d.write_timeout().unwrap(), Some(Duration::from_secs(3)));
    });
}

/// An address where connects are refused for as long as the returned
/// socket lives: it is bound to a free port and does not listen, so no
/// other socket can take the port meanwhile (a port closed after binding
/// could be reused by anyone).
fn refused_addr() -> (socket2::Socket, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

#[test]
fn connecting_to_a_closed_port_is_connection_refused() {
    support::within("connecting to a closed port is connection refused", || {
        let (_hold, addr) = refused_addr();
        let e = goro::go!(move || TcpStream::connect(addr).unwrap_err())
            .join()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        let e = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    });
}

#[test]
fn connect_tries_every_address_and_returns_the_last_error() {
    support::within(
        "connect tries every address and returns the last error",
        || {
            let good = echo_server();
            let (_hold, bad) = refused_addr();
            let addrs = [bad, good];
            goro::go!(move || {
                let c = TcpStream::connect(&addrs[..]).unwrap();
                assert_eq!(c.peer_addr().unwrap(), good);
                let e = TcpStream::connect(&[bad, bad][..]).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                let e = TcpStream::connect(&[][..]).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            })
            .join()
            .unwrap();
        },
    );
}

#[test]
fn connect_timeout_times_out_when_the_backlog_is_full() {
    support::within("connect timeout times out when the backlog is full", || {
        // std's listener asks for a backlog of 128; once that many connections
        // wait unaccepted, Linux drops further SYNs, so a connect hangs until
        // it times out.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        goro::go!(move || {
            let mut held = Vec::new();
            let err = loop {
                match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                    Ok(c) => held.push(c),
                    Err(e) => break e,
                }
                assert!(held.len() < 2000, "the backlog never filled");
            };
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert!(held.len() >= 100);
        })
        .join()
        .unwrap();
        drop(l);
    });
}

#[test]
fn shutdown_wakes_a_reader_blocked_in_another_coroutine() {
    support::within(
        "shutdown wakes a reader blocked in another coroutine",
        || {
            let (c, _s) = silent_pair();
            let reader = c.try_clone().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let h = goro::go!(move || {
                tx.send(()).unwrap();
                let mut buf = [0u8; 16];
                (&reader).read(&mut buf)
            });
            rx.recv().unwrap();
            // The reader is blocked in `read` when the shutdown comes.
            support::wait_parked(h.id());
            c.shutdown(Shutdown::Read).unwrap();
            assert_eq!(h.join().unwrap().unwrap(), 0);
        },
    );
}

#[test]
fn shutdown_wakes_a_writer_blocked_in_another_coroutine() {
    support::within(
        "shutdown wakes a writer blocked in another coroutine",
        || {
            let (c, _s) = silent_pair();
            let writer = c.try_clone().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let h = goro::go!(move || {
                let chunk = vec![1u8; 1 << 16];
                let mut told = false;
                loop {
                    if let Err(e) = (&writer).write(&chunk) {
                        return e;
                    }
                    if !told {
                        tx.send(()).unwrap();
                        told = true;
                    }
                }
            });
            rx.recv().unwrap();
            // The writer is blocked in `write` (the peer reads nothing) when the
            // shutdown comes.
            support::wait_parked(h.id());
            c.shutdown(Shutdown::Write).unwrap();
            let e = h.join().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
        },
    );
}

#[test]
fn dropping_one_handle_leaves_a_waiting_clone_working() {
    support::within("dropping one handle leaves a waiting clone working", || {
        let (c, mut s) = silent_pair();
        let reader = c.try_clone().unwrap();
        let h = goro::go!(move || {
            let mut buf = [0u8; 5];
            (&reader).read_exact(&mut buf).unwrap();
            buf
        });
        support::wait_parked(h.id());
        drop(c); // not the last handle: nothing closes
        s.write_all(b"still").unwrap();
        assert_eq!(&h.join().unwrap(), b"still");
    });
}

#[test]
fn peer_close_is_end_of_file_and_peer_reset_is_connection_reset() {
    support::within(
        "peer close is end of file and peer reset is connection reset",
        || {
            let (c, s) = silent_pair();
            drop(s);
            let n = goro::go!(move || (&c).read(&mut [0u8; 4]).unwrap())
                .join()
                .unwrap();
            assert_eq!(n, 0);

            let (c, s) = silent_pair();
            s.set_linger(Some(Duration::ZERO)).unwrap();
            assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
            drop(s); // closes with a reset
            let e = goro::go!(move || (&c).read(&mut [0u8; 4]).unwrap_err())
                .join()
                .unwrap();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        },
    );
}

#[test]
fn a_server_keeps_serving_after_a_peer_resets() {
    support::within("a server keeps serving after a peer resets", || {
        let addr = echo_server();
        for _ in 0..20 {
            let c = TcpStream::connect(addr).unwrap();
            (&c).write_all(b"x").unwrap();
            c.set_linger(Some(Duration::ZERO)).unwrap();
            drop(c);
        }
        goro::go!(move || session(addr, 1, 5)).join().unwrap();
    });
}

#[test]
fn peek_nodelay_addresses_and_debug() {
    support::within("peek nodelay addresses and debug", || {
        let (c, mut s) = silent_pair();
        s.write_all(b"peekaboo").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(c.peek(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"peek");
        let mut all = [0u8; 8];
        (&c).read_exact(&mut all).unwrap();
        assert_eq!(&all, b"peekaboo");
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        assert_eq!(c.local_addr().unwrap(), s.peer_addr().unwrap());
        assert_eq!(c.peer_addr().unwrap(), s.local_addr().unwrap());
        c.set_ttl(33).unwrap();
        assert_eq!(c.ttl().unwrap(), 33);
        assert!(c.take_error().unwrap().is_none());
        assert!(format!("{c:?}").contains("TcpStream"));
    });
}

#[test]
fn conversions_from_and_into_std() {
    support::within("conversions from and into std", || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l = TcpListener::try_from(l).unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let c = TcpStream::from_std(c).unwrap();
        let (s, _) = goro::go!(move || l.accept().unwrap()).join().unwrap();
        // Back to std: blocking again, usable with std's own API.
        let dup = s.try_clone().unwrap();
        let e = dup.into_std().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
        let mut s = s.into_std().unwrap();
        s.write_all(b"std").unwrap();
        let mut buf = [0u8; 3];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"std");
        let l2 = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .into_std()
            .unwrap();
        l2.set_nonblocking(true).unwrap(); // an ordinary std listener
    });
}

#[test]
fn listener_clones_share_one_socket() {
    support::within("listener clones share one socket", || {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let l2 = l.try_clone().unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(l2.local_addr().unwrap(), addr);
        let h = goro::go!(move || l2.accept().unwrap().1);
        let c = TcpStream::connect(addr).unwrap();
        assert_eq!(h.join().unwrap(), c.local_addr().unwrap());
        assert!(l.take_error().unwrap().is_none());
    });
}

#[test]
fn bind_errors_are_reported() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let e = std::net::TcpListener::bind(addr).unwrap_err();
    let ours = TcpListener::bind(addr).unwrap_err();
    assert_eq!(ours.kind(), e.kind());
    assert_eq!(ours.kind(), io::ErrorKind::AddrInUse);
    let e = TcpListener::bind("127.0.0.1").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn data_followed_at_once_by_close_reads_the_data_then_end_of_file() {
    support::within(
        "data followed at once by close reads the data then end of file",
        || {
            // The server writes and closes immediately, so the data and the FIN
            // often arrive in one readiness edge: after a short read the reader
            // must still try the socket again (and see end of file), not wait for
            // an edge that will never come.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            goro::go!(move || {
                for c in listener.incoming() {
                    let mut c = c.unwrap();
                    let _ = c.write_all(b"payload");
                }
            });
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    goro::go!(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        let mut s = String::new();
                        c.read_to_string(&mut s).unwrap();
                        s
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(h.join().unwrap(), "payload");
            }
        },
    );
}

/// io_uring ties a request to the thread whose `io_uring_enter` submitted
/// it, and ends it with `ECANCELED` if it must wait after that thread has
/// exited. Plain threads that wait on goro sockets and then exit must
/// therefore never submit the coroutines' operations queued beside theirs.
#[test]
fn threads_that_wait_and_exit_leave_coroutines_operations_alone() {
    support::within(
        "threads that wait and exit leave coroutines operations alone",
        || {
            let addr = echo_server();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let churn = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut threads = 0;
                    while !stop.load(Ordering::Relaxed) && threads < 2000 {
                        std::thread::spawn(|| {
                            let (c, _s) = silent_pair();
                            c.set_read_timeout(Some(Duration::from_micros(200)))
                                .unwrap();
                            for _ in 0..3 {
                                let e = (&c).read(&mut [0u8; 4]).unwrap_err();
                                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                            }
                        })
                        .join()
                        .unwrap();
                        threads += 1;
                    }
                    threads
                })
            };
            let sessions: Vec<_> = (0..16)
                .map(|id| goro::go!(move || session(addr, id, 150)))
                .collect();
            for h in sessions {
                h.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            assert!(churn.join().unwrap() > 0);
        },
    );
}
