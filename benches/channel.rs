//! Channel micro-benchmarks (criterion): the three figures the channel
//! issue targets, on the machine's default worker count.
//!
//! - `pingpong`: two coroutines bounce a counter over two unbuffered
//!   channels; time per round trip (Go on this machine: 222 ns).
//! - `mpmc_bounded128`: 4 producer and 4 consumer coroutines share one
//!   `bounded(128)` channel; time per message (Go: 38 ns).
//! - `select4`: one coroutine selects over 4 unbuffered channels, each fed
//!   by its own producer coroutine; time per message (Go: 107 ns).
//!
//! Every measurement runs inside a driver coroutine and times itself
//! (`iter_custom`), so the bench thread's join does not count; one
//! criterion iteration is one round trip or one message.
//!
//! The `*_migratable` variants run the same coroutines with the `unsafe`
//! opt-in `Builder::migratable`, so a woken coroutine runs on the waker's
//! worker instead of being handed back to its own.

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use goro::chan;

fn pingpong(rounds: u64) -> Duration {
    goro::go!(move || {
        let (to_echo, echo_rx) = chan::bounded::<u64>(0);
        let (to_main, main_rx) = chan::bounded::<u64>(0);
        let echo = goro::go!(move || {
            for v in &echo_rx {
                if to_main.send(v + 1).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let mut v = 0u64;
        for _ in 0..rounds {
            to_echo.send(v).unwrap();
            v = main_rx.recv().unwrap();
        }
        let elapsed = start.elapsed();
        assert_eq!(v, rounds);
        drop(to_echo);
        echo.join().unwrap();
        elapsed
    })
    .join()
    .unwrap()
}

/// Spawns a coroutine, migratable or pinned (the default).
fn go<T: Send + 'static>(
    migratable: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> goro::JoinHandle<T> {
    if migratable {
        // SAFETY: the benchmark closures hold no thread-bound state across
        // the channel operations that park.
        unsafe { goro::Builder::new().migratable() }
            .spawn(f)
            .unwrap()
    } else {
        goro::spawn(f)
    }
}

const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;

fn mpmc(messages: u64, migratable: bool) -> Duration {
    goro::go!(move || {
        let per = messages.div_ceil(PRODUCERS);
        let (tx, rx) = chan::bounded::<u64>(128);
        let start = Instant::now();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let tx = tx.clone();
                go(migratable, move || {
                    for i in 0..per {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let rx = rx.clone();
                go(migratable, move || rx.iter().count() as u64)
            })
            .collect();
        drop(rx);
        for p in producers {
            p.join().unwrap();
        }
        let got: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        let elapsed = start.elapsed();
        assert_eq!(got, per * PRODUCERS);
        elapsed
    })
    .join()
    .unwrap()
}

fn select4(messages: u64, migratable: bool) -> Duration {
    goro::go!(move || {
        let per = messages.div_ceil(4);
        let mut rxs = Vec::new();
        let mut producers = Vec::new();
        let start = Instant::now();
        for _ in 0..4 {
            let (tx, rx) = chan::bounded::<u64>(0);
            rxs.push(rx);
            producers.push(go(migratable, move || {
                for i in 0..per {
                    tx.send(i).unwrap();
                }
            }));
        }
        let off = chan::never::<u64>();
        let mut open = [true; 4];
        let mut got = 0u64;
        while open.iter().any(|o| *o) {
            let r = |i: usize| if open[i] { &rxs[i] } else { &off };
            let (i, res) = goro::select! {
                recv(r(0)) -> res => (0, res),
                recv(r(1)) -> res => (1, res),
                recv(r(2)) -> res => (2, res),
                recv(r(3)) -> res => (3, res),
            };
            match res {
                Ok(_) => got += 1,
                Err(_) => open[i] = false,
            }
        }
        let elapsed = start.elapsed();
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(got, per * 4);
        elapsed
    })
    .join()
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    g.bench_function("pingpong", |b| b.iter_custom(pingpong));
    g.bench_function("mpmc_bounded128", |b| b.iter_custom(|n| mpmc(n, false)));
    g.bench_function("select4", |b| b.iter_custom(|n| select4(n, false)));
    g.bench_function("mpmc_bounded128_migratable", |b| {
        b.iter_custom(|n| mpmc(n, true))
    });
    g.bench_function("select4_migratable", |b| {
        b.iter_custom(|n| select4(n, true))
    });
    g.finish();
}

criterion_group!(channel_benches, benches);
criterion_main!(channel_benches);
