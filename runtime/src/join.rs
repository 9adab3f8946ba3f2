//! `JoinHandle`, and the packet a coroutine leaves its result in.
//!
//! The packet is the first field of the coroutine's task allocation (see
//! `task.rs`: one allocation per spawn), so `JoinHandle<T>` reaches it
//! through the task it holds.
//!
//! # Invariants
//!
//! 1. `state` holds three bits: `DONE` (the coroutine stored its result),
//!    `WAITING` (a joiner parked and left its unparker), `DETACHED` (the
//!    handle was dropped without joining). Each is set once, by
//!    `fetch_or`.
//! 2. Only the coroutine writes `result`, before it sets `DONE` (Release);
//!    the handle reads it only after it saw `DONE` (Acquire).
//! 3. The joiner writes `waiter` before it sets `WAITING`; the coroutine
//!    reads it only if its `fetch_or(DONE)` saw `WAITING`.
//! 4. Exactly one side *ends* the packet (drops an unwanted result and
//!    releases the scope): the coroutine if its `fetch_or(DONE)` saw
//!    `DETACHED`, the handle if it saw `DONE` (in `Drop`) or after `join`.
//!    A scoped coroutine is counted as finished in its scope only then,
//!    after its closure and its result are gone, so nothing it borrowed is
//!    touched after `scope` returns. This does not wait for the task
//!    allocation itself to be freed: stale unparkers held by channels may
//!    keep that alive, holding only `None`s.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::park::{self, Unparker};
use crate::scope::ScopeData;
use crate::task::Task;

const DONE: u8 = 1;
const WAITING: u8 = 2;
const DETACHED: u8 = 4;

pub(crate) struct Packet<T> {
    state: AtomicU8,
    result: UnsafeCell<Option<std::thread::Result<T>>>,
    waiter: UnsafeCell<Option<Unparker>>,
    scope: UnsafeCell<Option<Arc<ScopeData>>>,
}

impl<T> Packet<T> {
    pub(crate) fn new(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        Packet {
            state: AtomicU8::new(0),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
            scope: UnsafeCell::new(scope),
        }
    }

    /// Called by the coroutine, once, with its outcome.
    pub(crate) fn complete(&self, r: std::thread::Result<T>) {
        // SAFETY: invariant 2: only the coroutine writes, before DONE.
        unsafe { *self.result.get() = Some(r) };
        let prev = self.state.fetch_or(DONE, Ordering::AcqRel);
        if prev & DETACHED != 0 {
            // SAFETY: invariant 4: nobody else will touch the packet.
            unsafe { self.end() };
        } else if prev & WAITING != 0 {
            // SAFETY: invariant 3: the joiner wrote it before WAITING and
            // does not touch it again.
            if let Some(w) = unsafe { (*self.waiter.get()).take() } {
                w.unpark();
            }
        }
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    /// Parks until done, then takes the result (the handle side).
    fn wait_and_take(&self) -> std::thread::Result<T> {
        if !self.is_done() {
            // SAFETY: invariant 3: before WAITING only the joiner touches it.
            unsafe { *self.waiter.get() = Some(park::current()) };
            self.state.fetch_or(WAITING, Ordering::AcqRel);
            while !self.is_done() {
                park::park();
            }
        }
        // SAFETY: invariant 2: DONE was observed with Acquire.
        unsafe { (*self.result.get()).take() }.expect("goro: coroutine result taken twice")
    }

    /// Drops whatever result is left and releases the scope (invariant 4).
    ///
    /// # Safety
    ///
    /// Only the side that ends the packet may call it, once.
    unsafe fn end(&self) {
        // SAFETY: the caller is the one side that ends the packet.
        let (result, scope) = unsafe { ((*self.result.get()).take(), (*self.scope.get()).take()) };
        let unhandled_panic = matches!(result, Some(Err(_)));
        drop(result);
        if let Some(scope) = scope {
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
    task: Option<Arc<Task>>,
    id: u64,
    _result: PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// Wraps a task whose payload starts with a `Packet<T>`.
    ///
    /// # Safety
    ///
    /// `task`'s payload must be a `Job<T, _>` (`task.rs`).
    pub(crate) unsafe fn new(task: Arc<Task>, id: u64) -> JoinHandle<T> {
        JoinHandle {
            task: Some(task),
            id,
            _result: PhantomData,
        }
    }

    fn packet(&self) -> &Packet<T> {
        let task = self
            .task
            .as_ref()
            .expect("goro: JoinHandle used after join");
        // SAFETY: `new`'s contract: the payload is a `#[repr(C)]` `Job<T, _>`
        // whose first field is the `Packet<T>`, so the payload's address is
        // the packet's.
        unsafe { &*(task.payload() as *const dyn crate::task::Payload as *const Packet<T>) }
    }

    /// Waits for the coroutine to finish and returns its result, or
    /// `Err(payload)` if it panicked.
    ///
    /// ```
    /// let h = goro_runtime::spawn(|| 6 * 7);
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    pub fn join(mut self) -> std::thread::Result<T> {
        let r = self.packet().wait_and_take();
        // SAFETY: we saw DONE and took the result: this side ends the
        // packet (invariant 4), and `task = None` keeps `Drop` from doing
        // it again.
        unsafe { self.packet().end() };
        self.task = None;
        r
    }

    /// Whether the coroutine has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.packet().is_done()
    }

    /// The coroutine's id (as listed by `coroutines()`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if self.task.is_none() {
            return;
        }
        let packet = self.packet();
        if packet.state.fetch_or(DETACHED, Ordering::AcqRel) & DONE != 0 {
            // SAFETY: invariant 4: the coroutine finished before we
            // detached, so ending the packet is ours.
            unsafe { packet.end() };
        }
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
