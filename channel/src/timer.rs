//! Timer channels: `after`/`at` (one message), `tick` (periodic), and the
//! schedule behind the stoppable [`Timer`](crate::Timer) and
//! [`Ticker`](crate::Ticker).
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
//! 4. `Sched` (a `Timer`'s or `Ticker`'s channel) is the same schedule made
//!    mutable, so it is kept under a lock: `next` is the due instant of
//!    the pending message (`None`: stopped, or a one-shot already
//!    received). Taking, stopping and resetting all happen under the
//!    lock, and each bumps `seq`, so a message is either taken before a
//!    `stop`/`reset` or not at all: there is no buffered stale value, which
//!    is Go 1.23's guarantee for `Timer.Stop`/`Reset`. A look that found
//!    "not ready" stays valid while `seq` is unchanged and `next` is not
//!    due (what `select`'s give-up proof needs).
//! 5. A `Sched` wakes its waiters when it changes: whoever waits on it
//!    (a blocked `recv`, a `select` case, an async receive) leaves a
//!    `Waker` in `watchers` under the same lock as its failed look, and
//!    `stop`/`reset` wake them all after unlocking, so a reset to an
//!    earlier instant is seen at once. Waiters also wait with a deadline
//!    at the due instant, so firing needs no wake-up of its own, and an
//!    unreferenced timer holds nothing on the runtime's timing wheel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::lock::SpinLock;

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

/// The first tick of `period` strictly after `now`, on the grid of
/// `due`, or `None` past what `Instant` holds.
fn following(due: Instant, period: Duration, now: Instant) -> Option<Instant> {
    let late = now.saturating_duration_since(due).as_nanos();
    let p = period.as_nanos().max(1);
    let steps = u32::try_from(late / p + 1).ok()?;
    due.checked_add(period.checked_mul(steps)?)
}

struct SchedState {
    /// Due instant of the pending message; `None`: nothing pending.
    next: Option<Instant>,
    /// `Some` for a ticker: the period (zero: always ready).
    period: Option<Duration>,
    /// Bumped by every change (invariant 4).
    seq: u64,
    /// Who to wake on `stop`/`reset` (invariant 5).
    watchers: Vec<Waker>,
}

/// The channel of a stoppable [`Timer`](crate::Timer) or
/// [`Ticker`](crate::Ticker) (invariants 4 and 5).
pub(crate) struct Sched {
    st: SpinLock<SchedState>,
}

impl Sched {
    /// A one-shot schedule due at `due` (`None`: never).
    pub(crate) fn timer(due: Option<Instant>) -> Sched {
        Sched::new(due, None)
    }

    /// A periodic schedule, first due one `period` from now.
    pub(crate) fn ticker(period: Duration) -> Sched {
        Sched::new(
            goro_runtime::testing::now().checked_add(period),
            Some(period),
        )
    }

    fn new(next: Option<Instant>, period: Option<Duration>) -> Sched {
        Sched {
            st: SpinLock::new(SchedState {
                next,
                period,
                seq: 0,
                watchers: Vec::new(),
            }),
        }
    }

    /// Takes the pending message if it is due; otherwise, with `watch`,
    /// leaves that waker to be woken by the next `stop`/`reset`. Returns
    /// the verdict and the `seq` it was made at.
    pub(crate) fn try_take(&self, watch: Option<&Waker>) -> (Poll, u64) {
        let mut st = self.st.lock();
        let seq = st.seq;
        let poll = match (st.next, st.period) {
            (None, _) => Poll::Never,
            (Some(_), Some(p)) if p.is_zero() => {
                st.seq += 1;
                return (Poll::Ready(goro_runtime::testing::now()), seq);
            }
            (Some(due), period) => {
                let now = goro_runtime::testing::now();
                if now < due {
                    Poll::Later(due)
                } else {
                    st.next = period.and_then(|p| following(due, p, now));
                    st.seq += 1;
                    return (Poll::Ready(due), seq);
                }
            }
        };
        if let Some(w) = watch
            && !st.watchers.iter().any(|x| x.will_wake(w))
        {
            st.watchers.push(w.clone());
        }
        (poll, seq)
    }

    /// Leaves `w` to be woken by the next `stop`/`reset`; returns whether
    /// a message is due now (without taking it).
    pub(crate) fn watch(&self, w: &Waker) -> bool {
        let mut st = self.st.lock();
        if !st.watchers.iter().any(|x| x.will_wake(w)) {
            st.watchers.push(w.clone());
        }
        match (st.next, st.period) {
            (None, _) => false,
            (Some(_), Some(p)) if p.is_zero() => true,
            (Some(due), _) => goro_runtime::testing::now() >= due,
        }
    }

    /// Removes a waker left by `try_take`.
    pub(crate) fn unwatch(&self, w: &Waker) {
        let mut st = self.st.lock();
        if let Some(i) = st.watchers.iter().position(|x| x.will_wake(w)) {
            st.watchers.swap_remove(i);
        }
    }

    /// Whether a `try_take` at `seq` that returned "not ready" still holds:
    /// nothing changed since and nothing came due (invariant 4).
    pub(crate) fn still_idle(&self, seq: u64) -> bool {
        let st = self.st.lock();
        st.seq == seq && st.next.is_none_or(|d| goro_runtime::testing::now() < d)
    }

    /// When the pending message is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let st = self.st.lock();
        match (st.next, st.period) {
            (Some(_), Some(p)) if p.is_zero() => Some(goro_runtime::testing::now()),
            (next, _) => next,
        }
    }

    /// 1 if a message is due and untaken, else 0.
    pub(crate) fn len(&self) -> usize {
        match self.next_due() {
            Some(d) if goro_runtime::testing::now() >= d => 1,
            _ => 0,
        }
    }

    /// Stops the schedule. True if a message was still to come or due and
    /// untaken (Go's `Timer.Stop`), false if it had been received already
    /// or was stopped.
    pub(crate) fn stop(&self) -> bool {
        self.change(None, None)
    }

    /// Re-arms the schedule: the next message is due at `next`; a ticker
    /// takes `period` as its new period. Returns what `stop` would have.
    pub(crate) fn reset(&self, next: Option<Instant>, period: Option<Duration>) -> bool {
        self.change(Some(next), period)
    }

    fn change(&self, next: Option<Option<Instant>>, period: Option<Duration>) -> bool {
        let (was_active, watchers) = {
            let mut st = self.st.lock();
            let was_active = st.next.is_some();
            st.next = next.flatten();
            if st.period.is_some()
                && let Some(p) = period
            {
                st.period = Some(p);
            }
            st.seq += 1;
            (was_active, std::mem::take(&mut st.watchers))
        };
        // Woken after the lock: a waker may run arbitrary code.
        for w in watchers {
            w.wake();
        }
        was_active
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

    #[test]
    fn sched_stop_and_reset_follow_go_1_23() {
        let s = Sched::timer(Some(Instant::now()));
        assert_eq!(s.len(), 1);
        // Due but untaken: stop reports it, and it is gone.
        assert!(s.stop());
        assert_eq!(s.try_take(None).0, Poll::Never);
        assert!(!s.stop());
        // Reset re-arms; once taken, stop says false.
        assert!(!s.reset(Some(Instant::now()), None));
        assert!(matches!(s.try_take(None).0, Poll::Ready(_)));
        assert!(!s.stop());
        assert!(!s.reset(Some(Instant::now() + Duration::from_secs(3600)), None));
        assert!(s.reset(Some(Instant::now() + Duration::from_secs(3600)), None));
    }

    #[test]
    fn sched_seq_proves_idleness() {
        let s = Sched::timer(Some(Instant::now() + Duration::from_secs(3600)));
        let (p, seq) = s.try_take(None);
        assert!(matches!(p, Poll::Later(_)));
        assert!(s.still_idle(seq));
        s.reset(Some(Instant::now() + Duration::from_secs(3600)), None);
        assert!(!s.still_idle(seq));
    }

    #[test]
    fn sched_wakes_its_watchers_on_reset() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(c.clone());
        let s = Sched::ticker(Duration::from_secs(3600));
        assert!(matches!(s.try_take(Some(&w)).0, Poll::Later(_)));
        assert!(matches!(s.try_take(Some(&w)).0, Poll::Later(_)));
        s.reset(Some(Instant::now()), Some(Duration::from_secs(1)));
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        s.stop();
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        // Ticks resume on the new grid.
        assert!(!s.reset(None, None));
    }

    #[test]
    fn following_stays_on_the_grid() {
        let base = Instant::now();
        let p = Duration::from_millis(10);
        assert_eq!(following(base, p, base), Some(base + p));
        assert_eq!(
            following(base, p, base + Duration::from_millis(35)),
            Some(base + 4 * p)
        );
        assert_eq!(following(base, Duration::MAX, base), None);
    }
}
