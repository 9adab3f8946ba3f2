//! idle: n coroutines each blocked receiving on its own unbuffered channel;
//! RSS growth per coroutine once all are parked (checked with `goro::stats()`).
//! API: `goro::go!`, `chan::{bounded(0), unbounded}`, `goro::sleep`,
//! `goro::stats()` (its count of parked coroutines: see `parked_now`).

use crate::common::{self, Args, Report};
use goro::chan;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest wait for the runtime to report every idle coroutine parked.
const PARK_WAIT: Duration = Duration::from_secs(10);

/// Coroutines the runtime counts as parked right now.
fn parked_now() -> usize {
    // `Stats::parked`: coroutines parked at the moment of the snapshot.
    goro::stats().parked as usize
}

pub fn run(args: &Args) {
    let n = args.n(None);
    let before = common::rss_bytes();
    let (ready_tx, ready_rx) = chan::unbounded::<()>();
    let woke = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = chan::bounded::<u64>(0);
        senders.push(tx);
        let ready = ready_tx.clone();
        let woke = Arc::clone(&woke);
        handles.push(goro::go!(move || {
            let _ = ready.send(());
            if rx.recv().is_ok() {
                woke.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..n {
        ready_rx.recv().expect("idle coroutine died");
    }
    // Every coroutine has announced itself; wait until the runtime counts
    // them parked, then pause as long as the other peers do.
    let until = Instant::now() + PARK_WAIT;
    let mut parked = parked_now();
    while parked < n && Instant::now() < until {
        goro::sleep(Duration::from_millis(5));
        parked = parked_now();
    }
    goro::sleep(Duration::from_millis(if args.quick { 10 } else { 200 }));
    let after = common::rss_bytes();
    // Shared stacks (GORO_SHARED_STACKS=1): heap bytes of saved frames.
    let saved = goro::stats().saved_stack_bytes;
    for tx in &senders {
        tx.send(1).expect("idle coroutine gone");
    }
    for h in handles {
        h.join().expect("idle coroutine panicked");
    }
    let per = after.saturating_sub(before) as f64 / n as f64;
    Report::new("idle", "bytes_per_task", per)
        .kv("n", n)
        .kv("rss_before_kb", before / 1024)
        .kv("rss_after_kb", after / 1024)
        .kv("parked", parked)
        .kv("saved_stack_bytes_per_task", saved / n as u64)
        .kv("workers", goro::stats().workers)
        .kv("lost", n as u64 - woke.load(Ordering::Relaxed))
        .print();
}
