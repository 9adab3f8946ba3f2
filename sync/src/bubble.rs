//! Which testing bubble a lock belongs to (`goro::testing`): a lock used
//! inside a bubble may not be used from outside it while the bubble runs,
//! as Go's synctest forbids for its bubbled objects.
//!
//! # Why lazily
//!
//! goro's lock constructors are `const fn` (so locks can be `static`), and
//! a `const fn` cannot ask which bubble it runs in. So a lock records its
//! bubble at its *first use* inside one, not at its creation:
//!
//! 1. While no bubble is alive in the process (`testing::any_bubble`: one
//!    relaxed load of a global), nothing is recorded or checked. This is
//!    the fast path every lock operation outside tests pays.
//! 2. While some bubble is alive, a use records or checks the lock's mark:
//!    - unmarked, used inside bubble B: the lock becomes B's, unless it is
//!      a `static` (its address lies in the executable's image: statics
//!      are shared by design, a logger, a registry) or the platform gives
//!      no way to tell (everything but Linux): then it is marked shared;
//!    - unmarked, used outside every bubble: marked shared (it was made,
//!      or first used, outside, and may go on being used by both sides);
//!    - shared: never checked again;
//!    - B's, used by someone not in B: a panic if B is still alive
//!      ("used from outside it"); if B has ended, the mark is stale and
//!      the lock starts over as unmarked.
//!
//! What this cannot see: a lock made inside a bubble but first used
//! outside it is marked shared, and a lock made outside a bubble but first
//! used inside it becomes the bubble's (so a later use from outside,
//! while the bubble runs, panics: keep such locks outside the bubble's
//! reach or touch them outside first). A `static` inside a `Box` or an
//! `Arc` (a `LazyLock<Arc<Mutex<_>>>`) is not in the image and counts as
//! an ordinary lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// The mark: 0 unmarked, `SHARED`, or a bubble id.
const SHARED: u64 = u64::MAX;

/// A lock's bubble mark. Always `std`'s atomic, also under loom: it is
/// diagnostics, outside every model (no bubble exists in a model).
pub(crate) struct BubbleMark(AtomicU64);

impl BubbleMark {
    pub(crate) const fn new() -> BubbleMark {
        BubbleMark(AtomicU64::new(0))
    }

    /// Checks (and records) the caller's right to use the lock that holds
    /// this mark; `what` names the lock in the panic.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn check(&self, what: &str) {
        if goro_runtime::testing::any_bubble() {
            self.check_slow(what);
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn check_slow(&self, what: &str) {
        let me = goro_runtime::testing::current_bubble_id();
        let mark = self.0.load(Ordering::Relaxed);
        if mark == SHARED || mark == me {
            return;
        }
        if mark != 0 {
            if goro_runtime::testing::bubble_alive(mark) {
                goro_runtime::testing::check_bubble(mark, what);
                return;
            }
            // Stale: its bubble ended. Start over.
            let _ = self
                .0
                .compare_exchange(mark, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        let new = if me == 0 || in_image(self) {
            SHARED
        } else {
            me
        };
        // A racing first use by someone else wins; check against it.
        if let Err(other) = self
            .0
            .compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed)
            && other != SHARED
            && other != me
            && goro_runtime::testing::bubble_alive(other)
        {
            goro_runtime::testing::check_bubble(other, what);
        }
    }
}

/// Whether `x` lies in the executable's image (a `static`): between the
/// linker-provided `__executable_start` and `_end` (GNU ld, gold, lld and
/// mold all define both). Elsewhere every lock counts as a static (never
/// claimed by a bubble), which only loses the check.
#[cfg(target_os = "linux")]
fn in_image<T>(x: &T) -> bool {
    unsafe extern "C" {
        static __executable_start: u8;
        static _end: u8;
    }
    let start = &raw const __executable_start as usize;
    let end = &raw const _end as usize;
    let at = x as *const T as usize;
    (start..end).contains(&at)
}

#[cfg(not(target_os = "linux"))]
fn in_image<T>(_: &T) -> bool {
    true
}
