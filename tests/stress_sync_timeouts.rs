//! Stress: goro::sync primitives under coroutines and threads mixed, with
//! random short timeouts wherever the API has them (`Condvar::wait_timeout`,
//! `wait_timeout_while`) and bounded `try_lock` / `try_acquire` polling
//! where it does not (`Mutex` and `Semaphore` have no timed forms).
//!
//! Invariants checked:
//! - `Mutex`: mutual exclusion, including around every `Condvar` return
//!   (the mutex is held again, by this party only).
//! - `Condvar`: no lost notification. Patient consumers wait for tokens
//!   with a timeout no correct run reaches, while churners wait on the
//!   same condvar with random short timeouts and pass on any notification
//!   they receive. A notification a churner swallowed while reporting a
//!   timeout (the race between a timeout and `notify_one`) would leave a
//!   patient consumer asleep with a token pending: it would report its
//!   timeout. Also: a reported timeout never comes early.
//! - `Semaphore`: holders never exceed the permits; every permit comes
//!   back (also through `forget` + `add_permits`).
//! - `Barrier`: in every generation all parties arrive before any leaves,
//!   and exactly one is the leader.
//! - `WaitGroup`: `wait` returns only after every `done` of the round, for
//!   every waiter, across reuse.
//!
//! Bounded for the default `cargo test`; `GORO_STRESS_SCALE=10` runs ten
//! times the rounds. Random choices come from a seed printed at the start
//! (`GORO_STRESS_SEED=<seed>` replays them; the interleaving is the
//! scheduler's).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::sync::{Barrier, Condvar, Mutex, Semaphore, WaitGroup};

fn rng_for(seed: u64, party: usize) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ (party as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

type Join<T> = Box<dyn FnOnce() -> T + Send>;

/// Runs `f` on a coroutine for even `party`, on a thread for odd.
fn run_on<T: Send + 'static>(party: usize, f: impl FnOnce() -> T + Send + 'static) -> Join<T> {
    if party.is_multiple_of(2) {
        let h = goro::go!(f);
        Box::new(move || h.join().expect("coroutine panicked"))
    } else {
        let h = std::thread::spawn(f);
        Box::new(move || h.join().expect("thread panicked"))
    }
}

/// A short random timeout, sometimes zero.
fn short(rng: &mut fastrand::Rng) -> Duration {
    match rng.u8(..8) {
        0 => Duration::ZERO,
        _ => Duration::from_micros(rng.u64(1..400)),
    }
}

/// Sleeps (parks the coroutine) a few microseconds, or just yields.
fn pause(rng: &mut fastrand::Rng) {
    match rng.u8(..4) {
        0 => goro::sleep(Duration::from_micros(rng.u64(1..100))),
        1 if goro::is_coroutine() => goro::yield_now(),
        1 => std::thread::yield_now(),
        _ => {}
    }
}

/// Counts the parties inside a critical section.
struct Exclusion(AtomicUsize);

impl Exclusion {
    fn enter(&self, what: &str) {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        assert_eq!(n, 0, "{what}: {} parties hold the mutex at once", n + 1);
    }

    fn leave(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Tokens {
    pending: u64,
    produced: u64,
    consumed: u64,
    stop: bool,
}

struct CondWorld {
    m: Mutex<Tokens>,
    cv: Condvar,
    inside: Exclusion,
    /// Notifications churners received and passed on.
    forwarded: AtomicU64,
    churner_timeouts: AtomicU64,
    /// Times a patient consumer timed out: a lost notification.
    lost: AtomicU64,
}

/// A wait no correct run reaches (the watchdog is `PATIENCE`).
const LONG: Duration = Duration::from_secs(10);

fn patient_consumer(w: &CondWorld, mut rng: fastrand::Rng) -> u64 {
    let mut got = 0;
    let mut g = w.m.lock();
    w.inside.enter("consumer");
    loop {
        if rng.bool() {
            while g.pending == 0 && !g.stop {
                w.inside.leave();
                let r = w.cv.wait_timeout(&mut g, LONG);
                w.inside.enter("consumer woken");
                if r.timed_out() && g.pending > 0 {
                    w.lost.fetch_add(1, Ordering::SeqCst);
                }
            }
        } else {
            w.inside.leave();
            let r =
                w.cv.wait_timeout_while(&mut g, LONG, |t| t.pending == 0 && !t.stop);
            w.inside.enter("consumer woken");
            if r.timed_out() {
                w.lost.fetch_add(1, Ordering::SeqCst);
            }
        }
        if g.pending == 0 {
            break;
        }
        g.pending -= 1;
        g.consumed += 1;
        got += 1;
    }
    w.inside.leave();
    got
}

fn churner(w: &CondWorld, mut rng: fastrand::Rng) {
    let mut g = w.m.lock();
    w.inside.enter("churner");
    while !g.stop {
        // Short enough that deadlines often fall on a notification.
        let d = Duration::from_micros(rng.u64(0..120));
        let start = Instant::now();
        w.inside.leave();
        let r = w.cv.wait_timeout(&mut g, d);
        w.inside.enter("churner woken");
        if r.timed_out() {
            assert!(
                start.elapsed() >= d,
                "timed out after {:?}, before its {d:?}",
                start.elapsed()
            );
            w.churner_timeouts.fetch_add(1, Ordering::Relaxed);
        } else if !g.stop {
            // Not ours: pass it on (with the mutex held or not).
            w.forwarded.fetch_add(1, Ordering::Relaxed);
            if rng.bool() {
                w.cv.notify_one();
            } else {
                w.inside.leave();
                drop(g);
                w.cv.notify_one();
                g = w.m.lock();
                w.inside.enter("churner relock");
            }
        }
    }
    w.inside.leave();
}

/// Puts tokens one at a time: each is announced by exactly one
/// notification (`notify_one`, or now and then `notify_all`, with the mutex
/// held or not), and the next waits until it is consumed, so a swallowed
/// notification is not covered up by a later one.
fn producer(w: &CondWorld, mut rng: fastrand::Rng, tokens: u64) {
    for _ in 0..tokens {
        let mut g = w.m.lock();
        w.inside.enter("producer");
        g.pending += 1;
        g.produced += 1;
        let all = rng.u8(..8) == 0;
        let notify = || {
            if all {
                w.cv.notify_all();
            } else {
                w.cv.notify_one();
            }
        };
        if rng.bool() {
            notify();
            w.inside.leave();
            drop(g);
        } else {
            w.inside.leave();
            drop(g);
            notify();
        }
        loop {
            let g = w.m.lock();
            if g.consumed == g.produced || w.lost.load(Ordering::SeqCst) > 0 {
                break;
            }
            drop(g);
            goro::sleep(Duration::from_micros(rng.u64(1..30)));
        }
    }
}

#[test]
fn condvar_timeouts_never_swallow_a_notification() {
    let seed = support::stress_seed("condvar");
    let rounds = 4 * support::stress_scale();
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "condvar stress",
        move || {
            const CONSUMERS: usize = 4;
            const CHURNERS: usize = 6;
            const PRODUCERS: usize = 1;
            const TOKENS: u64 = 1000;
            let (mut forwarded, mut timeouts, mut consumed) = (0, 0, 0);
            for round in 0..rounds {
                let w = Arc::new(CondWorld {
                    m: Mutex::new(Tokens {
                        pending: 0,
                        produced: 0,
                        consumed: 0,
                        stop: false,
                    }),
                    cv: Condvar::new(),
                    inside: Exclusion(AtomicUsize::new(0)),
                    forwarded: AtomicU64::new(0),
                    churner_timeouts: AtomicU64::new(0),
                    lost: AtomicU64::new(0),
                });
                let base = seed ^ ((round as u64) << 20);
                let consumers: Vec<_> = (0..CONSUMERS)
                    .map(|i| {
                        let (w, rng) = (w.clone(), rng_for(base, i));
                        run_on(i, move || patient_consumer(&w, rng))
                    })
                    .collect();
                let churners: Vec<_> = (0..CHURNERS)
                    .map(|i| {
                        let (w, rng) = (w.clone(), rng_for(base, 100 + i));
                        run_on(i + 1, move || churner(&w, rng))
                    })
                    .collect();
                let producers: Vec<_> = (0..PRODUCERS)
                    .map(|i| {
                        let (w, rng) = (w.clone(), rng_for(base, 200 + i));
                        run_on(round + i, move || producer(&w, rng, TOKENS))
                    })
                    .collect();
                for p in producers {
                    p();
                }
                // Every token reaches a patient consumer: none is left pending
                // while they sleep (that is what a lost notification does).
                support::eventually("every token consumed", || {
                    w.m.lock().consumed == PRODUCERS as u64 * TOKENS
                        || w.lost.load(Ordering::SeqCst) > 0
                });
                assert_eq!(
                    w.lost.load(Ordering::SeqCst),
                    0,
                    "round {round}: a patient consumer timed out with a token pending"
                );
                {
                    let mut g = w.m.lock();
                    g.stop = true;
                    w.cv.notify_all();
                }
                let got: u64 = consumers.into_iter().map(|c| c()).sum();
                for c in churners {
                    c();
                }
                let g = w.m.lock();
                assert_eq!(g.produced, PRODUCERS as u64 * TOKENS);
                assert_eq!(g.consumed, g.produced);
                assert_eq!(got, g.produced);
                assert_eq!(g.pending, 0);
                forwarded += w.forwarded.load(Ordering::Relaxed);
                timeouts += w.churner_timeouts.load(Ordering::Relaxed);
                consumed += got;
            }
            format!(
                "condvar: {rounds} rounds, {consumed} tokens consumed, {timeouts} churner timeouts, \
             {forwarded} notifications passed on, 0 lost"
            )
        },
    );
    println!("{report}");
}

/// One trial of a timed wait racing `notify_one`.
struct Race {
    m: Mutex<RaceState>,
    cv: Condvar,
}

#[derive(Default)]
struct RaceState {
    /// W (the timed waiter) is queued: it set this, then waited.
    w_queued: bool,
    /// X (the patient waiter, queued behind W) is queued.
    x_queued: bool,
    /// W's `timed_out()`.
    w_timed_out: Option<bool>,
    /// X's `timed_out()`.
    x_timed_out: Option<bool>,
}

/// Polls `cond` on the race's state, sleeping a little between looks.
fn until(r: &Race, mut cond: impl FnMut(&RaceState) -> bool) {
    while !cond(&r.m.lock()) {
        goro::sleep(Duration::from_micros(5));
    }
}

/// W waits with a short timeout, X waits patiently behind it, and one
/// `notify_one` comes at about W's deadline. Exactly one of them must get
/// it: if W reports a timeout, its node had left the queue, so the
/// notification went to X; if W reports no timeout, X is still waiting.
/// Returns whether W timed out.
fn race_trial(rng: &mut fastrand::Rng) -> bool {
    let r = Arc::new(Race {
        m: Mutex::new(RaceState::default()),
        cv: Condvar::new(),
    });
    let d = Duration::from_micros(rng.u64(0..150));
    let w = {
        let r = r.clone();
        run_on(rng.usize(..2), move || {
            let mut g = r.m.lock();
            g.w_queued = true;
            let res = r.cv.wait_timeout(&mut g, d);
            g.w_timed_out = Some(res.timed_out());
        })
    };
    let x = {
        let r = r.clone();
        run_on(rng.usize(..2), move || {
            until(&r, |s| s.w_queued);
            let mut g = r.m.lock();
            g.x_queued = true;
            let res = r.cv.wait_timeout(&mut g, LONG);
            g.x_timed_out = Some(res.timed_out());
        })
    };
    let notifier = {
        let r = r.clone();
        let (delay, held) = (Duration::from_micros(rng.u64(0..200)), rng.bool());
        run_on(rng.usize(..2), move || {
            until(&r, |s| s.x_queued);
            goro::sleep(delay);
            if held {
                let _g = r.m.lock();
                r.cv.notify_one();
            } else {
                r.cv.notify_one();
            }
            until(&r, |s| s.w_timed_out.is_some());
            let w_timed_out = r.m.lock().w_timed_out == Some(true);
            if w_timed_out {
                // The one notification must have gone to X.
                until(&r, |s| s.x_timed_out.is_some());
            } else {
                // W took it; X still waits: release it.
                assert!(
                    r.m.lock().x_timed_out.is_none(),
                    "X woke without a notification"
                );
                r.cv.notify_one();
                until(&r, |s| s.x_timed_out.is_some());
            }
            w_timed_out
        })
    };
    let w_timed_out = notifier();
    w();
    x();
    assert_eq!(
        r.m.lock().x_timed_out,
        Some(false),
        "the notification was lost: W reported timed_out() = {w_timed_out} and X was not woken"
    );
    w_timed_out
}

#[test]
fn condvar_timeout_racing_notify_one_loses_nothing() {
    let seed = support::stress_seed("condvar race");
    let trials = 400 * support::stress_scale();
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "condvar timeout/notify race",
        move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let timed_out = (0..trials).filter(|_| race_trial(&mut rng)).count();
            format!(
                "condvar race: {trials} trials, W timed out {timed_out}, notified {}, \
                 no notification lost",
                trials - timed_out
            )
        },
    );
    println!("{report}");
}

struct SemWorld {
    sem: Semaphore,
    holders: AtomicUsize,
    most: AtomicUsize,
    acquired: AtomicU64,
    gave_up: AtomicU64,
    recycled: AtomicU64,
}

const PERMITS: usize = 3;

fn sem_party(w: &SemWorld, mut rng: fastrand::Rng, iters: usize) {
    for _ in 0..iters {
        let permit = if rng.bool() {
            Some(w.sem.acquire())
        } else {
            // No timed acquire: poll try_acquire until a short deadline.
            let deadline = Instant::now() + short(&mut rng);
            loop {
                if let Some(p) = w.sem.try_acquire() {
                    break Some(p);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                pause(&mut rng);
            }
        };
        let Some(permit) = permit else {
            w.gave_up.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let n = w.holders.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(n <= PERMITS, "{n} holders of {PERMITS} permits");
        w.most.fetch_max(n, Ordering::SeqCst);
        w.acquired.fetch_add(1, Ordering::Relaxed);
        // (Other holders may be on their way out: only ours is certain.)
        assert!(
            w.sem.available_permits() < PERMITS,
            "a held permit is available"
        );
        pause(&mut rng);
        w.holders.fetch_sub(1, Ordering::SeqCst);
        if rng.u8(..8) == 0 {
            // Take the permit out of circulation and put a new one in: the
            // count is unchanged, and add_permits must serve the queue.
            permit.forget();
            w.sem.add_permits(1);
            w.recycled.fetch_add(1, Ordering::Relaxed);
        } else {
            drop(permit);
        }
    }
}

#[test]
fn semaphore_holders_never_exceed_permits() {
    let seed = support::stress_seed("semaphore");
    let iters = 400 * support::stress_scale();
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "semaphore stress",
        move || {
            const PARTIES: usize = 10;
            let w = Arc::new(SemWorld {
                sem: Semaphore::new(PERMITS),
                holders: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
                acquired: AtomicU64::new(0),
                gave_up: AtomicU64::new(0),
                recycled: AtomicU64::new(0),
            });
            let parties: Vec<_> = (0..PARTIES)
                .map(|i| {
                    let (w, rng) = (w.clone(), rng_for(seed, i));
                    run_on(i, move || sem_party(&w, rng, iters))
                })
                .collect();
            for p in parties {
                p();
            }
            assert_eq!(w.sem.available_permits(), PERMITS, "every permit came back");
            assert_eq!(w.holders.load(Ordering::SeqCst), 0);
            let (acq, gave_up) = (
                w.acquired.load(Ordering::Relaxed),
                w.gave_up.load(Ordering::Relaxed),
            );
            assert_eq!(acq + gave_up, (PARTIES * iters) as u64);
            format!(
                "semaphore: {acq} acquired, {gave_up} gave up, {} forgotten and re-added, \
             at most {} holders of {PERMITS}",
                w.recycled.load(Ordering::Relaxed),
                w.most.load(Ordering::SeqCst)
            )
        },
    );
    println!("{report}");
}

#[test]
fn mutex_excludes_with_try_lock_polling_and_lock() {
    let seed = support::stress_seed("mutex");
    let iters = 2_000 * support::stress_scale();
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "mutex stress",
        move || {
            const PARTIES: usize = 8;
            let m = Arc::new(Mutex::new(0u64));
            let inside = Arc::new(Exclusion(AtomicUsize::new(0)));
            let gave_up = Arc::new(AtomicU64::new(0));
            let parties: Vec<_> = (0..PARTIES)
                .map(|i| {
                    let (m, inside, gave_up) = (m.clone(), inside.clone(), gave_up.clone());
                    let mut rng = rng_for(seed, i);
                    run_on(i, move || {
                        let mut mine = 0u64;
                        for _ in 0..iters {
                            let g = if rng.u8(..3) == 0 {
                                let deadline = Instant::now() + short(&mut rng);
                                loop {
                                    if let Some(g) = m.try_lock() {
                                        break Some(g);
                                    }
                                    if Instant::now() >= deadline {
                                        break None;
                                    }
                                    pause(&mut rng);
                                }
                            } else {
                                Some(m.lock())
                            };
                            let Some(mut g) = g else {
                                gave_up.fetch_add(1, Ordering::Relaxed);
                                continue;
                            };
                            inside.enter("mutex");
                            *g += 1;
                            mine += 1;
                            if rng.u8(..16) == 0 {
                                pause(&mut rng);
                            }
                            inside.leave();
                        }
                        mine
                    })
                })
                .collect();
            let total: u64 = parties.into_iter().map(|p| p()).sum();
            assert_eq!(*m.lock(), total, "increments under the lock");
            let gave_up = gave_up.load(Ordering::Relaxed);
            assert_eq!(total + gave_up, (PARTIES * iters) as u64);
            format!("mutex: {total} increments, {gave_up} try_lock deadlines passed")
        },
    );
    println!("{report}");
}

#[test]
fn barrier_generations_are_consistent() {
    let seed = support::stress_seed("barrier");
    let generations = 200 * support::stress_scale();
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "barrier stress",
        move || {
            const PARTIES: usize = 7;
            let b = Arc::new(Barrier::new(PARTIES));
            let arrived: Arc<Vec<AtomicUsize>> =
                Arc::new((0..generations).map(|_| AtomicUsize::new(0)).collect());
            let left: Arc<Vec<AtomicUsize>> =
                Arc::new((0..generations).map(|_| AtomicUsize::new(0)).collect());
            let leaders: Arc<Vec<AtomicUsize>> =
                Arc::new((0..generations).map(|_| AtomicUsize::new(0)).collect());
            let parties: Vec<_> = (0..PARTIES)
                .map(|i| {
                    let (b, arrived, left, leaders) =
                        (b.clone(), arrived.clone(), left.clone(), leaders.clone());
                    let mut rng = rng_for(seed, i);
                    run_on(i, move || {
                        for g in 0..generations {
                            pause(&mut rng);
                            // Nobody of this generation may have left yet.
                            assert_eq!(left[g].load(Ordering::SeqCst), 0, "gen {g}: left early");
                            arrived[g].fetch_add(1, Ordering::SeqCst);
                            let r = b.wait();
                            assert_eq!(
                                arrived[g].load(Ordering::SeqCst),
                                PARTIES,
                                "gen {g}: released before all arrived"
                            );
                            if g + 1 < generations {
                                // The next generation cannot have completed.
                                assert_eq!(left[g + 1].load(Ordering::SeqCst), 0);
                            }
                            left[g].fetch_add(1, Ordering::SeqCst);
                            if r.is_leader() {
                                leaders[g].fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            for p in parties {
                p();
            }
            for g in 0..generations {
                assert_eq!(leaders[g].load(Ordering::SeqCst), 1, "gen {g}: leaders");
                assert_eq!(left[g].load(Ordering::SeqCst), PARTIES);
            }
            format!("barrier: {generations} generations of {PARTIES} parties, one leader each")
        },
    );
    println!("{report}");
}

#[test]
fn waitgroup_wait_returns_only_after_every_done() {
    let seed = support::stress_seed("waitgroup");
    let rounds = 150 * support::stress_scale();
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "waitgroup stress",
        move || {
            const WORKERS: usize = 9;
            const WAITERS: usize = 4;
            let wg = WaitGroup::new();
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut waits = 0;
            for round in 0..rounds {
                let done = Arc::new(AtomicUsize::new(0));
                let released = Arc::new(AtomicBool::new(false));
                wg.add(WORKERS);
                let waiters: Vec<_> = (0..WAITERS)
                    .map(|i| {
                        let (wg, done, released) = (wg.clone(), done.clone(), released.clone());
                        let mut rng = rng_for(seed ^ round as u64, 50 + i);
                        run_on(i, move || {
                            pause(&mut rng);
                            wg.wait();
                            assert_eq!(
                                done.load(Ordering::SeqCst),
                                WORKERS,
                                "round {round}: wait returned before every done"
                            );
                            released.store(true, Ordering::SeqCst);
                        })
                    })
                    .collect();
                let workers: Vec<_> = (0..WORKERS)
                    .map(|i| {
                        let (wg, done) = (wg.clone(), done.clone());
                        let mut rng = rng_for(seed ^ round as u64, i);
                        run_on(i + 1, move || {
                            pause(&mut rng);
                            done.fetch_add(1, Ordering::SeqCst);
                            wg.done();
                        })
                    })
                    .collect();
                if rng.bool() {
                    wg.wait();
                    assert_eq!(done.load(Ordering::SeqCst), WORKERS);
                    waits += 1;
                }
                for j in workers {
                    j();
                }
                for j in waiters {
                    j();
                }
                assert!(released.load(Ordering::SeqCst));
                waits += WAITERS;
            }
            // The group is reusable after all those rounds, and `go` counts.
            let hits = Arc::new(AtomicUsize::new(0));
            for _ in 0..WORKERS {
                let hits = hits.clone();
                wg.go(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                });
            }
            wg.wait();
            assert_eq!(hits.load(Ordering::SeqCst), WORKERS);
            format!("waitgroup: {rounds} rounds of {WORKERS} workers, {waits} waits, none early")
        },
    );
    println!("{report}");
}
