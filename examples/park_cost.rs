//! The park fast path on its own: a coroutine unparks itself and parks,
//! 20M times, 7 rounds; prints the best round's time per pair. With the
//! token already there, `park` records its wait reason and returns
//! without switching, so the figure is the recording plus the token
//! hand-off. BENCHMARKS.md ("Quiet A/B, third session") uses it to price
//! the wait-reason recording: build it once as is and once with
//! `WaitSlot::record` (runtime/src/diag/wait.rs) returning at once, and
//! run the two binaries alternately.
//!
//! ```sh
//! GORO_BLOCKED_WORKER_MS=0 cargo run --release --example park_cost
//! ```
use std::time::Instant;

fn main() {
    let h = goro::go!(|| {
        let me = goro::park::current();
        let n = 20_000_000u64;
        let mut best = f64::MAX;
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..n {
                me.unpark();
                goro::park::park();
            }
            best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
        }
        best
    });
    println!(
        "{:.2} ns per unpark+park (best of 7 rounds)",
        h.join().unwrap()
    );
}
