//! A message whose destructor panics must not break the channel: when the
//! last receiver drops, every blocked sender still wakes with its message
//! in `Err`, and a panicking destructor among several buffered messages
//! panics once (the rest are leaked) instead of panicking again while
//! unwinding, which would abort the process.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use goro::chan::{self, SendTimeoutError, TrySendError};
use goro::select;

/// A message whose destructor panics when armed, and counts its drops.
struct Bomb {
    armed: bool,
    drops: &'static AtomicUsize,
}

impl Bomb {
    fn armed(drops: &'static AtomicUsize) -> Bomb {
        Bomb { armed: true, drops }
    }

    fn dud(drops: &'static AtomicUsize) -> Bomb {
        Bomb {
            armed: false,
            drops,
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.armed {
            panic!("a message destructor panicked");
        }
    }
}

/// Disarms a bomb handed back by a failed send.
fn disarm(mut b: Bomb) {
    b.armed = false;
}

/// Spins until coroutine `id` is parked (so its operation is queued).
fn wait_parked(id: u64) {
    support::eventually("the coroutine to block", || support::is_parked(id));
}

/// Drops `what` and returns whether its destructor panicked.
fn drop_panics<X>(what: X) -> bool {
    catch_unwind(AssertUnwindSafe(move || drop(what))).is_err()
}

#[test]
fn blocked_senders_wake_when_a_buffered_message_panics_on_drop() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    support::within("blocked senders to wake", || {
        let (tx, rx) = chan::bounded::<Bomb>(1);
        tx.send(Bomb::armed(&DROPS)).unwrap();
        // Two senders blocked on the full channel: one without and one
        // with a timeout (which must not be needed to wake it).
        let plain = {
            let tx = tx.clone();
            goro::go!(move || match tx.send(Bomb::dud(&DROPS)) {
                Err(e) => disarm(e.into_inner()),
                Ok(()) => panic!("sent to a channel without receivers"),
            })
        };
        wait_parked(plain.id());
        let timed = {
            let tx = tx.clone();
            goro::go!(
                move || match tx.send_timeout(Bomb::dud(&DROPS), Duration::from_secs(2)) {
                    Err(SendTimeoutError::Closed(b)) => disarm(b),
                    Err(SendTimeoutError::Timeout(b)) => {
                        disarm(b);
                        panic!("woke only at its timeout")
                    }
                    Ok(()) => panic!("sent to a channel without receivers"),
                }
            )
        };
        wait_parked(timed.id());
        assert!(drop_panics(rx), "the buffered message's destructor ran");
        plain.join().expect("the plain sender got its message back");
        timed.join().expect("the timed sender got its message back");
        assert!(matches!(
            tx.try_send(Bomb::dud(&DROPS)),
            Err(TrySendError::Closed(_))
        ));
    });
}

#[test]
fn a_blocked_select_send_wakes_when_a_buffered_message_panics_on_drop() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    support::within("the select to wake", || {
        let (tx, rx) = chan::bounded::<Bomb>(1);
        tx.send(Bomb::armed(&DROPS)).unwrap();
        let (_idle_tx, idle) = chan::bounded::<u8>(0);
        let selector = {
            let tx = tx.clone();
            goro::go!(move || select! {
                send(tx, Bomb::dud(&DROPS)) -> res => match res {
                    Err(e) => disarm(e.into_inner()),
                    Ok(()) => panic!("sent to a channel without receivers"),
                },
                recv(idle) -> _ => panic!("the idle channel is never ready"),
            })
        };
        wait_parked(selector.id());
        assert!(drop_panics(rx), "the buffered message's destructor ran");
        selector
            .join()
            .expect("the select's send arm failed with Err");
    });
}

#[test]
fn panicking_buffered_messages_panic_once_and_leak_the_rest() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    support::within("dropping the receiver", || {
        let (tx, rx) = chan::bounded::<Bomb>(4);
        for _ in 0..4 {
            tx.send(Bomb::armed(&DROPS)).unwrap();
        }
        // A second panic while unwinding from the first would abort the
        // whole test binary.
        assert!(drop_panics(rx));
        assert_eq!(DROPS.load(Ordering::SeqCst), 1, "the rest are leaked");
        assert!(tx.is_closed());
        match tx.send(Bomb::dud(&DROPS)) {
            Err(e) => disarm(e.into_inner()),
            Ok(()) => panic!("sent to a channel without receivers"),
        }
    });
}

#[test]
fn panicking_messages_in_an_unbounded_channel_panic_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    support::within("dropping the receiver", || {
        let (tx, rx) = chan::unbounded::<Bomb>();
        tx.send(Bomb::dud(&DROPS)).unwrap();
        for _ in 0..100 {
            tx.send(Bomb::armed(&DROPS)).unwrap();
        }
        drop(tx);
        assert!(drop_panics(rx));
        // The harmless first message dropped, then one that panicked.
        assert_eq!(DROPS.load(Ordering::SeqCst), 2, "the rest are leaked");
    });
}

#[test]
fn a_receiver_clone_keeps_the_messages_until_the_last_one_drops() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    support::within("dropping the receivers", || {
        let (tx, rx) = chan::bounded::<Bomb>(2);
        let rx2 = rx.clone();
        tx.send(Bomb::armed(&DROPS)).unwrap();
        assert!(!drop_panics(rx), "not the last receiver");
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        assert!(drop_panics(rx2));
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    });
}
