//! `goro::sync::Condvar`: `notify_one` wakes exactly one waiter,
//! `notify_all` wakes all, timeouts are told apart from notifications, and
//! a bounded queue works across coroutines and threads (Go's `sync.Cond`
//! tests `TestCondSignal`, `TestCondBroadcast`, `TestCondSignalGenerations`).

mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::sync::{Condvar, Mutex};

#[derive(Default)]
struct Counts {
    waiting: usize,
    woken: usize,
}

type Shared = Arc<(Mutex<Counts>, Condvar)>;

/// Each waiter waits exactly once: `Condvar::wait` has no spurious
/// wake-ups, so a return means a notification reached it.
fn waiter(s: Shared) -> impl FnOnce() + Send + 'static {
    move || {
        let (m, cv) = &*s;
        let mut g = m.lock();
        g.waiting += 1;
        cv.wait(&mut g);
        g.woken += 1;
    }
}

fn spawn_waiters(s: &Shared, coroutines: usize, threads: usize) -> Vec<Box<dyn FnOnce()>> {
    let mut joins: Vec<Box<dyn FnOnce()>> = Vec::new();
    for _ in 0..coroutines {
        let h = goro::spawn(waiter(s.clone()));
        joins.push(Box::new(move || h.join().unwrap()));
    }
    for _ in 0..threads {
        let h = std::thread::spawn(waiter(s.clone()));
        joins.push(Box::new(move || h.join().unwrap()));
    }
    // `waiting` is raised under the mutex just before `wait`, which queues
    // before it releases the mutex: once we see them all, all are queued.
    let n = coroutines + threads;
    support::eventually("all waiters to wait", || s.0.lock().waiting == n);
    joins
}

#[test]
fn notify_one_wakes_exactly_one() {
    support::within("notify one wakes exactly one", || {
        let s: Shared = Arc::default();
        let joins = spawn_waiters(&s, 4, 2);
        for k in 1..=6 {
            s.1.notify_one();
            support::eventually("the notified waiter to run", || s.0.lock().woken >= k);
            // Give any wrongly woken extra waiter time to show up (a correct
            // Condvar passes regardless of how long this is).
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(s.0.lock().woken, k, "notify_one woke more than one");
        }
        for j in joins {
            j();
        }
    });
}

#[test]
fn notify_all_wakes_all() {
    support::within("notify all wakes all", || {
        let s: Shared = Arc::default();
        let joins = spawn_waiters(&s, 8, 3);
        s.1.notify_all();
        for j in joins {
            j();
        }
        assert_eq!(s.0.lock().woken, 11);
    });
}

/// Go's `TestCondSignalGenerations`: waiters are woken in the order they
/// started waiting.
#[test]
fn notify_one_wakes_in_wait_order() {
    support::within("notify one wakes in wait order", || {
        const N: usize = 8;
        let s = Arc::new((Mutex::new((0usize, Vec::new())), Condvar::new()));
        let mut hs = Vec::new();
        for i in 0..N {
            let s2 = s.clone();
            hs.push(goro::go!(move || {
                let (m, cv) = &*s2;
                let mut g = m.lock();
                g.0 += 1;
                cv.wait(&mut g);
                g.1.push(i);
            }));
            support::eventually("waiter i to wait", || s.0.lock().0 == i + 1);
        }
        for k in 1..=N {
            s.1.notify_one();
            support::eventually("woken waiter to record", || s.0.lock().1.len() == k);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.0.lock().1, (0..N).collect::<Vec<_>>());
    });
}

#[test]
fn notification_is_not_remembered() {
    support::within("notification is not remembered", || {
        let m = Mutex::new(());
        let cv = Condvar::new();
        cv.notify_one();
        cv.notify_all();
        let mut g = m.lock();
        assert!(
            cv.wait_timeout(&mut g, Duration::from_millis(5))
                .timed_out()
        );
    });
}

#[test]
fn wait_timeout_tells_timeout_from_notification() {
    support::within("wait timeout tells timeout from notification", || {
        // Timeout, in a coroutine; the mutex is held again afterwards.
        let m = Arc::new(Mutex::new(0));
        let cv = Arc::new(Condvar::new());
        let (m2, cv2) = (m.clone(), cv.clone());
        let start = Instant::now();
        let timed_out = goro::go!(move || {
            let mut g = m2.lock();
            let r = cv2.wait_timeout(&mut g, Duration::from_millis(10));
            *g += 1; // we hold the lock
            r.timed_out()
        })
        .join()
        .unwrap();
        assert!(timed_out);
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(*m.lock(), 1);

        // Notification long before the (generous) timeout.
        let (m2, cv2) = (m.clone(), cv.clone());
        let h = goro::go!(move || {
            let mut g = m2.lock();
            *g = 10;
            let r = cv2.wait_timeout(&mut g, support::PATIENCE);
            (r.timed_out(), *g)
        });
        support::eventually("waiter to wait", || *m.lock() == 10);
        *m.lock() = 20;
        cv.notify_one();
        assert_eq!(h.join().unwrap(), (false, 20));
    });
}

#[test]
fn wait_timeout_while() {
    support::within("wait timeout while", || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let (m, cv) = &*pair;
        let mut g = m.lock();
        let r = cv.wait_timeout_while(&mut g, Duration::from_millis(5), |ready| !*ready);
        assert!(r.timed_out());
        drop(g);
        let p2 = pair.clone();
        goro::go!(move || {
            *p2.0.lock() = true;
            p2.1.notify_all();
        });
        let mut g = m.lock();
        let r = cv.wait_timeout_while(&mut g, support::PATIENCE, |ready| !*ready);
        assert!(!r.timed_out());
        assert!(*g);
    });
}

/// A bounded queue (two condition variables) with coroutine and thread
/// producers and consumers: nothing lost, nothing duplicated.
#[test]
fn bounded_queue_producers_consumers() {
    support::within("bounded queue producers consumers", || {
        const PRODUCERS: u64 = 4;
        const PER: u64 = 500;
        const CAP: usize = 4;
        struct Q {
            items: Mutex<VecDeque<u64>>,
            not_empty: Condvar,
            not_full: Condvar,
        }
        let q = Arc::new(Q {
            items: Mutex::new(VecDeque::new()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        });
        let mut producers = Vec::new();
        for p in 0..PRODUCERS {
            let q = q.clone();
            let body = move || {
                for i in 0..PER {
                    let mut g = q.items.lock();
                    q.not_full.wait_while(&mut g, |items| items.len() == CAP);
                    g.push_back(p * PER + i);
                    drop(g);
                    q.not_empty.notify_one();
                }
            };
            if p.is_multiple_of(2) {
                let h = goro::spawn(body);
                producers.push(Box::new(move || h.join().unwrap()) as Box<dyn FnOnce()>);
            } else {
                let h = std::thread::spawn(body);
                producers.push(Box::new(move || h.join().unwrap()));
            }
        }
        let consume = |q: Arc<Q>, n: u64| {
            move || {
                let mut got = Vec::new();
                for _ in 0..n {
                    let mut g = q.items.lock();
                    q.not_empty.wait_while(&mut g, |items| items.is_empty());
                    got.push(g.pop_front().unwrap());
                    drop(g);
                    q.not_full.notify_one();
                }
                got
            }
        };
        let total = PRODUCERS * PER;
        let c1 = goro::spawn(consume(q.clone(), total / 2));
        let c2 = std::thread::spawn(consume(q.clone(), total / 2));
        for p in producers {
            p();
        }
        let mut all = c1.join().unwrap();
        all.extend(c2.join().unwrap());
        all.sort_unstable();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
    });
}
