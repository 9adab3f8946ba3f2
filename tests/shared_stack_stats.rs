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
            // Frames are packed (zeros and repeats left out), so the
            // buffers hold less than was copied, but never much more.
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
