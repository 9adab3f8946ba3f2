//! `JoinHandle` and the packet a coroutine leaves its result in.
//!
//! # Invariants
//!
//! 1. `state` goes `RUNNING -> (WAITING) -> DONE`. Only the coroutine
//!    writes `result`, before it swaps in `DONE` (Release); the joiner reads
//!    `result` only after it saw `DONE` (Acquire).
//! 2. The joiner writes `waiter` before it moves `RUNNING -> WAITING`; the
//!    coroutine reads it only after its swap saw `WAITING`. Neither touches
//!    `waiter` otherwise, so the `UnsafeCell`s are never accessed at once.
//! 3. For scoped coroutines the packet tells its scope it is gone only in
//!    `Drop`, after the result (which may borrow from the scope) is dropped.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::park::{self, Unparker};
use crate::scope::ScopeData;

const RUNNING: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

pub(crate) struct Packet<T> {
    state: AtomicU8,
    result: UnsafeCell<Option<std::thread::Result<T>>>,
    waiter: UnsafeCell<Option<Unparker>>,
    pub(crate) scope: Option<Arc<ScopeData>>,
}

// SAFETY: access to the cells is ordered by `state` (invariants 1 and 2);
// the result moves from the coroutine to the joiner, so `T: Send` suffices.
unsafe impl<T: Send> Sync for Packet<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Packet<T> {}

impl<T> Packet<T> {
    pub(crate) fn new(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        Packet {
            state: AtomicU8::new(RUNNING),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
            scope,
        }
    }

    /// Stores the coroutine's outcome and wakes a waiting joiner.
    pub(crate) fn complete(&self, r: std::thread::Result<T>) {
        // SAFETY: invariant 1: only the coroutine writes, before DONE.
        unsafe { *self.result.get() = Some(r) };
        if self.state.swap(DONE, Ordering::AcqRel) == WAITING {
            // SAFETY: invariant 2: the joiner wrote it before WAITING and
            // will not touch it again.
            if let Some(w) = unsafe { (*self.waiter.get()).take() } {
                w.unpark();
            }
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Parks until done, then takes the result.
    pub(crate) fn join(&self) -> std::thread::Result<T> {
        if !self.is_done() {
            // SAFETY: invariant 2: before WAITING only the joiner touches it.
            unsafe { *self.waiter.get() = Some(park::current()) };
            let _ =
                self.state
                    .compare_exchange(RUNNING, WAITING, Ordering::AcqRel, Ordering::Acquire);
            while !self.is_done() {
                park::park();
            }
        }
        // SAFETY: invariant 1: DONE was observed with Acquire.
        unsafe { (*self.result.get()).take() }.expect("goro: coroutine result taken twice")
    }
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        let unhandled_panic = matches!(self.result.get_mut(), Some(Err(_)));
        drop(self.result.get_mut().take());
        if let Some(scope) = self.scope.take() {
            scope.coroutine_finished(unhandled_panic);
        }
    }
}

/// An owned permission to join a coroutine (wait for it to finish).
///
/// Dropping it detaches the coroutine, which keeps running. Like
/// `std::thread::JoinHandle`, [`join`](JoinHandle::join) works from a
/// coroutine (parking only the coroutine) and from a plain thread.
pub struct JoinHandle<T> {
    pub(crate) packet: Arc<Packet<T>>,
    pub(crate) id: u64,
}

impl<T> JoinHandle<T> {
    /// Waits for the coroutine to finish and returns its result, or
    /// `Err(payload)` if it panicked.
    ///
    /// ```
    /// let h = goro_runtime::spawn(|| 6 * 7);
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        self.packet.join()
    }

    /// Whether the coroutine has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.packet.is_done()
    }

    /// The coroutine's id (as listed by `coroutines()`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The payload type of a panic, as `join` returns it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;
