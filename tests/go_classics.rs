//! Go's classic concurrency programs, ported to goro as tests: the
//! concurrent prime sieve, power series (after Go's `test/chan/powser1.go`,
//! by Doug McIlroy), a bounded fan-out/fan-in pipeline cancelled through
//! `goro::context`, a rate limiter driven by `goro::chan::tick`, and the
//! blocking rules that Go's `test/chan/select3.go` pins. Go's programs are
//! BSD-licensed (The Go Authors); this is goro's own code after their ideas.

mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, Receiver, Select, Sender};
use goro::context::Context;

// ---------------------------------------------------------------------
// The prime sieve (Go's doc/play/sieve.go): a chain of filter coroutines
// over unbuffered channels. When the consumer drops its receiver, each
// stage's send fails in turn and the whole chain ends.

fn generate(tx: Sender<u64>) {
    for i in 2.. {
        if tx.send(i).is_err() {
            return;
        }
    }
}

fn filter(rx: Receiver<u64>, tx: Sender<u64>, prime: u64) {
    for n in rx.iter() {
        if n % prime != 0 && tx.send(n).is_err() {
            return;
        }
    }
}

#[test]
fn prime_sieve_finds_the_first_300_primes() {
    support::within("prime sieve", || {
        let (tx, mut rx) = chan::bounded(0);
        let mut stages = vec![goro::go!(move || generate(tx))];
        let mut primes = Vec::new();
        for _ in 0..300 {
            let p = rx.recv().unwrap();
            primes.push(p);
            let (tx1, rx1) = chan::bounded(0);
            stages.push(goro::go!(move || filter(rx, tx1, p)));
            rx = rx1;
        }
        drop(rx);
        // Every stage ends once its consumer is gone.
        for s in stages {
            s.join().unwrap();
        }
        let by_trial: Vec<u64> = (2..)
            .filter(|&n: &u64| (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0))
            .take(300)
            .collect();
        assert_eq!(primes, by_trial);
        assert_eq!(primes[299], 1987);
    });
}

// ---------------------------------------------------------------------
// Power series (after powser1.go): a series is a stream of rational
// coefficients on an unbuffered channel; operators are coroutines. Split
// copies one stream to two consumers (what lets a series feed back into
// its own definition, as in exp's E = 1 + ∫E).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rat(i128, i128);

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 {
        a.abs().max(1)
    } else {
        gcd(b, a % b)
    }
}

impl Rat {
    /// What a coefficient too big for i128 becomes. Stages run a few
    /// terms ahead of their readers (and on after a test has read what it
    /// checks), so overflow past the checked terms must not panic; a
    /// checked term equal to this fails the test's comparison.
    const OVERFLOW: Rat = Rat(0, 0);

    fn new(n: i128, d: i128) -> Rat {
        if d == 0 {
            return Rat::OVERFLOW;
        }
        let g = gcd(n, d) * d.signum();
        Rat(n / g, d / g)
    }
    fn int(n: i128) -> Rat {
        Rat(n, 1)
    }
    fn add(self, o: Rat) -> Rat {
        let n = self.0.checked_mul(o.1).zip(o.0.checked_mul(self.1));
        match (
            n.and_then(|(a, b)| a.checked_add(b)),
            self.1.checked_mul(o.1),
        ) {
            (Some(n), Some(d)) => Rat::new(n, d),
            _ => Rat::OVERFLOW,
        }
    }
    fn mul(self, o: Rat) -> Rat {
        match (self.0.checked_mul(o.0), self.1.checked_mul(o.1)) {
            (Some(n), Some(d)) => Rat::new(n, d),
            _ => Rat::OVERFLOW,
        }
    }
}

type Ps = Receiver<Rat>;

fn series(f: impl FnOnce(Sender<Rat>) + Send + 'static) -> Ps {
    let (tx, rx) = chan::bounded(0);
    goro::go!(move || f(tx));
    rx
}

/// 1 + x + x² + ... = 1/(1-x)
fn ones() -> Ps {
    series(|tx| while tx.send(Rat::int(1)).is_ok() {})
}

/// The coefficients of a polynomial, then zeros.
fn poly(cs: Vec<i128>) -> Ps {
    series(move |tx| {
        for c in cs.into_iter().chain(std::iter::repeat(0)) {
            if tx.send(Rat::int(c)).is_err() {
                return;
            }
        }
    })
}

fn add(u: Ps, v: Ps) -> Ps {
    series(move |tx| {
        while let (Ok(a), Ok(b)) = (u.recv(), v.recv()) {
            if tx.send(a.add(b)).is_err() {
                return;
            }
        }
    })
}

fn cmul(c: Rat, u: Ps) -> Ps {
    series(move |tx| {
        for a in u.iter() {
            if tx.send(c.mul(a)).is_err() {
                return;
            }
        }
    })
}

/// c + ∫u
fn integ(c: Rat, u: Ps) -> Ps {
    series(move |tx| {
        if tx.send(c).is_err() {
            return;
        }
        for (i, a) in (1..).zip(u.iter()) {
            if tx.send(a.mul(Rat::new(1, i))).is_err() {
                return;
            }
        }
    })
}

fn deriv(u: Ps) -> Ps {
    series(move |tx| {
        if u.recv().is_err() {
            return;
        }
        for (i, a) in (1..).zip(u.iter()) {
            if tx.send(a.mul(Rat::int(i))).is_err() {
                return;
            }
        }
    })
}

/// Copies `u` to two consumers, offering each queued value with a
/// dynamic `Select`. It reads `u` when a consumer's queue is empty and
/// no queue holds `AHEAD` values: a series fed back into itself (exp)
/// would otherwise run ahead of its reader forever. (powser1 gets the
/// same bound from its demand channels.) The lagging reader always has
/// a value queued, so the bound cannot deadlock. When either reader is
/// gone the split ends, closing the other: a series fed back into itself
/// would otherwise keep feeding itself with no reader left.
fn split(u: Ps) -> (Ps, Ps) {
    const AHEAD: usize = 4;
    let (t1, r1) = chan::bounded(0);
    let (t2, r2) = chan::bounded(0);
    goro::go!(move || {
        let outs = [t1, t2];
        let mut qs = [VecDeque::new(), VecDeque::new()];
        loop {
            let want = qs.iter().any(|q| q.is_empty());
            if want && qs.iter().all(|q| q.len() < AHEAD) {
                // Someone will need the next value: fetch it, but still
                // serve a waiting consumer first if one has a value queued.
                let mut sel = Select::new();
                let mut idx = [usize::MAX; 2];
                for i in 0..2 {
                    if !qs[i].is_empty() {
                        idx[i] = sel.send(&outs[i]);
                    }
                }
                let ri = sel.recv(&u);
                let op = sel.select();
                let k = op.index();
                if k == ri {
                    let Ok(v) = op.recv(&u) else { return };
                    for q in &mut qs {
                        q.push_back(v);
                    }
                } else {
                    let i = if k == idx[0] { 0 } else { 1 };
                    let v = qs[i].pop_front().expect("queued");
                    if op.send(&outs[i], v).is_err() {
                        return;
                    }
                }
            } else {
                let mut sel = Select::new();
                let mut idx = [usize::MAX; 2];
                for i in 0..2 {
                    if !qs[i].is_empty() {
                        idx[i] = sel.send(&outs[i]);
                    }
                }
                let op = sel.select();
                let i = if op.index() == idx[0] { 0 } else { 1 };
                let v = qs[i].pop_front().expect("queued");
                if op.send(&outs[i], v).is_err() {
                    return;
                }
            }
        }
    });
    (r1, r2)
}

/// (u0 + x U)(v0 + x V) = u0 v0 + x (u0 V + v0 U) + x² U V, recursively.
fn mul(u: Ps, v: Ps) -> Ps {
    series(move |tx| {
        let (Ok(u0), Ok(v0)) = (u.recv(), v.recv()) else {
            return;
        };
        if tx.send(u0.mul(v0)).is_err() {
            return;
        }
        let (u1, u2) = split(u);
        let (v1, v2) = split(v);
        let w = add(cmul(u0, v1), cmul(v0, u1));
        let Ok(w0) = w.recv() else { return };
        if tx.send(w0).is_err() {
            return;
        }
        let rest = add(w, mul(u2, v2));
        for a in rest.iter() {
            if tx.send(a).is_err() {
                return;
            }
        }
    })
}

/// exp(x): the solution of E = 1 + ∫E, by feeding E back into itself.
fn exp() -> Ps {
    let (tx, rx) = chan::bounded(0);
    let (out, back) = split(rx);
    let e = integ(Rat::int(1), back);
    goro::go!(move || {
        for a in e.iter() {
            if tx.send(a).is_err() {
                return;
            }
        }
    });
    out
}

fn take(u: &Ps, n: usize) -> Vec<Rat> {
    (0..n).map(|_| u.recv().unwrap()).collect()
}

#[test]
fn power_series_as_coroutines() {
    support::within("power series", || {
        // ∫ 1/(1-x) = 0 + x + x²/2 + x³/3 + ...
        let s = integ(Rat::int(0), ones());
        let want: Vec<Rat> = std::iter::once(Rat::int(0))
            .chain((1..10).map(|i| Rat::new(1, i)))
            .collect();
        assert_eq!(take(&s, 10), want);
        // d/dx ∫u = u
        assert_eq!(
            take(&deriv(integ(Rat::int(5), ones())), 10),
            vec![Rat::int(1); 10]
        );
        // 1/(1-x)² = Σ (n+1) xⁿ
        let sq = mul(ones(), ones());
        let want: Vec<Rat> = (1..=12).map(Rat::int).collect();
        assert_eq!(take(&sq, 12), want);
        // (1 + x)³ = 1 + 3x + 3x² + x³
        let c = mul(poly(vec![1, 1]), mul(poly(vec![1, 1]), poly(vec![1, 1])));
        let want: Vec<Rat> = [1, 3, 3, 1, 0, 0].map(Rat::int).to_vec();
        assert_eq!(take(&c, 6), want);
        // exp(x) = Σ xⁿ/n!
        let e = exp();
        let mut fact = 1;
        let want: Vec<Rat> = (0..15)
            .map(|n| {
                if n > 0 {
                    fact *= n;
                }
                Rat::new(1, fact)
            })
            .collect();
        assert_eq!(take(&e, 15), want);
        // exp(x)·exp(x) = exp(2x) = Σ 2ⁿxⁿ/n!
        let e2 = mul(exp(), exp());
        let got = take(&e2, 10);
        let mut fact = 1;
        for (n, r) in got.iter().enumerate() {
            if n > 0 {
                fact *= n as i128;
            }
            assert_eq!(*r, Rat::new(1 << n, fact), "term {n}");
        }
    });
}

// ---------------------------------------------------------------------
// A bounded fan-out/fan-in pipeline with cancellation: a generator, a
// fixed number of workers, one merged result channel; the consumer cancels
// the context once it has enough, and every stage then ends.

#[test]
fn fan_out_fan_in_stops_everything_on_cancel() {
    support::within("fan-out/fan-in", || {
        const WORKERS: usize = 8;
        let (ctx, cancel) = Context::with_cancel(&Context::background());
        let (jobs_tx, jobs_rx) = chan::bounded::<u64>(16);
        let (res_tx, res_rx) = chan::bounded::<u64>(16);
        let produced = Arc::new(AtomicUsize::new(0));
        let mut stages = Vec::new();
        {
            let (ctx, produced) = (ctx.clone(), produced.clone());
            stages.push(goro::go!(move || {
                let done = ctx.done();
                for i in 0u64.. {
                    goro::select! {
                        send(jobs_tx, i) -> r => if r.is_err() { return },
                        recv(done) -> _ => return,
                    }
                    produced.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let busy = Arc::new(AtomicUsize::new(0));
        for _ in 0..WORKERS {
            let (ctx, jobs, res, busy) =
                (ctx.clone(), jobs_rx.clone(), res_tx.clone(), busy.clone());
            stages.push(goro::go!(move || {
                let done = ctx.done();
                loop {
                    let job = goro::select! {
                        recv(jobs) -> j => match j { Ok(j) => j, Err(_) => return },
                        recv(done) -> _ => return,
                    };
                    let n = busy.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(n <= WORKERS, "more than {WORKERS} jobs at once");
                    let sq = job * job;
                    goro::yield_now();
                    busy.fetch_sub(1, Ordering::SeqCst);
                    goro::select! {
                        send(res, sq) -> r => if r.is_err() { return },
                        recv(done) -> _ => return,
                    }
                }
            }));
        }
        drop((jobs_rx, res_tx));
        let mut got = Vec::new();
        while got.len() < 1000 {
            got.push(res_rx.recv().unwrap());
        }
        cancel.cancel();
        for s in stages {
            s.join().unwrap();
        }
        // Every result is the square of a distinct produced job.
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 1000);
        assert!(got.iter().all(|&r| {
            let s = (r as f64).sqrt() as u64;
            s * s == r
        }));
        // The pipeline is bounded: the generator ran at most the buffers'
        // and workers' worth ahead of the consumer.
        let ahead = produced.load(Ordering::Relaxed) - 1000;
        assert!(
            ahead <= 16 + 16 + WORKERS + 1,
            "generator ran {ahead} ahead"
        );
        // All stages ended; the result channel is closed.
        assert!(res_rx.recv_timeout(support::PATIENCE).is_err() || res_rx.is_closed());
    });
}

// ---------------------------------------------------------------------
// A rate limiter from a ticker (Go by Example's bursty limiter): a token
// bucket of capacity BURST refilled by `chan::tick`. The first BURST
// requests go at once; the rest are paced by the ticker.

#[test]
fn ticker_rate_limiter_paces_requests() {
    support::within("rate limiter", || {
        const BURST: usize = 3;
        const PERIOD: Duration = Duration::from_millis(10);
        let (tokens_tx, tokens) = chan::bounded::<()>(BURST);
        for _ in 0..BURST {
            tokens_tx.send(()).unwrap();
        }
        let (stop_tx, stop) = chan::bounded::<()>(0);
        let refill = goro::go!(move || {
            let tick = chan::tick(PERIOD);
            loop {
                goro::select! {
                    recv(tick) -> _ => { let _ = tokens_tx.try_send(()); },
                    recv(stop) -> _ => return,
                }
            }
        });
        let start = Instant::now();
        let served: Vec<Instant> = (0..12)
            .map(|_| {
                tokens.recv().unwrap();
                Instant::now()
            })
            .collect();
        drop(stop_tx);
        refill.join().unwrap();
        // A limiter may be slow on a loaded machine, never fast: request i
        // past the burst needed (i - BURST + 1) ticks, so it cannot have
        // been served before that many periods passed (lower bounds only).
        for (i, t) in served.iter().enumerate().skip(BURST) {
            let ticks = (i - BURST + 1) as u32;
            assert!(
                t.duration_since(start) >= PERIOD * ticks - Duration::from_millis(1),
                "request {i} served after {:?}, before {ticks} ticks",
                t.duration_since(start)
            );
        }
    });
}

// ---------------------------------------------------------------------
// select3.go: which operations block and which never do.

/// Runs `op` in a coroutine and checks it blocks (parks and stays
/// unfinished), then calls `release` and checks `op` finishes.
fn blocks_until(op: impl FnOnce() + Send + 'static, release: impl FnOnce()) {
    let h = goro::go!(op);
    support::wait_parked(h.id());
    assert!(!h.is_finished(), "the operation did not block");
    release();
    h.join().unwrap();
}

/// Runs `op` in a coroutine and checks it finishes.
fn never_blocks(what: &str, op: impl FnOnce() + Send + 'static) {
    support::within(what, move || goro::go!(op).join().unwrap());
}

#[test]
fn select3_blocking_rules() {
    support::within("select3", || {
        // A nil channel (never) blocks, alone or in a select; `release`
        // is a second arm only so that the test can end the coroutine.
        let (rel_tx, rel) = chan::bounded::<()>(0);
        blocks_until(
            move || {
                let nil = chan::never::<i32>();
                goro::select! {
                    recv(nil) -> _ => panic!("never() was chosen"),
                    recv(rel) -> _ => {},
                }
            },
            move || drop(rel_tx),
        );
        // ... and with a default the default is taken at once.
        never_blocks("select on never with default", || {
            let nil = chan::never::<i32>();
            let v = goro::select! { recv(nil) -> _ => 1, default => 2 };
            assert_eq!(v, 2);
        });

        // An unbuffered send blocks until a receiver comes.
        let (tx, rx) = chan::bounded::<i32>(0);
        let rx2 = rx.clone();
        blocks_until(
            move || tx.send(7).unwrap(),
            move || assert_eq!(rx2.recv(), Ok(7)),
        );
        // An unbuffered receive blocks until a sender comes.
        let (tx, rx) = chan::bounded::<i32>(0);
        blocks_until(
            move || assert_eq!(rx.recv(), Ok(8)),
            move || tx.send(8).unwrap(),
        );
        // A receive on an empty buffered channel blocks; close releases it.
        let (tx, rx) = chan::bounded::<i32>(1);
        blocks_until(move || assert!(rx.recv().is_err()), move || drop(tx));
        // A send on a full buffered channel blocks until there is room.
        let (tx, rx) = chan::bounded::<i32>(1);
        tx.send(1).unwrap();
        blocks_until(
            move || tx.send(2).unwrap(),
            move || assert_eq!(rx.recv(), Ok(1)),
        );
        // A select with a blocked send and a blocked recv blocks.
        let (tx, rx) = chan::bounded::<i32>(1);
        tx.send(1).unwrap();
        let (_keep, empty) = chan::bounded::<i32>(1);
        let rx2 = rx.clone();
        blocks_until(
            move || {
                goro::select! {
                    send(tx, 2) -> r => r.unwrap(),
                    recv(empty) -> _ => panic!("empty channel chosen"),
                }
            },
            move || assert_eq!(rx2.recv(), Ok(1)),
        );

        // Closed channels never block: a receive gets Err, every time,
        // also in a select with a default (the closed arm is ready).
        never_blocks("receive from closed", || {
            let (tx, rx) = chan::bounded::<i32>(0);
            drop(tx);
            for _ in 0..3 {
                assert!(rx.recv().is_err());
            }
            let got = goro::select! { recv(rx) -> r => r.is_err(), default => false };
            assert!(got, "default taken over a closed channel's receive");
        });
        // A send on a closed channel returns its value (Go panics).
        never_blocks("send to closed", || {
            let (tx, rx) = chan::bounded::<i32>(0);
            drop(rx);
            assert_eq!(tx.send(5).unwrap_err().0, 5);
            let v = goro::select! { send(tx, 6) -> r => r.unwrap_err().0, default => 0 };
            assert_eq!(v, 6);
        });
        // Buffered channels with room or data never block.
        never_blocks("buffered with room and data", || {
            let (tx, rx) = chan::bounded::<i32>(2);
            tx.send(1).unwrap();
            let v = goro::select! { recv(rx) -> r => r.unwrap(), default => -1 };
            assert_eq!(v, 1);
            let ok = goro::select! { send(tx, 3) -> r => r.is_ok(), default => false };
            assert!(ok);
        });
        // Among ready arms the choice is random, and a losing send
        // delivers nothing.
        never_blocks("fair choice", || {
            let (a_tx, a_rx) = chan::bounded::<u32>(1);
            let (b_tx, b_rx) = chan::bounded::<u32>(1);
            let mut counts = [0u32; 2];
            for i in 0..2000u32 {
                goro::select! {
                    send(a_tx, i) -> r => { r.unwrap(); counts[0] += 1; },
                    send(b_tx, i) -> r => { r.unwrap(); counts[1] += 1; },
                }
                let got: Vec<u32> = a_rx.try_iter().chain(b_rx.try_iter()).collect();
                assert_eq!(got, vec![i], "exactly one arm delivered");
            }
            assert!(counts.iter().all(|&c| c > 700), "skewed choice {counts:?}");
        });
    });
}
