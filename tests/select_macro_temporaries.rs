//! Temporaries in `select!`'s channel expressions live for the whole
//! `select!`, as with crossbeam's macro: `recv(r.unwrap_or(&never()))`
//! compiles (it would not if each expression were bound by its own `let`,
//! error E0716), and such a select still chooses correctly, in every
//! expansion of the macro (one arm, one arm with `default` or
//! `default(d)`, several arms, send arms), in a loop that borrows the
//! channels, and as an expression whose value is the chosen arm's.

mod support;

use std::time::Duration;

use goro::chan::{self, Receiver, RecvError, Sender};
use goro::select;

/// An optional receiver, as a struct field often holds one.
fn maybe(r: &Receiver<u32>, on: bool) -> Option<&Receiver<u32>> {
    on.then_some(r)
}

/// An optional sender.
fn maybe_send(s: &Sender<u32>, on: bool) -> Option<&Sender<u32>> {
    on.then_some(s)
}

#[test]
fn a_lone_recv_arm_keeps_its_temporaries() {
    support::within("lone recv arms", || {
        let (tx, rx) = chan::bounded::<u32>(1);
        tx.send(1).unwrap();
        let r = maybe(&rx, true);
        let v = select! {
            recv(r.unwrap_or(&chan::never())) -> v => v,
        };
        assert_eq!(v, Ok(1));

        let off = maybe(&rx, false);
        let v = select! {
            recv(off.unwrap_or(&chan::never())) -> _ => "chosen",
            default => "default",
        };
        assert_eq!(v, "default");
        let v = select! {
            recv(off.unwrap_or(&chan::never())) -> _ => "chosen",
            default(Duration::from_millis(1)) => "timeout",
        };
        assert_eq!(v, "timeout");

        tx.send(2).unwrap();
        let v = select! {
            recv(r.unwrap_or(&chan::never())) -> v => v,
            default => Err(RecvError),
        };
        assert_eq!(v, Ok(2));
        tx.send(3).unwrap();
        let v = select! {
            recv(r.unwrap_or(&chan::never())) -> v => v,
            default(Duration::from_secs(5)) => Err(RecvError),
        };
        assert_eq!(v, Ok(3));
    });
}

#[test]
fn several_arms_keep_their_temporaries() {
    support::within("several arms", || {
        let (tx1, rx1) = chan::bounded::<u32>(1);
        let (_tx2, rx2) = chan::bounded::<u32>(1);
        let on = maybe(&rx1, true);
        let off = maybe(&rx2, false);
        tx1.send(7).unwrap();
        // The value of the macro is the chosen arm's.
        let got = select! {
            recv(off.unwrap_or(&chan::never())) -> _ => unreachable!("a never arm"),
            recv(on.unwrap_or(&chan::never())) -> v => v.map(|v| v * 10),
        };
        assert_eq!(got, Ok(70));

        let got = select! {
            recv(off.unwrap_or(&chan::never())) -> _ => 1,
            recv(on.unwrap_or(&chan::never())) -> _ => 2,
            default => 3,
        };
        assert_eq!(got, 3);
        let got = select! {
            recv(off.unwrap_or(&chan::never())) -> _ => 1,
            recv(on.unwrap_or(&chan::never())) -> _ => 2,
            default(Duration::from_millis(1)) => 3,
        };
        assert_eq!(got, 3);
    });
}

#[test]
fn send_arms_keep_their_temporaries() {
    support::within("send arms", || {
        let (tx, rx) = chan::bounded::<u32>(1);
        let target = maybe_send(&tx, true);
        let none = maybe_send(&tx, false);
        let no_rx = maybe(&rx, false);
        // The fallback is a sender of a fresh channel, a temporary.
        let got = select! {
            send(target.unwrap_or(&chan::bounded(1).0), 5) -> r => r.map(|()| "sent"),
            recv(no_rx.unwrap_or(&chan::never())) -> _ => unreachable!(),
        };
        assert_eq!(got, Ok("sent"));
        assert_eq!(rx.try_recv(), Ok(5));

        // The whole temporary pair, receiver included, lives as long as the
        // select: the channel is open and nobody receives, so the default
        // runs (were the receiver dropped already, the arm would be ready
        // with `Err`).
        let got = select! {
            send(none.unwrap_or(&chan::bounded::<u32>(0).0), 6) -> r => match r {
                Ok(()) => "sent",
                Err(_) => "closed",
            },
            default => "default",
        };
        assert_eq!(got, "default");
    });
}

#[test]
fn temporaries_in_a_loop_that_borrows_the_channels() {
    support::within("the loop", || {
        let (tx1, rx1) = chan::bounded::<u32>(4);
        let (tx2, rx2) = chan::bounded::<u32>(4);
        for i in 0..4 {
            tx1.send(i).unwrap();
            tx2.send(100 + i).unwrap();
        }
        drop((tx1, tx2));
        let mut a = Some(rx1);
        let mut b = Some(rx2);
        let mut got = Vec::new();
        while a.is_some() || b.is_some() {
            select! {
                recv(a.as_ref().unwrap_or(&chan::never())) -> v => match v {
                    Ok(v) => got.push(v),
                    // Arm bodies may reassign what the expressions borrowed.
                    Err(_) => a = None,
                },
                recv(b.as_ref().unwrap_or(&chan::never())) -> v => match v {
                    Ok(v) => got.push(v),
                    Err(_) => b = None,
                },
                default(support::PATIENCE) => panic!("closed channels are ready"),
            }
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 100, 101, 102, 103]);
    });
}

#[test]
fn a_temporary_channel_is_alive_while_a_peer_uses_it() {
    support::within("the rendezvous", || {
        // The arm's channel exists only as a temporary of the select!: a
        // coroutine it is handed to (through a clone) meets the select on
        // it, so it must live until the select is done.
        let (hand_tx, hand_rx) = chan::bounded::<Sender<u32>>(1);
        let peer = goro::go!(move || {
            let tx = hand_rx.recv().unwrap();
            tx.send(42).unwrap();
        });
        let got = select! {
            recv({
                let (tx, rx) = chan::bounded::<u32>(0);
                hand_tx.send(tx).unwrap();
                rx
            }) -> v => v,
            default(support::PATIENCE) => Err(RecvError),
        };
        assert_eq!(got, Ok(42));
        peer.join().unwrap();
    });
}
