//! Thread-local runtime context: which worker this thread is, and which
//! coroutine it is running.
//!
//! # Invariants
//!
//! 1. `WORKER` is set once, when a worker thread starts, and points at that
//!    worker's leaked, thread-owned state for the rest of the process.
//!    The same call marks the thread in the worker filter
//!    (`worker_threads.rs`), before the worker resumes any coroutine, so
//!    that the filter's "not a worker" proves that `CURRENT` is null.
//! 2. `CURRENT` is non-null exactly while a worker is inside
//!    `Coroutine::resume` for that task; the worker holds a strong reference
//!    to the task for that whole time, so the pointer stays valid.
//! 3. Every read goes through an `#[inline(never)]` accessor. A coroutine
//!    never migrates after it starts (see the crate docs), but runtime code
//!    that reads TLS on both sides of a stack switch must not let LLVM cache
//!    a thread-local address across the switch; a call boundary that cannot
//!    be inlined guarantees a fresh lookup. The one exception is
//!    [`in_coroutine`] (and [`current_task_addr`], likewise), inlined into
//!    the hook's per-call check: it returns
//!    a `bool` computed from one fresh read and hands out no address or
//!    reference, and its callers read it before they could switch (a
//!    coroutine never changes threads, so even a reuse after a switch
//!    would be this thread's answer).

use std::cell::Cell;
use std::ptr::{self, NonNull};

use crate::scheduler::worker::WorkerLocal;
use crate::task::Task;

thread_local! {
    static WORKER: Cell<*const WorkerLocal> = const { Cell::new(ptr::null()) };
    static CURRENT: Cell<Option<NonNull<Task>>> = const { Cell::new(None) };
}

/// The worker state of this thread, if it is a worker thread.
#[inline(never)]
pub(crate) fn worker() -> Option<&'static WorkerLocal> {
    let p = WORKER.with(Cell::get);
    // SAFETY: by invariant 1 a non-null pointer refers to a leaked
    // `WorkerLocal` that lives for the rest of the process and is only ever
    // used from this, its own, thread.
    unsafe { p.as_ref() }
}

/// Marks this thread as the worker that owns `local` (invariant 1).
pub(crate) fn set_worker(local: &'static WorkerLocal) {
    crate::worker_threads::mark_this_thread();
    WORKER.with(|w| w.set(local));
}

/// The task running on this thread, if the caller is inside a coroutine.
#[inline(never)]
pub(crate) fn current_task() -> Option<&'static Task> {
    let p = CURRENT.with(Cell::get)?;
    // SAFETY: by invariant 2 a non-null pointer refers to the task whose
    // coroutine is running on this thread, and the caller is that
    // coroutine. The task stays alive at least until the coroutine returns
    // (the registry holds it), and the coroutine never leaves this thread,
    // so the reference stays valid for as long as the caller can use it,
    // across its own suspensions too.
    Some(unsafe { p.as_ref() })
}

/// Whether the caller runs inside a coroutine: one thread-local load,
/// inlinable (the exception in invariant 3), for checks made on every
/// call of a hot path (the hook's).
#[inline(always)]
pub(crate) fn in_coroutine() -> bool {
    CURRENT.with(|c| c.get().is_some())
}

/// The address of the running task, or 0 on a plain thread: one
/// thread-local load, inlinable like [`in_coroutine`] and for the same
/// reason (a number computed from one fresh read; no reference is handed
/// out), for the lock fast paths that record their holder
/// (`diag/owner.rs`).
#[inline(always)]
pub(crate) fn current_task_addr() -> usize {
    CURRENT.with(|c| c.get().map_or(0, |p| p.as_ptr().cast::<u8>() as usize))
}

/// Records which task the worker is about to resume (`None` when it
/// returns).
#[inline(never)]
pub(crate) fn set_current_task(task: Option<&Task>) {
    CURRENT.with(|c| c.set(task.map(NonNull::from)));
}
