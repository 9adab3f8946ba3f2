//! Failure paths that end or limit a process, run in child processes:
//! stack overflow (guarded and canary-checked stacks), bad environment
//! variables, and running out of memory for stacks. A child that hangs is
//! killed and fails its test.

mod support;

use std::process::Output;

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    if n == 0 {
        pad[3]
    } else {
        recurse(n - 1).wrapping_add(pad[5])
    }
}

fn overflow_in_named_coroutine(builder: goro::Builder) {
    let h = builder
        .name("deep")
        .stack_size(32 << 10)
        .spawn(|| recurse(1 << 30))
        .unwrap();
    let _ = h.join();
    unreachable!("the overflow must abort the process");
}

fn assert_overflow_report(out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}, stderr: {err}",
        out.status
    );
    assert!(err.contains("coroutine 'deep'"), "{err}");
    assert!(err.contains("overflowed its stack of 32768 bytes"), "{err}");
}

#[test]
fn overflow_on_a_guarded_stack_aborts_naming_the_coroutine() {
    if support::in_child("overflow_on_a_guarded_stack_aborts_naming_the_coroutine") {
        overflow_in_named_coroutine(goro::Builder::new());
    }
    // Light guard pages (the default where the kernel has them), then the
    // mprotect'ed guard pages of older kernels.
    for guards in ["light", "mapped"] {
        assert_overflow_report(&support::child(
            "overflow_on_a_guarded_stack_aborts_naming_the_coroutine",
            &[("GORO_STACK_GUARDS", guards)],
        ));
    }
}

#[test]
fn overflow_beyond_the_guard_budget_aborts_naming_the_coroutine() {
    let name = "overflow_beyond_the_guard_budget_aborts_naming_the_coroutine";
    if support::in_child(name) {
        // With mapped guard pages (the parent sets GORO_STACK_GUARDS), use
        // up the guard budget of the 32 KiB pool (a quarter of
        // vm.max_map_count, in stacks: max_map_count / 8) with parked
        // coroutines, so the next stacks come from canary slabs. Safe code
        // gets no stack there (tests/runtime_stack_guard_budget.rs): these
        // spawns opt in.
        let maps: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: these coroutines only park, far within their stacks.
        let unguarded = || unsafe { goro::Builder::new().allow_unguarded_stack() };
        let hold: Vec<_> = (0..maps / 8 + 600)
            .map(|_| {
                unguarded()
                    .stack_size(32 << 10)
                    .spawn(goro::park::park)
                    .unwrap()
            })
            .collect();
        std::mem::forget(hold);
        // The opt-in's promise is broken on purpose for the one coroutine
        // that overflows: this child process exists to show that its
        // canary catches it (the parked neighbours' stacks may be damaged,
        // and the process aborts).
        overflow_in_named_coroutine(unguarded());
    }
    assert_overflow_report(&support::child(name, &[("GORO_STACK_GUARDS", "mapped")]));
}

#[test]
fn bad_environment_stops_start_up_naming_the_variable() {
    let name = "bad_environment_stops_start_up_naming_the_variable";
    if support::in_child(name) {
        goro::spawn(|| ()).join().unwrap();
        return;
    }
    for (var, value) in [
        ("GORO_WORKERS", "lots"),
        ("GORO_WORKERS", "0"),
        ("GORO_STACK_SIZE", "12q"),
        ("GORO_STACK_GUARDS", "on"),
    ] {
        let out = support::child(name, &[(var, value)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} must fail start-up");
        assert!(err.contains(&format!("{var}=\"{value}\"")), "{err}");
    }
    let out = support::child(name, &[("GORO_WORKERS", "3"), ("GORO_STACK_SIZE", "128K")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn running_out_of_stack_memory_is_an_error_not_a_crash() {
    let name = "running_out_of_stack_memory_is_an_error_not_a_crash";
    if support::in_child(name) {
        // Start the runtime, and park one coroutine we can wake later.
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = goro::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                tx.send(goro::park::current()).unwrap();
                goro::park::park();
                2
            })
            .unwrap();
        let sleeper_waker = rx.recv().unwrap();
        // Cap the address space so that new stack slabs cannot be mapped.
        let lim = libc::rlimit {
            rlim_cur: 6 << 30,
            rlim_max: 6 << 30,
        };
        // SAFETY: setrlimit on our own process with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
        let mut held = Vec::new();
        let err = loop {
            match goro::Builder::new()
                .stack_size(1 << 20)
                .spawn(goro::park::park)
            {
                Ok(h) => held.push(h),
                Err(e) => break e,
            }
            assert!(held.len() < 100_000, "the address space cap did not bite");
        };
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory, "{err}");
        // `go!` has no error to return: it panics with the same message.
        let panicked = std::panic::catch_unwind(|| {
            for _ in 0..200_000 {
                std::mem::forget(goro::go!(goro::park::park));
            }
        })
        .expect_err("go! must panic once no stack can be had");
        let msg = panicked
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(msg.contains("cannot spawn a coroutine"), "{msg}");
        // The runtime keeps serving the coroutines it has...
        sleeper_waker.unpark();
        assert_eq!(sleeper.join().unwrap(), 2);
        // ...and the stack that coroutine gave back is spawnable again.
        // (`join` returns when the result is published, a moment before the
        // worker puts the stack back, so allow it that moment.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let again = loop {
            match goro::Builder::new().stack_size(1 << 20).spawn(|| 3) {
                Ok(h) => break h,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
                    std::thread::yield_now();
                }
                Err(e) => panic!("the freed stack never came back: {e}"),
            }
        };
        assert_eq!(again.join().unwrap(), 3);
        std::mem::forget(held);
        println!("CHILD-OK {err}");
        return;
    }
    let out = support::child(name, &[]);
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && so.contains("CHILD-OK"),
        "{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
