//! Runtime benchmarks: spawn+join, yield, park/unpark round trip (criterion),
//! then 100k timers' lateness, RSS per parked coroutine at 100k and 1M, and
//! idle CPU (printed, measured once per run).
//!
//! `cargo bench --bench runtime`; set `GORO_BENCH_SKIP_1M=1` to skip the
//! million-coroutine memory run (it needs about 5 GB of RAM).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

fn spawn_join(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut g = c.benchmark_group("spawn_join");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("from_thread", |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..N).map(|_| goro::spawn(|| ())).collect();
            for h in hs {
                h.join().unwrap();
            }
        })
    });
    g.bench_function("from_coroutine", |b| {
        b.iter(|| {
            goro::spawn(|| {
                let hs: Vec<_> = (0..N).map(|_| goro::spawn(|| ())).collect();
                for h in hs {
                    h.join().unwrap();
                }
            })
            .join()
            .unwrap()
        })
    });
    g.finish();
}

fn switches(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut g = c.benchmark_group("switch");
    g.throughput(Throughput::Elements(N));
    g.bench_function("yield_now", |b| {
        b.iter(|| {
            goro::spawn(|| {
                for _ in 0..N {
                    goro::yield_now();
                }
            })
            .join()
            .unwrap()
        })
    });
    // Two coroutines wake each other through park/unpark: one round trip
    // is two unparks and two parks.
    g.bench_function("park_unpark_round_trip", |b| {
        b.iter(|| {
            goro::spawn(|| {
                let turn = Arc::new(AtomicUsize::new(0));
                let me = goro::park::current();
                let t = turn.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                let partner = goro::spawn(move || {
                    tx.send(goro::park::current()).unwrap();
                    for i in 0..N as usize {
                        while t.load(Ordering::Acquire) != 2 * i + 1 {
                            goro::park::park();
                        }
                        t.store(2 * i + 2, Ordering::Release);
                        me.unpark();
                    }
                });
                goro::yield_now();
                let other = loop {
                    match rx.try_recv() {
                        Ok(u) => break u,
                        Err(_) => goro::yield_now(),
                    }
                };
                for i in 0..N as usize {
                    turn.store(2 * i + 1, Ordering::Release);
                    other.unpark();
                    while turn.load(Ordering::Acquire) != 2 * i + 2 {
                        goro::park::park();
                    }
                }
                partner.join().unwrap();
            })
            .join()
            .unwrap()
        })
    });
    g.finish();
}

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// 100k coroutines each sleeping a random 0-50 ms; lateness from spawn.
/// `from` names the spawner: a coroutine (the usual shape of a goro
/// program, and what the comparison suite measures) or the main thread.
fn timers(from: &str) {
    const N: usize = 100_000;
    let body = || {
        let mut rng = fastrand::Rng::with_seed(42);
        let start = Instant::now();
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let d = Duration::from_millis(rng.u64(0..=50));
                let due = Instant::now() + d;
                goro::spawn(move || {
                    goro::sleep(d);
                    Instant::now().saturating_duration_since(due)
                })
            })
            .collect();
        let late: Vec<Duration> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (late, start.elapsed())
    };
    let (mut late, wall) = if from == "coroutine" {
        goro::spawn(body).join().unwrap()
    } else {
        body()
    };
    late.sort_unstable();
    println!(
        "timers/100k_sleep_0_50ms (spawned from a {from}): wall {:.1} ms (ideal 50), lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wall.as_secs_f64() * 1e3,
        late[N / 2].as_secs_f64() * 1e3,
        late[N * 99 / 100].as_secs_f64() * 1e3,
        late[N - 1].as_secs_f64() * 1e3
    );
}

/// RSS growth per parked coroutine with `n` coroutines parked at once.
fn parked_rss(n: usize) {
    let release = Arc::new(AtomicBool::new(false));
    let parked = Arc::new(AtomicUsize::new(0));
    let waiters = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(n)));
    let before = rss_bytes();
    let t = Instant::now();
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (release, parked, waiters) = (release.clone(), parked.clone(), waiters.clone());
            goro::spawn(move || {
                waiters.lock().push(goro::park::current());
                parked.fetch_add(1, Ordering::Release);
                while !release.load(Ordering::Acquire) {
                    goro::park::park();
                }
            })
        })
        .collect();
    while parked.load(Ordering::Acquire) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let spawned_in = t.elapsed();
    let after = rss_bytes();
    // Book-keeping of this benchmark itself: a JoinHandle, an Unparker and
    // three Arc clones per coroutine live outside the runtime; count them
    // honestly as part of the figure rather than subtracting estimates.
    println!(
        "memory/parked_{n}: RSS {:.1} MB -> {:.1} MB, {:.0} bytes per parked coroutine (spawned and parked in {:.0} ms; stats: {:?})",
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after - before) as f64 / n as f64,
        spawned_in.as_secs_f64() * 1e3,
        goro::stats()
    );
    release.store(true, Ordering::Release);
    for w in waiters.lock().drain(..) {
        w.unpark();
    }
    for h in hs {
        h.join().unwrap();
    }
}

/// Process CPU time while the runtime has nothing to do.
fn idle_cpu() {
    let parked = goro::spawn(|| goro::sleep(Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(200));
    let cpu = || {
        let mut u: libc::rusage = unsafe_zeroed();
        // SAFETY: getrusage writes into the struct we pass.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        Duration::new(u.ru_utime.tv_sec as u64, u.ru_utime.tv_usec as u32 * 1000)
            + Duration::new(u.ru_stime.tv_sec as u64, u.ru_stime.tv_usec as u32 * 1000)
    };
    let (c0, t0) = (cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu() - c0;
    println!(
        "idle/cpu: {:.3}% of one core over {:.1} s with {} workers and a parked coroutine",
        used.as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0,
        t0.elapsed().as_secs_f64(),
        goro::stats().workers
    );
    drop(parked);
}

fn unsafe_zeroed() -> libc::rusage {
    // SAFETY: rusage is plain integers, for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    spawn_join(&mut c);
    switches(&mut c);
    c.final_summary();
    // Run the one-shot figures only in a real bench run, not in
    // `cargo test --benches` (which passes no `--bench`).
    if std::env::args().any(|a| a == "--bench") {
        timers("coroutine");
        timers("thread");
        idle_cpu();
        parked_rss(100_000);
        if std::env::var_os("GORO_BENCH_SKIP_1M").is_none() {
            parked_rss(1_000_000);
        }
    }
}
