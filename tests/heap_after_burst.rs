//! After a burst of coroutines has exited, the heap they used (task
//! headers, saved frames, wait queues, the registry's slots, the ready
//! queues) goes back to the OS, in both stack modes, even when another
//! thread drops the last references to the finished tasks (their
//! `JoinHandle`s here) after the workers went idle: the heap trimmer
//! (`runtime/src/stack/trim.rs`) keeps trimming for a while after a burst.

mod support;

use std::time::Duration;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const BURST: usize = 40_000;
/// What RSS may stay above its figure before the burst. Without the
/// trimmer the headers alone (about 300 bytes each) would hold 12 MB.
const SLACK: usize = 6 << 20;

fn burst_then_settle(shared: bool) {
    // Warm the runtime up: workers, shared stacks, the heap's arenas.
    for _ in 0..2 {
        let mut b = goro::Builder::new();
        if shared {
            b = b.shared_stack();
        }
        b.spawn(|| ()).unwrap().join().unwrap();
    }
    let before = rss_bytes();
    let mut txs = Vec::with_capacity(BURST);
    let mut handles = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        let (tx, rx) = goro::chan::bounded::<()>(0);
        let mut b = goro::Builder::new();
        if shared {
            b = b.shared_stack();
        }
        handles.push(b.spawn(move || rx.recv().is_err()).unwrap());
        txs.push(tx);
    }
    support::eventually("the burst to park", || {
        goro::stats().parked as usize >= BURST
    });
    let peak = rss_bytes();
    assert!(
        peak > before + BURST * 500,
        "the burst used less memory than expected: {before} -> {peak}"
    );
    // Closing the channels lets every coroutine finish; the handles keep
    // their tasks alive until the workers have gone idle.
    drop(txs);
    support::eventually("the burst to finish", || goro::stats().coroutines == 0);
    std::thread::sleep(Duration::from_millis(50));
    for h in handles {
        assert!(h.join().unwrap());
    }
    support::eventually("RSS to fall back after the burst", || {
        rss_bytes() < before + SLACK
    });
    eprintln!("rss before {before} peak {peak} after {}", rss_bytes());
}

fn run_in_child(name: &str, shared: bool) {
    if support::in_child(name) {
        support::within("a burst and its settling", move || {
            burst_then_settle(shared)
        });
        return;
    }
    let out = support::child(name, &[("GORO_WORKERS", "2")]);
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shared_stack_burst_gives_heap_back() {
    run_in_child("shared_stack_burst_gives_heap_back", true);
}

#[test]
fn private_stack_burst_gives_heap_back() {
    run_in_child("private_stack_burst_gives_heap_back", false);
}
