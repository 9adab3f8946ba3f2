//! Shared-stack mode (`Builder::shared_stack`): a coroutine's frames are
//! copied off its stack while it is parked and back, at the same
//! addresses, when it resumes. These tests check that what is copied is
//! exactly what was there: deep recursion, pointers to locals, many
//! coroutines taking turns on one stack, private and shared side by side,
//! panics, coroutine-locals, and the overflow report.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::chan;

fn shared() -> goro::Builder {
    goro::Builder::new().shared_stack()
}

/// Recurses `depth` frames, each holding a local that depends on `seed`
/// and a pointer to the frame below's local, parks at the bottom on `rx`,
/// then checks every frame on the way up.
#[inline(never)]
fn deep(seed: u64, depth: u32, rx: &chan::Receiver<u64>) -> u64 {
    let local = black_box([seed ^ depth as u64; 8]);
    let p = &local as *const [u64; 8];
    let below = if depth == 0 {
        rx.recv().unwrap()
    } else {
        deep(seed, depth - 1, rx)
    };
    // SAFETY: `p` points to `local`, alive in this frame.
    let again = unsafe { *black_box(p) };
    assert_eq!(again, [seed ^ depth as u64; 8], "frame {depth} changed");
    assert_eq!(local, again);
    below
        .wrapping_mul(31)
        .wrapping_add(local[depth as usize % 8])
}

fn expected(seed: u64, depth: u32, v: u64) -> u64 {
    let mut acc = v;
    for d in 0..=depth {
        acc = acc.wrapping_mul(31).wrapping_add(seed ^ d as u64);
    }
    acc
}

#[test]
fn deep_recursion_survives_park_and_resume() {
    support::within("deep recursion on shared stacks", || {
        const N: u64 = 300;
        const DEPTH: u32 = 60;
        let before = goro::stats().stack_copy_outs;
        let mut txs = Vec::new();
        let mut hs = Vec::new();
        for i in 0..N {
            let (tx, rx) = chan::bounded::<u64>(0);
            txs.push(tx);
            hs.push(shared().spawn(move || deep(i * 7919, DEPTH, &rx)).unwrap());
        }
        support::eventually("all to park", || goro::stats().parked >= N);
        // Wake them in an order unlike the one they parked in.
        for (i, tx) in txs.iter().enumerate().rev() {
            tx.send(i as u64 + 1).unwrap();
        }
        for (i, h) in hs.into_iter().enumerate() {
            let seed = i as u64 * 7919;
            assert_eq!(h.join().unwrap(), expected(seed, DEPTH, i as u64 + 1));
        }
        assert!(
            goro::stats().stack_copy_outs > before,
            "no frames were copied: the test did not exercise shared stacks"
        );
    });
}

/// Coroutines that yield in a loop, holding a pointer to a local across
/// each switch, all on one shared stack (one worker, one stack per worker).
fn interleave() {
    const N: usize = 64;
    const ROUNDS: usize = 200;
    let hs: Vec<_> = (0..N)
        .map(|i| {
            shared()
                .spawn(move || {
                    let mut mine = [i as u32; 33];
                    let p = &mut mine as *mut [u32; 33];
                    for r in 0..ROUNDS {
                        goro::yield_now();
                        // SAFETY: `p` points to `mine`, alive here.
                        let seen = unsafe { &mut *black_box(p) };
                        assert!(seen.iter().all(|&v| v == (i + r) as u32), "{i} {r}");
                        for v in seen.iter_mut() {
                            *v += 1;
                        }
                    }
                    mine[0] as usize
                })
                .unwrap()
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i + ROUNDS);
    }
    let s = goro::stats();
    assert!(
        s.stack_copy_outs as usize >= N * ROUNDS / 2,
        "expected a copy on most switches, saw {}",
        s.stack_copy_outs
    );
}

#[test]
fn many_coroutines_take_turns_on_one_shared_stack() {
    support::run_in_child(
        "many_coroutines_take_turns_on_one_shared_stack",
        &[
            ("GORO_WORKERS", "1"),
            ("GORO_SHARED_STACKS_PER_WORKER", "1"),
        ],
        interleave,
    );
}

#[test]
fn private_and_shared_coroutines_pass_a_token_around_a_ring() {
    support::within("a mixed ring", || {
        const N: usize = 40;
        const LAPS: u64 = 50;
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..N).map(|_| chan::bounded::<u64>(0)).unzip();
        let mut hs = Vec::new();
        for (i, rx) in rxs.into_iter().enumerate() {
            let next = txs[(i + 1) % N].clone();
            let b = if i % 2 == 0 {
                shared()
            } else {
                goro::Builder::new().private_stack()
            };
            hs.push(
                b.spawn(move || {
                    let mut seen = Vec::new();
                    for v in &rx {
                        seen.push(v);
                        if v >= LAPS * N as u64 {
                            break;
                        }
                        let _ = next.send(v + 1);
                    }
                    seen
                })
                .unwrap(),
            );
        }
        txs[0].send(1).unwrap();
        drop(txs);
        let mut all: Vec<u64> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=LAPS * N as u64).collect::<Vec<_>>());
    });
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panic_after_a_park_unwinds_restored_frames() {
    support::within("panics on shared stacks", || {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        let mut txs = Vec::new();
        for i in 0..50 {
            let (tx, rx) = chan::bounded::<()>(0);
            txs.push(tx);
            let d = CountDrop(drops.clone());
            hs.push(
                shared()
                    .spawn(move || {
                        let _d = d;
                        let _inner = black_box([i; 20]);
                        rx.recv().unwrap();
                        if i % 2 == 0 {
                            panic!("shared-stack panic {i}");
                        }
                        i
                    })
                    .unwrap(),
            );
        }
        support::eventually("all to park", || goro::stats().parked >= 50);
        for tx in &txs {
            tx.send(()).unwrap();
        }
        for (i, h) in hs.into_iter().enumerate() {
            match h.join() {
                Ok(v) => assert_eq!(v, i),
                Err(p) => {
                    assert_eq!(i % 2, 0);
                    let msg = p.downcast_ref::<String>().unwrap();
                    assert_eq!(msg, &format!("shared-stack panic {i}"));
                }
            }
        }
        assert_eq!(drops.load(Ordering::SeqCst), 50);
        // The runtime and its shared stacks still work.
        assert_eq!(shared().spawn(|| 5).unwrap().join().unwrap(), 5);
    });
}

goro::coroutine_local! {
    static MINE: std::cell::Cell<u64> = std::cell::Cell::new(0);
}

#[test]
fn coroutine_locals_survive_the_copy() {
    support::within("coroutine-locals on shared stacks", || {
        let hs: Vec<_> = (1..=100u64)
            .map(|i| {
                shared()
                    .spawn(move || {
                        MINE.with(|m| m.set(i));
                        for _ in 0..20 {
                            goro::sleep(std::time::Duration::from_micros(50));
                            assert_eq!(MINE.with(|m| m.get()), i);
                        }
                        MINE.with(|m| m.get())
                    })
                    .unwrap()
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u64 + 1);
        }
    });
}

#[test]
fn shared_and_migratable_are_refused() {
    // SAFETY: the coroutine is never spawned.
    let b = unsafe { goro::Builder::new().migratable() }.shared_stack();
    let e = b.spawn(|| ()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("migratable"), "{e}");
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = black_box([n; 64]);
    if n == 0 {
        pad[3]
    } else {
        recurse(n - 1).wrapping_add(pad[5])
    }
}

#[test]
fn overflow_of_a_shared_stack_aborts_naming_the_coroutine() {
    const NAME: &str = "overflow_of_a_shared_stack_aborts_naming_the_coroutine";
    if support::in_child(NAME) {
        // Another coroutine parked on the same stack first: its frames are
        // copied off, and the overflow is still the guard page's.
        let (tx, rx) = chan::bounded::<()>(0);
        let _other = shared()
            .stack_size(32 << 10)
            .spawn(move || rx.recv())
            .unwrap();
        let h = shared()
            .name("deep")
            .stack_size(32 << 10)
            .spawn(|| recurse(1 << 30))
            .unwrap();
        let _ = h.join();
        drop(tx);
        unreachable!("the overflow must abort the process");
    }
    use std::os::unix::process::ExitStatusExt;
    for guards in ["light", "mapped"] {
        let out = support::child(
            NAME,
            &[
                ("GORO_STACK_GUARDS", guards),
                ("GORO_WORKERS", "1"),
                ("GORO_SHARED_STACKS_PER_WORKER", "1"),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{guards}: {err}");
        assert!(err.contains("coroutine 'deep'"), "{err}");
        assert!(err.contains("overflowed its stack of 32768 bytes"), "{err}");
    }
}

#[test]
fn goro_shared_stacks_makes_it_the_default() {
    const NAME: &str = "goro_shared_stacks_makes_it_the_default";
    if support::in_child(NAME) {
        support::within("spawn defaults to shared stacks", || {
            let (tx, rx) = chan::unbounded::<()>();
            let hs: Vec<_> = (0..20)
                .map(|_| {
                    let rx = rx.clone();
                    goro::go!(move || rx.recv().is_ok())
                })
                .collect();
            support::eventually("all to park", || goro::stats().parked >= 20);
            let s = goro::stats();
            assert!(s.stack_copy_outs >= 19, "{s:?}");
            // private_stack() still opts out, and scope works there.
            let mut x = 0;
            goro::Builder::new()
                .private_stack()
                .spawn(move || {
                    goro::scope(|s| {
                        s.spawn(|| x += 1);
                    });
                    x
                })
                .unwrap()
                .join()
                .unwrap();
            drop(tx);
            for h in hs {
                assert!(!h.join().unwrap());
            }
        });
        return;
    }
    let out = support::child(
        NAME,
        &[
            ("GORO_SHARED_STACKS", "1"),
            ("GORO_WORKERS", "1"),
            ("GORO_SHARED_STACKS_PER_WORKER", "1"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_shared_stacks_makes_it_the_default_and_bad_env_is_refused() {
    const NAME: &str = "config_shared_stacks_makes_it_the_default_and_bad_env_is_refused";
    if support::in_child(NAME) {
        if std::env::var("GORO_SHARED_STACKS").is_ok() {
            let r = std::panic::catch_unwind(|| goro::go!(|| 1).join());
            let e = r.unwrap_err();
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("GORO_SHARED_STACKS=\"maybe\""), "{msg}");
            return;
        }
        goro::Config::new()
            .shared_stacks(true)
            .workers(1)
            .apply()
            .unwrap();
        let (tx, rx) = chan::bounded::<()>(0);
        let a = goro::go!(move || rx.recv());
        support::eventually("a to park", || goro::stats().parked >= 1);
        let b = goro::go!(|| 2);
        assert_eq!(b.join().unwrap(), 2);
        drop(tx);
        let _ = a.join();
        // With 4 stacks per worker a and b need not meet, so look at the
        // binding instead: a panicking scope says it is on a shared stack.
        let r = goro::go!(|| goro::scope(|_| ())).join();
        assert!(r.is_err(), "scope ran on a shared stack");
        return;
    }
    let out = support::child(NAME, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = support::child(NAME, &[("GORO_SHARED_STACKS", "maybe")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
