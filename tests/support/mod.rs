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
//! [`PATIENCE`] is the one generous bound they use: only a broken runtime
//! gets near it, so no test depends on a sleep being "long enough".
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
