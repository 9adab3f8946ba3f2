//! A worker pool with a deadline, the program from issue 15 that needed
//! about 30 lines of home-made context: with `goro::Group` and
//! `goro::context` it is the few lines of [`run`].
//!
//! ```sh
//! cargo run --example worker_pool_deadline
//! ```
//!
//! `jobs` go to `workers` coroutines over a channel; every worker stops
//! when the whole run's deadline passes (or when one job fails, which
//! cancels the group's context); results come back over a channel.
//! `tests/worker_pool_deadline.rs` drives [`run`].

use std::time::Duration;

use goro::chan;
use goro::context::{Context, ContextError};
use goro::{Group, GroupError};

/// A job: "sleep this long, then return this value" (a stand-in for an
/// RPC). A job of `u64::MAX` ms fails.
pub type Job = (u64, u64);

/// Runs `jobs` on `workers` coroutines within `deadline`: the results
/// finished in time (in completion order), and why the run stopped early
/// if it did.
pub fn run(jobs: Vec<Job>, workers: usize, deadline: Duration) -> (Vec<u64>, Option<ContextError>) {
    let (ctx, _cancel) = Context::with_timeout(&Context::background(), deadline);
    let (g, ctx) = Group::<String>::with_context(&ctx);
    let (job_tx, job_rx) = chan::bounded::<Job>(0);
    let (res_tx, res_rx) = chan::unbounded();
    for _ in 0..workers {
        let (ctx, jobs, results) = (ctx.clone(), job_rx.clone(), res_tx.clone());
        g.go(move || {
            for (ms, value) in &jobs {
                if ms == u64::MAX {
                    return Err(format!("job {value} failed"));
                }
                goro::select! {
                    recv(chan::after(Duration::from_millis(ms))) -> _ => results.send(value).unwrap(),
                    recv(ctx.done()) -> _ => return Ok(()),
                }
            }
            Ok(())
        });
    }
    drop(res_tx);
    for job in jobs {
        goro::select! {
            send(job_tx, job) -> _ => {},
            recv(ctx.done()) -> _ => break,
        }
    }
    drop(job_tx); // workers finish the queue and stop
    let stopped = match g.wait() {
        Err(GroupError::Failed(_)) | Err(GroupError::Panicked(_)) => Some(ContextError::Canceled),
        Ok(()) => ctx.err().filter(|e| *e == ContextError::DeadlineExceeded),
    };
    (res_rx.iter().collect(), stopped)
}

fn main() {
    let jobs: Vec<Job> = (0..20).map(|i| (10 + (i % 4) * 20, i)).collect();
    let (done, stopped) = run(jobs, 4, Duration::from_millis(120));
    println!(
        "finished {} jobs: {done:?}; stopped early: {stopped:?}",
        done.len()
    );
}
