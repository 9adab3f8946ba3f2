//! Scoped coroutines borrow from the caller and are all done when scope returns.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn scoped_coroutines_borrow_and_mutate() {
    support::within("scoped coroutines borrow and mutate", || {
        let mut data = vec![1u64, 2, 3, 4];
        let total = AtomicUsize::new(0);
        goro::scope(|s| {
            for x in data.iter_mut() {
                let total = &total;
                s.spawn(move || {
                    goro::sleep(Duration::from_millis(1));
                    *x *= 10;
                    total.fetch_add(*x as usize, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(data, vec![10, 20, 30, 40]);
        assert_eq!(total.load(Ordering::Relaxed), 100);
    });
}

#[test]
fn scope_waits_for_unjoined_children_and_returns_values() {
    support::within(
        "scope waits for unjoined children and returns values",
        || {
            let done = AtomicUsize::new(0);
            let r = goro::scope(|s| {
                let h = s.spawn(|| 21 * 2);
                for _ in 0..50 {
                    s.spawn(|| {
                        goro::sleep(Duration::from_millis(2));
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
                h.join().unwrap()
            });
            assert_eq!(r, 42);
            assert_eq!(done.load(Ordering::SeqCst), 50);
        },
    );
}

#[test]
fn scope_inside_a_coroutine_and_nested_spawns() {
    support::within("scope inside a coroutine and nested spawns", || {
        let out = goro::spawn(|| {
            let words = ["a", "bb", "ccc"];
            let lens = AtomicUsize::new(0);
            goro::scope(|s| {
                for w in &words {
                    s.spawn(|| {
                        s.spawn(|| lens.fetch_add(w.len(), Ordering::SeqCst));
                    });
                }
            });
            lens.load(Ordering::SeqCst)
        })
        .join()
        .unwrap();
        assert_eq!(out, 6);
    });
}

#[test]
fn an_unjoined_panic_makes_scope_panic_after_everyone_finished() {
    support::within(
        "an unjoined panic makes scope panic after everyone finished",
        || {
            let finished = AtomicUsize::new(0);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                goro::scope(|s| {
                    s.spawn(|| panic!("child"));
                    s.spawn(|| {
                        goro::sleep(Duration::from_millis(10));
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                })
            }));
            assert!(r.is_err());
            assert_eq!(finished.load(Ordering::SeqCst), 1);
            // A joined panic is handled by the joiner and does not fail the scope.
            goro::scope(|s| assert!(s.spawn(|| panic!("handled")).join().is_err()));
        },
    );
}
