//! sleep and deadlines: never early, ordered, and cheap in large numbers.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sleepers_never_wake_early_and_wake_in_deadline_order() {
    support::within("six sleepers in deadline order", || {
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
    });
}

#[test]
fn many_sleepers_all_wake_and_never_early() {
    support::within("20,000 sleepers", || {
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
    });
}

/// How long a park waits for a token that is not there: far beyond the
/// moment a present token makes it return.
const TOKEN_LOST: Duration = Duration::from_secs(5);

#[test]
fn sleep_keeps_the_park_token() {
    // Like std: an unpark that arrives while sleeping is not swallowed, so
    // the park after the sleep returns at once. Were the token swallowed,
    // the park would wait for its deadline (timers never fire early).
    let waited = support::within("a park after a sleep, with the token set", || {
        goro::spawn(|| {
            goro::park::current().unpark();
            goro::sleep(Duration::from_millis(2));
            let t = Instant::now();
            goro::park::park_timeout(TOKEN_LOST);
            t.elapsed()
        })
        .join()
        .unwrap()
    });
    assert!(
        waited < TOKEN_LOST,
        "sleep swallowed the park token: the park after it waited {waited:?}"
    );
}

#[test]
fn sleep_on_a_thread_sleeps_the_thread() {
    support::within("a sleep on a plain thread", || {
        let t = Instant::now();
        goro::sleep(Duration::from_millis(5));
        assert!(t.elapsed() >= Duration::from_millis(5));
    });
}

#[test]
fn a_busy_worker_still_fires_timers() {
    // Spinning coroutines (yielding) keep every worker busy while another
    // coroutine sleeps: no worker goes idle, so the sleeper can only wake
    // through the busy workers' periodic timer checks.
    let workers = goro::stats().workers;
    let stop = Arc::new(AtomicBool::new(false));
    // However the test ends, the spinners stop.
    let _stop = support::SetOnDrop(stop.clone());
    // A spinner spawned from here may start on a worker that already runs
    // one (which then runs both), so spawn them one by one until every
    // worker runs one.
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let mut spinners = Vec::new();
    let deadline = Instant::now() + support::PATIENCE;
    while threads.lock().unwrap().len() < workers {
        assert!(
            Instant::now() < deadline,
            "spinners started on only {} of {workers} workers",
            threads.lock().unwrap().len()
        );
        let (stop, threads, started2) = (stop.clone(), threads.clone(), started.clone());
        let before = started.load(Ordering::Acquire);
        spinners.push(goro::spawn(move || {
            threads.lock().unwrap().insert(std::thread::current().id());
            started2.fetch_add(1, Ordering::AcqRel);
            while !stop.load(Ordering::Acquire) {
                goro::yield_now();
            }
        }));
        support::eventually("a spinner to start", || {
            started.load(Ordering::Acquire) > before
        });
    }
    let sleeper = goro::spawn(|| goro::sleep(Duration::from_millis(20)));
    support::eventually("a 20 ms sleeper to wake while every worker spins", || {
        sleeper.is_finished()
    });
    sleeper.join().unwrap();
    stop.store(true, Ordering::Release);
    support::within("the spinners to stop", move || {
        for s in spinners {
            s.join().unwrap();
        }
    });
}
