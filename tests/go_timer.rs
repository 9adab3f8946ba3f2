//! Go's `time.Timer` and `time.Ticker` Stop/Reset tests, ported.
//!
//! The semantics come from Go's `src/time/sleep_test.go` and
//! `src/time/tick_test.go` (BSD-style licence, The Go Authors) as of Go
//! 1.23, where timer channels became synchronous: no stale value after
//! `Stop` or `Reset`. The code is goro's own; each test names the Go test
//! it follows. Timing-dependent Go checks ("fires within 10ms") are turned
//! into ordering checks: something fires, or something does not happen
//! before a later event.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, RecvTimeoutError, Ticker, Timer, TryRecvError};
use goro::select;
use support::within;

const HOUR: Duration = Duration::from_secs(3600);

/// TestAfterStop / TestTimerStopStress: a timer stopped before it fires
/// never delivers; `Stop` says it was active.
#[test]
fn stop_before_firing_delivers_nothing() {
    within("stopped timers", || {
        let timers: Vec<_> = (0..100)
            .map(|_| Timer::new(Duration::from_millis(5)))
            .collect();
        for t in &timers {
            assert!(t.stop(), "an active timer's stop returns true");
        }
        // A timer that fires later than all of them, as Go's test waits.
        chan::after(Duration::from_millis(20)).recv().unwrap();
        for t in &timers {
            assert_eq!(t.try_recv(), Err(TryRecvError::Empty));
            assert!(!t.stop(), "a second stop returns false");
        }
    });
}

/// TestZeroTimer: a zero (or negative, in Go) duration fires at once.
#[test]
fn zero_timer_fires() {
    within("zero timers", || {
        for _ in 0..1000 {
            let start = Instant::now();
            let t = Timer::new(Duration::ZERO);
            let fired = t.recv().unwrap();
            assert!(fired >= start);
        }
    });
}

/// TestReset: `Reset` on an active timer returns true and moves its due
/// time; on a received one it returns false and arms it again.
#[test]
fn reset_reports_and_rearms() {
    within("reset", || {
        let t = Timer::new(HOUR);
        assert!(t.reset(Duration::from_millis(1)));
        let fired = t.recv().unwrap();
        assert!(!t.reset(Duration::from_millis(1)), "received: not active");
        let again = t.recv().unwrap();
        assert!(again > fired);
        assert!(!t.stop());
    });
}

/// TestChan (Go 1.23, asynctimerchan=0): a timer that fired but was not
/// read delivers nothing after `Stop` or `Reset`; after `Reset` the value
/// is the new one, never the stale one.
#[test]
fn no_stale_value_after_stop_or_reset() {
    within("stale values", || {
        let t = Timer::new(Duration::ZERO);
        chan::after(Duration::from_millis(2)).recv().unwrap();
        assert_eq!(t.len(), 1, "fired, unread");
        assert!(t.stop(), "fired but unread counts as active (Go 1.23)");
        assert_eq!(t.try_recv(), Err(TryRecvError::Empty));

        let t = Timer::new(Duration::ZERO);
        chan::after(Duration::from_millis(2)).recv().unwrap();
        let before_reset = Instant::now();
        assert!(t.reset(Duration::from_millis(3)));
        let v = t.recv().unwrap();
        assert!(
            v >= before_reset + Duration::from_millis(3),
            "got the stale value {v:?}"
        );

        // Reset to an hour: nothing is delivered from the old schedule.
        let t = Timer::new(Duration::ZERO);
        chan::after(Duration::from_millis(2)).recv().unwrap();
        assert!(t.reset(HOUR));
        assert_eq!(t.try_recv(), Err(TryRecvError::Empty));
    });
}

/// testStopResetResult: two timers race; whichever fires first, stopping
/// (or resetting) the other returns false only if its value can still be
/// received, so the receive after a false never hangs.
fn stop_reset_result(stop: bool) {
    let stop_or_reset = move |t: &Timer| if stop { t.stop() } else { t.reset(HOUR) };
    let hs: Vec<_> = (0..20)
        .map(|_| {
            goro::go!(move || {
                for _ in 0..20 {
                    let t1 = Timer::new(Duration::from_millis(1));
                    let t2 = Timer::new(Duration::from_millis(1));
                    select! {
                        recv(t1) -> _ => {
                            if !stop_or_reset(&t2) {
                                t2.recv_timeout(support::PATIENCE).expect("a false stop left no value");
                            }
                        }
                        recv(t2) -> _ => {
                            if !stop_or_reset(&t1) {
                                t1.recv_timeout(support::PATIENCE).expect("a false stop left no value");
                            }
                        }
                    }
                    // Either way, nothing further comes out of either.
                    assert_eq!(t1.try_recv(), Err(TryRecvError::Empty));
                    assert_eq!(t2.try_recv(), Err(TryRecvError::Empty));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn stop_result() {
    within("stop results", || stop_reset_result(true));
}

#[test]
fn reset_result() {
    within("reset results", || stop_reset_result(false));
}

/// TestTimerModifiedEarlier: a receiver blocked on a timer due in an hour
/// is woken when the timer is reset to fire soon.
#[test]
fn reset_earlier_wakes_a_blocked_receiver() {
    within("reset earlier", || {
        for in_coroutine in [true, false] {
            let t = Arc::new(Timer::new(HOUR));
            let (started_tx, started_rx) = chan::bounded::<()>(0);
            let t2 = t.clone();
            let body = move || {
                started_tx.send(()).unwrap();
                t2.recv()
            };
            let waiter: Box<dyn FnOnce() -> Result<Instant, chan::RecvError> + Send> =
                if in_coroutine {
                    let h = goro::go!(body);
                    Box::new(move || h.join().unwrap())
                } else {
                    let h = std::thread::spawn(body);
                    Box::new(move || h.join().unwrap())
                };
            started_rx.recv().unwrap();
            // Blocked (or about to block) on the hour-long timer.
            assert!(t.reset(Duration::from_millis(2)));
            assert!(waiter().is_ok());
        }
    });
}

/// The same through `select!`: a select blocked on a timer case sees the
/// reset.
#[test]
fn reset_earlier_wakes_a_select() {
    within("reset earlier in select", || {
        let t = Arc::new(Timer::new(HOUR));
        let (_keep, rx) = chan::bounded::<u8>(0);
        let (started_tx, started_rx) = chan::bounded::<()>(0);
        let t2 = t.clone();
        let h = goro::go!(move || {
            started_tx.send(()).unwrap();
            select! {
                recv(rx) -> _ => "rx",
                recv(t2) -> _ => "timer",
            }
        });
        started_rx.recv().unwrap();
        t.reset(Duration::from_millis(2));
        assert_eq!(h.join().unwrap(), "timer");
    });
}

/// Stopping a timer with a blocked receiver: the receiver keeps waiting
/// (Go's channel does not close); a later reset delivers.
#[test]
fn stop_leaves_receivers_waiting() {
    within("stop with a receiver", || {
        let t = Arc::new(Timer::new(Duration::from_millis(5)));
        assert!(t.stop());
        assert_eq!(
            t.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        let t2 = t.clone();
        let h = goro::go!(move || t2.recv());
        t.reset(Duration::from_millis(1));
        assert!(h.join().unwrap().is_ok());
    });
}

/// TestTicker: ticks come in order, each after the previous by a period.
#[test]
fn ticker_ticks_on_its_period() {
    within("ticker", || {
        let period = Duration::from_millis(2);
        let t = Ticker::new(period);
        let mut last = t.recv().unwrap();
        for _ in 0..5 {
            let next = t.recv().unwrap();
            assert!(next >= last + period);
            last = next;
        }
    });
}

/// TestTickerStopWithDirectInitialization / TestTeardown: a stopped
/// ticker delivers nothing, not even a tick that was pending.
#[test]
fn ticker_stop_delivers_nothing() {
    within("ticker stop", || {
        let t = Ticker::new(Duration::from_millis(1));
        chan::after(Duration::from_millis(5)).recv().unwrap();
        assert_eq!(t.len(), 1, "a tick is pending");
        t.stop();
        assert_eq!(t.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(
            t.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        );
    });
}

/// TestTickerResetLtZeroDuration's positive twin and TestTickerReset: a
/// reset ticker runs on its new period, from the reset, with no stale
/// tick; a stopped one is restarted by reset.
#[test]
fn ticker_reset_restarts() {
    within("ticker reset", || {
        let t = Ticker::new(Duration::from_millis(1));
        chan::after(Duration::from_millis(5)).recv().unwrap();
        let at = Instant::now();
        t.reset(Duration::from_millis(3));
        let v = t.recv().unwrap();
        assert!(v >= at + Duration::from_millis(3), "stale tick {v:?}");
        let w = t.recv().unwrap();
        assert!(w >= v + Duration::from_millis(3));
        t.stop();
        t.reset(Duration::from_millis(1));
        assert!(t.recv().is_ok());
    });
}

/// A ticker reset to a short period wakes a receiver blocked on the long
/// one.
#[test]
fn ticker_reset_wakes_a_blocked_receiver() {
    within("ticker reset wakes", || {
        let t = Arc::new(Ticker::new(HOUR));
        let t2 = t.clone();
        let (started_tx, started_rx) = chan::bounded::<()>(0);
        let h = goro::go!(move || {
            started_tx.send(()).unwrap();
            t2.recv()
        });
        started_rx.recv().unwrap();
        t.reset(Duration::from_millis(1));
        assert!(h.join().unwrap().is_ok());
    });
}

/// A slow receiver finds one pending tick, not a backlog (Go's one-slot
/// ticker channel).
#[test]
fn ticker_keeps_one_pending_tick() {
    within("ticker backlog", || {
        let t = Ticker::new(Duration::from_millis(1));
        chan::after(Duration::from_millis(10)).recv().unwrap();
        assert!(t.try_recv().is_ok());
        // The next tick is on the grid after now, not one of the missed.
        let n = AtomicUsize::new(0);
        while t.try_recv().is_ok() {
            n.fetch_add(1, Ordering::Relaxed);
            assert!(n.load(Ordering::Relaxed) < 3, "a backlog of ticks");
        }
    });
}

/// TestTimerGC (Go 1.23): timers and tickers that nobody references are
/// freed, stopped or not; a million of them cost nothing once dropped.
#[test]
fn unreferenced_timers_are_collectable() {
    within("unreferenced timers", || {
        let before = goro::stats();
        for _ in 0..100_000 {
            let t = Timer::new(HOUR);
            let k = Ticker::new(HOUR);
            drop((t, k));
        }
        // Nothing was left on the timing wheels: a timer is its schedule.
        let after = goro::stats();
        assert_eq!(before.coroutines, after.coroutines);
        // A receiver kept after the Timer is dropped still fires.
        let rx = Timer::new(Duration::from_millis(1)).receiver().clone();
        assert!(rx.recv().is_ok());
    });
}

/// Stopping and resetting from many threads and coroutines at once while
/// others receive: every received value is one the schedule produced
/// after the last reset it saw, and nothing hangs.
#[test]
fn concurrent_stop_reset_and_receive() {
    within("concurrent stop/reset", || {
        let t = Arc::new(Timer::new(Duration::from_millis(1)));
        let got = Arc::new(AtomicUsize::new(0));
        let rs: Vec<_> = (0..4)
            .map(|_| {
                let (t, got) = (t.clone(), got.clone());
                goro::go!(move || {
                    while t.recv_timeout(Duration::from_millis(50)).is_ok() {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for i in 0..200 {
            if i % 3 == 0 {
                t.stop();
            }
            t.reset(Duration::from_micros(100));
            goro::yield_now();
        }
        t.reset(Duration::ZERO);
        for r in rs {
            r.join().unwrap();
        }
        assert!(got.load(Ordering::Relaxed) >= 1);
    });
}
