//! Property: for any tree of contexts and any order of cancels, drops and
//! deadlines, each context is done exactly when it or an ancestor was
//! cancelled or its (effective) deadline passed, and `err` says which
//! came first.
//!
//! A model replays the operations: time "advances" to the instant before
//! each operation (every context whose deadline is at or before it is
//! `DeadlineExceeded`), a cancel marks the live part of the subtree
//! `Canceled`, and a context born under a done parent takes the parent's
//! reason. A deadline that falls inside an operation's own measured
//! window could go either way; such a context (and its subtree) is not
//! checked any more in that case. The window is judged before the
//! operation's own effect is applied to the model: a cancel reads the
//! clock while marking, so a node whose deadline passed during the cancel
//! may report either reason.

mod support;

use std::time::{Duration, Instant};

use goro::context::{Cancel, Context, ContextError};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `with_cancel`.
    Plain,
    /// A deadline that has passed when the context is made.
    Past,
    /// A deadline an hour away.
    Far,
    /// A deadline this many milliseconds away.
    Soon(u64),
}

#[derive(Clone, Debug)]
enum Op {
    /// Make a child of node `parent % (len + 1)` (the last index means the
    /// background context).
    Create(usize, Kind),
    /// Cancel node `i % len`, from a coroutine or from this thread.
    Cancel(usize, bool),
    /// Drop node `i % len`'s `Cancel` (the last one, so it cancels).
    Drop(usize),
    /// Wait until every `Soon` deadline so far has passed.
    WaitSoon,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Plain),
        1 => Just(Kind::Past),
        1 => Just(Kind::Far),
        2 => (1u64..30).prop_map(Kind::Soon),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<usize>(), kind()).prop_map(|(p, k)| Op::Create(p, k)),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, c)| Op::Cancel(i, c)),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => Just(Op::WaitSoon),
    ]
}

struct Node {
    ctx: Context,
    cancel: Option<Cancel>,
    parent: Option<usize>,
    /// Effective deadline (never later than the parent's).
    deadline: Option<Instant>,
    err: Option<ContextError>,
    uncertain: bool,
}

struct Model {
    nodes: Vec<Node>,
    /// How long a cancel from a coroutine waits before cancelling (zero
    /// in the property; the regression test below widens the window).
    cancel_delay: Duration,
}

impl Model {
    /// Every live node whose deadline is at or before `t` is expired.
    fn advance(&mut self, t: Instant) {
        for n in &mut self.nodes {
            if n.err.is_none() && n.deadline.is_some_and(|d| d <= t) {
                n.err = Some(ContextError::DeadlineExceeded);
            }
        }
    }

    /// Nodes of the subtree under `i`, `i` included.
    fn subtree(&self, i: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&j| {
                let mut k = Some(j);
                while let Some(x) = k {
                    if x == i {
                        return true;
                    }
                    k = self.nodes[x].parent;
                }
                false
            })
            .collect()
    }

    /// Live nodes whose deadline fell inside `(t0, t1]` could have gone
    /// either way: stop checking them and their subtrees.
    fn blur(&mut self, t0: Instant, t1: Instant) {
        let hit: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| {
                let n = &self.nodes[j];
                n.err.is_none() && n.deadline.is_some_and(|d| d > t0 && d <= t1)
            })
            .collect();
        for j in hit {
            for k in self.subtree(j) {
                self.nodes[k].uncertain = true;
            }
        }
    }

    fn create(&mut self, parent: usize, kind: Kind) {
        let parent = if self.nodes.is_empty() {
            None
        } else {
            let p = parent % (self.nodes.len() + 1);
            (p < self.nodes.len()).then_some(p)
        };
        let pctx = parent.map_or_else(Context::background, |p| self.nodes[p].ctx.clone());
        let t0 = Instant::now();
        self.advance(t0);
        let own = match kind {
            Kind::Plain => None,
            Kind::Past => Some(t0),
            Kind::Far => Some(t0 + Duration::from_secs(3600)),
            Kind::Soon(ms) => Some(t0 + Duration::from_millis(ms)),
        };
        let (ctx, cancel) = match own {
            None => Context::with_cancel(&pctx),
            Some(d) => Context::with_deadline(&pctx, d),
        };
        let t1 = Instant::now();
        let pdl = parent.and_then(|p| self.nodes[p].deadline);
        let deadline = match (own, pdl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (perr, puncertain) = parent.map_or((None, false), |p| {
            (self.nodes[p].err, self.nodes[p].uncertain)
        });
        let err = match perr {
            Some(e) => Some(e),
            None if deadline.is_some_and(|d| d <= t0) => Some(ContextError::DeadlineExceeded),
            None => None,
        };
        self.nodes.push(Node {
            ctx,
            cancel: Some(cancel),
            parent,
            deadline,
            err,
            uncertain: puncertain,
        });
        self.blur(t0, t1);
    }

    fn cancel(&mut self, i: usize, how: Option<bool>) {
        if self.nodes.is_empty() {
            return;
        }
        let i = i % self.nodes.len();
        let t0 = Instant::now();
        self.advance(t0);
        match how {
            Some(true) => {
                let c = self.nodes[i].cancel.clone();
                let delay = self.cancel_delay;
                goro::go!(move || {
                    if !delay.is_zero() {
                        goro::sleep(delay);
                    }
                    if let Some(c) = c {
                        c.cancel();
                    }
                })
                .join()
                .unwrap();
            }
            Some(false) => {
                if let Some(c) = &self.nodes[i].cancel {
                    c.cancel();
                }
            }
            None => drop(self.nodes[i].cancel.take()),
        }
        let t1 = Instant::now();
        // Blur first: a node of the subtree whose deadline fell inside the
        // cancel's window may have been marked `DeadlineExceeded` by the
        // cancel itself (`mark` reads the clock), so it must not be
        // recorded as `Canceled`. (Blurring after the marking skipped it:
        // the window of a cancel from a coroutine, a spawn and a join, is
        // long on a loaded machine.)
        self.blur(t0, t1);
        if self.nodes[i].cancel.is_some() || how.is_none() {
            for k in self.subtree(i) {
                if self.nodes[k].err.is_none() {
                    self.nodes[k].err = Some(ContextError::Canceled);
                }
            }
        }
    }

    fn wait_soon(&mut self) {
        let latest = self
            .nodes
            .iter()
            .filter_map(|n| n.deadline)
            .filter(|d| *d < Instant::now() + Duration::from_secs(60))
            .max();
        if let Some(d) = latest {
            let now = Instant::now();
            if d > now {
                std::thread::sleep(d - now);
            }
        }
    }

    fn check(&mut self) {
        for j in 0..self.nodes.len() {
            let t0 = Instant::now();
            self.advance(t0);
            let n = &self.nodes[j];
            let got = n.ctx.err();
            let t1 = Instant::now();
            if !n.uncertain {
                let window = n.err.is_none() && n.deadline.is_some_and(|d| d > t0 && d <= t1);
                if window {
                    assert!(
                        got.is_none() || got == Some(ContextError::DeadlineExceeded),
                        "node {j}: {got:?} at its deadline"
                    );
                } else {
                    assert_eq!(got, n.err, "node {j} (parent {:?})", n.parent);
                }
                // done() agrees with err().
                let closed = n.ctx.done().is_closed();
                if got.is_some() {
                    assert!(closed, "node {j}: err {got:?} but done() open");
                } else if closed {
                    assert!(n.deadline.is_some_and(|d| d <= Instant::now()));
                }
                // A child's deadline is never later than its parent's.
                if let Some(p) = n.parent
                    && let Some(pd) = self.nodes[p].ctx.deadline()
                {
                    assert!(n.ctx.deadline().is_some_and(|d| d <= pd), "node {j}");
                }
            }
            if let Some(e) = got
                && self.nodes[j].err.is_none()
            {
                // The read itself made it done (its deadline passed).
                self.nodes[j].err = Some(e);
            }
        }
    }
}

fn run(ops: Vec<Op>) {
    run_with(ops, Duration::ZERO);
}

fn run_with(ops: Vec<Op>, cancel_delay: Duration) {
    let mut m = Model {
        nodes: Vec::new(),
        cancel_delay,
    };
    for op in ops {
        match op {
            Op::Create(p, k) => m.create(p, k),
            Op::Cancel(i, from_coroutine) => m.cancel(i, Some(from_coroutine)),
            Op::Drop(i) => m.cancel(i, None),
            Op::WaitSoon => m.wait_soon(),
        }
        m.check();
    }
    m.wait_soon();
    m.check();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn done_exactly_when_an_ancestor_was_cancelled_or_expired(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        support::within("context tree property", move || run(ops));
    }
}

/// A cancel whose window covers a deadline of the cancelled subtree: the
/// cancel finds the deadline passed and reports `DeadlineExceeded`. The
/// model used to blur only after marking the subtree `Canceled`, so it
/// expected `Canceled` (the failure seen on a loaded machine, where a
/// cancel from a coroutine takes milliseconds); here the window is made
/// wide on purpose.
#[test]
fn a_cancel_whose_window_covers_a_deadline() {
    support::within("slow cancel", || {
        run_with(
            vec![
                Op::Create(0, Kind::Plain),
                Op::Create(0, Kind::Soon(1)),
                Op::Cancel(0, true),
            ],
            Duration::from_millis(5),
        )
    });
}
