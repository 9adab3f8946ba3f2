//! Unix domain sockets through `goro::net`: stream echo, pairs, full
//! duplex, datagrams, timeouts. Socket files live under the temp dir with
//! unique names and are removed afterwards.

mod support;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::net::{UnixDatagram, UnixListener, UnixStream};

/// A unique socket path, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("goro-net-{tag}-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn stream_echo_with_50_coroutine_clients() {
    support::within("stream echo with 50 coroutine clients", || {
        let path = TempPath::new("echo");
        let listener = UnixListener::bind(&path.0).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.0.as_path())
        );
        goro::go!(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                goro::go!(move || {
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => conn.write_all(&buf[..n]).unwrap(),
                        }
                    }
                });
            }
        });
        let handles: Vec<_> = (0..50u8)
            .map(|i| {
                let p = path.0.clone();
                goro::go!(move || {
                    let mut c = UnixStream::connect(&p).unwrap();
                    for r in 0..20u8 {
                        let msg = [i, r, i ^ r];
                        c.write_all(&msg).unwrap();
                        let mut back = [0u8; 3];
                        c.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // From a plain thread too.
        let mut c = UnixStream::connect(&path.0).unwrap();
        c.write_all(b"thread").unwrap();
        let mut back = [0u8; 6];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"thread");
    });
}

#[test]
fn connect_to_a_missing_path_fails_like_std() {
    let path = TempPath::new("missing");
    let ours = UnixStream::connect(&path.0).unwrap_err();
    let std_err = std::os::unix::net::UnixStream::connect(&path.0).unwrap_err();
    assert_eq!(ours.kind(), std_err.kind());
    assert_eq!(ours.kind(), io::ErrorKind::NotFound);
}

#[test]
fn connect_waits_while_the_backlog_is_full() {
    support::within("connect waits while the backlog is full", || {
        // A listener with a backlog of 4 that nobody accepts from yet: once
        // its queue is full, a non-blocking connect says EAGAIN, and goro's
        // connect must wait (as std's blocking connect does) rather than fail.
        let path = TempPath::new("backlog");
        let l = std::os::unix::net::UnixListener::bind(&path.0).unwrap();
        // SAFETY: listen(2) again on our own listening socket just sets a new
        // backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 4) }, 0);
        let p = path.0.clone();
        let made = std::sync::Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let h = goro::go!(move || {
            let mut held = Vec::new();
            for _ in 0..20 {
                held.push(UnixStream::connect(&p).unwrap());
                m.fetch_add(1, Ordering::Relaxed);
            }
            held.len()
        });
        // The queue holds 5; the connecting coroutine cannot get further until
        // we accept, however long we wait.
        support::eventually("the first 5 connects to complete", || {
            made.load(Ordering::Relaxed) >= 5
        });
        // A connect that wrongly got through would show within this window (a
        // correct one passes however long it is).
        std::thread::sleep(Duration::from_millis(20));
        assert!(made.load(Ordering::Relaxed) < 20 && !h.is_finished());
        let mut accepted = Vec::new();
        l.set_nonblocking(true).unwrap();
        while !h.is_finished() || accepted.len() < 20 {
            match l.accept() {
                Ok((s, _)) => accepted.push(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(h.join().unwrap(), 20);
    });
}

#[test]
fn pair_full_duplex_and_shutdown() {
    support::within("pair full duplex and shutdown", || {
        let (a, b) = UnixStream::pair().unwrap();
        let a2 = a.try_clone().unwrap();
        let reader = goro::go!(move || {
            let mut got = Vec::new();
            (&a2).read_to_end(&mut got).unwrap();
            got.len()
        });
        let echo = goro::go!(move || {
            let mut b = b;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = b.read(&mut buf).unwrap();
                if n == 0 {
                    b.shutdown(Shutdown::Write).unwrap();
                    return;
                }
                b.write_all(&buf[..n]).unwrap();
            }
        });
        let chunk = vec![3u8; 1 << 16];
        for _ in 0..64 {
            (&a).write_all(&chunk).unwrap();
        }
        a.shutdown(Shutdown::Write).unwrap();
        echo.join().unwrap();
        assert_eq!(reader.join().unwrap(), 64 << 16);
    });
}

fn check_stream_timeout() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(20)));
    let t = Instant::now();
    let e = (&a).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        a.set_write_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(a.write_timeout().unwrap(), None);
}

#[test]
fn stream_read_timeout_in_a_coroutine_and_a_thread() {
    support::within("stream read timeout in a coroutine and a thread", || {
        goro::go!(check_stream_timeout).join().unwrap();
        check_stream_timeout();
    });
}

#[test]
fn datagrams_by_path_and_pairs() {
    support::within("datagrams by path and pairs", || {
        let pa = TempPath::new("dga");
        let pb = TempPath::new("dgb");
        let a = UnixDatagram::bind(&pa.0).unwrap();
        let b = UnixDatagram::bind(&pb.0).unwrap();
        let pa_path = pa.0.clone();
        let h = goro::go!(move || {
            let mut buf = [0u8; 32];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(from.as_pathname(), Some(pa_path.as_path()));
            b.send_to(&buf[..n], &pa_path).unwrap();
        });
        a.send_to(b"hello", &pb.0).unwrap();
        let mut buf = [0u8; 32];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        h.join().unwrap();

        let (x, y) = UnixDatagram::pair().unwrap();
        let h = goro::go!(move || {
            let mut buf = [0u8; 8];
            let n = y.recv(&mut buf).unwrap();
            y.send(&buf[..n]).unwrap();
        });
        x.send(b"pair").unwrap();
        let n = x.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pair");
        h.join().unwrap();

        let u = UnixDatagram::unbound().unwrap();
        u.connect(&pa.0).unwrap();
        u.send(b"via connect").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"via connect");
        u.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(
            u.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    });
}

#[test]
fn a_full_datagram_queue_parks_the_sender_until_the_receiver_drains_it() {
    support::within(
        "a full datagram queue parks the sender until the receiver drains it",
        || {
            let (x, y) = UnixDatagram::pair().unwrap();
            const N: usize = 5000; // far beyond the default queue of ~10-200 datagrams
            let sender = goro::go!(move || {
                for i in 0..N as u32 {
                    x.send(&i.to_le_bytes()).unwrap();
                }
            });
            let mut buf = [0u8; 4];
            for i in 0..N as u32 {
                let n = y.recv(&mut buf).unwrap();
                assert_eq!(n, 4);
                assert_eq!(u32::from_le_bytes(buf), i);
            }
            sender.join().unwrap();
        },
    );
}

#[test]
fn conversions_and_debug() {
    support::within("conversions and debug", || {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = UnixStream::from_std(a).unwrap();
        let mut b = b;
        b.write_all(b"std").unwrap();
        let mut buf = [0u8; 3];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"std");
        assert!(format!("{a:?}").contains("UnixStream"));
        let a = a.into_std().unwrap();
        a.set_nonblocking(false).unwrap();
        assert!(a.peer_addr().is_ok());
    });
}

#[test]
fn try_from_std_for_each_unix_type() {
    support::within("try_from std for the unix types", || {
        let path = TempPath::new("try-from");
        let l = UnixListener::try_from(std::os::unix::net::UnixListener::bind(&path.0).unwrap())
            .unwrap();
        let c = UnixStream::try_from(std::os::unix::net::UnixStream::connect(&path.0).unwrap())
            .unwrap();
        let (mut s, _) = goro::go!(move || l.accept().unwrap()).join().unwrap();
        s.write_all(b"via").unwrap();
        let mut buf = [0u8; 3];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"via");

        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let a = UnixDatagram::try_from(a).unwrap();
        b.send(b"dgram").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"dgram");
        assert!(format!("{a:?}").contains("UnixDatagram"));
        assert!(a.as_raw_fd() >= 0);
    });
}
