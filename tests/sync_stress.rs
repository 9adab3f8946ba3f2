//! Bounded stress: every primitive at once, under coroutines and OS
//! threads mixed, with totals checked at the end. Sized to finish in a few
//! seconds on a 2-core machine in a debug build.

mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::sync::{Barrier, Condvar, Mutex, Once, RwLock, Semaphore, WaitGroup};

const COROUTINES: usize = 400;
const THREADS: usize = 4;
const ITERS: usize = 1_000;
const PERMITS: usize = 5;

struct World {
    counter: Mutex<u64>,
    table: RwLock<Vec<u64>>,
    queue: Mutex<VecDeque<u64>>,
    queue_cv: Condvar,
    sem: Semaphore,
    in_sem: AtomicUsize,
    once: Once,
    once_runs: AtomicUsize,
    barrier: Barrier,
    done: WaitGroup,
}

fn party(w: Arc<World>, me: usize) -> u64 {
    let mut produced = 0;
    w.once.call_once(|| {
        w.once_runs.fetch_add(1, Ordering::SeqCst);
    });
    for i in 0..ITERS {
        *w.counter.lock() += 1;
        if i.is_multiple_of(8) {
            let mut t = w.table.write();
            t[me % 16] += 1;
        } else {
            let t = w.table.read();
            let _ = t.iter().sum::<u64>();
        }
        if i.is_multiple_of(4) {
            let _p = w.sem.acquire();
            let n = w.in_sem.fetch_add(1, Ordering::SeqCst);
            assert!(n < PERMITS, "semaphore admitted {} holders", n + 1);
            if goro::is_coroutine() {
                goro::yield_now();
            }
            w.in_sem.fetch_sub(1, Ordering::SeqCst);
        }
        if i.is_multiple_of(10) {
            w.queue.lock().push_back(1);
            w.queue_cv.notify_one();
            produced += 1;
        }
    }
    // Everybody meets once in the middle of the shutdown.
    w.barrier.wait();
    w.done.done();
    produced
}

#[test]
fn everything_at_once() {
    support::within_for(
        support::STRESS_PATIENCE,
        "404 parties using every primitive at once",
        || {
            let parties = COROUTINES + THREADS;
            let w = Arc::new(World {
                counter: Mutex::new(0),
                table: RwLock::new(vec![0; 16]),
                queue: Mutex::new(VecDeque::new()),
                queue_cv: Condvar::new(),
                sem: Semaphore::new(PERMITS),
                in_sem: AtomicUsize::new(0),
                once: Once::new(),
                once_runs: AtomicUsize::new(0),
                barrier: Barrier::new(parties),
                done: WaitGroup::new(),
            });
            let per_party_items = ITERS.div_ceil(10) as u64;
            let total_items = parties as u64 * per_party_items;
            // One consumer coroutine and one consumer thread drain the queue.
            let consume = |w: Arc<World>, n: u64| {
                move || {
                    for _ in 0..n {
                        let mut q = w.queue.lock();
                        w.queue_cv.wait_while(&mut q, |q| q.is_empty());
                        q.pop_front().unwrap();
                    }
                }
            };
            let c1 = goro::spawn(consume(w.clone(), total_items / 2));
            let c2 = std::thread::spawn(consume(w.clone(), total_items - total_items / 2));
            w.done.add(parties);
            let cos: Vec<_> = (0..COROUTINES)
                .map(|i| {
                    let w = w.clone();
                    goro::spawn(move || party(w, i))
                })
                .collect();
            let ths: Vec<_> = (0..THREADS)
                .map(|i| {
                    let w = w.clone();
                    std::thread::spawn(move || party(w, COROUTINES + i))
                })
                .collect();
            w.done.wait();
            let mut produced = 0;
            for h in cos {
                produced += h.join().unwrap();
            }
            for h in ths {
                produced += h.join().unwrap();
            }
            c1.join().unwrap();
            c2.join().unwrap();
            assert_eq!(produced, total_items);
            assert_eq!(*w.counter.lock(), (parties * ITERS) as u64);
            let writes: u64 = w.table.read().iter().sum();
            assert_eq!(writes, (parties * ITERS.div_ceil(8)) as u64);
            assert_eq!(w.once_runs.load(Ordering::SeqCst), 1);
            assert_eq!(w.sem.available_permits(), PERMITS);
            assert!(w.queue.lock().is_empty());
        },
    );
}

/// Hand-off chains: a ring of coroutines and threads passes a token through
/// one mutex-and-condvar pair per hop, many times round.
#[test]
fn token_ring() {
    support::within_for(
        support::STRESS_PATIENCE,
        "a token passed 12,000 times round a ring",
        || {
            const HOPS: usize = 12;
            const LAPS: usize = 1_000;
            struct Slot {
                has: Mutex<Option<usize>>,
                cv: Condvar,
            }
            let ring: Arc<Vec<Slot>> = Arc::new(
                (0..HOPS)
                    .map(|_| Slot {
                        has: Mutex::new(None),
                        cv: Condvar::new(),
                    })
                    .collect(),
            );
            let hop = |ring: Arc<Vec<Slot>>, i: usize| {
                move || {
                    for _ in 0..LAPS {
                        let mut g = ring[i].has.lock();
                        ring[i].cv.wait_while(&mut g, |t| t.is_none());
                        let t = g.take().unwrap();
                        drop(g);
                        let next = &ring[(i + 1) % HOPS];
                        *next.has.lock() = Some(t + 1);
                        next.cv.notify_one();
                    }
                }
            };
            let mut joins: Vec<Box<dyn FnOnce()>> = Vec::new();
            for i in 0..HOPS {
                if i % 4 == 3 {
                    let h = std::thread::spawn(hop(ring.clone(), i));
                    joins.push(Box::new(move || h.join().unwrap()));
                } else {
                    let h = goro::spawn(hop(ring.clone(), i));
                    joins.push(Box::new(move || h.join().unwrap()));
                }
            }
            *ring[0].has.lock() = Some(0);
            ring[0].cv.notify_one();
            for j in joins {
                j();
            }
            // After LAPS full laps the token is back at slot 0, hopped HOPS*LAPS times.
            assert_eq!(*ring[0].has.lock(), Some(HOPS * LAPS));
        },
    );
}
