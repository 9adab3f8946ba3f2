//! The scavenger's gate: who sweeps, and when a sweep must run again.
//!
//! Releases arm the scavenger (pool invariant 7) and idle workers run it,
//! one at a time. The gate is one byte with two bits, `ARMED` ("stacks
//! beyond a reserve may be waiting") and `SWEEPING` ("a worker is
//! sweeping"), and every change that matters is a read-modify-write of
//! that byte, so all of them sit in one modification order and none is
//! lost:
//!
//! - `arm` sets `ARMED`, whatever else is set.
//! - `begin` turns `ARMED` into `SWEEPING`; it fails while another worker
//!   sweeps (that worker will see `ARMED` when it finishes) and when
//!   nothing is armed.
//! - `finish` turns `SWEEPING` back into nothing, unless a release set
//!   `ARMED` during the sweep: then it clears `ARMED` only, and the sweeper
//!   sweeps again. A release that lands after a sweep passed its list is
//!   therefore always seen, by this sweep or the next.
//! - `abandon` (the sweeper found work to run) leaves just `ARMED`, for the
//!   next idle moment.
//!
//! The lost wake-up this prevents: a sweep that had already passed a list
//! when a release armed the gate, and a second idle worker that found the
//! sweep running and went to sleep. With a flag and a `try_lock`, the
//! first worker then cleared nothing, slept too, and the released stacks
//! kept their pages until the next burst.
//!
//! `arm` skips its write when it sees `ARMED` already set: a set bit is
//! consumed only by `begin` or `finish`, and a release that pushes its
//! stack under a list's lock after the sweeper took that lock for the last
//! time sees the sweeper's `begin` (it happened before that lock), so the
//! load is never stale in the way that matters. The model check below
//! covers it.

use crate::loom::sync::atomic::{AtomicU8, Ordering};

const ARMED: u8 = 1;
const SWEEPING: u8 = 2;

/// See the module docs.
pub(crate) struct SweepGate {
    state: AtomicU8,
}

impl SweepGate {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> SweepGate {
        SweepGate {
            state: AtomicU8::new(0),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> SweepGate {
        SweepGate {
            state: AtomicU8::new(0),
        }
    }

    /// A release took a list past its reserve.
    #[inline]
    pub(crate) fn arm(&self) {
        if self.state.load(Ordering::Relaxed) & ARMED == 0 {
            self.state.fetch_or(ARMED, Ordering::Release);
        }
    }

    /// Whether a sweep is armed (a plain look; the protocol's steps are
    /// the read-modify-writes of the other methods).
    #[inline]
    pub(crate) fn is_armed(&self) -> bool {
        self.state.load(Ordering::Relaxed) & ARMED != 0
    }

    /// Whether this caller should sweep now; if so it must end with
    /// [`finish`](Self::finish) (and sweep again while that says so) or
    /// [`abandon`](Self::abandon).
    #[inline]
    pub(crate) fn begin(&self) -> bool {
        self.state.load(Ordering::Relaxed) == ARMED
            && self
                .state
                .compare_exchange(ARMED, SWEEPING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Ends a sweep; `true` means a release armed the gate meanwhile and
    /// the caller must sweep once more.
    pub(crate) fn finish(&self) -> bool {
        match self
            .state
            .compare_exchange(SWEEPING, 0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(_) => {
                // Only `arm` changes the state while we sweep: it is
                // SWEEPING | ARMED, and we take the arm for the next pass.
                self.state.fetch_and(!ARMED, Ordering::AcqRel);
                true
            }
        }
    }

    /// Stops a sweep early; the next idle worker sweeps again.
    pub(crate) fn abandon(&self) {
        self.state.swap(ARMED, Ordering::AcqRel);
    }
}

/// Model checks (run with `.ci/loom`): releasers push to a free list
/// under its lock and arm the gate, then go idle and try to sweep, as
/// workers do; a dedicated sweeper races them. However the steps
/// interleave, the list ends empty: no release is left unswept.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Mutex;
    use std::sync::Arc;

    struct Model {
        gate: SweepGate,
        list: Mutex<Vec<u32>>,
    }

    impl Model {
        fn release(&self, v: u32) {
            let mut l = self.list.lock();
            l.push(v);
            self.gate.arm();
        }

        /// `pool::scavenge` with a reserve of 0 and one chunk per pass.
        fn idle(&self) {
            if !self.gate.begin() {
                return;
            }
            loop {
                self.list.lock().clear();
                if !self.gate.finish() {
                    break;
                }
            }
        }
    }

    #[test]
    fn no_release_is_left_unswept() {
        loom::model(|| {
            let m = Arc::new(Model {
                gate: SweepGate::new(),
                list: Mutex::new(Vec::new()),
            });
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let m = m.clone();
                    loom::thread::spawn(move || {
                        m.release(i);
                        m.idle();
                    })
                })
                .collect();
            m.idle();
            for t in threads {
                t.join().unwrap();
            }
            assert!(m.list.lock().is_empty(), "a release was left unswept");
        });
    }

    #[test]
    fn an_abandoned_sweep_stays_armed() {
        loom::model(|| {
            let m = Arc::new(Model {
                gate: SweepGate::new(),
                list: Mutex::new(Vec::new()),
            });
            let m2 = m.clone();
            let t = loom::thread::spawn(move || m2.release(1));
            if m.gate.begin() {
                m.gate.abandon();
            }
            t.join().unwrap();
            m.idle();
            assert!(m.list.lock().is_empty(), "an abandoned sweep lost its arm");
        });
    }
}
