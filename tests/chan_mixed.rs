//! Coroutines and plain OS threads meeting on the same channels, in every
//! direction, unbuffered (rendezvous) channels included.

mod support;

use std::time::Duration;

use goro::chan::{self, Receiver, RecvTimeoutError, Sender};

#[derive(Clone, Copy, Debug)]
enum Side {
    Coroutine,
    Thread,
}

/// Joins a coroutine or a thread.
type Join<T> = Box<dyn FnOnce() -> T>;

/// Runs `f` on the given side; the returned closure joins it.
fn run_on<T: Send + 'static>(side: Side, f: impl FnOnce() -> T + Send + 'static) -> Join<T> {
    match side {
        Side::Coroutine => {
            let h = goro::go!(f);
            Box::new(move || h.join().unwrap())
        }
        Side::Thread => {
            let h = std::thread::spawn(f);
            Box::new(move || h.join().unwrap())
        }
    }
}

/// A message: (sender number, sequence number).
type Msg = (usize, u32);

fn channel(cap: Option<usize>) -> (Sender<Msg>, Receiver<Msg>) {
    match cap {
        Some(c) => chan::bounded(c),
        None => chan::unbounded(),
    }
}

#[test]
fn every_direction_every_capacity() {
    support::within("senders and receivers on every side and capacity", || {
        const PER: u32 = 300;
        let sides = [Side::Coroutine, Side::Thread];
        for cap in [Some(0), Some(1), Some(8), None] {
            for send_side in sides {
                for recv_side in sides {
                    let (tx, rx) = channel(cap);
                    let senders: Vec<_> = (0..2)
                        .map(|s| {
                            let tx = tx.clone();
                            run_on(send_side, move || {
                                for i in 0..PER {
                                    tx.send((s, i)).unwrap();
                                }
                            })
                        })
                        .collect();
                    drop(tx);
                    let receivers: Vec<_> = (0..2)
                        .map(|_| {
                            let rx = rx.clone();
                            run_on(recv_side, move || rx.iter().collect::<Vec<_>>())
                        })
                        .collect();
                    drop(rx);
                    for s in senders {
                        s();
                    }
                    let mut per_sender = [Vec::new(), Vec::new()];
                    for r in receivers {
                        let got = r();
                        // Each receiver sees every sender's messages in order.
                        let mut last = [None::<u32>; 2];
                        for (s, i) in got {
                            assert!(
                                last[s].is_none_or(|l| l < i),
                                "{cap:?} {send_side:?}->{recv_side:?}"
                            );
                            last[s] = Some(i);
                            per_sender[s].push(i);
                        }
                    }
                    for v in &mut per_sender {
                        v.sort_unstable();
                        assert_eq!(
                            *v,
                            (0..PER).collect::<Vec<_>>(),
                            "{cap:?} {send_side:?}->{recv_side:?}"
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn rendezvous_ping_pong_thread_and_coroutine() {
    support::within("ping-pong over unbuffered channels", || {
        for (a, b) in [
            (Side::Thread, Side::Coroutine),
            (Side::Coroutine, Side::Thread),
            (Side::Thread, Side::Thread),
            (Side::Coroutine, Side::Coroutine),
        ] {
            let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
            let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
            let echo = run_on(b, move || {
                for v in &ping_rx {
                    pong_tx.send(v + 1).unwrap();
                }
            });
            let driver = run_on(a, move || {
                let mut v = 0;
                for _ in 0..2000 {
                    ping_tx.send(v).unwrap();
                    v = pong_rx.recv().unwrap();
                }
                v
            });
            assert_eq!(driver(), 2000);
            echo();
        }
    });
}

#[test]
fn close_from_a_thread_wakes_coroutines_and_back() {
    support::within("receivers woken by a close from the other side", || {
        let (tx, rx) = chan::bounded::<u8>(0);
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                goro::go!(move || rx.recv().is_err())
            })
            .collect();
        // The waiters are blocked in `recv` when the thread closes.
        for w in &waiters {
            support::wait_parked(w.id());
        }
        let closer = std::thread::spawn(move || tx.close());
        assert!(closer.join().unwrap());
        for w in waiters {
            assert!(w.join().unwrap());
        }
        let (tx, rx) = chan::bounded::<u8>(0);
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || rx.recv().is_err())
            })
            .collect();
        let closer = goro::go!(move || {
            // Gives the threads time to block in `recv` (they pass either way).
            goro::sleep(Duration::from_millis(5));
            drop(tx); // the last sender
        });
        closer.join().unwrap();
        for t in threads {
            assert!(t.join().unwrap());
        }
    });
}

#[test]
fn timeouts_on_both_sides() {
    support::within("timed receives on a thread and in a coroutine", || {
        let (tx, rx) = chan::bounded::<u8>(0);
        let t = {
            let rx = rx.clone();
            std::thread::spawn(move || rx.recv_timeout(Duration::from_millis(10)))
        };
        let c = goro::go!(move || rx.recv_timeout(Duration::from_millis(10)));
        assert_eq!(t.join().unwrap(), Err(RecvTimeoutError::Timeout));
        assert_eq!(c.join().unwrap(), Err(RecvTimeoutError::Timeout));
        // A coroutine waiting with a deadline gets a thread's message in time.
        let (tx2, rx2) = chan::bounded::<u8>(0);
        let c = goro::go!(move || rx2.recv_timeout(Duration::from_secs(10)));
        std::thread::spawn(move || tx2.send(4).unwrap())
            .join()
            .unwrap();
        assert_eq!(c.join().unwrap(), Ok(4));
        drop(tx);
    });
}

#[test]
fn many_threads_many_coroutines_one_unbuffered_channel() {
    support::within("threads and coroutines on one unbuffered channel", || {
        const PER: u64 = 500;
        let (tx, rx) = chan::bounded::<u64>(0);
        let mut producers = Vec::new();
        for k in 0..3u64 {
            let tx = tx.clone();
            producers.push(run_on(Side::Thread, move || {
                for i in 0..PER {
                    tx.send(k * PER + i).unwrap();
                }
            }));
        }
        for k in 3..6u64 {
            let tx = tx.clone();
            producers.push(run_on(Side::Coroutine, move || {
                for i in 0..PER {
                    tx.send(k * PER + i).unwrap();
                }
            }));
        }
        drop(tx);
        let consumers: Vec<_> = (0..6)
            .map(|i| {
                let rx = rx.clone();
                let side = if i % 2 == 0 {
                    Side::Thread
                } else {
                    Side::Coroutine
                };
                run_on(side, move || rx.iter().collect::<Vec<_>>())
            })
            .collect();
        drop(rx);
        for p in producers {
            p();
        }
        let mut all: Vec<u64> = consumers.into_iter().flat_map(|c| c()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..6 * PER).collect::<Vec<_>>());
    });
}

#[test]
fn timers_work_on_threads_and_in_coroutines() {
    support::within("timer channels on a thread and in a coroutine", || {
        let t = std::thread::spawn(|| chan::after(Duration::from_millis(3)).recv().is_ok());
        let c = goro::go!(|| chan::after(Duration::from_millis(3)).recv().is_ok());
        assert!(t.join().unwrap() && c.join().unwrap());
        // One ticker shared by a thread and a coroutine: each tick goes to one.
        let ticker = chan::tick(Duration::from_millis(1));
        let t2 = ticker.clone();
        let th = std::thread::spawn(move || (0..5).map(|_| t2.recv().unwrap()).collect::<Vec<_>>());
        let co = goro::go!(move || (0..5).map(|_| ticker.recv().unwrap()).collect::<Vec<_>>());
        let mut all = th.join().unwrap();
        all.extend(co.join().unwrap());
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a tick was delivered twice");
    });
}
