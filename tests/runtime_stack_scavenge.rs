//! After a burst of coroutines that touched much of their stacks has
//! exited, the pooled stacks beyond a small reserve give their pages back
//! to the OS (the stack scavenger), in both stack modes, and the pool does
//! not grow past the burst's peak. Under light guard pages (Linux 6.13's
//! `MADV_GUARD_INSTALL`) the clean stacks beyond a reserve are unmapped
//! altogether, and a later burst maps new ones that work as before.

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

/// Whether this kernel has light guard pages (`MADV_GUARD_INSTALL`,
/// Linux 6.13), probed as the runtime does; `GORO_STACK_GUARDS=mapped`
/// turns them off.
fn light_guards() -> bool {
    if std::env::var("GORO_STACK_GUARDS").is_ok_and(|v| v == "mapped") {
        return false;
    }
    const MADV_GUARD_INSTALL: libc::c_int = 102;
    // SAFETY: a fresh private mapping of our own, advised and unmapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let ok = libc::madvise(p, 4096, MADV_GUARD_INSTALL) == 0;
        libc::munmap(p, 8192);
        ok
    }
}

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
    // A second burst reuses the pool: it does not stay grown past the
    // peak. (Under light guards a sweep may still be unmapping the first
    // burst's clean stacks, which it holds off the lists meanwhile, when
    // this burst spawns: the burst then maps new ones, and for a moment
    // the pool counts both, until the unmapping ends.)
    let again: Vec<_> = (0..BURST).map(|_| goro::go!(|| touch_stack(64))).collect();
    for h in again {
        h.join().unwrap();
    }
    support::eventually("the pool to be back within its peak", || {
        goro::stats().stacks <= stacks_at_peak + 256
    });
    if !shared && light_guards() {
        // The stacks beyond the reserves were unmapped after the sweep
        // (`stack/pool.rs`, invariant 9): the pool holds fewer than at
        // the peak, and what is left is about the reserves.
        support::eventually("the clean stacks to be unmapped", || {
            goro::stats().stacks + 1000 <= stacks_at_peak
        });
        // A burst that needs more than what is left maps new stacks,
        // with guard pages, and runs on them.
        let big: Vec<_> = (0..BURST)
            .map(|_| goro::go!(|| touch_stack(16 << 10)))
            .collect();
        for h in big {
            h.join().unwrap();
        }
    }
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
