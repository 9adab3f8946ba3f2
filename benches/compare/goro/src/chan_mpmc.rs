//! chan_mpmc: 4 producers, 4 consumers, one channel of capacity 128.
//! API: `goro::go!`, `chan::bounded(128)`, cloned `Sender`/`Receiver`, `Receiver::iter`.

use crate::common::{self, Args, Report};
use goro::chan;
use std::time::Instant;

pub fn run(args: &Args) {
    let n = args.n(None);
    let per = n / common::MPMC_PRODUCERS;
    let total = per * common::MPMC_PRODUCERS;
    let (tx, rx) = chan::bounded::<u64>(common::MPMC_CAP);
    let start = Instant::now();
    let producers: Vec<_> = (0..common::MPMC_PRODUCERS)
        .map(|_| {
            let tx = tx.clone();
            goro::go!(move || {
                for i in 0..per as u64 {
                    tx.send(i).expect("consumers gone");
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..common::MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            goro::go!(move || {
                let (mut count, mut sum) = (0usize, 0u64);
                for v in rx.iter() {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().expect("producer panicked");
    }
    let (mut count, mut sum) = (0, 0);
    for c in consumers {
        let (k, s) = c.join().expect("consumer panicked");
        count += k;
        sum += s;
    }
    let el = start.elapsed();
    let want = common::sum_below(per) * common::MPMC_PRODUCERS as u64;
    Report::new("chan_mpmc", "ns_per_msg", common::ns_per(el, total))
        .kv("n", total)
        .kv("lost", total - count)
        .kv("sum_ok", u8::from(sum == want))
        .print();
}
