//! Parking: the one way anything in goro waits.
//!
//! The user guide (the `park`/`Unparker` pair, its token semantics, an
//! example) is the `goro::park` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/park/>. This page gives the protocol
//! that makes it correct.
//!
//! # The coroutine protocol (no lost wake-up, no double resume)
//!
//! A coroutine's token lives in its task's `ParkState` (below): `EMPTY`,
//! `NOTIFIED` or `PARKED`. That type holds every transition below, and
//! `Task` calls it; the model checks (`loom_tests` below) run the same
//! functions.
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
//! 4. When the coroutine runs again it swaps `EMPTY` back in (Acquire),
//!    consuming the token that woke it. It must be a read-modify-write:
//!    an unpark racing with it either comes first in the word's order, and
//!    the swap reads its `NOTIFIED` and so sees everything that unparker
//!    did before (its condition), or comes after and leaves its token. A
//!    plain Acquire load and a store could read an *earlier* unparker's
//!    `NOTIFIED` and then overwrite the later one's: that later unparker's
//!    condition is then neither seen nor signalled, a lost wake-up (the
//!    model check `consume_is_a_read_modify_write` finds it).
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
use std::time::{Duration, Instant};

use std::panic::Location;

use crate::context;
use crate::diag::wait::{ThreadWait, current_thread};
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::scheduler;
use crate::task::{Request, Task};

pub use crate::diag::wait::{WaitInfo, WaitKind};

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
    Thread(Arc<ThreadWait>),
    /// An async task, woken through its executor (see `crate::bridge`).
    Waker(std::task::Waker),
}

impl Unparker {
    /// Makes the token available to the coroutine or thread this handle
    /// belongs to, waking it if it is parked.
    pub fn unpark(&self) {
        match &self.inner {
            Inner::Coroutine(task) => task.unpark(),
            Inner::Thread(t) => t.unpark(),
            Inner::Waker(w) => w.wake_by_ref(),
        }
    }

    /// An `Unparker` that wakes an async task: `unpark` calls
    /// [`Waker::wake_by_ref`](std::task::Waker::wake_by_ref). This is how
    /// goro's waiter queues hold futures (`Sender::send_async`) next to
    /// coroutines and threads. Parking has no meaning for such a target:
    /// the task is polled again by its executor.
    ///
    /// ```
    /// let u = goro::park::Unparker::from_waker(std::task::Waker::noop().clone());
    /// u.unpark();
    /// assert!(!u.is_coroutine());
    /// ```
    pub fn from_waker(waker: std::task::Waker) -> Unparker {
        Unparker {
            inner: Inner::Waker(waker),
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
            (Inner::Thread(a), Inner::Thread(b)) => a.thread.id() == b.thread.id(),
            (Inner::Waker(a), Inner::Waker(b)) => a.will_wake(b),
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
            Inner::Thread(t) => f
                .debug_tuple("Unparker::Thread")
                .field(&t.thread.id())
                .finish(),
            Inner::Waker(_) => f.write_str("Unparker::Waker"),
        }
    }
}

/// Returns the [`Unparker`] of the calling coroutine, or of the calling
/// thread when not in a coroutine.
pub fn current() -> Unparker {
    match context::current_task() {
        Some(task) => Unparker::for_task(task.arc()),
        None => Unparker {
            inner: Inner::Thread(current_thread()),
        },
    }
}

/// Blocks the caller until its token is available, then consumes it.
///
/// In a coroutine this parks only the coroutine; on a thread it parks the
/// thread. May return spuriously: re-check the condition you wait for.
/// The wait shows in [`goro::dump`](crate::dump) as `park` at the
/// caller's line; [`park_with`] names what it waits for.
#[track_caller]
#[inline]
pub fn park() {
    park_with(WaitKind::Park);
}

/// [`park`] that records what the caller waits on (shown by
/// [`goro::dump`](crate::dump) and [`coroutines`](crate::coroutines), and
/// used by the deadlock check: see [`WaitKind::is_external`]) and where
/// (the caller's line: mark your own blocking functions
/// `#[track_caller]` to name their callers instead).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use goro::park::{self, WaitKind};
///
/// let ready = Arc::new(AtomicBool::new(false));
/// let (flag, waker) = (ready.clone(), park::current());
/// std::thread::spawn(move || {
///     flag.store(true, Ordering::Release);
///     waker.unpark();
/// });
/// while !ready.load(Ordering::Acquire) {
///     park::park_with(WaitKind::Park);
/// }
/// ```
#[track_caller]
#[inline]
pub fn park_with(kind: WaitKind) {
    match context::current_task() {
        Some(task) => {
            task.wait
                .record(kind, Location::caller(), crate::diag::coarse_tick());
            task.park(None)
        }
        None => current_thread().park(kind, None),
    }
}

/// [`park_with`] recording a packed kind that carries an argument the public
/// kind does not show (a join's target); `kind` is what a thread records.
#[track_caller]
#[inline]
pub(crate) fn park_packed(packed: u64, kind: WaitKind) {
    match context::current_task() {
        Some(task) => {
            task.wait
                .record_packed(packed, Location::caller(), crate::diag::coarse_tick());
            task.park(None)
        }
        None => current_thread().park(kind, None),
    }
}

/// Like [`park`], but returns no later than `deadline` (shortly after it in
/// a coroutine: timers have millisecond resolution and never fire early).
#[track_caller]
#[inline]
pub fn park_deadline(deadline: Instant) {
    park_deadline_with(deadline, WaitKind::Park);
}

/// [`park_deadline`] that records what the caller waits on, as
/// [`park_with`] does.
#[track_caller]
#[inline]
pub fn park_deadline_with(deadline: Instant, kind: WaitKind) {
    match context::current_task() {
        Some(task) => {
            task.wait
                .record(kind, Location::caller(), crate::diag::coarse_tick());
            task.park(Some(deadline))
        }
        None => current_thread().park(kind, Some(deadline)),
    }
}

/// Like [`park`], but returns after at most about `timeout`.
#[track_caller]
pub fn park_timeout(timeout: Duration) {
    match crate::testing::now().checked_add(timeout) {
        Some(deadline) => park_deadline(deadline),
        None => park(),
    }
}

/// `ParkState`: no token, nobody parked.
const EMPTY: u8 = 0;
/// `ParkState`: the token is available.
const NOTIFIED: u8 = 1;
/// `ParkState`: parked off its stack; the worker's task reference is held
/// by the parked state (step 5).
const PARKED: u8 = 2;

/// A coroutine's park token: the transitions of the protocol in the module
/// docs, each one function. Only the state word lives here; what a
/// transition means for the task (its `Arc`, its run queue) is `Task`'s.
pub(crate) struct ParkState(AtomicU8);

impl ParkState {
    /// No token, not parked.
    pub(crate) fn new() -> ParkState {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// Step 1, by the coroutine: takes a token that is already there.
    /// True means it was, and `park` returns without switching.
    #[inline]
    pub(crate) fn try_take_token(&self) -> bool {
        // A plain load first: the token is usually absent, and a failing
        // compare-exchange costs as much as a successful one.
        self.0.load(Ordering::Relaxed) == NOTIFIED
            && self
                .0
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Step 2, by the worker once the coroutine is off its stack: marks it
    /// parked unless a token arrived meanwhile. False means it did, and the
    /// worker must queue the coroutine again at once.
    #[inline]
    pub(crate) fn try_park(&self) -> bool {
        self.0
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Step 3, by any waker: makes the token available. True means the
    /// coroutine was parked and this caller, alone among all racing
    /// unparkers, must schedule it (and takes the reference of step 5).
    #[inline]
    pub(crate) fn unpark(&self) -> bool {
        self.0.swap(NOTIFIED, Ordering::AcqRel) == PARKED
    }

    /// Whether the coroutine is parked off its stack with no token (read
    /// by the deadlock check; the state may change right after).
    pub(crate) fn is_parked(&self) -> bool {
        self.0.load(Ordering::SeqCst) == PARKED
    }

    /// Step 4, by the coroutine when it runs again after a park: consumes
    /// the token that woke it.
    #[inline]
    pub(crate) fn resumed(&self) {
        self.0.swap(EMPTY, Ordering::Acquire);
    }
}

/// The protocol's steps as a coroutine's task takes them (the "coroutine
/// protocol" above); `ParkState` holds the word, these the task's side: its
/// timer, its `Arc`, its run queue.
impl Task {
    /// Parks this task's coroutine (the coroutine protocol above, steps 1,
    /// 2 and 4).
    pub(crate) fn park(&self, deadline: Option<Instant>) {
        if self.park_state.try_take_token() {
            return;
        }
        if let Some(b) = &self.bubble {
            return self.park_in_bubble(b, deadline);
        }
        let timer = match deadline {
            Some(d) => {
                if d <= Instant::now() {
                    return;
                }
                Some(scheduler::insert_timer(d, self.arc()))
            }
            None => None,
        };
        self.suspend(Request::Park);
        if let Some(key) = timer {
            scheduler::cancel_timer(key);
        }
        self.park_state.resumed();
    }

    /// [`park`](Task::park) for a member of a testing bubble: its deadline
    /// is a virtual timer, and an IO or blocking wait stops the bubble's
    /// clock while it lasts (`testing/bubble.rs`).
    #[cold]
    fn park_in_bubble(&self, b: &crate::testing::Bubble, deadline: Option<Instant>) {
        let timer = match deadline {
            Some(d) => {
                if d <= b.now() {
                    return;
                }
                Some(b.insert_timer(d, crate::timer::Due::Task(self.arc())))
            }
            None => None,
        };
        let kind = self.wait.kind();
        // A socket wait with a deadline is durable while its socket has
        // nothing for it (bubble.rs invariant 3); other IO waits are not.
        let socket = timer.and(kind.socket_poll());
        let nondurable = socket.is_none() && kind.is_external();
        if nondurable {
            b.enter_nondurable();
        }
        let socket_key = socket.map(|s| b.enter_socket_wait(s));
        self.suspend(Request::Park);
        if let Some(k) = socket_key {
            b.leave_socket_wait(k);
        }
        if nondurable {
            b.leave_nondurable();
        }
        if let Some(key) = timer {
            b.cancel_timer(key);
        }
        self.park_state.resumed();
    }

    /// Runs on the worker after the coroutine suspended with `Park`: marks
    /// the task parked unless a token arrived. On success the worker's
    /// reference moves into the parked state (park.rs step 5); otherwise
    /// the caller must queue the task again and keeps its reference.
    pub(crate) fn try_mark_parked(self: Arc<Task>) -> Result<(), Arc<Task>> {
        if self.park_state.try_park() {
            // The matching `from_raw` is in `unpark`.
            let _ = Arc::into_raw(self);
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Whether it is parked right now, off its stack, with no wake-up on
    /// its way (the deadlock check).
    pub(crate) fn is_parked_now(&self) -> bool {
        self.park_state.is_parked()
    }

    /// Makes the token available; schedules the task if it was parked.
    pub(crate) fn unpark(&self) {
        if self.park_state.unpark() {
            // SAFETY: seeing `PARKED` makes us the one taker of the
            // reference `try_mark_parked` turned into a raw pointer (park.rs
            // steps 3 and 5); that pointer is `self`'s address, since the
            // task lives in that `Arc` (task invariant 1).
            let task = unsafe { Arc::from_raw(self as *const Task) };
            scheduler::schedule_woken(task);
        }
    }
}

/// Model checks of the park token (run with `.ci/loom`). One coroutine and
/// its worker are the model's main thread (the coroutine's switch to its
/// worker is sequential there), its run queue is a counter of schedules,
/// and wakers are the other threads. The transitions are `ParkState`'s own
/// functions, called as `Task::park`, `Task::try_mark_parked` and
/// `Task::unpark` call them.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread::{self, Thread};
    use loom::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    struct Model {
        state: ParkState,
        /// Schedules made by `unpark` (pushes on the task's run queue).
        queued: AtomicUsize,
        /// Stands for what goes with the worker's task reference (step 5):
        /// written by whoever holds the reference, so loom reports a data
        /// race if the hand-off through the state word does not order the
        /// worker's writes before the scheduling waker's reads.
        owned: loom::cell::UnsafeCell<usize>,
    }

    // SAFETY: `owned` is only touched by whoever holds the worker's task
    // reference, one party at a time by the protocol under test; that is
    // the claim loom checks (a violation is reported, never undefined).
    unsafe impl Sync for Model {}

    /// The coroutine's side: how many times the worker marked it parked,
    /// and how many schedules it has been resumed by.
    #[derive(Default)]
    struct Coroutine {
        parks: usize,
        resumes: usize,
    }

    impl Model {
        fn new() -> Arc<Model> {
            Arc::new(Model {
                state: ParkState::new(),
                queued: AtomicUsize::new(0),
                owned: loom::cell::UnsafeCell::new(0),
            })
        }

        /// `Task::park` with the worker's half (`try_mark_parked`, then
        /// running other work until the task is queued again) inlined.
        fn park(&self, co: &mut Coroutine) {
            if self.state.try_take_token() {
                return;
            }
            // Suspended: from here on this is the worker, off the stack.
            // SAFETY: the worker holds the task reference until `try_park`.
            self.owned.with_mut(|p| unsafe { *p += 1 });
            if self.state.try_park() {
                co.parks += 1;
                while self.queued.load(Ordering::Acquire) == co.resumes {
                    thread::park();
                }
                co.resumes += 1;
                assert_eq!(co.resumes, co.parks, "a parked task was queued twice");
            }
            // Resumed (or queued again at once): back on the coroutine.
            self.state.resumed();
        }

        /// `Task::unpark` with `schedule_woken` as a queue push.
        fn unpark(&self, worker: &Thread) {
            if self.state.unpark() {
                // SAFETY: seeing PARKED hands us the worker's reference.
                self.owned.with_mut(|p| unsafe { *p += 1 });
                self.queued.fetch_add(1, Ordering::Release);
                worker.unpark();
            }
        }

        fn check_end(&self, co: &Coroutine) {
            let queued = self.queued.load(Ordering::Acquire);
            assert_eq!(queued, co.parks, "schedules and parks do not match");
        }
    }

    /// Wakers each publish one event and unpark; the coroutine waits until
    /// it has seen `wakers` events. A lost wake-up leaves it parked for
    /// good, which loom reports as a deadlock; a double schedule trips the
    /// assertions.
    fn wait_for_events(wakers: usize) {
        loom::model(move || {
            let m = Model::new();
            let events = Arc::new(AtomicUsize::new(0));
            let me = thread::current();
            let threads: Vec<_> = (0..wakers)
                .map(|_| {
                    let (m, events, me) = (m.clone(), events.clone(), me.clone());
                    loom::thread::spawn(move || {
                        events.fetch_add(1, Ordering::Release);
                        m.unpark(&me);
                    })
                })
                .collect();
            let mut co = Coroutine::default();
            while events.load(Ordering::Acquire) < wakers {
                m.park(&mut co);
            }
            for t in threads {
                t.join().unwrap();
            }
            m.check_end(&co);
        });
    }

    /// No lost wake-up: an unpark after the waker's condition is set always
    /// gets the coroutine to see the condition.
    #[test]
    fn no_lost_wake_up() {
        wait_for_events(1);
    }

    /// Two wakers race with the coroutine's park and its return from park:
    /// the task is queued once per park however the unparks interleave,
    /// and the second waker's event is never lost (step 4).
    #[test]
    fn racing_unparks_schedule_once_and_lose_nothing() {
        wait_for_events(2);
    }

    /// Token semantics: an unpark before the park makes the park return at
    /// once, without the worker marking the task parked; tokens do not
    /// accumulate.
    #[test]
    fn token_semantics() {
        loom::model(|| {
            let m = Model::new();
            let me = thread::current();
            let m2 = m.clone();
            let t = loom::thread::spawn(move || {
                m2.unpark(&me);
                m2.unpark(&me);
            });
            t.join().unwrap();
            let mut co = Coroutine::default();
            m.park(&mut co);
            assert_eq!(co.parks, 0, "a park with a token waiting switched out");
            assert!(!m.state.try_take_token(), "two unparks left two tokens");
            assert!(m.state.try_park(), "no token is left after one park");
            assert_eq!(m.queued.load(Ordering::Relaxed), 0);
        });
    }

    /// A waker that runs while the coroutine is switching out (between its
    /// failed token check and the worker's `try_park`) makes the worker
    /// queue it again at once, or finds it parked and queues it itself:
    /// never both, never neither.
    #[test]
    fn unpark_during_switch_out() {
        loom::model(|| {
            let m = Model::new();
            let me = thread::current();
            let m2 = m.clone();
            let t = loom::thread::spawn(move || m2.unpark(&me));
            let mut co = Coroutine::default();
            m.park(&mut co);
            t.join().unwrap();
            // Whichever way it went, the token was consumed exactly once.
            m.check_end(&co);
            assert!(!m.state.try_take_token());
        });
    }
}
