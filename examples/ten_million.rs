//! Ten million parked coroutines on shared stacks: spawn them, let each
//! park, report RSS per coroutine, wake each once, and report the total
//! time.
//!
//! ```sh
//! cargo run --release --example ten_million            # 10,000,000
//! cargo run --release --example ten_million -- 1000000
//! cargo run --release --example ten_million -- 1000000 private  # private stacks
//! ```
//!
//! Each coroutine hands its park token (`goro::park::current()`) to main
//! and parks; main unparks every one of them once. On shared stacks
//! (`Config::shared_stacks`) a parked coroutine costs its task header and
//! the bytes of its frames, copied to the heap; it holds no stack and no
//! guard page of its own, so no guard budget limits the count (under
//! `GORO_STACK_GUARDS=mapped` only the few shared stacks take one).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static GO: AtomicBool = AtomicBool::new(false);
static DONE: AtomicUsize = AtomicUsize::new(0);

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        None => 10_000_000,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("usage: ten_million [COUNT]");
            std::process::exit(2)
        }),
    };
    let shared = std::env::args().nth(2).as_deref() != Some("private");
    goro::Config::new()
        .shared_stacks(shared)
        // Spawning ten million from one coroutine holds its worker for
        // seconds, which is the point here.
        .blocked_worker_threshold(Duration::ZERO)
        .apply()
        .expect("configure before start");
    // Warm the runtime up (workers, shared stacks, the heap's arenas):
    // "before" is the figure of a running, idle runtime.
    goro::go!(|| ()).join().expect("warm-up");
    std::thread::sleep(Duration::from_millis(50));
    let before = rss_bytes();
    let start = Instant::now();
    let (tx, rx) = goro::chan::unbounded::<goro::park::Unparker>();
    let spawner = std::thread::spawn(move || {
        for _ in 0..n {
            let tx = tx.clone();
            goro::go!(move || {
                let _ = tx.send(goro::park::current());
                drop(tx);
                while !GO.load(Ordering::Acquire) {
                    goro::park::park();
                }
                DONE.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let mut tokens = Vec::with_capacity(n);
    tokens.extend(rx.iter().take(n));
    spawner.join().expect("spawner");
    let spawned = start.elapsed();
    while (goro::stats().parked as usize) < n {
        std::thread::sleep(Duration::from_millis(10));
    }
    let parked_at = start.elapsed();
    let rss = rss_bytes();
    let s = goro::stats();
    GO.store(true, Ordering::Release);
    for t in &tokens {
        t.unpark();
    }
    while DONE.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let total = start.elapsed();
    let per = rss.saturating_sub(before) as f64 / n as f64;
    println!(
        "ten_million: n={n} rss_parked={} MiB per_coroutine={per:.0} B (saved frames {} B) spawned+handed_over={:.2}s all_parked={:.2}s woken_and_finished={:.2}s \
         total={:.2}s copy_outs={} copy_ins={}",
        rss >> 20,
        s.saved_stack_bytes / n as u64,
        spawned.as_secs_f64(),
        parked_at.as_secs_f64(),
        (total - parked_at).as_secs_f64(),
        total.as_secs_f64(),
        goro::stats().stack_copy_outs,
        goro::stats().stack_copy_ins,
    );
    // The tokens hold the last references to the finished tasks: their
    // headers are freed here, after the workers went idle.
    drop(tokens);
    // Memory goes back after the burst (`stack/trim.rs`): wait up to 5 s
    // for RSS to come within 10% of its figure before the burst.
    let after = Instant::now();
    let target = before + before / 10;
    while rss_bytes() > target && after.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = after.elapsed();
    let now = rss_bytes();
    println!(
        "ten_million: rss before {} KiB, parked {} MiB, after exit {} KiB ({}within 10% of before, {:.2}s after the tokens were dropped)",
        before >> 10,
        rss >> 20,
        now >> 10,
        if now <= target { "" } else { "NOT " },
        back.as_secs_f64()
    );
}
