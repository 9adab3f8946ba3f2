//! Bounded stress: 1,000 coroutines plus OS threads push 1,000,000
//! messages through one bounded channel; every value must arrive exactly
//! once. Smaller runs do the same over unbuffered and unbounded channels
//! and through `select!`. Debug builds run the full million too (about a
//! second on a 2-core machine).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, Receiver, Sender};

const MESSAGES: usize = 1_000_000;
const PRODUCER_COROUTINES: usize = 500;
const CONSUMER_COROUTINES: usize = 500;
const PRODUCER_THREADS: usize = 2;
const CONSUMER_THREADS: usize = 2;

/// Sends `values` from 500 coroutines and 2 threads, receives them with
/// 500 coroutines and 2 threads, and checks each arrived once.
fn exactly_once(tx: Sender<u32>, rx: Receiver<u32>, messages: usize) {
    let producers = PRODUCER_COROUTINES + PRODUCER_THREADS;
    let per = messages / producers;
    let total = per * producers;
    let start = Instant::now();
    let mut joins: Vec<Box<dyn FnOnce()>> = Vec::new();
    for p in 0..producers {
        let tx = tx.clone();
        let range = (p * per) as u32..((p + 1) * per) as u32;
        let work = move || {
            for v in range {
                tx.send(v).unwrap();
            }
        };
        if p < PRODUCER_COROUTINES {
            let h = goro::go!(work);
            joins.push(Box::new(move || h.join().unwrap()));
        } else {
            let h = std::thread::spawn(work);
            joins.push(Box::new(move || h.join().unwrap()));
        }
    }
    drop(tx);
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let mut consumers: Vec<Box<dyn FnOnce() -> usize>> = Vec::new();
    for c in 0..CONSUMER_COROUTINES + CONSUMER_THREADS {
        let (rx, seen) = (rx.clone(), seen.clone());
        let work = move || {
            let mut n = 0;
            for v in &rx {
                seen[v as usize].fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            n
        };
        if c < CONSUMER_COROUTINES {
            let h = goro::go!(work);
            consumers.push(Box::new(move || h.join().unwrap()));
        } else {
            let h = std::thread::spawn(work);
            consumers.push(Box::new(move || h.join().unwrap()));
        }
    }
    drop(rx);
    for j in joins {
        j();
    }
    let received: usize = consumers.into_iter().map(|c| c()).sum();
    assert_eq!(received, total);
    let bad: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.load(Ordering::Relaxed) != 1)
        .map(|(i, _)| i)
        .take(10)
        .collect();
    assert!(bad.is_empty(), "values not received exactly once: {bad:?}");
    eprintln!("{total} messages in {:?}", start.elapsed());
}

#[test]
fn stress_bounded() {
    support::within_for(
        support::STRESS_PATIENCE,
        "1,000,000 messages through a bounded channel",
        || {
            let (tx, rx) = chan::bounded(64);
            exactly_once(tx, rx, MESSAGES);
        },
    );
}

#[test]
fn stress_unbuffered() {
    support::within_for(
        support::STRESS_PATIENCE,
        "250,000 messages through an unbuffered channel",
        || {
            let (tx, rx) = chan::bounded(0);
            exactly_once(tx, rx, MESSAGES / 4);
        },
    );
}

#[test]
fn stress_unbounded() {
    support::within_for(
        support::STRESS_PATIENCE,
        "250,000 messages through an unbounded channel",
        || {
            let (tx, rx) = chan::unbounded();
            exactly_once(tx, rx, MESSAGES / 4);
        },
    );
}

/// Selecting consumers over four channels with timeouts, fed by
/// coroutines and threads: still exactly once.
#[test]
fn stress_select() {
    support::within_for(
        support::STRESS_PATIENCE,
        "125,000 messages through selecting consumers",
        || {
            let messages = MESSAGES / 8;
            let chans: Vec<_> = [0usize, 1, 16, 0]
                .iter()
                .map(|&c| chan::bounded::<u32>(c))
                .collect();
            let producers = 200;
            let per = messages / producers;
            let total = per * producers;
            let mut joins: Vec<Box<dyn FnOnce()>> = Vec::new();
            for p in 0..producers {
                let tx = chans[p % 4].0.clone();
                let range = (p * per) as u32..((p + 1) * per) as u32;
                let work = move || {
                    for v in range {
                        tx.send(v).unwrap();
                    }
                };
                if p % 50 == 0 {
                    let h = std::thread::spawn(work);
                    joins.push(Box::new(move || h.join().unwrap()));
                } else {
                    let h = goro::go!(work);
                    joins.push(Box::new(move || h.join().unwrap()));
                }
            }
            let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
            let rxs: Vec<Receiver<u32>> = chans.iter().map(|(_, rx)| rx.clone()).collect();
            drop(chans);
            let mut consumers: Vec<Box<dyn FnOnce()>> = Vec::new();
            for c in 0..100 {
                let (rxs, seen) = (rxs.clone(), seen.clone());
                let work = move || {
                    let off = chan::never::<u32>();
                    let mut open = [true; 4];
                    let mark = |v: u32| {
                        seen[v as usize].fetch_add(1, Ordering::Relaxed);
                    };
                    while open.iter().any(|o| *o) {
                        let r = |i: usize| if open[i] { &rxs[i] } else { &off };
                        let (i, res) = goro::select! {
                            recv(r(0)) -> v => (0, v),
                            recv(r(1)) -> v => (1, v),
                            recv(r(2)) -> v => (2, v),
                            recv(r(3)) -> v => (3, v),
                            default(Duration::from_millis(50)) => continue,
                        };
                        match res {
                            Ok(v) => mark(v),
                            Err(_) => open[i] = false,
                        }
                    }
                };
                if c % 50 == 0 {
                    let h = std::thread::spawn(work);
                    consumers.push(Box::new(move || h.join().unwrap()));
                } else {
                    let h = goro::go!(work);
                    consumers.push(Box::new(move || h.join().unwrap()));
                }
            }
            drop(rxs);
            for j in joins {
                j();
            }
            for c in consumers {
                c();
            }
            assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1));
        },
    );
}
