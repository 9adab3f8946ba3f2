//! [`RwLock`]: a reader-writer lock that parks the coroutine, with writer
//! preference, upgradable reads and mapped guards (parking_lot's API).
//!
//! As in Go's `sync.RWMutex`, a writer that has to wait stops new readers
//! from entering, so a steady stream of readers cannot starve it; and when
//! a writer unlocks, every reader that queued meanwhile is let in before the
//! next writer, so writers cannot starve readers either. Readers and
//! writers alternate in batches under contention.
//!
//! An *upgradable* read (parking_lot's `upgradable_read`) is a read lock
//! that at most one party holds at a time and that can become the write
//! lock without letting anybody else write in between: read, decide, then
//! write on what was read. It shares the lock with plain readers, excludes
//! writers and other upgradable readers, and `upgrade` waits only for the
//! plain readers to leave (new ones are held off meanwhile).
//!
//! Every wake-up here is a hand-off: a parked reader, upgradable reader,
//! writer or upgrader is only ever woken with the lock already granted to
//! it (`GRANTED`), so a woken waiter never has to compete again and the
//! queues are served in order.
//!
//! # Invariants
//!
//! `state` is one word:
//!
//! ```text
//!   bit 0      WRITER              a writer holds the lock
//!   bit 1      WRITERS_PARKED      `queue.writers` is not empty
//!   bit 2      READERS_PARKED      `queue.readers` is not empty
//!   bit 3      UPGRADABLE          an upgradable reader holds the lock (it
//!                                  is also counted in `readers`)
//!   bit 4      UPGRADABLES_PARKED  `queue.upgradables` is not empty
//!   bit 5      UPGRADING           the upgradable reader waits in `upgrade`
//!                                  (`queue.upgrader` is set)
//!   bits 6..   readers             readers holding the lock, the
//!                                  upgradable one included
//! ```
//!
//! 1. The `*_PARKED` bits and `UPGRADING` mirror whether the matching queue
//!    (or slot) is empty whenever `queue`'s lock is not held: they are
//!    changed only with it held, together with the push or pop.
//! 2. `WRITER` and a nonzero reader count never coexist; `UPGRADABLE`
//!    implies a reader count of at least one; `UPGRADING` implies
//!    `UPGRADABLE` and a reader count of at least two when it is set (the
//!    upgrader and somebody it waits for).
//! 3. Entry rules (each one CAS on `state`):
//!    - a reader, while none of `WRITER`, `WRITERS_PARKED`, `UPGRADING` is
//!      set: a waiting writer or upgrader closes the door to new readers;
//!    - an upgradable reader, while none of `WRITER`, `WRITERS_PARKED`,
//!      `UPGRADABLE`, `UPGRADABLES_PARKED` is set (no overtaking a queued
//!      one);
//!    - a writer, while nothing but the `READERS_PARKED` and
//!      `UPGRADABLES_PARKED` bits is set (no overtaking queued writers);
//!    - an upgrade, while the reader count is exactly one (the upgrader
//!      itself): it takes `WRITER` even over parked writers, who could
//!      otherwise never get in (they wait for the upgrader's read lock).
//! 4. A waiter parks only after setting its `*_PARKED` bit (or
//!    `UPGRADING`), with the queue's lock held, in a CAS that saw it could
//!    not enter. Whoever then changes the state so that it could enter
//!    finds that bit set, so its fast path fails and its slow path, under
//!    the queue's lock, grants the lock:
//!    - a writer's unlock (or downgrade) grants *all* queued readers and
//!      the first queued upgradable reader if any of them waits (adding
//!      them to the state in the CAS that clears `WRITER`), else the first
//!      queued writer (keeping `WRITER` set);
//!    - a reader leaving (`wake_slow`) grants, in this order: the upgrader
//!      once it is the only reader left; the first queued writer once no
//!      reader is left; the first queued upgradable reader once no
//!      upgradable reader holds the lock and no writer is queued.
//!
//!    Readers park only while `WRITER`, `WRITERS_PARKED` or `UPGRADING` is
//!    set, and each of those ends in a writer holding the lock, whose
//!    unlock releases them: nobody that parks is forgotten (no lost
//!    wake-up), and readers do not starve.
//! 5. An upgradable reader's unlock is one `fetch_sub` of its reader and
//!    its bit; its downgrade to a plain reader one `fetch_sub` of the bit.
//!    Either takes the slow path exactly when rule 4 may have something to
//!    grant (an upgradable reader queued, or a writer queued and it was
//!    the last reader).
//!
//! `sync/src/loom.rs` swaps these atomics and the queue's lock for loom's
//! in the model checks (`loom_tests` below).
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::waiter::{self, WaitNode};

const WRITER: usize = 1;
const WRITERS_PARKED: usize = 2;
const READERS_PARKED: usize = 4;
const UPGRADABLE: usize = 8;
const UPGRADABLES_PARKED: usize = 16;
const UPGRADING: usize = 32;
const READER_SHIFT: u32 = 6;
const ONE_READER: usize = 1 << READER_SHIFT;
const MAX_READERS: usize = usize::MAX >> READER_SHIFT;

/// Node state: the lock was granted to this waiter.
const GRANTED: usize = 1;

#[derive(Default)]
struct Queues {
    readers: VecDeque<Arc<WaitNode>>,
    writers: VecDeque<Arc<WaitNode>>,
    upgradables: VecDeque<Arc<WaitNode>>,
    /// The upgradable reader waiting in `upgrade` (`UPGRADING`).
    upgrader: Option<Arc<WaitNode>>,
}

/// Who is asking for the lock, in the slow path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reader,
    Upgradable,
    Writer,
}

impl Kind {
    fn may_enter(self, state: usize) -> bool {
        match self {
            Kind::Reader => state & (WRITER | WRITERS_PARKED | UPGRADING) == 0,
            Kind::Upgradable => {
                state & (WRITER | WRITERS_PARKED | UPGRADABLE | UPGRADABLES_PARKED) == 0
            }
            Kind::Writer => state & !(READERS_PARKED | UPGRADABLES_PARKED) == 0,
        }
    }

    /// What entering adds to the state.
    fn entry(self) -> usize {
        match self {
            Kind::Reader => ONE_READER,
            Kind::Upgradable => ONE_READER | UPGRADABLE,
            Kind::Writer => WRITER,
        }
    }

    fn parked_bit(self) -> usize {
        match self {
            Kind::Reader => READERS_PARKED,
            Kind::Upgradable => UPGRADABLES_PARKED,
            Kind::Writer => WRITERS_PARKED,
        }
    }

    fn queue(self, q: &mut Queues) -> &mut VecDeque<Arc<WaitNode>> {
        match self {
            Kind::Reader => &mut q.readers,
            Kind::Upgradable => &mut q.upgradables,
            Kind::Writer => &mut q.writers,
        }
    }
}

/// The lock without the data: the state word and the wait queues (what
/// mapped guards keep to unlock).
pub(crate) struct RawRwLock {
    state: AtomicUsize,
    queue: crate::loom::sync::Mutex<Queues>,
    /// The coroutine holding the write lock, for `goro::leaks`: set after
    /// every take of the write lock, cleared before every release of it
    /// (as the mutex's `owner`; readers are not recorded).
    writer: goro_runtime::LockOwner,
}

impl RawRwLock {
    const_unless_loom! {
        fn new() -> RawRwLock {
            RawRwLock {
                state: AtomicUsize::new(0),
                queue: crate::loom::sync::Mutex::new(Queues {
                    readers: VecDeque::new(),
                    writers: VecDeque::new(),
                    upgradables: VecDeque::new(),
                    upgrader: None,
                }),
                writer: goro_runtime::LockOwner::new(),
            }
        }
    }

    /// One attempt family at entering as `kind` without queueing: CAS
    /// while the entry rule allows it.
    #[inline]
    fn try_enter(&self, kind: Kind) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if !kind.may_enter(state) {
                return false;
            }
            if kind != Kind::Writer {
                assert!(
                    state >> READER_SHIFT < MAX_READERS,
                    "goro: too many readers on one RwLock"
                );
            }
            match self.state.compare_exchange_weak(
                state,
                state + kind.entry(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(s) => state = s,
            }
        }
    }

    #[inline]
    #[track_caller]
    fn read(&self) {
        if !self.try_enter(Kind::Reader) {
            self.enter_slow(Kind::Reader);
        }
    }

    #[inline]
    #[track_caller]
    fn upgradable_read(&self) {
        if !self.try_enter(Kind::Upgradable) {
            self.enter_slow(Kind::Upgradable);
        }
    }

    #[inline]
    #[track_caller]
    fn write(&self) {
        if self
            .state
            .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.enter_slow(Kind::Writer);
        }
        self.writer.acquired();
    }

    #[inline]
    fn try_write(&self) -> bool {
        let taken = self.try_enter(Kind::Writer);
        if taken {
            self.writer.acquired();
        }
        taken
    }

    /// Queues as `kind` and parks until granted (invariant 4), unless the
    /// lock can be entered after all.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn enter_slow(&self, kind: Kind) {
        // A writer holding the lock is who we wait for (readers are not
        // recorded, so a wait on readers has no known holder).
        self.writer.wait_begin();
        self.enter_queued(kind);
        self.writer.wait_end();
    }

    #[track_caller]
    fn enter_queued(&self, kind: Kind) {
        loop {
            if self.try_enter(kind) {
                return;
            }
            let mut queue = self.queue.lock();
            let mut state = self.state.load(Ordering::Relaxed);
            let parked = loop {
                if kind.may_enter(state) {
                    break false;
                }
                match self.state.compare_exchange_weak(
                    state,
                    state | kind.parked_bit(),
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
            let node = WaitNode::new();
            kind.queue(&mut queue).push_back(node.clone());
            drop(queue);
            // Granted: whoever woke us entered us into the state.
            node.wait(match kind {
                Kind::Writer => goro_runtime::park::WaitKind::RwLockWrite,
                Kind::Reader | Kind::Upgradable => goro_runtime::park::WaitKind::RwLockRead,
            });
            WaitNode::recycle(node);
            return;
        }
    }

    /// # Safety
    ///
    /// The caller holds a plain read lock.
    #[inline]
    unsafe fn read_unlock(&self) {
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        let readers = prev >> READER_SHIFT;
        debug_assert!(readers > 0);
        if (readers == 1 && prev & WRITERS_PARKED != 0) || (readers == 2 && prev & UPGRADING != 0) {
            self.wake_slow();
        }
    }

    /// # Safety
    ///
    /// The caller holds the upgradable read lock.
    #[inline]
    unsafe fn upgradable_unlock(&self) {
        let prev = self
            .state
            .fetch_sub(ONE_READER | UPGRADABLE, Ordering::Release);
        debug_assert!(prev & UPGRADABLE != 0 && prev & UPGRADING == 0);
        if (prev >> READER_SHIFT == 1 && prev & WRITERS_PARKED != 0)
            || prev & UPGRADABLES_PARKED != 0
        {
            self.wake_slow();
        }
    }

    /// Turns the caller's upgradable read lock into a plain one.
    ///
    /// # Safety
    ///
    /// The caller holds the upgradable read lock.
    unsafe fn upgradable_to_read(&self) {
        let prev = self.state.fetch_sub(UPGRADABLE, Ordering::Release);
        debug_assert!(prev & UPGRADABLE != 0 && prev & UPGRADING == 0);
        if prev & UPGRADABLES_PARKED != 0 {
            self.wake_slow();
        }
    }

    /// Turns the caller's upgradable read lock into the write lock if it
    /// is the only reader (invariant 3).
    ///
    /// # Safety
    ///
    /// The caller holds the upgradable read lock.
    unsafe fn try_upgrade(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(state & UPGRADABLE != 0 && state & UPGRADING == 0);
            if state >> READER_SHIFT != 1 {
                return false;
            }
            let new = (state & !UPGRADABLE) - ONE_READER + WRITER;
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.writer.acquired();
                    return true;
                }
                Err(s) => state = s,
            }
        }
    }

    /// Turns the caller's upgradable read lock into the write lock, parking
    /// until the other readers have left.
    ///
    /// # Safety
    ///
    /// The caller holds the upgradable read lock.
    #[track_caller]
    unsafe fn upgrade(&self) {
        // SAFETY: passed on from the caller.
        if unsafe { self.try_upgrade() } {
            return;
        }
        self.upgrade_slow();
        self.writer.acquired();
    }

    #[track_caller]
    fn upgrade_slow(&self) {
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state >> READER_SHIFT == 1 {
                let new = (state & !UPGRADABLE) - ONE_READER + WRITER;
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
            match self.state.compare_exchange_weak(
                state,
                state | UPGRADING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(s) => state = s,
            }
        }
        let node = WaitNode::new();
        debug_assert!(queue.upgrader.is_none());
        queue.upgrader = Some(node.clone());
        drop(queue);
        // Granted: the last other reader made us the writer.
        node.wait(goro_runtime::park::WaitKind::RwLockWrite);
        WaitNode::recycle(node);
    }

    /// A reader left and the state says somebody may be waiting for that:
    /// grant whatever invariant 4 says, under the queue's lock.
    #[cold]
    #[inline(never)]
    fn wake_slow(&self) {
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & WRITER != 0 {
                // A writer got in meanwhile: its unlock grants.
                return;
            }
            let readers = state >> READER_SHIFT;
            if state & UPGRADING != 0 {
                if readers != 1 {
                    return;
                }
                let new = (state & !(UPGRADABLE | UPGRADING)) - ONE_READER + WRITER;
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let w = queue.upgrader.take().expect("goro: an upgrader is queued");
                        w.set(GRANTED);
                        drop(queue);
                        w.unpark();
                        return;
                    }
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if readers == 0 && !queue.writers.is_empty() {
                match self.grant_writer(&mut queue, state) {
                    Ok(w) => {
                        drop(queue);
                        w.unpark();
                        return;
                    }
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if !queue.upgradables.is_empty() && state & (WRITERS_PARKED | UPGRADABLE) == 0 {
                let mut new = state + (ONE_READER | UPGRADABLE);
                if queue.upgradables.len() == 1 {
                    new &= !UPGRADABLES_PARKED;
                }
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let w = queue.upgradables.pop_front().expect("queued upgradable");
                        w.set(GRANTED);
                        drop(queue);
                        w.unpark();
                        return;
                    }
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            return;
        }
    }

    /// Grants the lock to the first queued writer: sets `WRITER` (a no-op
    /// when the unlocking writer passes it on) and clears `WRITERS_PARKED`
    /// if it was the last. Returns the node to unpark once the queue's lock
    /// is released, or on CAS failure the state to re-examine.
    fn grant_writer(&self, queue: &mut Queues, state: usize) -> Result<Arc<WaitNode>, usize> {
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

    /// Releases the write lock, keeping `keep` for the caller: nothing
    /// (unlock), one reader (`downgrade`), or the upgradable read lock
    /// (`downgrade_to_upgradable`).
    ///
    /// # Safety
    ///
    /// The caller holds the write lock.
    #[inline]
    unsafe fn write_release(&self, keep: usize) {
        self.writer.released();
        if self
            .state
            .compare_exchange(WRITER, keep, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.write_release_slow(keep);
        }
    }

    #[cold]
    #[inline(never)]
    fn write_release_slow(&self, keep: usize) {
        let mut queue = self.queue.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(state & WRITER != 0 && state >> READER_SHIFT == 0);
            // The caller keeping the upgradable lock leaves queued
            // upgradable readers queued.
            let grant_up = keep & UPGRADABLE == 0 && !queue.upgradables.is_empty();
            let n = queue.readers.len();
            if n > 0 || grant_up || keep != 0 {
                // Let every queued reader (and one upgradable reader) in,
                // in the CAS that frees the lock.
                let mut new = (state & !(WRITER | READERS_PARKED)) + keep + n * ONE_READER;
                if grant_up {
                    new += ONE_READER | UPGRADABLE;
                    if queue.upgradables.len() == 1 {
                        new &= !UPGRADABLES_PARKED;
                    }
                }
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let mut woken = std::mem::take(&mut queue.readers);
                        if grant_up {
                            woken.push_back(queue.upgradables.pop_front().expect("queued"));
                        }
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

    #[cfg(all(test, loom))]
    fn state(&self) -> usize {
        self.state.load(Ordering::SeqCst)
    }
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
/// The guards follow parking_lot's API: [`RwLockReadGuard::map`] and
/// [`RwLockWriteGuard::map`] narrow a guard to a part of the data,
/// [`RwLockWriteGuard::downgrade`] turns the write lock into a read lock
/// with nobody writing in between, and [`upgradable_read`](RwLock::upgradable_read)
/// takes a read lock that can later become the write lock.
///
/// Unlike std's, a thread that already holds a read lock and asks for
/// another may deadlock if a writer is waiting in between (as in Go):
/// do not take a read lock recursively.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use goro::sync::RwLock;
///
/// let config = Arc::new(RwLock::new(String::from("v1")));
/// let readers: Vec<_> = (0..4)
///     .map(|_| {
///         let config = Arc::clone(&config);
///         goro::go!(move || config.read().len())
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
    raw: RawRwLock,
    /// The testing bubble it belongs to (`bubble.rs`).
    bubble: crate::bubble::BubbleMark,
    data: UnsafeCell<T>,
}

// SAFETY: the lock owns its `T`; sending the lock sends the `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: sharing the lock hands out `&T` to several threads at once
// (needs `T: Sync`) and `&mut T` to one thread at a time (needs `T: Send`),
// exactly std's bounds.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    const_unless_loom! {
        /// Creates an unlocked lock holding `value`.
        ///
        /// ```
        /// static TABLE: goro::sync::RwLock<Vec<u8>> = goro::sync::RwLock::new(Vec::new());
        /// TABLE.write().push(1);
        /// assert_eq!(TABLE.read().len(), 1);
        /// ```
        pub fn new(value: T) -> RwLock<T> {
            RwLock {
                raw: RawRwLock::new(),
                bubble: crate::bubble::BubbleMark::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the lock and returns the data.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(3);
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
    /// let l = goro::sync::RwLock::new(1);
    /// let (a, b) = (l.read(), l.read());
    /// assert_eq!(*a + *b, 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.bubble.check("a goro::sync::RwLock");
        self.raw.read();
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes a read lock if that is possible right now (no writer holds
    /// or waits for the lock); never waits.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(1);
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// assert!(l.try_read().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.bubble.check("a goro::sync::RwLock");
        self.raw.try_enter(Kind::Reader).then(|| RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes an upgradable read lock (parking_lot's `upgradable_read`): a
    /// read lock that plain readers share, but that excludes writers and
    /// other upgradable readers, so that it can later become the write
    /// lock with [`RwLockUpgradableReadGuard::upgrade`] and nobody writes
    /// in between. Parks while a writer or another upgradable reader holds
    /// the lock, or a writer waits for it.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let cache = RwLock::new(vec![1, 2]);
    /// let r = cache.upgradable_read();
    /// assert!(cache.try_read().is_some(), "plain readers still get in");
    /// if !r.contains(&3) {
    ///     let mut w = RwLockUpgradableReadGuard::upgrade(r);
    ///     w.push(3); // nobody could have added 3 since we looked
    /// }
    /// assert_eq!(*cache.read(), [1, 2, 3]);
    /// ```
    #[inline]
    #[track_caller]
    pub fn upgradable_read(&self) -> RwLockUpgradableReadGuard<'_, T> {
        self.bubble.check("a goro::sync::RwLock");
        self.raw.upgradable_read();
        RwLockUpgradableReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes an upgradable read lock if that is possible right now; never
    /// waits.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(0);
    /// let u = l.upgradable_read();
    /// assert!(l.try_upgradable_read().is_none(), "one upgradable reader at a time");
    /// drop(u);
    /// assert!(l.try_upgradable_read().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_upgradable_read(&self) -> Option<RwLockUpgradableReadGuard<'_, T>> {
        self.bubble.check("a goro::sync::RwLock");
        self.raw
            .try_enter(Kind::Upgradable)
            .then(|| RwLockUpgradableReadGuard {
                lock: self,
                _not_send: PhantomData,
            })
    }

    /// Takes the exclusive write lock, parking until no reader or writer
    /// holds it. While it waits, new readers wait behind it.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(vec![1]);
    /// l.write().push(2);
    /// assert_eq!(*l.read(), [1, 2]);
    /// ```
    #[inline]
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.bubble.check("a goro::sync::RwLock");
        self.raw.write();
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the write lock if it is free right now; never waits.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(1);
    /// let r = l.read();
    /// assert!(l.try_write().is_none());
    /// drop(r);
    /// *l.try_write().unwrap() += 1;
    /// assert_eq!(*l.read(), 2);
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.bubble.check("a goro::sync::RwLock");
        self.raw.try_write().then(|| RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether any party (reader, upgradable reader or writer) holds the
    /// lock right now; a snapshot, for assertions and diagnostics.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(());
    /// assert!(!l.is_locked());
    /// let _r = l.read();
    /// assert!(l.is_locked() && !l.is_locked_exclusive());
    /// ```
    pub fn is_locked(&self) -> bool {
        let s = self.raw.state.load(Ordering::Relaxed);
        s & WRITER != 0 || s >> READER_SHIFT != 0
    }

    /// Whether a writer holds the lock right now (a snapshot).
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(());
    /// let _w = l.write();
    /// assert!(l.is_locked_exclusive());
    /// ```
    pub fn is_locked_exclusive(&self) -> bool {
        self.raw.state.load(Ordering::Relaxed) & WRITER != 0
    }

    /// Returns a mutable reference to the data; the exclusive borrow proves
    /// no guard exists.
    ///
    /// ```
    /// let mut l = goro::sync::RwLock::new(0);
    /// *l.get_mut() = 5;
    /// assert_eq!(*l.read(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
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

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// Narrows the guard to a part of the data (parking_lot's
    /// `RwLockReadGuard::map`); the read lock is held until the
    /// [`MappedRwLockReadGuard`] drops. If `f` panics the lock is released.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new((String::from("name"), 7));
    /// let n = RwLockReadGuard::map(l.read(), |t| &t.1);
    /// assert_eq!(*n, 7);
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        let lock = s.lock;
        // SAFETY: `s` proves a read lock is held, so no writer exists; the
        // lock passes to the mapped guard (`s` is forgotten after `f`).
        let data: *const U = f(unsafe { &*lock.data.get() });
        std::mem::forget(s);
        MappedRwLockReadGuard {
            raw: &lock.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](RwLockReadGuard::map), but `f` may decline; the guard
    /// comes back in `Err`.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new(vec![1]);
    /// assert!(RwLockReadGuard::try_map(l.read(), |v| v.get(5)).is_err());
    /// assert_eq!(*RwLockReadGuard::try_map(l.read(), |v| v.first()).ok().unwrap(), 1);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        let lock = s.lock;
        // SAFETY: as in `map`.
        let data: *const U = match f(unsafe { &*lock.data.get() }) {
            Some(d) => d,
            None => return Err(s),
        };
        std::mem::forget(s);
        Ok(MappedRwLockReadGuard {
            raw: &lock.raw,
            data,
            _marker: PhantomData,
        })
    }
}

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
        unsafe { self.lock.raw.read_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
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

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns the write lock into a read lock, atomically: no writer gets
    /// in between, and the readers queued meanwhile are let in with it
    /// (parking_lot's `RwLockWriteGuard::downgrade`).
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(1);
    /// let mut w = l.write();
    /// *w = 2;
    /// let r = RwLockWriteGuard::downgrade(w);
    /// assert!(l.try_read().is_some(), "other readers may now read");
    /// assert!(l.try_write().is_none());
    /// assert_eq!(*r, 2);
    /// ```
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let lock = s.lock;
        std::mem::forget(s);
        // SAFETY: `s` held the write lock, and is forgotten: its lock is
        // released here once, keeping one reader for the new guard.
        unsafe { lock.raw.write_release(ONE_READER) };
        RwLockReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Turns the write lock into an upgradable read lock, atomically
    /// (parking_lot's `RwLockWriteGuard::downgrade_to_upgradable`).
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(1);
    /// let u = RwLockWriteGuard::downgrade_to_upgradable(l.write());
    /// assert!(l.try_read().is_some());
    /// assert!(l.try_upgradable_read().is_none());
    /// *RwLockUpgradableReadGuard::upgrade(u) += 1;
    /// assert_eq!(*l.read(), 2);
    /// ```
    pub fn downgrade_to_upgradable(s: Self) -> RwLockUpgradableReadGuard<'a, T> {
        let lock = s.lock;
        std::mem::forget(s);
        // SAFETY: as in `downgrade`, keeping the upgradable read lock.
        unsafe { lock.raw.write_release(ONE_READER | UPGRADABLE) };
        RwLockUpgradableReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Narrows the guard to a part of the data (parking_lot's
    /// `RwLockWriteGuard::map`); the write lock is held until the
    /// [`MappedRwLockWriteGuard`] drops. If `f` panics the lock is
    /// released.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new((0, vec![1]));
    /// let mut v = RwLockWriteGuard::map(l.write(), |t| &mut t.1);
    /// v.push(2);
    /// drop(v);
    /// assert_eq!(l.read().1, [1, 2]);
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let lock = s.lock;
        // SAFETY: `s` proves the write lock is held and is consumed, so
        // this is the only reference to the data; the lock passes to the
        // mapped guard (`s` is forgotten after `f`).
        let data: *mut U = f(unsafe { &mut *lock.data.get() });
        std::mem::forget(s);
        MappedRwLockWriteGuard {
            raw: &lock.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](RwLockWriteGuard::map), but `f` may decline; the guard
    /// comes back in `Err`.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(vec![1]);
    /// let w = RwLockWriteGuard::try_map(l.write(), |v| v.get_mut(9)).err().unwrap();
    /// assert_eq!(w.len(), 1);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let lock = s.lock;
        // SAFETY: as in `map`.
        let data: *mut U = match f(unsafe { &mut *lock.data.get() }) {
            Some(d) => d,
            None => return Err(s),
        };
        std::mem::forget(s);
        Ok(MappedRwLockWriteGuard {
            raw: &lock.raw,
            data,
            _marker: PhantomData,
        })
    }
}

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
        unsafe { self.lock.raw.write_release(0) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// An upgradable read lock on a [`RwLock`], from
/// [`RwLock::upgradable_read`]: dereferences to the data (shared), and
/// can become the write lock ([`upgrade`](RwLockUpgradableReadGuard::upgrade))
/// or a plain read lock ([`downgrade`](RwLockUpgradableReadGuard::downgrade)).
/// parking_lot's type of the same name; not `Send`.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockUpgradableReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared upgradable guard only gives out `&T`; sharing it across
// threads needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockUpgradableReadGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockUpgradableReadGuard<'a, T> {
    /// Turns the upgradable read lock into the write lock, parking until
    /// the plain readers have left; new readers wait meanwhile, and no
    /// writer gets in between (it could not: it waits for this lock).
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let l = RwLock::new(0);
    /// let u = l.upgradable_read();
    /// let n = *u;
    /// let mut w = RwLockUpgradableReadGuard::upgrade(u);
    /// *w = n + 1;
    /// drop(w);
    /// assert_eq!(*l.read(), 1);
    /// ```
    #[track_caller]
    pub fn upgrade(s: Self) -> RwLockWriteGuard<'a, T> {
        let lock = s.lock;
        std::mem::forget(s);
        // SAFETY: `s` held the upgradable read lock and is forgotten: the
        // lock becomes the write lock for the new guard.
        unsafe { lock.raw.upgrade() };
        RwLockWriteGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Turns the upgradable read lock into the write lock if no plain
    /// reader holds the lock right now; otherwise gives the guard back in
    /// `Err`. Never waits.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let l = RwLock::new(0);
    /// let u = l.upgradable_read();
    /// let r = l.read();
    /// let u = RwLockUpgradableReadGuard::try_upgrade(u).err().unwrap();
    /// drop(r);
    /// assert!(RwLockUpgradableReadGuard::try_upgrade(u).is_ok());
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_upgrade(s: Self) -> Result<RwLockWriteGuard<'a, T>, Self> {
        // SAFETY: `s` holds the upgradable read lock; on success it is
        // forgotten below and its lock is now the write lock.
        if unsafe { s.lock.raw.try_upgrade() } {
            let lock = s.lock;
            std::mem::forget(s);
            Ok(RwLockWriteGuard {
                lock,
                _not_send: PhantomData,
            })
        } else {
            Err(s)
        }
    }

    /// Turns the upgradable read lock into a plain read lock, letting the
    /// next upgradable reader in.
    ///
    /// ```
    /// use goro::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let l = RwLock::new(5);
    /// let r = RwLockUpgradableReadGuard::downgrade(l.upgradable_read());
    /// assert!(l.try_upgradable_read().is_some());
    /// assert_eq!(*r, 5);
    /// ```
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let lock = s.lock;
        std::mem::forget(s);
        // SAFETY: `s` held the upgradable read lock and is forgotten; its
        // reader stays counted for the new guard.
        unsafe { lock.raw.upgradable_to_read() };
        RwLockReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockUpgradableReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: an upgradable read lock excludes writers, so no `&mut T`
        // exists while this guard lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockUpgradableReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the upgradable read lock, released once.
        unsafe { self.lock.raw.upgradable_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockUpgradableReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockUpgradableReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A read guard narrowed to a part of a [`RwLock`]'s data, made by
/// [`RwLockReadGuard::map`]; parking_lot's type of the same name.
///
/// ```
/// use goro::sync::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
///
/// let l = RwLock::new(((1, 2), 3));
/// let inner = RwLockReadGuard::map(l.read(), |t| &t.0);
/// let two: MappedRwLockReadGuard<'_, i32> = MappedRwLockReadGuard::map(inner, |p| &p.1);
/// assert_eq!(*two, 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct MappedRwLockReadGuard<'a, T: ?Sized> {
    raw: &'a RawRwLock,
    data: *const T,
    /// Borrows the data for `'a`; not `Send` (`*const T` is not).
    _marker: PhantomData<&'a T>,
}

// SAFETY: a shared mapped read guard only gives out `&T`; sharing it
// across threads needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MappedRwLockReadGuard<'_, T> {}

impl<'a, T: ?Sized> MappedRwLockReadGuard<'a, T> {
    /// Narrows the guard further, like [`RwLockReadGuard::map`].
    ///
    /// ```
    /// use goro::sync::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new(vec![vec![4]]);
    /// let row = RwLockReadGuard::map(l.read(), |v| &v[0]);
    /// assert_eq!(*MappedRwLockReadGuard::map(row, |r| &r[0]), 4);
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        let raw = s.raw;
        // SAFETY: `s` holds a read lock and points into the data under it;
        // the lock passes to the new guard.
        let data: *const U = f(unsafe { &*s.data });
        std::mem::forget(s);
        MappedRwLockReadGuard {
            raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](MappedRwLockReadGuard::map), but `f` may decline.
    ///
    /// ```
    /// use goro::sync::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new((vec![1], 0));
    /// let v = RwLockReadGuard::map(l.read(), |t| &t.0);
    /// assert!(MappedRwLockReadGuard::try_map(v, |v| v.get(1)).is_err());
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        let raw = s.raw;
        // SAFETY: as in `map`.
        let data: *const U = match f(unsafe { &*s.data }) {
            Some(d) => d,
            None => return Err(s),
        };
        std::mem::forget(s);
        Ok(MappedRwLockReadGuard {
            raw,
            data,
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for MappedRwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds a read lock, and `data` points into the
        // data it protects.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> Drop for MappedRwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the mapped guard took over one read lock, released once.
        unsafe { self.raw.read_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A write guard narrowed to a part of a [`RwLock`]'s data, made by
/// [`RwLockWriteGuard::map`]; parking_lot's type of the same name.
///
/// ```
/// use goro::sync::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
///
/// let l = RwLock::new((0, 0));
/// let mut second: MappedRwLockWriteGuard<'_, i32> = RwLockWriteGuard::map(l.write(), |t| &mut t.1);
/// *second = 9;
/// drop(second);
/// assert_eq!(*l.read(), (0, 9));
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct MappedRwLockWriteGuard<'a, T: ?Sized> {
    raw: &'a RawRwLock,
    data: *mut T,
    /// Borrows the data mutably for `'a`; not `Send` (`*mut T` is not).
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: a shared mapped write guard only gives out `&T`; sharing it
// across threads needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MappedRwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> MappedRwLockWriteGuard<'a, T> {
    /// Narrows the guard further, like [`RwLockWriteGuard::map`].
    ///
    /// ```
    /// use goro::sync::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(((0, 0), 0));
    /// let inner = RwLockWriteGuard::map(l.write(), |t| &mut t.0);
    /// *MappedRwLockWriteGuard::map(inner, |p| &mut p.0) = 5;
    /// assert_eq!(*l.read(), ((5, 0), 0));
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let raw = s.raw;
        // SAFETY: `s` holds the write lock and is consumed: the only
        // reference to the data it points at. The lock passes on.
        let data: *mut U = f(unsafe { &mut *s.data });
        std::mem::forget(s);
        MappedRwLockWriteGuard {
            raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](MappedRwLockWriteGuard::map), but `f` may decline.
    ///
    /// ```
    /// use goro::sync::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new((vec![1], 0));
    /// let v = RwLockWriteGuard::map(l.write(), |t| &mut t.0);
    /// assert!(MappedRwLockWriteGuard::try_map(v, |v| v.get_mut(1)).is_err());
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let raw = s.raw;
        // SAFETY: as in `map`.
        let data: *mut U = match f(unsafe { &mut *s.data }) {
            Some(d) => d,
            None => return Err(s),
        };
        std::mem::forget(s);
        Ok(MappedRwLockWriteGuard {
            raw,
            data,
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for MappedRwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the write lock, and `data` points into
        // the data it protects.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for MappedRwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and the guard is borrowed mutably.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for MappedRwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the mapped guard took over the write lock, released once.
        unsafe { self.raw.write_release(0) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockWriteGuard<'_, T> {
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
        l.raw.state.load(Ordering::SeqCst)
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

/// Model checks of the state word's upgradable-read protocol (run with
/// `.ci/loom`): the real `RwLock` (fast paths, queueing, the grants of
/// invariant 4, parking through `goro_runtime::park`) around a counter
/// whose accesses loom checks. A writer and a reader (or two writers) in
/// at once is a causality violation on the counter; a waiter nobody
/// grants leaves its thread parked for good, which loom reports as a
/// deadlock; the state word must be clean once everybody left.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    struct Counter(loom::cell::UnsafeCell<u32>);

    impl Counter {
        fn new() -> Counter {
            Counter(loom::cell::UnsafeCell::new(0))
        }

        fn bump(&self) {
            // SAFETY: only under the write lock; loom checks that it is.
            self.0.with_mut(|p| unsafe { *p += 1 });
        }

        fn get(&self) -> u32 {
            // SAFETY: under a read (or the write) lock; loom checks it.
            self.0.with(|p| unsafe { *p })
        }
    }

    /// An upgrade waits for a plain reader that holds the lock, and the
    /// reader's leaving grants it (the `UPGRADING` path of `wake_slow`).
    #[test]
    fn upgrade_waits_for_a_reader_and_is_granted() {
        loom::model(|| {
            let l = Arc::new(RwLock::new(Counter::new()));
            let l2 = l.clone();
            let reader = loom::thread::spawn(move || l2.read().get());
            let u = l.upgradable_read();
            let seen = u.get();
            let w = RwLockUpgradableReadGuard::upgrade(u);
            w.bump();
            assert_eq!(w.get(), seen + 1, "somebody wrote between read and upgrade");
            drop(w);
            let r = reader.join().unwrap();
            assert!(r <= 1);
            assert_eq!(l.raw.state(), 0, "the state word is not clean at the end");
        });
    }

    /// A writer parked behind an upgradable reader does not block its
    /// upgrade (which would deadlock): the upgrade goes first, then the
    /// writer; both bumps happen, one at a time.
    #[test]
    fn upgrade_goes_before_a_parked_writer() {
        loom::model(|| {
            let l = Arc::new(RwLock::new(Counter::new()));
            let l2 = l.clone();
            let writer = loom::thread::spawn(move || l2.write().bump());
            let u = l.upgradable_read();
            let w = RwLockUpgradableReadGuard::upgrade(u);
            w.bump();
            let r = RwLockWriteGuard::downgrade(w);
            assert!(r.get() >= 1);
            drop(r);
            writer.join().unwrap();
            assert_eq!(l.read().get(), 2);
            assert_eq!(l.raw.state(), 0, "the state word is not clean at the end");
        });
    }

    /// Two upgradable readers: the second queues until the first lets go
    /// (by downgrading, then unlocking), and each upgrade excludes the
    /// other party.
    #[test]
    fn upgradable_readers_take_turns() {
        loom::model(|| {
            let l = Arc::new(RwLock::new(Counter::new()));
            let l2 = l.clone();
            let other = loom::thread::spawn(move || {
                let u = l2.upgradable_read();
                RwLockUpgradableReadGuard::upgrade(u).bump();
            });
            let u = l.upgradable_read();
            let r = RwLockUpgradableReadGuard::downgrade(u);
            let _ = r.get();
            drop(r);
            let u = l.upgradable_read();
            let w = match RwLockUpgradableReadGuard::try_upgrade(u) {
                Ok(w) => w,
                Err(u) => RwLockUpgradableReadGuard::upgrade(u),
            };
            w.bump();
            drop(w);
            other.join().unwrap();
            assert_eq!(l.read().get(), 2);
            assert_eq!(l.raw.state(), 0, "the state word is not clean at the end");
        });
    }

    /// A writer's unlock grants a queued reader and a queued upgradable
    /// reader together (the write-release grant of invariant 4).
    #[test]
    fn writer_unlock_grants_reader_and_upgradable() {
        loom::model(|| {
            let l = Arc::new(RwLock::new(Counter::new()));
            let w = l.write();
            let l2 = l.clone();
            let reader = loom::thread::spawn(move || l2.read().get());
            let l3 = l.clone();
            let upgrader = loom::thread::spawn(move || {
                let u = l3.upgradable_read();
                let before = u.get();
                let w = RwLockUpgradableReadGuard::upgrade(u);
                w.bump();
                before
            });
            w.bump();
            drop(w);
            assert!(reader.join().unwrap() >= 1);
            assert_eq!(upgrader.join().unwrap(), 1);
            assert_eq!(l.read().get(), 2);
            assert_eq!(l.raw.state(), 0, "the state word is not clean at the end");
        });
    }
}
