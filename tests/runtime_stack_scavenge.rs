//! After a burst of coroutines that touched much of their stacks has
//! exited, the pooled stacks beyond a small reserve give their pages back
//! to the OS (the stack scavenger), in both stack modes, and the pool does
//! not grow past the burst's peak.

mod support;

use std::hint::black_box;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Touches about `n` bytes of the caller's stack.
#[inline(never)]
fn touch_stack(n: usize) -> u8 {
    let mut buf = [0u8; 24 << 10];
    let n = n.min(buf.len());
    for i in (0..n).step_by(512) {
        buf[i] = i as u8;
    }
    black_box(&mut buf);
    buf[n / 2]
}

const BURST: usize = 3_000;

fn burst_then_settle(shared: bool) {
    // Warm the runtime up: workers, the first slab, the heap.
    goro::go!(|| touch_stack(1)).join().unwrap();
    let before = rss_bytes();
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..BURST {
        let (tx, rx) = goro::chan::bounded::<()>(0);
        let mut b = goro::Builder::new();
        if shared {
            b = b.shared_stack();
        }
        handles.push(
            b.spawn(move || {
                let v = touch_stack(24 << 10);
                let _ = rx.recv();
                v
            })
            .unwrap(),
        );
        txs.push(tx);
    }
    support::eventually("the burst to park", || {
        goro::stats().parked as usize >= BURST
    });
    let peak = rss_bytes();
    let stacks_at_peak = goro::stats().stacks;
    drop(txs);
    for h in handles {
        h.join().unwrap();
    }
    if !shared {
        assert!(
            peak > before + BURST * (16 << 10),
            "the burst did not touch its stacks: {before} -> {peak}"
        );
    }
    support::eventually("RSS to fall back after the burst", || {
        rss_bytes() < before + (8 << 20)
    });
    // A second burst reuses the pool: it does not grow past the peak.
    let again: Vec<_> = (0..BURST).map(|_| goro::go!(|| touch_stack(64))).collect();
    for h in again {
        h.join().unwrap();
    }
    assert!(
        goro::stats().stacks <= stacks_at_peak + 256,
        "the pool grew from {stacks_at_peak} to {} stacks for a burst of the same size",
        goro::stats().stacks
    );
    eprintln!(
        "rss before {before} peak {peak} after {} scavenged {}",
        rss_bytes(),
        goro::stats().stack_bytes_scavenged
    );
}

#[test]
fn private_stacks_give_pages_back_after_a_burst() {
    const NAME: &str = "private_stacks_give_pages_back_after_a_burst";
    if support::in_child(NAME) {
        support::within("a burst and its settling", || burst_then_settle(false));
        return;
    }
    let out = support::child(NAME, &[("GORO_WORKERS", "2")]);
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
