//! Many waiters on one third-party fd: `goro::net::wait_readable` and
//! `wait_writable` from readers and writers, coroutines and threads at
//! once; the fd's registration ends with its last waiter; a closed and
//! reused fd number gets no stale wake; a waiter whose fd is closed (or
//! whose number is reused) under it wakes instead of hanging.

mod support;

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream; // std's: the "third-party" socket
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use goro::net::{wait_readable, wait_writable};
use goro::reactor::Registration;

/// Writes to non-blocking `s` until its send buffer is full; returns how
/// many bytes went in.
fn fill(s: &UnixStream) -> usize {
    let chunk = [7u8; 4096];
    let mut filled = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return filled,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

/// A third-party style read: try, wait on `WouldBlock`, retry.
fn read_some(s: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match (&*s).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(s, None)?,
            r => return r,
        }
    }
}

/// A third-party style write_all: try, wait on `WouldBlock`, retry.
fn write_all(s: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match (&*s).write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(s, None)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Tests that free an fd number while a wait still borrows it (breaking
/// I/O safety on purpose) run alone: until the reactor finds out, a new fd
/// given that number by another test would join the stale registration and
/// see a spurious, delayed wake (the documented outcome, which would
/// upset that test's exact assertions).
static NUMBERS: RwLock<()> = RwLock::new(());

/// Shares the fd number space with the other well-behaved tests.
fn sharing() -> RwLockReadGuard<'static, ()> {
    NUMBERS.read().unwrap_or_else(|e| e.into_inner())
}

/// Holds the fd number space alone.
fn alone() -> RwLockWriteGuard<'static, ()> {
    NUMBERS.write().unwrap_or_else(|e| e.into_inner())
}

/// Waits until coroutine `h` is parked; fails at once, with its result, if
/// it finished instead (a waiter that gave up without waiting).
fn parked<T: std::fmt::Debug>(what: &str, h: goro::JoinHandle<T>) -> goro::JoinHandle<T> {
    support::eventually(what, || support::is_parked(h.id()) || h.is_finished());
    if h.is_finished() {
        panic!("{what}: it returned instead of waiting: {:?}", h.join());
    }
    h
}

#[test]
fn a_reader_and_a_writer_wait_on_one_fd_at_once() {
    let _numbers = sharing();
    support::within("a reader and a writer on one fd", || {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let filled = fill(&a);
        let a = Arc::new(a);
        let r = {
            let a = a.clone();
            goro::go!(move || wait_readable(&*a, None))
        };
        let r = parked("the reader parks", r);
        let w = {
            let a = a.clone();
            goro::go!(move || wait_writable(&*a, None))
        };
        let w = parked("the writer parks beside the reader", w);
        b.write_all(b"x").unwrap();
        r.join().unwrap().unwrap();
        assert!(!w.is_finished(), "the writer woke for the reader's edge");
        let mut sink = vec![0u8; filled];
        b.read_exact(&mut sink).unwrap();
        w.join().unwrap().unwrap();
    });
}

#[test]
fn every_reader_of_one_fd_wakes_and_the_registration_ends_with_the_last() {
    let _numbers = sharing();
    support::within("eight readers on one fd", || {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let a = Arc::new(a);
        let readers: Vec<_> = (0..8)
            .map(|i| {
                let a = a.clone();
                let h = goro::go!(move || wait_readable(&*a, None));
                parked(&format!("reader {i} parks"), h)
            })
            .collect();
        // While they wait, the fd is registered (once, shared by all).
        // SAFETY: `a` stays open until the end of this test, after any
        // registration made here is dropped.
        let e = unsafe { Registration::new(a.as_raw_fd()) }.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        b.write_all(b"!").unwrap();
        for h in readers {
            h.join().unwrap().unwrap();
        }
        // No waiter is left, so neither is the registration.
        // SAFETY: as above.
        let reg = unsafe { Registration::new(a.as_raw_fd()) }
            .expect("the fd is still registered after its last waiter left");
        drop(reg);
        // And waiting works again afterwards.
        let mut buf = [0u8; 1];
        assert_eq!(read_some(&a, &mut buf).unwrap(), 1);
    });
}

#[test]
fn coroutines_and_threads_wait_on_one_fd_together() {
    let _numbers = sharing();
    support::within("coroutines and threads on one fd", || {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let filled = fill(&a);
        let a = Arc::new(a);
        let mut coroutines = Vec::new();
        for i in 0..4 {
            let ra = a.clone();
            let wa = a.clone();
            coroutines.push(parked(
                &format!("coroutine reader {i}"),
                goro::go!(move || wait_readable(&*ra, None)),
            ));
            coroutines.push(parked(
                &format!("coroutine writer {i}"),
                goro::go!(move || wait_writable(&*wa, None)),
            ));
        }
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let a = a.clone();
                std::thread::spawn(move || {
                    if i % 2 == 0 {
                        wait_readable(&*a, None)
                    } else {
                        wait_writable(&*a, None)
                    }
                })
            })
            .collect();
        b.write_all(b"r").unwrap();
        let mut sink = vec![0u8; filled];
        b.read_exact(&mut sink).unwrap();
        for h in coroutines {
            h.join().unwrap().unwrap();
        }
        for t in threads {
            t.join().unwrap().unwrap();
        }
    });
}

/// Full duplex over one third-party fd: a reader and a writer, one a
/// coroutine and the other a thread, each waiting on `a` whenever it would
/// block, while a peer thread echoes everything back.
fn full_duplex(reader_is_coroutine: bool) {
    const TOTAL: usize = 1 << 20;
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = Arc::new(a);
    let echo = std::thread::spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 8192];
        let mut moved = 0;
        while moved < TOTAL {
            let n = b.read(&mut buf).unwrap();
            assert!(n > 0, "echo: early end of file");
            b.write_all(&buf[..n]).unwrap();
            moved += n;
        }
    });
    let writer = {
        let a = a.clone();
        move || {
            let chunk: Vec<u8> = (0..4096).map(|i| i as u8).collect();
            for _ in 0..TOTAL / chunk.len() {
                write_all(&a, &chunk).unwrap();
            }
        }
    };
    let reader = {
        let a = a.clone();
        move || {
            let mut buf = [0u8; 4096];
            let mut got = 0;
            while got < TOTAL {
                let n = read_some(&a, &mut buf).unwrap();
                assert!(n > 0, "reader: early end of file");
                for (k, &x) in buf[..n].iter().enumerate() {
                    assert_eq!(x, ((got + k) % 4096) as u8, "byte {}", got + k);
                }
                got += n;
            }
        }
    };
    if reader_is_coroutine {
        let r = goro::go!(reader);
        let w = std::thread::spawn(writer);
        w.join().unwrap();
        r.join().unwrap();
    } else {
        let w = goro::go!(writer);
        let r = std::thread::spawn(reader);
        r.join().unwrap();
        w.join().unwrap();
    }
    echo.join().unwrap();
}

#[test]
fn full_duplex_on_one_fd_from_a_coroutine_and_a_thread() {
    let _numbers = sharing();
    support::within("coroutine reader, thread writer", || full_duplex(true));
    support::within("thread reader, coroutine writer", || full_duplex(false));
}

#[test]
fn a_reused_fd_number_gets_no_stale_wake() {
    let _numbers = sharing();
    support::within("a reused fd number", || {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        // A second handle keeps the first socket alive after its number
        // is reused, so an event for it could still arrive.
        let _keep = a.try_clone().unwrap();
        let a = Arc::new(a);
        let first = {
            let a = a.clone();
            goro::go!(move || wait_readable(&*a, None))
        };
        let first = parked("the first waiter parks", first);
        b.write_all(b"1").unwrap();
        first.join().unwrap().unwrap();
        let mut one = [0u8; 1];
        (&*a).read_exact(&mut one).unwrap();

        // No waiter remains. Put another socket at the same number.
        let (c, mut d) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        // SAFETY: both are open fds we own; dup2 atomically makes `a`'s
        // number name `c`'s socket (the old socket lives on in `_keep`).
        assert!(unsafe { libc::dup2(c.as_raw_fd(), a.as_raw_fd()) } >= 0);
        drop(c);

        let wakes = Arc::new(AtomicUsize::new(0));
        let second = {
            let (a, wakes) = (a.clone(), wakes.clone());
            goro::go!(move || {
                let mut buf = [0u8; 1];
                loop {
                    match (&*a).read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        r => return r.map(|n| buf[..n].to_vec()),
                    }
                    wait_readable(&*a, None)?;
                    wakes.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let second = parked("the waiter on the reused number parks", second);

        // Make the old socket readable, then a probe fd after it: once the
        // probe's waiter has woken, the reactor has handled anything the
        // old socket could have sent.
        b.write_all(b"old").unwrap();
        let (p, mut q) = UnixStream::pair().unwrap();
        p.set_nonblocking(true).unwrap();
        let probe = parked(
            "the probe parks",
            goro::go!(move || wait_readable(&p, None)),
        );
        q.write_all(b"p").unwrap();
        probe.join().unwrap().unwrap();
        // Had it been woken, it would have run and parked again by now.
        support::eventually("the waiter is parked", || support::is_parked(second.id()));
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "a stale wake");

        d.write_all(b"new").unwrap();
        assert_eq!(second.join().unwrap().unwrap(), b"n");
    });
}

#[test]
fn a_number_reused_under_its_waiters_wakes_them_all() {
    let _numbers = sharing();
    support::within("a number reused under waiters", || {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let _keep = a.try_clone().unwrap();
        let a = Arc::new(a);
        let old = {
            let a = a.clone();
            goro::go!(move || wait_readable(&*a, None))
        };
        let old = parked("the waiter on the old socket parks", old);
        // Code that breaks I/O safety puts another socket at the number
        // while the old waiter still waits.
        let (c, mut d) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        // SAFETY: both fds are ours and open; only `a`'s number changes.
        assert!(unsafe { libc::dup2(c.as_raw_fd(), a.as_raw_fd()) } >= 0);
        drop(c);
        let new = {
            let a = a.clone();
            goro::go!(move || {
                let mut buf = [0u8; 3];
                let n = read_some(&a, &mut buf)?;
                Ok::<_, io::Error>(buf[..n].to_vec())
            })
        };
        d.write_all(b"new").unwrap();
        // The new socket's reader gets its data, and the old waiter wakes
        // (spurious readiness: its number names a readable socket now).
        assert_eq!(new.join().unwrap().unwrap(), b"new");
        old.join().unwrap().unwrap();
    });
}

/// What a waiter sees when other code closes its fd under it: it wakes,
/// with `EBADF` if the number is still free, or with (spurious) readiness
/// if the number was reused meanwhile (other tests in this binary open fds
/// concurrently).
fn closed_under(raw: RawFd) -> io::Result<()> {
    // SAFETY: deliberately breaks I/O safety: the test closes `raw` while
    // this borrow lives, to pin what a waiter sees when third-party code
    // does so. No memory is at stake: the reactor finds its state by key,
    // never by fd.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    wait_readable(fd, None)
}

fn check_closed_under(r: io::Result<()>) {
    if let Err(e) = r {
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    }
}

#[test]
fn a_waiter_whose_fd_is_closed_under_it_wakes() {
    let _numbers = alone();
    support::within("a waiter on an fd closed under it", || {
        // Plain close: the socket goes away with the number.
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let raw = a.into_raw_fd();
        let h = parked(
            "the coroutine waiter parks",
            goro::go!(move || closed_under(raw)),
        );
        // SAFETY: we own `raw` (from into_raw_fd); closing it under the
        // waiter is the point of the test.
        unsafe { libc::close(raw) };
        check_closed_under(h.join().unwrap());

        // The socket outlives the number (a duplicate keeps it), so the
        // kernel keeps its epoll entry; a thread waits this time.
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let keep = a.try_clone().unwrap();
        let raw = a.into_raw_fd();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(()).unwrap();
            closed_under(raw)
        });
        rx.recv().unwrap();
        // SAFETY: as above.
        unsafe { libc::close(raw) };
        check_closed_under(t.join().unwrap());
        // The old socket's events go nowhere, and waiting on it by its
        // surviving fd works.
        b.write_all(b"k").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(read_some(&keep, &mut buf).unwrap(), 1);
    });
}

#[test]
fn a_leftover_kernel_entry_is_taken_over() {
    let _numbers = sharing();
    support::within("a leftover kernel entry", || {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let keep = a.try_clone().unwrap();
        let a = Arc::new(a);
        let first = {
            let a = a.clone();
            goro::go!(move || wait_readable(&*a, None))
        };
        let first = parked("the first waiter parks", first);
        // Another file takes the number under the waiter. The socket lives
        // on in `keep`, so the kernel keeps its epoll entry for the number.
        let (x, _y) = UnixStream::pair().unwrap();
        // SAFETY: both fds are ours and open; only `a`'s number changes.
        assert!(unsafe { libc::dup2(x.as_raw_fd(), a.as_raw_fd()) } >= 0);
        drop(x);
        first.join().unwrap().unwrap();
        // The socket comes back to the number: the kernel's leftover entry
        // for it must not make the next wait fail with `EEXIST`.
        // SAFETY: as above.
        assert!(unsafe { libc::dup2(keep.as_raw_fd(), a.as_raw_fd()) } >= 0);
        let second = {
            let a = a.clone();
            goro::go!(move || wait_readable(&*a, None))
        };
        let second = parked("the waiter on the socket's old number parks", second);
        b.write_all(b"s").unwrap();
        second.join().unwrap().unwrap();
    });
}

#[test]
fn a_goro_socket_that_takes_a_waited_on_number_is_left_working() {
    let _numbers = sharing();
    support::within("a goro socket on a waited-on number", || {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let _keep = a.try_clone().unwrap();
        let raw = a.into_raw_fd();
        let stale = parked("the waiter parks", goro::go!(move || closed_under(raw)));
        // Code that breaks I/O safety hands the number to a new socket,
        // which becomes a goro socket while the old waiter still waits.
        let (c, d) = UnixStream::pair().unwrap();
        // SAFETY: both fds are ours; `raw` now names `c`'s socket, and the
        // goro socket below becomes its only owner.
        let g = unsafe {
            assert!(libc::dup2(c.as_raw_fd(), raw) >= 0);
            drop(c);
            goro::net::UnixStream::from_std(UnixStream::from_raw_fd(raw)).unwrap()
        };
        // The waiter wakes (its registration was taken over), and its
        // leaving must not delete the goro socket's registration.
        check_closed_under(stale.join().unwrap());
        let h = goro::go!(move || {
            let mut buf = [0u8; 2];
            (&g).read_exact(&mut buf).map(|()| buf)
        });
        (&d).write_all(b"ok").unwrap();
        assert_eq!(&h.join().unwrap().unwrap(), b"ok");
    });
}

#[test]
fn waiting_on_a_goro_socket_fd_is_a_clear_error_and_harms_nothing() {
    let _numbers = sharing();
    support::within("wait on a goro socket's fd", || {
        let (a, b) = goro::net::UnixStream::pair().unwrap();
        for e in [
            wait_readable(a.as_fd(), None).unwrap_err(),
            wait_writable(a.as_fd(), None).unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
            assert!(e.to_string().contains("goro"), "unclear error: {e}");
        }
        // The socket's own registration is untouched.
        let h = goro::go!(move || {
            let mut buf = [0u8; 2];
            (&a).read_exact(&mut buf).map(|()| buf)
        });
        (&b).write_all(b"ok").unwrap();
        assert_eq!(&h.join().unwrap().unwrap(), b"ok");
    });
}
