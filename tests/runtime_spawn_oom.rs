//! Memory exhaustion at spawn, in child processes under a lowered
//! `RLIMIT_AS`:
//!
//! - when no new stack slab can be mapped, `Builder::spawn` returns the
//!   OS's `OutOfMemory` error (no panic, no abort), and the coroutines the
//!   runtime already has keep running, finish and are joined with the
//!   right results; once they give their stacks back, spawning works again;
//! - when the coroutine's header cannot be allocated on the heap, the
//!   process aborts with Rust's allocation-failure message, as
//!   `std::thread::spawn` does: no panic inside a worker, no coroutine
//!   silently lost.
//!
//! Each case re-executes this test binary with `GORO_CHILD` naming it; the
//! child lowers its address-space limit itself, after the runtime started.

mod support;

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;

use goro::JoinHandle;

/// The process's current address-space size, from `/proc/self/status`.
fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    kb << 10
}

/// Caps the address space `headroom` bytes above what is mapped now (the
/// soft limit only, so that [`uncap_address_space`] can undo it); returns
/// the limit to restore.
fn cap_address_space(headroom: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on our own process into a valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) }, 0);
    let lim = libc::rlimit {
        rlim_cur: vm_size() + headroom,
        rlim_max: old.rlim_max,
    };
    // SAFETY: setrlimit on our own process with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    old
}

fn uncap_address_space(old: libc::rlimit) {
    // SAFETY: as in `cap_address_space`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &old) }, 0);
}

/// Spawns coroutines of `STACK` bytes that wait on `rx` and return their
/// index, until a spawn fails or `limit` succeeded; asserts that no spawn
/// panics.
fn fill(
    rx: &goro::chan::Receiver<()>,
    limit: usize,
) -> (Vec<JoinHandle<usize>>, Option<std::io::Error>) {
    let mut held = Vec::new();
    while held.len() < limit {
        let rx = rx.clone();
        let i = held.len();
        let spawned = std::panic::catch_unwind(AssertUnwindSafe(|| {
            goro::Builder::new().stack_size(STACK).spawn(move || {
                let _ = rx.recv();
                i
            })
        }))
        .expect("Builder::spawn must return an error, not panic");
        match spawned {
            Ok(h) => held.push(h),
            Err(e) => return (held, Some(e)),
        }
    }
    (held, None)
}

/// Joins coroutines from [`fill`]: each yields its own index, once.
fn join_all(held: Vec<JoinHandle<usize>>) {
    let n = held.len();
    let mut seen = vec![false; n];
    for h in held {
        let i = h.join().unwrap();
        assert!(!std::mem::replace(&mut seen[i], true), "{i} joined twice");
    }
    assert!(seen.iter().all(|&s| s), "a coroutine was lost");
}

/// Four ping-pong pairs on `STACK`-byte stacks, parked until `start` closes; each ping returns
/// its seed plus the rounds, each pong the rounds it answered.
fn ping_pong_pairs(start: &goro::chan::Receiver<()>) -> Vec<(JoinHandle<u64>, JoinHandle<u64>)> {
    (0..4u64)
        .map(|seed| {
            let (ping_tx, ping_rx) = goro::chan::bounded::<u64>(0);
            let (pong_tx, pong_rx) = goro::chan::bounded::<u64>(0);
            let start = start.clone();
            let builder = || goro::Builder::new().stack_size(STACK);
            let ping = builder().spawn(move || {
                let _ = start.recv();
                let mut x = seed;
                for _ in 0..1000 {
                    ping_tx.send(x).unwrap();
                    x = pong_rx.recv().unwrap();
                }
                x
            });
            let pong = builder().spawn(move || {
                let mut answered = 0;
                for v in &ping_rx {
                    pong_tx.send(v + 1).unwrap();
                    answered += 1;
                }
                answered
            });
            (ping.unwrap(), pong.unwrap())
        })
        .collect()
}

/// Stacks of this size come from slabs of 8 MiB (mapped guards) to 65 MiB
/// (light guards): a few slabs fit under the cap, then mapping fails.
const STACK: usize = 256 << 10;

#[test]
fn a_spawn_that_cannot_map_a_stack_fails_and_the_runtime_carries_on() {
    let name = "a_spawn_that_cannot_map_a_stack_fails_and_the_runtime_carries_on";
    if support::in_child(name) {
        support::within("the stack exhaustion child", || {
            let (start_tx, start_rx) = goro::chan::bounded::<()>(0);
            let pairs = ping_pong_pairs(&start_rx);
            let ids: Vec<u64> = pairs.iter().flat_map(|(a, b)| [a.id(), b.id()]).collect();
            support::eventually("the pairs to park", || {
                ids.iter().all(|&id| support::is_parked(id))
            });

            let limit = cap_address_space(160 << 20);
            let (hold_tx, hold_rx) = goro::chan::bounded::<()>(0);
            let (held, err) = fill(&hold_rx, 100_000);
            let oom = err.expect("the address space cap did not bite");
            assert_eq!(oom.kind(), ErrorKind::OutOfMemory, "{oom}");
            assert_eq!(oom.raw_os_error(), Some(libc::ENOMEM), "{oom}");
            let n = held.len();

            // The coroutines that were there before run to the end...
            drop(start_tx);
            for (seed, (ping, pong)) in pairs.into_iter().enumerate() {
                assert_eq!(ping.join().unwrap(), seed as u64 + 1000);
                assert_eq!(pong.join().unwrap(), 1000);
            }
            // ...and so do the ones spawned up to the failure, each once.
            drop(hold_tx);
            join_all(held);

            // Their stacks come back (a moment after each join): spawning
            // works again without mapping anything.
            let mut again = goro::Builder::new().stack_size(STACK).spawn(|| 7);
            support::eventually("a freed stack", || {
                if let Err(e) = &again {
                    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
                    again = goro::Builder::new().stack_size(STACK).spawn(|| 7);
                }
                again.is_ok()
            });
            assert_eq!(again.unwrap().join().unwrap(), 7);

            // With the memory back, new slabs map again. Under mapped guard
            // pages the failed slab did not spend the guard budget: all of
            // it is still there for safe spawns (one stack size, so one
            // pool holds every stack), and the limit after it holds.
            uncap_address_space(limit);
            let mapped = std::env::var("GORO_STACK_GUARDS").is_ok_and(|v| v == "mapped");
            let (hold_tx, hold_rx) = goro::chan::bounded::<()>(0);
            let want = if mapped {
                support::guard_budget()
            } else {
                2 * n
            };
            let (held, err) = fill(&hold_rx, want + 1);
            if mapped {
                let err = err.expect("the guard budget held no more after an OOM");
                assert_eq!(held.len(), want, "{err}");
                assert!(
                    err.to_string().contains("no stack with a guard page"),
                    "{err}"
                );
            } else {
                assert!(err.is_none(), "{err:?}");
            }
            drop(hold_tx);
            join_all(held);
            println!("CHILD-OK held {n} before: {oom}");
        });
        return;
    }
    for guards in ["light", "mapped"] {
        let out = support::child(
            name,
            &[("GORO_WORKERS", "2"), ("GORO_STACK_GUARDS", guards)],
        );
        let so = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && so.contains("CHILD-OK"),
            "GORO_STACK_GUARDS={guards}: {:?}\nstdout:\n{so}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Allocates and leaks heap memory until no request of up to 4 KiB can be
/// served (every size class, so that no cached free chunk is left).
fn exhaust_heap() {
    let mut size = 1 << 20;
    while size > 4096 {
        while alloc(size) {}
        size /= 2;
    }
    for size in (16..=4096).rev().step_by(16) {
        while alloc(size) {}
    }
}

fn alloc(size: usize) -> bool {
    let layout = std::alloc::Layout::from_size_align(size, 8).unwrap();
    // SAFETY: a non-zero-sized layout; the memory is leaked on purpose.
    !unsafe { std::alloc::alloc(layout) }.is_null()
}

#[test]
fn a_spawn_that_cannot_allocate_its_header_aborts_like_std() {
    let name = "a_spawn_that_cannot_allocate_its_header_aborts_like_std";
    if support::in_child(name) {
        support::within("the heap exhaustion child", || {
            // Pooled stacks, so that the spawn below needs no new slab.
            let hs: Vec<_> = (0..64).map(|i| goro::go!(move || i)).collect();
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), i);
            }
            // A join returns once the result is out, a moment before the
            // worker gives the stack back and drops the registry entry,
            // both of which may allocate: with the heap exhausted, that
            // worker would abort first, not the spawn under test.
            support::eventually("the joined coroutines to leave the registry", || {
                goro::coroutines().is_empty()
            });
            // A thread's start (std maps its signal stack) allocates too: on
            // a loaded machine a worker may not have run yet. Every worker
            // has gone to sleep at least once, so every one has started;
            // the child runs without the watchdog thread for the same reason.
            support::eventually("every worker to have started", || {
                goro::stats().per_worker.iter().all(|w| w.sleeps > 0)
            });
            println!("exhausting the heap");
            cap_address_space(16 << 20);
            exhaust_heap();
            println!("SPAWNING");
            let r = std::panic::catch_unwind(|| goro::Builder::new().spawn(|| ()));
            println!("SPAWN RETURNED {}", r.is_ok());
        });
        return;
    }
    let out = support::child(
        name,
        &[("GORO_WORKERS", "2"), ("GORO_BLOCKED_WORKER_MS", "0")],
    );
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\nstdout:\n{so}\nstderr:\n{se}",
        out.status
    );
    assert!(
        so.contains("SPAWNING") && !so.contains("SPAWN RETURNED"),
        "{so}"
    );
    assert!(se.contains("memory allocation of"), "{se}");
    assert!(!se.contains("panicked"), "{se}");
}
