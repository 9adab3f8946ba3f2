//! Parking: the one way anything in goro waits.
//!
//! Channels, locks, timers, `join`, the blocking pool and the IO reactor are
//! all built on this pair: [`park`] (optionally with a deadline) blocks the
//! caller until an [`Unparker`] for it is used. Inside a coroutine the
//! coroutine is switched out and its worker runs something else; on a plain
//! OS thread the thread blocks (through `std::thread::park`). Code written
//! against this pair therefore works unchanged for both, and a coroutine and
//! a thread can wait on the same object.
//!
//! # Semantics (std::thread::park's token)
//!
//! Each coroutine and each thread has one token, initially absent.
//! `Unparker::unpark` makes it available; `park` consumes it, returning at
//! once if it was already there. Tokens do not accumulate. `park` may also
//! return spuriously, so callers always re-check their condition in a loop:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use goro_runtime::park;
//!
//! let ready = Arc::new(AtomicBool::new(false));
//! let waker = park::current();
//! let flag = ready.clone();
//! std::thread::spawn(move || {
//!     flag.store(true, Ordering::Release);
//!     waker.unpark();
//! });
//! while !ready.load(Ordering::Acquire) {
//!     park::park();
//! }
//! ```
//!
//! # The coroutine protocol (no lost wake-up, no double resume)
//!
//! A coroutine's token lives in its task's `park_state`: `EMPTY`,
//! `NOTIFIED` or `PARKED`.
//!
//! 1. `park` first tries `NOTIFIED -> EMPTY`; success means a token was
//!    waiting and it returns without switching.
//! 2. Otherwise it suspends to its worker with a park request. Only the
//!    worker, now on its own stack, tries `EMPTY -> PARKED`. If that fails
//!    the state is `NOTIFIED` (an unpark arrived while the coroutine was
//!    still switching out) and the worker queues the coroutine again at once.
//! 3. `unpark` swaps in `NOTIFIED`. Exactly the caller that sees the old
//!    value `PARKED` schedules the task, so a parked task is queued once
//!    however many unparks race, and never before it is off its stack.
//! 4. When the coroutine runs again it stores `EMPTY` back, consuming the
//!    token that woke it. (A plain store, after an Acquire load that pairs
//!    with the unparker's swap: an unpark racing with it finds `NOTIFIED`
//!    and does nothing, so a swap would clear that token all the same.)
//! 5. The worker's reference to the task (the `Arc` it took off its run
//!    queue) is not dropped when the task parks: `EMPTY -> PARKED` hands it
//!    to the parked state, and the unpark that sees `PARKED` takes it back
//!    to queue the task. A park/unpark cycle thus costs no reference-count
//!    traffic. (A parked task is kept alive by the registry as well.)
//!
//! A started coroutine is only ever queued to its home worker, so it is
//! resumed by one worker at a time.
//!
//! Deadlines in coroutines are timers on the home worker's timing wheel
//! whose firing is an ordinary `unpark`; the timer is cancelled when the
//! coroutine wakes for another reason. On threads, deadlines use
//! `std::thread::park_timeout`.

use std::fmt;
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::context;
use crate::task::Task;

/// A handle that wakes one coroutine or thread parked with [`park`].
///
/// Obtained with [`current`]; cheap to clone (a reference count), `Send` and
/// `Sync`. Waiter lists in channels and locks store these.
#[derive(Clone)]
pub struct Unparker {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Coroutine(Arc<Task>),
    Thread(Thread),
}

impl Unparker {
    /// Makes the token available to the coroutine or thread this handle
    /// belongs to, waking it if it is parked.
    pub fn unpark(&self) {
        match &self.inner {
            Inner::Coroutine(task) => task.unpark(),
            Inner::Thread(t) => t.unpark(),
        }
    }

    /// Whether this handle wakes a coroutine (as opposed to an OS thread).
    pub fn is_coroutine(&self) -> bool {
        matches!(self.inner, Inner::Coroutine(_))
    }

    /// Whether two handles wake the same coroutine or thread.
    pub fn same_target(&self, other: &Unparker) -> bool {
        match (&self.inner, &other.inner) {
            (Inner::Coroutine(a), Inner::Coroutine(b)) => Arc::ptr_eq(a, b),
            (Inner::Thread(a), Inner::Thread(b)) => a.id() == b.id(),
            _ => false,
        }
    }

    pub(crate) fn for_task(task: Arc<Task>) -> Unparker {
        Unparker {
            inner: Inner::Coroutine(task),
        }
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Coroutine(t) => f.debug_tuple("Unparker::Coroutine").field(&t.id()).finish(),
            Inner::Thread(t) => f.debug_tuple("Unparker::Thread").field(&t.id()).finish(),
        }
    }
}

/// Returns the [`Unparker`] of the calling coroutine, or of the calling
/// thread when not in a coroutine.
pub fn current() -> Unparker {
    match context::current_task() {
        Some(task) => Unparker::for_task(task.arc()),
        None => Unparker {
            inner: Inner::Thread(thread::current()),
        },
    }
}

/// Blocks the caller until its token is available, then consumes it.
///
/// In a coroutine this parks only the coroutine; on a thread it parks the
/// thread. May return spuriously: re-check the condition you wait for.
pub fn park() {
    match context::current_task() {
        Some(task) => task.park(None),
        None => thread::park(),
    }
}

/// Like [`park`], but returns no later than `deadline` (shortly after it in
/// a coroutine: timers have millisecond resolution and never fire early).
pub fn park_deadline(deadline: Instant) {
    match context::current_task() {
        Some(task) => task.park(Some(deadline)),
        None => {
            let now = Instant::now();
            if deadline > now {
                thread::park_timeout(deadline - now);
            }
        }
    }
}

/// Like [`park`], but returns after at most about `timeout`.
pub fn park_timeout(timeout: Duration) {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => park_deadline(deadline),
        None => park(),
    }
}
