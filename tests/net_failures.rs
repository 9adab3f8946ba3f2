//! Failure paths a server must survive, run in child processes (the test
//! binary re-runs itself with `GORO_CHILD` set, and kills the child if it
//! hangs): running out of file descriptors while accepting, and writing to
//! a closed peer with `SIGPIPE` at its default action (which would kill
//! the process).

mod support;

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::process::Output;
use std::time::Duration;

use goro::net::{TcpListener, TcpStream, UnixDatagram, UnixStream};

fn assert_child_ok(out: &Output) {
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && so.contains("CHILD-OK"),
        "status {:?}\nstdout: {so}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens `/dev/null` until the process runs out of descriptors.
fn exhaust_fds() -> Vec<OwnedFd> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(OwnedFd::from(f)),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return held;
            }
        }
        assert!(held.len() < 100_000, "the fd limit did not bite");
    }
}

#[test]
fn accept_survives_running_out_of_file_descriptors() {
    let name = "accept_survives_running_out_of_file_descriptors";
    if !support::in_child(name) {
        assert_child_ok(&support::child(name, &[]));
        return;
    }
    const CLIENTS: usize = 5;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Connections complete in the kernel's backlog before any accept.
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    goro::go!(|| ()).join().unwrap(); // the runtime is up, its fds open
    // A low limit keeps the exhaustion loop short.
    let lim = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: setrlimit on our own process with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut hoard = exhaust_fds();

    let server = goro::go!(move || {
        let mut conns = Vec::new();
        for _ in 0..CLIENTS {
            // Fails with EMFILE inside until fds are freed; must not return
            // the error.
            let (c, _) = listener.accept().unwrap();
            (&c).write_all(b"ok").unwrap();
            conns.push(c);
        }
        conns.len()
    });
    // Whatever happens in this window, the server must not give up; a
    // short window is enough for several failed, backed-off attempts.
    std::thread::sleep(Duration::from_millis(60));
    assert!(!server.is_finished(), "accept returned while out of fds");
    // Free descriptors: the server resumes and serves everyone.
    hoard.truncate(hoard.len().saturating_sub(2 * CLIENTS + 8));
    assert_eq!(server.join().unwrap(), CLIENTS);
    for c in &mut clients {
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    }
    drop(hoard);
    println!("CHILD-OK");
}

fn assert_closed_peer_error(e: &io::Error) {
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{e:?}"
    );
}

/// Writes until the closed peer makes the write fail, then a few more.
fn write_until_error(mut w: impl Write) {
    let chunk = [9u8; 1024];
    let mut errors = 0;
    for _ in 0..100_000 {
        match w.write(&chunk) {
            Ok(n) => assert!(n > 0),
            Err(e) => {
                assert_closed_peer_error(&e);
                errors += 1;
                if errors == 3 {
                    // Vectored writes take another path (sendmsg).
                    let e = w.write_vectored(&[io::IoSlice::new(&chunk)]).unwrap_err();
                    assert_closed_peer_error(&e);
                    return;
                }
            }
        }
    }
    panic!("writes to a closed peer kept succeeding");
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

fn broken_pipes() {
    let (c, s) = tcp_pair();
    drop(s);
    write_until_error(&c);
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    write_until_error(&a);
    let (x, y) = UnixDatagram::pair().unwrap();
    drop(y);
    assert!(x.send(b"nobody").is_err());
}

#[test]
fn writing_to_a_closed_peer_is_an_error_not_sigpipe() {
    let name = "writing_to_a_closed_peer_is_an_error_not_sigpipe";
    if !support::in_child(name) {
        assert_child_ok(&support::child(name, &[]));
        return;
    }
    // Rust programs ignore SIGPIPE by default; a C host program or a
    // library user may not. Restore the default action, which kills.
    // SAFETY: setting a standard disposition for a signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    goro::go!(broken_pipes).join().unwrap();
    broken_pipes();
    // A server coroutine whose client vanished mid-reply ends with an
    // error and the runtime keeps serving.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = goro::go!(move || {
        let mut results = Vec::new();
        for _ in 0..3 {
            let (c, _) = l.accept().unwrap();
            let mut c = c;
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            let big = vec![0u8; 1 << 20];
            results.push((0..64).try_for_each(|_| c.write_all(&big)).is_err());
        }
        results
    });
    for _ in 0..3 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"?").unwrap();
        drop(c);
    }
    assert_eq!(server.join().unwrap(), vec![true; 3]);
    println!("CHILD-OK");
}
