//! sleep and deadlines: never early, ordered, and cheap in large numbers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sleepers_never_wake_early_and_wake_in_deadline_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    // Spawn in reverse so that spawn order cannot explain the result;
    // deadlines are 40 ms apart so scheduling noise cannot reorder them.
    let hs: Vec<_> = (0..6u64)
        .rev()
        .map(|i| {
            let order = order.clone();
            goro::spawn(move || {
                let d = Duration::from_millis(10 + 40 * i);
                let t = Instant::now();
                goro::sleep(d);
                assert!(t.elapsed() >= d, "woke early: {:?} < {d:?}", t.elapsed());
                order.lock().unwrap().push(i);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn many_sleepers_all_wake_and_never_early() {
    let mut rng = fastrand::Rng::with_seed(1);
    let hs: Vec<_> = (0..20_000)
        .map(|_| {
            let d = Duration::from_millis(rng.u64(0..30));
            goro::spawn(move || {
                let t = Instant::now();
                goro::sleep(d);
                t.elapsed() >= d
            })
        })
        .collect();
    assert!(hs.into_iter().all(|h| h.join().unwrap()));
}

#[test]
fn sleep_keeps_the_park_token() {
    // Like std: an unpark that arrives while sleeping is not swallowed.
    goro::spawn(|| {
        goro::park::current().unpark();
        goro::sleep(Duration::from_millis(2));
        goro::park::park(); // returns at once: the token is still there
    })
    .join()
    .unwrap();
}

#[test]
fn sleep_on_a_thread_sleeps_the_thread() {
    let t = Instant::now();
    goro::sleep(Duration::from_millis(5));
    assert!(t.elapsed() >= Duration::from_millis(5));
}

#[test]
fn a_busy_worker_still_fires_timers() {
    // One coroutine per worker spins (yielding) while another sleeps: the
    // sleeper must still wake, through the busy workers' periodic checks.
    let workers = goro::stats().workers;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..workers)
        .map(|_| {
            let stop = stop.clone();
            goro::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    goro::yield_now();
                }
            })
        })
        .collect();
    let sleeper = goro::spawn(|| goro::sleep(Duration::from_millis(20)));
    sleeper.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    for s in spinners {
        s.join().unwrap();
    }
}
