//! poll, ppoll, select and epoll_wait in coroutines park on any kind of
//! fd (pipes here, which the read/write hooks leave alone): more waiters
//! than workers all wake when a later coroutine writes; timeouts return 0
//! with the sets cleared; a zero timeout never parks.

mod support;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use support::{two_workers, within};

fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    (r.into(), w.into())
}

fn write1(w: &OwnedFd) {
    // SAFETY: one byte from a static buffer to a pipe we own.
    let n = unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    assert_eq!(n, 1);
}

fn wait_with(kind: usize, fd: i32, timeout_ms: i32) -> i32 {
    // SAFETY: each call gets valid structures for one fd.
    unsafe {
        match kind {
            0 => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let r = libc::poll(&mut p, 1, timeout_ms);
                if r > 0 {
                    assert_ne!(p.revents & libc::POLLIN, 0)
                }
                r
            }
            1 => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ts = libc::timespec {
                    tv_sec: (timeout_ms / 1000) as _,
                    tv_nsec: ((timeout_ms % 1000) * 1_000_000) as _,
                };
                let tsp = if timeout_ms < 0 {
                    std::ptr::null()
                } else {
                    &ts as *const _
                };
                libc::ppoll(&mut p, 1, tsp, std::ptr::null())
            }
            2 => {
                let mut set: libc::fd_set = std::mem::zeroed();
                libc::FD_ZERO(&mut set);
                libc::FD_SET(fd, &mut set);
                let mut tv = libc::timeval {
                    tv_sec: (timeout_ms / 1000) as _,
                    tv_usec: ((timeout_ms % 1000) * 1000) as _,
                };
                let tvp = if timeout_ms < 0 {
                    std::ptr::null_mut()
                } else {
                    &mut tv as *mut _
                };
                let r = libc::select(
                    fd + 1,
                    &mut set,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    tvp,
                );
                assert_eq!(
                    libc::FD_ISSET(fd, &set),
                    r > 0,
                    "the set reports what is ready"
                );
                r
            }
            _ => {
                let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
                let mut ev = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: 7,
                };
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
                let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
                let r = libc::epoll_wait(ep, out.as_mut_ptr(), 4, timeout_ms);
                if r > 0 {
                    assert_eq!({ out[0].u64 }, 7)
                }
                libc::close(ep);
                r
            }
        }
    }
}

/// 16 coroutines wait (4 of each call) with no timeout; only a coroutine
/// spawned after them writes. If a wait held its worker, the writer
/// could never run.
#[test]
fn more_waiters_than_workers_all_wake() {
    two_workers();
    within("poll family parks", || {
        let pipes: Vec<_> = (0..16).map(|_| pipe()).collect();
        let mut waiters = Vec::new();
        let mut writers = Vec::new();
        for (i, (r, w)) in pipes.into_iter().enumerate() {
            waiters.push(goro_runtime::go!(move || {
                let n = wait_with(i % 4, r.as_raw_fd(), -1);
                drop(r);
                n
            }));
            writers.push(w);
        }
        goro_runtime::go!(move || {
            goro_runtime::sleep(Duration::from_millis(20));
            for w in &writers {
                write1(w);
            }
            goro_runtime::sleep(Duration::from_millis(100));
        });
        for w in waiters {
            assert_eq!(w.join().unwrap(), 1);
        }
    });
}

/// A timeout returns 0 after about the timeout; a zero timeout returns
/// at once, also in a coroutine.
#[test]
fn timeouts_and_zero_timeouts() {
    two_workers();
    within("poll timeouts", || {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                goro_runtime::go!(move || {
                    let (r, _w) = pipe();
                    let t = Instant::now();
                    let n = wait_with(i % 4, r.as_raw_fd(), 40);
                    let waited = t.elapsed();
                    let z = wait_with(i % 4, r.as_raw_fd(), 0);
                    (n, waited, z)
                })
            })
            .collect();
        for h in hs {
            let (n, waited, z) = h.join().unwrap();
            assert_eq!((n, z), (0, 0));
            assert!(waited >= Duration::from_millis(40), "{waited:?}");
        }
    });
}

/// Outside a coroutine, poll is the original (blocks the thread).
#[test]
fn a_thread_polls_for_real() {
    let (r, w) = pipe();
    let t = std::thread::spawn(move || wait_with(0, r.as_raw_fd(), 5_000));
    std::thread::sleep(Duration::from_millis(10));
    write1(&w);
    assert_eq!(t.join().unwrap(), 1);
}
