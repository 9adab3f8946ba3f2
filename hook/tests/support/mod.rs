//! Helpers shared by the hook's integration tests: a watchdog, the
//! runtime set-up, and starting/stopping external servers.
//!
//! (The workspace's `tests/support` names the `goro` facade, which this
//! crate's tests do not link: the facade would bring a second copy of the
//! hooks.)
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// Generous bound for watchdogs: only a broken hook gets near it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Two workers, as in the scenarios (first caller wins; the rest
/// find the runtime configured). Also checks that the hooks are in
/// effect: naming `goro_hook` here is what links it into every test
/// binary (an rlib no code names is left out of the link).
pub fn two_workers() {
    assert!(goro_hook::enabled(), "the hooks are not linked");
    let _ = goro_runtime::Config::new().workers(2).apply();
}

/// Runs `body` on a fresh thread and returns its value; fails the calling
/// test with `what` if it has not returned within [`PATIENCE`].
#[track_caller]
pub fn within<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(r);
        })
        .expect("spawn watched thread");
    match rx.recv_timeout(PATIENCE) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("watchdog: {what} did not finish within {PATIENCE:?}"),
    }
}
