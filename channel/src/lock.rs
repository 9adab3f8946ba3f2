//! The channel lock: a spin lock whose release is a plain store.
//!
//! # Why not `parking_lot::Mutex`
//!
//! A channel's critical sections are a few dozen instructions (push or
//! pop a buffer slot or a waiter pointer) and never park: a coroutine or
//! thread that must wait leaves the lock first and parks on its own
//! waiter. So the lock never needs to put a contender to sleep for long,
//! and its cost on the uncontended path is what matters. `parking_lot`'s
//! release is a compare-and-swap (it must see whether someone is parked on
//! the lock); this one's is a plain release store, which saves one atomic
//! read-modify-write per critical section, four per unbuffered ping-pong
//! round trip (BENCHMARKS.md has the figures).
//! crossbeam-channel guards its rendezvous channel and its waker lists the
//! same way.
//!
//! # Contention
//!
//! A contender spins with exponential backoff, then yields its thread
//! (`crossbeam_utils::Backoff::snooze`). It never parks a coroutine on
//! the lock: holders release within nanoseconds unless the OS preempted
//! their thread, and then yielding is what gives it the CPU back.
//!
//! # Invariants
//!
//! 1. `locked` is true exactly while a `SpinGuard` exists.
//! 2. The value is only reached through a guard, so at most one
//!    reference to it (shared or mutable) exists at a time.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};

use crate::loom::Backoff;
use crate::loom::sync::atomic::{AtomicBool, Ordering};

/// Mutual exclusion for a channel's state (module docs).
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (invariant 2), so sharing the lock shares `T` only by moving access
// between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, without locking: `&mut self` proves nobody else can
    /// hold the lock.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Takes the lock, spinning (then yielding) while another holds it.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard { lock: self }
    }

    #[cold]
    fn lock_contended(&self) {
        let backoff = Backoff::new();
        loop {
            // Wait for a release before trying again, so contenders read
            // the lock word instead of bouncing it with writes.
            while self.locked.load(Ordering::Relaxed) {
                backoff.snooze();
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// Access to a [`SpinLock`]'s value; releases the lock on drop.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock (invariant 1), so no other
        // reference to the value exists (invariant 2).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only use
        // of the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_across_threads() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        // A non-atomic read-modify-write: lost updates if
                        // two threads were inside at once.
                        let mut g = lock.lock();
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 400_000);
    }
}
