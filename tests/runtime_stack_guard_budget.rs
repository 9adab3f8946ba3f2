//! No stack without a real guard page in safe code: with mprotect'ed guard
//! pages (`GORO_STACK_GUARDS=mapped`, the only mode before Linux 6.13) the
//! guard budget (`vm.max_map_count / 8` stacks) is a hard limit for safe
//! spawns. Beyond it `Builder::spawn` fails with an error that names the
//! limit and the ways out, `go!` panics with that message, the runtime keeps
//! running what it has, and spawning works again once stacks come back.
//! Canary-only stacks exist only behind the `unsafe` opt-ins.
//!
//! The guard mode is read once, when the runtime starts, so each case runs
//! in a child process (this test binary, re-executed with `GORO_CHILD` set)
//! whose environment holds `GORO_STACK_GUARDS=mapped` from the start.

mod support;

use std::io::ErrorKind;

/// Small stacks keep the budget's worth of them cheap (about 200 MB of
/// address space, mostly untouched).
const STACK: usize = 20 << 10;

/// Runs test `name` again in a child process under mapped guard pages.
fn run_child(name: &str) {
    let out = support::child(name, &[("GORO_STACK_GUARDS", "mapped")]);
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && so.contains("CHILD-OK"),
        "child {name} failed ({:?})\nstdout:\n{so}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spawns coroutines that wait on `rx` until a spawn fails; returns the
/// handles (each yields its index) and the error.
fn fill(
    rx: &goro::chan::Receiver<()>,
    budget: usize,
) -> (Vec<goro::JoinHandle<usize>>, std::io::Error) {
    let mut held = Vec::with_capacity(budget);
    loop {
        let rx = rx.clone();
        let i = held.len();
        match goro::Builder::new().stack_size(STACK).spawn(move || {
            let _ = rx.recv();
            i
        }) {
            Ok(h) => held.push(h),
            Err(e) => return (held, e),
        }
        assert!(
            held.len() <= budget,
            "spawn #{} succeeded beyond the guard budget of {budget} stacks: \
             safe code got a stack without a guard page",
            held.len()
        );
    }
}

fn assert_budget_error(e: &std::io::Error, budget: usize) {
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    let msg = e.to_string();
    for needle in [
        "guard",
        &budget.to_string(),
        "vm.max_map_count",
        "MADV_GUARD_INSTALL",
        "6.13",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
}

fn join_all(held: Vec<goro::JoinHandle<usize>>) {
    let n = held.len();
    let mut seen = vec![false; n];
    for h in held {
        let i = h.join().expect("a held coroutine panicked");
        assert!(!std::mem::replace(&mut seen[i], true), "{i} joined twice");
    }
    assert!(seen.iter().all(|&s| s), "a held coroutine was lost");
}

#[test]
fn spawning_beyond_the_guard_budget_fails_and_recovers() {
    let name = "spawning_beyond_the_guard_budget_fails_and_recovers";
    if !support::in_child(name) {
        return run_child(name);
    }
    support::within("the guard budget child", || {
        let budget = support::guard_budget();
        let (tx, rx) = goro::chan::bounded::<()>(0);
        let (held, err) = fill(&rx, budget);
        assert_eq!(held.len(), budget, "stacks before the error: {err}");
        assert_budget_error(&err, budget);

        // `go!` has no error to return: it panics with the same message, on
        // the caller's thread. (Its default 64 KiB stacks come from another
        // pool: the budget is the process's, not one pool's.)
        let payload = std::panic::catch_unwind(|| goro::go!(|| ()))
            .expect_err("go! must not get an unguarded stack");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(msg.contains("cannot spawn a coroutine"), "{msg}");
        assert!(msg.contains(&err.to_string()), "{msg}");

        // The unsafe opt-in still gets a (canary) stack beyond the budget.
        // SAFETY: the closure uses a few hundred bytes of its 20 KiB stack.
        let unguarded = unsafe { goro::Builder::new().allow_unguarded_stack() }
            .stack_size(STACK)
            .spawn(|| 5)
            .expect("the opt-in gets a stack beyond the budget");
        assert_eq!(unguarded.join().unwrap(), 5);

        // The runtime keeps serving: the parked coroutines all run to the
        // end and are joined with their own results.
        drop(tx);
        join_all(held);

        // Their guarded stacks come back: the whole budget is spawnable
        // again (a joined coroutine's worker puts the stack back a moment
        // after publishing the result, hence the retries), and no further.
        let (tx, rx) = goro::chan::bounded::<()>(0);
        let mut again = Vec::with_capacity(budget);
        for i in 0..budget {
            let spawn = || {
                let rx = rx.clone();
                goro::Builder::new().stack_size(STACK).spawn(move || {
                    let _ = rx.recv();
                    i
                })
            };
            let mut h = spawn();
            support::eventually("a freed guarded stack", || {
                if h.is_err() {
                    h = spawn();
                }
                h.is_ok()
            });
            again.push(h.unwrap());
        }
        let err = goro::Builder::new()
            .stack_size(STACK)
            .spawn(|| ())
            .expect_err("the budget holds after reuse");
        assert_budget_error(&err, budget);
        drop(tx);
        join_all(again);
    });
    println!("CHILD-OK");
}

#[test]
fn the_process_wide_opt_in_spawns_beyond_the_guard_budget() {
    let name = "the_process_wide_opt_in_spawns_beyond_the_guard_budget";
    if !support::in_child(name) {
        return run_child(name);
    }
    // SAFETY: every coroutine of this process only waits on a channel or
    // returns at once, far within its stack.
    unsafe { goro::Config::new().allow_unguarded_stacks() }
        .apply()
        .unwrap();
    support::within("the process-wide opt-in child", || {
        let n = support::guard_budget() + 300;
        let (tx, rx) = goro::chan::bounded::<()>(0);
        let held: Vec<_> = (0..n)
            .map(|i| {
                let rx = rx.clone();
                goro::go!(move || {
                    let _ = rx.recv();
                    i
                })
            })
            .collect();
        drop(tx);
        join_all(held);
    });
    println!("CHILD-OK");
}
