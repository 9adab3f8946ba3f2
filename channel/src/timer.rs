//! Timer channels: `after`/`at` (one message) and `tick` (periodic).
//!
//! These hold no buffer, no waiter queue and no background task: a timer
//! channel *is* its schedule. Readiness is computed from the clock when
//! someone looks, and a waiting receiver (or a select with a timer case)
//! simply parks until the next due instant, which the runtime's timers
//! turn into an ordinary unpark. So a dropped timer costs nothing, and a
//! million pending timers are a million small allocations, not a million
//! parked coroutines.
//!
//! # Invariants
//!
//! 1. `At` delivers at most one message, ever: `fired` goes from false to
//!    true once, by a swap, and only the caller that flipped it gets the
//!    message. The message is the due instant (when the timer fired), not
//!    the instant it was read.
//! 2. `Tick` keeps one pending tick at most, like Go's `Ticker` with its
//!    one-slot channel: `next` is the due time of the pending (or next)
//!    tick. Taking it advances `next` by CAS to the first tick strictly
//!    after the present, dropping the ticks a slow receiver missed. The
//!    message is the due instant of the tick taken.
//! 3. Neither ever closes; once `At` has fired it is never ready again (a
//!    receive then blocks forever, as on Go's timer channel).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a timer channel says when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Poll {
    /// A message, taken: the instant it fired.
    Ready(Instant),
    /// Nothing yet; the next message is due at this instant.
    Later(Instant),
    /// Nothing, ever again.
    Never,
}

/// The channel of `after`/`at`: one message at `due`.
pub(crate) struct At {
    due: Option<Instant>,
    fired: AtomicBool,
}

impl At {
    /// `due: None` (a deadline beyond what `Instant` can hold) never fires.
    pub(crate) fn new(due: Option<Instant>) -> At {
        At {
            due,
            fired: AtomicBool::new(false),
        }
    }

    /// Takes the message if it is due (invariant 1).
    pub(crate) fn try_take(&self) -> Poll {
        let Some(due) = self.due else {
            return Poll::Never;
        };
        if self.fired.load(Ordering::Relaxed) {
            return Poll::Never;
        }
        if goro_runtime::testing::now() < due {
            return Poll::Later(due);
        }
        if self.fired.swap(true, Ordering::AcqRel) {
            Poll::Never
        } else {
            Poll::Ready(due)
        }
    }

    /// When the message is due, if it is still to be taken.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.fired.load(Ordering::Relaxed) {
            None
        } else {
            self.due
        }
    }

    /// 1 if the message is due and untaken, else 0.
    pub(crate) fn len(&self) -> usize {
        match self.due {
            Some(d) if !self.fired.load(Ordering::Relaxed) && goro_runtime::testing::now() >= d => {
                1
            }
            _ => 0,
        }
    }
}

/// `Tick::next` meaning "no further tick" (past what `Instant` can hold).
const NO_TICK: u64 = u64::MAX;

/// The channel of `tick`: a message every `period`, at most one pending.
pub(crate) struct Tick {
    base: Instant,
    period_ns: u64,
    /// Due time of the pending or next tick, in nanoseconds after `base`.
    next: AtomicU64,
}

impl Tick {
    /// Ticks at `base + period`, `base + 2 * period`, ... A zero period is
    /// always ready (each receive gets the present instant).
    pub(crate) fn new(period: Duration) -> Tick {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(NO_TICK);
        Tick {
            base: goro_runtime::testing::now(),
            period_ns,
            next: AtomicU64::new(period_ns),
        }
    }

    fn instant(&self, ns: u64) -> Option<Instant> {
        if ns == NO_TICK {
            return None;
        }
        self.base.checked_add(Duration::from_nanos(ns))
    }

    /// Takes the pending tick if one is due (invariant 2).
    pub(crate) fn try_take(&self) -> Poll {
        if self.period_ns == 0 {
            return Poll::Ready(goro_runtime::testing::now());
        }
        loop {
            let n = self.next.load(Ordering::Acquire);
            let Some(due) = self.instant(n) else {
                return Poll::Never;
            };
            let now = goro_runtime::testing::now();
            if now < due {
                return Poll::Later(due);
            }
            let now_ns = u64::try_from(now.duration_since(self.base).as_nanos()).unwrap_or(NO_TICK);
            // The first tick strictly after `now`; ticks in between are
            // dropped, as a full one-slot Go ticker channel drops them.
            let missed = (now_ns - n) / self.period_ns;
            let following = (missed + 1)
                .checked_mul(self.period_ns)
                .and_then(|d| n.checked_add(d))
                .unwrap_or(NO_TICK);
            if self
                .next
                .compare_exchange(n, following, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Ready(due);
            }
        }
    }

    /// When the next tick is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.period_ns == 0 {
            return Some(goro_runtime::testing::now());
        }
        self.instant(self.next.load(Ordering::Acquire))
    }

    /// 1 if a tick is pending, else 0.
    pub(crate) fn len(&self) -> usize {
        match self.next_due() {
            Some(d) if goro_runtime::testing::now() >= d => 1,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_fires_once_with_its_due_instant() {
        let due = Instant::now();
        let a = At::new(Some(due));
        assert_eq!(a.len(), 1);
        assert_eq!(a.try_take(), Poll::Ready(due));
        assert_eq!(a.try_take(), Poll::Never);
        assert_eq!(a.next_due(), None);
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn at_in_the_future_is_later() {
        let due = Instant::now() + Duration::from_secs(3600);
        let a = At::new(Some(due));
        assert_eq!(a.try_take(), Poll::Later(due));
        assert_eq!(At::new(None).try_take(), Poll::Never);
    }

    #[test]
    fn tick_drops_missed_ticks_and_stays_on_its_grid() {
        let t = Tick::new(Duration::from_millis(1));
        // Pretend 10.5 periods passed by moving the schedule back.
        t.next.store(0, Ordering::Release);
        let base = t.base;
        std::thread::sleep(Duration::from_millis(5));
        match t.try_take() {
            Poll::Ready(i) => assert_eq!(i, base),
            p => panic!("expected a tick, got {p:?}"),
        }
        // The next one is in the future, on the 1 ms grid.
        match t.try_take() {
            Poll::Later(d) => {
                assert!(d > Instant::now() - Duration::from_millis(1));
                assert_eq!(d.duration_since(base).as_nanos() % 1_000_000, 0);
            }
            Poll::Ready(_) => {} // a slow machine crossed the next tick
            Poll::Never => panic!("a ticker never stops"),
        }
    }

    #[test]
    fn huge_period_never_overflows() {
        let t = Tick::new(Duration::MAX);
        assert!(matches!(t.try_take(), Poll::Never | Poll::Later(_)));
        let z = Tick::new(Duration::ZERO);
        assert!(matches!(z.try_take(), Poll::Ready(_)));
    }
}
