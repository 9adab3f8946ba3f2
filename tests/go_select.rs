//! Go's `test/chan/select*.go` semantics, ported, plus the select
//! completeness of issue 15: disabled (nil) send and receive arms,
//! `select_biased!`, `Select::new_biased`, crossbeam's readiness API, and
//! the auto traits a crossbeam user relies on.
//!
//! The Go programs (BSD-style licence, The Go Authors) are the source of
//! the semantics only; the code is goro's own.

mod support;

use std::time::{Duration, Instant};

use goro::chan::{self, ReadyTimeoutError, Receiver, Select, Sender, TryReadyError};
use goro::{select, select_biased};
use support::within;

/// test/chan/select.go: a select sends on whichever of its channels is
/// enabled; disabled (nil) arms never fire, and over many rounds every
/// enabled arm is taken.
#[test]
fn select_go_counts_only_enabled_arms() {
    within("select.go", || {
        let (a_tx, a_rx) = chan::bounded::<u32>(1024);
        let (b_tx, b_rx) = chan::bounded::<u32>(1024);
        let mut counts = [0u32; 2];
        for i in 0..1000u32 {
            // Arm b is a nil channel on odd rounds.
            let b = (i % 2 == 0).then_some(&b_tx);
            select! {
                send(a_tx, i) -> r => { r.unwrap(); counts[0] += 1; }
                send(b, i) -> r => { r.unwrap(); counts[1] += 1; }
            }
            if a_tx.is_full() {
                while a_rx.try_recv().is_ok() {}
            }
            if b_tx.is_full() {
                while b_rx.try_recv().is_ok() {}
            }
        }
        assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
        assert!(counts[1] <= 500, "a disabled arm fired: {counts:?}");
    });
}

/// test/chan/select3.go: a select whose every arm is a nil channel
/// blocks (never proceeds); one with a closed channel never blocks.
#[test]
fn select3_nil_blocks_closed_never_blocks() {
    within("select3.go", || {
        let none_rx: Option<&Receiver<u8>> = None;
        let none_tx: Option<&Sender<u8>> = None;
        let r = select! {
            recv(none_rx) -> _ => "recv",
            send(none_tx, 1) -> _ => "send",
            default(Duration::from_millis(10)) => "blocked",
        };
        assert_eq!(r, "blocked");
        let r = select! {
            send(none_tx, 1) -> _ => "send",
            default => "blocked",
        };
        assert_eq!(r, "blocked");
        // Closed channels: recv and send are both ready, at once.
        let (tx, rx) = chan::bounded::<u8>(0);
        tx.close();
        let r = select! {
            recv(rx) -> v => v.is_err(),
            recv(none_rx) -> _ => false,
        };
        assert!(r);
        let r = select! {
            send(tx, 1) -> res => res.is_err(),
            send(none_tx, 1) -> _ => false,
        };
        assert!(r);
    });
}

/// test/chan/select4.go: a nil-channel case is never chosen even when
/// the other is slow to become ready.
#[test]
fn select4_nil_case_never_chosen() {
    within("select4.go", || {
        let (tx, rx) = chan::bounded::<u32>(1);
        let h = goro::go!(move || {
            goro::sleep(Duration::from_millis(2));
            tx.send(42).unwrap();
        });
        let off: Option<&Receiver<u32>> = None;
        let v = select! {
            recv(off) -> _ => panic!("a nil channel fired"),
            recv(rx) -> v => v.unwrap(),
        };
        assert_eq!(v, 42);
        h.join().unwrap();
    });
}

/// test/chan/select6.go: a receiver selecting on a channel that closes
/// while it waits gets the close, and a pending sender elsewhere is not
/// disturbed.
#[test]
fn select6_close_while_waiting() {
    within("select6.go", || {
        let (c1_tx, c1) = chan::bounded::<bool>(0);
        let (c2_tx, c2) = chan::bounded::<bool>(0);
        let (c3_tx, c3) = chan::bounded::<bool>(0);
        let h = goro::go!(move || {
            let _ = c1.recv();
        });
        let s = goro::go!(move || {
            select! {
                recv(None::<&Receiver<bool>>) -> _ => panic!("a nil channel fired"),
                recv(c2) -> v => { assert!(v.is_err()); }
            }
            c3_tx.send(true).unwrap();
        });
        goro::sleep(Duration::from_millis(1));
        drop(c2_tx);
        assert_eq!(c3.recv(), Ok(true));
        s.join().unwrap();
        drop(c1_tx);
        h.join().unwrap();
    });
}

/// test/chan/select7.go: receives in select with one ready channel in
/// several shapes (lone arm, with default, among others) all get it.
#[test]
fn select7_receive_shapes() {
    within("select7.go", || {
        let (tx, rx) = chan::bounded::<i32>(1);
        let (_otx, other) = chan::bounded::<i32>(0);
        tx.send(1).unwrap();
        assert_eq!(select! { recv(rx) -> v => v.unwrap() }, 1);
        tx.send(2).unwrap();
        assert_eq!(select! { recv(rx) -> v => v.unwrap(), default => 0 }, 2);
        tx.send(3).unwrap();
        assert_eq!(
            select! { recv(other) -> _ => 0, recv(rx) -> v => v.unwrap() },
            3
        );
        tx.send(4).unwrap();
        assert_eq!(
            select! { recv(other) -> _ => 0, recv(rx) -> v => v.unwrap(), default => -1 },
            4
        );
    });
}

/// A disabled send arm never evaluates its message (crossbeam's lazy
/// messages), and an owned `Option<Sender>` works too.
#[test]
fn disabled_send_arm_is_never_evaluated() {
    within("lazy disabled send", || {
        let off: Option<Sender<String>> = None;
        let (tx, rx) = chan::bounded::<String>(1);
        let r = select! {
            send(off, unreachable_message()) -> _ => 0,
            send(Some(tx.clone()), "x".to_string()) -> r => { r.unwrap(); 1 }
        };
        assert_eq!(r, 1);
        assert_eq!(rx.recv().unwrap(), "x");
    });
}

fn unreachable_message() -> String {
    panic!("evaluated a disabled arm's message")
}

/// `select_biased!` always takes the first ready arm.
#[test]
fn select_biased_prefers_the_first_ready_arm() {
    within("select_biased", || {
        let (a_tx, a) = chan::bounded::<u32>(1000);
        let (b_tx, b) = chan::bounded::<u32>(1000);
        for i in 0..1000 {
            a_tx.send(i).unwrap();
            b_tx.send(i).unwrap();
        }
        for _ in 0..1000 {
            let first = select_biased! {
                recv(a) -> _ => true,
                recv(b) -> _ => false,
            };
            assert!(first);
        }
        // Once the first is empty, the second is taken.
        assert!(!select_biased! { recv(a) -> _ => true, recv(b) -> _ => false });
        // A blocking biased select still completes when a later arm is
        // the one that becomes ready.
        let (c_tx, c) = chan::bounded::<u32>(0);
        let h = goro::go!(move || c_tx.send(7).unwrap());
        let (_d_tx, d) = chan::bounded::<u32>(0);
        let v = select_biased! {
            recv(d) -> _ => 0,
            recv(c) -> v => v.unwrap(),
        };
        assert_eq!(v, 7);
        h.join().unwrap();
    });
}

#[test]
fn new_biased_prefers_the_first_added() {
    within("Select::new_biased", || {
        let (a_tx, a) = chan::bounded::<u32>(10);
        let (b_tx, b) = chan::bounded::<u32>(10);
        for i in 0..10 {
            a_tx.send(i).unwrap();
            b_tx.send(i).unwrap();
        }
        for _ in 0..10 {
            let mut sel = Select::new_biased();
            let ia = sel.recv(&a);
            sel.recv(&b);
            let op = sel.select();
            assert_eq!(op.index(), ia);
            op.recv(&a).unwrap();
        }
        // And readiness, biased, reports the first ready.
        let mut sel = Select::new_biased();
        sel.recv(&a);
        let ib = sel.recv(&b);
        assert_eq!(sel.ready(), ib);
    });
}

/// crossbeam's readiness API: `ready` waits for a chance without taking
/// it; the caller then tries the operation.
#[test]
fn readiness_api() {
    within("ready", || {
        let (tx, rx) = chan::bounded::<u32>(0);
        let mut sel = Select::new();
        let i = sel.recv(&rx);
        assert_eq!(sel.try_ready(), Err(TryReadyError));
        assert_eq!(
            sel.ready_timeout(Duration::from_millis(5)),
            Err(ReadyTimeoutError)
        );
        assert_eq!(
            sel.ready_deadline(Instant::now() + Duration::from_millis(2)),
            Err(ReadyTimeoutError)
        );
        // A sender blocked in a coroutine makes the receive ready.
        let h = goro::go!(move || {
            tx.send(5).unwrap();
            tx
        });
        assert_eq!(sel.ready(), i);
        assert_eq!(rx.recv(), Ok(5));
        let tx = h.join().unwrap();
        // Send readiness: a receiver waiting on the other side.
        {
            let mut sel = Select::new();
            let j = sel.send(&tx);
            assert_eq!(sel.try_ready(), Err(TryReadyError));
            let rx2 = rx.clone();
            let r = std::thread::spawn(move || rx2.recv());
            assert_eq!(sel.ready(), j);
            // The chance may be taken by someone else; here nobody competes.
            support::eventually("the send to go through", || tx.try_send(9).is_ok());
            assert_eq!(r.join().unwrap(), Ok(9));
        }
        // Timers and closed channels are ready; nothing was consumed.
        let t = chan::after(Duration::from_millis(1));
        let mut sel = Select::new();
        let k = sel.recv(&t);
        assert_eq!(sel.ready(), k);
        assert!(t.try_recv().is_ok());
        drop(tx);
        let mut sel = Select::new();
        sel.recv(&rx);
        assert_eq!(sel.ready(), 0);
    });
}

/// `ready` is woken by a stoppable timer's reset.
#[test]
fn ready_sees_a_timer_reset() {
    within("ready and Timer::reset", || {
        let t = std::sync::Arc::new(chan::Timer::new(Duration::from_secs(3600)));
        let t2 = t.clone();
        let h = goro::go!(move || {
            let mut sel = Select::new();
            sel.recv(t2.receiver());
            sel.ready()
        });
        goro::sleep(Duration::from_millis(2));
        t.reset(Duration::from_millis(1));
        assert_eq!(h.join().unwrap(), 0);
    });
}

#[test]
fn auto_traits_match_crossbeam() {
    fn send_sync<X: Send + Sync>(_: &X) {}
    fn unwind<X: std::panic::UnwindSafe + std::panic::RefUnwindSafe>(_: &X) {}
    let (tx, rx) = chan::bounded::<std::cell::Cell<u8>>(1);
    unwind(&tx);
    unwind(&rx);
    let mut sel = Select::new();
    sel.recv(&rx);
    sel.send(&tx);
    send_sync(&sel);
    // A Select can be moved to another thread and used there.
    let (tx2, rx2) = chan::bounded::<u8>(1);
    tx2.send(1).unwrap();
    let rx2 = &rx2;
    std::thread::scope(|s| {
        let mut sel = Select::new();
        sel.recv(rx2);
        s.spawn(move || {
            let op = sel.select();
            assert_eq!(op.recv(rx2), Ok(1));
        });
    });
    // catch_unwind accepts closures holding channel handles.
    let r = std::panic::catch_unwind(|| tx2.send(2));
    assert!(r.unwrap().is_ok());
}
