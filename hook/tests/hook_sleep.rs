//! Sleeping calls in coroutines park the coroutine: std::thread::sleep,
//! nanosleep, usleep, sleep and clock_nanosleep (relative and absolute)
//! from thousands of coroutines on two workers take about one sleep, not
//! one per coroutine; invalid requests fail at once as the originals do;
//! outside coroutines they sleep the thread.

mod support;

use std::time::{Duration, Instant};

use support::{two_workers, within};

/// 2,000 coroutines sleeping 100 ms each on 2 workers. Serially that is
/// 100 s; parked it is about one sleep. The bound is a watchdog-style
/// generous one (a tenth of the serial time), not a timing assertion.
#[test]
fn thousands_of_std_sleeps_overlap() {
    two_workers();
    within("2,000 std::thread::sleep", || {
        let t = Instant::now();
        let hs: Vec<_> = (0..2000)
            .map(|_| goro_runtime::go!(|| std::thread::sleep(Duration::from_millis(100))))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(100));
        assert!(
            took < Duration::from_secs(10),
            "took {took:?}: the sleeps did not overlap"
        );
    });
}

/// Every libc sleep parks; each returns 0, sleeps at least what it was
/// asked and keeps the caller's errno.
#[test]
fn every_libc_sleep_parks() {
    two_workers();
    within("libc sleeps", || {
        let kinds = 5;
        let t = Instant::now();
        let hs: Vec<_> = (0..kinds * 40)
            .map(|i| {
                goro_runtime::go!(move || {
                    // SAFETY: sets this thread's errno.
                    unsafe { *libc::__errno_location() = 1234 };
                    let start = Instant::now();
                    let ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 50_000_000,
                    };
                    // SAFETY: valid arguments to each sleep function.
                    let r = unsafe {
                        match i % kinds {
                            0 => libc::nanosleep(&ts, std::ptr::null_mut()),
                            1 => libc::usleep(50_000),
                            2 => libc::clock_nanosleep(
                                libc::CLOCK_MONOTONIC,
                                0,
                                &ts,
                                std::ptr::null_mut(),
                            ),
                            3 => {
                                let mut now = libc::timespec {
                                    tv_sec: 0,
                                    tv_nsec: 0,
                                };
                                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
                                now.tv_nsec += 50_000_000;
                                if now.tv_nsec >= 1_000_000_000 {
                                    now.tv_nsec -= 1_000_000_000;
                                    now.tv_sec += 1;
                                }
                                libc::clock_nanosleep(
                                    libc::CLOCK_MONOTONIC,
                                    libc::TIMER_ABSTIME,
                                    &now,
                                    std::ptr::null_mut(),
                                )
                            }
                            _ => libc::sleep(0) as i32,
                        }
                    };
                    // SAFETY: reads this thread's errno.
                    let e = unsafe { *libc::__errno_location() };
                    let slept = start.elapsed();
                    (i % kinds, r, e, slept)
                })
            })
            .collect();
        for h in hs {
            let (kind, r, e, slept) = h.join().unwrap();
            assert_eq!(r, 0, "kind {kind}");
            assert_eq!(e, 1234, "kind {kind}: errno changed");
            if kind != 4 {
                assert!(
                    slept >= Duration::from_millis(49),
                    "kind {kind} slept {slept:?}"
                );
            }
        }
        // 160 sleeps of 50 ms, 80 per worker if they blocked: 4 s.
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    });
}

#[test]
fn invalid_requests_fail_at_once() {
    two_workers();
    within("invalid sleeps", || {
        let h = goro_runtime::go!(|| {
            let bad = libc::timespec {
                tv_sec: 0,
                tv_nsec: 2_000_000_000,
            };
            // SAFETY: an invalid but readable timespec.
            let r = unsafe { libc::nanosleep(&bad, std::ptr::null_mut()) };
            // SAFETY: reads errno.
            let e = unsafe { *libc::__errno_location() };
            // SAFETY: as above; clock_nanosleep returns the error.
            let c = unsafe {
                libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &bad, std::ptr::null_mut())
            };
            (r, e, c)
        });
        assert_eq!(h.join().unwrap(), (-1, libc::EINVAL, libc::EINVAL));
    });
}

/// On a plain thread the sleep is the original's.
#[test]
fn a_thread_still_sleeps() {
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(30));
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert!(!goro_runtime::is_coroutine());
}
