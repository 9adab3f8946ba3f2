//! Observability: a counters snapshot and a coroutine dump (Go's
//! `runtime.NumGoroutine` and goroutine profile).
//!
//! The runtime metrics ([`Stats::per_worker`]) and how they are kept are
//! described on [`Stats`].

use std::sync::atomic::Ordering;

use crate::scheduler;
pub use crate::task::State;

/// A snapshot of the runtime's counters. Fields may be added.
///
/// # Runtime metrics
///
/// [`Stats`] carries, besides the coroutine counts, per-worker metrics in
/// [`Stats::per_worker`] ([`WorkerStats`]), in the manner of tokio's
/// `RuntimeMetrics`: what each counts and when it moves is documented on
/// its field. They are always on, and cheap enough to be:
///
/// 1. Every counter has one writer, its worker thread, which updates it
///    with a relaxed load and a relaxed store of its own value (no
///    read-modify-write, no fence) on a cache line only that worker
///    writes. The run loop pays two such updates per resume (`polls`, and
///    `parks` or `yields`), one more per wake-up (`wakes`).
/// 2. No clock is read on the resume or park path: busy time is measured
///    per *busy spell*, from the moment a worker leaves its idle path to
///    the moment it enters it again (one `Instant::now()` at each end,
///    next to a futex or an `epoll_wait` that costs far more).
/// 3. [`stats`] reads everything with relaxed loads, without stopping the
///    world: each value is one the worker stored, but values taken together
///    may be off by the work in flight, and a busy spell that is ending as
///    it is read may be counted twice in `busy` for that one read (never
///    lost). Cumulative counters only grow (they wrap at `u64::MAX`).
/// 4. Queue depths are gauges read from the queues themselves where other
///    threads can read them (the stealable deque, the inbox, the global
///    queue, the blocking pool's queue); the worker's private `ready` queue
///    is published as its length at the worker's last pick from it (0 once
///    the worker goes idle).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Worker threads.
    pub workers: usize,
    /// Coroutines spawned and not yet finished.
    pub coroutines: u64,
    /// Of those, parked (waiting on a channel, lock, timer, IO...).
    pub parked: u64,
    /// Of those, runnable or running.
    pub runnable: u64,
    /// Coroutines spawned since start.
    pub spawned: u64,
    /// Batches of fresh coroutines stolen between workers.
    pub steals: u64,
    /// Threads in the blocking pool.
    pub blocking_threads: usize,
    /// Coroutine stacks mapped (in use or pooled).
    pub stacks: usize,
    /// Pending timers.
    pub timers: usize,
    /// Episodes the blocked-worker watchdog reported since start: times a
    /// worker ran one coroutine without a switch for longer than
    /// [`Config::blocked_worker_threshold`](crate::Config::blocked_worker_threshold)
    /// (each episode counts once however long it lasts; 0 while the
    /// watchdog is off).
    pub blocked_worker_episodes: u64,
    /// Bytes of pooled stack memory the scavenger has given back to the OS
    /// since start (pooled stacks beyond a small reserve, after a burst).
    pub stack_bytes_scavenged: u64,
    /// Bytes of heap held right now by the saved frames of shared-stack
    /// coroutines that are off their stack (`Builder::shared_stack`):
    /// what the parked ones cost beyond their task headers.
    pub saved_stack_bytes: u64,
    /// Times a shared-stack coroutine's frames were copied off its stack
    /// (another coroutine needed the stack), since start...
    pub stack_copy_outs: u64,
    /// ...and the bytes so copied.
    pub stack_copy_out_bytes: u64,
    /// Times saved frames were copied back onto a shared stack...
    pub stack_copy_ins: u64,
    /// ...and the bytes so copied.
    pub stack_copy_in_bytes: u64,
    /// Times saved frames were packed (zero words left out, repeats
    /// shortened) because their coroutine stayed off its stack: a copy out
    /// is plain at first, and packed only if the coroutine is still parked
    /// after its worker evicted a few others or went idle.
    pub stack_packs: u64,
    /// The IO backend the reactor runs: `"io_uring"` or `"epoll"`
    /// ([`Config::io`](crate::Config::io), `GORO_IO`).
    pub io_backend: &'static str,
    /// Per-worker metrics, indexed by worker (`goro-worker-N` is entry N).
    pub per_worker: Vec<WorkerStats>,
    /// Coroutines in the global queue: spawned from threads that are not
    /// workers (or woken from them, when they may run anywhere) and not yet
    /// taken by a worker. Moves up at such a spawn, down when a worker takes
    /// a batch (at most 8 at once).
    pub global_queue_depth: usize,
    /// Jobs waiting in the blocking pool's queue for a thread
    /// ([`blocking`](crate::blocking), DNS): non-zero only while every one
    /// of the pool's threads (at most 512) is busy, or for the moment
    /// between a submit and a thread taking the job.
    pub blocking_queue_depth: usize,
    /// Of [`blocking_threads`](Stats::blocking_threads), those idle and
    /// waiting for a job (they exit after 10 s without one).
    pub blocking_idle_threads: usize,
    /// Jobs submitted to the blocking pool since start (one per
    /// `blocking` call from a coroutine; a plain thread runs its job itself
    /// and submits nothing).
    pub blocking_jobs: u64,
}

/// The metrics of one worker thread (an entry of [`Stats::per_worker`]).
///
/// Cumulative counters count since the runtime started and only grow;
/// depths are gauges. See [`Stats`] for how they are
/// kept and how exact a reading is.
///
/// ```
/// let s = goro::stats();
/// assert_eq!(s.per_worker.len(), s.workers);
/// let polls: u64 = s.per_worker.iter().map(|w| w.polls).sum();
/// goro::spawn(|| ()).join().unwrap();
/// let after: u64 = goro::stats().per_worker.iter().map(|w| w.polls).sum();
/// assert!(after > polls);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Time this worker spent busy: out of its idle path, running
    /// coroutines, timers and IO polls or looking through the queues.
    /// Moves when a busy spell ends (the worker goes idle) and, for the
    /// spell in progress, at every read. The idle path (a short spin
    /// looking for work, then sleeping) is not busy time. tokio's
    /// `worker_total_busy_duration`.
    pub busy: std::time::Duration,
    /// Coroutine resumes on this worker: one when a coroutine starts, and
    /// one each time it runs again after a yield or a park. tokio's
    /// `worker_poll_count`.
    pub polls: u64,
    /// Times a coroutine parked on this worker (a channel, lock, timer or
    /// IO wait, `park`...). Moves when the coroutine has switched off its
    /// stack. `parks - wakes` is about the number parked right now.
    pub parks: u64,
    /// Times a parked coroutine homed on this worker was resumed again (its
    /// wake-up reached the run loop), including a wake-up that arrived while
    /// it was still switching out.
    pub wakes: u64,
    /// Times a coroutine yielded (`yield_now`, or a spawn loop's yield to
    /// its backlog) on this worker. tokio's `worker_noop_count` is the
    /// nearest; goro's yields are real switches.
    pub yields: u64,
    /// Times this worker went to sleep (in `thread::park`, or waiting in
    /// the reactor as its owner) after finding no work. tokio's
    /// `worker_park_count`.
    pub sleeps: u64,
    /// Batches of fresh coroutines this worker stole from other workers.
    /// tokio's `worker_steal_operations`.
    pub steals: u64,
    /// Coroutines spawned by coroutines running on this worker.
    pub spawned: u64,
    /// Timers and alarms this worker fired (on any worker's wheel: busy
    /// workers fire every due timer every 61 picks, the reactor owner
    /// after each wait): sleeps and timeouts that ended, `after`/`tick`
    /// alarms, context deadlines. Not counted: timers of a testing
    /// bubble's virtual clock.
    pub timer_fires: u64,
    /// IO readiness events this worker delivered from the reactor (one per
    /// socket and poll, which wakes every coroutine waiting on that socket
    /// in that direction). Moves after a blocking reactor wait of the
    /// reactor owner and after a busy worker's non-blocking poll (at most
    /// every 100 µs).
    pub io_events: u64,
    /// Coroutines queued on this worker right now: its stealable deque of
    /// fresh (and migratable woken) coroutines, its inbox of wake-ups from
    /// other threads, and its `ready` queue as of its last pick from it.
    /// The `runnext` slot (at most one) is not counted. tokio's
    /// `worker_local_queue_depth`.
    pub local_queue_depth: usize,
}

/// Takes a snapshot of the runtime's counters (starting the runtime if
/// needed). Counters are read one by one without stopping the world, so
/// sums can be off by the work in flight.
///
/// ```
/// let s = goro::stats();
/// assert!(s.workers >= 1);
/// ```
pub fn stats() -> Stats {
    let rt = scheduler::get();
    let mut s = Stats {
        workers: rt.workers.len(),
        io_backend: rt.reactor.backend_name(),
        ..Stats::default()
    };
    let mut finished = 0u64;
    let mut parked = 0i64;
    let mut saved = 0i64;
    s.spawned = rt.outside_spawned.load(Ordering::Relaxed);
    let now_ns = rt.epoch.elapsed().as_nanos() as u64 + 1;
    for w in rt.workers.iter() {
        let c = &w.counters;
        let since = c.busy_since.load(Ordering::Relaxed);
        let mut busy = c.busy_ns.load(Ordering::Relaxed);
        if since != 0 {
            busy += now_ns.saturating_sub(since);
        }
        s.per_worker.push(WorkerStats {
            busy: std::time::Duration::from_nanos(busy),
            polls: c.polls.load(Ordering::Relaxed),
            parks: c.parks.load(Ordering::Relaxed),
            wakes: c.wakes.load(Ordering::Relaxed),
            yields: c.yields.load(Ordering::Relaxed),
            sleeps: c.sleeps.load(Ordering::Relaxed),
            steals: c.steals.load(Ordering::Relaxed),
            spawned: c.spawned.load(Ordering::Relaxed),
            timer_fires: c.timer_fires.load(Ordering::Relaxed),
            io_events: c.io_events.load(Ordering::Relaxed),
            local_queue_depth: w.stealer.len()
                + w.inbox.len()
                + c.ready_depth.load(Ordering::Relaxed) as usize,
        });
        s.spawned += w.counters.spawned.load(Ordering::Relaxed);
        finished += w.counters.finished.load(Ordering::Relaxed);
        s.steals += w.counters.steals.load(Ordering::Relaxed);
        parked += w.counters.parked.load(Ordering::Relaxed);
        saved += w.counters.saved_stack_bytes.load(Ordering::Relaxed);
        s.stack_copy_outs += w.counters.copy_outs.load(Ordering::Relaxed);
        s.stack_packs += w.counters.packs.load(Ordering::Relaxed);
        s.stack_copy_out_bytes += w.counters.copy_out_bytes.load(Ordering::Relaxed);
        s.stack_copy_ins += w.counters.copy_ins.load(Ordering::Relaxed);
        s.stack_copy_in_bytes += w.counters.copy_in_bytes.load(Ordering::Relaxed);
        s.timers += w.timers.len();
    }
    s.saved_stack_bytes = saved.max(0) as u64;
    s.coroutines = s.spawned.saturating_sub(finished);
    s.parked = (parked.max(0) as u64).min(s.coroutines);
    s.runnable = s.coroutines - s.parked;
    s.blocking_threads = rt.blocking.threads();
    (
        s.blocking_queue_depth,
        s.blocking_idle_threads,
        s.blocking_jobs,
    ) = rt.blocking.metrics();
    s.global_queue_depth = rt.injector.len();
    s.stacks = crate::stack::total_stacks();
    s.blocked_worker_episodes = rt.watchdog.episodes();
    s.stack_bytes_scavenged = crate::stack::scavenged_bytes();
    s
}

/// One live coroutine, as listed by [`coroutines`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoroutineInfo {
    /// Unique id (also `JoinHandle::id`).
    pub id: u64,
    /// The name given to `Builder::name`.
    pub name: Option<String>,
    /// What it is doing.
    pub state: State,
    /// While it is parked: what it waits on, where and since when.
    pub wait: Option<crate::WaitInfo>,
}

/// Lists live coroutines with their names, states and wait reasons, like
/// Go's goroutine dump ([`dump`](crate::dump) prints it). Costs time
/// proportional to the number of coroutines.
pub fn coroutines() -> Vec<CoroutineInfo> {
    let mut out = Vec::new();
    for e in crate::diag::dump::snapshot() {
        if e.thread {
            continue;
        }
        out.push(CoroutineInfo {
            id: e.id,
            name: e.name,
            state: e.state,
            wait: e.wait,
        });
    }
    out.sort_by_key(|c| c.id);
    out
}
