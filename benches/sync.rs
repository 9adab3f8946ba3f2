//! Sync benchmarks: `goro::sync::Mutex` uncontended next to parking_lot's
//! and std's, and contended by 8 coroutines (Go's 8-goroutine counter) next
//! to 8 OS threads on goro, std and parking_lot locks; plus the uncontended
//! cost of the other primitives.
//!
//! `cargo bench --bench sync`. Contended groups report throughput in lock
//! operations: ns per lock+unlock is 1000 / (Melem/s), or the time per
//! iteration in ms (one iteration is 1M locks). Go's figure for the same
//! workload comes from `benches/compare/run.sh --only mutex`; compare them
//! in one sitting, since on a shared 2-core VM the contended figures move
//! by 2x with what else the host runs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};

/// Lock operations per contended run (Go's benchmark uses 1M).
const TOTAL: u64 = 1_000_000;
/// Contending coroutines or threads.
const PARTIES: u64 = 8;

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    let goro_m = goro::sync::Mutex::new(0u64);
    g.bench_function("goro", |b| {
        b.iter(|| *black_box(&goro_m).lock() += 1);
    });
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot", |b| {
        b.iter(|| *black_box(&pl).lock() += 1);
    });
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std", |b| {
        b.iter(|| *black_box(&std_m).lock().unwrap() += 1);
    });
    // The same lock taken inside a coroutine: the fast path must not care.
    g.bench_function("goro_in_coroutine", |b| {
        b.iter_custom(|iters| {
            goro::spawn(move || {
                let m = goro::sync::Mutex::new(0u64);
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    *black_box(&m).lock() += 1;
                }
                start.elapsed()
            })
            .join()
            .unwrap()
        });
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_contended_8");
    g.throughput(Throughput::Elements(TOTAL));
    let per = TOTAL / PARTIES;
    g.bench_function("goro_coroutines", |b| {
        b.iter(|| {
            let m = Arc::new(goro::sync::Mutex::new(0u64));
            let hs: Vec<_> = (0..PARTIES)
                .map(|_| {
                    let m = m.clone();
                    goro::go!(move || {
                        for _ in 0..per {
                            *m.lock() += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock(), TOTAL);
        })
    });
    g.bench_function("goro_threads", |b| {
        b.iter(|| {
            let m = Arc::new(goro::sync::Mutex::new(0u64));
            let hs: Vec<_> = (0..PARTIES)
                .map(|_| {
                    let m = m.clone();
                    std::thread::spawn(move || {
                        for _ in 0..per {
                            *m.lock() += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock(), TOTAL);
        })
    });
    g.bench_function("std_threads", |b| {
        b.iter(|| {
            let m = Arc::new(std::sync::Mutex::new(0u64));
            let hs: Vec<_> = (0..PARTIES)
                .map(|_| {
                    let m = m.clone();
                    std::thread::spawn(move || {
                        for _ in 0..per {
                            *m.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock().unwrap(), TOTAL);
        })
    });
    g.bench_function("parking_lot_threads", |b| {
        b.iter(|| {
            let m = Arc::new(parking_lot::Mutex::new(0u64));
            let hs: Vec<_> = (0..PARTIES)
                .map(|_| {
                    let m = m.clone();
                    std::thread::spawn(move || {
                        for _ in 0..per {
                            *m.lock() += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock(), TOTAL);
        })
    });
    g.finish();
}

fn others(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    let rw = goro::sync::RwLock::new(0u64);
    g.bench_function("rwlock_read", |b| b.iter(|| *black_box(&rw).read()));
    g.bench_function("rwlock_write", |b| b.iter(|| *black_box(&rw).write() += 1));
    let sem = goro::sync::Semaphore::new(1);
    g.bench_function("semaphore_acquire", |b| {
        b.iter(|| drop(black_box(&sem).acquire()))
    });
    let wg = goro::sync::WaitGroup::new();
    g.bench_function("waitgroup_add_done_wait", |b| {
        b.iter(|| {
            let wg = black_box(&wg);
            wg.add(1);
            wg.done();
            wg.wait();
        })
    });
    let cv = goro::sync::Condvar::new();
    g.bench_function("condvar_notify_one_no_waiter", |b| {
        b.iter(|| black_box(&cv).notify_one())
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    uncontended(&mut c);
    contended(&mut c);
    others(&mut c);
    c.final_summary();
}
