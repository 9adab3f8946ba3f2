//! chain: n coroutines in a line, each receiving from its left and sending
//! +1 to its right over unbuffered channels; values are pushed through it.
//! API: `goro::go!`, `chan::bounded(0)`, `&Receiver` iteration, `JoinHandle::join`.

use crate::common::{self, Args, Report};
use goro::chan;
use std::time::Instant;

pub fn run(args: &Args) {
    let tasks = args.n(None);
    let values = args.values(None);
    let (first_tx, mut left) = chan::bounded::<u64>(0);
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (tx, rx) = chan::bounded::<u64>(0);
        let l = std::mem::replace(&mut left, rx);
        handles.push(goro::go!(move || {
            for v in &l {
                if tx.send(v + 1).is_err() {
                    break;
                }
            }
        }));
    }
    let last = left;
    let start = Instant::now();
    let feeder = goro::go!(move || {
        for i in 0..values as u64 {
            first_tx.send(i).expect("chain broken");
        }
    });
    let mut good = 0usize;
    for i in 0..values as u64 {
        match last.recv() {
            Ok(v) if v == i + tasks as u64 => good += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let el = start.elapsed();
    feeder.join().expect("feeder panicked");
    for h in handles {
        h.join().expect("chain coroutine panicked");
    }
    let hops = values * (tasks + 1);
    Report::new("chain", "ns_per_hop", common::ns_per(el, hops))
        .kv("n", tasks)
        .kv("values", values)
        .kv("lost", values - good)
        .print();
}
