//! mutex: 8 coroutines increment one counter under `goro::sync::Mutex`.
//! API: `goro::go!`, `goro::sync::Mutex::{new, lock}` (no poisoning: `lock` returns the guard).

use crate::common::{self, Args, Report};
use goro::sync::Mutex;
use std::sync::Arc;
use std::time::Instant;

pub fn run(args: &Args) {
    let n = args.n(None);
    let per = n / common::MUTEX_TASKS;
    let total = per * common::MUTEX_TASKS;
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let handles: Vec<_> = (0..common::MUTEX_TASKS)
        .map(|_| {
            let counter = Arc::clone(&counter);
            goro::go!(move || {
                for _ in 0..per {
                    *counter.lock() += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("incrementer panicked");
    }
    let el = start.elapsed();
    let got = *counter.lock();
    Report::new("mutex", "ns_per_lock", common::ns_per(el, total))
        .kv("n", total)
        .kv("lost", total as u64 - got)
        .print();
}
