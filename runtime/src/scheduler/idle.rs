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
//!    the waker sees the sleeper (Dekker), so no wake-up is lost. The
//!    reactor owner also reads the wake-up latch's epoch before its look,
//!    so that a wake-up another thread drained meanwhile (io_uring) makes
//!    it poll once more instead of waiting (`wake_latch.rs`).
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
//!    an idle runtime still never polls. A worker woken by that timeout
//!    (still on the sleeper list: nobody woke it) looks once and sleeps
//!    again without step 6's search: under a storm of connections a
//!    recheck followed by a search keeps an idle worker spinning, CPU that
//!    the coroutines on the same cores need (BENCHMARKS.md, "Push-server
//!    login storm").
//!
//! Rejected: a dedicated timer/IO thread (an extra context switch on every
//! timer and every readiness event); waking all sleepers on every spawn
//! (a thundering herd on spawn loops); sleeping at
//! once with no search (measured: a futex wake per few spawns, ~400 ns per
//! spawn from a thread).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Shared;
use super::worker::WorkerLocal;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{self, AtomicUsize, fence};

pub(crate) const AWAKE: u8 = 0;
pub(crate) const PARKED: u8 = 1;
pub(crate) const POLLING: u8 = 2;

pub(crate) struct Idle {
    searchers: Searchers,
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
            searchers: Searchers::new(),
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
        self.searchers.notify(rt);
    }

    /// Worker `index` found work: it stops searching if it was (step 4).
    pub(crate) fn found_work(&self, rt: &Shared, index: usize) {
        self.searchers.found_work(rt, index);
    }

    /// Step 5: after releasing the reactor, wake a worker that sleeps in
    /// `thread::park` (so without the reactor) if timers or sockets need
    /// someone to wait in it.
    pub(crate) fn hand_off_reactor(&self, rt: &Shared) {
        if (rt.next_timer_tick() != u64::MAX || rt.reactor.has_sources())
            && let Some(other) = self
                .searchers
                .find_sleeper(|i| rt.workers[i].sleep.load(Ordering::SeqCst) == PARKED)
        {
            rt.wake_worker(other);
        }
    }
}

/// What the searcher accounting needs from the runtime: each worker's
/// `searching` flag and a way to wake a sleeping worker. `Shared` is the
/// one implementation at run time; the model checks have their own.
pub(crate) trait Workers {
    /// Worker `index`'s `searching` flag.
    fn searching(&self, index: usize) -> &atomic::AtomicBool;
    /// Wakes worker `index` if it sleeps (`Shared::wake_worker`).
    fn wake(&self, index: usize);
}

impl Workers for Shared {
    #[inline]
    fn searching(&self, index: usize) -> &atomic::AtomicBool {
        &self.workers[index].searching
    }

    #[inline]
    fn wake(&self, index: usize) {
        self.wake_worker(index);
    }
}

/// The sleeper list and the searcher count: every change of a worker's
/// `searching` flag and of the count goes through here (steps 2, 4 and 6).
/// The count equals the number of flags set, because every change of a
/// flag is a swap and only the swap that flips it moves the count.
pub(crate) struct Searchers {
    sleepers: Mutex<Vec<usize>>,
    num_sleepers: AtomicUsize,
    searching: AtomicUsize,
}

impl Searchers {
    pub(crate) fn new() -> Searchers {
        Searchers {
            sleepers: Mutex::new(Vec::new()),
            num_sleepers: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
        }
    }

    /// Step 4: stealable work was queued (call after the push).
    pub(crate) fn notify(&self, w: &impl Workers) {
        fence(Ordering::SeqCst);
        if self.num_sleepers.load(Ordering::SeqCst) == 0
            || self.searching.load(Ordering::SeqCst) > 0
        {
            return;
        }
        self.wake_searcher(w);
    }

    fn wake_searcher(&self, w: &impl Workers) {
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
            // (`begin_sleep`), and counting it twice would leave
            // `searching` above zero for good, after which `notify` never
            // wakes anyone.
            if !w.searching(i).swap(true, Ordering::AcqRel) {
                self.searching.fetch_add(1, Ordering::SeqCst);
            }
            i
        };
        w.wake(index);
    }

    /// A searcher stopped searching; if it found work and was the last one,
    /// wake another to keep looking (step 4).
    fn searcher_done(&self, w: &impl Workers, found: bool) {
        let last = self.searching.fetch_sub(1, Ordering::SeqCst) == 1;
        if found && last && self.num_sleepers.load(Ordering::SeqCst) > 0 {
            self.wake_searcher(w);
        }
    }

    /// Step 6: worker `me` starts searching; counted unless it already is
    /// (woken by `notify`).
    pub(crate) fn start_search(&self, w: &impl Workers, me: usize) {
        if !w.searching(me).swap(true, Ordering::AcqRel) {
            self.searching.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Worker `me` found work: if it was searching it stops, and hands the
    /// search on if it was the last searcher (step 4).
    pub(crate) fn found_work(&self, w: &impl Workers, me: usize) {
        let flag = w.searching(me);
        if flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::AcqRel) {
            self.searcher_done(w, true);
        }
    }

    /// Step 2 (after publishing the sleep state): worker `me` joins the
    /// sleeper list, then gives up its search, both before the final
    /// re-check of the queues, so that work queued meanwhile is seen by it
    /// or by a notifier that sees a sleeper and no searcher.
    pub(crate) fn begin_sleep(&self, w: &impl Workers, me: usize) {
        {
            let mut s = self.sleepers.lock();
            s.push(me);
            self.num_sleepers.fetch_add(1, Ordering::SeqCst);
        }
        if w.searching(me).swap(false, Ordering::AcqRel) {
            self.searcher_done(w, false);
        }
    }

    /// Worker `me` is awake again: it leaves the sleeper list unless a
    /// notifier took it off already.
    /// Returns whether it was still listed (nobody took it off to wake it).
    pub(crate) fn end_sleep(&self, me: usize) -> bool {
        let mut s = self.sleepers.lock();
        if let Some(pos) = s.iter().position(|&i| i == me) {
            s.swap_remove(pos);
            self.num_sleepers.fetch_sub(1, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// A sleeper for which `pred` holds, if any (for the hand-off in
    /// step 5).
    fn find_sleeper(&self, pred: impl Fn(usize) -> bool) -> Option<usize> {
        let s = self.sleepers.lock();
        s.iter().copied().find(|&i| pred(i))
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
    // Unless already counted as a searcher (woken by `notify`), count in.
    rt.idle.searchers.start_search(rt, local.index);
    let start = std::time::Instant::now();
    let mut spins = 0u32;
    loop {
        if local.work_visible() {
            // `found_work` in the run loop ends the search and hands it on.
            return true;
        }
        spins += 1;
        if spins.is_multiple_of(16) {
            // Its own ring's completions belong to coroutines only this
            // worker runs (io_uring: `reactor/uring.rs`).
            rt.reactor.reap_own(local.index);
            if start.elapsed() >= SEARCH_BEFORE_SLEEP {
                return false;
            }
        }
        std::hint::spin_loop();
    }
}

/// Puts the calling worker to sleep until there may be work (steps 1-2, 5).
pub(crate) fn sleep(local: &'static WorkerLocal) {
    let rt = local.shared;
    // Step 7's recheck wakes with nothing new to find more often than
    // not: it looks once, without the search (step 6).
    let rechecking = local.recheck_woke.replace(false);
    if rt.workers.len() > 1 && !rechecking && search(local) {
        return;
    }
    let idle = &rt.idle;
    let me = &rt.workers[local.index];
    let owner = idle.try_own_reactor();
    me.sleep
        .store(if owner { POLLING } else { PARKED }, Ordering::SeqCst);
    idle.searchers.begin_sleep(rt, local.index);
    fence(Ordering::SeqCst);
    rt.reactor.before_sleep(local.index, owner);
    // Read before the last look at the queues (`wake_latch.rs`, "a drain
    // by someone else").
    let epoch = owner.then(|| rt.reactor.wake_epoch());
    let due = owner && rt.next_timer_tick() <= rt.clock.now_tick();
    let mut parked_for_recheck = false;
    if !local.work_visible() && !due {
        crate::diag::deadlock::worker_sleeps();
        super::bump(&local.counters().sleeps, 1);
        // Fresh tasks this worker may not steal yet (`fresh_waiting`) may
        // become stealable without anyone queueing anything (their worker
        // gets stuck in one coroutine), so look again after a while; with
        // no fresh task anywhere, sleep until woken.
        // A deferred stack sweep (stack pool invariant 7) bounds the
        // sleep the same way, so that it runs when it is due.
        let recheck = match (
            local.fresh_elsewhere().then_some(RECHECK_FRESH),
            // At least 1 ms: a sweep another worker is running keeps
            // the gate armed, and this one must not spin meanwhile.
            crate::stack::scavenge_due_in().map(|d| d.max(std::time::Duration::from_millis(1))),
        ) {
            (Some(r), Some(s)) => Some(r.min(s)),
            (r, s) => r.or(s),
        };
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
            let events = rt.reactor.poll(timeout, epoch);
            super::bump(&local.counters().io_events, events as u64);
            idle.reactor_wake.store(0, Ordering::SeqCst);
        } else if let Some(r) = recheck {
            std::thread::park_timeout(r);
            parked_for_recheck = true;
        } else {
            std::thread::park();
        }
    }
    me.sleep.store(AWAKE, Ordering::SeqCst);
    rt.reactor.after_sleep(local.index);
    let listed = idle.searchers.end_sleep(local.index);
    // Still on the sleeper list after a sleep bounded by RECHECK_FRESH:
    // nobody woke it, the recheck did.
    local.recheck_woke.set(listed && parked_for_recheck);
    if owner {
        let fired = rt.fire_all_timers();
        if fired > 0 {
            super::bump(&local.counters().timer_fires, fired as u64);
        }
        idle.release_reactor();
        idle.hand_off_reactor(rt);
    }
}

/// Model checks of the searcher accounting (run with `.ci/loom`). The
/// workers of a model runtime run `WorkerLocal::run`'s and `sleep`'s
/// steps around `Searchers`' own functions: take a task or search, then
/// publish the sleep state, `begin_sleep`, fence, re-check, park; the
/// main thread spawns stealable tasks and `notify`s after each push, as
/// `Shared::push_fresh` does. A lost wake-up leaves a task queued with
/// every worker parked, which loom reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::{AtomicBool, AtomicU8};
    use crate::loom::thread::{self, Thread};
    use std::sync::{Arc, OnceLock};

    struct Model {
        searchers: Searchers,
        flags: Vec<AtomicBool>,
        sleep: Vec<AtomicU8>,
        threads: Vec<OnceLock<Thread>>,
        /// Stealable tasks pushed, and taken by workers.
        queued: AtomicUsize,
        taken: AtomicUsize,
        /// Tasks run; the spawner waits for all of them.
        ran: AtomicUsize,
        done: AtomicBool,
    }

    impl Workers for Model {
        fn searching(&self, index: usize) -> &AtomicBool {
            &self.flags[index]
        }

        /// `Shared::wake_worker` for workers that sleep in `thread::park`.
        fn wake(&self, index: usize) {
            fence(Ordering::SeqCst);
            if self.sleep[index].load(Ordering::SeqCst) == PARKED
                && let Some(t) = self.threads[index].get()
            {
                t.unpark();
            }
        }
    }

    impl Model {
        fn new(workers: usize) -> Arc<Model> {
            Arc::new(Model {
                searchers: Searchers::new(),
                flags: (0..workers).map(|_| AtomicBool::new(false)).collect(),
                sleep: (0..workers).map(|_| AtomicU8::new(AWAKE)).collect(),
                threads: (0..workers).map(|_| OnceLock::new()).collect(),
                queued: AtomicUsize::new(0),
                taken: AtomicUsize::new(0),
                ran: AtomicUsize::new(0),
                done: AtomicBool::new(false),
            })
        }

        fn work_visible(&self) -> bool {
            self.taken.load(Ordering::SeqCst) < self.queued.load(Ordering::SeqCst)
        }

        fn take(&self) -> bool {
            let mut t = self.taken.load(Ordering::SeqCst);
            while t < self.queued.load(Ordering::SeqCst) {
                match self
                    .taken
                    .compare_exchange(t, t + 1, Ordering::SeqCst, Ordering::SeqCst)
                {
                    Ok(_) => return true,
                    Err(now) => t = now,
                }
            }
            false
        }

        /// One worker: `WorkerLocal::run` with `idle::sleep`'s steps.
        fn worker(&self, me: usize, spawner: &Thread) {
            let _ = self.threads[me].set(thread::current());
            let workers = self.flags.len();
            loop {
                if self.take() {
                    self.searchers.found_work(self, me);
                    self.ran.fetch_add(1, Ordering::SeqCst);
                    spawner.unpark();
                    continue;
                }
                if self.done.load(Ordering::SeqCst) {
                    return;
                }
                // `search`, with one look at the queues.
                if workers > 1 {
                    self.searchers.start_search(self, me);
                    if self.work_visible() {
                        continue;
                    }
                }
                self.sleep[me].store(PARKED, Ordering::SeqCst);
                self.searchers.begin_sleep(self, me);
                fence(Ordering::SeqCst);
                if !self.work_visible() && !self.done.load(Ordering::SeqCst) {
                    thread::park();
                }
                self.sleep[me].store(AWAKE, Ordering::SeqCst);
                self.searchers.end_sleep(me);
            }
        }

        /// Every flag change moved the count: it equals the flags set.
        fn check_count(&self) {
            let flagged = self
                .flags
                .iter()
                .filter(|f| f.load(Ordering::SeqCst))
                .count();
            let counted = self.searchers.searching.load(Ordering::SeqCst);
            assert_eq!(
                counted, flagged,
                "the searcher count drifted from the flags"
            );
        }
    }

    fn spawn_and_run(workers: usize, tasks: usize) {
        loom::model(move || {
            let m = Model::new(workers);
            let me = thread::current();
            let threads: Vec<_> = (0..workers)
                .map(|i| {
                    let (m, me) = (m.clone(), me.clone());
                    loom::thread::spawn(move || m.worker(i, &me))
                })
                .collect();
            for _ in 0..tasks {
                m.queued.fetch_add(1, Ordering::SeqCst);
                m.searchers.notify(&*m);
            }
            while m.ran.load(Ordering::SeqCst) < tasks {
                thread::park();
            }
            m.done.store(true, Ordering::SeqCst);
            // A worker that has not published its handle yet will see
            // `done` after the fence before it sleeps.
            fence(Ordering::SeqCst);
            for t in &m.threads {
                if let Some(t) = t.get() {
                    t.unpark();
                }
            }
            for t in threads {
                t.join().unwrap();
            }
            m.check_count();
        });
    }

    /// One worker, two spawns: the worker is woken for each, however the
    /// spawns interleave with its sleep and its wake-up (the count never
    /// stays above zero while it sleeps).
    #[test]
    fn one_worker_two_spawns() {
        spawn_and_run(1, 2);
    }

    /// Two workers that search before they sleep, two spawns: searchers
    /// are counted once each, so the count never hides a sleeper from
    /// `notify`.
    #[test]
    fn two_searching_workers_two_spawns() {
        spawn_and_run(2, 2);
    }
}
