//! [`Mutex`]: a mutual-exclusion lock that parks the coroutine, not the
//! worker thread, with Go's barging-plus-starvation-mode fairness.
//!
//! The design is that of Go's `sync.Mutex` (`src/sync/mutex.go`), with the
//! semaphore replaced by a queue owned by the lock:
//!
//! - *Normal mode.* Waiters queue in FIFO order, but a woken waiter does not
//!   own the lock: it competes with newcomers, which are already running
//!   and usually win ("barging"). That keeps throughput high: the lock
//!   passes between running coroutines without a park/unpark round trip. A
//!   woken waiter that loses goes back to the *front* of the queue.
//! - *Starvation mode.* Once the waiter at the head of the queue has waited
//!   longer than [`STARVATION_THRESHOLD`] (1 ms, Go's value), `unlock`
//!   hands the lock *directly* to it: the lock never becomes free, so
//!   newcomers cannot barge, do not spin, and queue at the back. The lock
//!   stays in this mode while the waiters it serves have waited over the
//!   threshold, and leaves it when the queue empties or the head waited
//!   less. No waiter is therefore passed over for much longer than 1 ms
//!   plus the critical sections queued ahead of it.
//!
//! Both sides watch the clock. As in Go, a woken waiter that loses the race
//! again after waiting past the threshold switches the lock to starvation
//! mode itself. In addition, an unlock that wakes a waiter, and every 64th
//! contended unlock on a thread otherwise, looks at how long the head has
//! waited: in a cooperatively scheduled runtime a woken coroutine on the
//! same worker as a coroutine that keeps taking the lock without blocking
//! does not get to run at all, and the waiters behind it would not be
//! woken meanwhile. With the hand-off decided in `unlock`, the looping
//! coroutine's next `lock` finds the lock handed over and parks, and its
//! worker runs the others.
//!
//! # Invariants
//!
//! `state` is one word:
//!
//! ```text
//!   bit 0      LOCKED    the lock is held (or being handed to a waiter)
//!   bit 1      WOKEN     a waiter has been woken to compete, or a spinner
//!                        is about to take the lock: unlock need not wake
//!                        another one
//!   bit 2      STARVING  starvation mode: unlock hands the lock over
//!   bits 3..   waiters   number of nodes in `queue`
//! ```
//!
//! 1. The waiter count equals `queue.len()` whenever `queue`'s lock is not
//!    held: it is changed only with that lock held, together with the push
//!    or pop.
//! 2. A waiter queues only after it has seen `LOCKED` set in the same CAS
//!    that counts it (with the queue's lock held). The holder's unlock then
//!    cannot take the fast path (the count is not zero) and must take the
//!    queue's lock, which it gets only after the node is queued: no lost
//!    wake-up.
//! 3. `STARVING` is set only together with `LOCKED` and at least one
//!    waiter: by an unlock that hands the lock over (keeping `LOCKED`) to
//!    one of several waiters, or by a starving waiter in the CAS that
//!    counts it, which requires `LOCKED`. Waiters leave the queue only
//!    through unlocks, and an unlock in starvation mode always hands over,
//!    clearing the bit when it serves the last waiter. So "not `LOCKED`"
//!    implies "not `STARVING`", and a lock in starvation mode is never free
//!    for a barging caller.
//! 4. At most one party owns `WOKEN`: the waiter an unlock woke (the unlock
//!    sets the bit in the same CAS that dequeues it), or a spinner that set
//!    it. The owner clears it in its next successful CAS, whether that CAS
//!    takes the lock or queues it again, and by invariant 2 it queues only
//!    while the lock is held, so the holder's unlock wakes the next waiter.
//! 5. A queued node is woken exactly once, by the unlock that pops it, with
//!    `GRANTED` (it owns the lock; `LOCKED` was never cleared) or `RETRY`
//!    (it owns `WOKEN` and competes again). The pop and the state change
//!    happen with the queue's lock held (see `waiter.rs`).
//! 6. Fast paths: `lock` is one `fetch_or(LOCKED)` (`try_lock` too, after
//!    a plain load that fails it early while the lock is held): by
//!    invariant 3 a lock seen free is not reserved for a waiter, so setting
//!    the bit takes it, and setting a bit already set changes nothing.
//!    `unlock` reads the word (its line is already ours) and makes one CAS
//!    with that value: `LOCKED -> 0` with nobody queued, or in
//!    `unlock_slow` the change the other bits call for. Both stay one
//!    atomic read-modify-write while waiters are counted, which is most of
//!    the time under contention; a CAS that fails on a stale guess costs as
//!    much as one that succeeds. The slow unlock only frees the lock (no
//!    queue lock) when nobody needs waking: no waiters, or `WOKEN` is
//!    owned. It takes the queue's lock to wake or hand over.
//! 7. `owner` names the holding coroutine for the leak report
//!    (`goro_runtime`'s `diag/owner.rs`): set after every successful take
//!    (a hand-over included: the waiter sets it when it returns), cleared
//!    at the start of every unlock, so it is 0 while the lock is free or
//!    in hand-over. A waiter records the lock in its wait slot once per
//!    `lock_slow` and clears it before returning. One relaxed store on
//!    each fast path, to a line the operation owns already.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::waiter::WaitNode;

const LOCKED: usize = 1;
const WOKEN: usize = 2;
const STARVING: usize = 4;
const WAITER_SHIFT: u32 = 3;
const ONE_WAITER: usize = 1 << WAITER_SHIFT;

/// Node state: the unlocker handed the lock to this waiter.
const GRANTED: usize = 1;
/// Node state: the unlocker woke this waiter to compete for the lock.
const RETRY: usize = 2;

/// How long the head of the queue may wait before unlock hands the lock to
/// it directly. Go's `starvationThresholdNs`: long enough that normal mode
/// (and its throughput) prevails under ordinary contention, short enough
/// that a tail latency of a millisecond is the worst a waiter sees from
/// barging.
pub const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);

/// Spin rounds before a contended `lock` queues; round `i` spins `2^i`
/// pause instructions (exponential backoff), so 7 rounds spin 127 pauses
/// in all, about 3 µs on the 2-core development machine (22 ns a pause).
/// A critical section held by a coroutine or thread running on another
/// core usually ends within that, and spinning through it is far cheaper
/// than a park/unpark round trip. A holder that is not running (it parked
/// while holding the lock, or is a coroutine queued on our own worker)
/// cannot release the lock while we spin, which is why the spin is short
/// and bounded. Measured with the 8-coroutine counter benchmark: no
/// spinning at all was clearly worse (a woken waiter that loses queues
/// again at once and the next unlock wakes another: a wake-up per few
/// locks), and 4 to 10 rounds, or Go's 4 rounds of 30 pauses, measured
/// the same within the noise.
/// (One round under loom, where a pause is a yield to the model.)
const SPIN_ROUNDS: u32 = if cfg!(loom) { 1 } else { 7 };

fn spin(round: u32) {
    for _ in 0..(1u32 << round) {
        crate::loom::spin_loop();
    }
}

/// How often (in contended unlocks on one thread) an unlock that finds a
/// waiter already woken still looks at the head of the queue. A woken
/// waiter normally detects its own starvation when it loses the race again;
/// but a woken coroutine queued on the same worker as a coroutine that
/// keeps taking the lock without ever blocking does not get to run at all,
/// and the waiters queued behind it are not woken meanwhile. Sampling every
/// 64th such unlock bounds that case by the starvation threshold plus 64
/// critical sections, and keeps the clock read (about 20 ns) off the
/// common path. A power of two, so the check is a mask.
#[cfg_attr(loom, allow(dead_code))]
const STARVATION_CHECK_INTERVAL: u32 = 64;

// Never inlined: its thread-local must not be cached across a park of a
// migratable coroutine (see `waiter.rs`).
#[cfg(not(loom))]
#[inline(never)]
fn starvation_check_due() -> bool {
    thread_local! {
        static TICK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n.is_multiple_of(STARVATION_CHECK_INTERVAL)
    })
}

/// Under loom a model must decide alike on every run: the switch that
/// stands for the clock (`loom::set_starving`) stands for this sampling.
#[cfg(loom)]
fn starvation_check_due() -> bool {
    crate::loom::waited(std::time::Instant::now(), STARVATION_THRESHOLD)
}

/// The lock without the data: the state word and the wait queue.
pub(crate) struct RawMutex {
    state: AtomicUsize,
    queue: crate::loom::sync::Mutex<VecDeque<Arc<WaitNode>>>,
    /// The holding coroutine, for `goro::leaks` (invariant 7).
    owner: goro_runtime::LockOwner,
}

impl RawMutex {
    const_unless_loom! {
        pub(crate) fn new() -> RawMutex {
            RawMutex {
                state: AtomicUsize::new(0),
                queue: crate::loom::sync::Mutex::new(VecDeque::new()),
                owner: goro_runtime::LockOwner::new(),
            }
        }
    }

    #[inline]
    #[track_caller]
    pub(crate) fn lock(&self) {
        // One atomic operation whether or not waiters are counted: setting
        // a bit that is already set changes nothing, and a lock seen free
        // here is not in starvation mode (invariant 3), so it is ours.
        let state = self.state.fetch_or(LOCKED, Ordering::Acquire);
        if state & LOCKED != 0 {
            self.lock_slow(state);
        }
        self.owner.acquired();
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        // Fail on a plain load when held, so that a caller polling a busy
        // lock reads its line instead of taking it from the holder; then as
        // in `lock` (a free lock is never in starvation mode).
        let taken = self.state.load(Ordering::Relaxed) & LOCKED == 0
            && self.state.fetch_or(LOCKED, Ordering::Acquire) & LOCKED == 0;
        if taken {
            self.owner.acquired();
        }
        taken
    }

    /// Releases the lock.
    ///
    /// # Safety
    ///
    /// The caller holds the lock (it need not be the party that took it).
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // Read first (the line is ours: we just took the lock), so that the
        // one compare-and-swap, here or in `unlock_slow`, is made with the
        // right expected value even while waiters are counted; a failed
        // swap costs as much as a successful one.
        self.owner.released();
        let state = self.state.load(Ordering::Relaxed);
        if state == LOCKED {
            match self
                .state
                .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(s) => return self.unlock_slow(s),
            }
        }
        self.unlock_slow(state);
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn lock_slow(&self, state: usize) {
        let mut node = None;
        self.owner.wait_begin();
        self.lock_contended(state, &mut node);
        self.owner.wait_end();
        if let Some(node) = node {
            WaitNode::recycle(node);
        }
    }

    /// `lock_slow`'s loop; leaves the node it queued, if any, in `node`.
    #[track_caller]
    fn lock_contended(&self, mut state: usize, node: &mut Option<Arc<WaitNode>>) {
        // Whether we own WOKEN (invariant 4) and must clear it in our next
        // successful CAS.
        let mut woken = false;
        let mut spins = 0;
        loop {
            // Free, and so not in starvation mode (invariant 3): barge.
            if state & LOCKED == 0 {
                let mut new = state | LOCKED;
                if woken {
                    new &= !WOKEN;
                }
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(s) => state = s,
                }
                continue;
            }
            // Held in normal mode: spin a little, announcing ourselves
            // through WOKEN so that the unlock does not wake a queued
            // waiter we are about to beat anyway (Go does the same).
            if state & STARVING == 0 && spins < SPIN_ROUNDS {
                if !woken && state & WOKEN == 0 && state >> WAITER_SHIFT != 0 {
                    match self.state.compare_exchange_weak(
                        state,
                        state | WOKEN,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => woken = true,
                        Err(s) => {
                            state = s;
                            continue;
                        }
                    }
                }
                spin(spins);
                spins += 1;
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            // Queue up: at the back the first time, at the front after
            // losing a race (we have waited longest; Go's LIFO requeue).
            let requeue = node.is_some();
            let node = node.get_or_insert_with(WaitNode::new);
            // A woken waiter that lost the race and has waited long enough
            // switches the lock to starvation mode itself, as Go's does.
            let starving = requeue && crate::loom::waited(node.since(), STARVATION_THRESHOLD);
            let mut queue = self.queue.lock();
            state = self.state.load(Ordering::Relaxed);
            let counted = loop {
                if state & LOCKED == 0 {
                    break false;
                }
                let mut new = state + ONE_WAITER;
                if woken {
                    new &= !WOKEN;
                }
                if starving {
                    // LOCKED is set and we are counted: invariant 3 holds.
                    new |= STARVING;
                }
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break true,
                    Err(s) => state = s,
                }
            };
            if !counted {
                // Released meanwhile: go and take it.
                continue;
            }
            // (Our WOKEN, if we had it, went in the CAS above.)
            node.rearm();
            if requeue {
                queue.push_front(node.clone());
            } else {
                queue.push_back(node.clone());
            }
            drop(queue);
            if node.wait(goro_runtime::park::WaitKind::MutexLock) == GRANTED {
                // Handed over: LOCKED was never cleared, and the node's
                // state carried the previous holder's writes (Acquire).
                return;
            }
            // RETRY: we own WOKEN now.
            woken = true;
            spins = 0;
            state = self.state.load(Ordering::Relaxed);
        }
    }

    #[cold]
    #[inline(never)]
    fn unlock_slow(&self, mut state: usize) {
        loop {
            debug_assert!(state & LOCKED != 0, "goro: unlock of an unlocked Mutex");
            // Normal mode with nobody to wake (no waiters, or one is already
            // on its way): just free the lock, without the queue's lock.
            // Every so often, with waiters queued behind a woken one, take
            // the queue's lock anyway to look at how long the head has
            // waited (see `starvation_check_due`).
            let waiters = state >> WAITER_SHIFT;
            if state & STARVING != 0
                || (waiters != 0 && (state & WOKEN == 0 || starvation_check_due()))
            {
                return self.unlock_queued();
            }
            match self.state.compare_exchange_weak(
                state,
                state & !LOCKED,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
    }

    /// Unlock with the queue's lock held: hand the lock to a starving head
    /// of the queue, or free it and wake the head to compete.
    fn unlock_queued(&self) {
        let mut queue = self.queue.lock();
        let head_starved = queue
            .front()
            .is_some_and(|w| crate::loom::waited(w.since(), STARVATION_THRESHOLD));
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let waiters = state >> WAITER_SHIFT;
            debug_assert_eq!(waiters, queue.len());
            if waiters > 0 && (state & STARVING != 0 || head_starved) {
                // Hand the lock to the head: LOCKED stays set. Stay in
                // starvation mode while the waiters served have waited over
                // the threshold and more are queued (Go's exit rule).
                let mut new = state - ONE_WAITER;
                if waiters > 1 && head_starved {
                    new |= STARVING;
                } else {
                    new &= !STARVING;
                }
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let w = queue.pop_front().expect("counted waiter");
                        w.set(GRANTED);
                        drop(queue);
                        w.unpark();
                        return;
                    }
                    Err(s) => state = s,
                }
            } else {
                // Normal mode: free the lock and, unless somebody is already
                // on the way to take it, wake the head to compete.
                let wake = waiters > 0 && state & WOKEN == 0;
                let mut new = state & !LOCKED;
                if wake {
                    new = (new - ONE_WAITER) | WOKEN;
                }
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        if wake {
                            let w = queue.pop_front().expect("counted waiter");
                            w.set(RETRY);
                            drop(queue);
                            w.unpark();
                        }
                        return;
                    }
                    Err(s) => state = s,
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> usize {
        self.state.load(Ordering::Relaxed)
    }
}

/// A mutual-exclusion lock protecting a `T`, for coroutines and threads.
///
/// `lock` parks the calling coroutine while another party holds the lock
/// (its worker thread runs other coroutines meanwhile); called on a plain
/// OS thread, it blocks the thread. Coroutines and threads may contend on
/// the same `Mutex`.
///
/// The lock is released when the [`MutexGuard`] is dropped, including
/// during a panic: there is no poisoning, the next `lock` simply succeeds
/// (check your invariants yourself if a panic can leave the data half
/// updated).
///
/// Fairness follows Go's `sync.Mutex`: uncontended, taking and releasing the
/// lock is one atomic instruction each; under contention running callers
/// may overtake parked ones, which keeps throughput high, but a waiter that
/// has waited longer than 1 ms gets the lock handed over directly, so no
/// waiter starves.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use goro::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0u64));
/// let handles: Vec<_> = (0..8)
///     .map(|_| {
///         let counter = Arc::clone(&counter);
///         goro::go!(move || {
///             for _ in 0..1000 {
///                 *counter.lock() += 1;
///             }
///         })
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(*counter.lock(), 8000);
/// ```
///
/// A `static` lock (the constructor is `const`):
///
/// ```
/// use goro::sync::Mutex;
///
/// static NAMES: Mutex<Vec<&str>> = Mutex::new(Vec::new());
/// NAMES.lock().push("gopher");
/// assert_eq!(NAMES.lock().len(), 1);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    /// The testing bubble it belongs to (`bubble.rs`).
    bubble: crate::bubble::BubbleMark,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex owns its `T`; sending the mutex sends the `T`, which
// needs `T: Send`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: sharing the mutex lets any thread take the lock and then get a
// `&mut T` (moving the value out with `mem::replace`, say), one party at a
// time; that is sending the `T`, so `T: Send` is required, and enough,
// since the lock excludes simultaneous access (as for std's `Mutex`).
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    const_unless_loom! {
        /// Creates an unlocked mutex holding `value`.
        ///
        /// ```
        /// let m = goro::sync::Mutex::new(5);
        /// assert_eq!(*m.lock(), 5);
        /// ```
        pub fn new(value: T) -> Mutex<T> {
            Mutex {
                raw: RawMutex::new(),
                bubble: crate::bubble::BubbleMark::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the mutex and returns the data. No lock is needed: owning
    /// the mutex proves nobody else can hold it.
    ///
    /// ```
    /// let m = goro::sync::Mutex::new(String::from("go"));
    /// m.lock().push_str("ro");
    /// assert_eq!(m.into_inner(), "goro");
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Takes the lock, parking the coroutine (or blocking the thread) until
    /// it is available, and returns a guard that releases it when dropped.
    ///
    /// Taking a lock the caller already holds deadlocks, as in Go.
    ///
    /// ```
    /// let m = goro::sync::Mutex::new(vec![1, 2]);
    /// m.lock().push(3);
    /// assert_eq!(*m.lock(), [1, 2, 3]);
    /// ```
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.bubble.check("a goro::sync::Mutex");
        self.raw.lock();
        MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock if it is free right now; never waits.
    ///
    /// ```
    /// let m = goro::sync::Mutex::new(1);
    /// let g = m.lock();
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert_eq!(*m.try_lock().unwrap(), 1);
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.bubble.check("a goro::sync::Mutex");
        self.raw.try_lock().then(|| MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        })
    }

    /// Returns a mutable reference to the data. No lock is needed: the
    /// exclusive borrow proves nobody else can hold it.
    ///
    /// ```
    /// let mut m = goro::sync::Mutex::new(0);
    /// *m.get_mut() = 10;
    /// assert_eq!(*m.lock(), 10);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Proof that a [`Mutex`] is held: dereferences to the data and releases
/// the lock when dropped.
///
/// Like std's guard it is not `Send` (keep it in the coroutine or thread
/// that locked; a coroutine never changes threads, so holding a guard
/// across a park is fine). It is `Sync` when `T` is.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives out `&T`, so sharing it across threads
// needs exactly `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Makes a guard for a part of the locked data (a field, an element),
    /// as parking_lot's `MutexGuard::map` does. The lock stays held until
    /// the [`MappedMutexGuard`] is dropped. An associated function
    /// (`MutexGuard::map(guard, ..)`), so that it cannot shadow a method
    /// of `T`.
    ///
    /// A mapped guard cannot be used with a [`Condvar`](crate::Condvar):
    /// the condvar needs the whole mutex back to relock it.
    ///
    /// If `f` panics the guard is dropped and the lock released.
    ///
    /// ```
    /// use goro::sync::{MappedMutexGuard, Mutex, MutexGuard};
    ///
    /// struct Server {
    ///     name: String,
    ///     hits: u64,
    /// }
    /// let m = Mutex::new(Server { name: "api".into(), hits: 0 });
    /// let mut hits: MappedMutexGuard<'_, u64> = MutexGuard::map(m.lock(), |s| &mut s.hits);
    /// *hits += 1;
    /// drop(hits);
    /// assert_eq!(m.lock().hits, 1);
    /// assert_eq!(m.lock().name, "api");
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let mutex = s.mutex;
        // SAFETY: `s` proves the lock is held and is consumed here, so this
        // is the only reference to the data; the lock stays held (`s` is
        // forgotten below, after `f` returned) and passes to the mapped
        // guard, which releases it once.
        let data: *mut U = f(unsafe { &mut *mutex.data.get() });
        std::mem::forget(s);
        MappedMutexGuard {
            raw: &mutex.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](MutexGuard::map), but `f` may decline: then the
    /// original guard comes back in `Err` (parking_lot's
    /// `MutexGuard::try_map`).
    ///
    /// ```
    /// use goro::sync::{Mutex, MutexGuard};
    ///
    /// let m = Mutex::new(vec![1, 2]);
    /// let first = MutexGuard::try_map(m.lock(), |v| v.first_mut());
    /// assert_eq!(*first.ok().unwrap(), 1);
    /// let tenth = MutexGuard::try_map(m.lock(), |v| v.get_mut(10));
    /// assert_eq!(tenth.err().unwrap().len(), 2); // the whole guard back
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let mutex = s.mutex;
        // SAFETY: as in `map`; when `f` declines, the reference it got is
        // gone and `s` is handed back still holding the lock.
        let data: *mut U = match f(unsafe { &mut *mutex.data.get() }) {
            Some(d) => d,
            None => return Err(s),
        };
        std::mem::forget(s);
        Ok(MappedMutexGuard {
            raw: &mutex.raw,
            data,
            _marker: PhantomData,
        })
    }

    /// Releases the lock, runs `f`, and takes the lock again before
    /// returning (parking_lot's `MutexGuard::unlocked`): for a slow step
    /// (a send, a socket write) in the middle of a critical section.
    ///
    /// ```
    /// use goro::sync::{Mutex, MutexGuard};
    ///
    /// let m = Mutex::new(0);
    /// let mut g = m.lock();
    /// *g += 1;
    /// MutexGuard::unlocked(&mut g, || assert!(m.try_lock().is_some()));
    /// *g += 1;
    /// assert_eq!(*g, 2);
    /// ```
    pub fn unlocked<F, U>(s: &mut Self, f: F) -> U
    where
        F: FnOnce() -> U,
    {
        struct Relock<'a>(&'a RawMutex);
        impl Drop for Relock<'_> {
            fn drop(&mut self) {
                self.0.lock();
            }
        }
        // SAFETY: the guard proves the lock is held; `Relock` takes it
        // again (even if `f` panics) before the guard can be used or
        // dropped.
        unsafe { s.mutex.raw.unlock() };
        let _relock = Relock(&s.mutex.raw);
        f()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no `&mut T` exists
        // elsewhere.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held and we borrow the guard
        // mutably, so this is the only reference to the data.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard exists only while its lock is held, and is
        // dropped once.
        unsafe { self.mutex.raw.unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A guard for a part of a [`Mutex`]'s data, made by
/// [`MutexGuard::map`]: dereferences to that part and releases the lock
/// when dropped. parking_lot's type of the same name.
///
/// Not `Send`, like [`MutexGuard`]; `Sync` when `T` is.
///
/// ```
/// use goro::sync::{MappedMutexGuard, Mutex, MutexGuard};
///
/// let m = Mutex::new((String::from("a"), 1));
/// let mut name: MappedMutexGuard<'_, String> = MutexGuard::map(m.lock(), |t| &mut t.0);
/// name.push('b');
/// assert!(m.try_lock().is_none(), "the mapped guard holds the lock");
/// drop(name);
/// assert_eq!(m.lock().0, "ab");
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MappedMutexGuard<'a, T: ?Sized> {
    raw: &'a RawMutex,
    data: *mut T,
    /// Borrows the data mutably for `'a` (variance, auto traits: not
    /// `Send`, since `*mut T` is not).
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: a shared mapped guard only gives out `&T`, so sharing it across
// threads needs exactly `T: Sync` (as for `MutexGuard`).
unsafe impl<T: ?Sized + Sync> Sync for MappedMutexGuard<'_, T> {}

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Narrows the guard further, like [`MutexGuard::map`].
    ///
    /// ```
    /// use goro::sync::{MappedMutexGuard, Mutex, MutexGuard};
    ///
    /// let m = Mutex::new(((1, 2), 3));
    /// let inner = MutexGuard::map(m.lock(), |t| &mut t.0);
    /// let mut two = MappedMutexGuard::map(inner, |p| &mut p.1);
    /// *two = 20;
    /// drop(two);
    /// assert_eq!(*m.lock(), ((1, 20), 3));
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let raw = s.raw;
        // SAFETY: `s` proves the lock is held and points at data under it;
        // it is consumed, so this is the only reference. The lock passes to
        // the new guard (`s` is forgotten after `f` returned).
        let data: *mut U = f(unsafe { &mut *s.data });
        std::mem::forget(s);
        MappedMutexGuard {
            raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](MappedMutexGuard::map), but `f` may decline and the
    /// guard comes back in `Err`.
    ///
    /// ```
    /// use goro::sync::{MappedMutexGuard, Mutex, MutexGuard};
    ///
    /// let m = Mutex::new((vec![5], 0));
    /// let v = MutexGuard::map(m.lock(), |t| &mut t.0);
    /// let v = MappedMutexGuard::try_map(v, |v| v.get_mut(3)).err().unwrap();
    /// assert_eq!(*MappedMutexGuard::map(v, |v| &mut v[0]), 5);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let raw = s.raw;
        // SAFETY: as in `map`; when `f` declines, `s` is handed back.
        let data: *mut U = match f(unsafe { &mut *s.data }) {
            Some(d) => d,
            None => return Err(s),
        };
        std::mem::forget(s);
        Ok(MappedMutexGuard {
            raw,
            data,
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for MappedMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, and `data` points into the data
        // it protects (made from the exclusive reference `map` was given).
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for MappedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and the guard is borrowed mutably, so this
        // is the only reference.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for MappedMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the mapped guard took over the lock from the guard it was
        // made from, and is dropped once.
        unsafe { self.raw.unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MappedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    /// Waits (bounded) until `cond` holds, yielding in between.
    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn fast_paths_leave_state_clean() {
        let m = Mutex::new(1);
        {
            let _g = m.lock();
            assert_eq!(m.raw.state(), LOCKED);
        }
        assert_eq!(m.raw.state(), 0);
        assert!(m.try_lock().is_some());
        assert_eq!(m.raw.state(), 0);
    }

    #[test]
    fn waiter_is_counted_then_woken() {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        let m2 = m.clone();
        let h = std::thread::spawn(move || *m2.lock() += 1);
        eventually("the waiter to queue", || m.raw.state() >> WAITER_SHIFT == 1);
        drop(g);
        h.join().unwrap();
        assert_eq!(*m.lock(), 1);
        assert_eq!(m.raw.state(), 0);
    }

    /// Starvation mode: a waiter that has waited over the threshold gets the
    /// lock handed over, so even a caller that is running right at unlock
    /// cannot barge past it.
    #[test]
    fn starved_waiter_gets_handoff() {
        let m = Arc::new(Mutex::new(Vec::new()));
        let g = m.lock();
        let got = Arc::new(AtomicBool::new(false));
        let (m2, got2) = (m.clone(), got.clone());
        let h = goro_runtime::go!(move || {
            m2.lock().push("waiter");
            got2.store(true, Ordering::SeqCst);
        });
        eventually("the waiter to queue", || m.raw.state() >> WAITER_SHIFT == 1);
        // Not a race: handoff needs *at least* the threshold, and sleep
        // never returns early.
        std::thread::sleep(STARVATION_THRESHOLD * 2);
        drop(g);
        // The lock went straight to the waiter: it is still held, or (if
        // this thread was descheduled meanwhile) the waiter is done with it.
        match m.try_lock() {
            Some(mut g) => {
                assert_eq!(*g, ["waiter"], "the lock was free for barging");
                g.push("main");
            }
            None => m.lock().push("main"),
        }
        h.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        assert_eq!(*m.lock(), ["waiter", "main"]);
        assert_eq!(m.raw.state(), 0);
    }

    #[test]
    fn panic_releases_without_poison() {
        let m = Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*m.lock(), 5);
    }

    #[test]
    fn debug_shows_locked() {
        let m = Mutex::new(3);
        assert_eq!(format!("{m:?}"), "Mutex { data: 3, .. }");
        let _g = m.lock();
        assert_eq!(format!("{m:?}"), "Mutex { data: <locked>, .. }");
    }

    #[test]
    fn unsized_and_default() {
        let m: &Mutex<[u8]> = &Mutex::new([1u8, 2, 3]);
        m.lock()[0] = 9;
        assert_eq!(&*m.lock(), &[9, 2, 3]);
        let d: Mutex<Vec<u8>> = Mutex::default();
        assert!(d.into_inner().is_empty());
    }
}

/// Model checks of the lock word (run with `.ci/loom`): two or three
/// threads take the real `Mutex` (its fast paths, spinning, queueing,
/// waking and hand-off, parking through `goro_runtime::park`) around a
/// counter that loom watches. Two holders at once, or a lock passed on
/// without a happens-before edge, is a causality violation on the
/// counter; a waiter nobody wakes leaves its thread parked for good,
/// which loom reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// A counter whose accesses loom checks.
    struct Counter(loom::cell::UnsafeCell<u32>);

    impl Counter {
        fn bump(&self) {
            // SAFETY: only under the lock; loom checks that it is.
            self.0.with_mut(|p| unsafe { *p += 1 });
        }

        fn get(&self) -> u32 {
            // SAFETY: as in `bump`.
            self.0.with(|p| unsafe { *p })
        }
    }

    /// `threads` threads (the model's main thread included) each take the
    /// lock once. `starving`: every waiter counts as starved, so unlocks
    /// hand the lock over (starvation mode) instead of waking waiters to
    /// compete.
    fn contend(threads: usize, starving: bool) {
        loom::model(move || {
            crate::loom::set_starving(starving);
            let m = Arc::new(Mutex::new(Counter(loom::cell::UnsafeCell::new(0))));
            let others: Vec<_> = (1..threads)
                .map(|_| {
                    let m = m.clone();
                    loom::thread::spawn(move || m.lock().bump())
                })
                .collect();
            m.lock().bump();
            for t in others {
                t.join().unwrap();
            }
            assert_eq!(m.lock().get(), threads as u32);
            assert_eq!(m.raw.state(), 0, "the lock word is not clean at the end");
        });
    }

    /// Mutual exclusion and no lost wake-up, normal mode (barging).
    #[test]
    fn two_threads_exclude_and_wake() {
        contend(2, false);
    }

    /// As above with a third thread: a waiter woken to compete can lose
    /// to a barging one and queue again at the front.
    #[test]
    fn three_threads_exclude_and_wake() {
        contend(3, false);
    }

    /// Starvation mode: unlock hands the lock to the head of the queue,
    /// which never sees it free; the hand-off carries the counter's writes.
    #[test]
    fn starving_waiters_get_the_lock_handed_over() {
        contend(3, true);
    }
}
