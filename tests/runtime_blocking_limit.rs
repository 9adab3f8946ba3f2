//! The blocking pool at its thread limit keeps accepting work (queues it)
//! and loses none.
//!
//! The pool's limit is `MAX_THREADS` in `runtime/src/blocking.rs` (512,
//! not configurable). The test fills every pool thread with a job that
//! blocks on a gate, queues twice as many jobs behind them, checks that
//! the pool never goes past its limit and that exactly `LIMIT` jobs are
//! running while the rest wait, then opens the gate and checks that every
//! job ran exactly once and every caller got its own result (or its own
//! panic). Plain threads call `goro::blocking` at the same time (it runs
//! inline for them) and must be unaffected by the full pool.
//!
//! One test only: it reads process-wide counters (`stats().parked`,
//! `stats().blocking_threads`).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// `MAX_THREADS` in runtime/src/blocking.rs.
const LIMIT: usize = 512;
/// Jobs submitted from coroutines: the limit's worth running, twice that
/// queued.
const JOBS: usize = 3 * LIMIT;
/// Plain threads calling `blocking` meanwhile, and calls each.
const THREADS: usize = 4;
const THREAD_CALLS: usize = 50;

/// A gate the pooled jobs wait on (std primitives: a pool thread is a
/// plain thread).
struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cond.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cond.notify_all();
    }
}

struct World {
    gate: Gate,
    /// Times job `id` ran.
    runs: Vec<AtomicUsize>,
    /// Jobs that have started and not finished.
    running: AtomicUsize,
    /// Most jobs seen running at once.
    most_running: AtomicUsize,
}

fn result_of(id: usize) -> usize {
    id * 7 + 3
}

/// Every 64th job panics (after the gate): the pool thread must survive
/// it and go on with the queue.
fn panics(id: usize) -> bool {
    id % 64 == 5
}

fn job(w: &World, id: usize) -> usize {
    w.runs[id].fetch_add(1, Ordering::SeqCst);
    let now = w.running.fetch_add(1, Ordering::SeqCst) + 1;
    w.most_running.fetch_max(now, Ordering::SeqCst);
    w.gate.wait();
    w.running.fetch_sub(1, Ordering::SeqCst);
    if panics(id) {
        panic!("job {id} panics on purpose");
    }
    result_of(id)
}

#[test]
fn jobs_beyond_the_thread_limit_queue_and_all_run_once() {
    support::within("blocking pool at its limit", || {
        let w = Arc::new(World {
            gate: Gate {
                open: Mutex::new(false),
                cond: Condvar::new(),
            },
            runs: (0..JOBS).map(|_| AtomicUsize::new(0)).collect(),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
        });

        // Watch the pool's size the whole time.
        let stop = Arc::new(AtomicBool::new(false));
        let most_threads = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (stop, most) = (stop.clone(), most_threads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    most.fetch_max(goro::stats().blocking_threads, Ordering::SeqCst);
                    std::thread::yield_now();
                }
            })
        };

        let callers: Vec<_> = (0..JOBS)
            .map(|id| {
                let w = w.clone();
                goro::spawn(move || {
                    let r = goro::blocking(|| job(&w, id));
                    assert_eq!(r, result_of(id), "job {id}: someone else's result");
                    r
                })
            })
            .collect();

        // Every caller is parked in `blocking` once its job is queued or
        // running; only then is the queue as long as it gets.
        support::eventually("every caller parked in blocking", || {
            goro::stats().parked as usize >= JOBS
        });
        support::eventually("the pool at its limit", || {
            w.running.load(Ordering::SeqCst) == LIMIT
        });
        assert_eq!(
            goro::stats().blocking_threads,
            LIMIT,
            "pool threads while full"
        );

        // Plain threads call `blocking` while the pool is full: it runs on
        // the caller and does not wait for the pool.
        let plain: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..THREAD_CALLS)
                        .map(|i| goro::blocking(move || t * 1000 + i))
                        .sum::<usize>()
                })
            })
            .collect();
        for (t, h) in plain.into_iter().enumerate() {
            let want: usize = (0..THREAD_CALLS).map(|i| t * 1000 + i).sum();
            assert_eq!(h.join().unwrap(), want, "plain thread {t}");
        }
        // Still exactly the limit's worth running: the queued jobs wait.
        assert_eq!(w.running.load(Ordering::SeqCst), LIMIT);
        let started: usize = w.runs.iter().map(|r| r.load(Ordering::SeqCst)).sum();
        assert_eq!(started, LIMIT, "jobs started while the pool was full");

        w.gate.open();
        let mut panicked = 0;
        for (id, h) in callers.into_iter().enumerate() {
            match h.join() {
                Ok(r) => {
                    assert!(!panics(id), "job {id} should have panicked");
                    assert_eq!(r, result_of(id));
                }
                Err(p) => {
                    assert!(panics(id), "job {id} panicked unexpectedly");
                    let msg = p.downcast_ref::<String>().map(String::as_str).unwrap_or("");
                    assert_eq!(msg, format!("job {id} panics on purpose"));
                    panicked += 1;
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        watcher.join().unwrap();

        let lost: Vec<usize> = (0..JOBS)
            .filter(|&id| w.runs[id].load(Ordering::SeqCst) != 1)
            .collect();
        assert!(lost.is_empty(), "jobs not run exactly once: {lost:?}");
        assert_eq!(panicked, (0..JOBS).filter(|&id| panics(id)).count());
        assert_eq!(w.most_running.load(Ordering::SeqCst), LIMIT);
        let most = most_threads.load(Ordering::SeqCst);
        assert!(most <= LIMIT, "pool grew to {most} threads, limit {LIMIT}");
        println!(
            "{JOBS} jobs through a pool of at most {most} threads, {panicked} panicked, \
             {} plain-thread calls",
            THREADS * THREAD_CALLS
        );
    });
}
