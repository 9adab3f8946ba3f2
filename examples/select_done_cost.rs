//! What a `recv(done)` arm of a context adds to a `select!` (issue 15's
//! "at most 10 ns" target), measured as an A/B in one process: 21 rounds,
//! each 2M selects over two arms (one ready) and then 2M over the same two
//! plus an idle `done` receiver taken once before the loop; prints the
//! median of the per-round differences. Interleaving the rounds keeps
//! frequency and load drift out of the difference.
//!
//! ```sh
//! cargo run --release --example select_done_cost
//! ```
use goro::chan;
use goro::context::Context;
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let (tx, rx) = chan::bounded::<u64>(1);
    let (_idle_tx, idle) = chan::bounded::<u64>(0);
    let (ctx, _cancel) = Context::with_cancel(&Context::background());
    let done = ctx.done();
    const N: u32 = 2_000_000;
    let mut diffs = Vec::new();
    for _round in 0..21 {
        let t = Instant::now();
        for _ in 0..N {
            tx.try_send(1).unwrap();
            goro::select! {
                recv(rx) -> v => { black_box(v.unwrap()); },
                recv(idle) -> _ => unreachable!(),
            }
        }
        let base = t.elapsed().as_nanos() as f64 / N as f64;
        let t = Instant::now();
        for _ in 0..N {
            tx.try_send(1).unwrap();
            goro::select! {
                recv(rx) -> v => { black_box(v.unwrap()); },
                recv(idle) -> _ => unreachable!(),
                recv(done) -> _ => unreachable!(),
            }
        }
        let with = t.elapsed().as_nanos() as f64 / N as f64;
        diffs.push((with - base, base, with));
    }
    diffs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let m = diffs[diffs.len() / 2];
    println!(
        "median added {:.1} ns (base {:.1}, with done {:.1}); min {:.1} max {:.1}",
        m.0,
        m.1,
        m.2,
        diffs[0].0,
        diffs[diffs.len() - 1].0
    );
}
