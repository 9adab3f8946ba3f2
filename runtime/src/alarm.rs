//! Alarms: a short callback run at an instant, on goro's own timers.
//!
//! The user guide (what an alarm is for, what it promises, the rules for
//! its callback) is the `goro::alarm` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/alarm/>. An alarm is an entry of a
//! worker's timing wheel (`timer/`) whose firing runs [`Fire::fire`]
//! instead of an unpark.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::scheduler::{self, TimerHandle};

/// What an [`Alarm`] calls when its deadline comes.
///
/// Implement it on the shared state the callback needs; the alarm holds
/// an `Arc` of it until it fires or is cancelled. The `goro::alarm` page
/// says what a callback may do (briefly: wake things, never block).
pub trait Fire: Send + Sync + 'static {
    /// Called once, at or shortly after the deadline, on a runtime worker
    /// thread outside any coroutine.
    fn fire(self: Arc<Self>);
}

/// A pending callback on goro's timers. Dropping it cancels it.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::{Duration, Instant};
/// use goro::alarm::{Alarm, Fire};
/// use goro::park::{self, Unparker};
///
/// struct Wake(AtomicBool, Unparker);
/// impl Fire for Wake {
///     fn fire(self: Arc<Self>) {
///         self.0.store(true, Ordering::Release);
///         self.1.unpark();
///     }
/// }
///
/// let wake = Arc::new(Wake(AtomicBool::new(false), park::current()));
/// let _alarm = Alarm::set(Instant::now() + Duration::from_millis(5), wake.clone());
/// while !wake.0.load(Ordering::Acquire) {
///     park::park();
/// }
/// ```
#[must_use = "dropping an Alarm cancels it"]
pub struct Alarm {
    handle: Option<Handle>,
}

/// Where the alarm's timer is.
enum Handle {
    /// On a worker's wheel.
    Wheel(TimerHandle),
    /// On a testing bubble's virtual clock (`testing/`).
    Bubble(Arc<crate::testing::Bubble>, crate::testing::bubble::VKey),
}

impl Handle {
    fn cancel(self) -> bool {
        match self {
            Handle::Wheel(h) => scheduler::cancel_timer(h),
            Handle::Bubble(b, key) => b.cancel_timer(key),
        }
    }
}

impl Alarm {
    /// Arranges for `target.fire()` to run at `deadline` (at the next
    /// turn of the timers if it has passed). Starts the runtime if it is
    /// not running yet. Set from inside a testing bubble, it runs on the
    /// bubble's virtual clock (`goro::testing`).
    pub fn set(deadline: Instant, target: Arc<dyn Fire>) -> Alarm {
        let handle = match crate::testing::current() {
            Some(b) => Handle::Bubble(
                b.clone(),
                b.insert_timer(deadline, crate::timer::Due::Alarm(target)),
            ),
            None => Handle::Wheel(scheduler::insert_alarm(deadline, target)),
        };
        Alarm {
            handle: Some(handle),
        }
    }

    /// Cancels the alarm. Returns `true` if it had not fired (its callback
    /// will never run), `false` if the callback has run or is running.
    pub fn cancel(mut self) -> bool {
        self.handle.take().is_some_and(Handle::cancel)
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.cancel();
        }
    }
}

impl fmt::Debug for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Alarm { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::park::{self, Unparker};

    struct Count(AtomicUsize, Unparker);

    impl Fire for Count {
        fn fire(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::AcqRel);
            self.1.unpark();
        }
    }

    #[test]
    fn fires_once_not_early() {
        let c = Arc::new(Count(AtomicUsize::new(0), park::current()));
        let at = Instant::now() + Duration::from_millis(3);
        let a = Alarm::set(at, c.clone());
        while c.0.load(Ordering::Acquire) == 0 {
            park::park();
        }
        assert!(Instant::now() >= at);
        assert!(!a.cancel());
        assert_eq!(c.0.load(Ordering::Acquire), 1);
    }

    #[test]
    fn cancel_releases_the_target() {
        let c = Arc::new(Count(AtomicUsize::new(0), park::current()));
        let a = Alarm::set(Instant::now() + Duration::from_secs(3600), c.clone());
        assert_eq!(Arc::strong_count(&c), 2);
        assert!(a.cancel());
        assert_eq!(Arc::strong_count(&c), 1);
        let b = Alarm::set(Instant::now() + Duration::from_secs(3600), c.clone());
        drop(b);
        assert_eq!(Arc::strong_count(&c), 1);
        assert_eq!(c.0.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_panicking_callback_is_contained() {
        struct Boom;
        impl Fire for Boom {
            fn fire(self: Arc<Self>) {
                panic!("boom in an alarm");
            }
        }
        let _a = Alarm::set(Instant::now(), Arc::new(Boom));
        // The runtime keeps firing timers afterwards.
        let c = Arc::new(Count(AtomicUsize::new(0), park::current()));
        let _b = Alarm::set(Instant::now() + Duration::from_millis(2), c.clone());
        while c.0.load(Ordering::Acquire) == 0 {
            park::park();
        }
    }
}
