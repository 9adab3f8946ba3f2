//! Idle workers: how they sleep, and how they are woken.
//!
//! # Goal
//!
//! An idle runtime uses no CPU (no periodic polling), yet work never waits
//! for a sleeping worker when one could run it, and a burst of spawns wakes
//! workers one at a time instead of all at once.
//!
//! # The protocol
//!
//! 1. A worker with nothing to run first tries to become the *reactor
//!    owner* (at most one at a time). The owner sleeps in `epoll_wait` with
//!    a timeout set by the earliest timer of all wheels; the others sleep
//!    in `thread::park` with no timeout.
//! 2. Before sleeping it publishes `sleep` (`POLLING` or `PARKED`) and joins
//!    the sleeper list, then issues a SeqCst fence and looks at every queue
//!    once more. Anyone who queues work does the mirror image: push, SeqCst
//!    fence, read the sleeper's state. Either the sleeper sees the work or
//!    the waker sees the sleeper (Dekker), so no wake-up is lost.
//! 3. Pinned work (a task woken for its home worker) wakes exactly that
//!    worker: `unpark` for `PARKED`, `Poller::notify` for `POLLING`.
//! 4. Stealable work (fresh tasks) calls `notify`: if no worker is already
//!    *searching*, one sleeper is taken off the list, marked searching, and
//!    woken. While a searcher exists nobody else is woken (no thundering
//!    herd). A searcher that finds work hands the search to one more
//!    sleeper (there may be more work); one that finds none stops searching
//!    *before* its final re-check in step 2, so work queued meanwhile is
//!    seen either by it or by a waker that now sees no searcher. The count
//!    of searchers equals the number of workers whose `searching` flag is
//!    set: every change of a flag is a swap, and only the swap that
//!    actually flips it moves the count.
//! 5. When the reactor owner wakes and leaves to run work while timers are
//!    pending and another worker sleeps in `park`, it wakes one such worker
//!    to take over the reactor, so timers of a busy runtime keep firing.
//!
//! 6. Before sleeping, a worker that ran out of work *searches* for a short
//!    bounded time (`SEARCH_BEFORE_SLEEP`), counted as a searcher, so that
//!    producers skip the wake-up system call while it looks (Go's spinning
//!    M). The bound keeps an idle runtime at ~0% CPU: the search happens
//!    once per transition to idle, never periodically.
//!
//! 7. Fresh tasks are stealable only once they are *waiting* (see
//!    `WorkerLocal::fresh_waiting`: a backlog, a busy owner, or an owner
//!    stuck in one coroutine). A worker that sees fresh tasks it may not
//!    take yet sleeps with a short timeout (`RECHECK_FRESH`) instead of
//!    indefinitely, because "stuck" becomes true without anyone queueing
//!    anything. With no fresh task anywhere it sleeps with no timeout, so
//!    an idle runtime still never polls.
//!
//! Rejected: a dedicated timer/IO thread (an extra context switch on every
//! timer and every readiness event, which DESIGN.md rules out); waking all
//! sleepers on every spawn (a thundering herd on spawn loops); sleeping at
//! once with no search (measured: a futex wake per few spawns, ~400 ns per
//! spawn from a thread).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

use super::Shared;
use super::worker::WorkerLocal;

pub(crate) const AWAKE: u8 = 0;
pub(crate) const PARKED: u8 = 1;
pub(crate) const POLLING: u8 = 2;

pub(crate) struct Idle {
    sleepers: Mutex<Vec<usize>>,
    num_sleepers: AtomicUsize,
    searching: AtomicUsize,
    reactor_owned: AtomicBool,
    /// The tick the reactor owner will wake at by itself; 0 when nobody
    /// sleeps in the reactor (so no timer insert needs to notify it).
    reactor_wake: AtomicU64,
    /// When a busy worker last polled IO (µs since an arbitrary start).
    last_io_poll: AtomicU64,
}

/// How often busy workers poll IO when nobody sleeps in the reactor: often
/// enough that a socket's readiness waits at most this long behind CPU
/// work, rarely enough that the system call stays off the hot path (every
/// 61 picks would be every few microseconds).
const BUSY_IO_POLL_INTERVAL_US: u64 = 100;

fn micros_now() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

impl Idle {
    pub(crate) fn new() -> Idle {
        Idle {
            sleepers: Mutex::new(Vec::new()),
            num_sleepers: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
            reactor_owned: AtomicBool::new(false),
            reactor_wake: AtomicU64::new(0),
            last_io_poll: AtomicU64::new(0),
        }
    }

    /// Whether a busy worker should poll IO now (and claims the turn).
    pub(crate) fn io_poll_due(&self) -> bool {
        let now = micros_now();
        let last = self.last_io_poll.load(Ordering::Relaxed);
        now.saturating_sub(last) >= BUSY_IO_POLL_INTERVAL_US
            && self
                .last_io_poll
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    pub(crate) fn try_own_reactor(&self) -> bool {
        !self.reactor_owned.load(Ordering::Relaxed)
            && self
                .reactor_owned
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    pub(crate) fn release_reactor(&self) {
        self.reactor_owned.store(false, Ordering::Release);
    }

    pub(crate) fn reactor_wake_tick(&self) -> u64 {
        self.reactor_wake.load(Ordering::SeqCst)
    }

    /// Step 4: stealable work was queued.
    pub(crate) fn notify(&self, rt: &Shared) {
        fence(Ordering::SeqCst);
        if self.num_sleepers.load(Ordering::SeqCst) == 0
            || self.searching.load(Ordering::SeqCst) > 0
        {
            return;
        }
        self.wake_searcher(rt);
    }

    fn wake_searcher(&self, rt: &Shared) {
        let index = {
            let mut s = self.sleepers.lock();
            // Re-check under the lock: another notifier may have won.
            if self.searching.load(Ordering::SeqCst) > 0 {
                return;
            }
            let Some(i) = s.pop() else { return };
            self.num_sleepers.fetch_sub(1, Ordering::SeqCst);
            // Count the sleeper only if its flag goes from false to true
            // here: it may still hold the flag from its own search, in the
            // moment between joining the list and giving the search up
            // (`sleep`), and counting it twice would leave `searching`
            // above zero for good, after which `notify` never wakes anyone.
            if !rt.workers[i].searching.swap(true, Ordering::AcqRel) {
                self.searching.fetch_add(1, Ordering::SeqCst);
            }
            i
        };
        rt.wake_worker(index);
    }

    /// A searcher stopped searching; if it found work and was the last one,
    /// wake another to keep looking (step 4).
    pub(crate) fn searcher_done(&self, rt: &Shared, found: bool) {
        let last = self.searching.fetch_sub(1, Ordering::SeqCst) == 1;
        if found && last && self.num_sleepers.load(Ordering::SeqCst) > 0 {
            self.wake_searcher(rt);
        }
    }

    fn add_sleeper(&self, index: usize) {
        let mut s = self.sleepers.lock();
        s.push(index);
        self.num_sleepers.fetch_add(1, Ordering::SeqCst);
    }

    fn remove_sleeper(&self, index: usize) {
        let mut s = self.sleepers.lock();
        if let Some(pos) = s.iter().position(|&i| i == index) {
            s.swap_remove(pos);
            self.num_sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Step 5: after releasing the reactor, wake a worker that sleeps in
    /// `thread::park` (so without the reactor) if timers or sockets need
    /// someone to wait in it.
    pub(crate) fn hand_off_reactor(&self, rt: &Shared) {
        if (rt.next_timer_tick() != u64::MAX || rt.reactor.has_sources())
            && let Some(other) = self.parked_sleeper(rt)
        {
            rt.wake_worker(other);
        }
    }

    /// A worker parked in `thread::park`, if any (for the hand-off in step 5).
    fn parked_sleeper(&self, rt: &Shared) -> Option<usize> {
        let s = self.sleepers.lock();
        s.iter()
            .copied()
            .find(|&i| rt.workers[i].sleep.load(Ordering::SeqCst) == PARKED)
    }
}

/// How long a worker sleeps before looking again at fresh tasks on other
/// workers that it was not allowed to steal yet (step 7).
const RECHECK_FRESH: std::time::Duration = std::time::Duration::from_micros(50);

/// How long a worker that ran out of work keeps searching before it
/// sleeps. While it searches, producers of stealable work skip the wake-up
/// system call (step 4), so a spawner that feeds workers slightly slower
/// than they drain does not pay a futex wake per spawn. Measured here: with
/// no search phase a thread spawning 100k coroutines spent ~400 ns per
/// spawn, most of it in futex wakes. 20 µs covers a few hundred spawns;
/// an idle runtime pays it once per transition to idle, not periodically.
const SEARCH_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(20);

/// Searches for a while (step 4's searcher, entered voluntarily); returns
/// true if work showed up.
fn search(local: &'static WorkerLocal) -> bool {
    let rt = local.shared;
    let idle = &rt.idle;
    let me = &rt.workers[local.index];
    // Unless already counted as a searcher (woken by `notify`), count in.
    if !me.searching.swap(true, Ordering::AcqRel) {
        idle.searching.fetch_add(1, Ordering::SeqCst);
    }
    let start = std::time::Instant::now();
    let mut spins = 0u32;
    loop {
        if local.work_visible() {
            // `found_work` in the run loop ends the search and hands it on.
            return true;
        }
        spins += 1;
        if spins.is_multiple_of(16) && start.elapsed() >= SEARCH_BEFORE_SLEEP {
            return false;
        }
        std::hint::spin_loop();
    }
}

/// Puts the calling worker to sleep until there may be work (steps 1-2, 5).
pub(crate) fn sleep(local: &'static WorkerLocal) {
    let rt = local.shared;
    if rt.workers.len() > 1 && search(local) {
        return;
    }
    let idle = &rt.idle;
    let me = &rt.workers[local.index];
    let owner = idle.try_own_reactor();
    me.sleep
        .store(if owner { POLLING } else { PARKED }, Ordering::SeqCst);
    idle.add_sleeper(local.index);
    if me.searching.swap(false, Ordering::AcqRel) {
        idle.searcher_done(rt, false);
    }
    fence(Ordering::SeqCst);
    let due = owner && rt.next_timer_tick() <= rt.clock.now_tick();
    if !local.work_visible() && !due {
        // Fresh tasks this worker may not steal yet (`fresh_waiting`) may
        // become stealable without anyone queueing anything (their worker
        // gets stuck in one coroutine), so look again after a while; with
        // no fresh task anywhere, sleep until woken.
        let recheck = local.fresh_elsewhere().then_some(RECHECK_FRESH);
        if owner {
            let next = rt.next_timer_tick();
            idle.reactor_wake.store(next, Ordering::SeqCst);
            // Re-read after publishing: a timer inserted meanwhile either
            // saw our wake tick (and notified) or is visible now.
            let next = next.min(rt.next_timer_tick());
            let timeout = if next == u64::MAX {
                None
            } else {
                Some(
                    rt.clock
                        .instant_of(next)
                        .saturating_duration_since(std::time::Instant::now()),
                )
            };
            let timeout = match (timeout, recheck) {
                (Some(t), Some(r)) => Some(t.min(r)),
                (t, r) => t.or(r),
            };
            rt.reactor.poll(timeout);
            idle.reactor_wake.store(0, Ordering::SeqCst);
        } else if let Some(r) = recheck {
            std::thread::park_timeout(r);
        } else {
            std::thread::park();
        }
    }
    me.sleep.store(AWAKE, Ordering::SeqCst);
    idle.remove_sleeper(local.index);
    if owner {
        rt.fire_all_timers();
        idle.release_reactor();
        idle.hand_off_reactor(rt);
    }
}
