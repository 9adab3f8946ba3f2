//! Unmodified `std::net` code in coroutines parks the coroutine, not the
//! worker: many std clients and a server share two workers, blocking
//! semantics (timeouts, the user's non-blocking flag, connect errors,
//! errno) are what a thread would see, and a socket created in a
//! coroutine still blocks properly on a plain thread.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use support::{two_workers, within};

#[test]
fn the_hook_is_linked() {
    assert!(goro_hook::enabled(), "recv does not resolve to the hook");
}

/// The first program: std::net clients against a server, all in
/// coroutines on two workers. Without the hook the first two blocking
/// calls take both workers and nothing else ever runs.
#[test]
fn std_clients_and_a_std_server_share_two_workers() {
    two_workers();
    within("std echo over coroutines", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const CLIENTS: usize = 100;
        goro_runtime::go!(move || {
            for _ in 0..CLIENTS {
                let (mut c, _) = listener.accept().unwrap();
                goro_runtime::go!(move || {
                    let mut buf = [0; 64];
                    while let Ok(n @ 1..) = c.read(&mut buf) {
                        c.write_all(&buf[..n]).unwrap();
                    }
                });
            }
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                goro_runtime::go!(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    for round in 0..10u8 {
                        let msg = [i as u8, round, 7];
                        s.write_all(&msg).unwrap();
                        let mut back = [0; 3];
                        s.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    });
}

/// std clients against goro's own server (goro-net sockets are
/// non-blocking for the program, so the hook leaves them alone).
#[test]
fn std_clients_against_a_goro_net_server() {
    two_workers();
    within("std clients, goro server", || {
        let listener = goro_net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        goro_runtime::go!(move || {
            for c in listener.incoming() {
                let mut c = c.unwrap();
                goro_runtime::go!(move || {
                    let mut buf = [0; 64];
                    while let Ok(n @ 1..) = c.read(&mut buf) {
                        if c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let clients: Vec<_> = (0..100u8)
            .map(|i| {
                goro_runtime::go!(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(&[i; 100]).unwrap();
                    let mut back = [0; 100];
                    s.read_exact(&mut back).unwrap();
                    back == [i; 100]
                })
            })
            .collect();
        assert!(clients.into_iter().all(|c| c.join().unwrap()));
    });
}

/// A read timeout ends the parked read with `WouldBlock` (EAGAIN), what
/// std reports on Linux, and the worker ran other coroutines meanwhile.
#[test]
fn read_timeout_is_eagain_and_the_worker_stays_free() {
    two_workers();
    within("read timeout", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _peer = std::thread::spawn(move || listener.accept().unwrap());
        let h = goro_runtime::go!(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(100)));
            // Many more coroutines than workers spin meanwhile: they can
            // only finish if this read does not hold its worker.
            let spinners: Vec<_> = (0..8)
                .map(|_| goro_runtime::go!(|| (0..100).for_each(|_| goro_runtime::yield_now())))
                .collect();
            let t = Instant::now();
            let e = s.read(&mut [0; 8]).unwrap_err();
            let waited = t.elapsed();
            for sp in spinners {
                sp.join().unwrap();
            }
            (e.kind(), waited)
        });
        let (kind, waited) = h.join().unwrap();
        assert_eq!(kind, ErrorKind::WouldBlock);
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
    });
}

/// A socket the program made non-blocking gets EAGAIN straight back.
#[test]
fn a_user_nonblocking_socket_is_not_parked() {
    two_workers();
    within("non-blocking socket", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || listener.accept().unwrap());
        let h = goro_runtime::go!(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            let e = s.read(&mut [0; 8]).unwrap_err().kind();
            s.set_nonblocking(false).unwrap();
            (e, s)
        });
        let (kind, mut s) = h.join().unwrap();
        assert_eq!(kind, ErrorKind::WouldBlock);
        // Back to blocking, used from this plain thread: a real blocking read.
        let (mut p, _) = peer.join().unwrap();
        p.write_all(b"x").unwrap();
        let mut b = [0; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    });
}

/// A connect to a closed port fails with the real error.
#[test]
fn connect_fails_with_the_real_error() {
    two_workers();
    within("refused connect", || {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let h = goro_runtime::go!(move || TcpStream::connect(addr).map(drop).unwrap_err().kind());
        assert_eq!(h.join().unwrap(), ErrorKind::ConnectionRefused);
        let h = goro_runtime::go!(move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map(drop)
                .unwrap_err()
                .kind()
        });
        assert_eq!(h.join().unwrap(), ErrorKind::ConnectionRefused);
    });
}

/// A socket created in a coroutine (non-blocking underneath) still
/// behaves as blocking on a plain thread, and reports itself blocking.
#[test]
fn a_coroutine_socket_blocks_properly_on_a_thread() {
    two_workers();
    within("coroutine socket on a thread", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = goro_runtime::go!(move || TcpStream::connect(addr).unwrap())
            .join()
            .unwrap();
        let (mut p, _) = listener.accept().unwrap();
        // SAFETY: F_GETFL on an fd we own.
        let fl = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&s), libc::F_GETFL) };
        assert_eq!(
            fl & libc::O_NONBLOCK,
            0,
            "the program sees a blocking socket"
        );
        let reader = std::thread::spawn(move || {
            let mut s = s;
            let mut b = [0; 4];
            s.read_exact(&mut b).map(|_| b)
        });
        std::thread::sleep(Duration::from_millis(20));
        p.write_all(b"late").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"late");
    });
}

/// errno after a parked call is the call's, whatever other coroutines on
/// the same worker did to errno meanwhile.
#[test]
fn errno_is_set_after_the_park() {
    let _ = goro_runtime::Config::new().workers(2).apply();
    within("errno after park", || {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let h = goro_runtime::go!(move || {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s2 = stop.clone();
            // Runs on the same worker (spawned children stay local until
            // stolen) and keeps writing errno while the reader is parked.
            let noise = goro_runtime::go!(move || {
                while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: writes this thread's errno.
                    unsafe { *libc::__errno_location() = libc::ENOENT };
                    goro_runtime::yield_now();
                }
            });
            let mut b = [0u8; 4];
            // SAFETY: a valid buffer and an fd that lives for the call.
            let r = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 4, 0) };
            // SAFETY: reads this thread's errno, right after the call.
            let e = unsafe { *libc::__errno_location() };
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            noise.join().unwrap();
            (r, e)
        });
        let (r, e) = h.join().unwrap();
        drop(a);
        assert_eq!((r, e), (-1, libc::EAGAIN));
    });
}

/// The emulation's transfers on a socket the hook made non-blocking go to
/// the kernel directly: a ready call leaves the caller's errno alone, and
/// a failing one sets the kernel's error, for each of the calls.
#[test]
fn direct_transfers_keep_errno_and_report_the_kernels_error() {
    two_workers();
    within("direct transfers", || {
        let h = goro_runtime::go!(|| {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
            let set_errno = |e| {
                // SAFETY: writes this thread's errno.
                unsafe { *libc::__errno_location() = e };
            };
            // SAFETY: reads this thread's errno.
            let errno = || unsafe { *libc::__errno_location() };
            // A first read that must wait turns the hook's O_NONBLOCK on.
            let writer = goro_runtime::go!({
                let mut b = b.try_clone().unwrap();
                move || {
                    goro_runtime::sleep(Duration::from_millis(10));
                    std::io::Write::write_all(&mut b, b"0123456789").unwrap();
                }
            });
            let mut buf = [0u8; 4];
            let mut out = Vec::new();
            // SAFETY: a valid buffer and an fd that lives for the call.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 2) };
            out.push((r, buf[..2].to_vec()));
            writer.join().unwrap();
            set_errno(libc::EDOM);
            // SAFETY: a valid buffer and an fd that lives for the call.
            let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), 2, 0) };
            out.push((r, buf[..2].to_vec()));
            let after_recv = errno();
            let iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: 2,
            };
            // SAFETY: a valid buffer and an fd that lives for the call.
            let r = unsafe { libc::readv(fd, &iov, 1) };
            out.push((r, buf[..2].to_vec()));
            // SAFETY: a valid buffer and an fd that lives for the call.
            let r = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    2,
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            out.push((r, buf[..2].to_vec()));
            let after_reads = errno();
            // SAFETY: a valid buffer and an fd that lives for the call.
            let w = unsafe { libc::send(fd, b"xy".as_ptr().cast(), 2, 0) };
            // SAFETY: a valid buffer and an fd that lives for the call.
            let w2 = unsafe { libc::write(fd, b"z".as_ptr().cast(), 1) };
            let after_writes = errno();
            // A bad buffer with data waiting: EFAULT, not a crash and not
            // a park; the data stays.
            // SAFETY: the kernel checks the bad pointer and fails with
            // EFAULT; nothing in user space touches it.
            let fault = unsafe { libc::read(fd, 8 as *mut libc::c_void, 4) };
            let fault_errno = errno();
            // The peer gone: the kernel's EPIPE, through errno.
            drop(b);
            // SAFETY: a valid buffer and an fd that lives for the call.
            let gone = unsafe { libc::send(fd, b"x".as_ptr().cast(), 1, libc::MSG_NOSIGNAL) };
            let gone_errno = errno();
            // SAFETY: a valid buffer and an fd that lives for the call.
            let eof = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), 4, 0) };
            drop(a);
            (
                out,
                after_recv,
                after_reads,
                (w, w2, after_writes),
                (gone, gone_errno),
                eof,
                (fault, fault_errno),
            )
        });
        let (out, after_recv, after_reads, writes, gone, eof, fault) = h.join().unwrap();
        let want: Vec<(isize, Vec<u8>)> = [b"01", b"23", b"45", b"67"]
            .iter()
            .map(|d| (2, d.to_vec()))
            .collect();
        assert_eq!(out, want);
        assert_eq!(after_recv, libc::EDOM, "a ready recv changed errno");
        assert_eq!(after_reads, libc::EDOM, "a ready read changed errno");
        assert_eq!(writes, (2, 1, libc::EDOM));
        assert_eq!(gone, (-1, libc::EPIPE));
        // What was left after the fault: "89".
        assert_eq!(eof, 2);
        assert_eq!(fault, (-1, libc::EFAULT));
    });
}

/// accept with a timeout, and UDP receive that parks until a datagram
/// comes.
#[test]
fn accept_timeout_and_udp_receive() {
    two_workers();
    within("accept timeout, udp", || {
        let h = goro_runtime::go!(|| {
            let l =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            l.bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
            l.listen(8).unwrap();
            l.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            l.accept().map(drop).unwrap_err().kind()
        });
        assert_eq!(h.join().unwrap(), ErrorKind::WouldBlock);

        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let h = goro_runtime::go!(move || {
            let mut b = [0; 16];
            let (n, _) = rx.recv_from(&mut b).unwrap();
            b[..n].to_vec()
        });
        goro_runtime::go!(move || {
            goro_runtime::sleep(Duration::from_millis(10));
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .send_to(b"dgram", to)
                .unwrap();
        });
        assert_eq!(h.join().unwrap(), b"dgram");
    });
}

/// A reader and a writer on two handles of one socket (`try_clone`, a
/// dup) wait at once.
#[test]
fn full_duplex_through_try_clone() {
    two_workers();
    within("full duplex", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = goro_runtime::go!(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = vec![0; 1 << 16];
            let mut total = 0;
            while let Ok(n @ 1..) = c.read(&mut buf) {
                c.write_all(&buf[..n]).unwrap();
                total += n;
            }
            total
        });
        let s = goro_runtime::go!(move || TcpStream::connect(addr).unwrap())
            .join()
            .unwrap();
        let mut r = s.try_clone().unwrap();
        const LEN: usize = 4 << 20;
        let reader = goro_runtime::go!(move || {
            let mut buf = vec![0; 1 << 16];
            let mut got = 0;
            while got < LEN {
                got += r.read(&mut buf).unwrap();
            }
            got
        });
        let writer = goro_runtime::go!(move || {
            let mut s = s;
            // Larger than the socket buffers: the writer parks while the
            // reader drains.
            s.write_all(&vec![9u8; LEN]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            s
        });
        let _s = writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), LEN);
        assert_eq!(echo.join().unwrap(), LEN);
    });
}
