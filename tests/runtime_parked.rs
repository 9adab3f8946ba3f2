//! 200,000 coroutines parked at once (the default test run's scale test;
//! 1,000,000 is in `cargo bench --bench runtime`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn two_hundred_thousand_parked_coroutines() {
    support::within_for(
        support::STRESS_PATIENCE,
        "200,000 coroutines parking and waking",
        || {
            const N: usize = 200_000;
            let release = Arc::new(AtomicBool::new(false));
            let parked = Arc::new(AtomicUsize::new(0));
            let wakers = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(N)));
            let hs: Vec<_> = (0..N)
                .map(|_| {
                    let (release, parked, wakers) =
                        (release.clone(), parked.clone(), wakers.clone());
                    goro::spawn(move || {
                        wakers.lock().push(goro::park::current());
                        parked.fetch_add(1, Ordering::SeqCst);
                        while !release.load(Ordering::Acquire) {
                            goro::park::park();
                        }
                        1u32
                    })
                })
                .collect();
            while parked.load(Ordering::SeqCst) < N {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert!(goro::stats().coroutines >= N as u64);
            release.store(true, Ordering::Release);
            for w in wakers.lock().drain(..) {
                w.unpark();
            }
            let done: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(done as usize, N);
        },
    );
}
