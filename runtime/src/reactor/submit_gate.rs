//! One submitter at a time: the user-space gate in front of a ring's
//! `io_uring_enter` (`uring.rs`, "One submitter at a time").
//!
//! The kernel serialises the submissions of one ring under the ring's
//! mutex; two busy workers that submit at once spin on it in the kernel.
//! The gate lets one of them submit and makes the other leave its entries
//! to it.
//!
//! # Invariants
//!
//! 1. One word holds `DIRTY` (entries were published and wait for a
//!    submission) and `SUBMITTING` (a thread is submitting); it changes
//!    only by read-modify-writes, so its changes are totally ordered.
//! 2. A pusher publishes its entry (the queue's tail) and then sets
//!    `DIRTY` ([`SubmitGate::mark`], Release).
//! 3. [`SubmitGate::submit`] sets `SUBMITTING`; a thread that finds it set
//!    already leaves. The submitter clears `DIRTY` (AcqRel: the tails
//!    published before it are visible to the submission), enters the
//!    ring, and gives `SUBMITTING` back only by a compare-exchange that
//!    expects `DIRTY` clear; when a pusher set it meanwhile, the exchange
//!    fails and the submitter goes round again. So every `DIRTY` set is
//!    taken by a submission: no entry is left queued with nobody to
//!    submit it (`gate_leaves_nothing_queued` below).
//! 4. A failed submission sets `DIRTY` again, gives `SUBMITTING` back and
//!    stops; the next round, or the reactor owner's wait, retries.

use crate::loom::sync::atomic::{AtomicU8, Ordering};

const DIRTY: u8 = 1;
const SUBMITTING: u8 = 2;

pub(super) struct SubmitGate {
    state: AtomicU8,
}

impl SubmitGate {
    pub(super) fn new() -> SubmitGate {
        SubmitGate {
            state: AtomicU8::new(0),
        }
    }

    /// Invariant 2: entries were published and wait for a submission.
    pub(super) fn mark(&self) {
        self.state.fetch_or(DIRTY, Ordering::Release);
    }

    /// Whether entries may wait for a submission.
    #[inline]
    pub(super) fn is_dirty(&self) -> bool {
        self.state.load(Ordering::Relaxed) & DIRTY != 0
    }

    /// Takes `DIRTY` for a submission made outside the gate (the reactor
    /// owner's wait, which submits and waits in one system call).
    pub(super) fn take(&self) -> bool {
        self.state.fetch_and(!DIRTY, Ordering::AcqRel) & DIRTY != 0
    }

    /// Submits through `enter` (false: the submission failed) unless
    /// another thread is submitting, which then submits for the caller
    /// (invariant 3).
    pub(super) fn submit(&self, mut enter: impl FnMut() -> bool) {
        // Nothing marked (a caller that marked sees its own mark): no
        // read-modify-write on an idle ring.
        if !self.is_dirty() {
            return;
        }
        if self.state.fetch_or(SUBMITTING, Ordering::Acquire) & SUBMITTING != 0 {
            return;
        }
        loop {
            if self.state.fetch_and(!DIRTY, Ordering::AcqRel) & DIRTY != 0 && !enter() {
                self.state.fetch_or(DIRTY, Ordering::Release);
                self.state.fetch_and(!SUBMITTING, Ordering::Release);
                return;
            }
            if self
                .state
                .compare_exchange(SUBMITTING, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// Model check (run with `.ci/loom`): two threads push and submit at
/// once; every entry is submitted by one of them.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::SubmitGate;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn gate_leaves_nothing_queued() {
        loom::model(|| {
            let gate = Arc::new(SubmitGate::new());
            // The queue: entries pushed (`tail`) and submitted (`head`).
            let tail = Arc::new(AtomicUsize::new(0));
            let head = Arc::new(AtomicUsize::new(0));
            let pusher = |gate: Arc<SubmitGate>, tail: Arc<AtomicUsize>, head: Arc<AtomicUsize>| {
                move || {
                    tail.fetch_add(1, Ordering::Release);
                    gate.mark();
                    gate.submit(|| {
                        head.fetch_max(tail.load(Ordering::Acquire), Ordering::Relaxed);
                        true
                    });
                }
            };
            let t = loom::thread::spawn(pusher(gate.clone(), tail.clone(), head.clone()));
            pusher(gate.clone(), tail.clone(), head.clone())();
            t.join().unwrap();
            assert_eq!(head.load(Ordering::Relaxed), 2, "an entry was left queued");
        });
    }
}
