//! More of Go's `context` tests (src/context/context_test.go and
//! x_test.go), the ones `tests/go_context.rs` does not already port:
//! simultaneous cancels, a parent and a child cancelled at once, a
//! deadline already past, deadlines never later than the parent's, and
//! `AfterFunc`'s stop rules.
//!
//! The originals are Copyright The Go Authors, used under the BSD
//! 3-clause licence that governs the Go source tree
//! (https://golang.org/LICENSE); rewritten in Rust against goro's API.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::chan::TryRecvError;
use goro::context::{Context, ContextError};

fn closed(ctx: &Context) -> bool {
    matches!(ctx.done().try_recv(), Err(TryRecvError::Closed))
}

/// Go's TestSimultaneousCancels: a tree of contexts, each cancel called
/// from its own coroutine at about the same time; every context ends
/// done with `Canceled`, and every cancel returns.
#[test]
fn simultaneous_cancels() {
    support::within("simultaneous cancels", || {
        let (root, root_cancel) = Context::with_cancel(&Context::background());
        let mut all = vec![(root.clone(), root_cancel)];
        for i in 0..100 {
            let parent = all[i / 4].0.clone();
            all.push(Context::with_cancel(&parent));
        }
        let start = Arc::new(goro::sync::Barrier::new(all.len()));
        let mut hs = Vec::new();
        let mut ctxs = Vec::new();
        for (ctx, cancel) in all {
            ctxs.push(ctx);
            let start = start.clone();
            hs.push(goro::go!(move || {
                start.wait();
                cancel.cancel();
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        for c in &ctxs {
            assert!(closed(c));
            assert_eq!(c.err(), Some(ContextError::Canceled));
        }
    });
}

/// Go's TestWithCancelSimultaneouslyCanceledParent: a child made while
/// its parent is being cancelled on another thread is done with
/// `Canceled`, whichever wins.
#[test]
fn with_cancel_simultaneously_canceled_parent() {
    support::within("racing parent cancel", || {
        for _ in 0..200 {
            let (parent, cancel) = Context::with_cancel(&Context::background());
            let t = std::thread::spawn(move || cancel.cancel());
            let (child, _child_cancel) = Context::with_cancel(&parent);
            t.join().unwrap();
            assert!(closed(&child), "the child missed its parent's cancel");
            assert_eq!(child.err(), Some(ContextError::Canceled));
        }
    });
}

/// Go's deadline tests with a deadline already past: the context is done
/// at once, with `DeadlineExceeded`, and so is a child of it.
#[test]
fn deadline_in_the_past_is_done_at_once() {
    let past = Instant::now() - Duration::from_millis(1);
    let (c, _cancel) = Context::with_deadline(&Context::background(), past);
    assert!(c.is_done());
    assert!(closed(&c));
    assert_eq!(c.err(), Some(ContextError::DeadlineExceeded));
    let (child, _cc) = Context::with_cancel(&c);
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
    let (t, _tc) = Context::with_timeout(&Context::background(), Duration::ZERO);
    assert_eq!(t.err(), Some(ContextError::DeadlineExceeded));
}

/// Go: `WithDeadline(parent, later)` keeps the parent's earlier deadline,
/// and is done (with `DeadlineExceeded`) when the parent's passes.
#[test]
fn child_deadline_is_never_later_than_the_parent() {
    support::within("child deadline", || {
        let soon = Instant::now() + Duration::from_millis(30);
        let (parent, _pc) = Context::with_deadline(&Context::background(), soon);
        let (child, _cc) = Context::with_timeout(&parent, Duration::from_secs(3600));
        assert_eq!(child.deadline(), Some(soon));
        let earlier = Instant::now() + Duration::from_millis(10);
        let (grandchild, _gc) = Context::with_deadline(&child, earlier);
        assert_eq!(grandchild.deadline(), Some(earlier));
        assert_eq!(child.done().recv(), Err(goro::chan::RecvError));
        assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
        assert!(Instant::now() >= soon);
    });
}

/// Go's TestAfterFuncNotCalledAfterStop and TestAfterFuncCalledAfterCancel:
/// `stop` before the cancel means the function never runs (`stop` says
/// `true`); after it ran, `stop` says `false`.
#[test]
fn after_func_stop_rules() {
    support::within("after_func stop", || {
        let ran = Arc::new(AtomicUsize::new(0));
        let (ctx, cancel) = Context::with_cancel(&Context::background());
        let r = ran.clone();
        let stopped = ctx.after_func(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert!(stopped.stop(), "stop before the cancel stops it");
        let (tx, rx) = goro::chan::bounded(1);
        let hook = ctx.after_func(move || tx.send(()).unwrap());
        cancel.cancel();
        rx.recv().unwrap();
        assert!(!hook.stop(), "stop after it ran says false");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

/// Go's TestAfterFuncCalledAsynchronously / already done: registering on
/// a done context runs the function (once) without waiting for anything.
#[test]
fn after_func_on_a_done_context_runs() {
    support::within("after_func done", || {
        let (ctx, cancel) = Context::with_cancel(&Context::background());
        cancel.cancel();
        let (tx, rx) = goro::chan::bounded(2);
        ctx.after_func(move || tx.send(1).unwrap()).detach();
        assert_eq!(rx.recv(), Ok(1));
        assert!(rx.recv().is_err(), "it ran exactly once");
    });
}

/// Go's error values: `Canceled` and `DeadlineExceeded` compare equal to
/// themselves only, print Go's messages, and a deadline error is what a
/// context whose deadline passed reports forever after.
#[test]
fn err_values() {
    assert_ne!(ContextError::Canceled, ContextError::DeadlineExceeded);
    assert_eq!(ContextError::Canceled.to_string(), "context canceled");
    assert_eq!(
        ContextError::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
    let (c, cancel) = Context::with_timeout(&Context::background(), Duration::ZERO);
    cancel.cancel(); // too late: the deadline already decided
    assert_eq!(c.err(), Some(ContextError::DeadlineExceeded));
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(ContextError::Canceled);
    assert_eq!(e.to_string(), "context canceled");
}
