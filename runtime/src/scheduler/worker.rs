//! A worker: the run loop of one scheduler thread.
//!
//! # Invariants
//!
//! 1. `WorkerLocal` is touched only by its own thread (it is reached through
//!    the thread-local context). Code running inside a coroutine on this
//!    worker may use it too, because the run loop holds no borrow of it
//!    across `resume`.
//! 2. A task popped from any queue is owned by this worker until it is
//!    queued again, marked parked, or finished; only then can another
//!    thread schedule it.
//! 3. Fresh tasks get their home and their stack here, at first resume.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corosensei::{CoroutineResult, Yielder};
use crossbeam_deque::{Steal, Worker};

use super::{Progress, Shared, WorkerCounters, bump, idle};
use crate::context;
use crate::stack::{self, Stack, shared};

/// Capacity of an empty ready queue that an idle worker keeps after a
/// burst (entries); a larger one is freed.
const READY_KEEP: usize = 4096;
use crate::task::{Body, Coroutine, Request, State, Task};

/// Consecutive picks allowed from `runnext` before the rest of the queue
/// gets a turn. High enough that a ping-pong pair runs without queue
/// traffic, low enough that a third runnable task waits at most a few
/// microseconds (each pick is a few hundred nanoseconds).
const MAX_RUNNEXT_STREAK: u32 = 64;
/// Every this many picks, look at the global injector and at other
/// workers' waiting fresh tasks first (a prime, as in Go's `schedule`, so it
/// does not beat in step with other periodic work).
const GLOBAL_INTERVAL: u32 = 61;
/// Every this many picks, advance timers and poll IO without blocking, so a
/// busy worker never starves timers or sockets.
const MAINTENANCE_INTERVAL: u32 = 61;
/// Most fresh tasks taken from the global queue at once (see
/// `take_injected`).
const INJECT_BATCH: usize = 8;
/// Inbox entries moved to `ready` per pick.
const INBOX_BATCH: usize = 128;
/// A thief takes fresh tasks from a worker holding at least this many...
const STEAL_BACKLOG: usize = 16;
/// ...or one that took other work this many picks in a row while they
/// waited (more than `MAX_RUNNEXT_STREAK`, so a ping-pong pair running
/// through `runnext` does not count as busy)...
const PASSED_OVER: u32 = 2 * MAX_RUNNEXT_STREAK;
/// ...or one whose run loop has not moved for this long (it is running one
/// coroutine that does not switch).
const STUCK: Duration = Duration::from_micros(5);
/// Most picks in one io_uring round before its entries are submitted: a
/// round normally ends sooner, when the local queues run dry; this bounds
/// how long an entry queued early in a long round waits (a pick is well
/// under a microsecond, so tens of microseconds at worst).
const ROUND_TASKS: u32 = 32;
/// A coroutine that spawns while this many fresh tasks already wait on
/// its worker yields once after queueing the new one (see `push_fresh`).
const SPAWN_BACKLOG: usize = 128;

/// The part of a worker only its own thread touches.
pub(crate) struct WorkerLocal {
    pub(crate) index: usize,
    pub(crate) shared: &'static Shared,
    runnext: Cell<Option<Arc<Task>>>,
    ready: RefCell<VecDeque<Arc<Task>>>,
    fresh: Worker<Arc<Task>>,
    tick: Cell<u32>,
    runnext_streak: Cell<u32>,
    /// Picks left that take fresh tasks before `ready` (set when a spawner
    /// yields to its backlog, see `push_fresh`).
    fresh_first: Cell<u32>,
    /// Whether the next pick from the local queues is `ready`'s turn.
    ready_turn: Cell<bool>,
    /// Per worker: the last `Progress::tick` this thief saw and when it
    /// first saw it (`fresh_waiting`).
    seen: RefCell<Box<[(u32, Instant)]>>,
    /// This worker's published progress (`shared.workers[index].progress`).
    progress: &'static Progress,
    /// This worker's `finished` count when it last trimmed the heap.
    trimmed_at: Cell<u64>,
    /// Whether the last sleep ended by its fresh-task recheck timeout
    /// (`idle.rs`, step 7).
    pub(crate) recheck_woke: Cell<bool>,
}

impl WorkerLocal {
    /// Entry point of a worker thread.
    pub(crate) fn launch(shared: &'static Shared, index: usize, fresh: Worker<Arc<Task>>) {
        crate::diag::runtime_thread_started();
        stack::prepare_thread();
        let local: &'static WorkerLocal = Box::leak(Box::new(WorkerLocal {
            index,
            shared,
            runnext: Cell::new(None),
            ready: RefCell::new(VecDeque::new()),
            fresh,
            tick: Cell::new(0),
            runnext_streak: Cell::new(0),
            fresh_first: Cell::new(0),
            ready_turn: Cell::new(false),
            seen: RefCell::new(vec![(u32::MAX, Instant::now()); shared.workers.len()].into()),
            progress: &shared.workers[index].progress,
            trimmed_at: Cell::new(0),
            recheck_woke: Cell::new(false),
        }));
        context::set_worker(local);
        crate::stack::bind_shard(index);
        local.busy_begin();
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `gettid` has no preconditions and cannot fail.
            let tid = unsafe { libc::gettid() };
            local.progress.tid.store(tid, Ordering::Relaxed);
        }
        local.run();
    }

    pub(crate) fn counters(&self) -> &WorkerCounters {
        &self.shared.workers[self.index].counters
    }

    /// Starts a busy spell (`WorkerCounters::busy_since`).
    fn busy_begin(&self) {
        let ns = self.shared.epoch.elapsed().as_nanos() as u64;
        self.counters().busy_since.store(ns + 1, Ordering::Relaxed);
    }

    /// Ends a busy spell: its length goes into `busy_ns` (stored before
    /// `busy_since` is cleared, so a reader may count a spell twice for a
    /// moment but never loses one).
    fn busy_end(&self) {
        let c = self.counters();
        let since = c.busy_since.load(Ordering::Relaxed);
        if since != 0 {
            let now = self.shared.epoch.elapsed().as_nanos() as u64 + 1;
            bump(&c.busy_ns, now.saturating_sub(since));
            c.busy_since.store(0, Ordering::Relaxed);
        }
    }

    /// Queues a fresh task spawned on this worker, in the deque other
    /// workers steal from (though only once it waits: `fresh_waiting`).
    /// A coroutine that spawns a partner and then waits for it thus hands
    /// its worker to the partner, and the pair stays on one worker; one
    /// that spawns and then runs on without switching loses its children
    /// to a thief. (Go's `newproc` puts the child in `runnext` instead,
    /// where Go's thieves can still reach it; goro's `runnext` is a plain
    /// cell only its worker touches, so a child there could be stranded
    /// behind a spawner that never switches.)
    ///
    /// Returns whether the spawning coroutine should yield: its worker
    /// already holds `SPAWN_BACKLOG` coroutines that have not started.
    /// Starting a coroutine (first touch of its stack, its first run up to
    /// where it parks) costs several times what spawning one does, so a
    /// spawn loop left alone runs far ahead of the workers that start its
    /// children, and a child spawned late waits tens of milliseconds to
    /// run. Yielding there is the spawn-side version of Go's time-slice
    /// preemption and tokio's cooperative budget: the spawner's own worker
    /// starts half of the backlog before the loop goes on (one yield per
    /// `SPAWN_BACKLOG / 2` spawns, not one per spawn), and the backlog stays
    /// under `SPAWN_BACKLOG`.
    pub(crate) fn push_fresh(&self, task: Arc<Task>) -> bool {
        self.fresh.push(task);
        if context::current_task().is_none() || self.fresh.len() < SPAWN_BACKLOG {
            return false;
        }
        self.fresh_first.set(SPAWN_BACKLOG as u32 / 2);
        true
    }

    /// Puts `task` in the `runnext` slot. The task it displaces goes where
    /// other workers can steal it if it may run anywhere (not started yet,
    /// or migratable), and to this worker's `ready` queue otherwise.
    fn set_runnext(&self, task: Arc<Task>) {
        if let Some(old) = self.runnext.replace(Some(task)) {
            if old.is_stealable() {
                self.fresh.push(old);
            } else {
                self.ready.borrow_mut().push_back(old);
            }
        }
    }

    /// Queues a woken task homed here. From inside a coroutine the task
    /// goes to `runnext` (it was woken by the running coroutine and should
    /// run next); from the run loop itself (timers, IO) to `ready`.
    pub(crate) fn push_woken(&self, task: Arc<Task>) {
        if context::current_task().is_some() {
            self.set_runnext(task);
        } else {
            self.ready.borrow_mut().push_back(task);
        }
    }

    /// Queues a woken migratable task on this worker: `runnext` from inside
    /// a coroutine (Go's wake-to-the-waker's-processor), otherwise the
    /// stealable deque, where an idle worker may take it.
    pub(crate) fn push_woken_stealable(&self, task: Arc<Task>) {
        if context::current_task().is_some() {
            self.set_runnext(task);
        } else {
            self.fresh.push(task);
            self.shared.idle.notify(self.shared);
        }
    }

    /// Advances the pick counter and publishes it.
    fn advance_tick(&self) -> u32 {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        self.progress.tick.store(tick, Ordering::Relaxed);
        tick
    }

    fn run(&'static self) -> ! {
        let reactor = &self.shared.reactor;
        loop {
            let tick = self.advance_tick();
            if tick.is_multiple_of(MAINTENANCE_INTERVAL) {
                self.maintenance();
            }
            // io_uring: one `io_uring_enter` per scheduling round submits
            // what this round's coroutines queued, and completions are
            // reaped from shared memory (`reactor/uring.rs`). A round ends
            // when the local queues run dry, or after `ROUND_TASKS` picks.
            if reactor.wants_round(self.index)
                && (tick.is_multiple_of(ROUND_TASKS) || self.local_queues_empty())
            {
                reactor.round(self.index);
            }
            match self.next_task(tick) {
                Some(task) => {
                    self.found_work();
                    self.run_task(task);
                }
                None => self.idle(),
            }
        }
    }

    /// See "Where a worker looks for work" in `scheduler/mod.rs`.
    fn next_task(&self, tick: u32) -> Option<Arc<Task>> {
        if let Some(t) = self.runnext.take() {
            let streak = self.runnext_streak.get();
            if streak < MAX_RUNNEXT_STREAK {
                self.runnext_streak.set(streak + 1);
                return Some(t);
            }
            self.ready.borrow_mut().push_back(t);
        }
        self.runnext_streak.set(0);
        self.drain_inbox();
        if tick.is_multiple_of(GLOBAL_INTERVAL)
            && let Some(t) = self.take_injected().or_else(|| self.steal())
        {
            return Some(t);
        }
        // Fresh tasks get every other pick here (an explicit turn, not the
        // tick's parity: a pair of coroutines waking each other alternates
        // `runnext` and `ready` picks, so every `ready` pick would land on
        // the same parity and fresh tasks would never start).
        let fresh_first = self.fresh_first.get();
        let fresh_turn = if fresh_first > 0 {
            self.fresh_first.set(fresh_first - 1);
            true
        } else {
            !self.ready_turn.replace(!self.ready_turn.get())
        };
        // Spawns from outside the runtime wait in the global queue: on
        // fresh tasks' turn they count as fresh, so a worker busy with
        // wake-ups still starts them at half its picks (not only every
        // `GLOBAL_INTERVAL` picks, which let 100k spawns from a thread
        // wait hundreds of milliseconds behind their own timers).
        let picked = if fresh_turn {
            self.pop_fresh()
                .or_else(|| self.take_injected())
                .or_else(|| self.pop_ready())
        } else {
            self.pop_ready()
                .or_else(|| self.pop_fresh())
                .or_else(|| self.take_injected())
        };
        picked.or_else(|| self.steal())
    }

    fn pop_fresh(&self) -> Option<Arc<Task>> {
        let t = self.fresh.pop()?;
        self.set_passed_over(0);
        Some(t)
    }

    /// Pops `ready`, counting the pick as passing over fresh tasks if any
    /// wait (what thieves read in `fresh_waiting`).
    fn pop_ready(&self) -> Option<Arc<Task>> {
        let t = {
            let mut ready = self.ready.borrow_mut();
            let t = ready.pop_front()?;
            let depth = &self.counters().ready_depth;
            if depth.load(Ordering::Relaxed) != ready.len() as u64 {
                depth.store(ready.len() as u64, Ordering::Relaxed);
            }
            t
        };
        if self.fresh.is_empty() {
            self.set_passed_over(0);
        } else {
            self.set_passed_over(self.passed_over().load(Ordering::Relaxed) + 1);
        }
        Some(t)
    }

    /// This worker's count of picks that passed over fresh tasks (only
    /// this worker writes it: plain loads and stores, no read-modify-write).
    fn passed_over(&self) -> &std::sync::atomic::AtomicU32 {
        &self.shared.workers[self.index].progress.passed_over
    }

    fn set_passed_over(&self, n: u32) {
        let p = self.passed_over();
        if p.load(Ordering::Relaxed) != n {
            p.store(n, Ordering::Relaxed);
        }
    }

    /// Whether worker `victim` has fresh tasks worth stealing: tasks that
    /// would otherwise wait. A coroutine starts where it is first run and
    /// stays there, so where it starts decides, for its whole life, which
    /// coroutines it shares a worker (and a cache) with. A coroutine that
    /// spawns a few partners and then waits for them will run them itself
    /// within microseconds; a thief that took them at once would turn
    /// every message between them into a cross-worker wake-up (measured:
    /// select over 4 unbuffered channels, 700 ns per message spread over
    /// two workers against 114 ns on one). So a thief leaves fresh tasks
    /// alone unless the victim has a backlog (`STEAL_BACKLOG`), keeps
    /// choosing other work over them (`PASSED_OVER`), or is stuck in one
    /// coroutine (`STUCK`): Go's thieves likewise leave a running P's
    /// `runnext` alone for a few microseconds.
    fn fresh_waiting(&self, victim: usize) -> bool {
        let v = &self.shared.workers[victim];
        if victim == self.index || v.stealer.is_empty() {
            return false;
        }
        if v.stealer.len() >= STEAL_BACKLOG
            || v.progress.passed_over.load(Ordering::Relaxed) >= PASSED_OVER
            || v.sleep.load(Ordering::Relaxed) != idle::AWAKE
        {
            return true;
        }
        let tick = v.progress.tick.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut seen = self.seen.borrow_mut();
        if seen[victim].0 != tick {
            seen[victim] = (tick, now);
            return false;
        }
        now.duration_since(seen[victim].1) >= STUCK
    }

    /// Whether some worker holds fresh tasks, waiting or not (a worker
    /// that saw only tasks it may not steal yet sleeps with a timeout).
    pub(crate) fn fresh_elsewhere(&self) -> bool {
        self.shared
            .workers
            .iter()
            .enumerate()
            .any(|(i, w)| i != self.index && !w.stealer.is_empty())
    }

    fn drain_inbox(&self) {
        let inbox = &self.shared.workers[self.index].inbox;
        if inbox.is_empty() {
            return;
        }
        let mut ready = self.ready.borrow_mut();
        for _ in 0..INBOX_BATCH {
            match inbox.steal() {
                Steal::Success(t) => ready.push_back(t),
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
    }

    /// Takes a batch from the global queue: at most `INJECT_BATCH`, not as
    /// much as fits. Coroutines start (and so are pinned) where they are
    /// first run, so a worker that grabbed a whole burst of spawns would
    /// keep all of them for life while the others were still waking up.
    /// (Go's `globrunqget` takes `len / workers + 1`; reading the
    /// injector's length spins under concurrent pushes, so a fixed small
    /// batch stands in for it.)
    ///
    /// An empty queue is seen by two plain loads first: a steal attempt
    /// issues a full fence even when there is nothing to take, and this is
    /// called on every other pick. Missing a task pushed a moment ago only
    /// delays it to a later pick; a worker about to sleep re-checks every
    /// queue after announcing itself (`idle.rs`).
    fn take_injected(&self) -> Option<Arc<Task>> {
        if self.shared.injector.is_empty() {
            return None;
        }
        loop {
            match self
                .shared
                .injector
                .steal_batch_with_limit_and_pop(&self.fresh, INJECT_BATCH)
            {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    fn steal(&self) -> Option<Arc<Task>> {
        let n = self.shared.workers.len();
        if n < 2 {
            return None;
        }
        let start = fastrand::usize(0..n);
        for i in 0..n {
            let victim = (start + i) % n;
            if !self.fresh_waiting(victim) {
                continue;
            }
            loop {
                match self.shared.workers[victim]
                    .stealer
                    .steal_batch_and_pop(&self.fresh)
                {
                    Steal::Success(t) => {
                        self.counters().steals.fetch_add(1, Ordering::Relaxed);
                        return Some(t);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    /// Whether any queue this worker could take from holds work.
    pub(crate) fn work_visible(&self) -> bool {
        let rt = self.shared;
        let ready_or_next = {
            let next = self.runnext.take();
            let has = next.is_some();
            self.runnext.set(next);
            has
        };
        ready_or_next
            || !self.ready.borrow().is_empty()
            || !self.fresh.is_empty()
            || !rt.workers[self.index].inbox.is_empty()
            || !rt.injector.is_empty()
            || (0..rt.workers.len()).any(|i| self.fresh_waiting(i))
    }

    /// Timers and IO for a busy worker, without blocking: the due timers of
    /// every wheel (a worker asleep in `thread::park` counts on someone to
    /// fire its timers, and the reactor owner may be busy too; an empty or
    /// not-yet-due wheel costs one atomic load), and, when sockets are
    /// registered and nobody has looked for a while, one non-blocking
    /// `epoll_wait`.
    fn maintenance(&self) {
        let rt = self.shared;
        let now = rt.clock.now_tick();
        crate::diag::refresh_coarse();
        let fired: usize = rt
            .workers
            .iter()
            .map(|w| w.timers.fire_due(now, true))
            .sum();
        if fired > 0 {
            bump(&self.counters().timer_fires, fired as u64);
        }
        if rt.reactor.has_sources() && rt.idle.io_poll_due() && rt.idle.try_own_reactor() {
            let events = rt.reactor.poll(Some(std::time::Duration::ZERO), None);
            bump(&self.counters().io_events, events as u64);
            rt.idle.release_reactor();
            // A worker that went to sleep while we held the reactor slept
            // without it: let it take the reactor over.
            rt.idle.hand_off_reactor(rt);
        }
    }

    /// A woken searcher found work: let another sleeper take over the
    /// search if it was the last one (Go's "spinning" hand-off).
    fn found_work(&self) {
        self.shared.idle.found_work(self.shared, self.index);
    }

    /// Whether `runnext`, `ready` and the fresh deque are all empty.
    fn local_queues_empty(&self) -> bool {
        let next = self.runnext.take();
        let empty = next.is_none();
        self.runnext.set(next);
        empty && self.ready.borrow().is_empty() && self.fresh.is_empty()
    }

    fn idle(&'static self) {
        // Submit what the last round queued before searching or sleeping:
        // a search spins for microseconds with IO it could have started.
        let reactor = &self.shared.reactor;
        if reactor.wants_round(self.index) {
            reactor.round(self.index);
            if self.work_visible() {
                return;
            }
        }
        self.busy_end();
        // The queue is empty.
        if self.counters().ready_depth.load(Ordering::Relaxed) != 0 {
            self.counters().ready_depth.store(0, Ordering::Relaxed);
        }
        // Frames evicted from shared stacks as plain copies are packed:
        // what is parked now stays parked a while (`stack/shared.rs`,
        // step 4).
        shared::compact_all(self.counters());
        // Pooled stacks beyond the reserve give their pages back while
        // there is nothing to run (stack pool invariant 7).
        stack::scavenge(&|| self.work_visible());
        // So do the heap's pages after a burst of exits (task headers, and
        // on shared stacks the saved frames: `stack/shared.rs`).
        let finished = self.counters().finished.load(Ordering::Relaxed);
        if finished.wrapping_sub(self.trimmed_at.get()) >= stack::trim::TRIM_AFTER_EXITS
            && !self.work_visible()
        {
            self.trimmed_at.set(finished);
            // A burst of wake-ups grew the ready queue (8 MB per million
            // queued): an empty queue gives that back before the heap is
            // trimmed.
            let mut ready = self.ready.borrow_mut();
            if ready.is_empty() && ready.capacity() > READY_KEEP {
                *ready = VecDeque::new();
            }
            drop(ready);
            stack::trim::after_burst();
        }
        super::idle::sleep(self);
        crate::diag::refresh_coarse();
        // Awake again: the watchdog may have gone to sleep for good while
        // every worker slept.
        self.shared.watchdog.worker_awake();
        self.busy_begin();
    }

    /// Runs `task` until it yields, parks or finishes.
    fn run_task(&self, mut task: Arc<Task>) {
        // SAFETY: invariant 2: this worker owns the task now, so nothing
        // else touches its body.
        let body = unsafe { &mut *task.body.get() };
        let counters = self.counters();
        if task.was_parked.replace(false) {
            self.count_parked(-1);
            bump(&counters.wakes, 1);
        }
        // A shared-stack coroutine's frames go onto its stack first (and a
        // fresh one is bound to a stack): `stack/shared.rs` steps 2 and 4.
        if task.frames.is_shared()
            && let shared::Acquire::Wait = shared::acquire(&task, self.index, self.counters())
        {
            return;
        }
        if let Body::Fresh = body {
            self.start(&task, body);
        } else if task.home() != self.index as u32 {
            // Only a migratable task is resumed away from its home: this
            // worker becomes its home.
            debug_assert!(task.migratable());
            task.set_home(self.index as u32);
        }
        let Body::Running(co) = body else {
            unreachable!("goro: scheduled a finished task");
        };
        let raw = task.raw_stack.get();
        let progress = self.progress;
        loop {
            task.set_state(State::Running);
            context::set_current_task(Some(&task));
            // What the watchdog reads (with `tick`): two relaxed stores to
            // a line only this worker writes.
            progress.running.store(task.id(), Ordering::Relaxed);
            bump(&counters.polls, 1);
            let result = co.resume(());
            progress.running.store(0, Ordering::Relaxed);
            context::set_current_task(None);
            stack::check_canary(&raw, &task);
            if task.frames.is_shared() {
                shared::switched_out(&task, &self.ready);
            }
            match result {
                CoroutineResult::Yield(Request::Yield) => {
                    bump(&counters.yields, 1);
                    task.set_state(State::Runnable);
                    match task.bubble.clone() {
                        Some(b) => b.yielded(task),
                        None => self.ready.borrow_mut().push_back(task),
                    }
                }
                CoroutineResult::Yield(Request::Park) => {
                    task.set_state(State::Parked);
                    // Set before the task can be seen as parked, so that
                    // the resume that follows its wake-up finds it.
                    task.was_parked.set(true);
                    self.count_parked(1);
                    bump(&counters.parks, 1);
                    let bubble = task.bubble.clone();
                    match task.try_mark_parked() {
                        // Our reference now belongs to the parked state
                        // (park.rs step 5).
                        Ok(()) => {
                            // Off its stack: the bubble's baton moves.
                            if let Some(b) = bubble {
                                b.release();
                            }
                            return;
                        }
                        Err(t) => {
                            // The token arrived while it switched out: run
                            // it again now, as `park` would have returned
                            // at once.
                            task = t;
                            task.was_parked.set(false);
                            self.count_parked(-1);
                            bump(&counters.wakes, 1);
                            // It switched: a new episode for the watchdog.
                            self.advance_tick();
                            continue;
                        }
                    }
                }
                CoroutineResult::Return(()) => {
                    self.finish(&task, body);
                    if let Some(b) = &task.bubble {
                        b.exited();
                    }
                }
            }
            return;
        }
    }

    /// Adjusts this worker's parked count (single writer: no RMW).
    fn count_parked(&self, delta: i64) {
        let c = &self.counters().parked;
        c.store(c.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }

    /// Binds a stack and makes the coroutine (invariant 3).
    fn start(&self, task: &Arc<Task>, body: &mut Body) {
        task.set_home(self.index as u32);
        self.shared.registry.insert(task);
        let mut raw = task.raw_stack.get();
        if !raw.prepared {
            stack::prepare(&mut raw);
            task.raw_stack.set(raw);
        }
        let task_ptr: *const Task = Arc::as_ptr(task);
        let co = Coroutine::with_stack(Stack::new(&raw), move |y: &Yielder<(), Request>, ()| {
            // SAFETY: the worker holds an `Arc` to the task while it
            // resumes the coroutine, which is the only time this runs.
            let task = unsafe { &*task_ptr };
            task.set_yielder(y);
            // The payload catches the user's panics; this catches what
            // could escape from dropping a coroutine-local or a result, so
            // that nothing unwinds into the worker.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.payload().run()))
                .is_err()
            {
                eprintln!(
                    "goro: a panic escaped while coroutine {} was finishing; ignored",
                    task.id()
                );
            }
        });
        *body = Body::Running(co);
    }

    fn finish(&self, task: &Arc<Task>, body: &mut Body) {
        let Body::Running(co) = std::mem::replace(body, Body::Done) else {
            unreachable!()
        };
        if task.frames.is_shared() {
            // The shared stack stays with its set.
            let _ = co.into_stack();
            shared::finished(task, self.counters());
        } else {
            let _ = co.into_stack();
            task.pool.release(task.raw_stack.get());
        }
        task.set_state(State::Done);
        self.shared.registry.remove(task);
    }
}
