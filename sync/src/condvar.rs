//! [`Condvar`]: wait for a condition protected by a [`Mutex`], parking the
//! coroutine.
//!
//! Go's `sync.Cond` keeps a ticket-numbered list of waiters
//! (`notifyList` in `runtime/sema.go`) so that `Signal` wakes the longest
//! waiting goroutine and nothing that started waiting after it. Here each
//! waiter is a heap node in a FIFO queue, which gives the same guarantee.
//!
//! # Invariants
//!
//! 1. `wait` queues its node *before* it releases the mutex. A notifier
//!    that changed the condition under the mutex and then notifies (with
//!    or without the mutex held) therefore finds every waiter that saw the
//!    old condition: no lost wake-up.
//! 2. `len` equals `queue.len()` whenever `queue`'s lock is not held; it
//!    lets `notify_*` return without locking when nobody waits. Reading it
//!    is ordered after the waiter's queueing by the mutex (invariant 1):
//!    the waiter queued, then released the mutex; the notifier took the
//!    mutex afterwards, or was told through something that did.
//! 3. A node leaves the queue in exactly one way, with the queue's lock
//!    held: popped by `notify_*`, which sets it `NOTIFIED`, or removed by
//!    its own waiter after a timeout, which then reports `timed_out()`. A
//!    waiter whose deadline passed but whose node was already popped was
//!    notified: it reports no timeout, so no notification is lost.
//! 4. `notify_one` wakes exactly one waiter (the longest waiting) if any
//!    waits; `notify_all` wakes every waiter queued when it took the lock.
//!    A woken waiter never returns before it holds the mutex again, and
//!    `wait` has no spurious wake-ups (park's are absorbed by the node), but
//!    callers should still re-check their condition in a loop: another
//!    party may change it between the notification and the relock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::mutex::{MutexGuard, RawMutex};
use crate::waiter::{self, WAITING, WaitNode};

/// Node state: a `notify_*` call took this waiter off the queue.
const NOTIFIED: usize = 1;

/// A condition variable: coroutines and threads wait on it, holding a
/// [`Mutex`](crate::Mutex), until another party notifies it.
///
/// Waiting releases the mutex and parks the coroutine (or blocks the
/// thread); being notified relocks the mutex before returning.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use goro::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = Arc::clone(&pair);
/// goro::go!(move || {
///     let (ready, cv) = &*pair2;
///     *ready.lock() = true;
///     cv.notify_one();
/// });
/// let (ready, cv) = &*pair;
/// let mut guard = ready.lock();
/// while !*guard {
///     cv.wait(&mut guard);
/// }
/// ```
pub struct Condvar {
    len: AtomicUsize,
    queue: parking_lot::Mutex<VecDeque<Arc<WaitNode>>>,
    /// The testing bubble it belongs to (`bubble.rs`).
    bubble: crate::bubble::BubbleMark,
}

/// Whether a timed wait on a [`Condvar`] returned because time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because the timeout elapsed, `false` if it
    /// was notified.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// Relocks the mutex when dropped, so that even an unwinding `wait` leaves
/// the caller's guard holding the lock it believes it holds.
struct Relock<'a>(&'a RawMutex);

impl Drop for Relock<'_> {
    fn drop(&mut self) {
        self.0.lock();
    }
}

impl Condvar {
    /// Creates a condition variable with no waiters.
    ///
    /// ```
    /// static CV: goro::sync::Condvar = goro::sync::Condvar::new();
    /// assert_eq!(CV.notify_all(), 0); // nobody waits: does nothing
    /// ```
    pub const fn new() -> Condvar {
        Condvar {
            len: AtomicUsize::new(0),
            queue: parking_lot::Mutex::new(VecDeque::new()),
            bubble: crate::bubble::BubbleMark::new(),
        }
    }

    /// Releases the guard's mutex, parks until notified, and takes the
    /// mutex again before returning.
    ///
    /// Does not wake spuriously, but a condition can change again between
    /// the notification and the relock, so wait in a loop (or use
    /// [`wait_while`](Condvar::wait_while)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let state = Arc::new((Mutex::new(0), Condvar::new()));
    /// let s = Arc::clone(&state);
    /// let h = goro::go!(move || {
    ///     let (count, cv) = &*s;
    ///     let mut n = count.lock();
    ///     while *n < 3 {
    ///         cv.wait(&mut n);
    ///     }
    /// });
    /// for _ in 0..3 {
    ///     *state.0.lock() += 1;
    ///     state.1.notify_all();
    /// }
    /// h.join().unwrap();
    /// ```
    #[track_caller]
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        let raw = guard.mutex().raw();
        let node = self.enqueue();
        // SAFETY: the guard proves the mutex is held; `Relock` takes it
        // again before the guard can be used or dropped.
        unsafe { raw.unlock() };
        let _relock = Relock(raw);
        node.wait(goro_runtime::park::WaitKind::CondvarWait);
        WaitNode::recycle(node);
    }

    /// Like [`wait`](Condvar::wait), but returns after about `timeout` if
    /// not notified by then; the result tells which happened. The mutex is
    /// held again on return either way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let m = Mutex::new(());
    /// let cv = Condvar::new();
    /// let mut g = m.lock();
    /// assert!(cv.wait_timeout(&mut g, Duration::from_millis(5)).timed_out());
    /// ```
    #[track_caller]
    pub fn wait_timeout<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        match goro_runtime::testing::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(guard, deadline),
            None => {
                self.wait(guard);
                WaitTimeoutResult(false)
            }
        }
    }

    /// Waits while `condition` holds for the protected data: returns, with
    /// the mutex held, once it is `false`. Checks before the first wait.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let queue = Arc::new((Mutex::new(Vec::<u32>::new()), Condvar::new()));
    /// let q = Arc::clone(&queue);
    /// goro::go!(move || {
    ///     q.0.lock().push(7);
    ///     q.1.notify_one();
    /// });
    /// let mut items = queue.0.lock();
    /// queue.1.wait_while(&mut items, |items| items.is_empty());
    /// assert_eq!(items.pop(), Some(7));
    /// ```
    #[track_caller]
    pub fn wait_while<T: ?Sized, F>(&self, guard: &mut MutexGuard<'_, T>, mut condition: F)
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut **guard) {
            self.wait(guard);
        }
    }

    /// Like [`wait_while`](Condvar::wait_while), but gives up after about
    /// `timeout` in all; then `timed_out()` is `true` and the condition
    /// still held at the last check.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let m = Mutex::new(0);
    /// let cv = Condvar::new();
    /// let mut g = m.lock();
    /// let r = cv.wait_timeout_while(&mut g, Duration::from_millis(5), |n| *n == 0);
    /// assert!(r.timed_out());
    /// ```
    #[track_caller]
    pub fn wait_timeout_while<T: ?Sized, F>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
        mut condition: F,
    ) -> WaitTimeoutResult
    where
        F: FnMut(&mut T) -> bool,
    {
        let Some(deadline) = goro_runtime::testing::now().checked_add(timeout) else {
            self.wait_while(guard, condition);
            return WaitTimeoutResult(false);
        };
        while condition(&mut **guard) {
            if self.wait_deadline(guard, deadline).timed_out() {
                return WaitTimeoutResult(condition(&mut **guard));
            }
        }
        WaitTimeoutResult(false)
    }

    /// Waits until notified or until `deadline`, whichever comes first;
    /// the mutex is held again on return either way. parking_lot's
    /// `Condvar::wait_until`: `timed_out()` is `true` only if no
    /// notification reached this waiter (a notification racing the
    /// deadline counts as a notification, never lost).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let m = Mutex::new(false);
    /// let cv = Condvar::new();
    /// let mut ready = m.lock();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// while !*ready {
    ///     if cv.wait_until(&mut ready, deadline).timed_out() {
    ///         break;
    ///     }
    /// }
    /// assert!(!*ready);
    /// ```
    pub fn wait_until<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        self.wait_deadline(guard, deadline)
    }

    /// Waits until notified or for about `timeout` (parking_lot's
    /// `Condvar::wait_for`; the same as
    /// [`wait_timeout`](Condvar::wait_timeout)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let m = Mutex::new(());
    /// let cv = Condvar::new();
    /// let mut g = m.lock();
    /// assert!(cv.wait_for(&mut g, Duration::from_millis(2)).timed_out());
    /// ```
    pub fn wait_for<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        self.wait_timeout(guard, timeout)
    }

    /// Waits while `condition` holds, until `deadline` at the latest
    /// (parking_lot's `Condvar::wait_while_until`); `timed_out()` is `true`
    /// if the condition still held when time ran out.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let m = Mutex::new(0);
    /// let cv = Condvar::new();
    /// let mut g = m.lock();
    /// let deadline = Instant::now() + Duration::from_millis(2);
    /// assert!(cv.wait_while_until(&mut g, |n| *n == 0, deadline).timed_out());
    /// ```
    pub fn wait_while_until<T: ?Sized, F>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        mut condition: F,
        deadline: Instant,
    ) -> WaitTimeoutResult
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut **guard) {
            if self.wait_deadline(guard, deadline).timed_out() {
                return WaitTimeoutResult(condition(&mut **guard));
            }
        }
        WaitTimeoutResult(false)
    }

    /// Waits while `condition` holds, for about `timeout` at most
    /// (parking_lot's `Condvar::wait_while_for`; note the argument order,
    /// which is parking_lot's, not that of
    /// [`wait_timeout_while`](Condvar::wait_timeout_while)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::sync::{Condvar, Mutex};
    ///
    /// let m = Mutex::new(1);
    /// let cv = Condvar::new();
    /// let mut g = m.lock();
    /// // The condition is already false: returns at once, no timeout.
    /// let r = cv.wait_while_for(&mut g, |n| *n == 0, Duration::from_secs(60));
    /// assert!(!r.timed_out());
    /// ```
    pub fn wait_while_for<T: ?Sized, F>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        condition: F,
        timeout: Duration,
    ) -> WaitTimeoutResult
    where
        F: FnMut(&mut T) -> bool,
    {
        self.wait_timeout_while(guard, timeout, condition)
    }

    /// Wakes the coroutine or thread that has waited longest, if any, and
    /// says whether there was one (parking_lot's `notify_one -> bool`).
    /// The waiter woken has been taken off the queue: it will return from
    /// its wait as notified, even if its deadline passes meanwhile.
    ///
    /// ```
    /// let cv = goro::sync::Condvar::new();
    /// // No waiter: nothing happens, nothing is remembered.
    /// assert!(!cv.notify_one());
    /// ```
    #[track_caller]
    pub fn notify_one(&self) -> bool {
        self.bubble.check("a goro::sync::Condvar");
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut queue = self.queue.lock();
        let Some(w) = queue.pop_front() else {
            return false;
        };
        self.len.store(queue.len(), Ordering::Relaxed);
        w.set(NOTIFIED);
        drop(queue);
        w.unpark();
        true
    }

    /// Wakes every coroutine and thread waiting now, and returns how many
    /// that was (parking_lot's `notify_all -> usize`).
    ///
    /// ```
    /// let cv = goro::sync::Condvar::new();
    /// assert_eq!(cv.notify_all(), 0);
    /// ```
    #[track_caller]
    pub fn notify_all(&self) -> usize {
        self.bubble.check("a goro::sync::Condvar");
        if self.len.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut queue = self.queue.lock();
        let woken = std::mem::take(&mut *queue);
        self.len.store(0, Ordering::Relaxed);
        for w in &woken {
            w.set(NOTIFIED);
        }
        drop(queue);
        let n = woken.len();
        waiter::unpark_all(woken);
        n
    }

    #[track_caller]
    fn enqueue(&self) -> Arc<WaitNode> {
        self.bubble.check("a goro::sync::Condvar");
        let node = WaitNode::new();
        let mut queue = self.queue.lock();
        queue.push_back(node.clone());
        self.len.store(queue.len(), Ordering::Release);
        node
    }

    #[track_caller]
    fn wait_deadline<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        let raw = guard.mutex().raw();
        let node = self.enqueue();
        // SAFETY: the guard proves the mutex is held; `Relock` takes it
        // again before the guard can be used or dropped.
        unsafe { raw.unlock() };
        let _relock = Relock(raw);
        let timed_out = node.wait_deadline(deadline, goro_runtime::park::WaitKind::CondvarWait)
            == WAITING
            && self.leave(&node);
        WaitNode::recycle(node);
        WaitTimeoutResult(timed_out)
    }

    /// After a timeout: takes `node` off the queue and returns `true`,
    /// unless a notifier took it first (invariant 3), then `false`.
    fn leave(&self, node: &Arc<WaitNode>) -> bool {
        let mut queue = self.queue.lock();
        if node.state() != WAITING {
            return false;
        }
        let at = queue
            .iter()
            .position(|w| Arc::ptr_eq(w, node))
            .expect("goro: a waiting Condvar node is queued");
        drop(queue.remove(at));
        self.len.store(queue.len(), Ordering::Relaxed);
        true
    }

    #[cfg(test)]
    fn waiters(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

// A panic anywhere leaves the Condvar consistent (it holds no user data and
// its internal lock does not poison), so observing it after a caught panic
// is fine, as with std's types.
impl std::panic::UnwindSafe for Condvar {}
impl std::panic::RefUnwindSafe for Condvar {}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mutex;

    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    /// `notify_one` takes exactly one node off the queue, the oldest.
    #[test]
    fn notify_one_takes_exactly_one_in_order() {
        const N: usize = 5;
        let s = Arc::new((Mutex::new((0usize, Vec::new())), Condvar::new()));
        let mut hs = Vec::new();
        for i in 0..N {
            let s2 = s.clone();
            hs.push(goro_runtime::go!(move || {
                let (m, cv) = &*s2;
                let mut g = m.lock();
                g.0 += 1;
                cv.wait(&mut g);
                g.1.push(i);
            }));
            // Queue them one at a time so the order is known.
            eventually("waiter to queue", || s.1.waiters() == i + 1);
        }
        for k in 1..=N {
            s.1.notify_one();
            assert_eq!(s.1.waiters(), N - k);
            eventually("woken waiter to run", || s.0.lock().1.len() == k);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.0.lock().1, (0..N).collect::<Vec<_>>());
    }

    #[test]
    fn timeout_removes_node() {
        let m = Mutex::new(());
        let cv = Condvar::new();
        let mut g = m.lock();
        assert!(
            cv.wait_timeout(&mut g, Duration::from_millis(2))
                .timed_out()
        );
        assert_eq!(cv.waiters(), 0);
        assert!(cv.queue.lock().is_empty());
        // The mutex is held again.
        assert!(m.try_lock().is_none());
    }
}
