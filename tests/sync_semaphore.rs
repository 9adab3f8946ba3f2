//! `goro::sync::Semaphore`: never more than N holders, permits come back on
//! drop (also when unwinding), waiters are served in arrival order, and
//! coroutines and threads share one semaphore.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::sync::Semaphore;

#[test]
fn never_more_than_n_holders() {
    support::within("never more than n holders", || {
        const N: usize = 3;
        const COROUTINES: usize = 24;
        const THREADS: usize = 4;
        const ITERS: usize = 200;
        let sem = Arc::new(Semaphore::new(N));
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let body = |sem: Arc<Semaphore>, inside: Arc<AtomicUsize>, peak: Arc<AtomicUsize>| {
            move || {
                for i in 0..ITERS {
                    let _permit = sem.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= N, "{now} holders of {N} permits");
                    peak.fetch_max(now, Ordering::SeqCst);
                    if i.is_multiple_of(4) && goro::is_coroutine() {
                        goro::yield_now();
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let cos: Vec<_> = (0..COROUTINES)
            .map(|_| goro::spawn(body(sem.clone(), inside.clone(), peak.clone())))
            .collect();
        let ths: Vec<_> = (0..THREADS)
            .map(|_| std::thread::spawn(body(sem.clone(), inside.clone(), peak.clone())))
            .collect();
        for h in cos {
            h.join().unwrap();
        }
        for h in ths {
            h.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= N);
        assert_eq!(sem.available_permits(), N);
    });
}

#[test]
fn waiters_are_served_in_arrival_order() {
    support::within("waiters are served in arrival order", || {
        const N: usize = 6;
        let sem = Arc::new(Semaphore::new(0));
        let order = Arc::new(goro::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..N {
            let (s, o) = (sem.clone(), order.clone());
            let h = goro::go!(move || {
                // Keep the permit: each `add_permits(1)` below releases one
                // waiter, not a chain of them.
                s.acquire().forget();
                o.lock().push(i);
            });
            let id = h.id();
            support::eventually("waiter to park", || support::is_parked(id));
            hs.push(h);
        }
        for k in 1..=N {
            // Exactly one permit: exactly the next waiter in line runs.
            sem.add_permits(1);
            assert!(sem.try_acquire().is_none(), "a newcomer overtook a waiter");
            support::eventually("next waiter to run", || order.lock().len() == k);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock(), (0..N).collect::<Vec<_>>());
    });
}

#[test]
fn permits_return_on_panic_and_forget_keeps_them() {
    support::within("permits return on panic and forget keeps them", || {
        let sem = Arc::new(Semaphore::new(2));
        let s = sem.clone();
        let r = goro::go!(move || {
            let _p = s.acquire();
            panic!("panic while holding a permit");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(sem.available_permits(), 2);
        sem.acquire().forget();
        assert_eq!(sem.available_permits(), 1);
        let a = sem.try_acquire().expect("one left");
        assert!(sem.try_acquire().is_none());
        drop(a);
        sem.add_permits(3);
        assert_eq!(sem.available_permits(), 4);
    });
}

/// `add_permits(k)` wakes up to `k` waiters at once.
#[test]
fn add_permits_wakes_that_many() {
    support::within("add permits wakes that many", || {
        let sem = Arc::new(Semaphore::new(0));
        let hs: Vec<_> = (0..5)
            .map(|_| {
                let s = sem.clone();
                goro::go!(move || s.acquire().forget())
            })
            .collect();
        for h in &hs {
            let id = h.id();
            support::eventually("waiter to park", || support::is_parked(id));
        }
        sem.add_permits(3);
        support::eventually("three waiters to finish", || {
            hs.iter().filter(|h| h.is_finished()).count() == 3
        });
        sem.add_permits(2);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 0);
    });
}
