//! Lock owners: which coroutine holds a lock, and which lock a parked
//! coroutine waits for, so that the leak report can find wait-for cycles
//! while the rest of the program runs.
//!
//! goro has no garbage collector, so it cannot tell who holds a `Sender`.
//! A lock is different: its holder is the one party that took it (goro's
//! guards are not `Send`), so recording the holder when the lock is taken
//! names it exactly. With that, a coroutine parked on a lock whose holder
//! is parked on a lock whose holder is ... the first coroutine, is parked
//! for good, whatever else runs (`leaks.rs`).
//!
//! # The two words
//!
//! - A lock embeds a [`LockOwner`]: the address of the holding coroutine's
//!   task while a coroutine holds it, `0` while it is free, held by a
//!   thread, or being handed from one holder to the next. The holder
//!   stores its own address right after it takes the lock and `0` right
//!   before it releases it; the stores are relaxed, and cost one store to
//!   a line the lock operation owns already.
//! - A coroutine that parks on a lock records the address of the lock's
//!   `LockOwner` in its wait slot's `object` word ([`wait_begin`]) and
//!   clears it before it returns from the lock call ([`wait_end`]).
//!
//! # Invariants
//!
//! 1. A non-zero `object` word names a `LockOwner` that stays alive until
//!    the word is cleared: the waiter sets it once per lock call, before
//!    its first park there, while it borrows the lock, and clears it
//!    before that borrow ends. (Once, not per park: a second store could
//!    overwrite a reader's `READING` bit.)
//! 2. The leak report dereferences an `object` word only after it turned
//!    it from `addr` into `addr | READING` with a compare-and-swap, and
//!    puts `addr` back when done. The waiter clears the word only with a
//!    compare-and-swap from `addr` to `0`, waiting while `READING` is set.
//!    Both act on one word, so in its modification order either the
//!    reader's swap comes first (and the waiter's clear, hence the end of
//!    the borrow, waits for the reader to finish) or the waiter's clear
//!    does (and the reader's swap fails). No reader ever touches a lock
//!    that may be gone.
//! 3. Only the waiter writes `addr` into its own word, and only the leak
//!    report sets `READING`; the report is serialized by a lock of its own
//!    (`leaks.rs`), so at most one reader holds a word at a time.
//!
//! A waiter that wakes while the report reads its word spins for those few
//! loads; the report is a diagnostic, taken rarely, and never while the
//! waiter's worker is needed for its own progress.
//!
//! What the owner word cannot name: a holder that is a plain thread (it is
//! `0`, "unknown"), and a lock whose guard was leaked with `mem::forget`
//! by a coroutine that has since finished (the word keeps the finished
//! task's address, which no live coroutine matches).

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Set in a wait slot's `object` word while the leak report reads the
/// lock it names (invariant 2). Lock owners are word-aligned, so the low
/// bit is free.
pub(crate) const READING: usize = 1;

/// The holder of a lock, for the leak report (see the module docs).
///
/// Embedded in goro's locks (`goro::sync`); not for use outside goro.
#[doc(hidden)]
#[derive(Debug)]
pub struct LockOwner(AtomicUsize);

impl LockOwner {
    /// No holder.
    #[cfg(not(loom))]
    pub const fn new() -> LockOwner {
        LockOwner(AtomicUsize::new(0))
    }

    /// No holder.
    #[cfg(loom)]
    pub fn new() -> LockOwner {
        LockOwner(AtomicUsize::new(0))
    }

    /// Records the caller as the holder; call right after taking the lock.
    #[inline(always)]
    pub fn acquired(&self) {
        #[cfg(not(loom))]
        self.0
            .store(crate::context::current_task_addr(), Ordering::Relaxed);
    }

    /// Forgets the holder; call right before releasing (or handing over)
    /// the lock.
    #[inline(always)]
    pub fn released(&self) {
        #[cfg(not(loom))]
        self.0.store(0, Ordering::Relaxed);
    }

    /// The holding coroutine's task address, or 0.
    pub(crate) fn holder(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Records, in the calling coroutine's wait slot, that it is about to
    /// park on this lock (invariant 1). Pair it with [`LockOwner::wait_end`]
    /// before the call that borrowed the lock returns. Does nothing on a
    /// plain thread.
    #[inline]
    pub fn wait_begin(&self) {
        #[cfg(not(loom))]
        if let Some(task) = crate::context::current_task() {
            task.wait
                .object
                .store(self as *const LockOwner as usize, Ordering::Release);
        }
    }

    /// Clears what [`LockOwner::wait_begin`] recorded, waiting for a leak
    /// report that is reading it (invariant 2).
    #[inline]
    pub fn wait_end(&self) {
        #[cfg(not(loom))]
        if let Some(task) = crate::context::current_task() {
            clear(&task.wait.object, self as *const LockOwner as usize);
        }
    }
}

/// The waiter's side of invariant 2: `addr` to 0, never while a reader
/// holds the word.
pub(crate) fn clear(object: &AtomicUsize, addr: usize) {
    let mut spins = 0u32;
    loop {
        match object.compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            // Nothing recorded (the caller parked on a thread): only
            // `addr`, `addr | READING` or 0 can be there (invariant 3).
            Err(v) if v & READING == 0 => return,
            Err(_) => {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    crate::loom::thread::yield_now();
                }
            }
        }
    }
}

/// The reader's side of invariant 2: runs `read` on the owner `object`
/// names, if its waiter has not cleared it, and returns what it returned.
pub(crate) fn read_object<R>(
    object: &AtomicUsize,
    read: impl FnOnce(&LockOwner) -> R,
) -> Option<R> {
    let addr = object.load(Ordering::Acquire);
    if addr == 0 || addr & READING != 0 {
        return None;
    }
    object
        .compare_exchange(addr, addr | READING, Ordering::AcqRel, Ordering::Acquire)
        .ok()?;
    // SAFETY: invariant 2: our swap came before the waiter's clear in the
    // word's modification order, so the waiter has not cleared it and
    // cannot until we put `addr` back; by invariant 1 the owner it names
    // is alive until then. (Acquire on the swap pairs with the waiter's
    // Release store of `addr`.)
    let r = read(unsafe { &*(addr as *const LockOwner) });
    object.store(addr, Ordering::Release);
    Some(r)
}

impl Default for LockOwner {
    fn default() -> LockOwner {
        LockOwner::new()
    }
}

/// The holder of the lock a coroutine's wait slot names, if it names one
/// and its waiter is still in the lock call (the report's read).
#[cfg(not(loom))]
pub(crate) fn holder_waited_for(object: &AtomicUsize) -> Option<usize> {
    read_object(object, LockOwner::holder)
}

/// The models do not run the report.
#[cfg(loom)]
pub(crate) fn holder_waited_for(_object: &std::sync::atomic::AtomicUsize) -> Option<usize> {
    None
}

/// Model checks (run with `.ci/loom`): a waiter records a lock, parks,
/// clears the record and frees the lock, while a reader tries to read it.
/// However the steps interleave, the reader never reads a freed lock.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::AtomicBool;
    use std::sync::Arc;

    struct Lock {
        owner: LockOwner,
        freed: AtomicBool,
    }

    #[test]
    fn a_reader_never_sees_a_freed_lock() {
        loom::model(|| {
            let object = Arc::new(AtomicUsize::new(0));
            // The lock lives in a leaked box so that its address stays
            // valid for the model; `freed` stands for its deallocation.
            let lock: &'static Lock = Box::leak(Box::new(Lock {
                owner: LockOwner::new(),
                freed: AtomicBool::new(false),
            }));
            let addr = &lock.owner as *const LockOwner as usize;
            let o = object.clone();
            let waiter = loom::thread::spawn(move || {
                o.store(addr, Ordering::Release);
                loom::thread::yield_now();
                clear(&o, addr);
                lock.freed.store(true, Ordering::Relaxed);
            });
            let seen = read_object(&object, |owner| {
                assert!(std::ptr::eq(owner, &lock.owner));
                lock.freed.load(Ordering::Relaxed)
            });
            assert_ne!(seen, Some(true), "the reader read a freed lock");
            waiter.join().unwrap();
            assert_eq!(object.load(Ordering::Relaxed), 0);
        });
    }
}
