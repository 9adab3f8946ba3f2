//! `JoinHandle`, and the packet a coroutine leaves its result in.
//!
//! The packet is the first field of the coroutine's task allocation (see
//! `task.rs`: one allocation per spawn), so `JoinHandle<T>` reaches it
//! through the task it holds.
//!
//! # How a coroutine finishes
//!
//! 1. Its closure returns (or panics). The coroutine stores the result and
//!    sets `RETURNED`. If the handle was already dropped, the result is
//!    unwanted: the coroutine drops it there and then, still inside itself,
//!    so the result's `Drop` runs on the coroutine's worker with its
//!    coroutine-locals alive.
//! 2. It destroys its coroutine-locals (`local.rs`), keeping the first
//!    panic a destructor raised in `teardown`.
//! 3. It sets `DONE` and wakes a parked joiner. `join` returns only after
//!    `DONE`, so the locals are gone before it returns, as a thread's
//!    thread-locals are gone before `std::thread::JoinHandle::join`
//!    returns.
//!
//! No user code runs on the coroutine's behalf after step 2 except
//! dropping a teardown panic's payload when nobody joins; it finds the
//! locals gone (`AccessError`). A result the handle takes is dropped
//! wherever the handle is: by the joiner, or, when the handle is dropped
//! after step 1, by whoever drops it (the result is `Send`, and it sees
//! that coroutine's or thread's locals, never the finished coroutine's).
//!
//! # Invariants
//!
//! 1. `state` holds four bits, each set once, by `fetch_or`: `RETURNED`
//!    (step 1), `DONE` (step 3), `WAITING` (a joiner parked and left its
//!    unparker) and `DETACHED` (the handle was dropped without joining).
//! 2. Only the coroutine writes `result`, before it sets `RETURNED`
//!    (Release), and `teardown`, before it sets `DONE` (Release). The
//!    handle reads `result` only after it saw `RETURNED` and `teardown`
//!    only after it saw `DONE` (Acquire).
//! 3. The result is taken by exactly one side: the coroutine if its
//!    `fetch_or(RETURNED)` saw `DETACHED`; the handle otherwise, in `join`
//!    or in `Drop` (its `fetch_or(DETACHED)` saw `RETURNED`).
//! 4. The joiner writes `waiter` before it sets `WAITING`; the coroutine
//!    reads it only if its `fetch_or(DONE)` saw `WAITING`.
//! 5. Exactly one side *ends* the packet (drops what is left, the teardown
//!    panic included, and releases the scope): the coroutine if its
//!    `fetch_or(DONE)` saw `DETACHED`, the handle if its
//!    `fetch_or(DETACHED)` saw `DONE` (in `Drop`) or after `join`. A
//!    scoped coroutine is counted as finished in its scope only then,
//!    after its closure, its result and its locals are gone (or, for a
//!    result the handle took in `Drop`, being dropped by a party that the
//!    scope waits for itself), so nothing it borrowed is touched after
//!    `scope` returns. This does not wait for the task allocation itself
//!    to be freed: stale unparkers held by channels may keep that alive,
//!    holding only `None`s.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::local::drop_quietly;
use crate::park::{self, Unparker};
use crate::scope::ScopeData;
use crate::task::Task;

const DONE: u8 = 1;
const WAITING: u8 = 2;
const DETACHED: u8 = 4;
const RETURNED: u8 = 8;

pub(crate) struct Packet<T> {
    state: AtomicU8,
    result: UnsafeCell<Option<std::thread::Result<T>>>,
    waiter: UnsafeCell<Option<Unparker>>,
    /// What few coroutines have, boxed so that the others pay one word
    /// (the packet is part of every task header, hence of what every
    /// parked coroutine costs). Written at spawn (the scope) and by the
    /// coroutine before `DONE` (the teardown panic), like the fields it
    /// replaces; taken by whoever ends the packet.
    rare: UnsafeCell<Option<Box<Rare>>>,
}

/// The rarely used part of a [`Packet`].
#[derive(Default)]
struct Rare {
    /// The first panic raised by a coroutine-local's destructor.
    teardown: Option<PanicPayload>,
    /// The scope a scoped coroutine belongs to.
    scope: Option<Arc<ScopeData>>,
}

impl<T> Packet<T> {
    pub(crate) fn new(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        Packet {
            state: AtomicU8::new(0),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
            rare: UnsafeCell::new(scope.map(|scope| {
                Box::new(Rare {
                    teardown: None,
                    scope: Some(scope),
                })
            })),
        }
    }

    /// Takes the teardown panic and the scope.
    ///
    /// # Safety
    ///
    /// As for the fields it takes: the caller is the side that may touch
    /// `rare` now (the coroutine before `DONE`, or the one that ends the
    /// packet).
    unsafe fn take_rare(&self) -> (Option<PanicPayload>, Option<Arc<ScopeData>>) {
        // SAFETY: the caller is the side that may touch `rare` now (this
        // function's contract), so nothing else reads or writes it while
        // it is taken.
        match unsafe { (*self.rare.get()).take() } {
            Some(r) => (r.teardown, r.scope),
            None => (None, None),
        }
    }

    /// Step 1: called by the coroutine, once, with its closure's outcome,
    /// before its locals are destroyed.
    pub(crate) fn returned(&self, r: std::thread::Result<T>) {
        // SAFETY: invariant 2: only the coroutine writes, before RETURNED.
        unsafe { *self.result.get() = Some(r) };
        if self.state.fetch_or(RETURNED, Ordering::AcqRel) & DETACHED == 0 {
            return;
        }
        // SAFETY: invariant 3: the handle is gone and never looked at the
        // result; it is ours.
        let unwanted = unsafe { (*self.result.get()).take() };
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| drop(unwanted))) {
            // The panic hook has reported it, naming the coroutine.
            drop_quietly(e);
            eprintln!("goro: dropping a detached coroutine's result panicked; ignored");
        }
    }

    /// Step 3: called by the coroutine, once, after its locals are gone;
    /// `panicked` says whether its closure panicked, `teardown` is the
    /// first panic a local's destructor raised.
    pub(crate) fn complete(&self, panicked: bool, teardown: Option<PanicPayload>) {
        let unhandled = panicked || teardown.is_some();
        if let Some(p) = teardown {
            // SAFETY: invariant 2: only the coroutine writes, before DONE.
            unsafe { (*self.rare.get()).get_or_insert_with(Box::default).teardown = Some(p) };
        }
        let prev = self.state.fetch_or(DONE, Ordering::AcqRel);
        if prev & DETACHED != 0 {
            // SAFETY: invariant 5: the handle is gone; ending the packet
            // is ours. The result was taken already (invariant 3).
            let (teardown, scope) = unsafe { self.take_rare() };
            if let Some(p) = teardown {
                drop_quietly(p);
            }
            if let Some(scope) = scope {
                scope.coroutine_finished(unhandled);
            }
        } else if prev & WAITING != 0 {
            // SAFETY: invariant 4: the joiner wrote it before WAITING and
            // does not touch it again.
            if let Some(w) = unsafe { (*self.waiter.get()).take() } {
                w.unpark();
            }
        }
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    /// Parks until done, then takes the result and the teardown panic (the
    /// handle side).
    #[track_caller]
    fn wait_and_take(&self, target: u64) -> (std::thread::Result<T>, Option<PanicPayload>) {
        if !self.is_done() {
            // SAFETY: invariant 4: before WAITING only the joiner touches it.
            unsafe { *self.waiter.get() = Some(park::current()) };
            self.state.fetch_or(WAITING, Ordering::AcqRel);
            while !self.is_done() {
                park::park_packed(crate::diag::wait::pack_join(target), park::WaitKind::Join);
            }
        }
        // SAFETY: invariant 2: DONE (hence RETURNED) was observed with
        // Acquire; invariant 3: the handle, not detached, owns the result.
        unsafe {
            (
                (*self.result.get())
                    .take()
                    .expect("goro: coroutine result taken twice"),
                (*self.rare.get()).as_mut().and_then(|r| r.teardown.take()),
            )
        }
    }

    /// Drops whatever is left and releases the scope (invariant 5). The
    /// scope is released even if a destructor panics; the panic then goes
    /// on.
    ///
    /// # Safety
    ///
    /// Only the handle, when it ends the packet, may call it, once.
    unsafe fn end(&self) {
        // SAFETY: the caller is the one side that ends the packet, after
        // DONE (invariants 2 and 5).
        let (result, (teardown, scope)) =
            unsafe { ((*self.result.get()).take(), self.take_rare()) };
        let unhandled_panic = matches!(result, Some(Err(_))) || teardown.is_some();
        let dropped = catch_unwind(AssertUnwindSafe(move || {
            drop(result);
            drop(teardown);
        }));
        if let Some(scope) = scope {
            scope.coroutine_finished(unhandled_panic);
        }
        if let Err(e) = dropped {
            resume_unwind(e);
        }
    }
}

/// An owned permission to join a coroutine (wait for it to finish).
///
/// Dropping it detaches the coroutine, which keeps running. Like
/// `std::thread::JoinHandle`, [`join`](JoinHandle::join) works from a
/// coroutine (parking only the coroutine) and from a plain thread.
///
/// Where the result is dropped: `join` hands it to the caller. A handle
/// dropped before the coroutine's closure returns leaves the result to the
/// coroutine, which drops it on its own worker before its
/// [coroutine-locals](crate::LocalKey#destruction) are destroyed, so the
/// result's `Drop` may use them. A handle dropped after the closure
/// returned drops the result itself, in the dropping coroutine or thread.
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
    /// `Err(payload)` if it panicked (its closure, or the destructor of one
    /// of its coroutine-locals after the closure returned). The panic was
    /// reported by the panic hook when it happened, whatever hook is
    /// installed (see the crate docs, "Panics in coroutines"); `join`
    /// returns it either way. Its coroutine-locals have been destroyed when
    /// `join` returns.
    ///
    /// ```
    /// let h = goro::spawn(|| 6 * 7);
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn join(mut self) -> std::thread::Result<T> {
        let (r, teardown) = self.packet().wait_and_take(self.id);
        // SAFETY: we saw DONE and took the result: this side ends the
        // packet (invariant 5), and `task = None` keeps `Drop` from doing
        // it again.
        unsafe { self.packet().end() };
        self.task = None;
        match (r, teardown) {
            // A coroutine-local's destructor panicked after the closure
            // returned: that is the coroutine's panic.
            (Ok(value), Some(p)) => {
                drop(value);
                Err(p)
            }
            (r, _) => r,
        }
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
        let prev = packet.state.fetch_or(DETACHED, Ordering::AcqRel);
        if prev & DONE != 0 {
            // SAFETY: invariant 5: the coroutine finished before we
            // detached, so ending the packet is ours.
            unsafe { packet.end() };
        } else if prev & RETURNED != 0 {
            // SAFETY: invariants 2 and 3: the closure returned before we
            // detached, so the result is ours to drop, here; the coroutine
            // ends the packet when it is done.
            drop(unsafe { (*packet.result.get()).take() });
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
