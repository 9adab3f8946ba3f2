//! [`Semaphore`]: a counting semaphore with RAII permits, FIFO-fair.
//!
//! Go programs use a buffered channel or `golang.org/x/sync/semaphore` for
//! this; the protocol here is the one of `runtime/sema.go` (a counter, and
//! a queue of waiters that a release serves first) with direct hand-off,
//! so waiters are served strictly in arrival order.
//!
//! # Invariants
//!
//! `state` is `permits << 1 | QUEUED`:
//!
//! ```text
//!   bit 0      QUEUED   `queue` is not empty
//!   bits 1..   permits  permits available to take right now
//! ```
//!
//! 1. `QUEUED` mirrors "`queue` is not empty" whenever `queue`'s lock is
//!    not held; it changes only with that lock held.
//! 2. `QUEUED` implies zero available permits: a release with waiters
//!    queued gives its permits to them first (hand-off, node state
//!    `GRANTED`), and only what is left over, once the queue is empty,
//!    goes back to the counter. So a newcomer never overtakes a queued
//!    waiter, and the queue is served FIFO.
//! 3. While `QUEUED` is set nobody changes `state` without the queue's
//!    lock: `try_acquire` fails (no permits), and a release takes its slow
//!    path under the lock.
//! 4. A waiter queues only in a CAS that saw zero permits and sets
//!    `QUEUED`, with the queue's lock held; a release that comes later sees
//!    `QUEUED` and serves the queue under the lock: no lost wake-up.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::waiter::{self, WaitNode};

const QUEUED: usize = 1;
const ONE_PERMIT: usize = 2;

/// Node state: a permit was handed to this waiter.
const GRANTED: usize = 1;

/// A counting semaphore: at most `permits` holders at a time.
///
/// [`acquire`](Semaphore::acquire) parks the coroutine (or blocks the
/// thread) until a permit is free and returns a [`SemaphorePermit`] that
/// gives the permit back when dropped. Waiters get permits strictly in the
/// order they started waiting.
///
/// # Examples
///
/// Limit how many coroutines talk to a backend at once:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use goro::sync::Semaphore;
///
/// let sem = Arc::new(Semaphore::new(3));
/// let inside = Arc::new(AtomicUsize::new(0));
/// let hs: Vec<_> = (0..10)
///     .map(|_| {
///         let (sem, inside) = (sem.clone(), inside.clone());
///         goro::go!(move || {
///             let _permit = sem.acquire();
///             assert!(inside.fetch_add(1, Ordering::SeqCst) < 3);
///             goro::yield_now();
///             inside.fetch_sub(1, Ordering::SeqCst);
///         })
///     })
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(sem.available_permits(), 3);
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    queue: parking_lot::Mutex<VecDeque<Arc<WaitNode>>>,
    /// The testing bubble it belongs to (`bubble.rs`).
    bubble: crate::bubble::BubbleMark,
}

impl Semaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = usize::MAX >> 1;

    /// Creates a semaphore with `permits` permits available.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// static POOL: goro::sync::Semaphore = goro::sync::Semaphore::new(4);
    /// assert_eq!(POOL.available_permits(), 4);
    /// ```
    pub const fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= Semaphore::MAX_PERMITS,
            "goro: Semaphore::new: too many permits"
        );
        Semaphore {
            state: AtomicUsize::new(permits << 1),
            queue: parking_lot::Mutex::new(VecDeque::new()),
            bubble: crate::bubble::BubbleMark::new(),
        }
    }

    /// Takes one permit, parking until one is available. The permit goes
    /// back when the returned guard is dropped.
    ///
    /// ```
    /// let sem = goro::sync::Semaphore::new(1);
    /// let p = sem.acquire();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(p);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.bubble.check("a goro::sync::Semaphore");
        if !self.try_take() {
            self.acquire_slow();
        }
        SemaphorePermit { sem: self }
    }

    /// Takes one permit if one is available right now (and nobody is
    /// queued for it); never waits.
    ///
    /// ```
    /// let sem = goro::sync::Semaphore::new(1);
    /// let p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(p);
    /// assert!(sem.try_acquire().is_some());
    /// ```
    #[track_caller]
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.bubble.check("a goro::sync::Semaphore");
        // Not `then_some`: that would build (and drop, releasing!) a permit
        // even when none was taken.
        self.try_take().then(|| SemaphorePermit { sem: self })
    }

    /// Adds `n` permits, waking waiters that can now have one.
    ///
    /// # Panics
    ///
    /// If the count would exceed [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// let sem = goro::sync::Semaphore::new(0);
    /// assert!(sem.try_acquire().is_none());
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & QUEUED != 0 {
                return self.release_slow(n);
            }
            let new = Self::add(state, n);
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
    }

    /// The number of permits that could be taken right now.
    ///
    /// ```
    /// let sem = goro::sync::Semaphore::new(2);
    /// let _p = sem.acquire();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Acquire) >> 1
    }

    fn add(state: usize, n: usize) -> usize {
        match (state >> 1).checked_add(n) {
            Some(p) if p <= Semaphore::MAX_PERMITS => (p << 1) | (state & QUEUED),
            _ => panic!("goro: Semaphore permit count overflow"),
        }
    }

    fn try_take(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            // QUEUED implies no permits (invariant 2).
            if state < ONE_PERMIT {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state - ONE_PERMIT,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(s) => state = s,
            }
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn acquire_slow(&self) {
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state >= ONE_PERMIT {
                match self.state.compare_exchange_weak(
                    state,
                    state - ONE_PERMIT,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(s) => state = s,
                }
            } else {
                match self.state.compare_exchange_weak(
                    state,
                    QUEUED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(s) => state = s,
                }
            }
        }
        let node = WaitNode::new();
        queue.push_back(node.clone());
        drop(queue);
        // Granted: a release handed us its permit.
        node.wait(goro_runtime::park::WaitKind::Semaphore);
        WaitNode::recycle(node);
    }

    #[cold]
    #[inline(never)]
    fn release_slow(&self, mut n: usize) {
        let mut queue = self.queue.lock();
        // Invariant 3: with QUEUED set, `state` is exactly QUEUED and only we
        // (holding the lock) change it. It may have been cleared before we
        // got the lock, though: then add to the counter as usual.
        let state = self.state.load(Ordering::Relaxed);
        if state & QUEUED == 0 {
            drop(queue);
            return self.add_permits(n);
        }
        debug_assert_eq!(state, QUEUED);
        let mut woken = Vec::new();
        while n > 0 {
            let Some(w) = queue.pop_front() else { break };
            w.set(GRANTED);
            woken.push(w);
            n -= 1;
        }
        let queued = if queue.is_empty() { 0 } else { QUEUED };
        self.state.store(Self::add(queued, n), Ordering::Release);
        drop(queue);
        waiter::unpark_all(woken);
    }
}

// A panic anywhere leaves the Semaphore consistent (it holds no user data and
// its internal lock does not poison), so observing it after a caught panic
// is fine, as with std's types.
impl std::panic::UnwindSafe for Semaphore {}
impl std::panic::RefUnwindSafe for Semaphore {}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .finish_non_exhaustive()
    }
}

/// One permit of a [`Semaphore`], given back when dropped.
#[must_use = "the permit is released at once if unused"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good: the semaphore has one permit fewer
    /// from now on.
    ///
    /// ```
    /// let sem = goro::sync::Semaphore::new(2);
    /// sem.acquire().forget();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(1);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    /// Waiters are served in arrival order, and a newcomer cannot take a
    /// permit a queued waiter is owed.
    #[test]
    fn fifo_handoff() {
        let sem = Arc::new(Semaphore::new(0));
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..4 {
            let (sem2, order2) = (sem.clone(), order.clone());
            hs.push(goro_runtime::go!(move || {
                sem2.acquire().forget();
                order2.lock().push(i);
            }));
            eventually("waiter to queue", || sem.queue.lock().len() == i + 1);
        }
        for k in 1..=4 {
            sem.add_permits(1);
            assert!(sem.try_acquire().is_none(), "newcomer overtook a waiter");
            eventually("granted waiter to run", || order.lock().len() == k);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2, 3]);
        assert_eq!(sem.state.load(Ordering::SeqCst), 0);
        sem.add_permits(5);
        assert_eq!(sem.available_permits(), 5);
    }

    #[test]
    #[should_panic(expected = "overflow")]
    fn overflow_panics() {
        let sem = Semaphore::new(Semaphore::MAX_PERMITS);
        sem.add_permits(1);
    }
}
