//! The M:N scheduler.
//!
//! # Glossary
//!
//! - **task**: one coroutine's shared header (`task.rs`), held by `Arc`.
//! - **worker**: an OS thread that runs tasks; there are `GORO_WORKERS` of
//!   them (default: the available parallelism). Each has thread-owned state
//!   (`WorkerLocal`, in `worker.rs`) and shared state (`WorkerShared`).
//! - **fresh** task: spawned, never resumed. It has no stack and no home
//!   and may run on any worker: fresh tasks sit in the global *injector*
//!   (spawned from outside a worker) or in a worker's stealable *fresh*
//!   deque (spawned from a worker), and idle workers steal them in batches
//!   once they *wait* (`WorkerLocal::fresh_waiting`: a backlog, a busy
//!   owner, or an owner stuck in one coroutine). Where a coroutine starts
//!   decides its worker for life, so a coroutine and the partners it spawns
//!   and then waits for are left together.
//! - **started** task: resumed at least once. It is pinned to its *home*
//!   worker for life (the soundness rule below) and is queued only there:
//!   in the home's `runnext` slot, its `ready` queue, or its `inbox` (wakes
//!   from other threads).
//!
//! # Soundness before speed: why started coroutines never migrate
//!
//! Rust code keeps references into thread-local storage across ordinary
//! calls (`thread_rng()`, `LocalKey::with` bodies, errno), and LLVM may
//! cache a thread-local address within a function. A coroutine moved to
//! another thread while suspended would resume with such a cached address
//! pointing at the *old* thread's storage: a data race that safe code cannot
//! see. So work stealing moves only fresh tasks, which have no frames yet.
//! The price is that a started task waits for its own worker even when
//! another is idle; the runnext slot and the fact that most wake-ups happen
//! on the waker's own worker keep that cheap in practice.
//!
//! # Where a worker looks for work (`WorkerLocal::next_task`)
//!
//! 1. `runnext`: the task the running coroutine just woke (Go's runnext).
//!    A ping-pong pair hands the worker back and forth through it without
//!    touching a queue. At most `MAX_RUNNEXT_STREAK` picks in a row come from
//!    it, so such a pair cannot starve the rest of the queue.
//! 2. The `inbox`, drained into `ready`.
//! 3. Every `GLOBAL_INTERVAL` picks, the global injector first, so spawns
//!    from outside are not starved by a busy worker; then other workers'
//!    fresh tasks if they wait (as in step 5). Without this a worker kept
//!    busy by a yield loop never stole, and fresh tasks queued behind a
//!    coroutine that never switches stayed there until it did, even
//!    though the "stuck" rule said they were waiting.
//! 4. `ready` and fresh work (the local `fresh` deque, then the injector),
//!    taking turns (an explicit flag, not the tick's parity, which a pair
//!    waking each other aliases), so neither a yield loop nor a spawn loop
//!    starves the other. A spawn loop that built a backlog gets several
//!    fresh turns in a row (`fresh_first`, see `push_fresh`).
//! 5. The injector, then stealing half of another worker's fresh deque if
//!    its tasks wait.
//! 6. Nothing: go idle (`idle.rs`).
//!
//! # Watching for stuck workers (`watchdog.rs`)
//!
//! Each worker publishes, in `Progress`, its pick counter and the id of the
//! coroutine it is resuming (relaxed stores of its own values); a monitor
//! thread reads them to report a worker that has run one coroutine without
//! a switch for longer than the blocked-worker threshold.

pub(crate) mod idle;
pub(crate) mod watchdog;
pub(crate) mod worker;

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Instant;

use crossbeam_deque::{Injector, Stealer, Worker};
use crossbeam_utils::CachePadded;

pub(crate) use idle::Idle;
use worker::WorkerLocal;

use crate::blocking::BlockingPool;
use crate::config::Resolved;
use crate::reactor::Reactor;
use crate::registry::Registry;
use crate::stack::Pool;
use crate::task::{State, Task};
use crate::timer::{Clock, Due, TimerKey, Timers};
use crate::{context, stack};
use watchdog::Watchdog;

/// Counters one worker owns (relaxed; summed by `stats()`).
#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub(crate) spawned: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) steals: AtomicU64,
    /// Parked tasks homed here, counted until they run again. Written only
    /// by this worker (plain load and store, no read-modify-write on the
    /// park path), read by `stats()`.
    pub(crate) parked: AtomicI64,
    /// Shared stacks (`stack/shared.rs`), single writer like `parked`:
    /// bytes of the buffers that hold evicted frames...
    pub(crate) saved_stack_bytes: AtomicI64,
    /// ...and the copies out of and into shared stacks.
    pub(crate) copy_outs: AtomicU64,
    pub(crate) copy_out_bytes: AtomicU64,
    pub(crate) copy_ins: AtomicU64,
    pub(crate) copy_in_bytes: AtomicU64,
    /// ...and the saved frames packed after they stayed evicted.
    pub(crate) packs: AtomicU64,
    // The runtime metrics of `Stats::per_worker` (`stats.rs` documents
    // what each counts). All single writer, this worker: `bump`.
    /// Coroutine resumes.
    pub(crate) polls: AtomicU64,
    /// Coroutines that parked here...
    pub(crate) parks: AtomicU64,
    /// ...and resumes of a coroutine that had parked (its wake-ups).
    pub(crate) wakes: AtomicU64,
    /// `yield_now` switches.
    pub(crate) yields: AtomicU64,
    /// Times this worker slept (`thread::park` or a blocking reactor wait).
    pub(crate) sleeps: AtomicU64,
    /// Timers and alarms this worker fired (any wheel).
    pub(crate) timer_fires: AtomicU64,
    /// IO readiness events this worker's reactor polls delivered.
    pub(crate) io_events: AtomicU64,
    /// Nanoseconds spent out of `idle` (running or looking for work in
    /// the queues), over finished busy spells...
    pub(crate) busy_ns: AtomicU64,
    /// ...and the start of the current spell, in ns since `Shared::epoch`
    /// plus one; 0 while idle.
    pub(crate) busy_since: AtomicU64,
    /// Length of the `ready` queue as of this worker's last pick from it
    /// (a gauge; the queue itself is not readable from other threads).
    pub(crate) ready_depth: AtomicU64,
}

/// Adds `n` to a counter only the calling thread writes: a relaxed load
/// and store, no read-modify-write (a `lock`-prefixed add costs ~5 ns on
/// x86 even uncontended; this costs a plain add).
#[inline(always)]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The part of a worker other threads may touch.
pub(crate) struct WorkerShared {
    /// Started tasks homed here, woken by other threads.
    pub(crate) inbox: Injector<Arc<Task>>,
    /// Steals fresh tasks from this worker's deque.
    pub(crate) stealer: Stealer<Arc<Task>>,
    pub(crate) timers: Timers,
    /// `idle::AWAKE`, `idle::PARKED` or `idle::POLLING`.
    pub(crate) sleep: AtomicU8,
    /// Set by `Idle::notify` when it wakes this worker to look for work
    /// (`idle::Searchers`, model-checked: hence the shim's type).
    pub(crate) searching: crate::loom::sync::atomic::AtomicBool,
    pub(crate) thread: OnceLock<Thread>,
    pub(crate) counters: CachePadded<WorkerCounters>,
    /// What thieves read to tell whether this worker's fresh tasks are
    /// waiting (`WorkerLocal::fresh_waiting`).
    pub(crate) progress: CachePadded<Progress>,
}

/// Published by a worker's run loop (relaxed stores of its own values).
#[derive(Default)]
pub(crate) struct Progress {
    /// The run loop's pick counter (also advanced when a coroutine is
    /// resumed again at once, so that it changes at every resume).
    pub(crate) tick: AtomicU32,
    /// Picks in a row that took other work while fresh tasks waited.
    pub(crate) passed_over: AtomicU32,
    /// The id of the coroutine being resumed, 0 between resumes (read by
    /// the watchdog).
    pub(crate) running: AtomicU64,
    /// The worker thread's OS thread id (Linux), 0 until it starts (read by
    /// the watchdog to tell what a stuck worker is blocked in).
    pub(crate) tid: AtomicI32,
}

/// Runtime-wide state. Created once, leaked, never torn down: the workers
/// live as long as the process.
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerShared]>,
    pub(crate) injector: Injector<Arc<Task>>,
    pub(crate) idle: Idle,
    pub(crate) reactor: Reactor,
    pub(crate) clock: Clock,
    pub(crate) default_pool: &'static Pool,
    pub(crate) default_stack_size: usize,
    pub(crate) blocking: BlockingPool,
    pub(crate) registry: Registry,
    /// Spawns from threads that are not workers.
    pub(crate) outside_spawned: CachePadded<AtomicU64>,
    /// The blocked-worker watchdog (`watchdog.rs`).
    pub(crate) watchdog: Watchdog,
    /// When the runtime started: the origin of `busy_since`.
    pub(crate) epoch: Instant,
}

static RUNTIME: OnceLock<&'static Shared> = OnceLock::new();

/// The runtime, started on first use.
///
/// # Panics
///
/// If the runtime cannot start: a bad `GORO_WORKERS` or `GORO_STACK_SIZE`,
/// or the OS refusing threads or a poller. The message says which.
pub(crate) fn get() -> &'static Shared {
    if let Some(rt) = RUNTIME.get() {
        return rt;
    }
    RUNTIME.get_or_init(start)
}

/// The runtime if it has started.
pub(crate) fn try_get() -> Option<&'static Shared> {
    RUNTIME.get().copied()
}

fn start() -> &'static Shared {
    let cfg: Resolved = match crate::config::resolve_and_lock() {
        Ok(c) => c,
        Err(msg) => panic!("goro: cannot start the runtime: {msg}"),
    };
    stack::install_handler();
    crate::panic_report::install_panic_hook();
    let deques: Vec<Worker<Arc<Task>>> = (0..cfg.workers).map(|_| Worker::new_fifo()).collect();
    let workers = deques
        .iter()
        .map(|d| WorkerShared {
            inbox: Injector::new(),
            stealer: d.stealer(),
            timers: Timers::new(),
            sleep: AtomicU8::new(idle::AWAKE),
            searching: crate::loom::sync::atomic::AtomicBool::new(false),
            thread: OnceLock::new(),
            counters: CachePadded::new(WorkerCounters::default()),
            progress: CachePadded::new(Progress::default()),
        })
        .collect();
    // Before the first stack is mapped.
    stack::choose_guards(cfg.light_guards);
    let reactor = Reactor::new(cfg.io, cfg.workers).unwrap_or_else(|e| {
        panic!("goro: cannot start the runtime: cannot create the IO poller: {e}")
    });
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        workers,
        injector: Injector::new(),
        idle: Idle::new(),
        reactor,
        clock: Clock::new(),
        default_pool: stack::pool_for(cfg.stack_size),
        default_stack_size: cfg.stack_size,
        blocking: BlockingPool::new(),
        registry: Registry::new(cfg.workers),
        outside_spawned: CachePadded::new(AtomicU64::new(0)),
        watchdog: Watchdog::new(cfg.blocked_worker_threshold, cfg.blocked_worker_reporter),
        epoch: Instant::now(),
    }));
    for (index, deque) in deques.into_iter().enumerate() {
        let handle = std::thread::Builder::new()
            .name(format!("goro-worker-{index}"))
            .spawn(move || WorkerLocal::launch(shared, index, deque))
            .unwrap_or_else(|e| {
                panic!("goro: cannot start the runtime: cannot spawn worker thread {index}: {e}")
            });
        let _ = shared.workers[index].thread.set(handle.thread().clone());
    }
    watchdog::launch(shared);
    crate::diag::refresh_coarse();
    crate::diag::signal::launch();
    shared
}

impl Shared {
    /// Queues a task that has not started (spawn). Returns whether the
    /// spawning coroutine should yield (`WorkerLocal::push_fresh`).
    pub(crate) fn push_fresh(&self, task: Arc<Task>) -> bool {
        let backlog = match self.count_spawn() {
            Some(w) => w.push_fresh(task),
            None => {
                self.injector.push(task);
                false
            }
        };
        self.idle.notify(self);
        backlog
    }

    /// Queues a fresh task for worker `index` alone (`Builder::worker`):
    /// homed there before it starts, so no queue treats it as stealable,
    /// and delivered through the worker's inbox like a pinned wake-up.
    pub(crate) fn push_fresh_on(&self, task: Arc<Task>, index: usize) {
        task.set_home(index as u32);
        self.count_spawn();
        self.workers[index].inbox.push(task);
        self.wake_worker(index);
    }

    /// Counts a spawn: on the spawning worker of this runtime, which it
    /// returns, or as a spawn from outside the workers.
    fn count_spawn(&self) -> Option<&'static WorkerLocal> {
        match context::worker() {
            Some(w) if std::ptr::eq(w.shared, self) => {
                w.counters().spawned.fetch_add(1, Ordering::Relaxed);
                Some(w)
            }
            _ => {
                self.outside_spawned.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Wakes worker `index` if it sleeps (it has pinned work in its inbox).
    pub(crate) fn wake_worker(&self, index: usize) {
        std::sync::atomic::fence(Ordering::SeqCst);
        let w = &self.workers[index];
        match w.sleep.load(Ordering::SeqCst) {
            idle::PARKED => {
                if let Some(t) = w.thread.get() {
                    t.unpark();
                }
            }
            idle::POLLING => self.reactor.notify(),
            _ => {}
        }
    }

    /// The earliest timer tick over all workers (`u64::MAX` if none).
    pub(crate) fn next_timer_tick(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.timers.next_tick())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Fires due timers on every wheel; returns how many fired.
    pub(crate) fn fire_all_timers(&self) -> usize {
        let now = self.clock.now_tick();
        self.workers
            .iter()
            .map(|w| w.timers.fire_due(now, false))
            .sum()
    }
}

/// Schedules a woken, started task (park protocol step 3): on its home
/// worker; a migratable task on the waking worker instead, or in the global
/// queue when the waker is not a worker.
pub(crate) fn schedule_woken(task: Arc<Task>) {
    if let Some(b) = &task.bubble {
        // One member of a bubble runs at a time (testing/bubble.rs).
        let b = b.clone();
        b.make_ready(task);
        return;
    }
    schedule_woken_direct(task);
}

/// [`schedule_woken`] without the bubble's baton.
pub(crate) fn schedule_woken_direct(task: Arc<Task>) {
    let rt = get();
    task.set_state(State::Runnable);
    if task.migratable() {
        match context::worker() {
            Some(w) if std::ptr::eq(w.shared, rt) => w.push_woken_stealable(task),
            _ => {
                rt.injector.push(task);
                rt.idle.notify(rt);
            }
        }
        return;
    }
    let home = task.home() as usize;
    match context::worker() {
        Some(w) if w.index == home => w.push_woken(task),
        _ => {
            rt.workers[home].inbox.push(task);
            rt.wake_worker(home);
        }
    }
}

/// Counts the running coroutine as finished (called by its entry closure,
/// on its worker, just before it publishes its result).
pub(crate) fn count_finished() {
    if let Some(w) = context::worker() {
        w.counters().finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// A timer of a parked coroutine: the wheel it is on, and its key there.
/// (A migratable coroutine may wake on another worker than the one whose
/// wheel holds its timer.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimerHandle {
    worker: usize,
    key: TimerKey,
}

/// Puts a timer for the running coroutine on its worker's wheel.
pub(crate) fn insert_timer(deadline: Instant, task: Arc<Task>) -> TimerHandle {
    let w = context::worker().expect("goro: timer from a coroutine outside a worker");
    let rt = w.shared;
    insert_on(rt, w.index, deadline, Due::Task(task))
}

/// Puts an alarm on a wheel: the calling worker's, or, from a thread that
/// is not a worker, any one (every wheel is advanced by whoever drives
/// timers). Starts the runtime if needed.
pub(crate) fn insert_alarm(deadline: Instant, target: Arc<dyn crate::alarm::Fire>) -> TimerHandle {
    let (rt, index) = match context::worker() {
        Some(w) => (w.shared, w.index),
        None => {
            let rt = get();
            (rt, fastrand::usize(..rt.workers.len()))
        }
    };
    insert_on(rt, index, deadline, Due::Alarm(target))
}

fn insert_on(rt: &Shared, index: usize, deadline: Instant, due: Due) -> TimerHandle {
    let tick = rt.clock.deadline_tick(deadline);
    let (key, earliest) = rt.workers[index].timers.insert(tick, due);
    if earliest && tick < rt.idle.reactor_wake_tick() {
        // The worker sleeping in the reactor would wake too late for this.
        rt.reactor.notify();
    }
    TimerHandle { worker: index, key }
}

/// Cancels a timer, on whichever wheel holds it; false if it already
/// fired.
pub(crate) fn cancel_timer(timer: TimerHandle) -> bool {
    get().workers[timer.worker].timers.cancel(timer.key)
}
