//! A scaled-down run of `examples/soak.rs`, in-process: a few rounds of
//! spawn / park / channel hand-off / exit, mixed coroutines and threads,
//! checking after each round that no coroutine is left live (by the
//! runtime's counters and in its registry) and that every message was
//! delivered exactly once. Memory is not asserted here: the example prints
//! RSS per round for a human to judge.
//!
//! One test only, because it reads the process-wide live-coroutine count.

mod support;

#[allow(dead_code)]
#[path = "../examples/soak.rs"]
mod soak;

#[test]
fn rounds_leave_no_coroutine_and_lose_nothing() {
    support::within("three soak rounds of 10k coroutines", || {
        let cfg = soak::RoundConfig {
            coroutines: 10_000,
            threads: 3,
        };
        for r in 1..=3 {
            let rep = soak::round(cfg);
            if let Err(e) = rep.check() {
                panic!("round {r}: {e}\n{rep:?}");
            }
            assert_eq!(rep.spawned, 10_000);
            assert_eq!(goro::stats().coroutines, 0, "round {r}: live coroutines");
            assert!(goro::coroutines().is_empty(), "round {r}: registry");
            // Nothing else of the round may stay behind either.
            assert_eq!(goro::stats().timers, 0, "round {r}: pending timers");
        }
    });
}
