//! Deadlock detection: the classic deadlocks are reported with the right
//! locations; a thread outside the runtime that will send later is not
//! mistaken for one.
//!
//! `harness = false`: the deadlock check counts every thread of the
//! process (see the crate docs), and libtest's main thread, waiting for
//! its test threads in `std::sync`, would make every program look alive.
//! So `main` runs each scenario in a child process of this binary
//! (`GORO_CHILD=name`), where `main` is the only thread besides the
//! runtime's, and checks what it printed. Each child is killed by
//! `support::child`'s watchdog if it hangs.

mod support;

use std::time::Duration;

use goro::{chan, sync};

/// Main waits on a channel nobody sends on (it holds the sender itself).
fn main_recv_nobody_sends() {
    let (_tx, rx) = chan::bounded::<u8>(0);
    let _ = rx.recv(); // LINE:main_recv
}

/// Two coroutines each wait for the other's message; main joins one.
fn two_coroutines_wait_for_each_other() {
    let (a_tx, a_rx) = chan::bounded::<u8>(0);
    let (b_tx, b_rx) = chan::bounded::<u8>(0);
    let a = goro::go!(move || {
        let _ = a_rx.recv(); // LINE:a_waits
        let _ = b_tx.send(1);
    });
    let _b = goro::go!(move || {
        let _ = b_rx.recv(); // LINE:b_waits
        let _ = a_tx.send(1);
    });
    let _ = a.join(); // LINE:main_join
}

/// One coroutine takes a lock twice; main joins it.
fn lock_taken_twice() {
    let h = goro::go!(|| {
        let m = sync::Mutex::new(0);
        let _first = m.lock();
        let _second = m.lock(); // LINE:second_lock
    });
    let _ = h.join(); // LINE:join_locker
}

/// Not a deadlock: a plain thread sends once main has been blocked for a
/// while (it watches the dump to know), so every check the runtime makes
/// meanwhile must see a live thread.
fn thread_outside_sends_later() {
    let (tx, rx) = chan::bounded::<u8>(0);
    let sender = std::thread::spawn(move || {
        // Wait until main is blocked and every worker has gone to sleep
        // (each sleep runs the check), then a little more.
        let mut seen = 0;
        while seen < 20 {
            let mut out = Vec::new();
            goro::dump_to(&mut out).unwrap();
            if String::from_utf8_lossy(&out).contains("thread 'main'") {
                seen += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tx.send(7).unwrap();
    });
    // Coroutines that park and wake while main waits.
    let h = goro::go!(|| {
        for _ in 0..10 {
            goro::sleep(Duration::from_millis(2));
        }
    });
    assert_eq!(rx.recv(), Ok(7));
    h.join().unwrap();
    sender.join().unwrap();
    println!("no deadlock reported");
}

/// Not a deadlock: main waits while a coroutine sleeps (a timer).
fn sleeping_coroutine_is_not_a_deadlock() {
    let (tx, rx) = chan::bounded::<u8>(0);
    let _h = goro::go!(move || {
        goro::sleep(Duration::from_millis(50));
        tx.send(1).unwrap();
    });
    assert_eq!(rx.recv(), Ok(1));
    println!("no deadlock reported");
}

/// `GORO_DEADLOCK=abort`: the report, then an abort (no panic).
fn abort_mode() {
    main_recv_nobody_sends();
}

const SCENARIOS: &[(&str, fn())] = &[
    ("main_recv_nobody_sends", main_recv_nobody_sends),
    (
        "two_coroutines_wait_for_each_other",
        two_coroutines_wait_for_each_other,
    ),
    ("lock_taken_twice", lock_taken_twice),
    ("thread_outside_sends_later", thread_outside_sends_later),
    (
        "sleeping_coroutine_is_not_a_deadlock",
        sleeping_coroutine_is_not_a_deadlock,
    ),
    ("abort_mode", abort_mode),
];

/// `file:line` of the line tagged `// LINE:tag` in this file.
fn line_of(tag: &str) -> String {
    let src = include_str!("diag_deadlock.rs");
    let needle = format!("// LINE:{tag}");
    let n = src
        .lines()
        .position(|l| l.trim_end().ends_with(&needle))
        .unwrap_or_else(|| panic!("no line tagged {tag}"));
    format!("{}:{}:", file!(), n + 1)
}

fn run(name: &str, envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let out = support::child(name, envs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

fn expect_deadlock(name: &str, lines: &[&str]) {
    let (status, text) = run(name, &[]);
    assert!(
        !status.success(),
        "{name}: the child should have panicked:\n{text}"
    );
    assert!(
        text.contains("goro: all coroutines are asleep - deadlock!"),
        "{name}: no report:\n{text}"
    );
    assert!(
        text.contains("panicked") && text.matches("deadlock!").count() >= 2,
        "{name}: main did not panic with the message:\n{text}"
    );
    for tag in lines {
        let at = line_of(tag);
        assert!(text.contains(&at), "{name}: {tag} ({at}) not in:\n{text}");
    }
    println!("ok: {name}");
}

fn expect_no_deadlock(name: &str) {
    let (status, text) = run(name, &[]);
    assert!(status.success(), "{name}: failed:\n{text}");
    assert!(
        !text.contains("deadlock!"),
        "{name}: false positive:\n{text}"
    );
    assert!(text.contains("no deadlock reported"), "{name}:\n{text}");
    println!("ok: {name}");
}

fn main() {
    if let Ok(name) = std::env::var("GORO_CHILD") {
        let f = SCENARIOS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no scenario {name}"))
            .1;
        f();
        return;
    }
    // Only the filter libtest would take, so `cargo test NAME` still works.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |n: &str| filter.as_deref().is_none_or(|f| n.contains(f));
    if wanted("main_recv_nobody_sends") {
        expect_deadlock("main_recv_nobody_sends", &["main_recv"]);
    }
    if wanted("two_coroutines_wait_for_each_other") {
        expect_deadlock(
            "two_coroutines_wait_for_each_other",
            &["a_waits", "b_waits", "main_join"],
        );
    }
    if wanted("lock_taken_twice") {
        expect_deadlock("lock_taken_twice", &["second_lock", "join_locker"]);
    }
    if wanted("thread_outside_sends_later") {
        expect_no_deadlock("thread_outside_sends_later");
    }
    if wanted("sleeping_coroutine_is_not_a_deadlock") {
        expect_no_deadlock("sleeping_coroutine_is_not_a_deadlock");
    }
    if wanted("abort_mode") {
        let (status, text) = run("abort_mode", &[("GORO_DEADLOCK", "abort")]);
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{text}");
        }
        assert!(text.contains("deadlock!"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        println!("ok: abort_mode");
    }
}
