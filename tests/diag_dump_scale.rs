//! The dump at scale: 100,000 coroutines parked on one line are one group.
//! (Its own binary: the other tests' polling of `coroutines()` would pay
//! for 100k entries each time.) The time it takes is printed, not
//! asserted; BENCHMARKS.md records it from a release build.

mod support;

use std::time::Instant;

use goro::chan;
use support::within_for;

/// 100k coroutines parked on one line make one group of a few lines.
#[test]
fn a_dump_of_100k_parked_coroutines_is_a_few_lines() {
    within_for(support::STRESS_PATIENCE, "100k dump", || {
        let (tx, rx) = chan::bounded::<()>(0);
        let n = 100_000;
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let rx = rx.clone();
                goro::go!(move || {
                    let _ = rx.recv();
                })
            })
            .collect();
        support::eventually("100k coroutines parked", || {
            goro::stats().parked >= n as u64
        });
        let start = Instant::now();
        let mut out = Vec::new();
        goro::dump_to(&mut out).unwrap();
        let took = start.elapsed();
        let text = String::from_utf8(out).unwrap();
        println!(
            "dump of {n} parked coroutines: {took:?}, {} bytes",
            text.len()
        );
        let group = format!("{n} coroutines [chan receive");
        assert!(text.contains(&group), "{text}");
        assert!(text.lines().count() < 30, "{text}");
        drop(tx);
        for h in handles {
            h.join().unwrap();
        }
    });
}
