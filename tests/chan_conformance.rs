//! Go channel semantics, checked against `goro::chan`.
//!
//! Cases are ported in spirit from Go's `test/chan/*.go` (fifo, sieve1,
//! doubleselect, nonblock, select3, zerosize) and `src/runtime/chan_test.go`
//! (TestChan, TestSelfSelect, TestSelectFairness, TestChanSendInterface,
//! TestMultiConsumer), Copyright The Go Authors, BSD-style licence; the code
//! here is written anew for goro and its Rust API. Where Go panics (send on
//! a closed channel, double close) goro returns errors, and those are
//! checked instead.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{
    self, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

const CAPS: [usize; 6] = [0, 1, 2, 5, 10, 100];

#[test]
fn fifo_for_every_capacity() {
    support::within("fifo for every capacity", || {
        for cap in CAPS {
            let (tx, rx) = chan::bounded::<u32>(cap);
            let h = goro::go!(move || {
                for i in 0..1000 {
                    tx.send(i).unwrap();
                }
            });
            let got: Vec<u32> = rx.iter().collect();
            assert_eq!(got, (0..1000).collect::<Vec<_>>(), "cap {cap}");
            h.join().unwrap();
        }
        let (tx, rx) = chan::unbounded::<u32>();
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(rx.iter().collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>());
    });
}

/// Go's test/chan/fifo.go SynchFifo: a chain of coroutines, each waiting
/// for its turn on an unbuffered channel before sending its number.
#[test]
fn fifo_chain_of_turns() {
    support::within("fifo chain of turns", || {
        const N: u32 = 10;
        let (tx, rx) = chan::bounded::<u32>(0);
        let (first_tx, mut turn_rx) = chan::bounded::<()>(0);
        let mut hs = Vec::new();
        for i in 0..N {
            let (next_tx, next_rx) = chan::bounded::<()>(0);
            let (tx, my_turn) = (tx.clone(), turn_rx);
            hs.push(goro::go!(move || {
                my_turn.recv().unwrap();
                tx.send(i).unwrap();
                next_tx.send(()).unwrap();
            }));
            turn_rx = next_rx;
        }
        drop(tx);
        let releaser = goro::go!(move || first_tx.send(()).unwrap());
        for i in 0..N {
            assert_eq!(rx.recv(), Ok(i));
        }
        turn_rx.recv().unwrap();
        releaser.join().unwrap();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn per_sender_order_with_many_senders() {
    support::within("per sender order with many senders", || {
        for cap in CAPS {
            let (tx, rx) = chan::bounded::<(usize, u32)>(cap);
            let hs: Vec<_> = (0..4)
                .map(|s| {
                    let tx = tx.clone();
                    goro::go!(move || {
                        for i in 0..500 {
                            tx.send((s, i)).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let mut next = [0u32; 4];
            for (s, i) in &rx {
                assert_eq!(i, next[s], "cap {cap}: sender {s} out of order");
                next[s] += 1;
            }
            assert_eq!(next, [500; 4]);
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

#[test]
fn rendezvous_send_completes_only_when_received() {
    support::within("rendezvous send completes only when received", || {
        let (tx, rx) = chan::bounded::<u32>(0);
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(
            tx.send_timeout(2, Duration::from_millis(5)),
            Err(SendTimeoutError::Timeout(2))
        );
        let sent = Arc::new(AtomicBool::new(false));
        let flag = sent.clone();
        let h = goro::go!(move || {
            tx.send(7).unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        support::wait_parked(h.id());
        assert!(
            !sent.load(Ordering::SeqCst),
            "unbuffered send completed without a receiver"
        );
        assert_eq!(tx_len_is_zero(&rx), 0);
        assert_eq!(rx.recv(), Ok(7));
        h.join().unwrap();
        assert!(sent.load(Ordering::SeqCst));
    });
}

fn tx_len_is_zero(rx: &chan::Receiver<u32>) -> usize {
    rx.len()
}

#[test]
fn rendezvous_try_recv_needs_a_waiting_sender() {
    support::within("rendezvous try recv needs a waiting sender", || {
        let (tx, rx) = chan::bounded::<u32>(0);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let h = goro::go!(move || tx.send(3).unwrap());
        support::wait_parked(h.id());
        assert_eq!(rx.try_recv(), Ok(3));
        h.join().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    });
}

#[test]
fn capacity_limits_len_and_cap() {
    support::within("capacity limits len and cap", || {
        for cap in [1usize, 2, 5, 10, 100] {
            let (tx, rx) = chan::bounded::<usize>(cap);
            assert_eq!(tx.capacity(), Some(cap));
            assert_eq!(rx.capacity(), Some(cap));
            assert!(rx.is_empty() && !tx.is_full());
            for i in 0..cap {
                assert_eq!(tx.try_send(i), Ok(()));
                assert_eq!(tx.len(), i + 1);
                assert_eq!(rx.len(), i + 1);
            }
            assert!(tx.is_full() && rx.is_full());
            assert_eq!(tx.try_send(cap), Err(TrySendError::Full(cap)));
            assert_eq!(rx.recv(), Ok(0));
            assert_eq!(tx.len(), cap - 1);
        }
        let (tx, rx) = chan::bounded::<u8>(0);
        assert_eq!(
            (tx.capacity(), tx.len(), tx.is_empty(), tx.is_full()),
            (Some(0), 0, true, true)
        );
        let (tx2, rx2) = chan::unbounded::<u8>();
        assert_eq!(rx2.capacity(), None);
        for _ in 0..10_000 {
            tx2.try_send(0).unwrap();
        }
        assert_eq!(rx2.len(), 10_000);
        assert!(!tx2.is_full());
        drop((tx, rx));
    });
}

#[test]
fn huge_capacity_is_lazy() {
    support::within("huge capacity is lazy", || {
        // Must not try to allocate usize::MAX / 2 slots up front.
        let (tx, rx) = chan::bounded::<[u64; 64]>(usize::MAX / 2);
        tx.send([1; 64]).unwrap();
        assert_eq!(rx.recv().unwrap()[0], 1);
        assert_eq!(tx.capacity(), Some(usize::MAX / 2));
    });
}

#[test]
fn blocks_on_empty_until_a_send() {
    support::within("blocks on empty until a send", || {
        for cap in [0, 1, 4] {
            let (tx, rx) = chan::bounded::<u32>(cap);
            let h = goro::go!(move || rx.recv());
            support::wait_parked(h.id());
            assert!(!h.is_finished());
            tx.send(9).unwrap();
            assert_eq!(h.join().unwrap(), Ok(9));
        }
    });
}

#[test]
fn blocks_on_full_until_a_recv() {
    support::within("blocks on full until a recv", || {
        let (tx, rx) = chan::bounded::<u32>(2);
        tx.send(0).unwrap();
        tx.send(1).unwrap();
        let h = goro::go!(move || tx.send(2));
        support::wait_parked(h.id());
        assert!(!h.is_finished());
        assert_eq!(rx.recv(), Ok(0));
        assert_eq!(h.join().unwrap(), Ok(()));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    });
}

#[test]
fn close_wakes_every_blocked_receiver() {
    support::within("close wakes every blocked receiver", || {
        for cap in [0, 3] {
            let (tx, rx) = chan::bounded::<u32>(cap);
            let hs: Vec<_> = (0..10)
                .map(|_| {
                    let rx = rx.clone();
                    goro::go!(move || rx.recv())
                })
                .collect();
            // Two plain threads block as well.
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::spawn(move || rx.recv())
                })
                .collect();
            for h in &hs {
                support::wait_parked(h.id());
            }
            assert!(tx.close());
            for h in hs {
                assert_eq!(h.join().unwrap(), Err(RecvError));
            }
            for t in ts {
                assert_eq!(t.join().unwrap(), Err(RecvError));
            }
        }
    });
}

#[test]
fn close_wakes_every_blocked_sender_with_its_own_value() {
    support::within(
        "close wakes every blocked sender with its own value",
        || {
            for cap in [0, 1] {
                let (tx, rx) = chan::bounded::<u32>(cap);
                for i in 0..cap as u32 {
                    tx.send(1000 + i).unwrap();
                }
                let hs: Vec<_> = (0..10u32)
                    .map(|i| {
                        let tx = tx.clone();
                        goro::go!(move || tx.send(i))
                    })
                    .collect();
                let t = {
                    let tx = tx.clone();
                    std::thread::spawn(move || tx.send(77))
                };
                for h in &hs {
                    support::wait_parked(h.id());
                }
                assert!(tx.close());
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), Err(SendError(i as u32)));
                }
                assert_eq!(t.join().unwrap(), Err(SendError(77)));
                // The buffered messages are still there to drain.
                let drained: Vec<u32> = rx.iter().collect();
                assert_eq!(
                    drained,
                    (0..cap as u32).map(|i| 1000 + i).collect::<Vec<_>>()
                );
            }
        },
    );
}

#[test]
fn drain_after_close_then_err_forever() {
    support::within("drain after close then err forever", || {
        let (tx, rx) = chan::bounded::<u32>(5);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert!(tx.close());
        assert!(rx.is_closed());
        for i in 0..5 {
            assert_eq!(rx.recv(), Ok(i));
        }
        for _ in 0..3 {
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(1)),
                Err(RecvTimeoutError::Closed)
            );
        }
        assert_eq!(rx.iter().count(), 0);
    });
}

#[test]
fn send_on_closed_returns_the_value() {
    support::within("send on closed returns the value", || {
        for cap in [0, 1, 8] {
            let (tx, rx) = chan::bounded::<String>(cap);
            assert!(tx.close());
            assert!(!tx.close(), "second close must return false");
            assert!(tx.is_closed());
            assert_eq!(tx.send("a".into()), Err(SendError("a".into())));
            assert_eq!(
                tx.try_send("b".into()),
                Err(TrySendError::Closed("b".into()))
            );
            assert_eq!(
                tx.send_timeout("c".into(), Duration::from_secs(1)),
                Err(SendTimeoutError::Closed("c".into()))
            );
            assert_eq!(rx.recv(), Err(RecvError));
        }
    });
}

#[test]
fn last_sender_drop_closes() {
    support::within("last sender drop closes", || {
        let (tx, rx) = chan::bounded::<u8>(1);
        let tx2 = tx.clone();
        drop(tx);
        assert!(!rx.is_closed());
        tx2.send(1).unwrap();
        drop(tx2);
        assert!(rx.is_closed());
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

#[test]
fn close_from_any_sender_while_others_live() {
    support::within("close from any sender while others live", || {
        let (tx, rx) = chan::unbounded::<u8>();
        let tx2 = tx.clone();
        assert!(tx2.close());
        assert_eq!(tx.send(1), Err(SendError(1)));
        assert!(!tx.close());
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

#[test]
fn send_after_last_receiver_dropped() {
    support::within("send after last receiver dropped", || {
        let (tx, rx) = chan::bounded::<u32>(4);
        tx.send(1).unwrap();
        let rx2 = rx.clone();
        drop(rx);
        tx.send(2).unwrap();
        drop(rx2);
        assert!(tx.is_closed());
        assert_eq!(tx.send(3), Err(SendError(3)));
        assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
        assert_eq!(
            tx.len(),
            0,
            "buffered messages nobody can receive are dropped"
        );
    });
}

#[test]
fn blocked_sender_wakes_when_last_receiver_drops() {
    support::within("blocked sender wakes when last receiver drops", || {
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = goro::go!(move || tx.send(5));
        support::wait_parked(h.id());
        drop(rx);
        assert_eq!(h.join().unwrap(), Err(SendError(5)));
    });
}

#[test]
fn every_message_dropped_exactly_once() {
    support::within("every message dropped exactly once", || {
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        struct Tracked;
        impl Tracked {
            fn new() -> Tracked {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Tracked
            }
        }
        impl Drop for Tracked {
            fn drop(&mut self) {
                LIVE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        {
            let (tx, rx) = chan::bounded::<Tracked>(4);
            for _ in 0..4 {
                tx.send(Tracked::new()).unwrap();
            }
            drop(rx.recv().unwrap());
            let _ = tx.try_send(Tracked::new());
            let _ = tx.try_send(Tracked::new()); // full: returned and dropped
            let _ = tx.send_timeout(Tracked::new(), Duration::from_millis(1));
            // The buffer is dropped with the channel.
        }
        {
            let (tx, rx) = chan::bounded::<Tracked>(2);
            tx.send(Tracked::new()).unwrap();
            drop(rx); // drops the buffer
            assert!(tx.send(Tracked::new()).is_err());
        }
        {
            let (tx, rx) = chan::bounded::<Tracked>(0);
            let h = goro::go!(move || {
                let _ = tx.send(Tracked::new());
            });
            support::wait_parked(h.id());
            drop(rx);
            h.join().unwrap();
        }
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn nil_channel_is_never_ready() {
    support::within("nil channel is never ready", || {
        let rx = chan::never::<u32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(!rx.is_closed() && rx.is_empty() && rx.capacity() == Some(0));
        // A coroutine blocked on it stays blocked.
        let h = goro::go!(move || {
            let never = chan::never::<u8>();
            let (tx, rx) = chan::bounded::<u8>(0);
            let waiter = goro::go!(move || {
                let r = never.recv_timeout(Duration::from_millis(30));
                tx.send(0).unwrap();
                r
            });
            rx.recv().unwrap();
            waiter.join().unwrap()
        });
        assert_eq!(h.join().unwrap(), Err(RecvTimeoutError::Timeout));
    });
}

#[test]
fn timeouts() {
    support::within("timed sends and receives", || {
        let (tx, rx) = chan::bounded::<u8>(0);
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(15)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(15));
        let start = Instant::now();
        assert_eq!(
            tx.send_timeout(1, Duration::from_millis(15)),
            Err(SendTimeoutError::Timeout(1))
        );
        assert!(start.elapsed() >= Duration::from_millis(15));
        // In a coroutine too.
        let h = goro::go!(move || {
            let start = Instant::now();
            let r = rx.recv_timeout(Duration::from_millis(15));
            (r, start.elapsed())
        });
        let (r, took) = h.join().unwrap();
        assert_eq!(r, Err(RecvTimeoutError::Timeout));
        assert!(took >= Duration::from_millis(15));
        // A zero timeout is a try.
        let (tx, rx) = chan::bounded::<u8>(1);
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send_timeout(1, Duration::ZERO).unwrap();
        assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(1));
        // Huge timeouts do not overflow.
        tx.send_timeout(2, Duration::MAX).unwrap();
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(2));
        // A timed-out send leaves nothing behind.
        let (tx, rx) = chan::bounded::<u8>(0);
        let _ = tx.send_timeout(3, Duration::from_millis(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn timeout_races_with_delivery_lose_nothing() {
    support::within("timeout races with delivery lose nothing", || {
        // Receivers with tiny timeouts race against a sender; every message
        // sent successfully is received exactly once.
        let (tx, rx) = chan::bounded::<u32>(0);
        let received = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (rx, received) = (rx.clone(), received.clone());
                goro::go!(move || {
                    loop {
                        match rx.recv_timeout(Duration::from_micros(50)) {
                            Ok(_) => {
                                received.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Closed) => break,
                        }
                    }
                })
            })
            .collect();
        let mut sent = 0;
        for i in 0..2000 {
            if tx.send_timeout(i, Duration::from_micros(50)).is_ok() {
                sent += 1;
            }
        }
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(received.load(Ordering::SeqCst), sent);
    });
}

/// The counting-semaphore rule of Go's memory model: "the kth receive on
/// a channel with capacity C happens before the k+Cth send completes", so
/// a buffered channel limits concurrency to C.
#[test]
fn counting_semaphore_limits_concurrency() {
    support::within("counting semaphore limits concurrency", || {
        const C: usize = 3;
        let (sem_tx, sem_rx) = chan::bounded::<()>(C);
        let active = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..30)
            .map(|_| {
                let (sem_tx, sem_rx, active, max) =
                    (sem_tx.clone(), sem_rx.clone(), active.clone(), max.clone());
                goro::go!(move || {
                    sem_tx.send(()).unwrap();
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    goro::sleep(Duration::from_millis(1));
                    active.fetch_sub(1, Ordering::SeqCst);
                    sem_rx.recv().unwrap();
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let m = max.load(Ordering::SeqCst);
        assert!(m <= C, "{m} holders of a {C}-slot semaphore");
        assert!(m >= 1);
    });
}

#[test]
fn after_delivers_the_instant_it_fired() {
    support::within("after delivers the instant it fired", || {
        let start = Instant::now();
        let t = chan::after(Duration::from_millis(20));
        // The timer is due 20 ms after it was made, so at most 20 ms after
        // `made`: the read below comes at least 40 ms after it fired.
        let made = Instant::now();
        assert_eq!(t.try_recv(), Err(TryRecvError::Empty));
        goro::sleep(Duration::from_millis(60));
        let read_at = Instant::now();
        let fired = t.recv().unwrap();
        assert!(fired >= start + Duration::from_millis(20));
        assert!(
            fired < read_at,
            "after() must report when it fired, not when it was read"
        );
        assert!(fired <= made + Duration::from_millis(20));
        assert!(read_at - fired >= Duration::from_millis(30));
        // Exactly one message, and it never closes.
        assert_eq!(t.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(
            t.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(!t.is_closed());
    });
}

#[test]
fn after_is_shared_by_clones_once() {
    support::within("after is shared by clones once", || {
        let t = chan::after(Duration::from_millis(5));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                goro::go!(move || t.recv_timeout(Duration::from_millis(200)).is_ok())
            })
            .collect();
        let winners = hs
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(winners, 1);
    });
}

#[test]
fn at_in_the_past_is_ready() {
    let when = Instant::now();
    assert_eq!(chan::at(when).try_recv(), Ok(when));
}

#[test]
fn tick_spacing_and_instants() {
    support::within("tick spacing and instants", || {
        let period = Duration::from_millis(5);
        let start = Instant::now();
        let t = chan::tick(period);
        let mut last = start;
        for k in 1..=5u32 {
            let i = t.recv().unwrap();
            assert!(i >= last + period || k == 1, "ticks closer than the period");
            assert!(i >= start + period * k);
            last = i;
        }
    });
}

#[test]
fn tick_keeps_at_most_one_pending_tick() {
    support::within("tick keeps at most one pending tick", || {
        let period = Duration::from_millis(10);
        let start = Instant::now();
        let t = chan::tick(period);
        // The ticker's grid starts between `start` and `made`.
        let made = Instant::now();
        std::thread::sleep(period * 6);
        let taken_at = Instant::now();
        // The pending tick is the first one missed, not the latest.
        let first = t.recv().unwrap();
        assert!(first >= start + period);
        assert!(
            first <= made + period,
            "got a late tick, missed ticks were queued"
        );
        // The ones in between were dropped: the next tick is after the take.
        let second = t.recv().unwrap();
        assert!(second > taken_at, "missed ticks were kept");
        // ... and on the ticker's grid.
        let offset = (second - first).as_nanos() % period.as_nanos();
        assert_eq!(offset, 0);
    });
}

#[test]
fn tick_in_a_coroutine() {
    support::within("tick in a coroutine", || {
        let h = goro::go!(|| {
            let t = chan::tick(Duration::from_millis(2));
            (0..3).map(|_| t.recv().unwrap()).collect::<Vec<_>>()
        });
        let v = h.join().unwrap();
        assert!(v[0] < v[1] && v[1] < v[2]);
    });
}

/// Go's test/chan/sieve1.go: the concurrent prime sieve, a daisy chain of
/// filter coroutines over unbuffered channels.
#[test]
fn prime_sieve_daisy_chain() {
    support::within("prime sieve daisy chain", || {
        fn generate(tx: chan::Sender<u32>) {
            for i in 2.. {
                if tx.send(i).is_err() {
                    return;
                }
            }
        }
        fn filter(rx: chan::Receiver<u32>, tx: chan::Sender<u32>, prime: u32) {
            for i in &rx {
                if i % prime != 0 && tx.send(i).is_err() {
                    return;
                }
            }
        }
        let h = goro::go!(|| {
            let (tx, mut rx) = chan::bounded::<u32>(0);
            goro::go!(move || generate(tx));
            let mut primes = Vec::new();
            for _ in 0..100 {
                let prime = rx.recv().unwrap();
                primes.push(prime);
                let (tx1, rx1) = chan::bounded(0);
                let src = std::mem::replace(&mut rx, rx1);
                goro::go!(move || filter(src, tx1, prime));
            }
            // Dropping the last receiver unwinds the whole chain.
            primes
        });
        let primes = h.join().unwrap();
        assert_eq!(&primes[..10], &[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(primes[99], 541);
    });
}

/// A chain of 10,000 coroutines, each adding one to what it receives
/// (Go's classic "whispers").
#[test]
fn ten_thousand_coroutine_chain() {
    support::within_for(
        support::STRESS_PATIENCE,
        "ten thousand coroutine chain",
        || {
            const N: u64 = 10_000;
            let h = goro::go!(|| {
                let (first_tx, mut rx) = chan::bounded::<u64>(0);
                let mut hs = Vec::with_capacity(N as usize);
                for _ in 0..N {
                    let (tx, next_rx) = chan::bounded::<u64>(0);
                    let from = std::mem::replace(&mut rx, next_rx);
                    hs.push(goro::go!(move || {
                        let v = from.recv().unwrap();
                        tx.send(v + 1).unwrap();
                    }));
                }
                first_tx.send(1).unwrap();
                let v = rx.recv().unwrap();
                for h in hs {
                    h.join().unwrap();
                }
                v
            });
            assert_eq!(h.join().unwrap(), N + 1);
        },
    );
}

#[test]
fn multi_consumer_exactly_once() {
    support::within("multi consumer exactly once", || {
        // Go's TestMultiConsumer: many workers on one channel, sum preserved.
        const N: u64 = 10_000;
        for cap in [0, 1, 64] {
            let (tx, rx) = chan::bounded::<u64>(cap);
            let (res_tx, res_rx) = chan::unbounded::<u64>();
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (rx, res_tx) = (rx.clone(), res_tx.clone());
                    goro::go!(move || {
                        for v in rx.iter() {
                            res_tx.send(v).unwrap();
                        }
                    })
                })
                .collect();
            drop((rx, res_tx));
            for i in 0..N {
                tx.send(i).unwrap();
            }
            drop(tx);
            let mut seen = vec![false; N as usize];
            for v in res_rx.iter() {
                assert!(!seen[v as usize], "{v} received twice");
                seen[v as usize] = true;
            }
            assert!(seen.iter().all(|s| *s), "a message was lost (cap {cap})");
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

#[test]
fn zero_sized_messages() {
    support::within("zero sized messages", || {
        let (tx, rx) = chan::bounded::<()>(3);
        for _ in 0..3 {
            tx.send(()).unwrap();
        }
        assert!(tx.is_full());
        assert_eq!(rx.len(), 3);
        drop(tx);
        assert_eq!(rx.iter().count(), 3);
    });
}

#[test]
fn into_iter_owned_and_borrowed() {
    support::within("into iter owned and borrowed", || {
        let (tx, rx) = chan::unbounded();
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let mut n = 0;
        for v in &rx {
            assert_eq!(v, n);
            n += 1;
            if n == 2 {
                break;
            }
        }
        assert_eq!(rx.into_iter().collect::<Vec<_>>(), [2]);
    });
}

#[test]
fn send_and_sync_handles_cross_threads() {
    support::within("send and sync handles cross threads", || {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        let (tx, rx) = chan::bounded::<Vec<u8>>(1);
        assert_send_sync(&tx);
        assert_send_sync(&rx);
        let rx = Arc::new(rx);
        let r2 = rx.clone();
        let t = std::thread::spawn(move || r2.recv().unwrap());
        tx.send(vec![1, 2]).unwrap();
        assert_eq!(t.join().unwrap(), vec![1, 2]);
    });
}

#[test]
fn same_channel_and_debug() {
    let (tx, rx) = chan::bounded::<u8>(0);
    let (tx2, rx2) = chan::bounded::<u8>(0);
    assert!(tx.same_channel(&tx.clone()) && !tx.same_channel(&tx2));
    assert!(rx.same_channel(&rx.clone()) && !rx.same_channel(&rx2));
    assert_eq!(format!("{tx:?} {rx:?}"), "Sender { .. } Receiver { .. }");
}

#[test]
fn errors_display_and_into_inner() {
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(SendError(1u8));
    assert_eq!(e.to_string(), "sending on a closed channel");
    assert_eq!(TrySendError::Full(3).into_inner(), 3);
    assert_eq!(SendTimeoutError::Closed(4).into_inner(), 4);
    assert_eq!(
        RecvError.to_string(),
        "receiving on a closed and empty channel"
    );
    assert!(TryRecvError::Empty.is_empty());
    assert!(RecvTimeoutError::Timeout.is_timeout());
}
