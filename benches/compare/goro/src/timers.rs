//! timers: n coroutines each sleep a seeded random 0-50 ms; lateness is
//! measured from each one's spawn instant plus its sleep.
//! API: `goro::go!`, `goro::sleep`, `JoinHandle::join`.

use crate::common::{self, Args};
use std::time::Instant;

pub fn run(args: &Args) {
    let n = args.n(None);
    let durs = common::timer_durations(n);
    let ideal = durs.iter().copied().max().unwrap_or_default();
    let start = Instant::now();
    let handles: Vec<_> = durs
        .iter()
        .map(|&d| {
            let t0 = Instant::now();
            goro::go!(move || {
                goro::sleep(d);
                (t0.elapsed().saturating_sub(d)).as_secs_f64() * 1e3
            })
        })
        .collect();
    let late: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    common::report_timers(late, n, start.elapsed(), ideal);
}
