//! goro's panic hook chains to the hook the program installed before the
//! runtime started, so error reporters keep seeing coroutine panics; a hook
//! installed after the runtime started replaces goro's and still sees them;
//! and a panic is reported once, naming its coroutine.
//!
//! Panic hooks are process-wide, so each scenario runs in a child process
//! of its own (this test binary re-executed with `GORO_HOOK_SCENARIO` set)
//! and the parent checks the child's exit status and stderr.

mod support;

use std::panic::PanicHookInfo;
use std::process::Command;
use std::sync::Mutex;

/// What the test's own hook saw, one entry per call.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    message: String,
    coroutine: Option<u64>,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn message(info: &PanicHookInfo<'_>) -> String {
    let p = info.payload();
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string payload>".to_string())
}

fn record(info: &PanicHookInfo<'_>) {
    SEEN.lock().unwrap().push(Seen {
        message: message(info),
        coroutine: goro::current_id(),
    });
}

fn seen() -> Vec<Seen> {
    SEEN.lock().unwrap().clone()
}

/// Spawns a coroutine named `name` that panics with `msg`; checks that
/// `join` returns that payload; returns the coroutine's id.
fn panic_in_coroutine(name: &str, msg: &'static str) -> u64 {
    let h = goro::Builder::new()
        .name(name)
        .spawn(move || -> () { std::panic::panic_any(msg) })
        .unwrap();
    let id = h.id();
    let payload = h.join().expect_err("join must return the panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&msg));
    id
}

/// The user's hook is installed before the runtime's first use: it must be
/// called for a coroutine's panic, inside that coroutine, exactly once.
fn before() {
    std::panic::set_hook(Box::new(record));
    let id = panic_in_coroutine("hooked", "payload from the coroutine");
    assert_eq!(
        seen(),
        vec![Seen {
            message: "payload from the coroutine".into(),
            coroutine: Some(id),
        }],
        "the hook installed before the runtime must see the coroutine's panic"
    );
    // Panics outside coroutines still reach it too.
    let _ = std::thread::spawn(|| panic!("from a thread")).join();
    assert_eq!(seen().len(), 2);
    assert_eq!(seen()[1].message, "from a thread");
    assert_eq!(seen()[1].coroutine, None);
}

/// No user hook: std's default one prints, goro names the coroutine.
fn default_hook() {
    panic_in_coroutine("plain", "printed exactly once");
}

/// A hook installed after the runtime started replaces goro's: coroutine
/// panics are still caught and returned by `join`, and that hook sees them.
/// A hook that chains to the one it replaced keeps goro's report too.
fn after() {
    assert_eq!(goro::spawn(|| 1).join().unwrap(), 1);
    // goro's hook, chained to std's default.
    let goro_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(record));
    let id = panic_in_coroutine("replaced", "seen by the later hook");
    assert_eq!(
        seen(),
        vec![Seen {
            message: "seen by the later hook".into(),
            coroutine: Some(id),
        }]
    );
    std::panic::set_hook(Box::new(move |info| {
        record(info);
        goro_hook(info);
    }));
    let id = panic_in_coroutine("chained", "chained report");
    let s = seen();
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(
        s[1],
        Seen {
            message: "chained report".into(),
            coroutine: Some(id),
        }
    );
}

/// Runs `scenario` in a child process; returns its stderr.
fn run_child(scenario: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "panic_hook_scenarios", "--nocapture"])
        .env("GORO_HOOK_SCENARIO", scenario)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "scenario {scenario} failed:\n{err}");
    err
}

#[test]
fn panic_hook_scenarios() {
    if let Ok(scenario) = std::env::var("GORO_HOOK_SCENARIO") {
        let run = match scenario.as_str() {
            "before" => before,
            "default" => default_hook,
            "after" => after,
            other => panic!("unknown scenario {other}"),
        };
        // The scenario's own hook may print nothing: report a failed
        // assertion here so that the parent shows it.
        if let Err(e) = std::panic::catch_unwind(run) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("scenario {scenario}: {msg}");
            std::process::exit(1);
        }
        return;
    }
    support::within("panic hook scenarios", || {
        let err = run_child("before");
        // The user's hook replaced std's printing, so only goro's line,
        // which names the coroutine, is on stderr.
        assert_eq!(err.matches("coroutine 'hooked'").count(), 1, "{err}");
        assert!(!err.contains("from the coroutine"), "{err}");

        let err = run_child("default");
        assert_eq!(err.matches("printed exactly once").count(), 1, "{err}");
        assert_eq!(err.matches("coroutine 'plain'").count(), 1, "{err}");

        let err = run_child("after");
        assert!(!err.contains("coroutine 'replaced'"), "{err}");
        assert_eq!(err.matches("coroutine 'chained'").count(), 1, "{err}");
        assert_eq!(err.matches("chained report").count(), 1, "{err}");
    });
}
