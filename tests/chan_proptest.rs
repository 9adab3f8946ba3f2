//! Property tests: channels against a model queue, and random concurrent
//! schedules of coroutines and threads on a small worker pool.
//!
//! Case counts are modest on purpose: the whole workspace's tests must
//! stay fast on a 2-core machine. Raise them with `PROPTEST_CASES`.

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use goro::chan::{self, Receiver, Sender, TryRecvError, TrySendError};
use proptest::prelude::*;

/// Three workers on a 2-core machine: more interleavings than cores.
fn small_runtime() {
    // Fails harmlessly if another test of this binary started it first.
    let _ = goro::Config::new().workers(3).apply();
}

#[derive(Clone, Debug)]
enum Op {
    TrySend(u16),
    SendTimeoutZero(u16),
    TryRecv,
    RecvTimeoutZero,
    Close,
    Len,
    CloneSender,
    DropSender,
    CloneReceiver,
    DropReceiver,
    SelectRecvDefault,
    SelectSendDefault(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u16>().prop_map(Op::TrySend),
        2 => any::<u16>().prop_map(Op::SendTimeoutZero),
        4 => Just(Op::TryRecv),
        2 => Just(Op::RecvTimeoutZero),
        1 => Just(Op::Close),
        1 => Just(Op::Len),
        1 => Just(Op::CloneSender),
        1 => Just(Op::DropSender),
        1 => Just(Op::CloneReceiver),
        1 => Just(Op::DropReceiver),
        2 => Just(Op::SelectRecvDefault),
        2 => any::<u16>().prop_map(Op::SelectSendDefault),
    ]
}

/// What the channel should do, single-threaded (no one ever waits).
struct Model {
    buf: VecDeque<u16>,
    cap: Option<usize>,
    closed: bool,
    rx_gone: bool,
}

impl Model {
    /// `Ok(())`, `Err(true)` for full, `Err(false)` for closed.
    fn try_send(&mut self, v: u16) -> Result<(), bool> {
        if self.closed || self.rx_gone {
            return Err(false);
        }
        if self.cap.is_some_and(|c| self.buf.len() >= c) {
            return Err(true);
        }
        self.buf.push_back(v);
        Ok(())
    }

    /// `Ok(v)`, `Err(true)` for empty, `Err(false)` for closed.
    fn try_recv(&mut self) -> Result<u16, bool> {
        match self.buf.pop_front() {
            Some(v) => Ok(v),
            None if self.closed => Err(false),
            None => Err(true),
        }
    }
}

fn run_model(cap: Option<usize>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (tx, rx) = match cap {
        Some(c) => chan::bounded::<u16>(c),
        None => chan::unbounded::<u16>(),
    };
    let mut txs = vec![tx];
    let mut rxs = vec![rx];
    let mut m = Model {
        buf: VecDeque::new(),
        cap,
        closed: false,
        rx_gone: false,
    };
    for op in ops {
        match op {
            Op::TrySend(v) | Op::SendTimeoutZero(v) | Op::SelectSendDefault(v) => {
                let Some(tx) = txs.last() else { continue };
                let got = match op {
                    Op::TrySend(_) => tx.try_send(v).map_err(|e| e.is_full()),
                    Op::SendTimeoutZero(_) => tx
                        .send_timeout(v, Duration::ZERO)
                        .map_err(|e| e.is_timeout()),
                    _ => goro::select! {
                        send(tx, v) -> r => r.map_err(|_| false),
                        default => Err(true),
                    },
                };
                prop_assert_eq!(got, m.try_send(v), "{:?}", op);
            }
            Op::TryRecv | Op::RecvTimeoutZero | Op::SelectRecvDefault => {
                let Some(rx) = rxs.last() else { continue };
                let got = match op {
                    Op::TryRecv => rx.try_recv().map_err(|e| e == TryRecvError::Empty),
                    Op::RecvTimeoutZero => {
                        rx.recv_timeout(Duration::ZERO).map_err(|e| e.is_timeout())
                    }
                    _ => goro::select! {
                        recv(rx) -> r => r.map_err(|_| false),
                        default => Err(true),
                    },
                };
                prop_assert_eq!(got, m.try_recv(), "{:?}", op);
            }
            Op::Close => {
                let Some(tx) = txs.last() else { continue };
                prop_assert_eq!(tx.close(), !m.closed);
                m.closed = true;
            }
            Op::Len => {
                if let Some(tx) = txs.last() {
                    prop_assert_eq!(tx.len(), m.buf.len());
                    prop_assert_eq!(tx.is_closed(), m.closed || m.rx_gone);
                }
                if let Some(rx) = rxs.last() {
                    prop_assert_eq!(rx.len(), m.buf.len());
                    prop_assert_eq!(rx.is_empty(), m.buf.is_empty());
                    prop_assert_eq!(rx.is_closed(), m.closed);
                    let full = cap.is_none_or(|c| m.buf.len() >= c) && cap.is_some();
                    prop_assert_eq!(rx.is_full(), full);
                }
            }
            Op::CloneSender => {
                if let Some(tx) = txs.last() {
                    txs.push(tx.clone());
                }
            }
            Op::DropSender => {
                if txs.pop().is_some() && txs.is_empty() {
                    m.closed = true;
                }
            }
            Op::CloneReceiver => {
                if let Some(rx) = rxs.last() {
                    rxs.push(rx.clone());
                }
            }
            Op::DropReceiver => {
                if rxs.pop().is_some() && rxs.is_empty() {
                    m.rx_gone = true;
                    m.buf.clear();
                }
            }
        }
    }
    // Whatever is left drains in order.
    if let Some(rx) = rxs.last() {
        drop(txs);
        let rest: Vec<u16> = rx.try_iter().collect();
        prop_assert_eq!(rest, m.buf.iter().copied().collect::<Vec<_>>());
    }
    Ok(())
}

fn cap() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        Just(Some(0)),
        Just(Some(1)),
        Just(Some(2)),
        Just(Some(5)),
        Just(None)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn sequential_ops_match_the_model(cap in cap(), ops in prop::collection::vec(op(), 0..120)) {
        small_runtime();
        run_model(cap, ops)?;
    }
}

/// How a concurrent participant talks to the channel.
#[derive(Clone, Copy, Debug)]
enum Style {
    Blocking,
    Polling,
    Timeout,
    Select,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Blocking),
        Just(Style::Polling),
        Just(Style::Timeout),
        Just(Style::Select)
    ]
}

#[derive(Clone, Debug)]
struct Participant {
    on_thread: bool,
    style: Style,
}

fn participant() -> impl Strategy<Value = Participant> {
    (any::<bool>(), style()).prop_map(|(on_thread, style)| Participant { on_thread, style })
}

fn spawn<T: Send + 'static>(
    on_thread: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Box<dyn FnOnce() -> T> {
    if on_thread {
        let h = std::thread::spawn(f);
        Box::new(move || h.join().unwrap())
    } else {
        let h = goro::go!(f);
        Box::new(move || h.join().unwrap())
    }
}

fn pause(on_thread: bool) {
    if on_thread {
        std::thread::yield_now();
    } else {
        goro::yield_now();
    }
}

fn produce(tx: Sender<(usize, u32)>, id: usize, n: u32, p: Participant) {
    let (_idle_tx, idle) = chan::bounded::<()>(0);
    let mut tries = 0u32;
    for i in 0..n {
        let mut msg = (id, i);
        loop {
            tries = tries.wrapping_add(1);
            let r = match p.style {
                Style::Blocking => tx.send(msg).map_err(|e| e.0),
                // A non-blocking send never pairs with a non-blocking
                // receive on an unbuffered channel (in Go either), so a
                // poller falls back to a short timed wait now and then.
                Style::Polling if tries % 8 == 7 => tx
                    .send_timeout(msg, Duration::from_micros(200))
                    .map_err(|e| e.into_inner()),
                Style::Polling => match tx.try_send(msg) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(m)) => {
                        pause(p.on_thread);
                        Err(m)
                    }
                    Err(TrySendError::Closed(_)) => panic!("closed while producing"),
                },
                Style::Timeout => tx
                    .send_timeout(msg, Duration::from_micros(200))
                    .map_err(|e| e.into_inner()),
                Style::Select => goro::select! {
                    send(tx, msg) -> r => r.map_err(|e| e.0),
                    recv(idle) -> _ => unreachable!(),
                    default(Duration::from_micros(200)) => Err(msg),
                },
            };
            match r {
                Ok(()) => break,
                Err(m) => msg = m,
            }
        }
    }
}

fn consume(rx: Receiver<(usize, u32)>, p: Participant) -> Vec<(usize, u32)> {
    let (_idle_tx, idle) = chan::bounded::<(usize, u32)>(0);
    let mut got = Vec::new();
    let mut polls = 0u32;
    loop {
        polls = polls.wrapping_add(1);
        let r = match p.style {
            Style::Blocking => rx.recv().map_err(|_| true),
            Style::Polling if polls % 8 == 7 => rx
                .recv_timeout(Duration::from_micros(200))
                .map_err(|e| e.is_closed()),
            Style::Polling => match rx.try_recv() {
                Ok(v) => Ok(v),
                Err(TryRecvError::Empty) => {
                    pause(p.on_thread);
                    Err(false)
                }
                Err(TryRecvError::Closed) => Err(true),
            },
            Style::Timeout => rx
                .recv_timeout(Duration::from_micros(200))
                .map_err(|e| e.is_closed()),
            Style::Select => goro::select! {
                recv(rx) -> r => r.map_err(|_| true),
                recv(idle) -> _ => unreachable!(),
                default(Duration::from_micros(200)) => Err(false),
            },
        };
        match r {
            Ok(v) => got.push(v),
            Err(true) => return got,
            Err(false) => {}
        }
    }
}

proptest! {
    // A case that hangs fails by the watchdog after `support::PATIENCE`;
    // shrinking stops after a minute so a hang cannot make it run for
    // hours.
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    /// Random producers and consumers, each a coroutine or a thread with its
    /// own way of sending or receiving: nothing lost, nothing duplicated,
    /// and every receiver sees each sender's messages in order.
    #[test]
    fn concurrent_schedules_lose_nothing(
        cap in cap(),
        producers in prop::collection::vec((participant(), 0u32..120), 1..4),
        consumers in prop::collection::vec(participant(), 1..4),
    ) {
        small_runtime();
        support::within("a random schedule of producers and consumers", move || {
            let (tx, rx) = match cap {
                Some(c) => chan::bounded::<(usize, u32)>(c),
                None => chan::unbounded(),
            };
            let ps: Vec<_> = producers
                .iter()
                .enumerate()
                .map(|(id, (p, n))| {
                    let (tx, p, n) = (tx.clone(), p.clone(), *n);
                    spawn(p.on_thread, move || produce(tx, id, n, p))
                })
                .collect();
            drop(tx);
            let cs: Vec<_> = consumers
                .iter()
                .map(|p| {
                    let (rx, p) = (rx.clone(), p.clone());
                    spawn(p.on_thread, move || consume(rx, p))
                })
                .collect();
            drop(rx);
            for p in ps {
                p();
            }
            let mut seen: Vec<Vec<u32>> = vec![Vec::new(); producers.len()];
            for c in cs {
                let got = c();
                let mut last: Vec<Option<u32>> = vec![None; producers.len()];
                for (id, i) in got {
                    prop_assert!(last[id].is_none_or(|l| l < i), "reordered");
                    last[id] = Some(i);
                    seen[id].push(i);
                }
            }
            for (id, (_, n)) in producers.iter().enumerate() {
                seen[id].sort_unstable();
                prop_assert_eq!(&seen[id], &(0..*n).collect::<Vec<_>>());
            }
            Ok(())
        })?;
    }
}
