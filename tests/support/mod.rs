//! Helpers shared by the integration tests: bounded waiting and watchdogs.
//!
//! Every test that waits for something another party does must fail with a
//! message, not hang, when that party never acts. Two tools give that:
//!
//! - [`within`] runs the test body on its own thread and fails the test
//!   (panics on the test's thread with the given description) if the body
//!   has not finished in time. The hung body's thread is left behind; the
//!   test binary exits once every test has reported.
//! - [`eventually`] polls a condition with a deadline.
//!
//! [`PATIENCE`] is the one generous bound they use (stress tests use
//! [`STRESS_PATIENCE`]): only a broken runtime gets near it, so no test
//! depends on a sleep being "long enough".
//!
//! Also here, so that no test file keeps its own copy: [`is_parked`] and
//! [`wait_parked`] (make a test exercise the blocked path), [`SetOnDrop`]
//! (stop spinners however a test ends), and [`child`] / [`in_child`] (run
//! one test in a child process, killed if it hangs).
//!
//! Include with `mod support;` (each test binary compiles the helpers it
//! uses; the others are allowed to be dead).
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for "eventually" and for watchdogs.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Runs `body` on a fresh thread and returns its value; fails the calling
/// test with `what` if it has not returned within [`PATIENCE`]. A panic in
/// `body` is re-raised on the caller's thread with its payload.
#[track_caller]
pub fn within<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    within_for(PATIENCE, what, body)
}

/// [`within`] with an explicit bound.
#[track_caller]
pub fn within_for<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let name = format!("watched: {what}");
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(r);
        })
        .expect("spawn watched thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("watchdog: {what} did not finish within {limit:?}"),
    }
}

/// Polls `cond` until it holds; fails with `what` after [`PATIENCE`].
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Whether coroutine `id` is parked right now (from `goro::coroutines()`).
pub fn is_parked(id: u64) -> bool {
    goro::coroutines()
        .iter()
        .any(|c| c.id == id && c.state == goro::State::Parked)
}

/// [`within`]'s bound for the stress and scale tests, which take a second
/// or two on an idle 2-core machine and must not trip the watchdog on a
/// loaded one.
pub const STRESS_PATIENCE: Duration = Duration::from_secs(120);

/// Polls until coroutine `id` is parked (blocked in a channel, lock, timer
/// or socket); fails after [`PATIENCE`]. Tests use it to make sure they
/// exercise the blocked path, never for correctness.
#[track_caller]
pub fn wait_parked(id: u64) {
    eventually(&format!("coroutine {id} to park"), || is_parked(id));
}

/// Sets its flag when dropped, so that however a test ends (a failed
/// assertion or watchdog included) the spinners and lock hogs it started
/// stop, instead of keeping every worker busy for the rest of the binary.
pub struct SetOnDrop(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Whether this process is the child that [`child`] started for `test`.
pub fn in_child(test: &str) -> bool {
    std::env::var("GORO_CHILD").is_ok_and(|v| v == test)
}

/// `in_child` and `child` in one call: in the child process, runs `body`
/// under the [`within`] watchdog; in the parent, runs the child with
/// `envs` set and fails unless it succeeded. For tests whose runtime
/// settings (`GORO_*`) must be their own.
#[track_caller]
pub fn run_in_child(test: &str, envs: &[(&str, &str)], body: impl FnOnce() + Send + 'static) {
    if in_child(test) {
        within(test, body);
        return;
    }
    let out = child(test, envs);
    assert!(
        out.status.success(),
        "child for {test} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Re-runs this test binary for `test` alone, with `GORO_CHILD=test` (see
/// [`in_child`]) and `envs` set, and returns its output. A child still
/// running after [`PATIENCE`] is killed and the calling test fails with
/// what the child printed so far.
#[track_caller]
pub fn child(test: &str, envs: &[(&str, &str)]) -> std::process::Output {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut c = Command::new(std::env::current_exe().expect("the test binary"));
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("GORO_CHILD", test)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut proc = c.spawn().expect("spawn the child test process");
    // Drain both pipes while waiting, so a chatty child cannot block on a
    // full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = drain(Box::new(proc.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(proc.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = proc.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = proc.kill();
            let _ = proc.wait();
            let out = stdout.join().unwrap_or_default();
            let err = stderr.join().unwrap_or_default();
            panic!(
                "watchdog: child process for {test} did not finish within {PATIENCE:?}\n\
                 stdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// `GORO_STRESS_SCALE` (default 1): how many times the default rounds a
/// stress test runs; raise it for a longer soak by hand.
pub fn stress_scale() -> usize {
    std::env::var("GORO_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// `GORO_STRESS_SEED`, else a random seed; printed so that a failing run
/// can be replayed.
pub fn stress_seed(test: &str) -> u64 {
    let seed = std::env::var("GORO_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("{test}: seed {seed} (replay with GORO_STRESS_SEED={seed})");
    seed
}

/// The mapped-guard budget the stack module documents: a quarter of
/// `vm.max_map_count` in mappings, two mappings per guarded stack.
pub fn guard_budget() -> usize {
    let maps: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(65_530);
    maps / 8
}
