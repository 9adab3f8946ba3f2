//! The blocking pool keeps workers free for other coroutines.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn blocking_calls_do_not_block_workers() {
    support::within(
        "more blocking calls than workers, in one std Barrier",
        || {
            let workers = goro::stats().workers;
            // More blocking calls than workers, all waiting on one std Barrier
            // that only opens when every one of them and the main thread are in
            // it. Were they run on workers, every worker would be stuck in the
            // barrier; the ticker coroutine proves the workers stay free.
            let n = workers * 2 + 1;
            let barrier = Arc::new(Barrier::new(n + 1));
            let ticks = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let b = barrier.clone();
                    goro::spawn(move || goro::blocking(move || b.wait().is_leader()))
                })
                .collect();
            let t = ticks.clone();
            let ticker = goro::spawn(move || {
                for _ in 0..5 {
                    goro::sleep(Duration::from_millis(1));
                    t.fetch_add(1, Ordering::SeqCst);
                }
            });
            ticker.join().unwrap();
            assert_eq!(ticks.load(Ordering::SeqCst), 5);
            let main_leads = barrier.wait().is_leader();
            // std's Barrier elects one leader among all n + 1 waiters: each call
            // ran once, and its result came back.
            let leaders = hs
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&l| l)
                .count();
            assert_eq!(leaders + usize::from(main_leads), 1);
        },
    );
}

#[test]
fn blocking_may_borrow_and_propagates_panics() {
    support::within("blocking calls from a coroutine", || {
        let r = goro::spawn(|| {
            let local = vec![1, 2, 3]; // heap data owned by the coroutine
            let local = &local;
            let sum: i32 = goro::blocking(|| local.iter().sum());
            let caught = std::panic::catch_unwind(|| goro::blocking(|| panic!("in pool")));
            (sum, caught.is_err())
        })
        .join()
        .unwrap();
        assert_eq!(r, (6, true));
        // Outside a coroutine it runs inline.
        assert_eq!(goro::blocking(|| 9), 9);
    });
}
