//! A tour of goro: runs each part of the runtime and prints what it did and
//! how fast, on this machine.
//!
//! `cargo run --release --example tour`

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

goro::coroutine_local! {
    static REQUESTS: Cell<u32> = Cell::new(0);
}

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn main() {
    println!("goro tour: Go's concurrency model in Rust");
    println!(
        "workers: {} (GORO_WORKERS), default stack: {} KiB",
        goro::stats().workers,
        goro::DEFAULT_STACK_SIZE >> 10
    );

    section("go! and join: 100,000 coroutines");
    let t = Instant::now();
    let handles: Vec<_> = (0..100_000u64).map(|i| goro::go!(move || i * 2)).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t.elapsed();
    println!(
        "sum = {sum}; {:.0} ns per spawn+join",
        el.as_nanos() as f64 / 100_000.0
    );

    section("park/unpark: two coroutines take turns 1,000,000 times");
    let rounds = 1_000_000usize;
    let t = Instant::now();
    goro::spawn(move || {
        let turn = Arc::new(AtomicUsize::new(0));
        let me = goro::park::current();
        let (tx, rx) = std::sync::mpsc::channel();
        let t2 = turn.clone();
        let partner = goro::spawn(move || {
            tx.send(goro::park::current()).unwrap();
            for i in 0..rounds {
                while t2.load(Ordering::Acquire) != 2 * i + 1 {
                    goro::park::park();
                }
                t2.store(2 * i + 2, Ordering::Release);
                me.unpark();
            }
        });
        let other = loop {
            match rx.try_recv() {
                Ok(u) => break u,
                Err(_) => goro::yield_now(),
            }
        };
        for i in 0..rounds {
            turn.store(2 * i + 1, Ordering::Release);
            other.unpark();
            while turn.load(Ordering::Acquire) != 2 * i + 2 {
                goro::park::park();
            }
        }
        partner.join().unwrap();
    })
    .join()
    .unwrap();
    println!(
        "{:.0} ns per round trip (two switches each way)",
        t.elapsed().as_nanos() as f64 / rounds as f64
    );

    section("timers: 10,000 coroutines sleep 0-50 ms");
    let mut rng = fastrand::Rng::with_seed(7);
    let t = Instant::now();
    let sleepers: Vec<_> = (0..10_000)
        .map(|_| {
            let d = Duration::from_millis(rng.u64(0..=50));
            let due = Instant::now() + d;
            goro::spawn(move || {
                goro::sleep(d);
                Instant::now().saturating_duration_since(due)
            })
        })
        .collect();
    let mut late: Vec<Duration> = sleepers.into_iter().map(|h| h.join().unwrap()).collect();
    late.sort_unstable();
    println!(
        "all woke in {:.1} ms; lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3,
        late[late.len() / 2].as_secs_f64() * 1e3,
        late[late.len() * 99 / 100].as_secs_f64() * 1e3,
        late[late.len() - 1].as_secs_f64() * 1e3
    );

    section("100,000 parked coroutines: memory");
    let before = rss_bytes();
    let wakers = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let parked: Vec<_> = (0..100_000)
        .map(|_| {
            let (w, r) = (wakers.clone(), release.clone());
            goro::spawn(move || {
                w.lock().push(goro::park::current());
                while !r.load(Ordering::Acquire) {
                    goro::park::park();
                }
            })
        })
        .collect();
    while wakers.lock().len() < 100_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = rss_bytes();
    let s = goro::stats();
    println!(
        "{} coroutines live, {} parked: {:.0} bytes of RSS each (stack page + task + this tour's bookkeeping)",
        s.coroutines,
        s.parked,
        (after.saturating_sub(before)) as f64 / 100_000.0
    );
    release.store(true, Ordering::Release);
    for w in wakers.lock().drain(..) {
        w.unpark();
    }
    for h in parked {
        h.join().unwrap();
    }

    section("scope: coroutines that borrow");
    let mut words = vec![
        String::from("go"),
        String::from("rust"),
        String::from("coroutine"),
    ];
    goro::scope(|s| {
        for w in words.iter_mut() {
            s.spawn(move || w.make_ascii_uppercase());
        }
    });
    println!("{words:?}");

    section("coroutine_local!: per-coroutine state");
    let counts: Vec<u32> = (1..=3)
        .map(|n| {
            goro::spawn(move || {
                for _ in 0..n {
                    REQUESTS.with(|r| r.set(r.get() + 1));
                    goro::yield_now();
                }
                REQUESTS.with(Cell::get)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    println!("each coroutine counted only its own requests: {counts:?}");

    section("blocking: file IO on the blocking pool");
    let len = goro::spawn(|| {
        goro::blocking(|| {
            std::fs::read("/proc/self/maps")
                .map(|b| b.len())
                .unwrap_or(0)
        })
    })
    .join()
    .unwrap();
    println!("read /proc/self/maps ({len} bytes) without blocking a worker");

    section("channels: a prime sieve on a daisy chain of coroutines (Go's classic)");
    let t = Instant::now();
    let primes = goro::spawn(|| {
        let (tx, mut rx) = goro::chan::bounded::<u64>(0);
        goro::go!(move || {
            for i in 2.. {
                if tx.send(i).is_err() {
                    break;
                }
            }
        });
        let mut primes = Vec::new();
        for _ in 0..500 {
            let p = rx.recv().unwrap();
            primes.push(p);
            let (next_tx, next_rx) = goro::chan::bounded::<u64>(0);
            let upstream = rx;
            goro::go!(move || {
                for v in upstream.iter() {
                    if v % p != 0 && next_tx.send(v).is_err() {
                        break;
                    }
                }
            });
            rx = next_rx;
        }
        primes
    })
    .join()
    .unwrap();
    println!(
        "the 500th prime is {} ({} filter coroutines, unbuffered hand-offs, {:.1} ms)",
        primes[499],
        primes.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    section("select!: fan-in with a timeout");
    let (fast_tx, fast_rx) = goro::chan::bounded::<&str>(1);
    let (slow_tx, slow_rx) = goro::chan::bounded::<&str>(1);
    goro::go!(move || {
        goro::sleep(Duration::from_millis(1));
        let _ = fast_tx.send("fast");
    });
    goro::go!(move || {
        goro::sleep(Duration::from_millis(500));
        let _ = slow_tx.send("slow");
    });
    // A received-from channel is swapped for `never()` (Go's nil channel),
    // so that its closing does not make select! ready again.
    let never = goro::chan::never::<&str>();
    let (mut fast_done, mut slow_done) = (false, false);
    let mut got = Vec::new();
    for _ in 0..2 {
        goro::select! {
            recv(if fast_done { &never } else { &fast_rx }) -> v => {
                fast_done = true;
                got.push(v.unwrap_or("closed"));
            }
            recv(if slow_done { &never } else { &slow_rx }) -> v => {
                slow_done = true;
                got.push(v.unwrap_or("closed"));
            }
            default(Duration::from_millis(50)) => got.push("timeout after 50 ms"),
        }
    }
    println!("{got:?}");

    section("sync: 8 coroutines and 2 threads share one goro::sync::Mutex");
    let counter = Arc::new(goro::sync::Mutex::new(0u64));
    let wg = goro::sync::WaitGroup::new();
    let t = Instant::now();
    for _ in 0..8 {
        let (c, wg) = (counter.clone(), wg.clone());
        wg.add(1);
        goro::go!(move || {
            for _ in 0..100_000 {
                *c.lock() += 1;
            }
            wg.done();
        });
    }
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let c = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    *c.lock() += 1;
                }
            })
        })
        .collect();
    wg.wait();
    for th in threads {
        th.join().unwrap();
    }
    println!(
        "counter = {} ({:.1} ns per lock)",
        *counter.lock(),
        t.elapsed().as_nanos() as f64 / 1e6
    );

    section("net: a coroutine-per-connection echo server, 50 clients, on loopback");
    let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    goro::go!(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            goro::go!(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 64];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    let t = Instant::now();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            goro::go!(move || {
                use std::io::{Read, Write};
                let mut s = goro::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = [0u8; 64];
                for _ in 0..1000 {
                    s.write_all(&[7u8; 64]).unwrap();
                    s.read_exact(&mut buf).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let el = t.elapsed();
    println!(
        "50,000 round trips in {:.0} ms: {:.0} requests/s (client and server in this process)",
        el.as_secs_f64() * 1e3,
        50_000.0 / el.as_secs_f64()
    );

    section("panics end one coroutine only");
    let r = goro::Builder::new()
        .name("doomed")
        .spawn(|| panic!("on purpose"))
        .unwrap()
        .join();
    println!(
        "join returned Err: {}; the runtime keeps going: {}",
        r.is_err(),
        goro::spawn(|| "yes").join().unwrap()
    );

    section("stats");
    println!("{:#?}", goro::stats());
}
