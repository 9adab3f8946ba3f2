//! Readiness of raw fds owned by other code: `goro::net::wait_readable` and
//! `wait_writable`, from coroutines and threads, with deadlines.

mod support;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream; // std's: the "third-party" socket
use std::time::{Duration, Instant};

use goro::net::{wait_readable, wait_writable};

/// A third-party style read: non-blocking fd, wait on EAGAIN, retry.
fn read_some(s: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match (&*s).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(s, None)?,
            r => return r,
        }
    }
}

#[test]
fn wait_readable_parks_a_coroutine_until_data_arrives() {
    support::within("wait readable parks a coroutine until data arrives", || {
        let mut handles = Vec::new();
        let mut writers = Vec::new();
        for i in 0..50u8 {
            let (w, r) = UnixStream::pair().unwrap();
            r.set_nonblocking(true).unwrap();
            handles.push(goro::go!(move || {
                let mut buf = [0u8; 1];
                assert_eq!(read_some(&r, &mut buf).unwrap(), 1);
                assert_eq!(buf[0], i);
            }));
            writers.push(w);
        }
        // Every reader is blocked in `wait_readable` before any data comes.
        for h in &handles {
            support::wait_parked(h.id());
        }
        for (i, w) in writers.iter_mut().enumerate() {
            w.write_all(&[i as u8]).unwrap();
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn wait_readable_blocks_a_plain_thread_until_data_arrives() {
    support::within(
        "wait readable blocks a plain thread until data arrives",
        || {
            let (mut w, r) = UnixStream::pair().unwrap();
            r.set_nonblocking(true).unwrap();
            let t = std::thread::spawn(move || {
                let mut buf = [0u8; 4];
                read_some(&r, &mut buf).unwrap()
            });
            w.write_all(b"abcd").unwrap();
            assert!(t.join().unwrap() >= 1);
        },
    );
}

fn check_deadline() {
    let (_w, r) = UnixStream::pair().unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(20);
    let e = wait_readable(&r, Some(deadline)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(Instant::now() >= deadline);
    // A deadline in the past on a ready fd still reports readiness.
    wait_writable(&r, Some(start)).unwrap();
}

#[test]
fn deadlines_give_timed_out() {
    support::within("deadlines give timed out", || {
        goro::go!(check_deadline).join().unwrap();
        check_deadline();
    });
}

#[test]
fn wait_writable_waits_for_room() {
    support::within("wait writable waits for room", || {
        let (w, mut r) = UnixStream::pair().unwrap();
        w.set_nonblocking(true).unwrap();
        let chunk = [0u8; 4096];
        let mut filled = 0usize;
        while (&w).write(&chunk).is_ok() {
            filled += chunk.len();
        }
        assert!(filled > 0);
        let h = goro::go!(move || {
            wait_writable(&w, None).unwrap();
            (&w).write(&chunk).unwrap()
        });
        let mut sink = vec![0u8; filled];
        r.read_exact(&mut sink).unwrap();
        assert!(h.join().unwrap() > 0);
    });
}

#[test]
fn waiting_on_a_goro_socket_fd_is_an_error_not_a_hang() {
    support::within("waiting on a goro socket fd is an error not a hang", || {
        let (a, _b) = goro::net::UnixStream::pair().unwrap();
        let e = wait_readable(&a, Some(Instant::now() + Duration::from_secs(5))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    });
}
