//! `goro::stats()` shows what shared stacks cost: bytes held in saved
//! frames while coroutines are parked off their stack, and the copy
//! traffic; the saved bytes go back to zero when they finish.

mod support;

use goro::chan;

#[test]
fn stats_count_saved_frames_and_copies() {
    support::run_in_child(
        "stats_count_saved_frames_and_copies",
        &[
            ("GORO_WORKERS", "1"),
            ("GORO_SHARED_STACKS_PER_WORKER", "1"),
        ],
        || {
            const N: u64 = 200;
            let s0 = goro::stats();
            assert_eq!(s0.saved_stack_bytes, 0);
            let mut txs = Vec::new();
            let hs: Vec<_> = (0..N)
                .map(|_| {
                    let (tx, rx) = chan::bounded::<()>(0);
                    txs.push(tx);
                    goro::Builder::new()
                        .shared_stack()
                        .spawn(move || rx.recv().is_ok())
                        .unwrap()
                })
                .collect();
            support::eventually("all to park", || goro::stats().parked >= N);
            let s1 = goro::stats();
            // One stack: all but its owner are saved on the heap.
            assert_eq!(s1.stack_copy_outs, N - 1, "{s1:?}");
            assert!(s1.stack_copy_out_bytes >= (N - 1) * 64, "{s1:?}");
            // Frames are held as plain copies until packed (zeros and
            // repeats left out), so the buffers never hold much more than
            // was copied, and less once packed.
            assert!(s1.saved_stack_bytes > 0, "{s1:?}");
            assert!(
                s1.saved_stack_bytes <= s1.stack_copy_out_bytes * 33 / 32 + (N - 1) * 16,
                "{s1:?}"
            );
            assert!(s1.saved_stack_bytes < (N - 1) * 16 * 1024, "{s1:?}");
            assert_eq!(s1.stack_copy_ins, 0, "{s1:?}");
            for tx in &txs {
                tx.send(()).unwrap();
            }
            for h in hs {
                assert!(h.join().unwrap());
            }
            // A joiner may run before the worker has put the finished
            // coroutine's buffer away.
            support::eventually("saved frames to be freed", || {
                goro::stats().saved_stack_bytes == 0
            });
            let s2 = goro::stats();
            assert!(s2.stack_copy_ins >= N - 1, "{s2:?}");
            assert!(s2.stack_copy_in_bytes >= s1.stack_copy_out_bytes, "{s2:?}");
        },
    );
}

/// Writes `N` words, all different and nonzero (so that packing cannot
/// shorten them), into a frame of its own, leaving them on the stack below
/// the caller when it returns.
#[inline(never)]
fn scribble<const N: usize>() {
    let mut buf = [0u64; N];
    for (i, w) in buf.iter_mut().enumerate() {
        *w = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    std::hint::black_box(&buf);
}

/// Parks with a 2 KiB frame slot that it never writes: what the slot
/// holds is whatever the stack held before.
#[inline(never)]
fn park_with_unwritten_slot(rx: &chan::Receiver<()>) -> bool {
    let mut slot = std::mem::MaybeUninit::<[u8; 2048]>::uninit();
    std::hint::black_box(&mut slot);
    rx.recv().is_ok()
}

/// A fresh coroutine on a shared stack finds the stack's top cleared: the
/// stale bytes an earlier coroutine left there are not saved with the
/// fresh one's frames when it parks (without the clearing, the 2 KiB slot
/// below would be copied out as 2 KiB of literals).
#[test]
fn a_fresh_coroutine_saves_no_stale_bytes() {
    support::run_in_child(
        "a_fresh_coroutine_saves_no_stale_bytes",
        &[
            ("GORO_WORKERS", "1"),
            ("GORO_SHARED_STACKS_PER_WORKER", "1"),
        ],
        || {
            let spawn = |f: Box<dyn FnOnce() -> bool + Send>| {
                goro::Builder::new().shared_stack().spawn(f).unwrap()
            };
            let (tx_a, rx_a) = chan::bounded::<()>(0);
            let a = spawn(Box::new(move || {
                scribble::<768>();
                rx_a.recv().is_ok()
            }));
            support::eventually("the scribbler to park", || goro::stats().parked >= 1);
            let (tx_c, rx_c) = chan::bounded::<()>(0);
            let c = spawn(Box::new(move || park_with_unwritten_slot(&rx_c)));
            support::eventually("the second to park", || goro::stats().parked >= 2);
            // Starting it evicted the scribbler: what is saved is the
            // scribbler's frames, packed once the worker goes idle.
            support::eventually("the scribbler's frames to be packed", || {
                goro::stats().stack_packs >= 1
            });
            let first = goro::stats().saved_stack_bytes;
            // A third evicts the second, whose frames are then measured.
            let (tx_d, rx_d) = chan::bounded::<()>(0);
            let d = spawn(Box::new(move || rx_d.recv().is_ok()));
            support::eventually("the third to park", || goro::stats().parked >= 3);
            support::eventually("the second's frames to be packed", || {
                goro::stats().stack_packs >= 2
            });
            let s = goro::stats();
            assert_eq!(s.stack_copy_outs, 2, "{s:?}");
            // The second's frames are the scribbler's plus the unwritten
            // slot: with the slot left out as zeros, no more than the
            // scribbler's and a little (their code differs; buffers are
            // rounded up). Stale, the slot alone would add 2 KiB.
            let second = s.saved_stack_bytes - first;
            assert!(
                second < first + 512,
                "stale stack bytes were saved with a fresh coroutine's frames: \
                 {second} B against the first's {first} B; {s:?}"
            );
            for tx in [tx_a, tx_c, tx_d] {
                tx.send(()).unwrap();
            }
            for h in [a, c, d] {
                assert!(h.join().unwrap());
            }
        },
    );
}

/// A pair that keeps evicting each other from one shared stack copies its
/// frames plainly and packs nothing while it runs; once both are parked
/// and the worker goes idle, their frames are packed (and no more than
/// the two sets of frames there are).
#[test]
fn a_busy_pair_copies_plainly_and_packs_at_rest() {
    support::run_in_child(
        "a_busy_pair_copies_plainly_and_packs_at_rest",
        &[
            ("GORO_WORKERS", "1"),
            ("GORO_SHARED_STACKS_PER_WORKER", "1"),
        ],
        || {
            const ROUNDS: u64 = 2_000;
            let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
            let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
            let (stop_tx, stop_rx) = chan::bounded::<()>(0);
            let shared = goro::Builder::new().shared_stack();
            let a = shared
                .clone()
                .spawn(move || {
                    for i in 0..ROUNDS {
                        ping_tx.send(i).unwrap();
                        assert_eq!(pong_rx.recv().unwrap(), i);
                    }
                    stop_rx.recv().is_ok()
                })
                .unwrap();
            let b = shared
                .spawn(move || {
                    for _ in 0..ROUNDS {
                        let i = ping_rx.recv().unwrap();
                        pong_tx.send(i).unwrap();
                    }
                    true
                })
                .unwrap();
            assert!(b.join().unwrap());
            let s = goro::stats();
            assert!(s.stack_copy_outs >= ROUNDS, "{s:?}");
            // Packing happens only at rest (the worker idled while main
            // joined, at most a few times) or for a coroutine that stayed
            // evicted through 8 others' evictions: never per switch here.
            assert!(
                s.stack_packs < s.stack_copy_outs / 10,
                "a busy pair packed its frames on most switches: {s:?}"
            );
            support::eventually("the parked one's frames to be packed", || {
                let s = goro::stats();
                s.parked >= 1 && s.stack_packs >= 1 && s.saved_stack_bytes > 0
            });
            stop_tx.send(()).unwrap();
            assert!(a.join().unwrap());
        },
    );
}
