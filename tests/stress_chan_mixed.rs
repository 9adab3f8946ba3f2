//! Stress: coroutines and plain threads sending and receiving on channels
//! of capacity 0, 1 and 16 with every kind of operation at once (`send`,
//! `send_timeout`, `try_send`, `select!` with `default` and with
//! `default(d)`, `Select::select_timeout`; `recv`, `recv_timeout`,
//! `try_recv`, the same selects on the receiving side) while a closer
//! closes the channels, early at a random moment or after the senders are
//! done.
//!
//! Every message carries a unique id, and a ledger checks at the end that
//! none is lost and none duplicated: a message a sender saw accepted was
//! received exactly once (before or after the close: receivers drain),
//! and a message a sender got back in an `Err` (timeout, full, closed, a
//! select that gave up) carried the id it was sent with and was never
//! received.
//!
//! Bounded for the default `cargo test`; `GORO_STRESS_SCALE=10` runs ten
//! times the rounds. The random choices come from a seed printed at the
//! start (`GORO_STRESS_SEED=<seed>` replays them; the interleaving is the
//! scheduler's).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use goro::chan::{
    self, Receiver, RecvTimeoutError, Select, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Coroutine,
    Thread,
}

type Join<T> = Box<dyn FnOnce() -> T + Send>;

fn run_on<T: Send + 'static>(side: Side, f: impl FnOnce() -> T + Send + 'static) -> Join<T> {
    match side {
        Side::Coroutine => {
            let h = goro::go!(f);
            Box::new(move || h.join().expect("coroutine panicked"))
        }
        Side::Thread => {
            let h = std::thread::spawn(f);
            Box::new(move || h.join().expect("thread panicked"))
        }
    }
}

/// What the sender of a message learnt.
const SENT: u8 = 1;
const RETURNED: u8 = 2;

/// One round's accounting: indexed by message id.
struct Ledger {
    /// `SENT` or `RETURNED`, set once by the message's sender.
    outcome: Vec<AtomicU8>,
    /// Times the message was received.
    received: Vec<AtomicU8>,
    /// Operation counts, for the report.
    ops: [AtomicU64; OPS],
}

const OPS: usize = 8;
const OP_NAMES: [&str; OPS] = [
    "accepted",
    "returned: timeout",
    "returned: full",
    "returned: closed",
    "returned: select gave up",
    "received",
    "receive timed out or empty",
    "drained after close",
];

impl Ledger {
    fn new(ids: usize) -> Ledger {
        Ledger {
            outcome: (0..ids).map(|_| AtomicU8::new(0)).collect(),
            received: (0..ids).map(|_| AtomicU8::new(0)).collect(),
            ops: [const { AtomicU64::new(0) }; OPS],
        }
    }

    fn count(&self, op: usize) {
        self.ops[op].fetch_add(1, Ordering::Relaxed);
    }

    fn sent(&self, id: u64) {
        let prev = self.outcome[id as usize].swap(SENT, Ordering::SeqCst);
        assert_eq!(prev, 0, "message {id}: sender outcome set twice");
        self.count(0);
    }

    /// The sender got `back` in an `Err` while sending `id`.
    fn returned(&self, id: u64, back: u64, why: usize) {
        assert_eq!(back, id, "sent {id}, got {back} back in the error");
        let prev = self.outcome[id as usize].swap(RETURNED, Ordering::SeqCst);
        assert_eq!(prev, 0, "message {id}: sender outcome set twice");
        self.count(why);
    }

    fn got(&self, id: u64, op: usize) {
        assert!(
            (id as usize) < self.received.len(),
            "received a bogus id {id}"
        );
        self.received[id as usize].fetch_add(1, Ordering::SeqCst);
        self.count(op);
    }

    /// (lost, duplicated, returned-and-received) ids.
    fn check(&self) -> Result<(), String> {
        let mut lost = Vec::new();
        let mut dup = Vec::new();
        let mut ghost = Vec::new();
        let mut unsent = Vec::new();
        for id in 0..self.outcome.len() {
            let got = self.received[id].load(Ordering::SeqCst);
            match self.outcome[id].load(Ordering::SeqCst) {
                SENT if got == 0 => lost.push(id),
                SENT if got > 1 => dup.push(id),
                RETURNED if got > 0 => ghost.push(id),
                SENT | RETURNED => {}
                _ => unsent.push(id),
            }
        }
        if lost.is_empty() && dup.is_empty() && ghost.is_empty() && unsent.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "lost {lost:?}, duplicated {dup:?}, returned yet received {ghost:?}, \
                 no sender outcome {unsent:?}"
            ))
        }
    }
}

/// A short random timeout, sometimes zero.
fn short(rng: &mut fastrand::Rng) -> Duration {
    match rng.u8(..8) {
        0 => Duration::ZERO,
        _ => Duration::from_micros(rng.u64(1..300)),
    }
}

/// Sends `id` on `a` or `b` with a randomly chosen operation and records
/// the outcome.
fn send_one(rng: &mut fastrand::Rng, l: &Ledger, a: &Sender<u64>, b: &Sender<u64>, id: u64) {
    let tx = if rng.bool() { a } else { b };
    match rng.u8(..7) {
        0 => match tx.send(id) {
            Ok(()) => l.sent(id),
            Err(e) => l.returned(id, e.0, 3),
        },
        1 => match tx.send_timeout(id, short(rng)) {
            Ok(()) => l.sent(id),
            Err(SendTimeoutError::Timeout(v)) => l.returned(id, v, 1),
            Err(SendTimeoutError::Closed(v)) => l.returned(id, v, 3),
        },
        2 => match tx.try_send(id) {
            Ok(()) => l.sent(id),
            Err(TrySendError::Full(v)) => l.returned(id, v, 2),
            Err(TrySendError::Closed(v)) => l.returned(id, v, 3),
        },
        3 => {
            // A losing send arm delivers nothing; its message is never built.
            let r = goro::select! {
                send(a, id) -> res => res.map_err(|e| (e.0, 3)),
                send(b, id) -> res => res.map_err(|e| (e.0, 3)),
                default(short(rng)) => Err((id, 4)),
            };
            match r {
                Ok(()) => l.sent(id),
                Err((v, why)) => l.returned(id, v, why),
            }
        }
        4 => {
            let r = goro::select! {
                send(a, id) -> res => res.map_err(|e| (e.0, 3)),
                send(b, id) -> res => res.map_err(|e| (e.0, 3)),
                default => Err((id, 4)),
            };
            match r {
                Ok(()) => l.sent(id),
                Err((v, why)) => l.returned(id, v, why),
            }
        }
        5 => {
            let mut sel = Select::new();
            let ia = sel.send(a);
            let ib = sel.send(b);
            match sel.select_timeout(short(rng)) {
                Ok(op) => {
                    let i = op.index();
                    assert!(i == ia || i == ib);
                    let tx = if i == ia { a } else { b };
                    match op.send(tx, id) {
                        Ok(()) => l.sent(id),
                        Err(e) => l.returned(id, e.0, 3),
                    }
                }
                Err(_) => l.returned(id, id, 4),
            }
        }
        _ => {
            // Blocking select with both arms.
            let r = goro::select! {
                send(a, id) -> res => res,
                send(b, id) -> res => res,
            };
            match r {
                Ok(()) => l.sent(id),
                Err(e) => l.returned(id, e.0, 3),
            }
        }
    }
}

/// Receives until both channels are closed and drained, with randomly
/// chosen operations.
fn receive_all(rng: &mut fastrand::Rng, l: &Ledger, a: &Receiver<u64>, b: &Receiver<u64>) {
    let never = chan::never::<u64>();
    let (mut a_done, mut b_done) = (false, false);
    while !(a_done && b_done) {
        // Now and then a receiver walks away from a closed channel without
        // draining it, leaving what is buffered to the final drain.
        if rng.u8(..16) == 0 {
            a_done |= a.is_closed();
            b_done |= b.is_closed();
            if a_done && b_done {
                break;
            }
        }
        // A finished channel is replaced by `never` so that selects do not
        // keep choosing its closed arm.
        let ra = if a_done { &never } else { a };
        let rb = if b_done { &never } else { b };
        let one_left = a_done || b_done;
        let (rx, done) = match (a_done, b_done, rng.bool()) {
            (false, _, true) | (false, true, _) => (a, &mut a_done),
            _ => (b, &mut b_done),
        };
        match rng.u8(..6) {
            // Blocking on one channel only once the other is finished: a
            // receiver parked on one channel while the last sender waits on
            // the other would never wake. Else block on both.
            0 if one_left => match rx.recv() {
                Ok(id) => l.got(id, 5),
                Err(_) => *done = true,
            },
            0 => goro::select! {
                recv(ra) -> res => match res {
                    Ok(id) => l.got(id, 5),
                    Err(_) => a_done = true,
                },
                recv(rb) -> res => match res {
                    Ok(id) => l.got(id, 5),
                    Err(_) => b_done = true,
                },
            },
            1 => match rx.recv_timeout(short(rng)) {
                Ok(id) => l.got(id, 5),
                Err(RecvTimeoutError::Timeout) => l.count(6),
                Err(RecvTimeoutError::Closed) => *done = true,
            },
            2 => match rx.try_recv() {
                Ok(id) => l.got(id, 5),
                Err(TryRecvError::Empty) => {
                    l.count(6);
                    if goro::is_coroutine() {
                        goro::yield_now();
                    } else {
                        std::thread::yield_now();
                    }
                }
                Err(TryRecvError::Closed) => *done = true,
            },
            3 => goro::select! {
                recv(ra) -> res => match res {
                    Ok(id) => l.got(id, 5),
                    Err(_) => a_done = true,
                },
                recv(rb) -> res => match res {
                    Ok(id) => l.got(id, 5),
                    Err(_) => b_done = true,
                },
                default(short(rng)) => l.count(6),
            },
            4 => goro::select! {
                recv(ra) -> res => match res {
                    Ok(id) => l.got(id, 5),
                    Err(_) => a_done = true,
                },
                recv(rb) -> res => match res {
                    Ok(id) => l.got(id, 5),
                    Err(_) => b_done = true,
                },
                default => l.count(6),
            },
            _ => {
                let mut sel = Select::new();
                let ia = sel.recv(ra);
                let ib = sel.recv(rb);
                match sel.select_timeout(short(rng)) {
                    Ok(op) => {
                        let i = op.index();
                        let (rx, done) = if i == ia {
                            (ra, &mut a_done)
                        } else {
                            assert_eq!(i, ib);
                            (rb, &mut b_done)
                        };
                        match op.recv(rx) {
                            Ok(id) => l.got(id, 5),
                            Err(_) => *done = true,
                        }
                    }
                    Err(_) => l.count(6),
                }
            }
        }
    }
}

/// One round on two channels of capacity `cap`; returns the op counts.
fn round(cap: usize, rng_seed: u64, close_early: bool, per: usize) -> [u64; OPS] {
    const SENDERS: usize = 4;
    const RECEIVERS: usize = 4;
    let ids = SENDERS * per;
    let l = Arc::new(Ledger::new(ids));
    let (tx_a, rx_a) = chan::bounded::<u64>(cap);
    let (tx_b, rx_b) = chan::bounded::<u64>(cap);
    let senders_done = Arc::new(AtomicUsize::new(0));
    let side = |i: usize| {
        if i.is_multiple_of(2) {
            Side::Coroutine
        } else {
            Side::Thread
        }
    };

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (l, a, b, done) = (l.clone(), tx_a.clone(), tx_b.clone(), senders_done.clone());
            let mut rng = fastrand::Rng::with_seed(rng_seed ^ ((s as u64 + 1) * 0x9e37_79b9));
            run_on(side(s), move || {
                for k in 0..per {
                    send_one(&mut rng, &l, &a, &b, (s * per + k) as u64);
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|r| {
            let (l, a, b) = (l.clone(), rx_a.clone(), rx_b.clone());
            let mut rng = fastrand::Rng::with_seed(rng_seed ^ ((r as u64 + 101) * 0x85eb_ca6b));
            run_on(side(r + 1), move || receive_all(&mut rng, &l, &a, &b))
        })
        .collect();

    // The closer: either early, after a random share of the messages has
    // been accounted, racing with everything; or once all senders are done.
    let closer = {
        let (a, b, l, done) = (tx_a.clone(), tx_b.clone(), l.clone(), senders_done.clone());
        let mut rng = fastrand::Rng::with_seed(rng_seed ^ 0x5151);
        let target = rng.u64(0..ids as u64 / 2 + 1);
        run_on(side(rng.usize(..2)), move || {
            let accounted = || {
                l.ops[..5]
                    .iter()
                    .map(|c| c.load(Ordering::SeqCst))
                    .sum::<u64>()
            };
            loop {
                let ready = if close_early {
                    accounted() >= target || done.load(Ordering::SeqCst) == SENDERS
                } else {
                    done.load(Ordering::SeqCst) == SENDERS
                };
                if ready {
                    break;
                }
                if goro::is_coroutine() {
                    goro::sleep(Duration::from_micros(50));
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            let (first, second) = if rng.bool() { (&a, &b) } else { (&b, &a) };
            assert!(first.close(), "first close of a channel");
            if rng.bool() {
                std::thread::yield_now();
            }
            assert!(second.close(), "first close of a channel");
            assert!(!a.close() && !b.close(), "a second close changes nothing");
        })
    };
    drop((tx_a, tx_b));

    for j in senders {
        j();
    }
    closer();
    for j in receivers {
        j();
    }
    // What the receivers left behind after the close is still there.
    for rx in [&rx_a, &rx_b] {
        while let Ok(id) = rx.try_recv() {
            l.got(id, 7);
        }
    }
    if let Err(e) = l.check() {
        panic!("capacity {cap}, close early {close_early}, round seed {rng_seed}: {e}");
    }
    std::array::from_fn(|i| l.ops[i].load(Ordering::Relaxed))
}

#[test]
fn no_message_lost_or_duplicated_under_mixed_operations_and_close() {
    let seed = support::stress_seed("stress_chan_mixed");
    let rounds = 12 * support::stress_scale();
    let per = 2000;
    let report = support::within_for(
        support::PATIENCE * support::stress_scale() as u32,
        "mixed channel stress",
        move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut lines = Vec::new();
            for cap in [0, 1, 16] {
                let mut totals = [0u64; OPS];
                for r in 0..rounds {
                    let ops = round(cap, rng.u64(..), r % 2 == 0, per);
                    for (t, o) in totals.iter_mut().zip(ops) {
                        *t += o;
                    }
                }
                let parts: Vec<String> = OP_NAMES
                    .iter()
                    .zip(totals)
                    .map(|(n, t)| format!("{n} {t}"))
                    .collect();
                lines.push(format!(
                    "capacity {cap}, {rounds} rounds: {}",
                    parts.join(", ")
                ));
            }
            lines
        },
    );
    for line in report {
        println!("{line}");
    }
}
