//! The Go porting kit's micro-benchmarks (issue 15's targets).
//!
//! - `with_cancel_cancel`: `Context::with_cancel` of a child of a live
//!   context, then `cancel` (target: at most 150 ns).
//! - `select_ready/*`: a `select!` whose one ready arm is a buffered
//!   channel, next to an idle channel: `base` (2 arms), `done_hoisted`
//!   (plus `recv(done)` on a `ctx.done()` taken once), and
//!   `done_in_loop` (plus `recv(ctx.done())` in the loop, the idiom Go
//!   code ports to). The difference to `base` is what `done()` adds
//!   (target: at most 10 ns).
//! - `block_on_ready/{thread,coroutine}`: `goro::block_on` of a future
//!   that is ready at once (target: at most 20 ns).
//! - `handoff/*`: one message from a sender to a coroutine blocked in
//!   `recv` on an unbuffered channel, time per message:
//!   `coroutine_send` (a coroutine's `send`), `block_on_send_async`
//!   (a coroutine's `block_on(tx.send_async(v))`), `tokio_send_async`
//!   (a tokio task's `send_async` on a tokio runtime of one thread).
//!   Target: `send_async` at most 2x the coroutine-to-coroutine figure.
//!
//! ```text
//! cargo bench --bench gokit
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use goro::chan;
use goro::context::Context;
use goro::select;

fn with_cancel(c: &mut Criterion) {
    let (parent, _keep) = Context::with_cancel(&Context::background());
    c.bench_function("gokit/with_cancel_cancel", |b| {
        b.iter(|| {
            let (child, cancel) = Context::with_cancel(&parent);
            cancel.cancel();
            black_box(child)
        })
    });
}

fn select_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("gokit/select_ready");
    let (tx, rx) = chan::bounded::<u64>(1);
    let (_idle_tx, idle) = chan::bounded::<u64>(0);
    let (ctx, _cancel) = Context::with_cancel(&Context::background());
    g.bench_function("base", |b| {
        b.iter(|| {
            tx.try_send(1).unwrap();
            select! {
                recv(rx) -> v => black_box(v.unwrap()),
                recv(idle) -> _ => unreachable!(),
            }
        })
    });
    let done = ctx.done();
    g.bench_function("done_hoisted", |b| {
        b.iter(|| {
            tx.try_send(1).unwrap();
            select! {
                recv(rx) -> v => black_box(v.unwrap()),
                recv(idle) -> _ => unreachable!(),
                recv(done) -> _ => unreachable!(),
            }
        })
    });
    g.bench_function("done_in_loop", |b| {
        b.iter(|| {
            tx.try_send(1).unwrap();
            select! {
                recv(rx) -> v => black_box(v.unwrap()),
                recv(idle) -> _ => unreachable!(),
                recv(ctx.done()) -> _ => unreachable!(),
            }
        })
    });
    g.finish();
}

fn block_on_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("gokit/block_on_ready");
    g.bench_function("thread", |b| {
        b.iter(|| goro::block_on(std::future::ready(black_box(1u64))))
    });
    g.bench_function("coroutine", |b| {
        b.iter_custom(|n| {
            goro::go!(move || {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(goro::block_on(std::future::ready(black_box(1u64))));
                }
                start.elapsed()
            })
            .join()
            .unwrap()
        })
    });
    g.finish();
}

/// `n` messages over an unbuffered channel to a receiving coroutine, sent
/// by `send` (run in a coroutine); time per message seen by the sender.
fn handoff_with(n: u64, send: fn(&chan::Sender<u64>, u64)) -> Duration {
    goro::go!(move || {
        let (tx, rx) = chan::bounded::<u64>(0);
        let recv = goro::go!(move || {
            let mut sum = 0u64;
            for v in &rx {
                sum = sum.wrapping_add(v);
            }
            sum
        });
        let start = Instant::now();
        for i in 0..n {
            send(&tx, i);
        }
        let elapsed = start.elapsed();
        drop(tx);
        black_box(recv.join().unwrap());
        elapsed
    })
    .join()
    .unwrap()
}

fn handoff_tokio(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    let (tx, rx) = chan::bounded::<u64>(0);
    let recv = goro::go!(move || {
        let mut sum = 0u64;
        for v in &rx {
            sum = sum.wrapping_add(v);
        }
        sum
    });
    let elapsed = rt.block_on(async move {
        let start = Instant::now();
        for i in 0..n {
            tx.send_async(i).await.unwrap();
        }
        start.elapsed()
    });
    black_box(recv.join().unwrap());
    elapsed
}

fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("gokit/handoff");
    g.bench_function("coroutine_send", |b| {
        b.iter_custom(|n| handoff_with(n, |tx, v| tx.send(v).unwrap()))
    });
    g.bench_function("block_on_send_async", |b| {
        b.iter_custom(|n| handoff_with(n, |tx, v| goro::block_on(tx.send_async(v)).unwrap()))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("tokio_send_async", |b| {
        b.iter_custom(|n| handoff_tokio(&rt, n))
    });
    g.finish();
}

criterion_group! {
    name = gokit;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = with_cancel, select_ready, block_on_ready, handoff
}
criterion_main!(gokit);
