//! The bridge to async Rust: [`block_on`] and wakers that unpark.
//!
//! A future is driven by polling it with a [`Waker`]; goro waits by
//! parking. The bridge joins the two with one rule: *a goro waker is an
//! [`Unparker`]*. Waking it makes the parked coroutine (or thread)
//! runnable, which then polls the future again. So [`block_on`] is the
//! loop "poll; if pending, park", and nothing else is needed: no executor,
//! no reactor, no thread of its own.
//!
//! # Invariants
//!
//! 1. **No lost wake-up.** A wake that comes before the park leaves the
//!    park token (std::thread::park semantics, see [`crate::park`]), so
//!    the park after a `Pending` returns at once and the future is polled
//!    again. Spurious wake-ups only cost a poll.
//! 2. **A ready future costs one poll.** In a coroutine, [`block_on`]
//!    polls with a waker whose data is the running task, borrowed, not
//!    counted: that waker is only ever reached through the `&Waker` of a
//!    poll's `Context`, which cannot outlive the poll, and the task is
//!    alive while it runs the poll. A future that keeps its waker must
//!    clone it, and `clone` makes a heap waker that owns a reference to
//!    the task. On a thread, the waker is made once per thread and kept
//!    in a thread-local (a thread never migrates). So no reference count
//!    or allocation is touched for a future that is ready at once.
//! 3. **Blocking is goro's.** In a coroutine only the coroutine waits; on
//!    a plain thread the thread blocks. A future that needs another
//!    runtime's reactor (tokio's sockets and timers) never becomes ready
//!    here: run such futures on that runtime and exchange results over
//!    channels (`Sender::send_async`, `Receiver::recv_async`).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};

use crate::context;
use crate::park::{self, Unparker};
use crate::task::Task;

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.unpark();
    }
}

impl Unparker {
    /// A [`Waker`] that unparks this coroutine or thread.
    ///
    /// ```
    /// let waker = goro::park::current().into_waker();
    /// waker.wake_by_ref(); // leaves the token: the next park returns at once
    /// goro::park::park();
    /// ```
    pub fn into_waker(self) -> Waker {
        Waker::from(Arc::new(self))
    }
}

/// The vtable of the borrowed waker of a coroutine's `block_on`
/// (invariant 2): its data points at a `&Task` (the running coroutine's,
/// alive while it runs `block_on`) in `block_on`'s frame. (`Task` is
/// unsized, so the reference itself is what the thin data pointer names.)
static BORROWED_TASK: RawWakerVTable =
    RawWakerVTable::new(task_clone, task_wake, task_wake, borrowed_drop);

fn task_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` points at the `&Task` in the frame of the `block_on`
    // whose poll is running now (the only way to reach this waker is that
    // poll's `&Waker`): the frame and the running task are alive.
    let task: &Task = unsafe { *(data as *const &Task) };
    raw_parts(Unparker::for_task(task.arc()).into_waker())
}

fn task_wake(data: *const ()) {
    // SAFETY: as in `task_clone`.
    let task: &Task = unsafe { *(data as *const &Task) };
    task.unpark();
}

/// A thread's `block_on` waker: made once per thread, then borrowed.
fn thread_waker<R>(f: impl FnOnce(&Waker) -> R) -> R {
    thread_local! {
        static WAKER: Waker = park::current().into_waker();
    }
    WAKER.with(|w| f(w))
}

/// The raw parts of an owned waker, handed over to a new `Waker`.
fn raw_parts(owned: Waker) -> RawWaker {
    let owned = std::mem::ManuallyDrop::new(owned);
    RawWaker::new(owned.data(), owned.vtable())
}

fn borrowed_drop(_: *const ()) {}

/// Polls until ready, parking in between (invariant 1).
fn drive<F: Future>(mut future: std::pin::Pin<&mut F>, waker: &Waker) -> F::Output {
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        park::park();
    }
}

/// Runs `future` to completion and returns its output.
///
/// In a coroutine this parks only the coroutine while the future is
/// pending; on a plain thread it blocks the thread. The future is woken
/// through a [`Waker`] that unparks the caller, so anything that wakes its
/// wakers from any thread works: goro's async channel operations,
/// `std`-style channels with wakers, hand-written futures. A future that
/// needs another runtime's reactor (a tokio socket or timer) must run on
/// that runtime; see the module docs of the facade's async section.
///
/// A future that is ready at once costs one poll and no allocation.
///
/// ```
/// use goro::block_on;
///
/// // A future woken from another thread, awaited in a coroutine.
/// let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
/// let h = goro::go!(move || {
///     let mut woken = false;
///     block_on(std::future::poll_fn(|cx| {
///         if woken {
///             return std::task::Poll::Ready(42);
///         }
///         woken = true;
///         tx.send(cx.waker().clone()).unwrap();
///         std::task::Poll::Pending
///     }))
/// });
/// rx.recv().unwrap().wake();
/// assert_eq!(h.join().unwrap(), 42);
/// assert_eq!(block_on(async { 1 + 1 }), 2);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let future = pin!(future);
    match context::current_task() {
        Some(task) => {
            let task: &Task = task;
            let raw = RawWaker::new(&task as *const &Task as *const (), &BORROWED_TASK);
            // SAFETY: the vtable's functions uphold the `RawWaker`
            // contract for this data: `clone` makes an independent heap
            // waker holding its own `Arc<Task>`, `wake` and `wake_by_ref`
            // unpark the task, which is alive (it is running this call)
            // for as long as the waker can be reached (invariant 2: only
            // through the `Context` of a poll below), and `drop` has
            // nothing to free. `Task::unpark` is thread-safe.
            let waker = unsafe { Waker::from_raw(raw) };
            drive(future, &waker)
        }
        // A thread never migrates, so its thread-local waker stays valid
        // across the parks.
        None => thread_waker(|w| drive(future, w)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Pending until `flag`, with its waker stored for a thread to wake.
    struct Gate {
        flag: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Gate {
        type Output = u8;
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.flag.load(Ordering::Acquire) {
                Poll::Ready(9)
            } else {
                Poll::Pending
            }
        }
    }

    fn gate_opened_by_a_thread() -> u8 {
        let flag = Arc::new(AtomicBool::new(false));
        let waker: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let (f, w) = (flag.clone(), waker.clone());
        let t = std::thread::spawn(move || {
            loop {
                if let Some(wk) = w.lock().unwrap().take() {
                    f.store(true, Ordering::Release);
                    wk.wake();
                    return;
                }
                std::thread::yield_now();
            }
        });
        let v = block_on(Gate { flag, waker });
        t.join().unwrap();
        v
    }

    #[test]
    fn ready_future_on_a_thread() {
        assert_eq!(block_on(async { 5 }), 5);
    }

    #[test]
    fn woken_from_another_thread_on_a_thread() {
        assert_eq!(gate_opened_by_a_thread(), 9);
    }

    #[test]
    fn woken_from_another_thread_in_a_coroutine() {
        let h = crate::spawn(gate_opened_by_a_thread);
        assert_eq!(h.join().unwrap(), 9);
    }

    #[test]
    fn borrowed_waker_clones_into_an_owned_one() {
        let w = block_on(std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())));
        // The clone outlives the poll and still wakes this thread.
        w.wake_by_ref();
        park::park();
        drop(w);
    }
}
