//! `goro::sync::WaitGroup`: Go's `sync.WaitGroup` tests (`TestWaitGroup`
//! with reuse, `TestWaitGroupMisuse`), waiting from coroutines and threads,
//! and `WaitGroup::go`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::sync::WaitGroup;

/// Port of Go's `TestWaitGroup`: two groups, `n` workers wait on the first
/// and then signal the second; repeated 8 times on the same groups (reuse).
#[test]
fn go_test_wait_group_with_reuse() {
    support::within("two WaitGroups reused over 8 rounds", || {
        const N: usize = 16;
        let wg1 = WaitGroup::new();
        let wg2 = WaitGroup::new();
        let exited = Arc::new(AtomicUsize::new(0));
        for _round in 0..8 {
            wg1.add(N);
            wg2.add(N);
            for _ in 0..N {
                let (wg1, wg2, exited) = (wg1.clone(), wg2.clone(), exited.clone());
                goro::go!(move || {
                    wg1.done();
                    wg1.wait();
                    exited.fetch_add(1, Ordering::SeqCst);
                    wg2.done();
                });
            }
            wg2.wait();
            assert_eq!(exited.swap(0, Ordering::SeqCst), N);
        }
    });
}

#[test]
fn done_below_zero_panics_clearly() {
    support::within("a WaitGroup after done below zero", || {
        let wg = WaitGroup::new();
        wg.add(1);
        wg.done();
        let wg2 = wg.clone();
        let err = goro::go!(move || wg2.done()).join().unwrap_err();
        let msg = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap();
        assert!(msg.contains("negative WaitGroup counter"), "{msg}");
        // The group is still usable.
        wg.add(1);
        wg.done();
        wg.wait();
    });
}

#[test]
fn waiters_in_coroutines_and_threads() {
    let (waiting_cos, waiting_ths) = support::within("a WaitGroup counting down to zero", || {
        let wg = WaitGroup::new();
        wg.add(3);
        let waiting_cos: Vec<_> = (0..4)
            .map(|_| {
                let wg = wg.clone();
                goro::go!(move || wg.wait())
            })
            .collect();
        let waiting_ths: Vec<_> = (0..2)
            .map(|_| {
                let wg = wg.clone();
                std::thread::spawn(move || wg.wait())
            })
            .collect();
        // The coroutines are blocked in `wait`, so the `done`s below wake
        // parked waiters rather than race with waiters still arriving.
        for h in &waiting_cos {
            support::wait_parked(h.id());
        }
        let wg_t = wg.clone();
        let worker_thread = std::thread::spawn(move || wg_t.done());
        let wg_c = wg.clone();
        goro::go!(move || wg_c.done()).join().unwrap();
        worker_thread.join().unwrap();
        assert!(
            waiting_cos.iter().all(|h| !h.is_finished())
                && waiting_ths.iter().all(|h| !h.is_finished()),
            "a waiter returned while the counter was still 1"
        );
        wg.done();
        (waiting_cos, waiting_ths)
    });
    support::eventually(
        "the last done to wake 4 coroutine and 2 thread waiters",
        || {
            waiting_cos.iter().all(|h| h.is_finished())
                && waiting_ths.iter().all(|h| h.is_finished())
        },
    );
    for h in waiting_cos {
        h.join().unwrap();
    }
    for h in waiting_ths {
        h.join().unwrap();
    }
}

/// Everything written before `done` is visible after `wait`.
#[test]
fn wait_sees_work_done_before_done() {
    support::within("a wait for 32 WaitGroup::go coroutines", || {
        const N: usize = 32;
        let slots: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let wg = WaitGroup::new();
        for i in 0..N {
            let slots = slots.clone();
            wg.go(move || slots[i].store(i + 1, Ordering::Relaxed));
        }
        wg.wait();
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(s.load(Ordering::Relaxed), i + 1);
        }
    });
}

#[test]
fn go_counts_a_panicking_coroutine_as_done() {
    support::within("a wait for a panicking WaitGroup::go coroutine", || {
        let wg = WaitGroup::new();
        let h = wg.go(|| panic!("worker panics"));
        wg.wait();
        assert!(h.join().is_err());
    });
}
