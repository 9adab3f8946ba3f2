//! [`Once`]: run an initializer exactly once, parking concurrent callers
//! until it has finished.
//!
//! # Invariants
//!
//! `state` is one of:
//!
//! ```text
//!   INCOMPLETE  nobody has run the initializer to completion
//!   RUNNING     one caller is running it (it won the CAS from INCOMPLETE)
//!   COMPLETE    it returned; final
//! ```
//!
//! 1. Only the caller that won `INCOMPLETE -> RUNNING` leaves `RUNNING`:
//!    to `COMPLETE` when the initializer returns, back to `INCOMPLETE` when
//!    it panics (so that a later caller retries, where std's `Once` would
//!    be poisoned and Go's would count the panic as done).
//! 2. A caller that finds `RUNNING` queues its node with the queue's lock
//!    held, after re-checking that the state is still `RUNNING`. The runner
//!    stores the new state *before* taking the queue's lock to release the
//!    queue, so every node is either queued before that release (and
//!    woken) or its owner sees the new state (and does not park): no lost
//!    wake-up.
//! 3. Woken callers start over: after a completion they return; after a
//!    panic one of them wins the CAS and runs its own initializer.
//! 4. `COMPLETE` is stored with `Release` and read with `Acquire`, so what
//!    the initializer wrote is visible to everyone `call_once` returned to.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::waiter::{self, WaitNode};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

/// Node state: the runner finished (or panicked); look at `state` again.
const FINISHED: usize = 1;

/// Runs a one-time initialization, like Go's `sync.Once` and std's `Once`.
///
/// The first [`call_once`](Once::call_once) runs its closure; callers that
/// arrive while it runs park until it has finished; later callers return
/// at once. If the closure panics, the `Once` stays incomplete and the next
/// caller (one of the parked ones, if any) runs its own closure.
///
/// Calling `call_once` on the same `Once` from inside the closure
/// deadlocks.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use goro::sync::Once;
///
/// static INIT: Once = Once::new();
/// static CALLS: AtomicUsize = AtomicUsize::new(0);
///
/// let hs: Vec<_> = (0..8)
///     .map(|_| {
///         goro::go!(|| INIT.call_once(|| {
///             CALLS.fetch_add(1, Ordering::SeqCst);
///         }))
///     })
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(CALLS.load(Ordering::SeqCst), 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    state: AtomicU8,
    queue: parking_lot::Mutex<Vec<Arc<WaitNode>>>,
    /// The testing bubble it belongs to (`bubble.rs`); checked only on
    /// the slow path (a completed `Once` is read-only).
    bubble: crate::bubble::BubbleMark,
}

/// Sets the final state when the runner leaves `call_once`, normally or by
/// unwinding, and wakes the parked callers.
struct Finish<'a> {
    once: &'a Once,
    state: u8,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.once.state.store(self.state, Ordering::Release);
        let mut queue = self.once.queue.lock();
        let woken = std::mem::take(&mut *queue);
        for w in &woken {
            w.set(FINISHED);
        }
        drop(queue);
        waiter::unpark_all(woken);
    }
}

impl Once {
    /// Creates a `Once` that has not run yet.
    pub const fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            queue: parking_lot::Mutex::new(Vec::new()),
            bubble: crate::bubble::BubbleMark::new(),
        }
    }

    /// Runs `f` if no call has completed yet, waiting for a call that is
    /// running; returns once some call has completed. `f` runs at most once
    /// to completion over the life of the `Once`.
    ///
    /// # Panics
    ///
    /// Propagates a panic of `f`; the `Once` then stays incomplete.
    ///
    /// ```
    /// let once = goro::sync::Once::new();
    /// let mut runs = 0;
    /// once.call_once(|| runs += 1);
    /// once.call_once(|| runs += 1);
    /// assert_eq!(runs, 1);
    /// ```
    #[track_caller]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.state.load(Ordering::Acquire) == COMPLETE {
            return;
        }
        let mut f = Some(f);
        self.call_once_slow(&mut || (f.take().expect("goro: Once initializer taken twice"))());
    }

    /// Whether some `call_once` has completed.
    ///
    /// ```
    /// let once = goro::sync::Once::new();
    /// assert!(!once.is_completed());
    /// once.call_once(|| {});
    /// assert!(once.is_completed());
    /// ```
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn call_once_slow(&self, f: &mut dyn FnMut()) {
        self.bubble.check("a goro::sync::Once");
        loop {
            match self.state.compare_exchange(
                INCOMPLETE,
                RUNNING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let mut finish = Finish {
                        once: self,
                        state: INCOMPLETE,
                    };
                    f();
                    finish.state = COMPLETE;
                    return;
                }
                Err(COMPLETE) => return,
                Err(_) => {
                    let mut queue = self.queue.lock();
                    if self.state.load(Ordering::Acquire) != RUNNING {
                        continue;
                    }
                    let node = WaitNode::new();
                    queue.push(node.clone());
                    drop(queue);
                    node.wait(goro_runtime::park::WaitKind::Once);
                    WaitNode::recycle(node);
                }
            }
        }
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

// A panic anywhere leaves the Once consistent (it holds no user data and
// its internal lock does not poison), so observing it after a caught panic
// is fine, as with std's types.
impl std::panic::UnwindSafe for Once {}
impl std::panic::RefUnwindSafe for Once {}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once")
            .field("completed", &self.is_completed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_lets_next_caller_retry() {
        let once = Once::new();
        let r = std::panic::catch_unwind(|| once.call_once(|| panic!("first try")));
        assert!(r.is_err());
        assert!(!once.is_completed());
        assert_eq!(once.state.load(Ordering::SeqCst), INCOMPLETE);
        let mut ran = false;
        once.call_once(|| ran = true);
        assert!(ran && once.is_completed());
    }
}
