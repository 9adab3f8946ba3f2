//! [`RwLock`]: a reader-writer lock that parks the coroutine, with writer
//! preference.
//!
//! As in Go's `sync.RWMutex`, a writer that has to wait stops new readers
//! from entering, so a steady stream of readers cannot starve it; and when
//! a writer unlocks, every reader that queued meanwhile is let in before the
//! next writer, so writers cannot starve readers either. Readers and
//! writers alternate in batches under contention.
//!
//! Every wake-up here is a hand-off: a parked reader or writer is only ever
//! woken with the lock already granted to it (`GRANTED`), so a woken waiter
//! never has to compete again and the queues are served in order.
//!
//! Invariants:
//!
//! `state` is one word:
//!
//! ```text
//!   bit 0      WRITER          a writer holds the lock
//!   bit 1      WRITERS_PARKED  `queue.writers` is not empty
//!   bit 2      READERS_PARKED  `queue.readers` is not empty
//!   bits 3..   readers         number of readers holding the lock
//! ```
//!
//! 1. The two `*_PARKED` bits mirror whether the matching queue is empty
//!    whenever `queue`'s lock is not held: they are changed only with it
//!    held, together with the push or pop.
//! 2. `WRITER` and a nonzero reader count never coexist.
//! 3. A reader may enter (reader count + 1) only while neither `WRITER` nor
//!    `WRITERS_PARKED` is set: a waiting writer closes the door to new
//!    readers (writer preference). A writer may enter only when the lock
//!    is free and no writer is parked (no overtaking queued writers).
//! 4. A waiter parks only after setting its `*_PARKED` bit, with the queue's
//!    lock held, in a CAS that saw it could not enter. Whoever then changes
//!    the state so that it could enter (the last reader leaving, a writer
//!    unlocking) finds a `*_PARKED` bit set, so its fast path fails and its
//!    slow path, under the queue's lock, grants the lock to queued waiters:
//!    - the writer's unlock grants *all* queued readers if any (adding them
//!      to the reader count in the same CAS that clears `WRITER`), else the
//!      first queued writer (keeping `WRITER` set);
//!    - the last reader's unlock grants the first queued writer.
//!
//!    So a parked waiter whose turn has come is always granted: no lost
//!    wake-up.
//! 5. Readers are parked only while `WRITER` or `WRITERS_PARKED` is set,
//!    and each parked writer is eventually granted and then unlocks, which
//!    releases the readers queued behind it: readers do not starve.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::waiter::{self, Waiter};

const WRITER: usize = 1;
const WRITERS_PARKED: usize = 2;
const READERS_PARKED: usize = 4;
const READER_SHIFT: u32 = 3;
const ONE_READER: usize = 1 << READER_SHIFT;
const MAX_READERS: usize = usize::MAX >> READER_SHIFT;

/// Node state: the lock was granted to this waiter.
const GRANTED: usize = 1;

#[derive(Default)]
struct Queues {
    readers: VecDeque<Arc<Waiter>>,
    writers: VecDeque<Arc<Waiter>>,
}

/// A reader-writer lock protecting a `T`: any number of readers, or one
/// writer, at a time.
///
/// Waiting parks the coroutine (or blocks the thread); coroutines and
/// threads may share one lock. A writer that has to wait blocks new readers
/// until it has had its turn, so writers are not starved by readers; the
/// readers that queued while a writer held the lock go next, so readers are
/// not starved by writers either. No poisoning: a panic while holding a
/// guard releases the lock.
///
/// Unlike std's, a thread that already holds a read lock and asks for
/// another may deadlock if a writer is waiting in between (as in Go):
/// do not take a read lock recursively.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use goro_sync::RwLock;
///
/// let config = Arc::new(RwLock::new(String::from("v1")));
/// let readers: Vec<_> = (0..4)
///     .map(|_| {
///         let config = Arc::clone(&config);
///         goro_runtime::go!(move || config.read().len())
///     })
///     .collect();
/// config.write().push_str(".1");
/// for r in readers {
///     let len = r.join().unwrap();
///     assert!(len == 2 || len == 4);
/// }
/// assert_eq!(*config.read(), "v1.1");
/// ```
pub struct RwLock<T: ?Sized> {
    state: AtomicUsize,
    queue: parking_lot::Mutex<Queues>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock owns its `T`; sending the lock sends the `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: sharing the lock hands out `&T` to several threads at once
// (needs `T: Sync`) and `&mut T` to one thread at a time (needs `T: Send`),
// exactly std's bounds.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// Creates an unlocked lock holding `value`.
    ///
    /// ```
    /// static TABLE: goro_sync::RwLock<Vec<u8>> = goro_sync::RwLock::new(Vec::new());
    /// TABLE.write().push(1);
    /// assert_eq!(TABLE.read().len(), 1);
    /// ```
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            queue: parking_lot::Mutex::new(Queues {
                readers: VecDeque::new(),
                writers: VecDeque::new(),
            }),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the data.
    ///
    /// ```
    /// let l = goro_sync::RwLock::new(3);
    /// assert_eq!(l.into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Takes a shared read lock, parking while a writer holds the lock or
    /// waits for it.
    ///
    /// ```
    /// let l = goro_sync::RwLock::new(1);
    /// let (a, b) = (l.read(), l.read());
    /// assert_eq!(*a + *b, 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        if !self.try_read_fast() {
            self.read_slow();
        }
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes a read lock if that is possible right now (no writer holds
    /// or waits for the lock); never waits.
    ///
    /// ```
    /// let l = goro_sync::RwLock::new(1);
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// assert!(l.try_read().is_some());
    /// ```
    #[inline]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.try_read_fast().then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the exclusive write lock, parking until no reader or writer
    /// holds it. While it waits, new readers wait behind it.
    ///
    /// ```
    /// let l = goro_sync::RwLock::new(vec![1]);
    /// l.write().push(2);
    /// assert_eq!(*l.read(), [1, 2]);
    /// ```
    #[inline]
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        if self
            .state
            .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.write_slow();
        }
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the write lock if it is free right now; never waits.
    ///
    /// ```
    /// let l = goro_sync::RwLock::new(1);
    /// let r = l.read();
    /// assert!(l.try_write().is_none());
    /// drop(r);
    /// *l.try_write().unwrap() += 1;
    /// assert_eq!(*l.read(), 2);
    /// ```
    #[inline]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if !Self::writer_may_enter(state) {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                state | WRITER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(RwLockWriteGuard {
                        lock: self,
                        _not_send: PhantomData,
                    });
                }
                Err(s) => state = s,
            }
        }
    }

    /// Returns a mutable reference to the data; the exclusive borrow proves
    /// no guard exists.
    ///
    /// ```
    /// let mut l = goro_sync::RwLock::new(0);
    /// *l.get_mut() = 5;
    /// assert_eq!(*l.read(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn reader_may_enter(state: usize) -> bool {
        state & (WRITER | WRITERS_PARKED) == 0
    }

    fn writer_may_enter(state: usize) -> bool {
        state & !READERS_PARKED == 0
    }

    #[inline]
    fn try_read_fast(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if !Self::reader_may_enter(state) {
                return false;
            }
            assert!(
                state >> READER_SHIFT < MAX_READERS,
                "goro: too many readers on one RwLock"
            );
            match self.state.compare_exchange_weak(
                state,
                state + ONE_READER,
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
    fn read_slow(&self) {
        loop {
            if self.try_read_fast() {
                return;
            }
            let mut queue = self.queue.lock();
            let mut state = self.state.load(Ordering::Relaxed);
            let parked = loop {
                if Self::reader_may_enter(state) {
                    break false;
                }
                match self.state.compare_exchange_weak(
                    state,
                    state | READERS_PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break true,
                    Err(s) => state = s,
                }
            };
            if !parked {
                continue;
            }
            let node = Waiter::new();
            queue.readers.push_back(node.clone());
            drop(queue);
            // Granted: the unlocking writer counted us as a reader.
            node.wait(goro_runtime::park::WaitKind::RwLockRead);
            Waiter::recycle(node);
            return;
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn write_slow(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if Self::writer_may_enter(state) {
                match self.state.compare_exchange_weak(
                    state,
                    state | WRITER,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(s) => state = s,
                }
                continue;
            }
            let mut queue = self.queue.lock();
            state = self.state.load(Ordering::Relaxed);
            let parked = loop {
                if Self::writer_may_enter(state) {
                    break false;
                }
                match self.state.compare_exchange_weak(
                    state,
                    state | WRITERS_PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break true,
                    Err(s) => state = s,
                }
            };
            if !parked {
                continue;
            }
            let node = Waiter::new();
            queue.writers.push_back(node.clone());
            drop(queue);
            // Granted: WRITER was set for us.
            node.wait(goro_runtime::park::WaitKind::RwLockWrite);
            Waiter::recycle(node);
            return;
        }
    }

    /// # Safety
    ///
    /// The caller holds a read lock.
    #[inline]
    unsafe fn read_unlock(&self) {
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        debug_assert!(prev >> READER_SHIFT > 0);
        if prev >> READER_SHIFT == 1 && prev & WRITERS_PARKED != 0 {
            self.read_unlock_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn read_unlock_slow(&self) {
        // We were the last reader and a writer is queued: grant it, unless a
        // writer or reader got in meanwhile (then their unlock does it).
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & WRITER != 0 || state >> READER_SHIFT != 0 || queue.writers.is_empty() {
                return;
            }
            match self.grant_writer(&mut queue, state) {
                Ok(w) => {
                    drop(queue);
                    w.unpark();
                    return;
                }
                Err(s) => state = s,
            }
        }
    }

    /// Grants the lock to the first queued writer: sets `WRITER` (a no-op
    /// when the unlocking writer passes it on) and clears `WRITERS_PARKED`
    /// if it was the last. Returns the node to unpark once the queue's lock
    /// is released, or on CAS failure the state to re-examine.
    fn grant_writer(&self, queue: &mut Queues, state: usize) -> Result<Arc<Waiter>, usize> {
        let mut new = state | WRITER;
        if queue.writers.len() == 1 {
            new &= !WRITERS_PARKED;
        }
        self.state
            .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Relaxed)?;
        let w = queue.writers.pop_front().expect("queued writer");
        w.set(GRANTED);
        Ok(w)
    }

    /// # Safety
    ///
    /// The caller holds the write lock.
    #[inline]
    unsafe fn write_unlock(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.write_unlock_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn write_unlock_slow(&self) {
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(state & WRITER != 0 && state >> READER_SHIFT == 0);
            if !queue.readers.is_empty() {
                // Let every queued reader in, in the CAS that frees the lock.
                let n = queue.readers.len();
                let new = (state & !(WRITER | READERS_PARKED)) + n * ONE_READER;
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let woken = std::mem::take(&mut queue.readers);
                        for w in &woken {
                            w.set(GRANTED);
                        }
                        drop(queue);
                        waiter::unpark_all(woken);
                        return;
                    }
                    Err(s) => state = s,
                }
            } else if !queue.writers.is_empty() {
                // Writer to writer: WRITER stays set.
                match self.grant_writer(&mut queue, state) {
                    Ok(w) => {
                        drop(queue);
                        w.unpark();
                        return;
                    }
                    Err(s) => state = s,
                }
            } else {
                match self.state.compare_exchange_weak(
                    state,
                    state & !WRITER,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(s) => state = s,
                }
            }
        }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// A shared read lock on a [`RwLock`]: dereferences to the data, released
/// on drop. Not `Send`, like std's.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared read guard only gives out `&T`; sharing it across
// threads needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a read lock is held, so no writer (and no `&mut T`)
        // exists while this guard lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds one read lock, released once here.
        unsafe { self.lock.read_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The exclusive write lock on a [`RwLock`]: dereferences (mutably) to the
/// data, released on drop. Not `Send`, like std's.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared write guard only gives out `&T`; sharing it across
// threads needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the write lock is held: no other reference to the data
        // exists outside this guard.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock is held and the guard is borrowed mutably,
        // so this is the only reference to the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the write lock, released once here.
        unsafe { self.lock.write_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
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

    fn state<T>(l: &RwLock<T>) -> usize {
        l.state.load(Ordering::SeqCst)
    }

    /// Writer W1 holds the lock; reader R and writer W2 queue. W1's unlock
    /// lets R in before W2 (readers are not starved), and R's unlock hands
    /// the lock to W2.
    #[test]
    fn writer_unlock_prefers_queued_readers() {
        let l = Arc::new(RwLock::new(Vec::new()));
        let w1 = l.write();
        let l2 = l.clone();
        let r = std::thread::spawn(move || l2.read().len());
        eventually("reader to park", || state(&l) & READERS_PARKED != 0);
        let l3 = l.clone();
        let w2 = goro_runtime::go!(move || l3.write().push("w2"));
        eventually("writer to park", || state(&l) & WRITERS_PARKED != 0);
        drop(w1);
        // The reader saw the data before W2 wrote.
        assert_eq!(r.join().unwrap(), 0);
        w2.join().unwrap();
        assert_eq!(*l.read(), ["w2"]);
        assert_eq!(state(&l), 0);
    }

    #[test]
    fn guards_count_readers() {
        let l = RwLock::new(0);
        let a = l.read();
        let b = l.read();
        assert_eq!(state(&l), 2 * ONE_READER);
        assert!(l.try_write().is_none());
        drop((a, b));
        assert_eq!(state(&l), 0);
        let w = l.write();
        assert_eq!(state(&l), WRITER);
        drop(w);
        assert_eq!(state(&l), 0);
    }

    #[test]
    fn debug_and_panic_release() {
        let l = Arc::new(RwLock::new(1));
        assert_eq!(format!("{l:?}"), "RwLock { data: 1, .. }");
        let l2 = l.clone();
        let r = std::thread::spawn(move || {
            let _w = l2.write();
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*l.read(), 1);
        let _w = l.write();
        assert_eq!(format!("{l:?}"), "RwLock { data: <locked>, .. }");
    }
}
