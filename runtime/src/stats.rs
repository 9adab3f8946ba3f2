//! Observability: a counters snapshot and a coroutine dump (Go's
//! `runtime.NumGoroutine` and goroutine profile).

use std::sync::atomic::Ordering;

use crate::scheduler;
pub use crate::task::State;

/// A snapshot of the runtime's counters. Fields may be added.
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
    /// The IO backend the reactor runs: `"io_uring"` or `"epoll"`
    /// ([`Config::io`](crate::Config::io), `GORO_IO`).
    pub io_backend: &'static str,
}

/// Takes a snapshot of the runtime's counters (starting the runtime if
/// needed). Counters are read one by one without stopping the world, so
/// sums can be off by the work in flight.
///
/// ```
/// let s = goro_runtime::stats();
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
    for w in rt.workers.iter() {
        s.spawned += w.counters.spawned.load(Ordering::Relaxed);
        finished += w.counters.finished.load(Ordering::Relaxed);
        s.steals += w.counters.steals.load(Ordering::Relaxed);
        parked += w.counters.parked.load(Ordering::Relaxed);
        saved += w.counters.saved_stack_bytes.load(Ordering::Relaxed);
        s.stack_copy_outs += w.counters.copy_outs.load(Ordering::Relaxed);
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
