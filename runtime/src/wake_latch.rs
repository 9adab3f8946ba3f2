//! The reactor's wake-up latch: at most one `eventfd` write per wait cycle.
//!
//! Waking the thread blocked in `epoll_wait` costs a write to the reactor's
//! eventfd, and the reading side a read. A burst of `notify` calls needs
//! only one of each, so a flag says "a wake-up is pending": only the
//! notifier that sets it writes, and the poller clears it when it handles
//! the eventfd's event.
//!
//! # The order that matters
//!
//! The poller *drains the eventfd first, then clears the flag*. The other
//! order loses wake-ups for good: a notify between clearing and draining
//! sets the flag and writes, the drain then reads that write away, and the
//! flag is left set with nothing in the eventfd. epoll re-checks readiness
//! before it reports an edge, so no later wait sees the write, and every
//! later notify finds the flag set and skips its write: the poller sleeps
//! through all of them. In the order used here a notify that lands between
//! the two finds the flag still set and skips its write while the poller
//! is awake, which is safe: the poller re-checks every queue before it
//! sleeps again (`scheduler/idle.rs`, step 2).
//!
//!
//! # A drain by someone else
//!
//! That argument needs the thread that drains to be the thread that sleeps.
//! On io_uring it need not be: a busy worker's round reaps every
//! completion, the eventfd's among them, while the reactor owner is
//! between its last look at the queues and its wait. A notify for the
//! owner that found the flag set (a wake-up was pending) then skipped its
//! write; the busy worker drains that pending wake-up and clears the flag;
//! the owner goes on to wait with nothing in the eventfd, and the work
//! queued for it sits there while every worker sleeps. So the latch counts
//! its drains (`epoch`): the sleeper reads the count before its last look
//! at the queues and, under the completion lock that every drain holds,
//! waits only if the count has not moved. A drain it did not see is
//! answered by one more round instead of a wait, in which the work is
//! visible: the notifier queued it before it read the flag, the drainer
//! read the flag before it counted, and the sleeper reads the count with
//! `Acquire` before it looks at the queues.
//!
//! The model checks below drive this latch with a model eventfd; the first
//! fails on the other order, the second without the epoch check.

use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// See the module docs.
pub(crate) struct WakeLatch {
    /// Set while a wake-up is pending in the eventfd.
    notified: AtomicBool,
    /// How many drains have cleared the flag (module docs, "a drain by
    /// someone else").
    drains: AtomicUsize,
}

impl WakeLatch {
    pub(crate) fn new() -> WakeLatch {
        WakeLatch {
            notified: AtomicBool::new(false),
            drains: AtomicUsize::new(0),
        }
    }

    /// The count of drains so far; a sleeper reads it before its last look
    /// at the queues and waits only if [`WakeLatch::drained_since`] is
    /// false (module docs).
    #[inline]
    pub(crate) fn epoch(&self) -> usize {
        self.drains.load(Ordering::Acquire)
    }

    /// Whether a drain happened since `epoch` was read.
    #[inline]
    pub(crate) fn drained_since(&self, epoch: usize) -> bool {
        self.drains.load(Ordering::Acquire) != epoch
    }

    /// Notifier side: runs `signal` (the eventfd write) unless a wake-up is
    /// already pending.
    #[inline]
    pub(crate) fn notify(&self, signal: impl FnOnce()) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            signal();
        }
    }

    /// Poller side, on the eventfd's event: runs `drain` (the eventfd read),
    /// then clears the flag, in that order (module docs).
    ///
    /// The clear is a swap rather than a store: a read-modify-write is
    /// ordered after every set of the flag before it. A store would be as
    /// well, given the fences on both sides (`idle::sleep`,
    /// `Shared::wake_worker`), but loom's modification order does not
    /// derive that, and reports a lost wake-up that cannot happen; next to
    /// the `read` system call before it the swap costs nothing. It acquires
    /// as well, and the count of drains is bumped with `Release` after it:
    /// a notify that skipped its write (its swap found the flag set) is in
    /// the flag's release sequence, so a sleeper that sees the new count
    /// sees the work that notify was for.
    #[inline]
    pub(crate) fn drained(&self, drain: impl FnOnce()) {
        drain();
        self.notified.swap(false, Ordering::AcqRel);
        self.drains.fetch_add(1, Ordering::Release);
    }
}

/// Model checks (run with `.ci/loom`): a poller thread that waits on a
/// model eventfd as `Reactor::poll` waits in `epoll_wait`, and notifiers
/// that queue work, fence, and notify, as `Shared::wake_worker` does for a
/// worker in `POLLING`. The poller re-checks the queue (after a fence, as
/// `idle::sleep` does) before every wait. A lost wake-up leaves it waiting
/// with work queued, which loom reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::{AtomicUsize, fence};
    use crate::loom::thread::{self, Thread};
    use std::sync::Arc;

    struct Model {
        latch: WakeLatch,
        /// The eventfd's counter: a write adds, a read takes it all.
        eventfd: AtomicUsize,
        /// Work items queued by notifiers.
        queued: AtomicUsize,
    }

    impl Model {
        /// `Reactor::notify` with the eventfd write and the wake-up of the
        /// thread in `epoll_wait`.
        fn notify(&self, poller: &Thread) {
            self.latch.notify(|| {
                self.eventfd.fetch_add(1, Ordering::Release);
                poller.unpark();
            });
        }

        /// `epoll_wait` without a timeout until the eventfd is readable
        /// (epoll reports it only while its counter is above zero), then
        /// the `WAKE_KEY` branch of `Reactor::poll`.
        fn poll(&self) {
            while self.eventfd.load(Ordering::Acquire) == 0 {
                thread::park();
            }
            self.latch.drained(|| {
                self.eventfd.swap(0, Ordering::Acquire);
            });
        }
    }

    /// `per_thread[i]` notifications from notifier thread `i`, each after
    /// queueing one work item.
    fn notifiers(per_thread: &'static [usize]) {
        loom::model(move || {
            let m = Arc::new(Model {
                latch: WakeLatch::new(),
                eventfd: AtomicUsize::new(0),
                queued: AtomicUsize::new(0),
            });
            let total: usize = per_thread.iter().sum();
            let poller = thread::current();
            let threads: Vec<_> = per_thread
                .iter()
                .map(|&n| {
                    let (m, poller) = (m.clone(), poller.clone());
                    loom::thread::spawn(move || {
                        for _ in 0..n {
                            m.queued.fetch_add(1, Ordering::Release);
                            fence(Ordering::SeqCst);
                            m.notify(&poller);
                        }
                    })
                })
                .collect();
            loop {
                fence(Ordering::SeqCst);
                if m.queued.load(Ordering::Acquire) == total {
                    break;
                }
                m.poll();
            }
            for t in threads {
                t.join().unwrap();
            }
        });
    }

    /// A notify that races with the drain of an earlier one: the poller
    /// still wakes for the notify after it.
    #[test]
    fn no_notify_is_lost_across_a_drain() {
        notifiers(&[2, 1]);
    }

    /// The io_uring case (module docs, "a drain by someone else"): a busy
    /// reaper may drain the eventfd between the sleeper's last look at the
    /// queue and its wait. The sleeper waits, holding the completion lock
    /// as `Uring::poll` does, only if no drain happened since its epoch;
    /// the reaper reaps only if it gets that lock (`Uring::round`).
    #[test]
    fn a_drain_by_a_busy_reaper_is_not_slept_through() {
        loom::model(|| {
            let m = Arc::new(Model {
                latch: WakeLatch::new(),
                eventfd: AtomicUsize::new(0),
                queued: AtomicUsize::new(0),
            });
            let cq = Arc::new(loom::sync::Mutex::new(()));
            let poller = thread::current();
            let notifier = {
                let (m, poller) = (m.clone(), poller.clone());
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        m.queued.fetch_add(1, Ordering::Release);
                        fence(Ordering::SeqCst);
                        m.notify(&poller);
                    }
                })
            };
            let reaper = {
                let (m, cq) = (m.clone(), cq.clone());
                loom::thread::spawn(move || {
                    if let Ok(_g) = cq.try_lock()
                        && m.eventfd.load(Ordering::Acquire) > 0
                    {
                        m.latch.drained(|| {
                            m.eventfd.swap(0, Ordering::Acquire);
                        });
                    }
                })
            };
            loop {
                fence(Ordering::SeqCst);
                let epoch = m.latch.epoch();
                if m.queued.load(Ordering::Acquire) == 2 {
                    break;
                }
                // A lock held by the reaper: `Uring::poll` submits without
                // waiting and the worker goes round again.
                let Ok(_g) = cq.try_lock() else {
                    thread::yield_now();
                    continue;
                };
                if !m.latch.drained_since(epoch) {
                    m.poll();
                }
            }
            notifier.join().unwrap();
            reaper.join().unwrap();
        });
    }
}
