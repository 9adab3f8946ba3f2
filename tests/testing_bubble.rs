//! `goro::testing::bubble`: Go's synctest examples on goro's virtual clock.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use goro::chan;
use goro::context::{Context, ContextError};
use goro::testing;

/// Go's synctest context example: a context with a timeout is not done
/// just before its deadline and is done exactly at it.
#[test]
fn context_deadline() {
    support::within("context deadline", || {
        testing::bubble(|| {
            let timeout = Duration::from_secs(5);
            let (ctx, _cancel) = Context::with_timeout(&Context::background(), timeout);
            goro::sleep(timeout - Duration::from_nanos(1));
            testing::wait();
            assert_eq!(ctx.err(), None, "before the deadline");
            goro::sleep(Duration::from_nanos(1));
            testing::wait();
            assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
            // A coroutine waiting on done() wakes at the deadline.
            let (ctx2, _c2) = Context::with_timeout(&Context::background(), timeout);
            let t0 = testing::now();
            let done = ctx2.done();
            let _ = done.recv();
            assert_eq!(testing::now() - t0, timeout);
        })
    });
}

/// Socket timeouts run on the virtual clock: a read with a 30 s timeout on
/// a loopback connection whose peer (a member) stays silent for a virtual
/// minute times out at exactly 30 s, at once in real time; a peer that
/// writes before the deadline is read, with the clock where the write
/// happened. A socket that has data is never skipped past.
#[test]
fn socket_timeouts_are_virtual() {
    support::within("virtual socket timeouts", || {
        let r = testing::bubble(|| {
            use std::io::{Read, Write};
            let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = goro::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                goro::sleep(Duration::from_secs(60));
                s.write_all(b"late").unwrap();
                goro::sleep(Duration::from_secs(60));
                s.write_all(b"x").unwrap();
                s
            });
            let mut c = goro::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let t0 = testing::now();
            let mut buf = [0u8; 8];
            let e = c.read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            let timed_out_at = testing::now() - t0;
            // The peer writes at 60 s: a 100 s timeout reads it then.
            c.set_read_timeout(Some(Duration::from_secs(100))).unwrap();
            let n = c.read(&mut buf).unwrap();
            let read_at = testing::now() - t0;
            // Data already there is read at once, whatever the timeout.
            goro::sleep(Duration::from_secs(90));
            let n2 = c.read(&mut buf[n..]).unwrap();
            let third_at = testing::now() - t0;
            drop(peer.join().unwrap());
            (timed_out_at, buf[..n].to_vec(), read_at, n2, third_at)
        });
        assert_eq!(r.0, Duration::from_secs(30));
        assert_eq!(r.1, b"late");
        assert_eq!(r.2, Duration::from_secs(60));
        assert_eq!(r.3, 1);
        assert_eq!(r.4, Duration::from_secs(150));
    });
}

/// Stoppable timers, tickers and a condition variable's timed wait run on
/// the virtual clock too: each returns at exactly its virtual instant.
#[test]
fn stoppable_timers_and_condvar_timeouts_are_virtual() {
    support::within("virtual Timer, Ticker, Condvar", || {
        testing::bubble(|| {
            let t0 = testing::now();
            let timer = chan::Timer::new(Duration::from_secs(3600));
            assert!(timer.reset(Duration::from_secs(7200)));
            timer.recv().unwrap();
            assert_eq!(testing::now() - t0, Duration::from_secs(7200));

            let t1 = testing::now();
            let ticker = chan::Ticker::new(Duration::from_secs(60));
            for k in 1..=3u32 {
                ticker.recv().unwrap();
                assert_eq!(testing::now() - t1, Duration::from_secs(60) * k);
            }
            ticker.stop();
            goro::select! {
                recv(ticker) -> _ => panic!("a stopped ticker ticked"),
                default(Duration::from_secs(600)) => {}
            }

            let m = goro::sync::Mutex::new(());
            let cv = goro::sync::Condvar::new();
            let mut g = m.lock();
            let t2 = testing::now();
            assert!(
                cv.wait_timeout(&mut g, Duration::from_secs(1800))
                    .timed_out()
            );
            assert_eq!(testing::now() - t2, Duration::from_secs(1800));
        })
    });
}

/// Timer-heavy: many sleepers, tickers and `after` channels; each wakes at
/// exactly its virtual instant, in order.
#[test]
fn timer_heavy() {
    support::within("timer heavy", || {
        let woke = testing::bubble(|| {
            let start = testing::now();
            let log = Arc::new(Mutex::new(Vec::new()));
            let hs: Vec<_> = (1..=200u64)
                .map(|i| {
                    let log = log.clone();
                    goro::spawn(move || {
                        let d = Duration::from_millis((i * 37) % 1000 + 1);
                        if i % 2 == 0 {
                            goro::sleep(d);
                        } else {
                            chan::after(d).recv().unwrap();
                        }
                        log.lock().unwrap().push((testing::now() - start, d));
                    })
                })
                .collect();
            let ticks = chan::tick(Duration::from_millis(100));
            for n in 1..=10u32 {
                ticks.recv().unwrap();
                assert_eq!(testing::now() - start, Duration::from_millis(100) * n);
            }
            for h in hs {
                h.join().unwrap();
            }
            Arc::try_unwrap(log).unwrap().into_inner().unwrap()
        });
        assert_eq!(woke.len(), 200);
        for (at, d) in &woke {
            assert_eq!(at, d, "woke at its own deadline");
        }
        assert!(woke.windows(2).all(|w| w[0].0 <= w[1].0), "in order");
    });
}

/// Go's synctest HTTP example, over an in-memory pipe: a client sends a
/// request with "Expect: 100-continue" and waits up to a timeout for the
/// server's go-ahead; the server answers only after the client gave up.
#[test]
fn http_style_timeout_over_a_pipe() {
    support::within("http-style timeout", || {
        let events = testing::bubble(|| {
            let (to_server, server_in) = chan::bounded::<&'static str>(0);
            let (to_client, client_in) = chan::bounded::<&'static str>(0);
            let server = goro::spawn(move || {
                let head = server_in.recv().unwrap();
                assert_eq!(head, "POST / Expect: 100-continue");
                // The server is slow: 3 s before "100 Continue".
                goro::sleep(Duration::from_secs(3));
                let _ = to_client.send_timeout("100 Continue", Duration::from_secs(1));
                server_in.recv().ok()
            });
            let t0 = testing::now();
            to_server.send("POST / Expect: 100-continue").unwrap();
            let mut events = Vec::new();
            // The client waits 1 s for the go-ahead, then sends the body.
            match client_in.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => events.push(format!("got {m}")),
                Err(_) => events.push(format!("timeout at {:?}", testing::now() - t0)),
            }
            to_server.send("body").unwrap();
            events.push(format!("sent body at {:?}", testing::now() - t0));
            let body = server.join().unwrap();
            events.push(format!("server read {body:?} at {:?}", testing::now() - t0));
            events
        });
        assert_eq!(
            events,
            // The pipe is a rendezvous: the body is taken only once the
            // server's own 1 s wait to send "100 Continue" has run out.
            [
                "timeout at 1s",
                "sent body at 4s",
                "server read Some(\"body\") at 4s"
            ]
        );
    });
}

/// An hour of virtual time passes in (real) milliseconds; the watchdog
/// would fail the test long before an hour.
#[test]
fn an_hour_of_virtual_time() {
    support::within("an hour", || {
        let elapsed = testing::bubble(|| {
            let t0 = testing::now();
            for _ in 0..60 {
                goro::sleep(Duration::from_secs(60));
            }
            testing::now() - t0
        });
        assert_eq!(elapsed, Duration::from_secs(3600));
    });
}

/// The interleaving of racing coroutines is a function of the seed.
fn racy_trace(seed: u64) -> Vec<u32> {
    testing::bubble_with_seed(seed, || {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = chan::bounded::<u32>(2);
        let hs: Vec<_> = (0..8u32)
            .map(|i| {
                let (log, tx) = (log.clone(), tx.clone());
                goro::spawn(move || {
                    for k in 0..4 {
                        log.lock().unwrap().push(i * 10 + k);
                        tx.send(i).unwrap();
                        goro::yield_now();
                    }
                })
            })
            .collect();
        drop(tx);
        while let Ok(i) = rx.recv() {
            log.lock().unwrap().push(100 + i);
        }
        for h in hs {
            h.join().unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    })
}

#[test]
fn same_seed_same_trace() {
    support::within("same seed", || {
        for seed in [0, 1, 42] {
            let a = racy_trace(seed);
            for _ in 0..5 {
                assert_eq!(racy_trace(seed), a, "seed {seed}");
            }
        }
        // Different seeds explore different interleavings.
        let traces: std::collections::HashSet<_> = (0..8).map(racy_trace).collect();
        assert!(traces.len() > 1, "the seed changes the order");
    });
}

/// `wait` returns once every other member is durably blocked.
#[test]
fn wait_sees_children_blocked() {
    support::within("wait", || {
        testing::bubble(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let state = Arc::new(Mutex::new(0));
            let s = state.clone();
            let h = goro::spawn(move || {
                *s.lock().unwrap() = 1;
                let v = rx.recv().unwrap();
                *s.lock().unwrap() = v;
            });
            testing::wait();
            assert_eq!(*state.lock().unwrap(), 1);
            tx.send(7).unwrap();
            h.join().unwrap();
            assert_eq!(*state.lock().unwrap(), 7);
        })
    });
}

/// A bubble whose members all block for good, with no timer, panics.
#[test]
fn a_deadlocked_bubble_panics() {
    support::within("deadlock", || {
        let r = std::panic::catch_unwind(|| {
            testing::bubble(|| {
                let (_tx, rx) = chan::bounded::<()>(0);
                let _ = rx.recv();
            })
        });
        let msg = r.unwrap_err();
        let msg = msg
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("durably blocked - deadlock!"), "{msg}");
        // The message goes on with the dump of the bubble's members: what
        // the root waits on, and where.
        assert!(msg.contains("[chan receive, "), "no dump in: {msg}");
        assert!(msg.contains(file!()), "no location in: {msg}");
    });
}

/// The root returns while a member is blocked for good: the panic names
/// the member's wait.
#[test]
fn a_bubble_left_blocked_shows_the_dump() {
    support::within("left blocked", || {
        let r = std::panic::catch_unwind(|| {
            testing::bubble(|| {
                let m = Arc::new(goro::sync::Mutex::new(()));
                std::mem::forget(m.lock());
                let m = m.clone();
                let _child = goro::Builder::new()
                    .name("stuck-child")
                    .spawn(move || drop(m.lock()))
                    .unwrap();
                testing::wait();
            })
        });
        let msg = panic_message(r.unwrap_err());
        assert!(msg.contains("durably blocked forever - deadlock!"), "{msg}");
        assert!(msg.contains("[mutex lock, "), "no dump in: {msg}");
        assert!(msg.contains("stuck-child"), "no name in: {msg}");
    });
}

/// Outside a bubble `now` is the real clock; a bubble may be run from a
/// coroutine, and its root's panic reaches the caller.
#[test]
fn from_a_coroutine_and_panics() {
    support::within("from a coroutine", || {
        let before = std::time::Instant::now();
        assert!(testing::now() >= before);
        let v = goro::spawn(|| testing::bubble(testing::in_bubble))
            .join()
            .unwrap();
        assert!(v);
        let r = std::panic::catch_unwind(|| testing::bubble(|| panic!("boom")));
        assert!(r.is_err());
    });
}

// ---- ownership: a bubble's channels and locks stay inside it ----------

/// The message of a caught panic.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `f` on this (outside) thread and returns its panic message.
fn outside_panics(f: impl FnOnce()) -> String {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    panic_message(r.expect_err("use from outside the bubble did not panic"))
}

#[test]
fn a_bubble_channel_used_from_outside_panics() {
    support::within("bubble channel from outside", || {
        let (tx, rx) = testing::bubble(|| chan::bounded::<u32>(1));
        let msg = outside_panics(|| {
            let _ = tx.send(1);
        });
        assert!(
            msg.contains("channel created inside testing bubble"),
            "message: {msg}"
        );
        outside_panics(|| {
            let _ = rx.try_recv();
        });
        outside_panics(|| {
            goro::select! {
                recv(rx) -> _ => {},
                default => {},
            }
        });
        outside_panics(|| {
            tx.close();
        });
        // Dropping is not a use: no panic.
        drop((tx, rx));
    });
}

#[test]
fn a_channel_made_outside_may_be_used_inside_and_out() {
    support::within("outside channel inside", || {
        let (tx, rx) = chan::bounded::<u32>(1);
        let tx2 = tx.clone();
        testing::bubble(move || tx2.send(1).unwrap());
        assert_eq!(rx.recv(), Ok(1));
        tx.send(2).unwrap();
        assert_eq!(rx.recv(), Ok(2));
    });
}

/// A lock first used inside a bubble belongs to it: a thread outside that
/// uses it while the bubble runs panics. The bubble stays alive (and not
/// durably blocked) by waiting on the blocking pool.
#[test]
fn a_bubble_lock_used_from_outside_while_it_runs_panics() {
    support::within("bubble lock from outside", || {
        let (to_test, from_bubble) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let bubble = std::thread::spawn(move || {
            testing::bubble(move || {
                let m = Arc::new(goro::sync::Mutex::new(0));
                let rw = Arc::new(goro::sync::RwLock::new(0));
                let sem = Arc::new(goro::sync::Semaphore::new(1));
                *m.lock() += 1;
                *rw.write() += 1;
                drop(sem.acquire());
                to_test.send((m, rw, sem)).unwrap();
                goro::blocking(move || released.recv().unwrap());
            })
        });
        let (m, rw, sem) = from_bubble.recv().unwrap();
        let msg = outside_panics(|| drop(m.lock()));
        assert!(
            msg.contains("Mutex created inside testing bubble"),
            "message: {msg}"
        );
        outside_panics(|| drop(m.try_lock()));
        outside_panics(|| drop(rw.read()));
        outside_panics(|| drop(rw.try_write()));
        outside_panics(|| drop(sem.try_acquire()));
        release.send(()).unwrap();
        bubble.join().unwrap();
        // The bubble has ended: its mark is stale, the lock is usable.
        assert_eq!(*m.lock(), 1);
        assert_eq!(*rw.read(), 1);
    });
}

/// The same for `Condvar`, `WaitGroup`, `Barrier` and `Once`: used first
/// inside a running bubble, they are its own.
#[test]
fn bubble_signals_used_from_outside_panic() {
    support::within("bubble signals from outside", || {
        let (to_test, from_bubble) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let bubble = std::thread::spawn(move || {
            testing::bubble(move || {
                let cv = Arc::new(goro::sync::Condvar::new());
                let wg = goro::sync::WaitGroup::new();
                let barrier = Arc::new(goro::sync::Barrier::new(2));
                let once = Arc::new(goro::sync::Once::new());
                cv.notify_all();
                wg.add(1);
                let b2 = barrier.clone();
                let h = goro::go!(move || {
                    b2.wait();
                });
                barrier.wait();
                h.join().unwrap();
                // Marked by a first use that did not complete the Once:
                // a panicking initializer leaves it incomplete.
                let o2 = once.clone();
                let _ = goro::go!(move || o2.call_once(|| panic!("not yet"))).join();
                to_test.send((cv, wg, barrier, once)).unwrap();
                goro::blocking(move || released.recv().unwrap());
            })
        });
        let (cv, wg, barrier, once) = from_bubble.recv().unwrap();
        let msg = outside_panics(|| {
            cv.notify_one();
        });
        assert!(
            msg.contains("Condvar created inside testing bubble"),
            "message: {msg}"
        );
        let msg = outside_panics(|| wg.done());
        assert!(msg.contains("WaitGroup created inside"), "message: {msg}");
        outside_panics(|| wg.wait());
        let msg = outside_panics(|| {
            barrier.wait();
        });
        assert!(msg.contains("Barrier created inside"), "message: {msg}");
        let msg = outside_panics(|| once.call_once(|| ()));
        assert!(msg.contains("Once created inside"), "message: {msg}");
        release.send(()).unwrap();
        bubble.join().unwrap();
        // The bubble has ended: the marks are stale, all usable again.
        wg.done();
        wg.wait();
        once.call_once(|| ());
        assert!(once.is_completed());
        assert_eq!(cv.notify_all(), 0);
    });
}

/// Statics are shared by design: one used inside a running bubble stays
/// usable outside.
#[test]
fn a_static_lock_is_exempt() {
    static SHARED: goro::sync::Mutex<u32> = goro::sync::Mutex::new(0);
    support::within("static lock", || {
        let (to_test, used) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let bubble = std::thread::spawn(move || {
            testing::bubble(move || {
                *SHARED.lock() += 1;
                to_test.send(()).unwrap();
                goro::blocking(move || released.recv().unwrap());
            })
        });
        used.recv().unwrap();
        *SHARED.lock() += 1;
        release.send(()).unwrap();
        bubble.join().unwrap();
        assert!(*SHARED.lock() >= 2);
    });
}

/// A lock used outside first (while a bubble exists) is shared for good.
#[test]
fn a_lock_used_outside_first_is_shared() {
    support::within("lock used outside first", || {
        let (to_test, ready) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let m = Arc::new(goro::sync::Mutex::new(0));
        let bubble = std::thread::spawn(move || {
            testing::bubble(move || {
                to_test.send(()).unwrap();
                goro::blocking(move || released.recv().unwrap());
            })
        });
        ready.recv().unwrap();
        *m.lock() += 1; // outside, while a bubble is alive: shared
        let m2 = m.clone();
        release.send(()).unwrap();
        bubble.join().unwrap();
        testing::bubble(move || *m2.lock() += 1);
        assert_eq!(*m.lock(), 2);
    });
}
