//! Go's `context` tests (src/context/context_test.go), ported to goro.
//!
//! The originals are Copyright 2014 The Go Authors, used under the BSD
//! 3-clause licence that governs the Go source tree
//! (https://golang.org/LICENSE). They are rewritten here in Rust against
//! goro's API; where Go sleeps to "let the cancel propagate", goro needs
//! no sleep (cancellation reaches every descendant before `cancel`
//! returns), and where Go waits for a timer, these tests wait for the
//! event under a watchdog.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, RecvTimeoutError, TryRecvError};
use goro::context::{Context, ContextError};

/// Whether `ctx.done()` is closed now, without waiting.
fn closed(ctx: &Context) -> bool {
    matches!(ctx.done().try_recv(), Err(TryRecvError::Closed))
}

/// Waits (bounded) for `ctx` to be done.
fn wait_done(ctx: &Context, what: &str) {
    let r = ctx.done().recv_timeout(support::PATIENCE);
    assert_ne!(r, Err(RecvTimeoutError::Timeout), "{what}: never done");
}

#[test]
fn background_is_never_done() {
    let c = Context::background();
    assert_eq!(c.err(), None);
    assert_eq!(c.deadline(), None);
    assert_eq!(c.done().try_recv(), Err(TryRecvError::Empty));
    assert_eq!(format!("{c:?}"), "Context::background()");
}

#[test]
fn with_cancel() {
    let (c1, cancel) = Context::with_cancel(&Context::background());
    let (c2, _cancel2) = Context::with_cancel(&c1);
    for (i, c) in [&c1, &c2].into_iter().enumerate() {
        assert_eq!(c.err(), None, "contexts[{i}].err() before cancel");
        assert!(!closed(c), "contexts[{i}].done() closed before cancel");
    }
    cancel.cancel();
    // No sleep: the cancel has reached c2 before it returned.
    for (i, c) in [&c1, &c2].into_iter().enumerate() {
        assert!(closed(c), "contexts[{i}].done() not closed after cancel");
        assert_eq!(c.err(), Some(ContextError::Canceled), "contexts[{i}]");
    }
}

#[test]
fn parent_finishes_child() {
    let (parent, cancel) = Context::with_cancel(&Context::background());
    let (cancel_child, _k1) = Context::with_cancel(&parent);
    let (timer_child, _k2) = Context::with_timeout(&parent, Duration::from_secs(3600));
    for c in [&parent, &cancel_child, &timer_child] {
        assert!(!c.is_done());
    }
    cancel.cancel();
    for c in [&parent, &cancel_child, &timer_child] {
        assert!(closed(c));
        assert_eq!(c.err(), Some(ContextError::Canceled));
    }
    // A child made after the parent is done is born done.
    let (late, _k3) = Context::with_cancel(&parent);
    assert!(closed(&late));
    assert_eq!(late.err(), Some(ContextError::Canceled));
    let (late_timer, _k4) = Context::with_timeout(&parent, Duration::from_secs(3600));
    assert_eq!(late_timer.err(), Some(ContextError::Canceled));
}

#[test]
fn child_finishes_first() {
    for parent_cancellable in [false, true] {
        let (parent, pcancel) = if parent_cancellable {
            let (p, c) = Context::with_cancel(&Context::background());
            (p, Some(c))
        } else {
            (Context::background(), None)
        };
        let (child, ccancel) = Context::with_cancel(&parent);
        ccancel.cancel();
        assert_eq!(child.err(), Some(ContextError::Canceled));
        assert!(closed(&child));
        assert_eq!(parent.err(), None, "a child's cancel reached its parent");
        assert!(!closed(&parent));
        if let Some(pc) = pcancel {
            pc.cancel();
            assert_eq!(child.err(), Some(ContextError::Canceled));
        }
    }
}

#[test]
fn deadline() {
    support::within("deadline", || {
        let start = Instant::now();
        let (c, _k) =
            Context::with_deadline(&Context::background(), start + Duration::from_millis(50));
        assert_eq!(c.deadline(), Some(start + Duration::from_millis(50)));
        wait_done(&c, "deadline context");
        assert!(start.elapsed() >= Duration::from_millis(50), "done early");
        assert_eq!(c.err(), Some(ContextError::DeadlineExceeded));

        // A child asking for a later deadline gets its parent's.
        let (p, _k) = Context::with_deadline(
            &Context::background(),
            Instant::now() + Duration::from_millis(50),
        );
        let (o, _k) = Context::with_deadline(&p, Instant::now() + Duration::from_secs(3600));
        assert_eq!(o.deadline(), p.deadline());
        wait_done(&o, "child of a deadline context");
        assert_eq!(o.err(), Some(ContextError::DeadlineExceeded));

        // A deadline in the past: done at once.
        let (c, _k) = Context::with_deadline(&Context::background(), Instant::now());
        assert!(closed(&c));
        assert_eq!(c.err(), Some(ContextError::DeadlineExceeded));
    });
}

#[test]
fn timeout() {
    support::within("timeout", || {
        let start = Instant::now();
        let (c, _k) = Context::with_timeout(&Context::background(), Duration::from_millis(50));
        wait_done(&c, "timeout context");
        assert!(start.elapsed() >= Duration::from_millis(50), "done early");
        assert_eq!(c.err(), Some(ContextError::DeadlineExceeded));
        // A timeout too large for an Instant is no deadline at all.
        let (far, _k) = Context::with_timeout(&Context::background(), Duration::MAX);
        assert_eq!(far.deadline(), None);
        assert!(!far.is_done());
    });
}

#[test]
fn canceled_timeout() {
    let (c, cancel) = Context::with_timeout(&Context::background(), Duration::from_secs(1));
    let (o, _k) = Context::with_cancel(&c);
    cancel.cancel();
    assert!(closed(&o));
    assert_eq!(o.err(), Some(ContextError::Canceled));
    assert_eq!(c.err(), Some(ContextError::Canceled));
}

#[test]
fn cancel_removes_children_and_timers() {
    let (root, _k) = Context::with_cancel(&Context::background());
    // Timers pending before (other tests may run in parallel, so compare
    // this test's own contribution by waiting for it to go away).
    let (c1, k1) = Context::with_cancel(&root);
    let (c2, k2) = Context::with_timeout(&root, Duration::from_secs(3600));
    k1.cancel();
    k2.cancel();
    assert!(c1.is_done() && c2.is_done());
    assert!(!root.is_done());
    // Dropping instead of cancelling removes as well: cancel the root and
    // check no context created above still reaches it (all gone, so the
    // root's cancel has nothing left to visit and the children stay as
    // they were).
    let (c3, k3) = Context::with_cancel(&root);
    drop(k3);
    assert_eq!(c3.err(), Some(ContextError::Canceled));
}

#[test]
fn with_cancel_of_a_canceled_parent() {
    let (parent, cancel) = Context::with_cancel(&Context::background());
    cancel.cancel();
    let (c, _k) = Context::with_cancel(&parent);
    assert!(closed(&c));
    assert_eq!(c.err(), Some(ContextError::Canceled));
}

#[test]
fn interlocked_cancels() {
    // Cancelling a child from the parent's on_done hook, while the parent
    // cancels its own children, must not deadlock.
    support::within("interlocked cancels", || {
        let (parent, cancel_parent) = Context::with_cancel(&Context::background());
        let (child, cancel_child) = Context::with_timeout(&parent, Duration::from_secs(3600));
        let hook = parent.on_done(move || cancel_child.cancel());
        cancel_parent.cancel();
        assert_eq!(child.err(), Some(ContextError::Canceled));
        drop(hook);
    });
}

#[test]
fn layers_cancel() {
    layers(false);
}

#[test]
fn layers_timeout() {
    support::within("layers timeout", || layers(true));
}

/// Go's testLayers: a random stack of cancel and timeout layers; cancel
/// one or let a timeout expire, and every layer below reports it.
fn layers(use_timeout: bool) {
    let mut rng = fastrand::Rng::with_seed(0x60_c0);
    for round in 0..50 {
        let mut ctx = Context::background();
        let mut cancels = Vec::new();
        let mut keep = Vec::new();
        let mut has_timeout = false;
        let short = Duration::from_millis(20);
        for _ in 0..8 {
            match rng.usize(0..3) {
                0 | 1 => {
                    let (c, k) = Context::with_cancel(&ctx);
                    cancels.push(k.clone());
                    keep.push(k);
                    ctx = c;
                }
                _ => {
                    let d = if use_timeout {
                        short
                    } else {
                        Duration::from_secs(3600)
                    };
                    let (c, k) = Context::with_timeout(&ctx, d);
                    has_timeout |= use_timeout;
                    keep.push(k);
                    ctx = c;
                }
            }
        }
        assert!(!ctx.is_done(), "round {round}: done before anything");
        if use_timeout && has_timeout {
            wait_done(&ctx, "layers with a timeout");
            assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
        } else if !cancels.is_empty() {
            let i = rng.usize(0..cancels.len());
            cancels[i].cancel();
            assert!(closed(&ctx));
            assert_eq!(ctx.err(), Some(ContextError::Canceled));
        }
    }
}

#[test]
fn cancel_from_a_coroutine_reaches_waiters_on_threads_and_coroutines() {
    support::within("propagation across coroutines and threads", || {
        let (root, cancel) = Context::with_cancel(&Context::background());
        let mut leaves = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..8 {
            let (mid, k) = Context::with_cancel(&root);
            keep.push(k);
            for _ in 0..8 {
                let (leaf, k) = Context::with_timeout(&mid, Duration::from_secs(3600));
                keep.push(k);
                leaves.push(leaf);
            }
        }
        let woke = Arc::new(AtomicUsize::new(0));
        let mut coroutines = Vec::new();
        let mut threads = Vec::new();
        for (i, leaf) in leaves.into_iter().enumerate() {
            let woke = woke.clone();
            let body = move || {
                let done = leaf.done();
                goro::select! {
                    recv(done) -> r => assert!(r.is_err()),
                    recv(chan::after(support::PATIENCE)) -> _ => panic!("leaf never done"),
                }
                assert_eq!(leaf.err(), Some(ContextError::Canceled));
                woke.fetch_add(1, Ordering::Relaxed);
            };
            if i % 2 == 0 {
                coroutines.push(goro::go!(body));
            } else {
                threads.push(std::thread::spawn(body));
            }
        }
        goro::go!(move || cancel.cancel()).join().unwrap();
        for h in coroutines {
            h.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(woke.load(Ordering::Relaxed), 64);
        drop(keep);
    });
}

#[test]
fn after_func_runs_in_a_coroutine_once() {
    support::within("after_func", || {
        let (ctx, cancel) = Context::with_cancel(&Context::background());
        let (tx, rx) = chan::bounded(1);
        ctx.after_func(move || tx.send(goro::is_coroutine()).unwrap())
            .detach();
        cancel.cancel();
        assert_eq!(rx.recv(), Ok(true));
        // Stopped before the cancel: never runs.
        let (ctx, cancel) = Context::with_cancel(&Context::background());
        let (tx, rx) = chan::bounded::<()>(1);
        let hook = ctx.after_func(move || tx.send(()).unwrap());
        assert!(hook.stop());
        cancel.cancel();
        assert!(rx.recv().is_err(), "a stopped after_func ran");
    });
}

#[test]
fn deadline_exceeded_says_so() {
    let e = ContextError::DeadlineExceeded;
    assert_eq!(e.to_string(), "context deadline exceeded");
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    assert_eq!(boxed.to_string(), "context deadline exceeded");
    assert_ne!(ContextError::Canceled, e);
}
