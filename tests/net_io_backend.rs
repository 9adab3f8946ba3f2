//! The reactor's IO backend: chosen by `GORO_IO` and `Config::io`, falling
//! back to epoll when io_uring is refused, visible in `goro::stats()`, and
//! the ring's timeouts and cancellations losing no data. Each case runs in
//! a child process (the backend is chosen once per process).

mod support;

use std::io::{self, Read, Write};
use std::time::Duration;

use goro::net::{TcpListener, TcpStream};

/// Whether this kernel lets a process set up a ring (what the reactor's
/// start-up asks too); a refused setup must mean the epoll fallback.
fn uring_works() -> bool {
    let mut params = [0u8; 120]; // struct io_uring_params
    // SAFETY: io_uring_setup writes at most its params struct, 120 bytes.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    if fd < 0 {
        return false;
    }
    // SAFETY: closing the ring fd we just got.
    unsafe { libc::close(fd as i32) };
    true
}

/// An echo round trip, a read that times out through the backend, and the
/// data that arrives after it (a cancelled ring receive must not eat it).
fn exercise() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = goro::go!(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let client = goro::go!(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        for i in 0..100u32 {
            c.write_all(&i.to_le_bytes()).unwrap();
            let mut back = [0u8; 4];
            c.read_exact(&mut back).unwrap();
            assert_eq!(u32::from_le_bytes(back), i);
        }
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 4];
        let e = c.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        c.set_read_timeout(None).unwrap();
        c.write_all(b"late").unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
    });
    client.join().unwrap();
    server.join().unwrap();
}

fn backend_in_child(test: &str, envs: &[(&str, &str)]) -> String {
    let out = support::child(test, envs);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {test} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = stdout
        .find("backend=")
        .unwrap_or_else(|| panic!("child {test} printed no backend: {stdout}"));
    stdout[at + "backend=".len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn report(test: &str) {
    support::within(test, exercise);
    println!("backend={}", goro::stats().io_backend);
}

#[test]
fn goro_io_epoll_runs_epoll() {
    if support::in_child("goro_io_epoll_runs_epoll") {
        return report("epoll child");
    }
    let b = backend_in_child("goro_io_epoll_runs_epoll", &[("GORO_IO", "epoll")]);
    assert_eq!(b, "epoll");
}

#[test]
fn goro_io_uring_runs_io_uring_where_the_kernel_allows() {
    let name = "goro_io_uring_runs_io_uring_where_the_kernel_allows";
    if support::in_child(name) {
        return report("uring child");
    }
    let b = backend_in_child(name, &[("GORO_IO", "uring")]);
    assert_eq!(b, if uring_works() { "io_uring" } else { "epoll" });
}

#[test]
fn a_refused_ring_falls_back_to_epoll() {
    let name = "a_refused_ring_falls_back_to_epoll";
    if support::in_child(name) {
        return report("fallback child");
    }
    // The reactor's start-up treats this variable as `io_uring_setup`
    // failing with EPERM (what seccomp and io_uring_disabled give).
    let b = backend_in_child(name, &[("GORO_IO", "uring"), ("GORO_IO_URING_FAIL", "1")]);
    assert_eq!(b, "epoll");
}

#[test]
fn config_io_wins_over_the_environment() {
    let name = "config_io_wins_over_the_environment";
    if support::in_child(name) {
        goro::Config::new()
            .io(goro::reactor::IoBackend::Epoll)
            .apply()
            .unwrap();
        return report("config child");
    }
    let b = backend_in_child(name, &[("GORO_IO", "uring")]);
    assert_eq!(b, "epoll");
}

/// Coroutines on a shared stack read into buffers on that stack while
/// they park: nothing may write at those addresses while the reader is
/// parked (another coroutine's frames are there), so every reader still
/// gets its own bytes, including after a timed-out read. (On io_uring they
/// wait for readiness rather than lend the kernel a ring buffer.)
#[test]
fn shared_stack_coroutines_read_their_own_bytes() {
    support::within("shared-stack readers", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        goro::go!(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { break };
                goro::go!(move || {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let readers: Vec<_> = (0..32u8)
            .map(|id| {
                goro::Builder::new()
                    .shared_stack()
                    .spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                        // Times out (nothing sent yet): a cancelled ring read.
                        let mut buf = [0u8; 64];
                        let e = c.read(&mut buf).unwrap_err();
                        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                        c.set_read_timeout(None).unwrap();
                        for round in 0..20u8 {
                            let msg = [id ^ round; 64];
                            c.write_all(&msg).unwrap();
                            let mut back = [0u8; 64];
                            c.read_exact(&mut back).unwrap();
                            assert_eq!(back, msg, "reader {id} round {round}");
                            goro::yield_now();
                        }
                    })
                    .unwrap()
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
    });
}

/// Reads parked in ring operations on an idle runtime: every worker goes
/// to sleep with its own ring's receives in flight, and the data comes
/// from a plain thread later. Each worker's ring must wake someone when a
/// receive completes (the op-ring watch, `reactor/uring.rs`), or the
/// readers would wait for ever.
fn reads_complete_after_the_workers_slept() {
    const READERS: usize = 16;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            goro::go!(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut b = [0u8; 8];
                // The first read waits for readiness; from then on this
                // socket's reads are receives through the ring.
                for round in 0..3u8 {
                    c.read_exact(&mut b[..1]).unwrap();
                    assert_eq!(b[0], round);
                }
                c.write_all(b"k").unwrap();
            })
        })
        .collect();
    let peers: Vec<std::net::TcpStream> =
        (0..READERS).map(|_| listener.accept().unwrap().0).collect();
    let mut peers = peers;
    for round in 0..3u8 {
        // Long enough for the readers to park and the workers to sleep
        // (the search before sleeping lasts microseconds); the watchdog,
        // not this sleep, decides whether the test fails.
        std::thread::sleep(Duration::from_millis(30));
        for p in &mut peers {
            p.write_all(&[round]).unwrap();
        }
    }
    for p in &mut peers {
        let mut k = [0u8; 1];
        p.read_exact(&mut k).unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
}

/// Runs `body` (watched as `what`) in a child process of test `name` with
/// `GORO_IO=io` on two workers, and returns the backend the child ran on;
/// in the child itself, runs `body` and returns `None`.
fn on_backend(name: &str, what: &str, io: &str, body: fn()) -> Option<String> {
    if support::in_child(name) {
        support::within(what, body);
        println!("backend={}", goro::stats().io_backend);
        return None;
    }
    Some(backend_in_child(
        name,
        &[("GORO_IO", io), ("GORO_WORKERS", "2")],
    ))
}

#[test]
fn ring_reads_complete_after_the_workers_slept() {
    let name = "ring_reads_complete_after_the_workers_slept";
    let what = "reads on sleeping workers";
    let Some(b) = on_backend(name, what, "uring", reads_complete_after_the_workers_slept) else {
        return;
    };
    assert_eq!(b, if uring_works() { "io_uring" } else { "epoll" });
}

/// 1,500 connections echo at once through the two workers' op rings:
/// every send and receive completes once, with its own bytes. (A round
/// queues at most about 32 operations, so a ring's 512-entry queue does
/// not fill here; the full-queue path is defensive.)
fn many_echoes_at_once() {
    const CONNS: usize = 1500;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = goro::go!(move || {
        let mut echoes = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let (mut s, _) = listener.accept().unwrap();
            echoes.push(goro::go!(move || {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).unwrap();
                s.write_all(&b).unwrap();
            }));
        }
        for e in echoes {
            e.join().unwrap();
        }
    });
    let conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Every client writes, then reads, in coroutines started together, so
    // their sends and receives pile up in the same rounds.
    let clients: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            goro::go!(move || {
                let v = (i as u16).to_le_bytes();
                c.write_all(&v).unwrap();
                let mut b = [0u8; 2];
                c.read_exact(&mut b).unwrap();
                assert_eq!(b, v);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn many_echoes_at_once_each_get_their_own_bytes() {
    let name = "many_echoes_at_once_each_get_their_own_bytes";
    let Some(b) = on_backend(name, "1,500 echoes at once", "uring", many_echoes_at_once) else {
        return;
    };
    assert_eq!(b, if uring_works() { "io_uring" } else { "epoll" });
}

/// On epoll a read that returned less than asked marks the socket
/// drained, and the next read waits for an edge without a `recv`
/// (`runtime/src/reactor/read_seq.rs`). What must still come through:
/// data after the short read, an end of file that came with the last
/// data (no further edge), a reset, and more than one datagram.
fn short_reads_then_the_rest() {
    use std::io::{Read, Write};
    // Data, a short read, then more data: the second read waits for it.
    let l = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (go_on_tx, go_on_rx) = goro::chan::bounded::<()>(0);
    let writer = goro::go!(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"abc").unwrap();
        go_on_rx.recv().unwrap();
        s.write_all(b"def").unwrap();
        go_on_rx.recv().unwrap();
        // The last data and the end of file together.
        s.write_all(b"ghi").unwrap();
        drop(s);
    });
    let mut c = goro::net::TcpStream::connect(addr).unwrap();
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = c.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    // Short reads so far; the next read must wait for the next write.
    go_on_tx.send(()).unwrap();
    while got.len() < 6 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "end of file too early");
        got.extend_from_slice(&buf[..n]);
    }
    go_on_tx.send(()).unwrap();
    writer.join().unwrap();
    // Data and the end of file have both arrived before this read.
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"abcdefghi");
    assert_eq!(c.read(&mut buf).unwrap(), 0, "end of file is sticky");

    // A reset after data: the read after the short one sees the error.
    let l = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let resetter = goro::go!(move || {
        let (s, _) = l.accept().unwrap();
        let mut s = s;
        s.write_all(b"x").unwrap();
        let sock = socket2::SockRef::from(&s);
        sock.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        goro::sleep(std::time::Duration::from_millis(20));
        drop(s);
    });
    let mut c = goro::net::TcpStream::connect(addr).unwrap();
    assert_eq!(c.read(&mut buf).unwrap(), 1);
    resetter.join().unwrap();
    let e = c.read(&mut buf).expect_err("a reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");

    // Datagrams: a short read is one datagram of several queued.
    let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    for m in [&b"one"[..], b"two", b"three"] {
        b.send(m).unwrap();
    }
    for m in [&b"one"[..], b"two", b"three"] {
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], m);
    }
    // The same through `Registration::recv`, which is for streams but
    // must not strand datagrams either.
    use std::os::fd::AsRawFd;
    let (x, y) = std::os::unix::net::UnixDatagram::pair().unwrap();
    x.set_nonblocking(true).unwrap();
    // SAFETY: `x` outlives the registration (dropped first, below).
    let reg = unsafe { goro::reactor::Registration::new(x.as_raw_fd()) }.unwrap();
    let seen = reg.seq(goro::reactor::Interest::Readable);
    let msgs = [&b"one"[..], b"two", b"three", b"four", b"five"];
    for m in msgs {
        y.send(m).unwrap();
    }
    // Their edge is in before the reads (so that the reads, not the
    // edge's timing, decide whether a datagram would be stranded).
    reg.wait(goro::reactor::Interest::Readable, seen, None)
        .unwrap();
    for m in msgs {
        let n = reg.recv(&mut buf, None).unwrap();
        assert_eq!(&buf[..n], m);
    }
    drop(reg);
    drop(x);
}

#[test]
fn epoll_short_reads_lose_nothing() {
    let name = "epoll_short_reads_lose_nothing";
    let what = "short reads on epoll";
    let Some(b) = on_backend(name, what, "epoll", short_reads_then_the_rest) else {
        return;
    };
    assert_eq!(b, "epoll");
}
