//! The watch on a sleeping worker's op ring (`uring.rs`, "A ring per
//! worker", step 5).
//!
//! A worker's op ring holds the data operations of the coroutines only
//! that worker runs. While the worker sleeps, nobody reaps that ring
//! unless a one-shot poll of the ring's fd is armed on the main ring,
//! which the reactor owner waits on: the *watch*.
//!
//! # Invariants
//!
//! 1. One word holds `SLEEPING` (the worker is between
//!    [`RingWatch::sleeps`] and [`RingWatch::wakes`]) and `WATCHED` (a
//!    watch is armed and its completion not yet handled). It changes only
//!    by read-modify-writes, so its changes are totally ordered.
//! 2. Only a change that sets `WATCHED` arms a watch, so at most one is
//!    armed per ring.
//! 3. The sleeper sets `SLEEPING` and, with operations in flight, sets
//!    `WATCHED` too in the same change if it was clear (it arms).
//! 4. The reaper of a fired watch clears `WATCHED`, reaps the ring, and
//!    then sets `WATCHED` again if `SLEEPING` is set and operations are in
//!    flight (it arms). Its worker wakes by clearing `SLEEPING`; if it
//!    sleeps again before the reaper's second change, its own change sees
//!    `WATCHED` clear and arms, and the reaper's then sees it set.
//! 5. So a worker that sleeps with operations in flight always has one
//!    watch armed (`a_sleeper_is_always_watched` below). Operations in
//!    flight only grow while the worker is awake (its coroutines start
//!    them), so testing them in the same breath as `SLEEPING` is enough.

use crate::loom::sync::atomic::{AtomicU8, Ordering};

const SLEEPING: u8 = 1;
const WATCHED: u8 = 2;

pub(super) struct RingWatch {
    state: AtomicU8,
}

impl RingWatch {
    pub(super) fn new() -> RingWatch {
        RingWatch {
            state: AtomicU8::new(0),
        }
    }

    /// Invariant 3: the worker goes to sleep; true if the caller must arm
    /// a watch now.
    pub(super) fn sleeps(&self, in_flight: bool) -> bool {
        let set = if in_flight {
            SLEEPING | WATCHED
        } else {
            SLEEPING
        };
        self.state.fetch_or(set, Ordering::AcqRel) & WATCHED == 0 && in_flight
    }

    /// The worker is awake again.
    pub(super) fn wakes(&self) {
        self.state.fetch_and(!SLEEPING, Ordering::AcqRel);
    }

    /// Invariant 4, first half: the armed watch's completion is handled.
    pub(super) fn fired(&self) {
        self.state.fetch_and(!WATCHED, Ordering::AcqRel);
    }

    /// Invariant 4, second half, after the ring was reaped: true if the
    /// caller must arm the next watch.
    pub(super) fn rearm(&self, in_flight: bool) -> bool {
        in_flight
            && self
                .state
                .compare_exchange(
                    SLEEPING,
                    SLEEPING | WATCHED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Model check (run with `.ci/loom`): a watch fires while its worker
/// wakes and goes to sleep again with operations in flight; afterwards
/// exactly one new watch is armed.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::RingWatch;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_sleeper_is_always_watched() {
        loom::model(|| {
            let watch = Arc::new(RingWatch::new());
            // Asleep with a watch armed, which now fires.
            assert!(watch.sleeps(true));
            let armed = Arc::new(AtomicUsize::new(0));
            let reaper = {
                let (watch, armed) = (watch.clone(), armed.clone());
                loom::thread::spawn(move || {
                    watch.fired();
                    if watch.rearm(true) {
                        armed.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            // The worker wakes (for other work) and sleeps again.
            watch.wakes();
            if watch.sleeps(true) {
                armed.fetch_add(1, Ordering::Relaxed);
            }
            reaper.join().unwrap();
            assert_eq!(armed.load(Ordering::Relaxed), 1, "no watch, or two, armed");
        });
    }
}
