//! Wait reasons: every kind of park records what it waits on and the
//! user's line (`goro::coroutines()`, `goro::dump_to`).

mod support;

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::{WaitKind, chan, sync};
use support::within;

/// Runs `f` in a coroutine that must park with `kind` at the line `f`
/// returned from `here()` (the line the blocking call is on), then lets
/// it go with `release`.
fn expect_wait<S: Send + Sync + 'static>(
    kind: WaitKind,
    setup: impl FnOnce() -> S,
    f: impl FnOnce(&S) -> u32 + Send + 'static,
    release: impl FnOnce(&S),
) {
    let state = Arc::new(setup());
    let s2 = state.clone();
    let (line_tx, line_rx) = chan::bounded::<u32>(1);
    let h = goro::go!(move || {
        let _ = line_tx.send(0);
        f(&s2)
    });
    let _ = line_rx.recv();
    let id = h.id();
    support::eventually(&format!("coroutine to wait in {kind}"), || {
        goro::coroutines()
            .iter()
            .any(|c| c.id == id && c.wait.is_some_and(|w| w.kind == kind))
    });
    let info = goro::coroutines().into_iter().find(|c| c.id == id).unwrap();
    let wait = info.wait.unwrap();
    assert_eq!(wait.location.file(), file!(), "{kind}: {wait:?}");
    assert!(wait.since <= Instant::now());
    let mut dump = Vec::new();
    goro::dump_to(&mut dump).unwrap();
    let dump = String::from_utf8(dump).unwrap();
    let needle = format!("[{kind}, ");
    assert!(dump.contains(&needle), "{needle} not in:\n{dump}");
    assert!(
        dump.contains(&format!("at {}", wait.location)),
        "location not in:\n{dump}"
    );
    release(&state);
    let line = h.join().unwrap();
    assert_eq!(wait.location.line(), line, "{kind}: wrong line");
}

#[track_caller]
fn line() -> u32 {
    Location::caller().line()
}

#[test]
fn chan_recv_and_send() {
    within("chan waits", || {
        expect_wait(
            WaitKind::ChanRecv,
            || chan::bounded::<u8>(0),
            |(_, rx)| {
                let l = line() + 1;
                let _ = rx.recv();
                l
            },
            |(tx, _)| tx.send(1).unwrap(),
        );
        expect_wait(
            WaitKind::ChanSend,
            || chan::bounded::<u8>(0),
            |(tx, _)| {
                let l = line() + 1;
                let _ = tx.send(1);
                l
            },
            |(_, rx)| {
                rx.recv().unwrap();
            },
        );
        expect_wait(
            WaitKind::ChanRecv,
            || chan::bounded::<u8>(0),
            |(_, rx)| {
                let l = line() + 1;
                let _ = rx.recv_timeout(Duration::from_secs(60));
                l
            },
            |(tx, _)| tx.send(1).unwrap(),
        );
        expect_wait(
            WaitKind::ChanRecv,
            chan::unbounded::<u8>,
            |(_, rx)| {
                let l = line() + 1;
                let _first = rx.iter().next();
                l
            },
            |(tx, _)| tx.send(1).unwrap(),
        );
    });
}

#[test]
fn select_records_its_arms() {
    within("select wait", || {
        expect_wait(
            WaitKind::Select { arms: 2 },
            || (chan::bounded::<u8>(0), chan::bounded::<u8>(0)),
            |((_, a), (_, b))| {
                let l = line() + 1;
                goro::select! {
                    recv(a) -> _ => {},
                    recv(b) -> _ => {},
                }
                l
            },
            |((tx, _), _)| tx.send(1).unwrap(),
        );
    });
}

/// A thread that holds `lock()`'s guard until released.
struct Holder {
    release: chan::Sender<()>,
}

/// `body` takes the lock, then calls its argument, which returns when
/// the holder is released.
fn hold(body: impl FnOnce(&dyn Fn()) + Send + 'static) -> Holder {
    let (held_tx, held_rx) = chan::bounded::<()>(0);
    let (release, release_rx) = chan::bounded::<()>(0);
    std::thread::spawn(move || {
        body(&|| {
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
    });
    held_rx.recv().unwrap();
    Holder { release }
}

#[test]
fn locks_and_conditions() {
    within("sync waits", || {
        expect_wait(
            WaitKind::MutexLock,
            || {
                let m = Arc::new(sync::Mutex::new(()));
                let m2 = m.clone();
                (
                    m,
                    hold(move |wait| {
                        let _g = m2.lock();
                        wait();
                    }),
                )
            },
            |(m, _)| {
                let l = line() + 1;
                drop(m.lock());
                l
            },
            |(_, h)| h.release.send(()).unwrap(),
        );
    });
}

#[test]
fn rwlock_semaphore_waitgroup_barrier() {
    within("more sync waits", || {
        expect_wait(
            WaitKind::RwLockRead,
            || {
                let l = Arc::new(sync::RwLock::new(()));
                let l2 = l.clone();
                (
                    l,
                    hold(move |wait| {
                        let _g = l2.write();
                        wait();
                    }),
                )
            },
            |(l, _)| {
                let n = line() + 1;
                drop(l.read());
                n
            },
            |(_, h)| h.release.send(()).unwrap(),
        );
        expect_wait(
            WaitKind::RwLockWrite,
            || {
                let l = Arc::new(sync::RwLock::new(()));
                let l2 = l.clone();
                (
                    l,
                    hold(move |wait| {
                        let _g = l2.read();
                        wait();
                    }),
                )
            },
            |(l, _)| {
                let n = line() + 1;
                drop(l.write());
                n
            },
            |(_, h)| h.release.send(()).unwrap(),
        );
        expect_wait(
            WaitKind::Semaphore,
            || sync::Semaphore::new(0),
            |s| {
                let n = line() + 1;
                drop(s.acquire());
                n
            },
            |s| s.add_permits(1),
        );
        expect_wait(
            WaitKind::WaitGroup,
            || {
                let wg = sync::WaitGroup::new();
                wg.add(1);
                wg
            },
            |wg| {
                let n = line() + 1;
                wg.wait();
                n
            },
            |wg| wg.done(),
        );
        expect_wait(
            WaitKind::Barrier,
            || sync::Barrier::new(2),
            |b| {
                let n = line() + 1;
                b.wait();
                n
            },
            |b| {
                b.wait();
            },
        );
        expect_wait(
            WaitKind::CondvarWait,
            || (sync::Mutex::new(false), sync::Condvar::new()),
            |(m, cv)| {
                let mut g = m.lock();
                let n = line() + 2;
                while !*g {
                    cv.wait(&mut g);
                }
                n
            },
            |(m, cv)| {
                *m.lock() = true;
                cv.notify_all();
            },
        );
    });
}

#[test]
fn join_sleep_park_blocking() {
    within("runtime waits", || {
        expect_wait(
            WaitKind::Join,
            || chan::bounded::<()>(0),
            |(_, rx)| {
                let rx = rx.clone();
                let inner = goro::go!(move || {
                    let _ = rx.recv();
                });
                let n = line() + 1;
                inner.join().unwrap();
                n
            },
            |(tx, _)| tx.send(()).unwrap(),
        );
        expect_wait(
            WaitKind::Sleep,
            || (),
            |_| {
                let n = line() + 1;
                goro::sleep(Duration::from_secs(1));
                n
            },
            |_| {},
        );
        expect_wait(
            WaitKind::Park,
            || {
                (
                    std::sync::atomic::AtomicBool::new(false),
                    std::sync::Mutex::new(None::<goro::park::Unparker>),
                )
            },
            |(flag, me)| {
                *me.lock().unwrap() = Some(goro::park::current());
                let n = line() + 2;
                while !flag.load(std::sync::atomic::Ordering::Acquire) {
                    goro::park::park();
                }
                n
            },
            |(flag, me)| {
                flag.store(true, std::sync::atomic::Ordering::Release);
                me.lock().unwrap().as_ref().unwrap().unpark();
            },
        );
    });
}

#[test]
fn context_done() {
    use goro::context::{Cancel, Context};
    within("context done wait", || {
        expect_wait(
            WaitKind::ContextDone,
            || Context::with_cancel(&Context::background()),
            |(ctx, _): &(Context, Cancel)| {
                let done = ctx.done();
                let l = line() + 1;
                let _ = done.recv();
                l
            },
            |(_, cancel)| cancel.cancel(),
        );
    });
}

/// Waits in a coroutine until `id` parks with a wait that `is` accepts,
/// and checks the dump shows that wait. (The location of accept and
/// connect waits is goro-net's own line, not the caller's: the accept
/// loop and connect go through closures, which cannot be
/// `#[track_caller]` on stable Rust.)
fn expect_net_wait(id: u64, is: impl Fn(WaitKind) -> bool) -> WaitKind {
    let mut seen = None;
    support::eventually("the coroutine to wait on the socket", || {
        seen = goro::coroutines()
            .into_iter()
            .find(|c| c.id == id)
            .and_then(|c| c.wait)
            .map(|w| w.kind)
            .filter(|k| is(*k));
        seen.is_some()
    });
    let kind = seen.unwrap();
    let mut dump = Vec::new();
    goro::dump_to(&mut dump).unwrap();
    let dump = String::from_utf8(dump).unwrap();
    assert!(
        dump.contains(&format!("[{kind}, ")),
        "{kind} not in:\n{dump}"
    );
    kind
}

#[test]
fn net_accept() {
    within("accept wait", || {
        let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let addr = listener.local_addr().unwrap();
        let h = goro::go!(move || drop(listener.accept()));
        let kind = expect_net_wait(h.id(), |k| matches!(k, WaitKind::NetAccept { .. }));
        assert_eq!(kind, WaitKind::NetAccept { fd });
        drop(std::net::TcpStream::connect(addr).unwrap());
        h.join().unwrap();
    });
}

/// A connect that waits: the listener's accept queue (backlog 0) is full,
/// so Linux drops the SYN and the connect waits for its retry; it gives
/// up at its timeout (nothing accepts), which ends the wait.
#[test]
fn net_connect() {
    use socket2::{Domain, Socket, Type};
    within("connect wait", || {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue: one handshake completes, then more
        // attempts (non-blocking) so that it is full whatever the kernel's
        // exact threshold.
        let _first = std::net::TcpStream::connect(addr).unwrap();
        let fillers: Vec<Socket> = (0..2)
            .map(|_| {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
                s.set_nonblocking(true).unwrap();
                let _ = s.connect(&addr.into());
                s
            })
            .collect();
        let h = goro::go!(move || {
            let _ = goro::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3));
        });
        let kind = expect_net_wait(h.id(), |k| matches!(k, WaitKind::NetConnect { .. }));
        assert!(matches!(kind, WaitKind::NetConnect { fd } if fd >= 0));
        h.join().unwrap();
        drop((fillers, listener));
    });
}
