//! spawn: start n coroutines that do nothing, then join all.
//! API: `goro::spawn`, `JoinHandle::join`.

use crate::common::{self, Args, Report};
use std::time::Instant;

pub fn run(args: &Args) {
    let n = args.n(None);
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| goro::spawn(|| {})).collect();
    for h in handles {
        h.join().expect("coroutine panicked");
    }
    let el = start.elapsed();
    Report::new("spawn", "ns_per_op", common::ns_per(el, n)).kv("n", n).print();
}
