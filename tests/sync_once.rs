//! `goro::sync::Once`: Go's `TestOnce` with 100 racing callers (coroutines
//! and threads), waiting for a running initializer, and retry after a
//! panicking initializer.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use goro::sync::Once;

#[test]
fn hundred_racing_callers_run_it_once() {
    support::within("hundred racing callers run it once", || {
        const COROUTINES: usize = 90;
        const THREADS: usize = 10;
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let value = Arc::new(AtomicUsize::new(0));
        let caller = |once: Arc<Once>, runs: Arc<AtomicUsize>, value: Arc<AtomicUsize>| {
            move || {
                once.call_once(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Make the initializer slow enough that others arrive while
                    // it runs and must wait.
                    goro::sleep(Duration::from_millis(2));
                    value.store(42, Ordering::Relaxed);
                });
                // Whoever returns sees the initializer's writes.
                assert!(once.is_completed());
                assert_eq!(value.load(Ordering::Relaxed), 42);
            }
        };
        let cos: Vec<_> = (0..COROUTINES)
            .map(|_| goro::spawn(caller(once.clone(), runs.clone(), value.clone())))
            .collect();
        let ths: Vec<_> = (0..THREADS)
            .map(|_| std::thread::spawn(caller(once.clone(), runs.clone(), value.clone())))
            .collect();
        for h in cos {
            h.join().unwrap();
        }
        for h in ths {
            h.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

/// A panicking initializer leaves the `Once` incomplete; the callers that
/// were waiting for it retry, and exactly one of them completes it.
#[test]
fn panic_lets_a_waiting_caller_retry() {
    support::within("panic lets a waiting caller retry", || {
        const CALLERS: usize = 20;
        let once = Arc::new(Once::new());
        let attempts = Arc::new(AtomicUsize::new(0));
        let completions = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicBool::new(false));
        // The first initializer panics once all the others wait for it.
        let (release_tx, release_rx) = goro::chan::bounded::<()>(0);
        let (o, a, s) = (once.clone(), attempts.clone(), started.clone());
        let first = goro::go!(move || {
            o.call_once(|| {
                a.fetch_add(1, Ordering::SeqCst);
                s.store(true, Ordering::SeqCst);
                let _ = release_rx.recv();
                panic!("initializer fails");
            })
        });
        support::eventually("the first initializer to start", || {
            started.load(Ordering::SeqCst)
        });
        let others: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (o, a, c) = (once.clone(), attempts.clone(), completions.clone());
                goro::go!(move || {
                    o.call_once(|| {
                        a.fetch_add(1, Ordering::SeqCst);
                        c.fetch_add(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for h in &others {
            support::wait_parked(h.id());
        }
        drop(release_tx);
        assert!(first.join().is_err());
        for h in others {
            h.join().unwrap();
        }
        assert!(once.is_completed());
        assert_eq!(completions.load(Ordering::SeqCst), 1);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn completed_once_never_runs_again() {
    support::within("completed once never runs again", || {
        static ONCE: Once = Once::new();
        let mut runs = 0;
        for _ in 0..3 {
            ONCE.call_once(|| runs += 1);
        }
        assert_eq!(runs, 1);
        assert!(ONCE.is_completed());
    });
}
