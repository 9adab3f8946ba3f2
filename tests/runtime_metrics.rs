//! The runtime metrics of `goro::stats()` (`Stats::per_worker` and the
//! queue and blocking-pool gauges): each moves when what it counts happens.
//!
//! Tests in one binary share the runtime, so counters are compared as
//! "moved by at least" across a before/after pair, never as exact values;
//! the queue-depth tests run in a child process with one worker, where
//! nothing else can take the queued coroutines.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use goro::chan;
use support::{child, eventually, in_child, wait_parked, within};

/// The sum over workers of one per-worker field.
fn total(f: impl Fn(&goro::WorkerStats) -> u64) -> u64 {
    goro::stats().per_worker.iter().map(f).sum()
}

#[test]
fn per_worker_has_one_entry_per_worker() {
    let s = goro::stats();
    assert_eq!(s.per_worker.len(), s.workers);
}

#[test]
fn polls_parks_and_wakes_move_with_a_park() {
    within("a park and its wake-up", || {
        let (polls, parks, wakes) = (total(|w| w.polls), total(|w| w.parks), total(|w| w.wakes));
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = goro::spawn(move || rx.recv().unwrap());
        wait_parked(h.id());
        // Counted once it switched off its stack: `wait_parked` saw it
        // parked, so its park is counted already.
        assert!(total(|w| w.parks) > parks, "parks did not move");
        tx.send(7).unwrap();
        assert_eq!(h.join().unwrap(), 7);
        // Started (1 poll) and resumed after its wake-up (1 more).
        assert!(total(|w| w.polls) >= polls + 2, "polls did not move by 2");
        assert!(total(|w| w.wakes) > wakes, "wakes did not move");
    });
}

#[test]
fn yields_count_yield_now() {
    within("yields", || {
        let before = total(|w| w.yields);
        goro::spawn(|| {
            for _ in 0..10 {
                goro::yield_now();
            }
        })
        .join()
        .unwrap();
        assert!(total(|w| w.yields) >= before + 10);
    });
}

#[test]
fn timer_fires_count_a_sleep() {
    within("timer fires", || {
        let before = total(|w| w.timer_fires);
        goro::spawn(|| goro::sleep(Duration::from_millis(5)))
            .join()
            .unwrap();
        // Counted by the worker that fired it, right after the firing
        // (which may be after the sleeper already ran on another worker).
        eventually("timer_fires to move", || total(|w| w.timer_fires) > before);
    });
}

#[test]
fn io_events_count_readiness() {
    within("io events", || {
        let before = total(|w| w.io_events);
        let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = goro::spawn(move || {
            // Parks in accept, then in read: each wake is an event.
            let (mut c, _) = listener.accept().unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            b
        });
        wait_parked(server.id());
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"ping").unwrap();
        assert_eq!(&server.join().unwrap(), b"ping");
        eventually("io_events to move", || total(|w| w.io_events) > before);
    });
}

#[test]
fn sleeps_count_a_worker_going_idle() {
    within("worker sleeps", || {
        let before = total(|w| w.sleeps);
        goro::spawn(|| ()).join().unwrap();
        // Nothing left to run: some worker goes to sleep.
        eventually("sleeps to move", || total(|w| w.sleeps) > before);
    });
}

#[test]
fn busy_time_covers_a_busy_coroutine() {
    within("busy time", || {
        let busy = || -> Duration { goro::stats().per_worker.iter().map(|w| w.busy).sum() };
        let before = busy();
        goro::spawn(|| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
        })
        .join()
        .unwrap();
        // The worker was busy for the whole spin (30 ms); the "before"
        // reading may have counted another worker's ending spell twice
        // (`Stats` docs), so leave a margin.
        let moved = busy().saturating_sub(before);
        assert!(
            moved >= Duration::from_millis(20),
            "busy moved by {moved:?}"
        );
    });
}

#[test]
fn steals_and_spawned_move_with_a_spawn_burst() {
    within("spawned", || {
        let before = total(|w| w.spawned);
        goro::spawn(|| {
            let hs: Vec<_> = (0..64).map(|_| goro::spawn(|| ())).collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
        .join()
        .unwrap();
        assert!(total(|w| w.spawned) >= before + 64);
    });
}

#[test]
fn blocking_jobs_and_threads() {
    within("blocking jobs", || {
        let before = goro::stats().blocking_jobs;
        let (tx, rx) = chan::bounded::<()>(0);
        let h = goro::spawn(move || goro::blocking(move || rx.recv().unwrap()));
        // The job is running on a pool thread (it blocks that thread in
        // recv): submitted, and a thread exists for it.
        eventually("the job to be submitted", || {
            goro::stats().blocking_jobs > before
        });
        assert!(goro::stats().blocking_threads >= 1);
        tx.send(()).unwrap();
        h.join().unwrap();
    });
}

/// One worker: a coroutine spawns 10 and, before it switches, the worker's
/// local queue holds them; a thread spawns 5 while the only worker is busy,
/// and the global queue holds them.
#[test]
fn queue_depths_show_queued_coroutines() {
    const TEST: &str = "queue_depths_show_queued_coroutines";
    if !in_child(TEST) {
        let out = child(TEST, &[("GORO_WORKERS", "1")]);
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    within("queue depths", || {
        assert_eq!(goro::stats().workers, 1);
        let local = goro::spawn(|| {
            let hs: Vec<_> = (0..10).map(|_| goro::spawn(|| ())).collect();
            let depth = goro::stats().per_worker[0].local_queue_depth;
            hs.into_iter().for_each(|h| h.join().unwrap());
            depth
        })
        .join()
        .unwrap();
        assert!(local >= 10, "local queue depth {local}");

        let go = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (g, s) = (go.clone(), started.clone());
        // Keeps the only worker in one coroutine (no switch) until told.
        let spinner = goro::spawn(move || {
            s.store(true, Ordering::Release);
            while !g.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        });
        eventually("the spinner to run", || started.load(Ordering::Acquire));
        let hs: Vec<_> = (0..5).map(|_| goro::spawn(|| ())).collect();
        let global = goro::stats().global_queue_depth;
        go.store(true, Ordering::Release);
        spinner.join().unwrap();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(global, 5, "global queue depth");
        eventually("the global queue to drain", || {
            goro::stats().global_queue_depth == 0
        });
    });
}
