//! Model checks of the channel protocols (run with `.ci/loom`): the
//! decision word a counterpart must win to complete a blocked operation or
//! a select (`waiter.rs` invariant 1), the packet's final status and the
//! deferred send's hand-off (invariants 3 and 5), driven through the real
//! channels and `select!`.
//!
//! Messages are loom cells written by the sender and read by the
//! receiver, so loom reports a causality violation unless the hand-off
//! orders the write before the read (Release on the final status, Acquire
//! on its observation). A lost wake-up leaves a thread parked for good,
//! which loom reports as a deadlock; two winners of one decision would
//! deliver a message twice or lose one, which the assertions catch.

use loom::cell::UnsafeCell;

use crate::{RecvError, bounded};

/// A message whose reads loom checks against its write.
struct Msg(UnsafeCell<u32>);

impl Msg {
    fn new(v: u32) -> Msg {
        let m = Msg(UnsafeCell::new(0));
        // SAFETY: nobody else has the message yet.
        m.0.with_mut(|p| unsafe { *p = v });
        m
    }

    fn get(&self) -> u32 {
        // SAFETY: loom checks that this read happens after the write.
        self.0.with(|p| unsafe { *p })
    }
}

/// `select!`'s random order comes from a thread-local generator: seed it
/// at the start of every run so that runs replay alike.
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model(move || {
        fastrand::seed(0x5eed);
        f();
    });
}

/// A rendezvous: the receiver waits for the sender or the sender for the
/// receiver; either way the message arrives whole and both return.
#[test]
fn rendezvous_hands_the_message_over() {
    model(|| {
        let (tx, rx) = bounded::<Msg>(0);
        let t = loom::thread::spawn(move || tx.send(Msg::new(42)).is_ok());
        assert_eq!(rx.recv().map(|m| m.get()).ok(), Some(42));
        assert!(t.join().unwrap());
    });
}

/// Two senders race to claim one select blocked on both channels: exactly
/// one wins the decision and completes the select; the other's message
/// stays for the plain receive that follows.
#[test]
fn one_claimer_wins_a_select() {
    model(|| {
        let (tx1, rx1) = bounded::<Msg>(0);
        let (tx2, rx2) = bounded::<Msg>(0);
        let a = loom::thread::spawn(move || tx1.send(Msg::new(1)).is_ok());
        let b = loom::thread::spawn(move || tx2.send(Msg::new(2)).is_ok());
        let first = crate::select! {
            recv(rx1) -> m => m.map(|m| m.get()),
            recv(rx2) -> m => m.map(|m| m.get()),
        };
        let first = first.expect("both channels are open");
        let other = if first == 1 { &rx2 } else { &rx1 };
        let second = other.recv().map(|m| m.get());
        assert_eq!(first + second.expect("the loser's message stays"), 3);
        assert!(a.join().unwrap() && b.join().unwrap());
    });
}

/// A select's send case is chosen by a blocked receiver, which waits for
/// the message the case then produces (the deferred hand-off).
#[test]
fn select_send_case_hands_the_message_over() {
    model(|| {
        let (tx, rx) = bounded::<Msg>(0);
        let (_idle_tx, idle_rx) = bounded::<Msg>(0);
        let t = loom::thread::spawn(move || rx.recv().map(|m| m.get()));
        let sent = crate::select! {
            send(tx, Msg::new(7)) -> r => r.is_ok(),
            recv(idle_rx) -> _ => false,
        };
        assert!(sent);
        assert_eq!(t.join().unwrap(), Ok(7));
    });
}

/// Closing wakes a blocked receiver with the close.
#[test]
fn close_wakes_a_blocked_receiver() {
    model(|| {
        let (tx, rx) = bounded::<u32>(0);
        let t = loom::thread::spawn(move || drop(tx));
        assert_eq!(rx.recv(), Err(RecvError));
        t.join().unwrap();
    });
}
