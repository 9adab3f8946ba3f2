//! A task: one coroutine's shared header, its entry closure and its result
//! packet, in one allocation.
//!
//! `spawn` allocates an `Arc<Task<Job<T, F>>>` and erases it to
//! `Arc<Task<dyn Payload>>` (written `Arc<Task>`): one allocation per
//! coroutine instead of three (header, boxed closure, result packet), which
//! matters because workers free what spawners allocate and the allocator's
//! lock is then contended.
//!
//! # Invariants
//!
//! 1. A task is always owned through an `Arc<Task>`; [`Task::arc`] relies on
//!    it to mint new strong references from `&Task`.
//! 2. `body`, `yielder`, `locals` and `timer` are touched only by the one
//!    worker that currently runs the task (a task is in at most one run queue
//!    and resumed by at most one worker at a time) or by the coroutine
//!    itself while it runs. That is why the `UnsafeCell`s and `Cell`s here
//!    are sound although `Task` is `Sync`.
//! 3. `home` is written by the worker that first resumes the task, before
//!    the coroutine runs any user code; only after that can anyone hold an
//!    `Unparker` for it, and only the home worker resumes it again. A
//!    *migratable* task (an `unsafe` opt-in) is the exception: whichever
//!    worker resumes it becomes its home, and its wakes go to the waker's
//!    worker or to stealable queues.
//! 4. `park_state` follows the protocol in `park.rs`.
//! 5. A task whose coroutine is suspended is never dropped with it: the
//!    registry holds a strong reference until the coroutine returns, and
//!    if a suspended coroutine is ever dropped anyway its stack and its
//!    coroutine-locals are leaked, not dropped on a foreign thread.
//! 6. A finished coroutine destroyed its coroutine-locals on its worker,
//!    inside the coroutine (`local.rs`), so `locals` is empty whichever
//!    thread drops the last `Arc<Task>`; the user code a task can still
//!    run there is only the `Send` parts of its payload (a result nobody
//!    took, an entry closure that never ran).

use std::cell::{Cell, UnsafeCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use corosensei::Yielder;

use crate::join::Packet;
use crate::local::{self, LocalMap};
use crate::park::ParkState;
use crate::scheduler;
use crate::stack::{Frames, Pool, RawStack, Stack};

/// What a coroutine asks of its worker when it suspends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Queue me behind the other runnable work.
    Yield,
    /// Park me unless my token arrived meanwhile.
    Park,
}

pub(crate) type Coroutine = corosensei::Coroutine<(), Request, (), Stack>;

/// What the task will run, is running, or ran.
pub(crate) enum Body {
    /// Not started: the entry closure is in the payload; no stack is bound.
    Fresh,
    /// Started: the coroutine and its stack.
    Running(Coroutine),
    /// Finished; the stack went back to the pool.
    Done,
}

/// Scheduling state, for stats and the coroutine dump only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Queued, waiting for a worker.
    Runnable = 0,
    /// Running on a worker right now.
    Running = 1,
    /// Parked, waiting for an unpark (a channel, lock, timer, IO...).
    Parked = 2,
    /// Finished.
    Done = 3,
}

pub(crate) const NO_HOME: u32 = u32::MAX;

/// The type-erased part of a task: the entry closure and the result.
pub(crate) trait Payload: Send + Sync {
    /// Runs the entry closure and publishes its result. Called once, by the
    /// task's worker, inside the task's coroutine.
    fn run(&self);
}

/// The payload of a coroutine returning `T`. `#[repr(C)]` with the packet
/// first, so a `JoinHandle<T>` finds the packet at the payload's address
/// without knowing `F`.
#[repr(C)]
pub(crate) struct Job<T, F> {
    pub(crate) packet: Packet<T>,
    entry: UnsafeCell<Option<F>>,
}

impl<T, F> Job<T, F> {
    pub(crate) fn new(packet: Packet<T>, f: F) -> Job<T, F> {
        Job {
            packet,
            entry: UnsafeCell::new(Some(f)),
        }
    }
}

// SAFETY: `entry` is taken once, by the worker running the task (invariant
// 2); `packet` synchronises itself (join.rs). `T` and `F` move to the
// coroutine's thread, hence `Send`.
unsafe impl<T: Send, F: Send> Sync for Job<T, F> {}

impl<T: Send, F: FnOnce() -> T + Send> Payload for Job<T, F> {
    fn run(&self) {
        // SAFETY: invariant 2: only the running task's coroutine gets here,
        // once.
        let f = unsafe { (*self.entry.get()).take() }.expect("goro: coroutine entry ran twice");
        let result = catch_unwind(AssertUnwindSafe(f));
        let panicked = result.is_err();
        // The order is join.rs's "How a coroutine finishes": hand over the
        // result (or drop it here if nobody wants it, locals still alive),
        // then destroy the locals, then let the joiner go.
        self.packet.returned(result);
        let teardown = local::destroy_current();
        // Counted before the joiner is let go, so that whoever joins never
        // sees this coroutine as still live in `stats()`.
        scheduler::count_finished();
        self.packet.complete(panicked, teardown);
    }
}

/// The shared header of one coroutine, followed by its payload.
pub(crate) struct Task<P: ?Sized + Payload = dyn Payload> {
    /// The park token (`park.rs`, which holds the protocol's code too).
    pub(crate) park_state: ParkState,
    sched_state: AtomicU8,
    home: AtomicU32,
    id: u64,
    /// Whether this coroutine may be resumed on any worker (see
    /// `Builder::migratable`).
    migratable: bool,
    /// Boxed twice: one word in every header, not two (few coroutines
    /// are named).
    #[allow(clippy::box_collection, clippy::redundant_allocation)]
    name: Option<Box<Box<str>>>,
    pub(crate) pool: &'static Pool,
    pub(crate) registry_key: AtomicU64,
    pub(crate) body: UnsafeCell<Body>,
    yielder: Cell<*const Yielder<(), Request>>,
    pub(crate) locals: UnsafeCell<LocalMap>,
    /// The stack taken for this task at spawn, lent to its coroutine at
    /// start; read by the overflow checks (worker-only once started).
    pub(crate) raw_stack: Cell<RawStack>,
    /// Whether the worker counted this task as parked (worker-only).
    pub(crate) was_parked: Cell<bool>,
    /// Shared-stack state (`stack/shared.rs`); inert for a private stack.
    pub(crate) frames: Frames,
    /// What it waits on while parked (`diag/wait.rs`).
    pub(crate) wait: crate::diag::wait::WaitSlot,
    /// The testing bubble it belongs to (`testing/`), if any.
    pub(crate) bubble: Option<Arc<crate::testing::Bubble>>,
    payload: P,
}

// SAFETY: the non-`Sync` fields (`body`, `yielder`, `locals`,
// `raw_stack`) are only accessed by the single worker running the task or
// by the coroutine on that worker (invariant 2); everything else is atomic
// or immutable, and the payload is `Sync` itself. A started coroutine never
// leaves its worker.
unsafe impl<P: ?Sized + Payload> Sync for Task<P> {}
// SAFETY: as above; moving the `Arc<Task>` between queues moves only the
// pointer, and the coroutine's stack-resident state stays on its worker.
unsafe impl<P: ?Sized + Payload> Send for Task<P> {}

impl<P: Payload> Task<P> {
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site (spawn), each argument a field set once"
    )]
    pub(crate) fn new(
        id: u64,
        name: Option<Box<str>>,
        migratable: bool,
        pool: &'static Pool,
        stack: RawStack,
        frames: Frames,
        bubble: Option<Arc<crate::testing::Bubble>>,
        payload: P,
    ) -> Task<P> {
        Task {
            park_state: ParkState::new(),
            sched_state: AtomicU8::new(State::Runnable as u8),
            home: AtomicU32::new(NO_HOME),
            id,
            migratable,
            name: name.map(Box::new),
            pool,
            registry_key: AtomicU64::new(u64::MAX),
            body: UnsafeCell::new(Body::Fresh),
            yielder: Cell::new(std::ptr::null()),
            locals: UnsafeCell::new(LocalMap::new()),
            raw_stack: Cell::new(stack),
            was_parked: Cell::new(false),
            frames,
            wait: crate::diag::wait::WaitSlot::new(),
            bubble,
            payload,
        }
    }
}

impl<P: ?Sized + Payload> Task<P> {
    pub(crate) fn payload(&self) -> &P {
        &self.payload
    }

    /// The coroutine's id, unique in the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The name given to `Builder::name`, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref().map(|n| &**n)
    }

    /// The usable size of the stacks of this task's pool, in bytes (for
    /// messages).
    pub(crate) fn stack_size(&self) -> usize {
        self.pool.size()
    }

    /// Whether the coroutine opted into running on any worker.
    pub(crate) fn migratable(&self) -> bool {
        self.migratable
    }

    /// Whether another worker may take this task from a stealable queue:
    /// it has not started yet, or it opted into migration.
    pub(crate) fn is_stealable(&self) -> bool {
        self.migratable || self.home() == NO_HOME
    }

    /// The worker this task is pinned to, or `NO_HOME` before it starts.
    pub(crate) fn home(&self) -> u32 {
        self.home.load(Ordering::Acquire)
    }

    pub(crate) fn set_home(&self, worker: u32) {
        self.home.store(worker, Ordering::Release);
    }

    pub(crate) fn state(&self) -> State {
        match self.sched_state.load(Ordering::Relaxed) {
            0 => State::Runnable,
            1 => State::Running,
            2 => State::Parked,
            _ => State::Done,
        }
    }

    pub(crate) fn set_state(&self, s: State) {
        self.sched_state.store(s as u8, Ordering::Relaxed);
    }
}

impl Task {
    /// A new strong reference to this task (invariant 1).
    pub(crate) fn arc(&self) -> Arc<Task> {
        let p = self as *const Task;
        // SAFETY: every `Task` lives inside an `Arc` (invariant 1) and the
        // caller's `&self` proves that Arc's count is at least one now, so
        // adding a count and rebuilding an `Arc` from the same pointer is
        // the documented use of these two functions.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Called once on the coroutine's own stack when it starts.
    pub(crate) fn set_yielder(&self, y: &Yielder<(), Request>) {
        self.yielder.set(y);
    }

    /// Switches back to the worker with `req`; returns when resumed.
    /// Must be called from this task's own coroutine.
    pub(crate) fn suspend(&self, req: Request) {
        let y = self.yielder.get();
        debug_assert!(!y.is_null(), "suspend outside the task's coroutine");
        // SAFETY: the yielder lives in the coroutine's bottom frame, which
        // stays alive for as long as the coroutine runs, and we are inside
        // that coroutine (callers reach here only through
        // `context::current_task`, which names the running task). The
        // stack pointer is recorded on the way for shared stacks (step 3).
        self.frames.suspend(unsafe { &*y }, req);
    }
}

impl<P: ?Sized + Payload> Drop for Task<P> {
    fn drop(&mut self) {
        match std::mem::replace(self.body.get_mut(), Body::Done) {
            Body::Running(coroutine) if !coroutine.done() => {
                // Invariant 5: unwinding a suspended coroutine here could run
                // its destructors on a foreign thread; leak it instead, and
                // its coroutine-locals with it, for the same reason.
                std::mem::forget(coroutine);
                std::mem::forget(std::mem::replace(self.locals.get_mut(), LocalMap::new()));
            }
            // A shared stack is not the task's to give back.
            Body::Running(_) | Body::Fresh if self.frames.is_shared() => {}
            Body::Running(coroutine) => {
                let _ = coroutine.into_stack();
                self.pool.release(self.raw_stack.get());
            }
            // Never started: the stack taken at spawn is still ours. The
            // entry closure drops with the payload.
            Body::Fresh => self.pool.release(self.raw_stack.get()),
            Body::Done => {}
        }
    }
}
