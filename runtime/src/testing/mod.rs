//! Deterministic tests of concurrent, time-dependent code: Go's
//! `testing/synctest`.
//!
//! [`bubble`] runs a closure in a coroutine inside a *bubble*: it and every
//! coroutine it spawns (transitively) are the bubble's *members*. Inside:
//!
//! - Time is virtual. [`now`] starts at a fixed instant (the same for every
//!   bubble of the process) and moves only when every member is durably
//!   blocked, jumping straight to the earliest timer of the bubble. So
//!   `goro::sleep(Duration::from_secs(3600))` returns at once, with `now()`
//!   exactly one hour later. Everything in goro that reads the clock reads
//!   this one inside a bubble: `goro::sleep`, `park_deadline` /
//!   `park_timeout`, `chan::after` / `tick`, `Timer` / `Ticker`, the
//!   `*_timeout` / `*_deadline` operations of channels, `select!` timeouts,
//!   the timed waits of `goro::sync`, [`alarm`](crate::alarm)s,
//!   `Context` deadlines, and socket timeouts (`set_read_timeout`, the
//!   `*_ctx` socket calls, `reactor` waits). Outside a bubble [`now`] is
//!   `Instant::now()`.
//! - Scheduling is deterministic: one member runs at a time, and the next
//!   one to run is chosen by a seeded generator among the runnable ones.
//!   The seed is `GORO_TEST_SEED` (a `u64`, default 0) or the argument of
//!   [`bubble_with_seed`]; the same seed replays the same interleaving, so
//!   a failure found with one seed can be debugged with it.
//! - [`wait`] blocks the caller until every other member is durably
//!   blocked (then runs before the clock moves).
//!
//! # Durably blocked
//!
//! A member is *durably blocked* when it is parked on a goro primitive:
//! a channel operation or `select!`, a `goro::sync` lock, condition,
//! semaphore, wait group, barrier or once, a `join`, `goro::sleep`, a
//! timer, a context's `done()`, or a plain `park` (with or without a
//! deadline). A member parked waiting for the blocking pool, or for a
//! socket (`net read`, `write`, `accept`, `connect`) *without* a deadline,
//! is *not*: while one is, the clock does not move (an event from outside
//! may wake it), as in Go. A member waiting for a socket *with* a deadline
//! (a read or write timeout, a context with a deadline) is durably blocked
//! while a zero-timeout `poll(2)` says its socket has nothing for it, so a
//! socket timeout in a bubble fires at its virtual instant when its peer
//! is a silent member; data a member wrote before blocking is always seen
//! first. A peer outside the bubble (a thread, another process) is not
//! seen: the clock may jump past the moment its data would have come. A
//! member
//! blocked in a system call that does not go through goro (a
//! `std::sync::Mutex`, `std::thread::sleep`, a file read) is, to goro,
//! running: nothing else of the bubble runs meanwhile.
//!
//! What goro cannot see (no garbage collector, no per-object ownership):
//! a member parked on a channel or lock that a thread or coroutine
//! *outside* the bubble will later use counts as durably blocked, so the
//! clock may jump past the instant that outside party would have woken it.
//! Keep everything a bubble waits on inside the bubble (Go forbids it);
//! objects made outside and waited on inside are not detected.
//!
//! When the bubble is idle (every member durably blocked, no timer pending
//! and nobody in [`wait`]), no member can ever run again: [`bubble`]
//! panics with "all coroutines in the bubble are durably blocked -
//! deadlock!". It also panics if the root returns while other members are
//! left blocked forever. Either message goes on with the dump of the
//! bubble's members, as [`dump_to`](crate::dump_to) writes it (what each
//! waits on, where, and its name). A panic of the root closure is re-raised by
//! [`bubble`]; a panic in another member ends only that member.
//!
//! # Ownership
//!
//! As in Go, a bubble's channels and locks belong to it: using one from
//! outside the bubble panics with "... created inside testing bubble N
//! used from outside it". Channels record their bubble when they are made
//! and check it on every send, receive, `select!` arm and `close` (one
//! branch on a field of the channel; dropping a handle is not a use).
//! `goro::sync`'s types (`Mutex`, `RwLock`, `Semaphore`, `Condvar`,
//! `WaitGroup`, `Barrier`, `Once`) mostly have `const` constructors, which
//! cannot ask which bubble they run in, so they record it at their first
//! use inside a bubble, do nothing while no bubble is alive (one relaxed
//! load), exempt `static`s, and forget the bubble once it has ended;
//! goro-sync's `bubble.rs` lists what that cannot see. A completed `Once`
//! is not checked (reading it changes nothing).
//!
//! Bubbles do not nest: calling [`bubble`] from a member panics.
//!
//! ```
//! use std::time::Duration;
//! use goro::testing;
//!
//! let slept = testing::bubble(|| {
//!     let t0 = testing::now();
//!     goro::sleep(Duration::from_secs(3600)); // returns at once
//!     testing::now() - t0
//! });
//! assert_eq!(slept, Duration::from_secs(3600));
//! ```

pub(crate) mod bubble;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::context;
use crate::park::{self, WaitKind};
use crate::spawn::Builder;

pub(crate) use bubble::Bubble;

/// Bubbles alive in the process: [`now`] reads the thread's task only
/// when there are some (one relaxed load otherwise).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The fixed instant every bubble's clock starts at.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(|| Instant::now() + Duration::from_secs(1 << 20))
}

/// The bubble of the running coroutine, if any.
#[inline]
pub(crate) fn current() -> Option<&'static Arc<Bubble>> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    context::current_task().and_then(|t| t.bubble.as_ref())
}

/// The current instant: the bubble's virtual clock inside a bubble,
/// `Instant::now()` everywhere else.
///
/// ```
/// let before = std::time::Instant::now();
/// assert!(goro::testing::now() >= before); // outside a bubble
/// ```
#[inline]
pub fn now() -> Instant {
    match current() {
        Some(b) => b.now(),
        None => Instant::now(),
    }
}

/// Whether the caller is a coroutine inside a bubble.
///
/// ```
/// assert!(!goro::testing::in_bubble());
/// assert!(goro::testing::bubble(goro::testing::in_bubble));
/// ```
pub fn in_bubble() -> bool {
    current().is_some()
}

/// The bubble's id (unique in the process) if the caller is in one; 0
/// outside. Channels and locks record it to refuse use from outside.
#[doc(hidden)]
pub fn current_bubble_id() -> u64 {
    current().map_or(0, |b| b.id)
}

/// Panics unless the caller is in the bubble `id` (0: made outside every
/// bubble, usable anywhere). Callers test `id != 0` first, so an object
/// made outside every bubble pays one branch on a field it holds.
#[doc(hidden)]
#[track_caller]
#[inline]
pub fn check_bubble(id: u64, what: &str) {
    if id != 0 {
        check_in_bubble(id, what);
    }
}

/// The rest of [`check_bubble`], out of line: an object made in a bubble
/// is rare, and keeping the thread-local read off the caller's path lets
/// a hot caller (a select's peek) skip saving registers for the call.
#[cold]
#[inline(never)]
#[track_caller]
fn check_in_bubble(id: u64, what: &str) {
    if current_bubble_id() != id {
        outside_bubble(id, what);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn outside_bubble(id: u64, what: &str) -> ! {
    let here = match current_bubble_id() {
        0 => "outside every bubble".to_string(),
        other => format!("in bubble {other}"),
    };
    panic!(
        "goro: {what} created inside testing bubble {id} used from outside it ({here}); \
         keep a bubble's channels and locks inside it"
    );
}

/// Whether some bubble is alive in the process: one relaxed load. The
/// lazy bubble check of `goro::sync` locks runs only when it is true.
#[doc(hidden)]
#[inline(always)]
pub fn any_bubble() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// Bubbles alive now, by id (read only on the rare path of a lock whose
/// recorded bubble is not the caller's).
static LIVE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Whether bubble `id` is still running.
#[doc(hidden)]
pub fn bubble_alive(id: u64) -> bool {
    LIVE.lock().contains(&id)
}

/// The seed from `GORO_TEST_SEED`, or 0.
fn env_seed() -> u64 {
    std::env::var("GORO_TEST_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `f` in a new bubble (see the module docs) and returns its value,
/// with the seed from `GORO_TEST_SEED` (default 0). Call it from a thread
/// or from a coroutine that is not in a bubble.
///
/// ```
/// use std::time::Duration;
/// use goro::testing;
///
/// let n = testing::bubble(|| {
///     let h = goro::spawn(|| {
///         goro::sleep(Duration::from_secs(5));
///         40
///     });
///     h.join().unwrap() + 2
/// });
/// assert_eq!(n, 42);
/// ```
#[track_caller]
pub fn bubble<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    bubble_with_seed(env_seed(), f)
}

/// [`bubble`] with an explicit seed for the scheduling order.
///
/// ```
/// use goro::testing;
///
/// let order = |seed| testing::bubble_with_seed(seed, || {
///     let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
///     let hs: Vec<_> = (0..4).map(|i| {
///         let log = log.clone();
///         goro::spawn(move || log.lock().unwrap().push(i))
///     }).collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
///     std::sync::Arc::try_unwrap(log).unwrap().into_inner().unwrap()
/// });
/// assert_eq!(order(7), order(7));
/// ```
#[track_caller]
pub fn bubble_with_seed<T, F>(seed: u64, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    assert!(
        current().is_none(),
        "goro: testing::bubble called inside a bubble (bubbles do not nest)"
    );
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let b = Arc::new(Bubble::new(id, start(), seed, park::current()));
    let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    LIVE.lock().push(id);
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let spawned = Builder::new()
        .name("bubble")
        .in_bubble(b.clone())
        .spawn(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(f));
            *out.lock() = Some(r);
        });
    if let Err(e) = spawned {
        LIVE.lock().retain(|&b| b != id);
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        panic!("goro: cannot start the bubble: {e}");
    }
    let (deadlocked, left) = loop {
        {
            let st = b.st.lock();
            if st.members == 0 || st.deadlocked {
                break (st.deadlocked, st.members);
            }
        }
        park::park_with(WaitKind::Join);
    };
    LIVE.lock().retain(|&b| b != id);
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    let result = slot.lock().take();
    match result {
        Some(Ok(v)) if !deadlocked => v,
        Some(Err(p)) => panic::resume_unwind(p),
        Some(Ok(_)) => panic!(
            "goro: the bubble's root returned but {left} coroutine(s) of the bubble are durably \
             blocked forever - deadlock!\n\n{}",
            crate::diag::dump::render_bubble(id)
        ),
        None => panic!(
            "goro: all coroutines in the bubble are durably blocked - deadlock! ({left} \
             coroutine(s))\n\n{}",
            crate::diag::dump::render_bubble(id)
        ),
    }
}

/// Blocks until every other coroutine of the caller's bubble is durably
/// blocked (Go's `synctest.Wait`). Panics outside a bubble.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use goro::testing;
///
/// testing::bubble(|| {
///     let done = Arc::new(AtomicBool::new(false));
///     let d = done.clone();
///     let _h = goro::spawn(move || d.store(true, Ordering::SeqCst));
///     testing::wait(); // the child has run (and finished)
///     assert!(done.load(Ordering::SeqCst));
/// });
/// ```
#[track_caller]
pub fn wait() {
    let b = current().expect("goro: testing::wait called outside a bubble");
    let me = park::current();
    b.set_waiter(me.clone());
    while b.is_waiter(&me) {
        park::park_with(WaitKind::Park);
    }
}
