//! `JoinSet`: results in completion order, panics as `Err`, detaching on
//! drop, reuse after `detach_all`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use goro::JoinSet;
use goro::chan;

#[test]
fn results_come_in_completion_order() {
    support::within("completion order", || {
        // Members finish in an order the test controls: member i waits for
        // gate i, and the gates open in reverse.
        let mut set = JoinSet::new();
        let mut gates = Vec::new();
        for i in 0..5u32 {
            let (tx, rx) = chan::bounded::<()>(0);
            gates.push(tx);
            set.spawn(move || {
                let _ = rx.recv();
                i
            });
        }
        assert_eq!(set.len(), 5);
        assert!(set.try_join_next().is_none());
        let mut order = Vec::new();
        while let Some(tx) = gates.pop() {
            drop(tx);
            order.push(set.join_next().unwrap().unwrap());
        }
        assert_eq!(order, [4, 3, 2, 1, 0]);
        assert!(set.is_empty());
        assert!(set.join_next().is_none());
    });
}

#[test]
fn panics_are_errors_and_the_rest_still_arrive() {
    support::within("panics in a join set", || {
        let mut set = JoinSet::new();
        for i in 0..10 {
            set.spawn(move || {
                if i == 3 {
                    panic!("member 3");
                }
                i
            });
        }
        let (mut ok, mut err) = (0, 0);
        while let Some(r) = set.join_next() {
            match r {
                Ok(_) => ok += 1,
                Err(p) => {
                    assert_eq!(p.downcast_ref::<&str>(), Some(&"member 3"));
                    err += 1;
                }
            }
        }
        assert_eq!((ok, err), (9, 1));
    });
}

#[test]
fn drop_and_detach_leave_members_running() {
    support::within("detach", || {
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = chan::bounded::<()>(0);
        let mut set = JoinSet::new();
        for _ in 0..4 {
            let (ran, rx) = (ran.clone(), rx.clone());
            set.spawn(move || {
                let _ = rx.recv();
                ran.fetch_add(1, Ordering::SeqCst);
            });
        }
        set.detach_all();
        assert!(set.is_empty());
        // Reusable after detaching.
        set.spawn(|| ());
        assert_eq!(set.len(), 1);
        assert!(set.join_next().unwrap().is_ok());
        drop(set);
        drop(tx); // the detached members finish now
        drop(rx);
        support::eventually("detached members finished", || {
            ran.load(Ordering::SeqCst) == 4
        });
    });
}

#[test]
fn join_next_timeout_and_join_all() {
    support::within("timeout and join_all", || {
        let mut set = JoinSet::new();
        let (tx, rx) = chan::bounded::<()>(0);
        set.spawn(move || {
            let _ = rx.recv();
            1
        });
        assert!(set.join_next_timeout(Duration::from_millis(5)).is_err());
        assert_eq!(set.len(), 1);
        drop(tx);
        set.spawn(|| 2);
        let mut all = set.join_all();
        all.sort();
        assert_eq!(all, [1, 2]);
    });
}
