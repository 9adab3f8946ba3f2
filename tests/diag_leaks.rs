//! `goro::leaks()` while the rest of the program runs: wait-for cycles of
//! locks and joins are reported with their lines, and waits that some
//! running party can still end are not.
//!
//! Every test keeps a coroutine busy (a ticker that parks on a timer and
//! runs again) so that the runtime is never quiescent: what is found is
//! found by the cycle search, not by the global check. Leaked coroutines
//! stay parked until the binary exits; each test looks only at the ids it
//! made.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goro::sync::{Mutex, RwLock};
use goro::{Leak, WaitKind, chan};
use support::{SetOnDrop, eventually, wait_parked, within};

/// A coroutine that keeps running (parks on a short timer in a loop) until
/// the guard is dropped.
fn busy_ticker() -> SetOnDrop {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    goro::go!(move || {
        while !s.load(Ordering::Acquire) {
            goro::sleep(Duration::from_millis(1));
        }
    });
    SetOnDrop(stop)
}

fn leaks_among(ids: &[u64]) -> Vec<Leak> {
    goro::leaks()
        .into_iter()
        .filter(|l| ids.contains(&l.id))
        .collect()
}

/// Waits until `leaks()` reports exactly `ids`, and returns the reports.
#[track_caller]
fn expect_leaks(ids: &[u64]) -> Vec<Leak> {
    let want: BTreeSet<u64> = ids.iter().copied().collect();
    let mut last = Vec::new();
    eventually(&format!("leaks() to report {want:?}"), || {
        last = leaks_among(ids);
        last.iter().map(|l| l.id).collect::<BTreeSet<_>>() == want
    });
    last
}

/// Polls `leaks()` for a while and fails if any of `ids` is reported.
#[track_caller]
fn expect_no_leaks(ids: &[u64], for_how_long: Duration) {
    let end = Instant::now() + for_how_long;
    while Instant::now() < end {
        let found = leaks_among(ids);
        assert!(found.is_empty(), "false leak report: {found:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn line_of(leak: &Leak) -> u32 {
    leak.wait.expect("a leak has a wait").location.line()
}

#[test]
fn two_locks_taken_in_opposite_orders() {
    within("lock-order cycle", || {
        let _busy = busy_ticker();
        let a = Arc::new(Mutex::new(0));
        let b = Arc::new(Mutex::new(0));
        let (held_tx, held_rx) = chan::bounded::<()>(2);
        let (go_tx, go_rx) = chan::bounded::<()>(2);
        let lines = Arc::new(AtomicU64::new(0));
        let mut ids = Vec::new();
        for (first, second) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
            let (held_tx, go_rx, lines) = (held_tx.clone(), go_rx.clone(), lines.clone());
            ids.push(
                goro::go!(move || {
                    let _g = first.lock();
                    held_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    lines.store(line!() as u64 + 1, Ordering::Relaxed);
                    let _h = second.lock();
                })
                .id(),
            );
        }
        held_rx.recv().unwrap();
        held_rx.recv().unwrap();
        go_tx.send(()).unwrap();
        go_tx.send(()).unwrap();
        let found = expect_leaks(&ids);
        for leak in &found {
            let wait = leak.wait.unwrap();
            assert_eq!(wait.kind, WaitKind::MutexLock, "{leak}");
            assert!(wait.location.file().ends_with("diag_leaks.rs"), "{leak}");
            assert_eq!(
                line_of(leak) as u64,
                lines.load(Ordering::Relaxed),
                "{leak}"
            );
        }
    });
}

#[test]
fn a_lock_taken_twice_by_one_coroutine() {
    within("self-deadlock", || {
        let _busy = busy_ticker();
        let m = Arc::new(Mutex::new(()));
        let m2 = m.clone();
        let h = goro::go!(move || {
            let _g = m2.lock();
            let _again = m2.lock();
        });
        let found = expect_leaks(&[h.id()]);
        assert_eq!(found[0].wait.unwrap().kind, WaitKind::MutexLock);
        // A second coroutine queued on the same lock is stuck behind it.
        let m3 = m.clone();
        let behind = goro::go!(move || drop(m3.lock()));
        expect_leaks(&[h.id(), behind.id()]);
    });
}

#[test]
fn a_join_on_a_coroutine_that_waits_for_the_joiner() {
    within("join cycle", || {
        let _busy = busy_ticker();
        let m = Arc::new(Mutex::new(()));
        let (tx, rx) = chan::bounded::<goro::JoinHandle<()>>(1);
        let (locked_tx, locked_rx) = chan::bounded::<()>(1);
        let m2 = m.clone();
        let parent = goro::go!(move || {
            let _g = m2.lock();
            locked_tx.send(()).unwrap();
            let child = rx.recv().unwrap();
            child.join().unwrap();
        });
        locked_rx.recv().unwrap();
        let m3 = m.clone();
        let child = goro::go!(move || drop(m3.lock()));
        let child_id = child.id();
        tx.send(child).unwrap();
        let found = expect_leaks(&[parent.id(), child_id]);
        let kinds: BTreeSet<String> = found
            .iter()
            .map(|l| l.wait.unwrap().kind.to_string())
            .collect();
        assert_eq!(
            kinds,
            ["join", "mutex lock"]
                .map(String::from)
                .into_iter()
                .collect()
        );
    });
}

#[test]
fn an_rwlock_writer_and_a_mutex_holder_wait_for_each_other() {
    within("rwlock cycle", || {
        let _busy = busy_ticker();
        let l = Arc::new(RwLock::new(0));
        let m = Arc::new(Mutex::new(0));
        let (ready_tx, ready_rx) = chan::bounded::<()>(2);
        let (go_tx, go_rx) = chan::bounded::<()>(2);
        let (l1, m1, r1, g1) = (l.clone(), m.clone(), ready_tx.clone(), go_rx.clone());
        let writer = goro::go!(move || {
            let _w = l1.write();
            r1.send(()).unwrap();
            g1.recv().unwrap();
            drop(m1.lock());
        });
        let (l2, m2) = (l.clone(), m.clone());
        let reader = goro::go!(move || {
            let _g = m2.lock();
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(l2.read());
        });
        ready_rx.recv().unwrap();
        ready_rx.recv().unwrap();
        go_tx.send(()).unwrap();
        go_tx.send(()).unwrap();
        let found = expect_leaks(&[writer.id(), reader.id()]);
        let reader_leak = found.iter().find(|l| l.id == reader.id()).unwrap();
        assert_eq!(reader_leak.wait.unwrap().kind, WaitKind::RwLockRead);
    });
}

#[test]
fn a_lock_whose_holder_waits_on_something_else_is_not_a_leak() {
    within("no false positive: holder waits elsewhere", || {
        let _busy = busy_ticker();
        let m = Arc::new(Mutex::new(()));
        let (tx, rx) = chan::bounded::<()>(0);
        let (locked_tx, locked_rx) = chan::bounded::<()>(1);
        let m2 = m.clone();
        // The holder waits on a channel that the test will send on.
        let holder = goro::go!(move || {
            let _g = m2.lock();
            locked_tx.send(()).unwrap();
            rx.recv().unwrap();
        });
        locked_rx.recv().unwrap();
        let m3 = m.clone();
        let waiter = goro::go!(move || drop(m3.lock()));
        // And one whose holder sleeps: a timer will end it.
        let s = Arc::new(Mutex::new(()));
        let s2 = s.clone();
        let (slept_tx, slept_rx) = chan::bounded::<()>(1);
        let sleeper = goro::go!(move || {
            let _g = s2.lock();
            slept_tx.send(()).unwrap();
            goro::sleep(Duration::from_millis(300));
        });
        slept_rx.recv().unwrap();
        let s3 = s.clone();
        let behind_sleeper = goro::go!(move || drop(s3.lock()));
        wait_parked(waiter.id());
        wait_parked(behind_sleeper.id());
        let ids = [holder.id(), waiter.id(), sleeper.id(), behind_sleeper.id()];
        expect_no_leaks(&ids, Duration::from_millis(200));
        tx.send(()).unwrap();
        for h in [holder, waiter, sleeper, behind_sleeper] {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_lock_held_by_a_thread_is_not_a_leak() {
    within("no false positive: thread holder", || {
        let _busy = busy_ticker();
        let m = Arc::new(Mutex::new(()));
        let g = m.lock();
        let m2 = m.clone();
        let waiter = goro::go!(move || drop(m2.lock()));
        wait_parked(waiter.id());
        expect_no_leaks(&[waiter.id()], Duration::from_millis(100));
        drop(g);
        waiter.join().unwrap();
    });
}

/// Many coroutines hand a few locks to each other in both orders of a
/// consistent hierarchy (no cycle is possible) while the report runs in a
/// loop: hand-overs in flight must never be taken for a cycle.
#[test]
fn busy_hand_overs_are_never_reported() {
    within("no false positive under contention", || {
        let locks: Arc<Vec<Mutex<u64>>> = Arc::new((0..3).map(|_| Mutex::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let _stop = SetOnDrop(stop.clone());
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (locks, stop) = (locks.clone(), stop.clone());
                goro::go!(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Always in index order: the hierarchy has no cycle.
                        let first = (i + n as usize) % 2;
                        let _a = locks[first].lock();
                        let mut b = locks[2].lock();
                        *b += 1;
                        n += 1;
                        if n.is_multiple_of(8) {
                            goro::yield_now();
                        }
                    }
                })
            })
            .collect();
        let ids: Vec<u64> = handles.iter().map(|h| h.id()).collect();
        let end = Instant::now() + Duration::from_millis(500);
        let mut reports = 0;
        while Instant::now() < end {
            let found = leaks_among(&ids);
            assert!(found.is_empty(), "false leak report: {found:?}");
            reports += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        assert!(reports > 0);
        assert!(*locks[2].lock() > 0);
    });
}
