//! A select that gives up ("nothing is ready": `default`,
//! `default(Duration::ZERO)`, `Select::try_select`,
//! `Select::select_timeout(Duration::ZERO)`) must be linearizable: there
//! must have been an instant during the call at which none of its cases
//! was ready.
//!
//! Each test runs bounded rounds of a two-thread scenario in which, at
//! every instant of A's select, one of its two real cases is ready (the
//! others are never-ready padding, see `Pads`), so taking `default` is
//! always wrong:
//!
//! - recv cases, `bounded(1)`: A sends on `c1`, then selects over `r1`
//!   and `r2`; B sends on `c2` and only then receives from `r1`.
//! - recv cases, rendezvous: a coroutine waits to send on `c1` (parked,
//!   so registered) before A selects over `r1` and `r2`; B closes `c2`
//!   (which makes `r2` ready) and only then receives from `r1`.
//! - send cases, `bounded(1)`: `c1` has room and `c2` is full when A
//!   selects over sends on both; B receives from `c2` (making room) and
//!   only then fills `c1`.
//!
//! A round that takes `default` is counted; every test asserts that none
//! did. The peer never waits unboundedly, and the whole test runs under a
//! watchdog.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goro::chan::{self, Receiver, RecvError, Select, SendError, Sender};
use goro::select;

/// Rounds per test, and the time budget that stops a slow machine early.
const ROUNDS: u64 = 20_000;
const BUDGET: Duration = Duration::from_secs(5);
/// The round counter's value that tells the peer to stop.
const STOP: u64 = u64::MAX;
/// Upper bound of the peer's random delay, in spin-loop hints.
const JITTER: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `select! { .., default => .. }`
    Default,
    /// `select! { .., default(Duration::ZERO) => .. }`
    DefaultZero,
    /// `Select::try_select`
    TrySelect,
    /// `Select::select_timeout(Duration::ZERO)`
    TimeoutZero,
}

/// Every form; round `k` uses `FORMS[k % 4]`.
const FORMS: [Form; 4] = [
    Form::Default,
    Form::DefaultZero,
    Form::TrySelect,
    Form::TimeoutZero,
];

/// The scenarios are timing races between two spinning threads: running
/// them one at a time gives each its two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spins (then yields) until `cond` holds; panics after
/// `support::PATIENCE`.
fn spin_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + support::PATIENCE;
    let mut spins = 0u32;
    while !cond() {
        spins = spins.saturating_add(1);
        if spins < 10_000 {
            std::hint::spin_loop();
        } else {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }
}

/// Tells the peer to stop when the driver returns or unwinds.
struct StopOnDrop(Arc<AtomicU64>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(STOP, Ordering::Release);
    }
}

/// Shared round state: A publishes the round number, B says when it is
/// done.
#[derive(Clone)]
struct Rounds {
    go: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
}

impl Rounds {
    fn new() -> Rounds {
        Rounds {
            go: Arc::new(AtomicU64::new(0)),
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    /// B: waits for round `k` (or the stop); false means stop. Then
    /// waits a short random while, so that its two steps land at varied
    /// points of A's select (the scenario's invariant holds whatever the
    /// timing).
    fn wait_go(&self, k: u64) -> bool {
        spin_until("the next round", || self.go.load(Ordering::Acquire) >= k);
        for _ in 0..fastrand::u32(0..JITTER) {
            std::hint::spin_loop();
        }
        self.go.load(Ordering::Acquire) != STOP
    }

    /// A: starts round `k`.
    fn start(&self, k: u64) {
        self.go.store(k, Ordering::Release);
    }

    /// A: waits until B finished round `k`.
    fn wait_done(&self, k: u64) {
        spin_until("the peer to finish its round", || {
            self.done.load(Ordering::Acquire) == k
        });
    }
}

/// Never-ready arms added to every select: timers due in an hour. Each
/// costs a clock read when checked, which widens the window between the
/// checks of the two real cases (their order is random), so that the peer
/// fits in it often enough for a wrong `default` to show within a few
/// thousand rounds.
struct Pads([Receiver<Instant>; PADS]);

const PADS: usize = 24;

/// `select!` over the given arms and the 24 pads of `$p`.
macro_rules! padded_select {
    ($p:ident; $($arms:tt)*) => {
        select! {
            recv($p[0]) -> _ => unreachable!(),
            recv($p[1]) -> _ => unreachable!(),
            recv($p[2]) -> _ => unreachable!(),
            recv($p[3]) -> _ => unreachable!(),
            recv($p[4]) -> _ => unreachable!(),
            recv($p[5]) -> _ => unreachable!(),
            recv($p[6]) -> _ => unreachable!(),
            recv($p[7]) -> _ => unreachable!(),
            recv($p[8]) -> _ => unreachable!(),
            recv($p[9]) -> _ => unreachable!(),
            recv($p[10]) -> _ => unreachable!(),
            recv($p[11]) -> _ => unreachable!(),
            recv($p[12]) -> _ => unreachable!(),
            recv($p[13]) -> _ => unreachable!(),
            recv($p[14]) -> _ => unreachable!(),
            recv($p[15]) -> _ => unreachable!(),
            recv($p[16]) -> _ => unreachable!(),
            recv($p[17]) -> _ => unreachable!(),
            recv($p[18]) -> _ => unreachable!(),
            recv($p[19]) -> _ => unreachable!(),
            recv($p[20]) -> _ => unreachable!(),
            recv($p[21]) -> _ => unreachable!(),
            recv($p[22]) -> _ => unreachable!(),
            recv($p[23]) -> _ => unreachable!(),
            $($arms)*
        }
    };
}

impl Pads {
    fn new() -> Pads {
        Pads(std::array::from_fn(|_| {
            chan::after(Duration::from_secs(3600))
        }))
    }

    fn add_to<'a>(&'a self, sel: &mut Select<'a>) {
        for p in &self.0 {
            sel.recv(p);
        }
    }
}

/// A's select over two receive cases (and the pads): `Some((case,
/// result))` or `None` for "nothing ready".
fn choose_recv(
    form: Form,
    r1: &Receiver<u32>,
    r2: &Receiver<u32>,
    pads: &Pads,
) -> Option<(usize, Result<u32, RecvError>)> {
    let p = &pads.0;
    match form {
        Form::Default => padded_select! { p;
            recv(r1) -> v => Some((0, v)),
            recv(r2) -> v => Some((1, v)),
            default => None,
        },
        Form::DefaultZero => padded_select! { p;
            recv(r1) -> v => Some((0, v)),
            recv(r2) -> v => Some((1, v)),
            default(Duration::ZERO) => None,
        },
        Form::TrySelect | Form::TimeoutZero => {
            let mut sel = Select::new();
            let i1 = sel.recv(r1);
            let i2 = sel.recv(r2);
            pads.add_to(&mut sel);
            let op = match form {
                Form::TrySelect => sel.try_select().ok(),
                _ => sel.select_timeout(Duration::ZERO).ok(),
            }?;
            if op.index() == i1 {
                Some((0, op.recv(r1)))
            } else {
                assert_eq!(op.index(), i2);
                Some((1, op.recv(r2)))
            }
        }
    }
}

/// A's select over two send cases (messages 10 and 20) and the pads.
fn choose_send(
    form: Form,
    s1: &Sender<u32>,
    s2: &Sender<u32>,
    pads: &Pads,
) -> Option<(usize, Result<(), SendError<u32>>)> {
    let p = &pads.0;
    match form {
        Form::Default => padded_select! { p;
            send(s1, 10) -> v => Some((0, v)),
            send(s2, 20) -> v => Some((1, v)),
            default => None,
        },
        Form::DefaultZero => padded_select! { p;
            send(s1, 10) -> v => Some((0, v)),
            send(s2, 20) -> v => Some((1, v)),
            default(Duration::ZERO) => None,
        },
        Form::TrySelect | Form::TimeoutZero => {
            let mut sel = Select::new();
            let i1 = sel.send(s1);
            let i2 = sel.send(s2);
            pads.add_to(&mut sel);
            let op = match form {
                Form::TrySelect => sel.try_select().ok(),
                _ => sel.select_timeout(Duration::ZERO).ok(),
            }?;
            if op.index() == i1 {
                Some((0, op.send(s1, 10)))
            } else {
                assert_eq!(op.index(), i2);
                Some((1, op.send(s2, 20)))
            }
        }
    }
}

/// Counts the rounds of each form and those that took the default.
#[derive(Default)]
struct Tally {
    rounds: [u64; 4],
    misses: [u64; 4],
}

impl Tally {
    fn form(&mut self, k: u64) -> Form {
        let i = (k % 4) as usize;
        self.rounds[i] += 1;
        FORMS[i]
    }

    fn miss(&mut self, form: Form) {
        self.misses[FORMS.iter().position(|&f| f == form).unwrap()] += 1;
    }

    fn check(&self, what: &str) {
        let report: Vec<String> = FORMS
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{f:?}: {} of {}", self.misses[i], self.rounds[i]))
            .collect();
        eprintln!("{what}: defaults taken: {}", report.join(", "));
        assert!(
            self.misses.iter().all(|&m| m == 0),
            "{what}: selects took the default although one case was ready at \
             every instant ({})",
            report.join(", ")
        );
    }
}

/// Recv cases on `bounded(1)` channels.
fn buffered_recv() {
    let _serial = serial();
    support::within("buffered recv rounds", || {
        let (t1, r1) = chan::bounded::<u32>(1);
        let (t2, r2) = chan::bounded::<u32>(1);
        let pads = Pads::new();
        let rounds = Rounds::new();
        let _stop = StopOnDrop(rounds.go.clone());
        let peer = {
            let (rounds, t2, r1) = (rounds.clone(), t2.clone(), r1.clone());
            std::thread::spawn(move || {
                let mut k = 1;
                while rounds.wait_go(k) {
                    t2.send_timeout(2, support::PATIENCE)
                        .expect("c2 has room at the start of a round");
                    let v = r1
                        .recv_timeout(support::PATIENCE)
                        .expect("c1 holds a message for the peer");
                    assert_eq!(v, 1);
                    rounds.done.store(k, Ordering::Release);
                    k += 1;
                }
            })
        };
        let start = Instant::now();
        let (mut k, mut tally) = (0, Tally::default());
        while k < ROUNDS && start.elapsed() < BUDGET {
            k += 1;
            let form = tally.form(k);
            t1.try_send(1).expect("c1 is empty at the start of a round");
            rounds.start(k);
            match choose_recv(form, &r1, &r2, &pads) {
                Some((0, v)) => {
                    assert_eq!(v, Ok(1));
                    // The peer still wants a message from c1.
                    t1.try_send(1)
                        .expect("c1 is empty after taking its message");
                }
                Some((_, v)) => assert_eq!(v, Ok(2)),
                None => tally.miss(form),
            }
            rounds.wait_done(k);
            let _ = r2.try_recv();
            assert!(r1.is_empty() && r2.is_empty());
        }
        drop(_stop);
        peer.join().unwrap();
        tally.check("buffered recv");
    });
}

/// Recv cases on rendezvous channels: `r1` is ready because a coroutine
/// waits to send, `r2` because the peer closes it.
fn rendezvous_recv() {
    let _serial = serial();
    support::within("rendezvous recv rounds", || {
        let (t1, r1) = chan::bounded::<u32>(0);
        let slot: Arc<Mutex<Option<Sender<u32>>>> = Arc::new(Mutex::new(None));
        let pads = Pads::new();
        let rounds = Rounds::new();
        let _stop = StopOnDrop(rounds.go.clone());
        let peer = {
            let (rounds, slot, r1) = (rounds.clone(), slot.clone(), r1.clone());
            std::thread::spawn(move || {
                let mut k = 1;
                while rounds.wait_go(k) {
                    let t2 = slot.lock().unwrap().take().expect("this round's c2");
                    t2.close();
                    drop(t2);
                    let v = r1
                        .recv_timeout(support::PATIENCE)
                        .expect("a sender waits on c1 for the peer");
                    assert_eq!(v, 1);
                    rounds.done.store(k, Ordering::Release);
                    k += 1;
                }
            })
        };
        let start = Instant::now();
        let (mut k, mut tally) = (0, Tally::default());
        while k < ROUNDS && start.elapsed() < BUDGET {
            k += 1;
            let form = tally.form(k);
            let (t2, r2) = chan::bounded::<u32>(0);
            *slot.lock().unwrap() = Some(t2);
            let sender = {
                let t1 = t1.clone();
                goro::go!(move || t1.send(1).unwrap())
            };
            let id = sender.id();
            spin_until("the sender to wait on c1", || support::is_parked(id));
            rounds.start(k);
            let second = match choose_recv(form, &r1, &r2, &pads) {
                Some((0, v)) => {
                    assert_eq!(v, Ok(1));
                    // The peer still wants a message from c1.
                    let t1 = t1.clone();
                    Some(goro::go!(move || t1.send(1).unwrap()))
                }
                Some((_, v)) => {
                    assert_eq!(v, Err(RecvError));
                    None
                }
                None => {
                    tally.miss(form);
                    None
                }
            };
            rounds.wait_done(k);
            sender.join().unwrap();
            if let Some(h) = second {
                h.join().unwrap();
            }
        }
        drop(_stop);
        peer.join().unwrap();
        tally.check("rendezvous recv");
    });
}

/// Send cases on `bounded(1)` channels: `c1` has room until the peer
/// fills it, `c2` has room from the moment the peer empties it.
fn buffered_send() {
    let _serial = serial();
    support::within("buffered send rounds", || {
        let (t1, r1) = chan::bounded::<u32>(1);
        let (t2, r2) = chan::bounded::<u32>(1);
        let pads = Pads::new();
        let rounds = Rounds::new();
        let _stop = StopOnDrop(rounds.go.clone());
        let peer = {
            let (rounds, t1, r2) = (rounds.clone(), t1.clone(), r2.clone());
            std::thread::spawn(move || {
                let mut k = 1;
                while rounds.wait_go(k) {
                    r2.recv_timeout(support::PATIENCE)
                        .expect("c2 is full at the start of a round");
                    t1.send_timeout(1, support::PATIENCE)
                        .expect("c1 gets room for the peer");
                    rounds.done.store(k, Ordering::Release);
                    k += 1;
                }
            })
        };
        let start = Instant::now();
        let (mut k, mut tally) = (0, Tally::default());
        while k < ROUNDS && start.elapsed() < BUDGET {
            k += 1;
            let form = tally.form(k);
            t2.try_send(2).expect("c2 has room before it is filled");
            rounds.start(k);
            match choose_send(form, &t1, &t2, &pads) {
                Some((0, v)) => {
                    assert_eq!(v, Ok(()));
                    // Make room for the peer's send on c1.
                    assert_eq!(r1.recv_timeout(support::PATIENCE), Ok(10));
                }
                Some((_, v)) => assert_eq!(v, Ok(())),
                None => tally.miss(form),
            }
            rounds.wait_done(k);
            assert_eq!(r1.try_recv(), Ok(1));
            // c2 holds A's message if A sent there; start empty.
            let _ = r2.try_recv();
        }
        drop(_stop);
        peer.join().unwrap();
        tally.check("buffered send");
    });
}

#[test]
fn buffered_recv_cases() {
    buffered_recv();
}

#[test]
fn rendezvous_recv_cases() {
    rendezvous_recv();
}

#[test]
fn buffered_send_cases() {
    buffered_send();
}
