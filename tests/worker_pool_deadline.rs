//! `examples/worker_pool_deadline.rs`: the pool finishes everything in
//! time, stops at its deadline with what finished, and stops on the first
//! failed job.

mod support;

use std::time::Duration;

use goro::context::ContextError;

#[allow(dead_code)]
#[path = "../examples/worker_pool_deadline.rs"]
mod worker_pool_deadline;

use worker_pool_deadline::run;

#[test]
fn everything_finishes_before_a_far_deadline() {
    support::within("pool, far deadline", || {
        let jobs = (0..50).map(|i| (1, i)).collect();
        let (mut done, stopped) = run(jobs, 4, support::PATIENCE);
        done.sort();
        assert_eq!(done, (0..50).collect::<Vec<_>>());
        assert_eq!(stopped, None);
    });
}

#[test]
fn the_deadline_stops_the_pool_with_what_finished() {
    support::within("pool, short deadline", || {
        // Two quick jobs, then jobs that would take ten minutes each.
        let mut jobs = vec![(0, 1), (0, 2)];
        jobs.extend((10..20).map(|i| (600_000, i)));
        let (mut done, stopped) = run(jobs, 2, Duration::from_millis(100));
        done.sort();
        assert_eq!(done, [1, 2], "only the quick jobs finish");
        assert_eq!(stopped, Some(ContextError::DeadlineExceeded));
    });
}

#[test]
fn a_failed_job_cancels_the_rest() {
    support::within("pool, failure", || {
        let mut jobs = vec![(u64::MAX, 0)];
        jobs.extend((1..10).map(|i| (600_000, i)));
        let (done, stopped) = run(jobs, 3, support::PATIENCE * 10);
        assert!(done.is_empty());
        assert_eq!(stopped, Some(ContextError::Canceled));
    });
}
