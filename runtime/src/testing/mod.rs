//! Deterministic tests of concurrent, time-dependent code: Go's
//! `testing/synctest`.
//!
//! The user guide (bubbles, the virtual clock, what counts as durably
//! blocked, ownership, an example) is the `goro::testing` page of the
//! `goro` crate: <https://docs.rs/goro/latest/goro/testing/>. The bubble's
//! bookkeeping is in `bubble.rs`.

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

/// Runs `f` in a new bubble (the `goro::testing` page says what that is)
/// and returns its value, with the seed from `GORO_TEST_SEED` (default
/// 0). Call it from a thread or from a coroutine that is not in a bubble.
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
