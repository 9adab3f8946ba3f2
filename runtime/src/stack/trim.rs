//! Gives the heap's free pages back to the OS after a burst of exits.
//!
//! A burst of coroutines frees its task headers and (on shared stacks)
//! its saved frames into the allocator, which keeps them resident. The
//! allocator cannot know the burst is over; the runtime can: a worker
//! about to sleep that has seen [`TRIM_AFTER_EXITS`] coroutines finish
//! since it last did calls [`after_burst`].
//!
//! Not every header is freed by then: the last reference to a task may be
//! a `JoinHandle` or a park token held by any thread, dropped after the
//! workers went idle (`examples/ten_million.rs` drops a million tokens
//! from main). So `after_burst` does not trim on the worker: it wakes one
//! trimmer thread (started on first use), which trims
//! every [`PERIOD`] until [`WINDOW`] has passed since the last burst
//! ended, catching what other threads free meanwhile; a period in which
//! coroutines were spawned or finished is skipped, and a trim that gave
//! back a megabyte or more keeps the window open.
//!
//! # Invariants
//!
//! 1. Nothing here runs on the spawn, park or exit paths: `after_burst`
//!    is called by an idle worker at most once per `TRIM_AFTER_EXITS`
//!    exits, and costs a lock and a notify.
//! 2. `malloc_trim` runs only on the trimmer thread, so no worker ever
//!    stalls in it (it holds each arena's lock while it walks it).
//!    glibc's `malloc_trim` trims every arena, not only the main one, and
//!    returns free pages inside the heap too (`MADV_DONTNEED`), not only
//!    its top.
//! 3. A trim follows a quiet period (no spawn, no exit for [`PERIOD`]):
//!    a loop that spawns and joins a warm pool over and over keeps its
//!    heap, as Go's scavenger keeps what the heap's goal still needs.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Exits a worker must have seen since its last request before it asks
/// for a trim when it goes idle.
pub(crate) const TRIM_AFTER_EXITS: u64 = 4096;
/// Trims go on this long after the last request.
pub(crate) const WINDOW: Duration = Duration::from_millis(2000);
/// Time between two trims within the window.
pub(crate) const PERIOD: Duration = Duration::from_millis(400);

/// A trim that gave back at least this much keeps the window open.
const KEEP_GOING: usize = 1 << 20;

/// Resident bytes of the process (0 if `/proc` cannot tell).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Trimmer {
    /// End of the current window; `None` while the trimmer waits.
    until: Mutex<Option<Instant>>,
    wake: Condvar,
}

static TRIMMER: OnceLock<&'static Trimmer> = OnceLock::new();

/// Asks for the heap to be trimmed now and for [`WINDOW`] more (see the
/// module docs).
pub(crate) fn after_burst() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let t = *TRIMMER.get_or_init(|| {
        let t: &'static Trimmer = Box::leak(Box::new(Trimmer {
            until: Mutex::new(None),
            wake: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("goro-trim".into())
            .spawn(move || run(t));
        if spawned.is_err() {
            // No thread: trim here, once, as the worker did before.
            trim_heap();
        }
        t
    });
    *t.until.lock() = Some(Instant::now() + WINDOW);
    t.wake.notify_one();
}

fn run(t: &'static Trimmer) {
    let mut until = t.until.lock();
    let mut last = activity();
    loop {
        let Some(end) = *until else {
            t.wake.wait(&mut until);
            last = activity();
            continue;
        };
        let _ = t.wake.wait_for(&mut until, PERIOD);
        drop(until);
        // Only a runtime that spawned and finished nothing for a whole
        // period is trimmed: one that keeps a warm working set busy would
        // only fault the pages in again (invariant 3).
        let now_activity = activity();
        let mut gave_back = false;
        if now_activity == last {
            let before = rss_bytes();
            trim_heap();
            gave_back = before.saturating_sub(rss_bytes()) >= KEEP_GOING;
        }
        last = now_activity;
        until = t.until.lock();
        if gave_back && *until == Some(end) {
            // Still giving memory back (another thread may be dropping
            // millions of tasks): keep the window open.
            *until = Some(Instant::now() + WINDOW);
        } else if Instant::now() >= end && *until == Some(end) {
            // No request since this window began: wait for the next.
            *until = None;
        }
    }
}

/// Coroutines spawned and finished so far.
fn activity() -> (u64, u64) {
    let s = crate::stats::stats();
    (s.spawned, s.spawned.saturating_sub(s.coroutines))
}

/// Returns free heap memory of every arena to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn trim_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim_heap() {}
