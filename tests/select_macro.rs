//! The `select!` grammar (crossbeam-channel's, exactly), used through the
//! `goro` facade only: arm bodies as blocks or comma-terminated
//! expressions, result patterns, the macro as an expression, borrowing in
//! loops, control flow out of arms, and the single-arm shortcuts.

mod support;

use std::time::Duration;

use goro::chan::{self, Receiver, RecvError, SendError};

#[test]
fn bodies_blocks_and_expressions() {
    support::within("bodies blocks and expressions", || {
        let (tx, rx) = chan::bounded::<i32>(4);
        tx.send(1).unwrap();
        // Block bodies need no comma; expression bodies do, except the last.
        let first = goro::select! {
            recv(rx) -> r => { r.unwrap() }
            send(tx, 2) -> _ => 20,
            default => 0
        };
        assert!(first == 1 || first == 20);
        // Empty after a receive (only the send is ready); holding 1 and 2
        // after a send (both are).
        let v = goro::select! {
            recv(rx) -> r => r.unwrap_or(-1),
            send(tx, 3) -> _ => { 30 },
            default(Duration::from_millis(1)) => { -2 },
        };
        if first == 1 {
            assert_eq!(v, 30);
        } else {
            assert!(v == 1 || v == 30, "{v}");
        }
        // Trailing commas inside the argument lists.
        goro::select! {
            recv(rx,) -> _ => (),
            send(tx, 4,) -> _ => (),
            default(Duration::from_millis(1),) => (),
        }
    });
}

#[test]
fn result_patterns() {
    support::within("result patterns", || {
        let (tx, rx) = chan::bounded::<(u8, u8)>(1);
        tx.send((1, 2)).unwrap();
        let (_idle_tx, idle) = chan::bounded::<(u8, u8)>(0);
        goro::select! {
            recv(rx) -> mut r => {
                r = r.map(|(a, b)| (b, a));
                assert_eq!(r, Ok((2, 1)));
            }
            recv(idle) -> _ => unreachable!(),
        }
        goro::select! {
            send(tx, (3, 4)) -> res => assert_eq!(res, Ok(())),
            recv(idle) -> _unused => unreachable!(),
        }
        drop(rx);
        let r: Result<(), SendError<(u8, u8)>> = goro::select! {
            send(tx, (5, 6)) -> res => res,
            recv(idle) -> _ => unreachable!(),
        };
        assert_eq!(r, Err(SendError((5, 6))));
    });
}

#[test]
fn the_macro_is_an_expression() {
    support::within("the macro is an expression", || {
        let (tx, rx) = chan::bounded::<String>(1);
        tx.send("hi".into()).unwrap();
        let (_t, other) = chan::bounded::<u64>(0);
        let len = goro::select! {
            recv(rx) -> s => s.unwrap().len(),
            recv(other) -> n => n.unwrap() as usize,
        } + 1;
        assert_eq!(len, 3);
        fn pick(rx: &Receiver<u8>) -> Option<u8> {
            goro::select! {
                recv(rx) -> v => v.ok(),
                default => None,
            }
        }
        let (tx, rx) = chan::bounded::<u8>(1);
        assert_eq!(pick(&rx), None);
        tx.send(9).unwrap();
        assert_eq!(pick(&rx), Some(9));
    });
}

#[test]
fn channel_expressions_and_borrowing_in_a_loop() {
    support::within("channel expressions and borrowing in a loop", || {
        let (tx, rx) = chan::bounded::<u32>(10);
        let rxs = [rx.clone(), rx.clone()];
        let (_txn, rxn) = chan::bounded::<u32>(0);
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        let mut got = 0;
        let mut use_first = true;
        // Owned value, reference, indexing, and an `if` choosing a reference:
        // each is only borrowed, so the loop can run again.
        while got < 10 {
            goro::select! {
                recv(rx) -> _ => got += 1,
                recv(&rx) -> _ => got += 1,
                recv(rxs[1]) -> _ => got += 1,
                recv(if use_first { &rxs[0] } else { &rxn }) -> _ => {
                    got += 1;
                    use_first = !use_first;
                }
            }
        }
        assert_eq!(got, 10);
        // The senders are borrowed too.
        let txs = [tx.clone(), tx];
        for _ in 0..3 {
            goro::select! {
                send(txs[0], 1) -> r => r.unwrap(),
                send(&txs[1], 2) -> r => r.unwrap(),
            }
        }
        assert_eq!(rx.len(), 3);
    });
}

#[test]
fn arm_bodies_may_reassign_the_channel_variables() {
    support::within("arm bodies may reassign the channel variables", || {
        // Go's idiom: set a channel to nil once it is closed.
        let (a_tx, mut a) = chan::bounded::<u8>(1);
        let (b_tx, mut b) = chan::bounded::<u8>(1);
        a_tx.send(1).unwrap();
        b_tx.send(2).unwrap();
        drop((a_tx, b_tx));
        let mut sum = 0;
        let mut closed = 0;
        while closed < 2 {
            goro::select! {
                recv(a) -> v => match v {
                    Ok(v) => sum += v,
                    Err(_) => { a = chan::never(); closed += 1 }
                },
                recv(b) -> v => match v {
                    Ok(v) => sum += v,
                    Err(RecvError) => { b = chan::never(); closed += 1 }
                },
            }
        }
        assert_eq!(sum, 3);
    });
}

#[test]
fn control_flow_leaves_the_select() {
    support::within("control flow leaves the select", || {
        let (tx, rx) = chan::bounded::<u8>(8);
        for i in 0..8 {
            tx.send(i).unwrap();
        }
        let (_idle_tx, idle) = chan::bounded::<u8>(0);
        let mut seen = Vec::new();
        'outer: loop {
            goro::select! {
                recv(rx) -> v => {
                    let v = v.unwrap();
                    if v.is_multiple_of(2) {
                        continue 'outer;
                    }
                    seen.push(v);
                    if v == 7 {
                        break 'outer;
                    }
                }
                recv(idle) -> _ => unreachable!(),
            }
        }
        assert_eq!(seen, [1, 3, 5, 7]);
        fn first_even(rx: &Receiver<u8>) -> Result<u8, RecvError> {
            loop {
                let v = goro::select! {
                    recv(rx) -> v => v?,
                    default(Duration::from_secs(5)) => return Err(RecvError),
                };
                if v.is_multiple_of(2) {
                    return Ok(v);
                }
            }
        }
        let (tx, rx) = chan::unbounded();
        tx.send(1).unwrap();
        tx.send(4).unwrap();
        assert_eq!(first_even(&rx), Ok(4));
        drop(tx);
        assert_eq!(first_even(&rx), Err(RecvError));
    });
}

#[test]
fn single_arm_shortcuts() {
    support::within("single arm shortcuts", || {
        let (tx, rx) = chan::bounded::<u8>(1);
        tx.send(1).unwrap();
        assert_eq!(goro::select! { recv(rx) -> v => v }, Ok(1));
        assert_eq!(
            goro::select! { recv(rx) -> v => v, default => Err(RecvError) },
            Err(RecvError)
        );
        tx.send(2).unwrap();
        assert_eq!(
            goro::select! { recv(rx) -> v => v, default => Err(RecvError) },
            Ok(2)
        );
        let r = goro::select! {
            recv(rx) -> v => v.map(Some),
            default(Duration::from_millis(2)) => Ok(None),
        };
        assert_eq!(r, Ok(None));
        drop(tx);
        assert_eq!(
            goro::select! { recv(rx) -> v => v, default => Ok(0) },
            Err(RecvError)
        );
        let (tx, rx) = chan::bounded::<u8>(1);
        assert_eq!(goro::select! { send(tx, 5) -> r => r }, Ok(()));
        assert!(!goro::select! { send(tx, 6) -> r => r.is_ok(), default => false });
        assert_eq!(rx.recv(), Ok(5));
    });
}

#[test]
fn thirty_two_arms() {
    support::within("thirty two arms", || {
        let chans: Vec<_> = (0..32).map(|_| chan::bounded::<usize>(1)).collect();
        chans[31].0.send(31).unwrap();
        let r = |i: usize| &chans[i].1;
        let v = goro::select! {
            recv(r(0)) -> v => v, recv(r(1)) -> v => v, recv(r(2)) -> v => v, recv(r(3)) -> v => v,
            recv(r(4)) -> v => v, recv(r(5)) -> v => v, recv(r(6)) -> v => v, recv(r(7)) -> v => v,
            recv(r(8)) -> v => v, recv(r(9)) -> v => v, recv(r(10)) -> v => v, recv(r(11)) -> v => v,
            recv(r(12)) -> v => v, recv(r(13)) -> v => v, recv(r(14)) -> v => v, recv(r(15)) -> v => v,
            recv(r(16)) -> v => v, recv(r(17)) -> v => v, recv(r(18)) -> v => v, recv(r(19)) -> v => v,
            recv(r(20)) -> v => v, recv(r(21)) -> v => v, recv(r(22)) -> v => v, recv(r(23)) -> v => v,
            recv(r(24)) -> v => v, recv(r(25)) -> v => v, recv(r(26)) -> v => v, recv(r(27)) -> v => v,
            recv(r(28)) -> v => v, recv(r(29)) -> v => v, recv(r(30)) -> v => v, recv(r(31)) -> v => v,
        };
        assert_eq!(v, Ok(31));
    });
}

#[test]
fn channel_expressions_are_evaluated_once_in_order() {
    support::within("channel expressions are evaluated once in order", || {
        let order = std::cell::RefCell::new(Vec::new());
        let (tx, rx) = chan::bounded::<u8>(1);
        let (_t2, rx2) = chan::bounded::<u8>(0);
        tx.send(0).unwrap();
        fn pick<T>(order: &std::cell::RefCell<Vec<u8>>, i: u8, r: T) -> T {
            order.borrow_mut().push(i);
            r
        }
        goro::select! {
            recv(pick(&order, 0, &rx2)) -> _ => unreachable!(),
            recv(pick(&order, 1, &rx)) -> v => assert_eq!(v, Ok(0)),
            send(pick(&order, 2, &tx), 1) -> _ => {}
        }
        // The send arm may also have won if chosen first; either way the
        // channel expressions ran once each, in order.
        assert_eq!(*order.borrow(), [0, 1, 2]);
    });
}

#[test]
fn temporary_channels_live_for_the_whole_select() {
    support::within("temporary channels live for the whole select", || {
        let (_tx, idle) = chan::bounded::<u8>(0);
        let fired = goro::select! {
            recv(idle) -> _ => false,
            recv(chan::after(Duration::from_millis(1))) -> t => t.is_ok(),
        };
        assert!(fired);
        let v = goro::select! {
            recv(chan::never::<u8>()) -> _ => 0,
            recv(chan::at(std::time::Instant::now())) -> _ => 1,
        };
        assert_eq!(v, 1);
    });
}

#[test]
fn the_chan_module_reexports_the_macro() {
    support::within("the chan module reexports the macro", || {
        let (tx, rx) = chan::bounded::<u8>(1);
        tx.send(1).unwrap();
        let v = goro::chan::select! {
            recv(rx) -> v => v.unwrap(),
            default => 0,
        };
        assert_eq!(v, 1);
    });
}

#[test]
fn select_inside_coroutines_and_threads() {
    support::within("select inside coroutines and threads", || {
        let (tx, rx) = chan::bounded::<u8>(0);
        let (tx2, rx2) = chan::bounded::<u8>(0);
        let h = goro::go!(move || {
            goro::select! {
                recv(rx) -> v => v.unwrap(),
                recv(rx2) -> v => v.unwrap() + 100,
            }
        });
        let t = std::thread::spawn(move || {
            goro::select! {
                send(tx2, 1) -> r => r.is_ok(),
                default(Duration::from_secs(10)) => false,
            }
        });
        assert!(t.join().unwrap());
        assert_eq!(h.join().unwrap(), 101);
        drop(tx);
    });
}
