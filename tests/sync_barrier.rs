//! `goro::sync::Barrier`: nobody passes before all `n` arrive, exactly one
//! leader per generation, reuse across many generations, coroutines and
//! threads mixed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::sync::Barrier;

/// Every party records its arrival, passes the barrier, and checks that
/// all `n` arrivals of this generation happened before it got through.
#[test]
fn one_leader_per_generation_and_nobody_passes_early() {
    support::within("one leader per generation and nobody passes early", || {
        const COROUTINES: usize = 6;
        const THREADS: usize = 2;
        const N: usize = COROUTINES + THREADS;
        const ROUNDS: usize = 50;
        let barrier = Arc::new(Barrier::new(N));
        let arrived = Arc::new(AtomicUsize::new(0));
        let leaders: Arc<Vec<AtomicUsize>> =
            Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
        let party = |b: Arc<Barrier>, arrived: Arc<AtomicUsize>, leaders: Arc<Vec<AtomicUsize>>| {
            move || {
                for round in 0..ROUNDS {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let r = b.wait();
                    let seen = arrived.load(Ordering::SeqCst);
                    assert!(
                        seen >= (round + 1) * N,
                        "passed round {round} after only {seen} arrivals"
                    );
                    if r.is_leader() {
                        leaders[round].fetch_add(1, Ordering::SeqCst);
                    }
                    // A second barrier keeps the next round's arrivals out of
                    // this round's check.
                    b.wait();
                }
            }
        };
        let cos: Vec<_> = (0..COROUTINES)
            .map(|_| goro::spawn(party(barrier.clone(), arrived.clone(), leaders.clone())))
            .collect();
        let ths: Vec<_> = (0..THREADS)
            .map(|_| std::thread::spawn(party(barrier.clone(), arrived.clone(), leaders.clone())))
            .collect();
        for h in cos {
            h.join().unwrap();
        }
        for h in ths {
            h.join().unwrap();
        }
        for (round, l) in leaders.iter().enumerate() {
            assert_eq!(l.load(Ordering::SeqCst), 1, "round {round}");
        }
    });
}

#[test]
fn barrier_of_one_and_zero() {
    support::within("barrier of one and zero", || {
        for n in [0, 1] {
            let b = Barrier::new(n);
            assert!(b.wait().is_leader());
            assert!(b.wait().is_leader());
        }
    });
}

/// Many more coroutines than workers wait at a barrier at once: it parks
/// coroutines, not workers.
#[test]
fn many_coroutines_meet() {
    support::within("many coroutines meet", || {
        let n = 8 * goro::stats().workers + 3;
        let b = Arc::new(Barrier::new(n));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let b = b.clone();
                goro::go!(move || b.wait().is_leader())
            })
            .collect();
        let leaders = hs
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&l| l)
            .count();
        assert_eq!(leaders, 1);
    });
}
