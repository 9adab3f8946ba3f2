//! Spawning and joining coroutines, from coroutines and from threads.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn spawn_and_join_100k() {
    support::within("spawn and join 100k", || {
        let handles: Vec<_> = (0..100_000u64).map(|i| goro::spawn(move || i)).collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 100_000 * 99_999 / 2);
    });
}

#[test]
fn spawn_100k_from_a_coroutine() {
    support::within("spawn 100k from a coroutine", || {
        let total = goro::spawn(|| {
            let hs: Vec<_> = (0..100_000u64).map(|i| goro::go!(move || i % 7)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
        .join()
        .unwrap();
        assert_eq!(total, (0..100_000u64).map(|i| i % 7).sum());
    });
}

#[test]
fn join_from_threads_and_coroutines_in_every_direction() {
    support::within(
        "join from threads and coroutines in every direction",
        || {
            // thread joins coroutine
            assert_eq!(goro::spawn(|| 1).join().unwrap(), 1);
            // coroutine joins coroutine
            let inner = goro::spawn(|| {
                let h = goro::spawn(|| {
                    goro::sleep(Duration::from_millis(5));
                    2
                });
                h.join().unwrap()
            });
            assert_eq!(inner.join().unwrap(), 2);
            // coroutine joins a coroutine spawned by a thread
            let slow = goro::spawn(|| {
                goro::sleep(Duration::from_millis(5));
                3
            });
            assert_eq!(goro::spawn(move || slow.join().unwrap()).join().unwrap(), 3);
            // a plain thread joins a coroutine spawned by a coroutine
            let h = goro::spawn(|| goro::spawn(|| 4)).join().unwrap();
            assert_eq!(
                std::thread::spawn(move || h.join().unwrap())
                    .join()
                    .unwrap(),
                4
            );
        },
    );
}

#[test]
fn is_finished_and_ids() {
    support::within("is finished and ids", || {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = goro::spawn(move || {
            while rx.try_recv().is_err() {
                goro::sleep(Duration::from_millis(1));
            }
        });
        assert!(!h.is_finished());
        assert!(h.id() > 0);
        tx.send(()).unwrap();
        support::eventually("the coroutine to finish", || h.is_finished());
        h.join().unwrap();
    });
}

#[test]
fn is_coroutine_and_current_id() {
    support::within("is coroutine and current id", || {
        assert!(!goro::is_coroutine());
        assert_eq!(goro::current_id(), None);
        let h = goro::spawn(|| (goro::is_coroutine(), goro::current_id()));
        let id = h.id();
        assert_eq!(h.join().unwrap(), (true, Some(id)));
    });
}

#[test]
fn builder_names_and_stack_sizes() {
    support::within("builder names and stack sizes", || {
        let h = goro::Builder::new()
            .name("named")
            .stack_size(256 << 10)
            .spawn(|| {
                // Use most of a 256 KiB stack: would overflow the 64 KiB default.
                let buf = [7u8; 160 << 10];
                std::hint::black_box(&buf)
                    .iter()
                    .map(|&b| b as u64)
                    .sum::<u64>()
            })
            .unwrap();
        assert_eq!(h.join().unwrap(), 7 * (160 << 10));
    });
}

#[test]
fn bad_stack_sizes_are_invalid_input() {
    support::within("bad stack sizes are invalid input", || {
        for size in [
            0,
            1024,
            goro::MIN_STACK_SIZE - 1,
            goro::MAX_STACK_SIZE + 1,
            usize::MAX,
        ] {
            let err = goro::Builder::new()
                .stack_size(size)
                .spawn(|| ())
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "size {size}");
            assert!(err.to_string().contains("stack size"), "{err}");
        }
        // The runtime keeps working afterwards.
        assert_eq!(goro::spawn(|| 5).join().unwrap(), 5);
    });
}

#[test]
fn yield_now_lets_others_run() {
    support::within("yield now lets others run", || {
        let counter = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let c = counter.clone();
                goro::spawn(move || {
                    for _ in 0..1000 {
                        c.fetch_add(1, Ordering::Relaxed);
                        goro::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 8000);
        goro::yield_now(); // on a thread: just yields the thread
    });
}

#[test]
fn a_coroutine_spinning_on_yield_does_not_starve_new_spawns() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // However the test ends, the spinner stops.
    let _stop = support::SetOnDrop(stop.clone());
    support::within(
        "100 spawns beside a coroutine spinning on yield_now",
        move || {
            let s = stop.clone();
            let spinner = goro::spawn(move || {
                while !s.load(Ordering::Acquire) {
                    goro::yield_now();
                }
            });
            let done: Vec<_> = (0..100).map(|i| goro::spawn(move || i)).collect();
            let sum: i32 = done.into_iter().map(|h| h.join().unwrap()).sum();
            stop.store(true, Ordering::Release);
            spinner.join().unwrap();
            assert_eq!(sum, 4950);
        },
    );
}

/// Fresh coroutines stay with their spawner while it will run them soon,
/// but one that never switches must not keep them: another worker takes
/// them. (Needs two workers; on one, nothing can run beside a spinner.)
#[test]
fn a_spawner_that_never_switches_does_not_strand_its_children() {
    support::within(
        "a spawner that never switches does not strand its children",
        || {
            if goro::stats().workers < 2 {
                eprintln!("skipped: needs 2 workers");
                return;
            }
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let all_ran = goro::spawn(move || {
                for _ in 0..3 {
                    let r = r.clone();
                    std::mem::forget(goro::spawn(move || {
                        r.fetch_add(1, Ordering::AcqRel);
                    }));
                }
                // Spin without ever switching, for at most 10 s.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while r.load(Ordering::Acquire) < 3 && std::time::Instant::now() < deadline {
                    std::hint::spin_loop();
                }
                r.load(Ordering::Acquire) == 3
            })
            .join()
            .unwrap();
            assert!(
                all_ran,
                "children ran: {} of 3",
                ran.load(Ordering::Acquire)
            );
        },
    );
}

#[test]
fn unparker_works_between_threads_and_coroutines() {
    support::within("unparker works between threads and coroutines", || {
        use goro::park;
        let flag = Arc::new(AtomicUsize::new(0));
        // A thread wakes a coroutine.
        let f = flag.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = goro::spawn(move || {
            tx.send(park::current()).unwrap();
            while f.load(Ordering::Acquire) == 0 {
                park::park();
            }
            assert!(goro::is_coroutine());
        });
        let u = rx.recv().unwrap();
        assert!(u.is_coroutine());
        flag.store(1, Ordering::Release);
        u.unpark();
        h.join().unwrap();
        // A coroutine wakes a thread.
        let me = park::current();
        assert!(!me.is_coroutine());
        let f = flag.clone();
        goro::spawn(move || {
            f.store(2, Ordering::Release);
            me.unpark();
        });
        while flag.load(Ordering::Acquire) != 2 {
            park::park();
        }
        // An unpark before the park makes the park return at once (token).
        park::current().unpark();
        park::park();
        goro::spawn(|| {
            park::current().unpark();
            park::park();
        })
        .join()
        .unwrap();
    });
}

#[test]
fn park_deadline_returns_without_unpark() {
    support::within("park deadline returns without unpark", || {
        use std::time::Instant;
        let h = goro::spawn(|| {
            let t = Instant::now();
            goro::park::park_timeout(Duration::from_millis(20));
            t.elapsed()
        });
        assert!(h.join().unwrap() >= Duration::from_millis(20));
    });
}

#[test]
fn stats_and_coroutine_dump_see_a_parked_named_coroutine() {
    support::within(
        "stats and coroutine dump see a parked named coroutine",
        || {
            let (tx, rx) = std::sync::mpsc::channel();
            let release = Arc::new(AtomicUsize::new(0));
            let r = release.clone();
            let h = goro::Builder::new()
                .name("dump-me")
                .spawn(move || {
                    tx.send(goro::park::current()).unwrap();
                    while r.load(Ordering::Acquire) == 0 {
                        goro::park::park();
                    }
                })
                .unwrap();
            let u = rx.recv().unwrap();
            let id = h.id();
            support::wait_parked(id);
            let seen = goro::coroutines()
                .into_iter()
                .find(|c| c.id == id)
                .expect("the coroutine is listed");
            assert_eq!(seen.name.as_deref(), Some("dump-me"));
            assert_eq!(seen.state, goro::State::Parked);
            let s = goro::stats();
            assert!(
                s.workers >= 1 && s.coroutines >= 1 && s.parked >= 1 && s.spawned >= 1,
                "{s:?}"
            );
            release.store(1, Ordering::Release);
            u.unpark();
            h.join().unwrap();
        },
    );
}

#[test]
fn config_after_start_says_so() {
    support::within("config after start says so", || {
        goro::spawn(|| ()).join().unwrap();
        let err = goro::Config::new().workers(3).apply().unwrap_err();
        assert_eq!(err, goro::ConfigError::AlreadyStarted);
        assert!(err.to_string().contains("already started"));
    });
}

/// The hook's worker filter never rules out a coroutine's thread: every
/// coroutine, on every worker, gets "maybe" from
/// `reactor::may_be_in_coroutine` (a "no" there would make the hook pass
/// a coroutine's blocking socket call straight through and block its
/// worker).
#[test]
fn every_worker_passes_the_worker_filter() {
    support::within("every worker passes the worker filter", || {
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let threads = Arc::new(threads);
        let hs: Vec<_> = (0..2_000)
            .map(|_| {
                let threads = threads.clone();
                goro::spawn(move || {
                    assert!(goro::reactor::may_be_in_coroutine());
                    assert!(goro::reactor::in_coroutine());
                    threads.lock().unwrap().insert(std::thread::current().id());
                    goro::yield_now();
                    assert!(goro::reactor::may_be_in_coroutine());
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(!goro::reactor::in_coroutine());
        let seen = threads.lock().unwrap().len();
        assert!(seen >= 1, "no worker ran a coroutine");
    });
}

/// The worker a coroutine runs on, by its thread's name.
fn worker_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// `Builder::worker(i)` starts the coroutine on worker `i` (modulo the
/// worker count), from a coroutine and from a plain thread, and it is
/// still there after it parks; a spawn loop of them spreads evenly even
/// though every child parks at once (left to the scheduler, children of
/// a spawner that keeps running start beside it).
#[test]
fn a_coroutine_starts_on_the_worker_it_was_given() {
    support::within("Builder::worker placement", || {
        let n = goro::stats().workers;
        let check = move |i: usize| {
            goro::Builder::new()
                .worker(i)
                .spawn(move || {
                    let first = worker_name();
                    goro::sleep(Duration::from_millis(1));
                    goro::yield_now();
                    (first, worker_name())
                })
                .unwrap()
        };
        // From a plain thread (the test's), including indexes past the end.
        let hs: Vec<_> = (0..3 * n).map(|i| (i % n, check(i))).collect();
        for (i, h) in hs {
            let (first, after) = h.join().unwrap();
            assert_eq!(first, format!("goro-worker-{i}"));
            assert_eq!(after, first, "a coroutine moved after parking");
        }
        // From a coroutine.
        let from_co = goro::go!(move || {
            let hs: Vec<_> = (0..2 * n).map(|i| (i % n, check(i))).collect();
            hs.into_iter()
                .map(|(i, h)| (i, h.join().unwrap().0))
                .collect::<Vec<_>>()
        });
        for (i, first) in from_co.join().unwrap() {
            assert_eq!(first, format!("goro-worker-{i}"));
        }
        // Many parked at once, spread evenly.
        let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
        let (tx, rx) = goro::chan::bounded::<()>(0);
        let hs: Vec<_> = (0..64 * n)
            .map(|i| {
                let (counts, rx) = (counts.clone(), rx.clone());
                goro::Builder::new()
                    .worker(i)
                    .spawn(move || {
                        let name = worker_name();
                        let w: usize = name.trim_start_matches("goro-worker-").parse().unwrap();
                        counts[w].fetch_add(1, Ordering::Relaxed);
                        let _ = rx.recv();
                    })
                    .unwrap()
            })
            .collect();
        drop(rx);
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        for (w, c) in counts.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), 64, "worker {w}");
        }
    });
}
