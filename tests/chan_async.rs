//! The async bridge: `block_on`, `send_async`, `recv_async`, with goro's
//! coroutines and threads on one side and tokio tasks or `block_on` on
//! the other; cancellation safety (a dropped future loses no message).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use goro::chan::{self, RecvError, SendError};
use support::within;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A waker that counts its wakes.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn poll_once<F: Future + Unpin>(f: &mut F, w: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(w))
}

#[test]
fn block_on_in_coroutines_and_threads() {
    within("block_on", || {
        for cap in [0, 1, 16] {
            let (tx, rx) = chan::bounded::<u32>(cap);
            let h = goro::go!(move || {
                let mut sum = 0;
                while let Ok(v) = goro::block_on(rx.recv_async()) {
                    sum += v;
                }
                sum
            });
            for i in 0..1000 {
                goro::block_on(tx.send_async(i)).unwrap();
            }
            drop(tx);
            assert_eq!(h.join().unwrap(), 499_500);
        }
    });
}

#[test]
fn tokio_tasks_and_coroutines_share_channels() {
    within("tokio and goro", || {
        let rt = tokio_rt();
        for cap in [0, 4] {
            let (to_tokio, from_goro) = chan::bounded::<u64>(cap);
            let (to_goro, from_tokio) = chan::bounded::<u64>(cap);
            // Two tokio tasks double what coroutines send them.
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let (rx, tx) = (from_goro.clone(), to_goro.clone());
                    rt.spawn(async move {
                        while let Ok(v) = rx.recv_async().await {
                            tx.send_async(v * 2).await.unwrap();
                        }
                    })
                })
                .collect();
            drop((from_goro, to_goro));
            // Three coroutines send, one coroutine sums.
            let senders: Vec<_> = (0..3u64)
                .map(|k| {
                    let tx = to_tokio.clone();
                    goro::go!(move || {
                        for i in 0..300 {
                            tx.send(k * 1000 + i).unwrap();
                        }
                    })
                })
                .collect();
            drop(to_tokio);
            let sum = goro::go!(move || from_tokio.iter().sum::<u64>());
            for s in senders {
                s.join().unwrap();
            }
            let expected: u64 = (0..3u64)
                .flat_map(|k| (0..300).map(move |i| 2 * (k * 1000 + i)))
                .sum();
            assert_eq!(sum.join().unwrap(), expected);
            for t in tasks {
                rt.block_on(t).unwrap();
            }
        }
    });
}

#[test]
fn dropping_a_pending_recv_loses_nothing() {
    within("cancelled recv", || {
        let (tx, rx) = chan::bounded::<u32>(1);
        let (count, w) = counting_waker();
        let mut f = rx.recv_async();
        assert!(poll_once(&mut f, &w).is_pending());
        // The send wakes the future; it is dropped without polling again.
        tx.send(7).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        drop(f);
        assert_eq!(rx.try_recv(), Ok(7), "the message stayed in the channel");

        // Unbuffered: a coroutine sender blocked while the future was
        // pending still hands its message to the next receiver.
        let (tx, rx) = chan::bounded::<u32>(0);
        let mut f = rx.recv_async();
        assert!(poll_once(&mut f, &w).is_pending());
        let h = goro::go!(move || tx.send(8));
        support::eventually("the woken watcher", || count.0.load(Ordering::SeqCst) >= 2);
        drop(f);
        assert_eq!(rx.recv(), Ok(8));
        h.join().unwrap().unwrap();
    });
}

#[test]
fn a_woken_then_dropped_future_passes_the_wake_on() {
    within("wake passed on", || {
        let (tx, rx) = chan::bounded::<u32>(4);
        let (c1, w1) = counting_waker();
        let (c2, w2) = counting_waker();
        let mut f1 = rx.recv_async();
        let mut f2 = rx.recv_async();
        assert!(poll_once(&mut f1, &w1).is_pending());
        assert!(poll_once(&mut f2, &w2).is_pending());
        tx.send(1).unwrap();
        assert_eq!(c1.0.load(Ordering::SeqCst), 1, "the first watcher is woken");
        assert_eq!(c2.0.load(Ordering::SeqCst), 0);
        drop(f1);
        assert_eq!(
            c2.0.load(Ordering::SeqCst),
            1,
            "and its drop wakes the next"
        );
        assert_eq!(poll_once(&mut f2, &w2), Poll::Ready(Ok(1)));
    });
}

#[test]
fn dropping_a_pending_send_leaves_nothing() {
    within("cancelled send", || {
        let (tx, rx) = chan::bounded::<String>(0);
        let (_c, w) = counting_waker();
        let mut f = tx.send_async("lost".to_string());
        assert!(poll_once(&mut f, &w).is_pending());
        drop(f);
        assert!(rx.try_recv().is_err(), "an unsent message is not delivered");
        // The channel works as before.
        let h = goro::go!(move || rx.recv());
        goro::block_on(tx.send_async("kept".to_string())).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), "kept");
    });
}

#[test]
fn close_wakes_every_async_waiter() {
    within("close", || {
        let rt = tokio_rt();
        let (tx, rx) = chan::bounded::<u8>(0);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(async move { rx.recv_async().await })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1)); // not needed for correctness
        assert!(tx.close());
        for h in hs {
            assert_eq!(rt.block_on(h).unwrap(), Err(RecvError));
        }
        // The last receiver gone fails an async sender.
        let (tx, rx) = chan::bounded::<u8>(0);
        let h = rt.spawn(async move { tx.send_async(3).await });
        drop(rx);
        assert_eq!(rt.block_on(h).unwrap(), Err(SendError(3)));
    });
}

#[test]
fn tokio_select_cancellation_loses_no_message() {
    within("tokio::select! over recv_async", || {
        let rt = tokio_rt();
        let (tx, rx) = chan::bounded::<u32>(0);
        const N: u32 = 2000;
        let producer = goro::go!(move || {
            for i in 0..N {
                tx.send(i).unwrap();
            }
        });
        let got = rt.block_on(async move {
            let mut got = Vec::new();
            loop {
                // The recv future is dropped every time the sleep wins.
                tokio::select! {
                    r = rx.recv_async() => match r {
                        Ok(v) => got.push(v),
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep(Duration::from_micros(50)) => {}
                }
            }
            got
        });
        producer.join().unwrap();
        assert_eq!(
            got,
            (0..N).collect::<Vec<_>>(),
            "lost or reordered messages"
        );
    });
}

#[test]
fn timers_await_from_tokio() {
    within("timers from async", || {
        let rt = tokio_rt();
        rt.block_on(async {
            let start = std::time::Instant::now();
            let fired = chan::after(Duration::from_millis(3))
                .recv_async()
                .await
                .unwrap();
            assert!(fired >= start + Duration::from_millis(3));
            let t = chan::Timer::new(Duration::from_secs(3600));
            t.reset(Duration::from_millis(1));
            assert!(t.recv_async().await.is_ok());
            let k = chan::tick(Duration::from_millis(1));
            k.recv_async().await.unwrap();
            k.recv_async().await.unwrap();
        });
        // A timer reset while an async receiver waits on it.
        let t = Arc::new(chan::Timer::new(Duration::from_secs(3600)));
        let t2 = t.clone();
        let h = rt.spawn(async move { t2.recv_async().await.is_ok() });
        std::thread::sleep(Duration::from_millis(2)); // not needed for correctness
        t.reset(Duration::from_millis(1));
        assert!(rt.block_on(h).unwrap());
    });
}

#[test]
fn many_async_senders_one_coroutine_receiver() {
    within("fan-in", || {
        let rt = tokio_rt();
        let (tx, rx) = chan::bounded::<u32>(2);
        for k in 0..8 {
            let tx = tx.clone();
            rt.spawn(async move {
                for i in 0..250 {
                    tx.send_async(k * 1000 + i).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut got = goro::go!(move || rx.iter().collect::<Vec<_>>())
            .join()
            .unwrap();
        got.sort_unstable();
        let mut want: Vec<u32> = (0..8)
            .flat_map(|k| (0..250).map(move |i| k * 1000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}
