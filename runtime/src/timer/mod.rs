//! Timers: one timing wheel per worker, driven by the workers themselves.
//!
//! A coroutine that parks with a deadline puts a timer on its home worker's
//! wheel; firing the timer is an ordinary `unpark`. There is no timer
//! thread: a busy worker advances its own wheel every few scheduling ticks,
//! and the one idle worker that waits in the reactor sleeps until the
//! earliest deadline of all wheels and then advances every wheel (see
//! `scheduler/idle.rs`).
//!
//! # Invariants
//!
//! 1. Ticks are whole milliseconds since the runtime's epoch, from the
//!    monotonic clock. A deadline is rounded *up* to a tick and a wheel is
//!    advanced to the current tick rounded *down*, so no timer fires early;
//!    lateness is at most one tick plus scheduling delay.
//! 2. `next` mirrors the wheel's earliest deadline (`u64::MAX` when empty)
//!    after every change made under the lock, so other threads can compute
//!    how long the reactor may sleep without taking every wheel's lock.
//! 3. What fires is either a parked coroutine's wake-up (an `unpark`) or
//!    an alarm's callback ([`crate::alarm`]), and it runs after the wheel's
//!    lock is released, on the thread that advanced the wheel. A callback
//!    that panics is reported and dropped: it must not take down the
//!    worker that ran it.

mod wheel;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub(crate) use wheel::TimerKey;
use wheel::Wheel;

use crate::task::Task;

/// Converts instants to wheel ticks (invariant 1).
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// The tick at or after `deadline`.
    pub(crate) fn deadline_tick(&self, deadline: Instant) -> u64 {
        let d = deadline.saturating_duration_since(self.epoch);
        let ms = d.as_millis() as u64;
        if d > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    /// The current tick, rounded down.
    pub(crate) fn now_tick(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The instant a tick begins.
    pub(crate) fn instant_of(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_millis(tick)
    }
}

/// What a timer does when it fires (invariant 3).
pub(crate) enum Due {
    /// Unpark a coroutine that parked with a deadline.
    Task(Arc<Task>),
    /// Run an alarm's callback.
    Alarm(Arc<dyn crate::alarm::Fire>),
}

impl Due {
    pub(crate) fn fire(self) {
        match self {
            Due::Task(task) => task.unpark(),
            Due::Alarm(target) => {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.fire()));
                if ran.is_err() {
                    eprintln!("goro: an alarm callback panicked; the panic was dropped");
                }
            }
        }
    }
}

/// One worker's timers.
pub(crate) struct Timers {
    wheel: Mutex<Wheel<Due>>,
    next: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            wheel: Mutex::new(Wheel::new()),
            next: AtomicU64::new(u64::MAX),
        }
    }

    /// Earliest pending tick, or `u64::MAX` (invariant 2).
    pub(crate) fn next_tick(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Adds a timer that fires `due` at `tick`; returns its key and
    /// whether it became this wheel's earliest.
    pub(crate) fn insert(&self, tick: u64, due: Due) -> (TimerKey, bool) {
        let mut w = self.wheel.lock();
        let key = w.insert(tick, due);
        let earliest = tick < self.next.load(Ordering::Relaxed);
        self.publish(&w);
        (key, earliest)
    }

    /// Removes a timer that has not fired; false if it had (or was
    /// cancelled before).
    pub(crate) fn cancel(&self, key: TimerKey) -> bool {
        let mut w = self.wheel.lock();
        let removed = w.cancel(key);
        self.publish(&w);
        drop(w);
        // Dropped after the lock: an alarm's target may run user code.
        removed.is_some()
    }

    /// Fires every timer due at `now`. With `try_only`, gives up if another
    /// thread holds the wheel (it is the owner, busy with it). Returns how
    /// many fired.
    pub(crate) fn fire_due(&self, now: u64, try_only: bool) -> usize {
        if self.next.load(Ordering::Acquire) > now {
            return 0;
        }
        let mut due = Vec::new();
        {
            let mut w = if try_only {
                match self.wheel.try_lock() {
                    Some(w) => w,
                    None => return 0,
                }
            } else {
                self.wheel.lock()
            };
            w.advance(now, |t| due.push(t));
            self.publish(&w);
        }
        let n = due.len();
        for d in due {
            d.fire();
        }
        n
    }

    /// Pending timers.
    pub(crate) fn len(&self) -> usize {
        self.wheel.lock().len()
    }

    fn publish(&self, w: &Wheel<Due>) {
        self.next
            .store(w.next_deadline().unwrap_or(u64::MAX), Ordering::Release);
    }
}
