//! `goro::sync::Mutex`: mutual exclusion between coroutines and threads,
//! Go's fairness tests (`TestMutexFairness` and a barging-loop variant),
//! parking the coroutine and not the worker, try_lock, and no poisoning.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::sync::Mutex;

/// The counter is a plain `u64` and the `inside` flag would catch two
/// holders at once; coroutines sometimes yield while holding the lock, so
/// other coroutines on the same worker run and contend meanwhile.
#[test]
fn mutual_exclusion_coroutines_and_threads() {
    support::within("mutual exclusion coroutines and threads", || {
        const COROUTINES: usize = 16;
        const THREADS: usize = 4;
        const ITERS: usize = 2_000;
        let m = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicUsize::new(0));
        let body = |m: Arc<Mutex<u64>>, inside: Arc<AtomicUsize>, yields: bool| {
            move || {
                for i in 0..ITERS {
                    let mut g = m.lock();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    let v = *g;
                    if yields && i.is_multiple_of(16) {
                        goro::yield_now();
                    }
                    *g = v + 1;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let cos: Vec<_> = (0..COROUTINES)
            .map(|_| goro::spawn(body(m.clone(), inside.clone(), true)))
            .collect();
        let ths: Vec<_> = (0..THREADS)
            .map(|_| std::thread::spawn(body(m.clone(), inside.clone(), false)))
            .collect();
        for h in cos {
            h.join().unwrap();
        }
        for h in ths {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), ((COROUTINES + THREADS) * ITERS) as u64);
    });
}

/// Port of Go's `TestMutexFairness`: one coroutine holds the lock almost
/// all the time (sleeping while holding it); another must still get it 10
/// times within the bound.
#[test]
fn fairness_go_port() {
    let mu = Arc::new(Mutex::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    // However the test ends, the hog stops.
    let _stop = support::SetOnDrop(stop.clone());
    let (mu1, stop1) = (mu.clone(), stop.clone());
    let hog = goro::go!(move || {
        while !stop1.load(Ordering::Relaxed) {
            let _g = mu1.lock();
            goro::sleep(Duration::from_micros(100));
        }
    });
    let mu2 = mu.clone();
    let other = goro::go!(move || {
        for _ in 0..10 {
            goro::sleep(Duration::from_micros(100));
            drop(mu2.lock());
        }
    });
    let deadline = Instant::now() + support::PATIENCE;
    while !other.is_finished() {
        assert!(
            Instant::now() < deadline,
            "can't acquire Mutex in {:?}",
            support::PATIENCE
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    support::within("the hog and the other coroutine to end", move || {
        other.join().unwrap();
        hog.join().unwrap();
    });
}

/// A thread that re-takes the lock the moment it releases it tends to win
/// the race against a woken waiter (it is running, the waiter is still
/// waking up). Starvation mode bounds each waiter's wait to about a
/// millisecond; the bound here only catches a lock that lets waiters wait
/// indefinitely (on a machine where a wake-up preempts the looping thread,
/// waiters also win races by luck, so `starved_waiter_is_handed_the_lock`
/// is the deterministic check of the hand-off).
#[test]
fn barging_loop_cannot_starve_waiters() {
    const ROUNDS: usize = 50;
    let mu = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    // However the test ends, the barging loop stops.
    let _stop = support::SetOnDrop(stop.clone());
    let (mu1, stop1) = (mu.clone(), stop.clone());
    let hog = std::thread::spawn(move || {
        while !stop1.load(Ordering::Relaxed) {
            let mut g = mu1.lock();
            // Hold it longer than a contender spins, so that contenders
            // park, and a woken one is still waking up when the loop
            // releases and re-takes the lock a few nanoseconds later.
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(20) {
                *g = std::hint::black_box(*g + 1);
            }
        }
    });
    let mu2 = mu.clone();
    let coroutine_victim = goro::go!(move || {
        for _ in 0..ROUNDS {
            drop(mu2.lock());
        }
    });
    let mu3 = mu.clone();
    let thread_victim = std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            drop(mu3.lock());
        }
    });
    let deadline = Instant::now() + support::PATIENCE;
    while !(coroutine_victim.is_finished() && thread_victim.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "waiters starved by a barging loop for {:?}",
            support::PATIENCE
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    support::within("the barging loop and its victims to end", move || {
        coroutine_victim.join().unwrap();
        thread_victim.join().unwrap();
        hog.join().unwrap();
    });
}

/// Starvation mode, deterministically: once a parked waiter has waited
/// longer than `STARVATION_THRESHOLD`, unlock hands the lock straight to it,
/// so a caller that is running right then cannot take it.
#[test]
fn starved_waiter_is_handed_the_lock() {
    support::within("starved waiter is handed the lock", || {
        let m = Arc::new(Mutex::new(Vec::new()));
        let g = m.lock();
        let m2 = m.clone();
        let waiter = goro::go!(move || m2.lock().push("waiter"));
        let id = waiter.id();
        support::eventually("waiter to park", || support::is_parked(id));
        // Sleeping never returns early, so the waiter has waited long enough.
        std::thread::sleep(goro::sync::STARVATION_THRESHOLD * 2);
        drop(g);
        // Handed over, the lock is held until the waiter has had its turn: a
        // `try_lock` now fails, or (if this thread was descheduled for long
        // enough) finds the waiter's entry already there.
        match m.try_lock() {
            Some(mut g) => {
                assert_eq!(
                    *g,
                    ["waiter"],
                    "the lock was free for a barging caller instead of handed over"
                );
                g.push("main");
            }
            None => m.lock().push("main"),
        }
        waiter.join().unwrap();
        assert_eq!(*m.lock(), ["waiter", "main"]);
    });
}

/// Waiting for a lock parks coroutines, not worker threads: with far more
/// coroutines blocked on a held lock than there are workers, another
/// coroutine still runs.
#[test]
fn waiting_parks_the_coroutine_not_the_worker() {
    support::within("waiting parks the coroutine not the worker", || {
        let m = Arc::new(Mutex::new(0usize));
        let g = m.lock();
        let n = 4 * goro::stats().workers + 4;
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let m = m.clone();
                goro::go!(move || *m.lock() += 1)
            })
            .collect();
        for w in &waiters {
            let id = w.id();
            support::eventually("waiter to park", || support::is_parked(id));
        }
        assert_eq!(goro::go!(|| 6 * 7).join().unwrap(), 42);
        drop(g);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*m.lock(), n);
    });
}

#[test]
fn try_lock_against_a_coroutine_holder() {
    let m = Arc::new(Mutex::new(1));
    let held = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    // However the test ends, the holder lets go.
    let _release = support::SetOnDrop(release.clone());
    support::within("try_lock against a coroutine holding the lock", move || {
        let (m2, held2, release2) = (m.clone(), held.clone(), release.clone());
        let h = goro::go!(move || {
            let mut g = m2.lock();
            *g += 1;
            held2.store(true, Ordering::SeqCst);
            while !release2.load(Ordering::SeqCst) {
                goro::yield_now();
            }
        });
        support::eventually("holder to lock", || held.load(Ordering::SeqCst));
        assert!(m.try_lock().is_none());
        release.store(true, Ordering::SeqCst);
        h.join().unwrap();
        assert_eq!(*m.try_lock().expect("free after the holder ended"), 2);
    });
}

#[test]
fn panic_in_coroutine_releases_lock_without_poison() {
    support::within("panic in coroutine releases lock without poison", || {
        let m = Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let r = goro::go!(move || {
            let mut g = m2.lock();
            g.push(2);
            panic!("panic while holding the lock");
        })
        .join();
        assert!(r.is_err());
        // No poisoning: the lock is free and the data is what the panicking
        // holder left.
        assert_eq!(*m.try_lock().expect("released by unwinding"), [1, 2]);
        let m = Arc::into_inner(m).unwrap();
        assert_eq!(m.into_inner(), [1, 2]);
    });
}

/// A lock can be taken on a thread and the guard dropped while coroutines
/// wait, many times over, with the lock handed back and forth.
#[test]
fn ping_pong_between_thread_and_coroutine() {
    support::within("ping pong between thread and coroutine", || {
        const ROUNDS: usize = 500;
        let turn = Arc::new(Mutex::new(0usize));
        let t2 = turn.clone();
        let co = goro::go!(move || {
            let mut seen = 0;
            while seen < ROUNDS {
                let mut g = t2.lock();
                if *g % 2 == 1 {
                    *g += 1;
                    seen += 1;
                }
                drop(g);
                goro::yield_now();
            }
        });
        let mut seen = 0;
        while seen < ROUNDS {
            let mut g = turn.lock();
            if (*g).is_multiple_of(2) {
                *g += 1;
                seen += 1;
            }
            drop(g);
            std::thread::yield_now();
        }
        co.join().unwrap();
        assert_eq!(*turn.lock(), 2 * ROUNDS);
    });
}

#[test]
fn get_mut_and_static() {
    support::within("get mut and static", || {
        static GLOBAL: Mutex<Vec<u32>> = Mutex::new(Vec::new());
        let hs: Vec<_> = (0..10)
            .map(|i| goro::go!(move || GLOBAL.lock().push(i)))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let mut v = GLOBAL.lock().clone();
        v.sort();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
        let mut local = Mutex::new(5);
        *local.get_mut() += 1;
        assert_eq!(local.into_inner(), 6);
    });
}
