//! The `unsafe` opt-in to migration: migratable coroutines may resume on
//! any worker, and everything stays correct when they do.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn spawn_migratable<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> goro::JoinHandle<T> {
    // SAFETY: the closures in this file hold no thread-bound state (no
    // thread-locals, `Rc` or std guards) across the calls that park.
    unsafe { goro::Builder::new().migratable() }
        .spawn(f)
        .unwrap()
}

#[test]
fn migratable_coroutines_do_change_threads() {
    support::within("eight migratable coroutines sleeping and yielding", || {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                spawn_migratable(|| {
                    let mut threads = HashSet::new();
                    for i in 0..200 {
                        threads.insert(std::thread::current().id());
                        if i % 2 == 0 {
                            goro::sleep(Duration::from_millis(1));
                        } else {
                            goro::yield_now();
                        }
                    }
                    threads.len()
                })
            })
            .collect();
        let most = hs.into_iter().map(|h| h.join().unwrap()).max().unwrap();
        if goro::stats().workers >= 2 {
            assert!(
                most >= 2,
                "no migratable coroutine ever ran on a second worker"
            );
        }
    });
}

#[test]
fn timers_are_cancelled_on_the_wheel_that_holds_them() {
    let rounds = 2000u64;
    let threads = support::within("a migratable coroutine woken early 2000 times", move || {
        // A parks with a deadline again and again and is woken early every
        // time, so each of its timers is cancelled after a wake that may
        // have moved it to another worker: first by coroutine B (A wakes on
        // B's worker, stealable from there), then by a plain thread (A
        // wakes through the global queue, on whichever worker takes it).
        let progress = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let p = progress.clone();
        let a = spawn_migratable(move || {
            tx.send(goro::park::current()).unwrap();
            let mut threads = HashSet::new();
            for i in 0..rounds {
                while p.load(Ordering::Acquire) <= i {
                    goro::park::park_timeout(Duration::from_secs(30));
                    threads.insert(std::thread::current().id());
                }
            }
            threads.len()
        });
        let waker = rx.recv().unwrap();
        let (p, w) = (progress.clone(), waker.clone());
        let b = spawn_migratable(move || {
            for i in 1..=rounds / 2 {
                p.store(i, Ordering::Release);
                w.unpark();
                goro::yield_now();
            }
        });
        b.join().unwrap();
        let p = progress.clone();
        let c = std::thread::spawn(move || {
            for i in rounds / 2 + 1..=rounds {
                p.store(i, Ordering::Release);
                waker.unpark();
                std::thread::yield_now();
            }
        });
        c.join().unwrap();
        a.join().unwrap()
    });
    // Every timer of A was cancelled on the wheel holding it. One cancelled
    // on another wheel would stay pending for 30 s (or take another
    // coroutine's timer with it); the other tests of this binary hold
    // timers for a few milliseconds at a time.
    support::eventually(
        &format!(
            "no timer pending after {rounds} early wakes on {threads} workers \
             (a timer cancelled on the wrong wheel stays for 30 s)"
        ),
        || goro::stats().timers == 0,
    );
}

#[test]
fn channels_and_locks_stay_exact_under_migration() {
    support::within("migratable producers and consumers", || {
        let (tx, rx) = goro::chan::bounded::<u64>(16);
        let counter = Arc::new(goro::sync::Mutex::new(0u64));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let tx = tx.clone();
                spawn_migratable(move || {
                    for i in 0..25_000 {
                        tx.send(p * 1_000_000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let (rx, counter) = (rx.clone(), counter.clone());
                spawn_migratable(move || {
                    let mut got = Vec::new();
                    for v in rx.iter() {
                        *counter.lock() += 1;
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        // Pinned coroutines and a thread share the same lock meanwhile.
        let pinned = goro::spawn({
            let counter = counter.clone();
            move || {
                for _ in 0..10_000 {
                    *counter.lock() += 1;
                }
            }
        });
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        pinned.join().unwrap();
        all.sort_unstable();
        let expected: Vec<u64> = (0..4u64)
            .flat_map(|p| (0..25_000).map(move |i| p * 1_000_000 + i))
            .collect();
        assert_eq!(all, expected, "a message was lost, duplicated or corrupted");
        assert_eq!(*counter.lock(), 110_000);
    });
}

/// Migratable coroutines reading with short timeouts: a read's ring
/// operation lives on the ring of the worker it started on, and its cancel
/// may come from another worker after the coroutine moved. Every byte
/// sent must still arrive exactly once, and every read ends.
#[test]
fn ring_reads_with_timeouts_stay_exact_under_migration() {
    use std::io::{Read, Write};
    support::within("migratable readers with timeouts", || {
        const READERS: usize = 8;
        const BYTES: usize = 200;
        let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = goro::go!(move || {
            let mut conns: Vec<_> = (0..READERS).map(|_| listener.accept().unwrap().0).collect();
            for i in 0..BYTES {
                for c in &mut conns {
                    c.write_all(&[i as u8]).unwrap();
                }
                if i % 10 == 0 {
                    goro::sleep(Duration::from_millis(3));
                }
            }
        });
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                spawn_migratable(move || {
                    let mut c = goro::net::TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(Duration::from_micros(500)))
                        .unwrap();
                    let mut got = Vec::new();
                    let mut timeouts = 0u32;
                    while got.len() < BYTES {
                        let mut b = [0u8; 64];
                        match c.read(&mut b) {
                            Ok(0) => break,
                            Ok(n) => got.extend_from_slice(&b[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => timeouts += 1,
                            Err(e) => panic!("read failed: {e}"),
                        }
                        goro::yield_now();
                    }
                    (got, timeouts)
                })
            })
            .collect();
        for r in readers {
            let (got, timeouts) = r.join().unwrap();
            eprintln!("reader: {timeouts} timed-out reads");
            let want: Vec<u8> = (0..BYTES).map(|i| i as u8).collect();
            assert_eq!(got, want, "bytes lost, duplicated or reordered");
        }
        server.join().unwrap();
    });
}
