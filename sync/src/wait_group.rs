//! [`WaitGroup`]: wait for a collection of coroutines to finish, with Go's
//! `sync.WaitGroup` semantics.
//!
//! # Invariants
//!
//! `state` is `counter << 1 | WAITERS`:
//!
//! ```text
//!   bit 0      WAITERS  `queue` is not empty
//!   bits 1..   counter  outstanding `add`s not yet matched by `done`
//! ```
//!
//! 1. `WAITERS` mirrors "`queue` is not empty" whenever `queue`'s lock is
//!    not held; it changes only with that lock held. A waiter queues only in
//!    a CAS that saw a nonzero counter and sets `WAITERS`, with the lock
//!    held.
//! 2. The `done` that takes the counter from 1 to 0 while `WAITERS` is set
//!    does so with the queue's lock held, in the same critical section in
//!    which it empties the queue and marks every node `RELEASED`. So the
//!    nodes it releases are exactly those that waited for *this* zero: a
//!    waiter that arrives after a new `add` (reuse) cannot be released by a
//!    stale zero, and a released waiter returns even if the group is reused
//!    before it runs again (Go's `sync.WaitGroup` panics on that reuse
//!    race; here it is well defined).
//! 3. Every other change of the counter is a plain CAS; `done` at zero
//!    panics without changing anything.
//! 4. Ordering: `done` decrements with `Release` and `wait` reads the
//!    counter (or its node) with `Acquire`, so everything a worker did
//!    before its `done` is visible after `wait` returns.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro_runtime::JoinHandle;

use crate::waiter::{self, WaitNode};

const WAITERS: usize = 1;
const ONE: usize = 2;
const MAX_COUNT: usize = usize::MAX >> 1;

/// Node state: the counter reached zero.
const RELEASED: usize = 1;

struct Inner {
    state: AtomicUsize,
    queue: parking_lot::Mutex<Vec<Arc<WaitNode>>>,
    /// The testing bubble it belongs to (`bubble.rs`).
    bubble: crate::bubble::BubbleMark,
}

/// Waits for a collection of coroutines (or threads) to finish: Go's
/// `sync.WaitGroup`.
///
/// [`add`](WaitGroup::add) raises a counter, [`done`](WaitGroup::done)
/// lowers it by one, and [`wait`](WaitGroup::wait) parks until it is zero.
/// Clones share one counter (hand a clone to each worker). A group can be
/// reused: once `wait` has returned, `add` starts a new round.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use goro::sync::WaitGroup;
///
/// let wg = WaitGroup::new();
/// let hits = Arc::new(AtomicUsize::new(0));
/// for _ in 0..10 {
///     wg.add(1);
///     let (wg, hits) = (wg.clone(), hits.clone());
///     goro::go!(move || {
///         hits.fetch_add(1, Ordering::Relaxed);
///         wg.done();
///     });
/// }
/// wg.wait();
/// assert_eq!(hits.load(Ordering::Relaxed), 10);
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl WaitGroup {
    /// Creates a group with a zero counter.
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                state: AtomicUsize::new(0),
                queue: parking_lot::Mutex::new(Vec::new()),
                bubble: crate::bubble::BubbleMark::new(),
            }),
        }
    }

    /// Raises the counter by `n`. Call it before starting the work that
    /// will call [`done`](WaitGroup::done), not inside that work, or `wait`
    /// may return before the work has begun (as in Go).
    ///
    /// # Panics
    ///
    /// If the counter would overflow.
    ///
    /// ```
    /// let wg = goro::sync::WaitGroup::new();
    /// wg.add(2);
    /// wg.done();
    /// wg.done();
    /// wg.wait();
    /// ```
    #[track_caller]
    pub fn add(&self, n: usize) {
        self.inner.bubble.check("a goro::sync::WaitGroup");
        if n == 0 {
            return;
        }
        let state = &self.inner.state;
        let mut s = state.load(Ordering::Relaxed);
        loop {
            let count = match (s >> 1).checked_add(n) {
                Some(c) if c <= MAX_COUNT => c,
                _ => panic!("goro: WaitGroup counter overflow"),
            };
            match state.compare_exchange_weak(
                s,
                (count << 1) | (s & WAITERS),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// Lowers the counter by one; at zero, releases everybody in
    /// [`wait`](WaitGroup::wait).
    ///
    /// # Panics
    ///
    /// If the counter is already zero (more `done`s than `add`s, Go's
    /// "negative WaitGroup counter"); the counter stays at zero.
    ///
    /// ```should_panic
    /// let wg = goro::sync::WaitGroup::new();
    /// wg.done(); // panics: nothing was added
    /// ```
    #[track_caller]
    pub fn done(&self) {
        self.inner.bubble.check("a goro::sync::WaitGroup");
        let state = &self.inner.state;
        let mut s = state.load(Ordering::Relaxed);
        loop {
            if s >> 1 == 0 {
                negative();
            }
            if s == ONE | WAITERS {
                return self.release_waiters();
            }
            match state.compare_exchange_weak(s, s - ONE, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// Parks until the counter is zero. Returns at once if it is zero now.
    ///
    /// ```
    /// let wg = goro::sync::WaitGroup::new();
    /// wg.wait(); // nothing to wait for
    /// wg.add(1);
    /// let wg2 = wg.clone();
    /// goro::go!(move || wg2.done());
    /// wg.wait();
    /// ```
    #[track_caller]
    pub fn wait(&self) {
        let inner = &*self.inner;
        inner.bubble.check("a goro::sync::WaitGroup");
        if inner.state.load(Ordering::Acquire) >> 1 == 0 {
            return;
        }
        let mut queue = inner.queue.lock();
        let mut s = inner.state.load(Ordering::Acquire);
        loop {
            if s >> 1 == 0 {
                return;
            }
            match inner.state.compare_exchange_weak(
                s,
                s | WAITERS,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        let node = WaitNode::new();
        queue.push(node.clone());
        drop(queue);
        node.wait(goro_runtime::park::WaitKind::WaitGroup);
        WaitNode::recycle(node);
    }

    /// Runs `f` in a new coroutine, counted in the group: `add(1)` now,
    /// `done()` when `f` returns or panics (Go 1.25's `WaitGroup.Go`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let wg = goro::sync::WaitGroup::new();
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..5 {
    ///     let n = n.clone();
    ///     wg.go(move || {
    ///         n.fetch_add(1, Ordering::Relaxed);
    ///     });
    /// }
    /// wg.wait();
    /// assert_eq!(n.load(Ordering::Relaxed), 5);
    /// ```
    pub fn go<F>(&self, f: F) -> JoinHandle<()>
    where
        F: FnOnce() + Send + 'static,
    {
        struct Done(WaitGroup);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.done();
            }
        }
        self.add(1);
        let done = Done(self.clone());
        goro_runtime::spawn(move || {
            let _done = done;
            f();
        })
    }

    /// The last `done` with waiters queued (invariant 2).
    #[cold]
    #[inline(never)]
    fn release_waiters(&self) {
        let inner = &*self.inner;
        let mut queue = inner.queue.lock();
        let mut s = inner.state.load(Ordering::Relaxed);
        loop {
            if s >> 1 == 0 {
                drop(queue);
                negative();
            }
            let new = if s >> 1 == 1 { 0 } else { s - ONE };
            match inner
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        if s >> 1 != 1 {
            // Someone added meanwhile: not the last `done` after all.
            return;
        }
        let woken = std::mem::take(&mut *queue);
        for w in &woken {
            w.set(RELEASED);
        }
        drop(queue);
        waiter::unpark_all(woken);
    }
}

#[cold]
fn negative() -> ! {
    panic!("goro: WaitGroup::done called more times than add (negative WaitGroup counter)")
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

// A panic anywhere leaves the WaitGroup consistent (it holds no user data and
// its internal lock does not poison), so observing it after a caught panic
// is fine, as with std's types.
impl std::panic::UnwindSafe for WaitGroup {}
impl std::panic::RefUnwindSafe for WaitGroup {}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &(self.inner.state.load(Ordering::Relaxed) >> 1))
            .finish()
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

    /// A waiter released by a zero returns even if the group is reused
    /// (counter raised again) before the waiter gets to run.
    #[test]
    fn released_waiter_survives_reuse() {
        let wg = WaitGroup::new();
        wg.add(1);
        let wg2 = wg.clone();
        let h = std::thread::spawn(move || wg2.wait());
        eventually("waiter to queue", || {
            wg.inner.state.load(Ordering::SeqCst) & WAITERS != 0
        });
        wg.done();
        wg.add(1);
        h.join().unwrap();
        assert_eq!(wg.inner.state.load(Ordering::SeqCst), ONE);
        wg.done();
        wg.wait();
    }

    #[test]
    fn done_below_zero_leaves_zero() {
        let wg = WaitGroup::new();
        let r = std::panic::catch_unwind(|| wg.done());
        let msg = *r.unwrap_err().downcast::<&str>().unwrap();
        assert!(msg.contains("negative WaitGroup counter"), "{msg}");
        assert_eq!(wg.inner.state.load(Ordering::SeqCst), 0);
        wg.add(1);
        wg.done();
        wg.wait();
    }
}
