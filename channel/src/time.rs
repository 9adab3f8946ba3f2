//! Stoppable timers: [`Timer`] and [`Ticker`], Go's `time.Timer` and
//! `time.Ticker` with Go 1.23's semantics.
//!
//! Each owns a receiver (its "`C`"), reached with `receiver()` or by
//! dereferencing the handle, that works wherever a [`Receiver`] does:
//! `recv`, `recv_timeout`, `select!`, [`Select`](crate::Select), and
//! `recv_async`.
//!
//! # Invariants (Go 1.23)
//!
//! 1. **No stale values.** After `stop` or `reset` returns, a receive gets
//!    no message that was due before the call: the channel holds no
//!    buffer, its message is computed from the schedule when taken, and
//!    taking, stopping and resetting are ordered by one lock (`timer.rs`
//!    invariant 4). So the Go idiom `if !t.Stop() { <-t.C }` is never
//!    needed, and a `reset` is safe on a timer that fired unread.
//! 2. **What `stop` and `reset` return.** `Timer::stop` and
//!    `Timer::reset` return `true` if the timer was active: its message
//!    was still to come, or due and not yet received. They return `false`
//!    if it had been received or the timer was stopped.
//! 3. **Waking.** A receiver blocked on the channel (or a `select!` with
//!    it as a case) waits until the due instant and is woken by every
//!    `stop`/`reset`, so a reset to an earlier instant takes effect at
//!    once, and a stopped timer's receivers simply go on waiting (they
//!    are not woken with a value, nor with an error: Go's channel does
//!    not close either).
//! 4. **Nothing to clean up.** A timer is its schedule: nothing sits on
//!    the runtime's timing wheel except the deadlines of parties that wait
//!    on it right now. Dropping the last handle (the `Timer` and every
//!    clone of its receiver) frees everything, stopped or not, as
//!    unreferenced timers are collected in Go 1.23.
//! 5. A ticker keeps at most one pending tick; a slow receiver loses the
//!    ticks it missed, and the next tick stays on the period's grid (as
//!    [`tick`](crate::tick)). `Ticker::reset(d)` restarts the grid at
//!    now + `d` with period `d`, even after `stop`. A zero period is
//!    always ready.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::handles::{Flavor, Receiver};
use crate::timer::Sched;

/// A single event at a time that can be stopped and re-armed, like Go's
/// `time.Timer`.
///
/// The message is the instant it was due. Use the channel with
/// [`receiver`](Timer::receiver) (or through `Deref`: `timer.recv()`,
/// `recv(timer)` in `select!`).
///
/// ```
/// use std::time::Duration;
/// use goro::chan::{Timer, bounded, select};
///
/// let (tx, rx) = bounded::<u32>(1);
/// let idle = Timer::new(Duration::from_secs(3600));
/// tx.send(1).unwrap();
/// select! {
///     recv(rx) -> v => {
///         assert_eq!(v, Ok(1));
///         // Activity: push the idle timeout back (no stale value can
///         // come out of the channel afterwards).
///         assert!(idle.reset(Duration::from_secs(3600)));
///     }
///     recv(idle) -> _ => unreachable!(),
/// }
/// assert!(idle.stop());
/// assert!(!idle.stop());
/// ```
pub struct Timer {
    rx: Receiver<Instant>,
    sched: Arc<Sched>,
}

impl Timer {
    /// A timer that fires once, `d` from now.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let start = Instant::now();
    /// let t = goro::chan::Timer::new(Duration::from_millis(2));
    /// assert!(t.recv().unwrap() >= start + Duration::from_millis(2));
    /// ```
    pub fn new(d: Duration) -> Timer {
        Timer::with_due(goro_runtime::testing::now().checked_add(d))
    }

    /// A timer that fires once, at `when` (at once if it has passed).
    ///
    /// ```
    /// use std::time::Instant;
    ///
    /// let when = Instant::now();
    /// assert_eq!(goro::chan::Timer::at(when).recv(), Ok(when));
    /// ```
    pub fn at(when: Instant) -> Timer {
        Timer::with_due(Some(when))
    }

    fn with_due(due: Option<Instant>) -> Timer {
        let sched = Arc::new(Sched::timer(due));
        Timer {
            rx: Receiver {
                flavor: Flavor::Sched(sched.clone(), std::convert::identity),
            },
            sched,
        }
    }

    /// The timer's channel (Go's `t.C`). Clone it to keep it apart from the
    /// timer.
    ///
    /// ```
    /// let t = goro::chan::Timer::new(std::time::Duration::ZERO);
    /// assert!(t.receiver().recv().is_ok());
    /// ```
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the timer: no message comes out of its channel until a
    /// [`reset`](Timer::reset). Returns `true` if the timer was active
    /// (its message was to come, or due and not yet received), `false` if
    /// it had been received or the timer was already stopped.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = goro::chan::Timer::new(Duration::ZERO);
    /// std::thread::sleep(Duration::from_millis(1));
    /// assert!(t.stop()); // fired but unread: no stale value is left
    /// assert!(t.try_recv().is_err());
    /// ```
    pub fn stop(&self) -> bool {
        self.sched.stop()
    }

    /// Re-arms the timer to fire `d` from now, whatever its state. Returns
    /// what [`stop`](Timer::stop) would have returned: whether the timer
    /// was active. No message due before the call is delivered after it.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = goro::chan::Timer::new(Duration::ZERO);
    /// assert!(t.recv().is_ok());
    /// assert!(!t.reset(Duration::ZERO)); // it had been received
    /// assert!(t.recv().is_ok()); // and fires again
    /// ```
    pub fn reset(&self, d: Duration) -> bool {
        self.sched
            .reset(goro_runtime::testing::now().checked_add(d), None)
    }

    /// Re-arms the timer to fire at `when`; as [`reset`](Timer::reset).
    ///
    /// ```
    /// use std::time::Instant;
    ///
    /// let t = goro::chan::Timer::new(std::time::Duration::from_secs(3600));
    /// let now = Instant::now();
    /// assert!(t.reset_at(now));
    /// assert_eq!(t.recv(), Ok(now));
    /// ```
    pub fn reset_at(&self, when: Instant) -> bool {
        self.sched.reset(Some(when), None)
    }
}

impl Deref for Timer {
    type Target = Receiver<Instant>;

    fn deref(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("next", &self.sched.next_due())
            .finish()
    }
}

/// A periodic event that can be stopped and reset, like Go's
/// `time.Ticker`. The message is the instant each tick was due; at most
/// one tick is pending: a slow receiver loses the ticks it missed.
///
/// ```
/// use std::time::Duration;
///
/// let ticker = goro::chan::Ticker::new(Duration::from_millis(1));
/// let a = ticker.recv().unwrap();
/// let b = ticker.recv().unwrap();
/// assert!(b >= a + Duration::from_millis(1));
/// ticker.stop();
/// assert!(ticker.recv_timeout(Duration::from_millis(5)).is_err());
/// ```
pub struct Ticker {
    rx: Receiver<Instant>,
    sched: Arc<Sched>,
}

impl Ticker {
    /// A ticker whose first tick is due `period` from now.
    ///
    /// ```
    /// let t = goro::chan::Ticker::new(std::time::Duration::from_millis(1));
    /// assert!(t.recv().is_ok());
    /// ```
    pub fn new(period: Duration) -> Ticker {
        let sched = Arc::new(Sched::ticker(period));
        Ticker {
            rx: Receiver {
                flavor: Flavor::Sched(sched.clone(), std::convert::identity),
            },
            sched,
        }
    }

    /// The ticker's channel (Go's `t.C`).
    ///
    /// ```
    /// let t = goro::chan::Ticker::new(std::time::Duration::ZERO);
    /// assert!(t.receiver().try_recv().is_ok());
    /// ```
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the ticker: no tick, pending or future, is delivered until a
    /// [`reset`](Ticker::reset).
    ///
    /// ```
    /// let t = goro::chan::Ticker::new(std::time::Duration::ZERO);
    /// t.stop();
    /// assert!(t.try_recv().is_err());
    /// ```
    pub fn stop(&self) {
        self.sched.stop();
    }

    /// Restarts the ticker with period `period`: the next tick is due
    /// `period` from now, and no tick due before the call is delivered
    /// after it. Works on a stopped ticker too.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = goro::chan::Ticker::new(Duration::from_secs(3600));
    /// t.reset(Duration::from_millis(1));
    /// assert!(t.recv_timeout(Duration::from_secs(10)).is_ok());
    /// ```
    pub fn reset(&self, period: Duration) {
        self.sched.reset(
            goro_runtime::testing::now().checked_add(period),
            Some(period),
        );
    }
}

impl Deref for Ticker {
    type Target = Receiver<Instant>;

    fn deref(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("next", &self.sched.next_due())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreferenced_timer_is_freed() {
        let t = Timer::new(Duration::from_secs(3600));
        let weak = Arc::downgrade(&t.sched);
        let rx = t.receiver().clone();
        drop(t);
        assert!(weak.upgrade().is_some(), "the receiver keeps it");
        drop(rx);
        assert!(weak.upgrade().is_none());
        let k = Ticker::new(Duration::from_millis(1));
        let weak = Arc::downgrade(&k.sched);
        drop(k);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn handles_are_send_sync() {
        fn check<X: Send + Sync>() {}
        check::<Timer>();
        check::<Ticker>();
    }
}
