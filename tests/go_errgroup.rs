//! Go's errgroup tests (golang.org/x/sync/errgroup/errgroup_test.go),
//! ported to goro's `Group`.
//!
//! The originals are Copyright 2016 The Go Authors, used under the BSD
//! 3-clause licence of the Go project (https://golang.org/LICENSE). They
//! are rewritten in Rust against goro's API; waits that Go leaves
//! unbounded run under a watchdog here.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::chan;
use goro::context::{Context, ContextError};
use goro::{Group, GroupError};

#[derive(Debug, PartialEq, Eq, Clone)]
struct Fail(&'static str);

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[test]
fn zero_group() {
    support::within("zero group", || {
        let err1 = Fail("errgroup_test: 1");
        let err2 = Fail("errgroup_test: 2");
        let cases: Vec<Vec<Option<Fail>>> = vec![
            vec![],
            vec![None],
            vec![Some(err1.clone())],
            vec![Some(err1.clone()), None],
            vec![Some(err1.clone()), None, Some(err2.clone())],
        ];
        for errs in cases {
            let g = Group::<Fail>::new();
            let mut first: Option<Fail> = None;
            for (i, e) in errs.iter().enumerate() {
                let e = e.clone();
                // Run one at a time so "first" is well defined, as Go's
                // test does by waiting between calls to Go.
                let (tx, rx) = chan::bounded::<()>(0);
                g.go(move || {
                    let r = match e {
                        Some(f) => Err(f),
                        None => Ok(()),
                    };
                    drop(tx);
                    r
                });
                let _ = rx.recv();
                while g.active() > 0 {
                    goro::yield_now();
                }
                if first.is_none() {
                    first = errs[i].clone();
                }
            }
            match (g.wait(), first) {
                (Ok(()), None) => {}
                (Err(GroupError::Failed(got)), Some(want)) => assert_eq!(got, want),
                (got, want) => panic!("wait() = {got:?}, want {want:?} for {errs:?}"),
            }
        }
    });
}

#[test]
fn with_context() {
    support::within("with context", || {
        let err_doom = Fail("group_test: doomed");
        let cases: Vec<(Vec<Option<Fail>>, Option<Fail>)> = vec![
            (vec![], None),
            (vec![None], None),
            (vec![Some(err_doom.clone())], Some(err_doom.clone())),
            (vec![Some(err_doom.clone()), None], Some(err_doom.clone())),
        ];
        for (errs, want) in cases {
            let (g, ctx) = Group::<Fail>::with_context(&Context::background());
            for e in errs {
                g.go(move || match e {
                    Some(f) => Err(f),
                    None => Ok(()),
                });
            }
            let got = g.wait();
            match (&got, &want) {
                (Ok(()), None) => {}
                (Err(GroupError::Failed(a)), Some(b)) => assert_eq!(a, b),
                _ => panic!("wait() = {got:?}, want {want:?}"),
            }
            // Done after wait, whatever the outcome.
            assert!(ctx.done().is_closed(), "ctx not done after wait");
            assert_eq!(ctx.err(), Some(ContextError::Canceled));
        }
    });
}

#[test]
fn first_error_cancels_the_context_before_wait() {
    support::within("first error cancels", || {
        let (g, ctx) = Group::<Fail>::with_context(&Context::background());
        let saw_cancel = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let ctx = ctx.clone();
            let saw = saw_cancel.clone();
            g.go(move || {
                let done = ctx.done();
                goro::select! {
                    recv(done) -> _ => { saw.fetch_add(1, Ordering::Relaxed); }
                    recv(chan::after(support::PATIENCE)) -> _ => panic!("never cancelled"),
                }
                Ok(())
            });
        }
        g.go(|| Err(Fail("first")));
        assert_eq!(g.wait().unwrap_err().failed(), Some(&Fail("first")));
        assert_eq!(saw_cancel.load(Ordering::Relaxed), 4);
    });
}

#[test]
fn try_go() {
    support::within("try go", || {
        let g = Group::<Fail>::new();
        let n = 42;
        g.set_limit(42);
        let (tx, rx) = chan::bounded::<()>(0);
        let (started_tx, started_rx) = chan::bounded::<()>(n);
        for i in 0..n {
            let rx = rx.clone();
            let started = started_tx.clone();
            assert!(
                g.try_go(move || {
                    started.send(()).unwrap();
                    let _ = rx.recv();
                    Ok(())
                }),
                "try_go should succeed, got fail at {i}"
            );
        }
        for _ in 0..n {
            started_rx.recv().unwrap();
        }
        assert!(!g.try_go(|| Err(Fail("try_go should fail"))));
        drop(tx);
        drop(rx);
        g.wait().unwrap();

        let (tx, rx) = chan::bounded::<()>(0);
        g.set_limit(1);
        assert!(g.try_go(move || {
            let _ = rx.recv();
            Ok(())
        }));
        assert!(!g.try_go(|| Ok(())));
        drop(tx);
        g.wait().unwrap();
        // Free again.
        assert!(g.try_go(|| Ok(())));
        g.wait().unwrap();
    });
}

#[test]
fn go_limit() {
    support::within("go limit", || {
        const LIMIT: usize = 10;
        let g = Group::<Fail>::new().with_limit(LIMIT);
        let active = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let (active, max_seen) = (active.clone(), max_seen.clone());
            g.go(move || {
                let n = active.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(n, Ordering::SeqCst);
                if n > LIMIT {
                    return Err(Fail("too many active"));
                }
                goro::yield_now();
                active.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            });
        }
        g.wait().unwrap();
        assert!(max_seen.load(Ordering::SeqCst) <= LIMIT);
    });
}

#[test]
fn panics_surface_as_errors_and_nothing_is_lost() {
    support::within("panics", || {
        let g = Group::<Fail>::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for i in 0..20 {
            let finished = finished.clone();
            g.go(move || {
                if i == 7 {
                    panic!("member {i} panicked");
                }
                goro::yield_now();
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        let e = g.wait().unwrap_err();
        assert_eq!(e.panic_message(), Some("member 7 panicked"));
        assert_eq!(e.to_string(), "a group member panicked: member 7 panicked");
        // Every other member ran to its end before wait returned.
        assert_eq!(finished.load(Ordering::SeqCst), 19);
        assert!(g.wait().is_ok(), "the failure is reported once");
    });
}

#[test]
fn members_may_start_members_and_wait_sees_them() {
    support::within("nested go", || {
        let g = Group::<Fail>::new();
        let count = Arc::new(AtomicUsize::new(0));
        let (g2, c2) = (g.clone(), count.clone());
        g.go(move || {
            for _ in 0..10 {
                let c = c2.clone();
                g2.go(move || {
                    goro::yield_now();
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
            }
            Ok(())
        });
        g.wait().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 10);
    });
}

#[test]
fn go_blocks_a_thread_caller_at_the_limit() {
    support::within("go from a thread at the limit", || {
        let g = Group::<Fail>::new().with_limit(1);
        let (tx, rx) = chan::bounded::<()>(0);
        g.go(move || {
            let _ = rx.recv();
            Ok(())
        });
        let g2 = g.clone();
        let second = std::thread::spawn(move || g2.go(|| Ok(())));
        // The second go cannot start while the first member runs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!second.is_finished());
        assert_eq!(g.active(), 1);
        drop(tx);
        second.join().unwrap();
        g.wait().unwrap();
    });
}
