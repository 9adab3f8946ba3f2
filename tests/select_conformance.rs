//! `select!` and `Select` semantics: fairness, atomicity under racing
//! selectors in both directions, default and timeouts, closed and nil
//! channels, timers, and the dynamic `Select` API.
//!
//! Some cases are ported in spirit from Go's `test/chan/doubleselect.go`,
//! `test/chan/select*.go` and `src/runtime/chan_test.go` (TestSelfSelect,
//! TestSelectFairness, TestSelectStress), Copyright The Go Authors,
//! BSD-style licence; the code is written anew for goro.

mod support;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, RecvError, Select, SendError};
use goro::select;

/// Pearson's chi-square statistic of `counts` against a uniform split.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Chi-square critical values at p = 1e-6 (a correct implementation fails
/// one run in a million), by degrees of freedom.
const CHI2_1E6: [f64; 8] = [0.0, 23.93, 27.63, 30.66, 33.38, 35.89, 38.26, 40.52];

#[test]
fn fairness_among_ready_recv_arms() {
    support::within("fairness among ready recv arms", || {
        // Closed channels are always ready.
        let chans: Vec<_> = (0..4).map(|_| chan::bounded::<u8>(0)).collect();
        for (tx, _) in &chans {
            tx.close();
        }
        let r = |i: usize| &chans[i].1;
        let mut counts = [0u64; 4];
        for _ in 0..20_000 {
            let i = select! {
                recv(r(0)) -> _ => 0,
                recv(r(1)) -> _ => 1,
                recv(r(2)) -> _ => 2,
                recv(r(3)) -> _ => 3,
            };
            counts[i] += 1;
        }
        let x2 = chi_square(&counts);
        assert!(
            x2 < CHI2_1E6[3],
            "unfair select: {counts:?}, chi-square {x2:.1}"
        );
    });
}

#[test]
fn fairness_only_among_the_ready_ones() {
    support::within("fairness only among the ready ones", || {
        let (a_tx, a) = chan::unbounded::<u32>();
        let (b_tx, b) = chan::unbounded::<u32>();
        let (_c_tx, c) = chan::bounded::<u32>(0); // never ready
        let d = chan::never::<u32>();
        for i in 0..10_000 {
            a_tx.send(i).unwrap();
            b_tx.send(i).unwrap();
        }
        let mut counts = [0u64; 2];
        for _ in 0..10_000 {
            select! {
                recv(a) -> v => { v.unwrap(); counts[0] += 1 }
                recv(c) -> _ => panic!("not ready"),
                recv(b) -> v => { v.unwrap(); counts[1] += 1 }
                recv(d) -> _ => panic!("nil channel chosen"),
            }
        }
        let x2 = chi_square(&counts);
        assert!(x2 < CHI2_1E6[1], "unfair: {counts:?}, chi-square {x2:.1}");
    });
}

#[test]
fn fairness_of_send_arms_and_dynamic_select() {
    support::within("fairness of send arms and dynamic select", || {
        let chans: Vec<_> = (0..3).map(|_| chan::unbounded::<u8>()).collect();
        let mut counts = [0u64; 3];
        for _ in 0..6000 {
            let i = select! {
                send(chans[0].0, 0) -> r => { r.unwrap(); 0 }
                send(chans[1].0, 1) -> r => { r.unwrap(); 1 }
                send(chans[2].0, 2) -> r => { r.unwrap(); 2 }
            };
            counts[i] += 1;
        }
        assert!(chi_square(&counts) < CHI2_1E6[2], "{counts:?}");
        for (i, (_, rx)) in chans.iter().enumerate() {
            assert_eq!(rx.len() as u64, counts[i]);
        }

        let mut counts = [0u64; 3];
        let mut sel = Select::new();
        for (_, rx) in &chans {
            sel.recv(rx);
        }
        for _ in 0..6000 {
            let op = sel.select();
            let i = op.index();
            op.recv(&chans[i].1).unwrap();
            counts[i] += 1;
        }
        assert!(chi_square(&counts) < CHI2_1E6[2], "{counts:?}");
    });
}

#[test]
fn default_runs_only_when_nothing_is_ready() {
    support::within("default runs only when nothing is ready", || {
        let (tx, rx) = chan::bounded::<u8>(1);
        let (tx2, rx2) = chan::bounded::<u8>(0);
        let got = select! {
            recv(rx) -> _ => "rx",
            recv(rx2) -> _ => "rx2",
            default => "default",
        };
        assert_eq!(got, "default");
        tx.send(1).unwrap();
        let got = select! {
            recv(rx) -> v => { assert_eq!(v, Ok(1)); "rx" }
            recv(rx2) -> _ => "rx2",
            default => "default",
        };
        assert_eq!(got, "rx");
        // A send arm with default: full channel means default.
        tx.send(2).unwrap();
        let r = select! {
            send(tx, 3) -> _ => "sent",
            send(tx2, 4) -> _ => "sent2",
            default => "full",
        };
        assert_eq!(r, "full");
    });
}

#[test]
fn default_timeout_waits_then_gives_up() {
    support::within("default timeout waits then gives up", || {
        let (_tx, rx) = chan::bounded::<u8>(0);
        let (_tx2, rx2) = chan::bounded::<u8>(0);
        let start = Instant::now();
        let r = select! {
            recv(rx) -> _ => false,
            recv(rx2) -> _ => false,
            default(Duration::from_millis(20)) => true,
        };
        assert!(r);
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Ready before the timeout: the arm wins.
        let (tx, rx) = chan::bounded::<u8>(0);
        let h = goro::go!(move || tx.send(5).unwrap());
        let r = select! {
            recv(rx) -> v => v.unwrap(),
            recv(rx2) -> _ => 0,
            default(Duration::from_secs(10)) => 0,
        };
        assert_eq!(r, 5);
        h.join().unwrap();
    });
}

#[test]
fn closed_channels_make_their_arms_ready() {
    support::within("closed channels make their arms ready", || {
        let (tx, rx) = chan::bounded::<String>(1);
        let (_tx2, rx2) = chan::bounded::<String>(0);
        tx.close();
        let r = select! {
            recv(rx) -> r => r,
            recv(rx2) -> _ => panic!("not ready"),
        };
        assert_eq!(r, Err(RecvError));
        let (_keep, other) = chan::bounded::<String>(0);
        let r = select! {
            send(tx, "kept".to_string()) -> r => r,
            recv(other) -> _ => panic!("not ready"),
        };
        assert_eq!(r, Err(SendError("kept".to_string())));
        // A blocked select wakes when a channel closes.
        let (tx, rx) = chan::bounded::<u8>(0);
        let (_tx2, rx2) = chan::bounded::<u8>(0);
        let h = goro::go!(move || select! {
            recv(rx) -> r => r,
            recv(rx2) -> _ => Ok(99),
        });
        support::wait_parked(h.id());
        tx.close();
        assert_eq!(h.join().unwrap(), Err(RecvError));
        // A blocked select sending wakes when the receivers go.
        let (tx, rx) = chan::bounded::<u8>(0);
        let (_tx2, rx2) = chan::bounded::<u8>(0);
        let h = goro::go!(move || select! {
            send(tx, 1) -> r => r.is_err(),
            recv(rx2) -> _ => false,
        });
        support::wait_parked(h.id());
        drop(rx);
        assert!(h.join().unwrap());
    });
}

#[test]
fn never_arms_are_never_chosen() {
    support::within("never arms are never chosen", || {
        let n = chan::never::<u8>();
        let (tx, rx) = chan::bounded::<u8>(100);
        for _ in 0..100 {
            tx.send(1).unwrap();
        }
        for _ in 0..100 {
            select! {
                recv(n) -> _ => panic!("nil channel chosen"),
                recv(rx) -> v => assert_eq!(v, Ok(1)),
            }
        }
        let r = select! {
            recv(n) -> _ => false,
            default(Duration::from_millis(5)) => true,
        };
        assert!(r);
    });
}

#[test]
fn empty_select_blocks_forever() {
    support::within("empty select blocks forever", || {
        // Go's `select {}`: the coroutine parks and is never woken. It is
        // leaked on purpose (a coroutine parked forever is leaked, as in Go).
        let h = goro::go!(|| {
            select! {}
        });
        support::wait_parked(h.id());
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished());
        std::mem::forget(h);
        // With a timeout it returns.
        let start = Instant::now();
        let v = select! { default(Duration::from_millis(10)) => 7 };
        assert_eq!(v, 7);
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(select! { default => 8 }, 8);
        let mut sel = Select::new();
        assert!(sel.try_select().is_err());
        let start = Instant::now();
        assert!(sel.select_timeout(Duration::from_millis(10)).is_err());
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn losing_send_arm_delivers_and_evaluates_nothing() {
    support::within("losing send arm delivers and evaluates nothing", || {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        fn make(v: u32) -> u32 {
            MADE.fetch_add(1, Ordering::SeqCst);
            v
        }
        let (full_tx, full_rx) = chan::bounded::<u32>(1);
        full_tx.send(0).unwrap();
        let (tx, rx) = chan::bounded::<u32>(1);
        tx.send(5).unwrap();
        for _ in 0..100 {
            select! {
                send(full_tx, make(1)) -> _ => panic!("full"),
                recv(rx) -> v => assert_eq!(v, Ok(5)),
            }
            tx.send(5).unwrap();
        }
        assert_eq!(MADE.load(Ordering::SeqCst), 0);
        assert_eq!(full_rx.try_iter().collect::<Vec<_>>(), [0]);
    });
}

#[test]
fn values_are_dropped_exactly_once() {
    support::within("values are dropped exactly once", || {
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        struct Tracked(#[allow(dead_code)] u32);
        impl Tracked {
            fn new(v: u32) -> Tracked {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Tracked(v)
            }
        }
        impl Drop for Tracked {
            fn drop(&mut self) {
                LIVE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        {
            let (a_tx, a_rx) = chan::bounded::<Tracked>(1);
            let (b_tx, b_rx) = chan::bounded::<Tracked>(0);
            let (c_tx, c_rx) = chan::bounded::<Tracked>(2);
            let mut pending = Some(Tracked::new(100));
            for i in 0..200 {
                let v = Tracked::new(i);
                select! {
                    send(a_tx, v) -> r => { if let Err(e) = r { drop(e.0) } }
                    send(b_tx, Tracked::new(i)) -> _ => {}
                    recv(c_rx) -> _ => {}
                    default => { let _ = a_rx.try_recv(); }
                }
                if let Some(p) = pending.take() {
                    c_tx.send(p).unwrap();
                }
            }
            drop((b_rx, c_tx));
            a_tx.close();
        }
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    });
}

/// Go's test/chan/doubleselect.go: a sender selects over four channels;
/// four muxes forward to one channel; every value arrives exactly once.
#[test]
fn double_select_exactly_once() {
    support::within("double select exactly once", || {
        const N: u32 = 5000;
        let chans: Vec<_> = (0..4).map(|_| chan::bounded::<u32>(0)).collect();
        let (mux_tx, mux_rx) = chan::bounded::<u32>(0);
        let senders: Vec<_> = chans.iter().map(|(tx, _)| tx.clone()).collect();
        let sender = goro::go!(move || {
            for i in 0..N {
                select! {
                    send(senders[0], i) -> r => r.unwrap(),
                    send(senders[1], i) -> r => r.unwrap(),
                    send(senders[2], i) -> r => r.unwrap(),
                    send(senders[3], i) -> r => r.unwrap(),
                }
            }
        });
        let muxes: Vec<_> = chans
            .into_iter()
            .map(|(tx, rx)| {
                drop(tx);
                let mux_tx = mux_tx.clone();
                goro::go!(move || {
                    for v in &rx {
                        mux_tx.send(v).unwrap();
                    }
                })
            })
            .collect();
        drop(mux_tx);
        let mut seen = HashSet::new();
        let mut count = 0;
        while count < N {
            let v = mux_rx.recv().unwrap();
            assert!(seen.insert(v), "{v} delivered twice");
            count += 1;
        }
        sender.join().unwrap();
        for m in muxes {
            m.join().unwrap();
        }
        assert_eq!(mux_rx.try_recv().ok(), None);
    });
}

/// Selectors that send race selectors that receive, on unbuffered and
/// buffered channels, plus plain operations: every value sent is received
/// exactly once, and each message expression is evaluated exactly once
/// per completed send.
#[test]
fn racing_selectors_in_both_directions() {
    support::within("racing selectors in both directions", || {
        for cap in [0usize, 1, 4] {
            const PER: u32 = 400;
            let (a_tx, a_rx) = chan::bounded::<u32>(cap);
            let (b_tx, b_rx) = chan::bounded::<u32>(cap);
            let evaluated = Arc::new(AtomicUsize::new(0));
            let mut senders = Vec::new();
            for s in 0..3u32 {
                let (a, b, ev) = (a_tx.clone(), b_tx.clone(), evaluated.clone());
                senders.push(goro::go!(move || {
                    for i in 0..PER {
                        let v = s * 100_000 + i;
                        let mk = || {
                            ev.fetch_add(1, Ordering::SeqCst);
                            v
                        };
                        select! {
                            send(a, mk()) -> r => r.unwrap(),
                            send(b, mk()) -> r => r.unwrap(),
                        }
                    }
                }));
            }
            // A plain thread sends too.
            let plain = {
                let a = a_tx.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        a.send(900_000 + i).unwrap();
                    }
                })
            };
            drop((a_tx, b_tx));
            let (out_tx, out_rx) = chan::unbounded::<u32>();
            let mut receivers = Vec::new();
            for _ in 0..3 {
                let (a, b, out) = (a_rx.clone(), b_rx.clone(), out_tx.clone());
                receivers.push(goro::go!(move || {
                    let (mut a_open, mut b_open) = (true, true);
                    let off = chan::never::<u32>();
                    while a_open || b_open {
                        select! {
                            recv(if a_open { &a } else { &off }) -> r => match r {
                                Ok(v) => out.send(v).unwrap(),
                                Err(_) => a_open = false,
                            },
                            recv(if b_open { &b } else { &off }) -> r => match r {
                                Ok(v) => out.send(v).unwrap(),
                                Err(_) => b_open = false,
                            },
                        }
                    }
                }));
            }
            // A plain receiver on one channel.
            let plain_rx = {
                let (a, out) = (a_rx.clone(), out_tx.clone());
                std::thread::spawn(move || {
                    for v in a.iter() {
                        out.send(v).unwrap();
                    }
                })
            };
            drop((a_rx, b_rx, out_tx));
            for s in senders {
                s.join().unwrap();
            }
            plain.join().unwrap();
            for r in receivers {
                r.join().unwrap();
            }
            plain_rx.join().unwrap();
            let got: Vec<u32> = out_rx.iter().collect();
            let unique: HashSet<u32> = got.iter().copied().collect();
            assert_eq!(got.len(), unique.len(), "cap {cap}: duplicates");
            assert_eq!(got.len(), 4 * PER as usize, "cap {cap}: lost messages");
            assert_eq!(evaluated.load(Ordering::SeqCst), 3 * PER as usize);
        }
    });
}

/// Go's TestSelfSelect: two coroutines each select between sending and
/// receiving on the same channel; they must pair with each other (never
/// with themselves on an unbuffered channel) and never deadlock.
#[test]
fn self_select_pairs_with_the_other_side() {
    support::within("self select pairs with the other side", || {
        for cap in [0usize, 1] {
            let (tx, rx) = chan::bounded::<u32>(cap);
            let hs: Vec<_> = (0..2u32)
                .map(|p| {
                    let (tx, rx) = (tx.clone(), rx.clone());
                    goro::go!(move || {
                        for _ in 0..1000 {
                            select! {
                                send(tx, p) -> r => r.unwrap(),
                                recv(rx) -> v => {
                                    let v = v.unwrap();
                                    if cap == 0 {
                                        assert_ne!(v, p, "received its own message");
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

#[test]
fn select_send_arm_meets_every_kind_of_receiver() {
    support::within("select send arm meets every kind of receiver", || {
        // Plain blocking receiver, try_recv poller, recv_timeout, and another
        // select, each against a selecting sender on an unbuffered channel.
        let (tx, rx) = chan::bounded::<u32>(0);
        let (_idle_tx, idle) = chan::bounded::<u32>(0);
        let sender = goro::go!(move || {
            for i in 0..400 {
                select! {
                    send(tx, i) -> r => r.unwrap(),
                    recv(idle) -> _ => unreachable!(),
                }
            }
        });
        let mut got = Vec::new();
        let mut k = 0;
        while got.len() < 400 {
            match k % 4 {
                0 => got.push(rx.recv().unwrap()),
                1 => {
                    if let Ok(v) = rx.try_recv() {
                        got.push(v)
                    } else {
                        goro::yield_now()
                    }
                }
                2 => {
                    if let Ok(v) = rx.recv_timeout(Duration::from_millis(50)) {
                        got.push(v)
                    }
                }
                _ => select! {
                    recv(rx) -> v => got.push(v.unwrap()),
                    default(Duration::from_millis(50)) => {}
                },
            }
            k += 1;
        }
        sender.join().unwrap();
        assert_eq!(got, (0..400).collect::<Vec<_>>());
    });
}

#[test]
fn timer_arms() {
    support::within("timer arms", || {
        let (_tx, rx) = chan::bounded::<u8>(0);
        let start = Instant::now();
        let timeout = chan::after(Duration::from_millis(15));
        let fired = select! {
            recv(rx) -> _ => panic!("nothing sent"),
            recv(timeout) -> t => t.unwrap(),
        };
        assert!(fired >= start + Duration::from_millis(15));
        // A ticker arm in a loop, with a stop channel.
        let ticker = chan::tick(Duration::from_millis(2));
        let (stop_tx, stop_rx) = chan::bounded::<()>(0);
        let h = goro::go!(move || {
            let mut ticks = 0;
            loop {
                select! {
                    recv(ticker) -> _ => {
                        ticks += 1;
                        if ticks == 5 {
                            stop_tx.send(()).unwrap();
                        }
                    }
                    default(Duration::from_secs(10)) => panic!("ticker stalled"),
                }
                if ticks == 5 {
                    return ticks;
                }
            }
        });
        stop_rx.recv().unwrap();
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn timers_and_deadline_together() {
    support::within("timers and deadline together", || {
        // The default(d) deadline comes before the timer arm.
        let far = chan::after(Duration::from_secs(60));
        let r = select! {
            recv(far) -> _ => "timer",
            default(Duration::from_millis(5)) => "deadline",
        };
        assert_eq!(r, "deadline");
        // The timer arm comes before the deadline.
        let near = chan::after(Duration::from_millis(5));
        let (_tx, idle) = chan::bounded::<u8>(0);
        let r = select! {
            recv(near) -> _ => "timer",
            recv(idle) -> _ => "idle",
            default(Duration::from_secs(60)) => "deadline",
        };
        assert_eq!(r, "timer");
    });
}

#[test]
fn threads_and_coroutines_select_against_each_other() {
    support::within("threads and coroutines select against each other", || {
        // A thread selects over channels fed by coroutines...
        let (a_tx, a_rx) = chan::bounded::<u32>(0);
        let (b_tx, b_rx) = chan::bounded::<u32>(0);
        let pa = goro::go!(move || (0..300).for_each(|i| a_tx.send(i).unwrap()));
        let pb = goro::go!(move || (0..300).for_each(|i| b_tx.send(1000 + i).unwrap()));
        let t = std::thread::spawn(move || {
            let mut sum = 0u64;
            let (mut a_open, mut b_open) = (true, true);
            let off = chan::never();
            while a_open || b_open {
                select! {
                    recv(if a_open { &a_rx } else { &off }) -> r => match r {
                        Ok(v) => sum += v as u64,
                        Err(_) => a_open = false,
                    },
                    recv(if b_open { &b_rx } else { &off }) -> r => match r {
                        Ok(v) => sum += v as u64,
                        Err(_) => b_open = false,
                    },
                }
            }
            sum
        });
        pa.join().unwrap();
        pb.join().unwrap();
        assert_eq!(t.join().unwrap(), (0..300u64).sum::<u64>() * 2 + 300_000);
        // ... and a coroutine selects sends towards threads.
        let (tx, rx) = chan::bounded::<u32>(0);
        let (tx2, rx2) = chan::bounded::<u32>(0);
        let h = goro::go!(move || {
            for i in 0..300 {
                select! {
                    send(tx, i) -> r => r.unwrap(),
                    send(tx2, i) -> r => r.unwrap(),
                }
            }
        });
        let t1 = std::thread::spawn(move || rx.iter().collect::<Vec<_>>());
        let t2 = std::thread::spawn(move || rx2.iter().collect::<Vec<_>>());
        h.join().unwrap();
        let mut all = t1.join().unwrap();
        all.extend(t2.join().unwrap());
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
    });
}

#[test]
fn dynamic_select_basics() {
    support::within("dynamic select basics", || {
        let (tx1, rx1) = chan::bounded::<i32>(1);
        let (tx2, rx2) = chan::bounded::<&str>(1);
        let mut sel = Select::new();
        let i1 = sel.recv(&rx1);
        let i2 = sel.send(&tx2);
        assert_eq!((i1, i2), (0, 1));
        // Only the send is ready.
        let op = sel.select();
        assert_eq!(op.index(), i2);
        op.send(&tx2, "x").unwrap();
        assert_eq!(rx2.recv(), Ok("x"));
        tx1.send(4).unwrap();
        tx2.send("full").unwrap();
        let op = sel.try_select().unwrap();
        assert_eq!(op.index(), i1);
        assert_eq!(op.recv(&rx1), Ok(4));
        assert!(sel.try_select().is_err());
        assert!(sel.select_timeout(Duration::from_millis(2)).is_err());
        // Removing keeps the other indices.
        sel.remove(i2);
        tx1.send(5).unwrap();
        let op = sel
            .select_deadline(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(op.index(), i1);
        assert_eq!(op.recv(&rx1), Ok(5));
        // A clone selects independently over the same operations.
        let mut sel2 = sel.clone();
        tx1.send(6).unwrap();
        assert_eq!(sel2.select().recv(&rx1), Ok(6));
        assert!(format!("{sel:?}").contains("operations: 1"));
    });
}

#[test]
fn dynamic_select_over_many_channels() {
    support::within("dynamic select over many channels", || {
        let chans: Vec<_> = (0..50).map(|_| chan::bounded::<usize>(1)).collect();
        let mut sel = Select::new();
        for (_, rx) in &chans {
            sel.recv(rx);
        }
        let h = {
            let txs: Vec<_> = chans.iter().map(|(tx, _)| tx.clone()).collect();
            goro::go!(move || {
                for (i, tx) in txs.iter().enumerate().rev() {
                    tx.send(i).unwrap();
                }
            })
        };
        let mut seen = [false; 50];
        for _ in 0..50 {
            let op = sel.select();
            let i = op.index();
            assert_eq!(op.recv(&chans[i].1), Ok(i));
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
        h.join().unwrap();
    });
}

#[test]
fn dynamic_select_wrong_channel_panics() {
    support::within("dynamic select wrong channel panics", || {
        let (tx, rx) = chan::bounded::<u8>(1);
        let (_tx2, rx2) = chan::bounded::<u8>(1);
        tx.send(1).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut sel = Select::new();
            sel.recv(&rx);
            let op = sel.select();
            let _ = op.recv(&rx2);
        }));
        assert!(r.is_err());
        // The message was consumed by the selection and dropped with the panic.
        assert!(rx.try_recv().is_err());
    });
}

#[test]
fn dropping_a_selected_operation_panics_and_gives_back() {
    support::within(
        "dropping a selected operation panics and gives back",
        || {
            // A reserved buffer slot is released.
            let (tx, rx) = chan::bounded::<u8>(1);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let mut sel = Select::new();
                sel.send(&tx);
                let op = sel.select();
                drop(op);
            }));
            assert!(r.is_err());
            assert_eq!(tx.try_send(7), Ok(()));
            assert_eq!(rx.recv(), Ok(7));
            // A claimed waiting receiver starts over and gets the next message.
            let (tx, rx) = chan::bounded::<u8>(0);
            let h = goro::go!(move || rx.recv());
            support::wait_parked(h.id());
            let r = catch_unwind(AssertUnwindSafe(|| {
                let mut sel = Select::new();
                sel.send(&tx);
                let op = sel.select();
                drop(op);
            }));
            assert!(r.is_err());
            tx.send(9).unwrap();
            assert_eq!(h.join().unwrap(), Ok(9));
        },
    );
}

#[test]
fn message_panic_in_a_send_arm_gives_back() {
    support::within("message panic in a send arm gives back", || {
        let (tx, rx) = chan::bounded::<u8>(0);
        let h = goro::go!(move || rx.recv());
        support::wait_parked(h.id());
        fn no_message() -> u8 {
            panic!("no message")
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            select! {
                send(tx, no_message()) -> _ => {}
            }
        }));
        assert!(r.is_err());
        tx.send(3).unwrap();
        assert_eq!(h.join().unwrap(), Ok(3));
    });
}

#[test]
fn select_stress_many_channels_and_selectors() {
    support::within("select stress many channels and selectors", || {
        // Go's TestSelectStress in miniature: buffered and unbuffered
        // channels, selecting senders and receivers, every value once.
        const PER: u32 = 300;
        let chans: Vec<_> = [0usize, 0, 1, 10]
            .iter()
            .map(|&c| chan::bounded::<u32>(c))
            .collect();
        let mut hs = Vec::new();
        for s in 0..4u32 {
            let txs: Vec<_> = chans.iter().map(|(tx, _)| tx.clone()).collect();
            hs.push(goro::go!(move || {
                for i in 0..PER {
                    let v = s * PER + i;
                    select! {
                        send(txs[0], v) -> r => r.unwrap(),
                        send(txs[1], v) -> r => r.unwrap(),
                        send(txs[2], v) -> r => r.unwrap(),
                        send(txs[3], v) -> r => r.unwrap(),
                    }
                }
            }));
        }
        let (out_tx, out_rx) = chan::unbounded::<u32>();
        let total = 4 * PER;
        let taken = Arc::new(AtomicUsize::new(0));
        let mut rs = Vec::new();
        for _ in 0..4 {
            let rxs: Vec<_> = chans.iter().map(|(_, rx)| rx.clone()).collect();
            let (out, taken) = (out_tx.clone(), taken.clone());
            rs.push(goro::go!(move || {
                while taken.load(Ordering::SeqCst) < total as usize {
                    select! {
                        recv(rxs[0]) -> v => { out.send(v.unwrap()).unwrap(); taken.fetch_add(1, Ordering::SeqCst); }
                        recv(rxs[1]) -> v => { out.send(v.unwrap()).unwrap(); taken.fetch_add(1, Ordering::SeqCst); }
                        recv(rxs[2]) -> v => { out.send(v.unwrap()).unwrap(); taken.fetch_add(1, Ordering::SeqCst); }
                        recv(rxs[3]) -> v => { out.send(v.unwrap()).unwrap(); taken.fetch_add(1, Ordering::SeqCst); }
                        default(Duration::from_millis(20)) => {}
                    }
                }
            }));
        }
        drop(out_tx);
        for h in hs {
            h.join().unwrap();
        }
        for r in rs {
            r.join().unwrap();
        }
        let mut got: Vec<u32> = out_rx.iter().collect();
        got.sort_unstable();
        assert_eq!(got, (0..total).collect::<Vec<_>>());
    });
}
