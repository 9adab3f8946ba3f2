//! Select: wait on several channel operations, complete exactly one.
//!
//! Both the [`select!`](crate::select!) macro and the dynamic [`Select`]
//! drive the same engine, [`run`], over a set of *cases*. A case is one
//! `recv` or `send` operation on one channel; a timer receiver's case
//! contributes a due instant instead of a registration, and a `never()`
//! case contributes nothing.
//!
//! # The protocol
//!
//! The select owns one heap [`Waiter`]: a wake handle plus one decision
//! word, which a compare-and-swap moves from `WAITING` to "case *i* chosen"
//! or to "aborted" exactly once (see `waiter.rs`). Every counterpart that
//! wants to complete one of our cases must win that CAS first, so at most
//! one case ever completes, however many channels race.
//!
//! A select runs in rounds of these passes (numbered as in Go's
//! `selectgo`, which has three):
//!
//! 1. **Try every case.** Peek at every case (a lock-free look at its
//!    channel's hint word; timer cases always pass), then visit the cases
//!    that passed in a fresh uniformly random order (Fisher-Yates) and try
//!    each without blocking; the first that succeeds wins. A recv case
//!    completes on the spot; a send case claims what makes it ready (a
//!    waiting receiver, a reserved buffer slot, or the closed state) and
//!    is completed when its message is supplied. A case the peek ruled
//!    out was not ready at that instant, and every ready case is equally
//!    likely to come first in a random order of the rest, so the choice
//!    is uniform among the ready cases. A `never` case (or a disabled
//!    `None` arm) is never ready. A case found not ready remembers how it
//!    knew: the channel's hint word when a lock-free look said so
//!    (`engine.rs` invariant 8), a timer's due instant, or "never again"; a
//!    verdict that needed the channel's lock proves nothing later.
//! 2. **Re-check before giving up.** A select that may not wait (a
//!    `default`, or its deadline has passed) returns "nothing ready" only
//!    if that was true at one instant: pass 1 looked at each case at a
//!    different moment, and a peer may have made one case ready and
//!    another unready in between. So it looks again at what each case
//!    remembered. If every channel's hint word is unchanged and every timer
//!    is still not due, each case was not ready from its first look to its
//!    second; all first looks come before all second looks, so at the
//!    moment between the two passes no case was ready, and the select
//!    returns none. Otherwise it decides by registering (passes 3 and 4),
//!    which needs no such look. A select that may wait skips this pass;
//!    in a coroutine it yields once and repeats pass 1 first (see
//!    `YIELD_BEFORE_ENQUEUE`).
//! 3. **Register on every channel.** Create the waiter and, channel by
//!    channel under each channel's lock, check the case again and push a
//!    packet for it. If a case is ready now, try to abort our own waiter
//!    and start over at 1 (a counterpart may have claimed us first; then
//!    go on to 4). A packet never pairs with another of the same select (a
//!    select sending and receiving on one unbuffered channel must not
//!    rendezvous with itself). From the moment a case's packet is queued
//!    until the waiter is decided, nothing can make that case ready
//!    without claiming the waiter for it (`Chan::register_recv`,
//!    `Chan::register_send`).
//! 4. **Wait, or give up at once.** A select that may not wait tries to
//!    abort right after registering; one that may wait parks until the
//!    waiter is decided or until the earliest of the user's deadline and
//!    the timer cases' due instants, then tries to abort. Losing the
//!    abort CAS means a counterpart claimed a case, maybe while we were
//!    still registering: its completion is on its way and that case is
//!    the selected one, for a non-blocking select too (the operation has
//!    happened, and dropping it would lose a message), even if that means
//!    waiting a moment for the counterpart to finish the hand-off. Winning
//!    the abort at the user's deadline, with every channel case
//!    registered, proves that no channel case was ready at the instant of
//!    the abort (each was not ready when it registered, and could not
//!    become ready since without claiming us). Timer cases have no queue:
//!    they count as not ready if their pass-1 look still holds (not due
//!    yet, or never again); if one came due, start over at 1 instead.
//! 5. **Unregister and collect.** Remove our packets from every channel
//!    except the chosen one (its counterpart already removed it). Then the
//!    chosen case collects its result from its packet. If the round was
//!    aborted without proving "nothing ready" (a timer came due, or pass 3
//!    saw a ready case), start over at 1. If a select sender that had
//!    claimed our receive gave up without a message (`ABANDONED`), start
//!    over at 1 too.
//!
//! So a select returns "nothing ready" only from pass 2 or pass 4, each
//! with an instant at which no case was ready: giving up is linearizable,
//! like completing a case (a single claim, under one channel's lock or by
//! the waiter's CAS). A round that starts over always follows someone
//! else's progress (a case became ready, or was taken, or a timer came
//! due), so a non-blocking select goes round again only while other
//! operations keep completing (lock-free, not wait-free). A select that
//! finds a ready case in pass 1 does nothing more: passes 2 to 5 run only
//! when pass 1 finds nothing, and pass 2 costs one load per case.
//!
//! Locks are taken one channel at a time and never nested, so there is no
//! lock order to respect (Go's `selectgo` locks all channels at once and
//! must sort them). A select with no cases and no deadline parks forever,
//! like Go's `select {}`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro_runtime::park;

use crate::blocks;
use std::task::Waker;

use crate::engine::{Chan, Deadline, SendToken, Side, Stamp};
use crate::err::{
    ReadyTimeoutError, RecvError, SelectTimeoutError, SendError, TryReadyError, TrySelectError,
};
use crate::handles::{Flavor, Receiver, Sender};
use crate::waiter::{Decision, OwnedPacket, Waiter};

/// What pass 3 made of a case.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// A packet waits on the channel.
    Waiting,
    /// The case is ready now: abort and look again.
    Ready,
    /// Nothing to register (timer or `never` case).
    Skip,
}

/// One case of a select, as the engine sees it. Implementation detail of
/// `select!`; not a stable API.
#[doc(hidden)]
pub trait Case {
    /// Pass 1, first look: false only if the case is provably not ready
    /// now, remembering how it knew as a failed [`try_now`](Case::try_now)
    /// does; true if it may be ready (then `try_now` decides). Completes
    /// and claims nothing, and is cheap: a load, no lock.
    fn peek(&mut self) -> bool {
        true
    }
    /// Pass 1: complete (recv) or claim (send) the operation if it needs
    /// no waiting. True if this case is chosen. When false, the case
    /// remembers how it knew, for [`still_idle`](Case::still_idle).
    fn try_now(&mut self) -> bool;
    /// Pass 2 (and pass 4 for timer cases): true only if this case has
    /// provably not been ready at any moment since the `try_now` that
    /// returned false.
    fn still_idle(&self) -> bool;
    /// Whether this case takes part in pass 3 (it is on a channel with
    /// queues), so that a registration proves it not ready.
    fn registers(&self) -> bool;
    /// Pass 3: enqueue a packet for case `index` of `waiter`.
    fn register(&mut self, waiter: &Waiter, index: usize) -> Registration;
    /// Pass 5, losers: remove and free our packet, if any.
    fn unregister(&mut self);
    /// Pass 5, winner: collect the result of the chosen case and free its
    /// packet. False if the counterpart gave up and the select must start
    /// over.
    fn accept(&mut self) -> bool;
    /// For timer cases: when the case may become ready.
    fn deadline(&self) -> Option<Instant>;
}

/// A list of cases the engine can run. Implementation detail of
/// `select!`; not a stable API.
#[doc(hidden)]
pub trait CaseSet {
    /// Number of case slots.
    fn count(&self) -> usize;
    /// The case in slot `i`, if that slot holds one.
    fn case(&mut self, i: usize) -> Option<&mut dyn Case>;
}

impl<'x, 'y> CaseSet for [&'x mut (dyn Case + 'y)] {
    fn count(&self) -> usize {
        self.len()
    }

    fn case(&mut self, i: usize) -> Option<&mut dyn Case> {
        Some(&mut *self[i])
    }
}

/// How a case found not ready in pass 1 knew it (see [`Case::still_idle`]).
#[derive(Clone, Copy, Debug)]
enum Idle {
    /// No lasting proof: not looked at yet, or the look needed the lock.
    Unknown,
    /// A lock-free look at the channel's hint word said "not ready".
    Hint(Stamp),
    /// A timer case whose message is not due before this instant.
    Until(Instant),
    /// A case that can never be ready again (`never()`, a timer that
    /// fired or never will).
    Forever,
    /// A stoppable timer's look, valid while its `seq` is unchanged and
    /// nothing came due (timer.rs invariant 4).
    Sched(u64),
}

impl Idle {
    /// From a channel's pass-1 verdict.
    #[inline]
    fn from_stamp(stamp: Option<Stamp>) -> Idle {
        stamp.map_or(Idle::Unknown, Idle::Hint)
    }

    /// From a timer's pass-1 verdict (anything but `Ready`).
    #[inline]
    fn from_poll(poll: crate::timer::Poll) -> Idle {
        match poll {
            crate::timer::Poll::Later(due) => Idle::Until(due),
            _ => Idle::Forever,
        }
    }

    /// Whether the look still holds; `chan` is the case's channel, if it
    /// has one.
    #[inline]
    fn holds<T>(self, chan: Option<&Chan<T>>) -> bool {
        match self {
            Idle::Unknown => false,
            Idle::Hint(stamp) => chan.is_some_and(|c| c.unchanged_since(stamp)),
            // Nobody can take a message that is not due yet, so "not due
            // now" means "not ready at any time since the first look".
            Idle::Until(due) => goro_runtime::testing::now() < due,
            Idle::Forever => true,
            // Checked by the case itself, which has the schedule.
            Idle::Sched(_) => false,
        }
    }
}

/// Cases handled without allocating a permutation buffer.
const INLINE_CASES: usize = 32;

/// Whether a blocking select in a coroutine yields once before pass 3.
///
/// Enqueueing on N channels and dequeuing from N - 1 costs 2N - 1 lock
/// round trips and N allocations, several times a context switch. A select
/// that finds nothing ready has often just woken the very coroutines that
/// will make it ready (a receiver that took from a blocked sender put that
/// sender in its worker's `runnext` slot); letting them run first turns
/// "block on every other message" into "find the next message ready". The
/// yield is bounded (once per call) and is followed by the normal parking
/// protocol, so it changes scheduling, never semantics. Plain threads do not
/// yield (a `sched_yield` costs more than it saves).
const YIELD_BEFORE_ENQUEUE: bool = true;

/// How pass 4 ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// A counterpart chose this case.
    Chosen(usize),
    /// We aborted at the user's deadline with every channel case
    /// registered: no channel case was ready at that instant.
    GaveUp,
    /// We aborted for another reason (a case was ready in pass 3, or a
    /// timer case came due): look again.
    Retry,
}

/// Runs a select over `cases` (see the module docs). Returns the index of
/// the chosen case, or `None` if `deadline` passed (immediately for
/// `Deadline::Now`) with nothing ready. Implementation detail of
/// `select!`; not a stable API.
#[doc(hidden)]
#[track_caller]
pub fn run<S: CaseSet + ?Sized>(cases: &mut S, deadline: Deadline) -> Option<usize> {
    run_with(cases, deadline, false)
}

/// [`run`] for `select_biased!`: pass 1 (and pass 3) visit the cases in
/// their order, so the first ready case wins. Not a stable API.
#[doc(hidden)]
#[track_caller]
pub fn run_biased<S: CaseSet + ?Sized>(cases: &mut S, deadline: Deadline) -> Option<usize> {
    run_with(cases, deadline, true)
}

#[track_caller]
fn run_with<S: CaseSet + ?Sized>(cases: &mut S, deadline: Deadline, biased: bool) -> Option<usize> {
    let n = cases.count();
    let mut inline = [0u32; INLINE_CASES];
    let mut heap = Vec::new();
    let order: &mut [u32] = if n <= INLINE_CASES {
        &mut inline[..n]
    } else {
        heap.resize(n, 0u32);
        &mut heap[..]
    };
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    let mut draws = Draws::new();
    let mut yielded = false;
    loop {
        // Pass 1: look for a ready case, in a uniformly random order.
        // First every case is peeked at (a lock-free load each) and those
        // that may be ready move to the front of `order`; only they are
        // tried, in an order drawn lazily (Fisher-Yates, one position at a
        // time): when one case may be ready, that is one peek per case and
        // one try, with no random draw. The peek loop runs a fixed number
        // of times, so idle arms (a context's `done`, a quit channel) cost
        // a load each and not the mispredicted exits of a randomly ordered
        // loop of tries. The choice is uniform among the ready cases: the
        // procedure treats the cases alike, and a case whose peek said "not
        // ready" was not ready at that instant (its verdict is kept for
        // pass 2). `order` stays a permutation of all the cases, for pass 3.
        let mut live = 0;
        if biased {
            for i in 0..n {
                if let Some(c) = cases.case(i)
                    && c.try_now()
                {
                    return Some(i);
                }
            }
        } else {
            for k in 0..n {
                let i = order[k];
                if let Some(c) = cases.case(i as usize)
                    && c.peek()
                {
                    order.swap(live, k);
                    live += 1;
                }
            }
        }
        while live > 0 {
            let j = if live > 1 { draws.below(live) } else { 0 };
            let i = order[j];
            if let Some(c) = cases.case(i as usize)
                && c.try_now()
            {
                return Some(i as usize);
            }
            order.swap(j, live - 1);
            live -= 1;
        }
        let give_up = deadline.expired();
        if give_up {
            // Pass 2: give up only if every pass-1 verdict still holds.
            if (0..n).all(|i| cases.case(i).is_none_or(|c| c.still_idle())) {
                return None;
            }
        } else if YIELD_BEFORE_ENQUEUE && !yielded && n > 1 && goro_runtime::is_coroutine() {
            // Pass 1 again after letting the coroutines we just woke run
            // once (see `YIELD_BEFORE_ENQUEUE`).
            yielded = true;
            goro_runtime::yield_now();
            continue;
        }

        // Pass 3: enqueue on every channel. The packets point at this
        // waiter, so it is freed only after pass 5 freed them all; if
        // anything unwinds in between it is leaked instead.
        let waiter_block = blocks::allocate(Waiter::new());
        // SAFETY: the block holds a live waiter until the `drop_with` at
        // the end of this round, after the last use of this reference.
        let waiter: &Waiter = unsafe { waiter_block.as_ref() };
        let mut became_ready = false;
        for &i in order.iter() {
            let Some(c) = cases.case(i as usize) else {
                continue;
            };
            if c.register(waiter, i as usize) == Registration::Ready {
                became_ready = true;
                break;
            }
            if !waiter.is_waiting() {
                break; // claimed already: stop enqueueing
            }
        }
        // Pass 4: abort now if a case became ready or we may not wait;
        // otherwise park until decided, a timer case is due, or the
        // deadline passes, then abort. A lost abort means a claim won.
        let mut abort_now = became_ready || give_up;
        let ended = loop {
            match waiter.decision() {
                Decision::Case(k) => break Ended::Chosen(k),
                Decision::Aborted => unreachable!("goro-channel: aborted by someone else"),
                Decision::Waiting => {}
            }
            if !abort_now {
                // Recomputed after every wake-up: a stoppable timer's
                // `reset` may have moved its due instant (and woken us).
                let mut wake = match deadline {
                    Deadline::At(t) => Some(t),
                    _ => None,
                };
                for i in 0..n {
                    if let Some(d) = cases.case(i).and_then(|c| c.deadline()) {
                        wake = Some(wake.map_or(d, |w| w.min(d)));
                    }
                }
                match wake {
                    Some(t) if goro_runtime::testing::now() >= t => abort_now = true,
                    Some(t) => {
                        park::park_deadline_with(t, park::WaitKind::Select { arms: n as u32 })
                    }
                    None => park::park_with(park::WaitKind::Select { arms: n as u32 }),
                }
                continue;
            }
            if waiter.try_abort() {
                break if !became_ready && deadline.expired() {
                    Ended::GaveUp
                } else {
                    Ended::Retry
                };
            }
            // Claimed: the completion is on its way; the next look at the
            // decision sees the case.
        };

        // Pass 5: dequeue from the losers; the winner collects.
        let chosen = match ended {
            Ended::Chosen(k) => Some(k),
            _ => None,
        };
        for i in 0..n {
            if Some(i) != chosen
                && let Some(c) = cases.case(i)
            {
                c.unregister();
            }
        }
        let done = match chosen {
            Some(k) => cases
                .case(k)
                .expect("goro-channel: chose an empty case slot")
                .accept(),
            None => false,
        };
        // SAFETY: pass 5 freed every packet of this round (unregister or
        // accept), so nothing points at the waiter any more, and `waiter`
        // is not used after this.
        unsafe { blocks::drop_with(waiter_block, |_| ()) };
        if done {
            return chosen;
        }
        // Every channel case registered and none was ready at the abort;
        // the timer cases have no registration to prove it, so their
        // pass-1 look must still hold (pass 4).
        if ended == Ended::GaveUp
            && (0..n).all(|i| {
                cases
                    .case(i)
                    .is_none_or(|c| c.registers() || c.still_idle())
            })
        {
            return None;
        }
    }
}

/// What a `select!` `recv(..)` arm accepts: a [`Receiver`], a reference
/// to one, an `Option` of either (`None` disables the arm, as Go's nil
/// channel does), or a [`Timer`](crate::Timer)/[`Ticker`](crate::Ticker).
/// Implementation detail of `select!`; not a stable API.
#[doc(hidden)]
pub trait RecvTarget {
    /// The message type.
    type Msg;
    /// The receiver, or `None` for a disabled arm.
    fn receiver(&self) -> Option<&Receiver<Self::Msg>>;
}

/// What a `select!` `send(..)` arm accepts: a [`Sender`], a reference to
/// one, or an `Option` of either (`None` disables the arm, as Go's nil
/// channel does). Implementation detail of `select!`; not a stable API.
#[doc(hidden)]
pub trait SendTarget {
    /// The message type.
    type Msg;
    /// The sender, or `None` for a disabled arm.
    fn sender(&self) -> Option<&Sender<Self::Msg>>;
}

impl<T> RecvTarget for Receiver<T> {
    type Msg = T;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<T>> {
        Some(self)
    }
}

impl<T> RecvTarget for Option<Receiver<T>> {
    type Msg = T;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<T>> {
        self.as_ref()
    }
}

impl<T> RecvTarget for Option<&Receiver<T>> {
    type Msg = T;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<T>> {
        *self
    }
}

impl RecvTarget for crate::Timer {
    type Msg = Instant;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<Instant>> {
        Some(crate::Timer::receiver(self))
    }
}

impl RecvTarget for crate::Ticker {
    type Msg = Instant;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<Instant>> {
        Some(crate::Ticker::receiver(self))
    }
}

impl<X: RecvTarget + ?Sized> RecvTarget for &X {
    type Msg = X::Msg;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<X::Msg>> {
        (**self).receiver()
    }
}

impl<X: RecvTarget + ?Sized> RecvTarget for &mut X {
    type Msg = X::Msg;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<X::Msg>> {
        (**self).receiver()
    }
}

impl<X: RecvTarget + ?Sized> RecvTarget for Box<X> {
    type Msg = X::Msg;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<X::Msg>> {
        (**self).receiver()
    }
}

impl<X: RecvTarget + ?Sized> RecvTarget for Arc<X> {
    type Msg = X::Msg;
    #[inline]
    fn receiver(&self) -> Option<&Receiver<X::Msg>> {
        (**self).receiver()
    }
}

impl<T> SendTarget for Sender<T> {
    type Msg = T;
    #[inline]
    fn sender(&self) -> Option<&Sender<T>> {
        Some(self)
    }
}

impl<T> SendTarget for Option<Sender<T>> {
    type Msg = T;
    #[inline]
    fn sender(&self) -> Option<&Sender<T>> {
        self.as_ref()
    }
}

impl<T> SendTarget for Option<&Sender<T>> {
    type Msg = T;
    #[inline]
    fn sender(&self) -> Option<&Sender<T>> {
        *self
    }
}

impl<X: SendTarget + ?Sized> SendTarget for &X {
    type Msg = X::Msg;
    #[inline]
    fn sender(&self) -> Option<&Sender<X::Msg>> {
        (**self).sender()
    }
}

impl<X: SendTarget + ?Sized> SendTarget for &mut X {
    type Msg = X::Msg;
    #[inline]
    fn sender(&self) -> Option<&Sender<X::Msg>> {
        (**self).sender()
    }
}

impl<X: SendTarget + ?Sized> SendTarget for Box<X> {
    type Msg = X::Msg;
    #[inline]
    fn sender(&self) -> Option<&Sender<X::Msg>> {
        (**self).sender()
    }
}

impl<X: SendTarget + ?Sized> SendTarget for Arc<X> {
    type Msg = X::Msg;
    #[inline]
    fn sender(&self) -> Option<&Sender<X::Msg>> {
        (**self).sender()
    }
}

/// The receiver of a `recv(..)` arm's expression. Not a stable API.
#[doc(hidden)]
#[inline]
pub fn recv_target<X: RecvTarget + ?Sized>(x: &X) -> Option<&Receiver<X::Msg>> {
    x.receiver()
}

/// The sender of a `send(..)` arm's expression. Not a stable API.
#[doc(hidden)]
#[inline]
pub fn send_target<X: SendTarget + ?Sized>(x: &X) -> Option<&Sender<X::Msg>> {
    x.sender()
}

/// A `recv` case. Implementation detail of `select!`; not a stable API.
#[doc(hidden)]
pub struct RecvCase<'a, T> {
    /// `None`: a disabled arm, never ready (Go's nil channel).
    rx: Option<&'a Receiver<T>>,
    packet: Option<OwnedPacket<T>>,
    result: Option<Result<T, RecvError>>,
    idle: Idle,
    /// A stoppable timer case's waker, left on the schedule in pass 3.
    watch: Option<std::task::Waker>,
}

impl<'a, T> RecvCase<'a, T> {
    /// A case receiving from `rx`.
    pub fn new(rx: Option<&'a Receiver<T>>) -> RecvCase<'a, T> {
        RecvCase {
            rx,
            packet: None,
            result: None,
            idle: Idle::Unknown,
            watch: None,
        }
    }

    /// The receiver's flavor; a disabled arm is a `never()` channel.
    #[inline]
    fn flavor(&self) -> &'a Flavor<T> {
        match self.rx {
            Some(r) => &r.flavor,
            None => &Flavor::Never(PhantomData),
        }
    }

    /// The result of the chosen case.
    ///
    /// # Panics
    ///
    /// If this case was not chosen.
    pub fn take(&mut self) -> Result<T, RecvError> {
        self.result
            .take()
            .expect("goro-channel: took the result of a case that was not chosen")
    }
}

impl<T> Case for RecvCase<'_, T> {
    #[inline]
    fn peek(&mut self) -> bool {
        match self.flavor() {
            Flavor::Chan(c) => match c.select_peek(Side::Recv) {
                Some(stamp) => {
                    self.idle = Idle::Hint(stamp);
                    false
                }
                None => true,
            },
            Flavor::Never(_) => {
                self.idle = Idle::Forever;
                false
            }
            // Timers decide in `try_now` (one clock read either way).
            _ => true,
        }
    }

    fn try_now(&mut self) -> bool {
        let r = match self.flavor() {
            Flavor::Chan(c) => match c.select_recv() {
                Ok(r) => r,
                Err(stamp) => {
                    self.idle = Idle::from_stamp(stamp);
                    return false;
                }
            },
            Flavor::At(a, f) => match a.try_take() {
                crate::timer::Poll::Ready(i) => Ok(f(i)),
                p => {
                    self.idle = Idle::from_poll(p);
                    return false;
                }
            },
            Flavor::Tick(t, f) => match t.try_take() {
                crate::timer::Poll::Ready(i) => Ok(f(i)),
                p => {
                    self.idle = Idle::from_poll(p);
                    return false;
                }
            },
            Flavor::Sched(s, f) => match s.try_take(None) {
                (crate::timer::Poll::Ready(i), _) => Ok(f(i)),
                (_, seq) => {
                    self.idle = Idle::Sched(seq);
                    return false;
                }
            },
            Flavor::Never(_) => {
                self.idle = Idle::Forever;
                return false;
            }
        };
        self.result = Some(r);
        true
    }

    fn still_idle(&self) -> bool {
        let chan = match self.flavor() {
            Flavor::Chan(c) => Some(&**c),
            Flavor::Sched(s, _) => {
                return matches!(self.idle, Idle::Sched(seq) if s.still_idle(seq));
            }
            _ => None,
        };
        self.idle.holds(chan)
    }

    fn registers(&self) -> bool {
        matches!(self.flavor(), Flavor::Chan(_))
    }

    fn register(&mut self, waiter: &Waiter, index: usize) -> Registration {
        match self.flavor() {
            Flavor::Chan(c) => match c.register_recv(waiter, index) {
                Some(p) => {
                    self.packet = Some(p);
                    Registration::Waiting
                }
                None => Registration::Ready,
            },
            Flavor::Sched(s, _) => {
                // Not a registration that proves anything (the pass-1 look
                // does, through `still_idle`): only a way to be woken when
                // a `stop`/`reset` moves the due instant.
                let w = park::current().into_waker();
                let ready = s.watch(&w);
                self.watch = Some(w);
                if ready {
                    Registration::Ready
                } else {
                    Registration::Skip
                }
            }
            _ => Registration::Skip,
        }
    }

    fn unregister(&mut self) {
        if let (Some(p), Flavor::Chan(c)) = (self.packet.take(), self.flavor()) {
            c.unregister_recv(p);
        }
        if let (Some(w), Flavor::Sched(s, _)) = (self.watch.take(), self.flavor()) {
            s.unwatch(&w);
        }
    }

    fn accept(&mut self) -> bool {
        let p = self
            .packet
            .take()
            .expect("goro-channel: a chosen receive case without its packet");
        match Chan::accept_recv(p) {
            Some(r) => {
                self.result = Some(r);
                true
            }
            None => false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.flavor() {
            Flavor::At(a, _) => a.next_due(),
            Flavor::Tick(t, _) => t.next_due(),
            Flavor::Sched(s, _) => s.next_due(),
            _ => None,
        }
    }
}

/// A `send` case. Implementation detail of `select!`; not a stable API.
#[doc(hidden)]
pub struct SendCase<'a, T> {
    /// `None`: a disabled arm, never ready (Go's nil channel).
    tx: Option<&'a Sender<T>>,
    packet: Option<OwnedPacket<T>>,
    token: Option<SendToken<T>>,
    idle: Idle,
}

impl<'a, T> SendCase<'a, T> {
    /// A case sending on `tx`.
    pub fn new(tx: Option<&'a Sender<T>>) -> SendCase<'a, T> {
        SendCase {
            tx,
            packet: None,
            token: None,
            idle: Idle::Unknown,
        }
    }

    /// Completes the chosen case with its message.
    ///
    /// # Panics
    ///
    /// If this case was not chosen.
    pub fn complete(&mut self, msg: T) -> Result<(), SendError<T>> {
        let token = self
            .token
            .take()
            .expect("goro-channel: completed a send case that was not chosen");
        self.tx
            .expect("goro-channel: completed a disabled send case")
            .chan
            .complete_send(token, msg)
    }
}

impl<T> Case for SendCase<'_, T> {
    #[inline]
    fn peek(&mut self) -> bool {
        let Some(tx) = self.tx else {
            self.idle = Idle::Forever;
            return false;
        };
        match tx.chan.select_peek(Side::Send) {
            Some(stamp) => {
                self.idle = Idle::Hint(stamp);
                false
            }
            None => true,
        }
    }

    fn try_now(&mut self) -> bool {
        let Some(tx) = self.tx else {
            self.idle = Idle::Forever;
            return false;
        };
        match tx.chan.try_select_send() {
            Ok(t) => {
                self.token = Some(t);
                true
            }
            Err(stamp) => {
                self.idle = Idle::from_stamp(stamp);
                false
            }
        }
    }

    fn still_idle(&self) -> bool {
        match self.tx {
            Some(tx) => self.idle.holds(Some(&*tx.chan)),
            None => true,
        }
    }

    fn registers(&self) -> bool {
        self.tx.is_some()
    }

    fn register(&mut self, waiter: &Waiter, index: usize) -> Registration {
        let Some(tx) = self.tx else {
            return Registration::Skip;
        };
        match tx.chan.register_send(waiter, index) {
            Some(p) => {
                self.packet = Some(p);
                Registration::Waiting
            }
            None => Registration::Ready,
        }
    }

    fn unregister(&mut self) {
        if let (Some(p), Some(tx)) = (self.packet.take(), self.tx) {
            tx.chan.unregister_send(p);
        }
    }

    fn accept(&mut self) -> bool {
        let p = self
            .packet
            .take()
            .expect("goro-channel: a chosen send case without its packet");
        self.token = Some(Chan::accept_send(p));
        true
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }
}

impl<T> Drop for SendCase<'_, T> {
    fn drop(&mut self) {
        // (A packet still registered here means the engine unwound; it is
        // leaked, which is safe, rather than freed.)
        // Chosen but never completed (the message expression panicked):
        // give back the slot or the claimed receiver.
        if let (Some(t), Some(tx)) = (self.token.take(), self.tx) {
            tx.chan.release_send(t);
        }
    }
}

// ---- the dynamic Select -------------------------------------------------

/// Any value, type-erased but for its destructor.
trait Erased {}
impl<X: ?Sized> Erased for X {}

/// A chosen send case waiting for its message; gives its grant back if
/// dropped unused.
struct PendingSend<T> {
    chan: Arc<Chan<T>>,
    token: Option<SendToken<T>>,
}

impl<T> Drop for PendingSend<T> {
    fn drop(&mut self) {
        if let Some(t) = self.token.take() {
            self.chan.release_send(t);
        }
    }
}

/// What a chosen case of a dynamic select left for its
/// [`SelectedOperation`].
enum Outcome<'a> {
    /// A `Box<Result<T, RecvError>>` for the receiver's `T`.
    Recv(Box<dyn Erased + 'a>),
    /// A `Box<PendingSend<T>>` for the sender's `T`.
    Send(Box<dyn Erased + 'a>),
}

/// A case of a dynamic select: a [`Case`] that can hand its outcome over.
/// `Send` (the `T` of every case is `Send`), so a `Select` is.
trait DynCase<'a>: Case + Send {
    /// Readiness (`Select::ready`): whether the operation would complete
    /// now, taking nothing; with `watch`, leaves a waker where it will be
    /// woken when that may change.
    fn ready_now(&self, watch: Option<(&mut Option<u64>, &Waker)>) -> bool;
    /// Withdraws what `ready_now` left.
    fn unwatch(&self, id: Option<u64>, waker: &Waker);
    /// The channel's identity (its allocation's address).
    fn id(&self) -> usize;
    /// Moves the chosen case's result out.
    fn outcome(&mut self) -> Outcome<'a>;
    /// A new, idle case on the same channel (for `Clone`).
    fn fresh(&self) -> Box<dyn DynCase<'a> + 'a>;
}

impl<'a, T: Send + 'a> DynCase<'a> for RecvCase<'a, T> {
    fn ready_now(&self, watch: Option<(&mut Option<u64>, &Waker)>) -> bool {
        match self.flavor() {
            Flavor::Chan(c) => c.ready(Side::Recv, watch),
            Flavor::At(a, _) => a.len() > 0,
            Flavor::Tick(t, _) => t.len() > 0,
            Flavor::Sched(sc, _) => match watch {
                Some((_, w)) => sc.watch(w),
                None => sc.len() > 0,
            },
            Flavor::Never(_) => false,
        }
    }

    fn unwatch(&self, id: Option<u64>, waker: &Waker) {
        match self.flavor() {
            Flavor::Chan(c) => c.unwatch(Side::Recv, id),
            Flavor::Sched(sc, _) => sc.unwatch(waker),
            _ => {}
        }
    }

    fn id(&self) -> usize {
        self.rx.map_or(0, |r| r.id())
    }

    fn outcome(&mut self) -> Outcome<'a> {
        Outcome::Recv(Box::new(self.take()))
    }

    fn fresh(&self) -> Box<dyn DynCase<'a> + 'a> {
        Box::new(RecvCase::new(self.rx))
    }
}

impl<'a, T: Send + 'a> DynCase<'a> for SendCase<'a, T> {
    fn ready_now(&self, watch: Option<(&mut Option<u64>, &Waker)>) -> bool {
        self.tx.is_some_and(|tx| tx.chan.ready(Side::Send, watch))
    }

    fn unwatch(&self, id: Option<u64>, _: &Waker) {
        if let Some(tx) = self.tx {
            tx.chan.unwatch(Side::Send, id);
        }
    }

    fn id(&self) -> usize {
        self.tx
            .map_or(0, |tx| Arc::as_ptr(&tx.chan) as *const () as usize)
    }

    fn outcome(&mut self) -> Outcome<'a> {
        Outcome::Send(Box::new(PendingSend {
            chan: self
                .tx
                .expect("goro-channel: a dynamic send case is never disabled")
                .chan
                .clone(),
            token: self.token.take(),
        }))
    }

    fn fresh(&self) -> Box<dyn DynCase<'a> + 'a> {
        Box::new(SendCase::new(self.tx))
    }
}

struct DynCases<'s, 'a>(&'s mut [Option<Box<dyn DynCase<'a> + 'a>>]);

impl CaseSet for DynCases<'_, '_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn case(&mut self, i: usize) -> Option<&mut dyn Case> {
        match &mut self.0[i] {
            Some(c) => Some(&mut **c as &mut dyn Case),
            None => None,
        }
    }
}

/// Selects over a set of operations chosen at run time, like crossbeam's
/// `Select`.
///
/// Add operations with [`recv`](Select::recv) and [`send`](Select::send)
/// (each returns the operation's index), then call
/// [`select`](Select::select), [`try_select`](Select::try_select) or
/// [`select_timeout`](Select::select_timeout). Exactly one operation is
/// chosen, uniformly at random among the ready ones; it must then be
/// completed with [`SelectedOperation::recv`] or
/// [`SelectedOperation::send`] on the same channel.
///
/// Semantics are those of [`select!`](crate::select!): closed channels make
/// their operations ready, [`never()`](crate::never()) receivers are never
/// chosen, and a `Select` with no operations blocks forever in `select()`,
/// like Go's `select {}` (`select_timeout` returns after its timeout).
///
/// ```
/// use goro::chan::{bounded, Select};
///
/// let (tx1, rx1) = bounded::<i32>(1);
/// let (tx2, rx2) = bounded::<&str>(1);
/// tx2.send("two").unwrap();
///
/// let mut sel = Select::new();
/// let i1 = sel.recv(&rx1);
/// let i2 = sel.recv(&rx2);
/// let op = sel.select();
/// match op.index() {
///     i if i == i1 => panic!("rx1 is empty: {:?}", op.recv(&rx1)),
///     i if i == i2 => assert_eq!(op.recv(&rx2), Ok("two")),
///     _ => unreachable!(),
/// }
/// # drop(tx1);
/// ```
pub struct Select<'a> {
    cases: Vec<Option<Box<dyn DynCase<'a> + 'a>>>,
    /// `new_biased`: try operations in the order they were added.
    biased: bool,
}

// SAFETY: `Select` is `Send` on its own (every case is `Send`: its `T` is
// `Send`). Through `&Select` the only things reachable are `Debug`
// (counting the slots) and `Clone` (`DynCase::fresh`, which reads the
// case's channel reference, a `&Receiver<T>`/`&Sender<T>` that is `Sync`
// for `T: Send`). Every method that touches a case's packet, token or
// result takes `&mut self`. So sharing a `&Select` between threads
// exposes nothing that is not `Sync`.
unsafe impl Sync for Select<'_> {}

impl<'a> Select<'a> {
    /// An empty select.
    ///
    /// ```
    /// let sel = goro::chan::Select::new();
    /// # drop(sel);
    /// ```
    pub fn new() -> Select<'a> {
        Select {
            cases: Vec::new(),
            biased: false,
        }
    }

    /// An empty select that tries its operations in the order they were
    /// added, instead of at random: when several are ready, the first
    /// added wins (for priorities; a busy first operation can starve the
    /// others). As crossbeam's `Select::new_biased`.
    ///
    /// ```
    /// let (tx1, rx1) = goro::chan::bounded::<u8>(1);
    /// let (tx2, rx2) = goro::chan::bounded::<u8>(1);
    /// tx1.send(1).unwrap();
    /// tx2.send(2).unwrap();
    /// let mut sel = goro::chan::Select::new_biased();
    /// let high = sel.recv(&rx1);
    /// sel.recv(&rx2);
    /// let op = sel.select();
    /// assert_eq!(op.index(), high);
    /// assert_eq!(op.recv(&rx1), Ok(1));
    /// ```
    pub fn new_biased() -> Select<'a> {
        Select {
            cases: Vec::new(),
            biased: true,
        }
    }

    /// Adds a receive operation on `r`; returns its index.
    ///
    /// ```
    /// let (_tx, rx) = goro::chan::bounded::<u8>(0);
    /// let mut sel = goro::chan::Select::new();
    /// assert_eq!(sel.recv(&rx), 0);
    /// ```
    pub fn recv<T: Send + 'a>(&mut self, r: &'a Receiver<T>) -> usize {
        self.cases.push(Some(Box::new(RecvCase::new(Some(r)))));
        self.cases.len() - 1
    }

    /// Adds a send operation on `s`; returns its index. The message is
    /// given only if this operation is chosen, to
    /// [`SelectedOperation::send`].
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// let mut sel = goro::chan::Select::new();
    /// let i = sel.send(&tx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// op.send(&tx, 7).unwrap();
    /// assert_eq!(rx.recv(), Ok(7));
    /// ```
    pub fn send<T: Send + 'a>(&mut self, s: &'a Sender<T>) -> usize {
        self.cases.push(Some(Box::new(SendCase::new(Some(s)))));
        self.cases.len() - 1
    }

    /// Removes the operation with index `index`; the other indices stay.
    ///
    /// # Panics
    ///
    /// If there is no such operation (never added, or already removed).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// tx.send(1).unwrap();
    /// let (_tx2, rx2) = goro::chan::bounded::<u8>(1);
    /// let mut sel = goro::chan::Select::new();
    /// let a = sel.recv(&rx);
    /// let b = sel.recv(&rx2);
    /// sel.remove(a);
    /// assert!(sel.try_select().is_err());
    /// # let _ = b;
    /// ```
    pub fn remove(&mut self, index: usize) {
        let slot = self
            .cases
            .get_mut(index)
            .filter(|c| c.is_some())
            .unwrap_or_else(|| panic!("goro-channel: no operation with index {index} to remove"));
        *slot = None;
    }

    #[track_caller]
    fn run(&mut self, deadline: Deadline) -> Option<SelectedOperation<'a>> {
        let k = run_with(&mut DynCases(&mut self.cases), deadline, self.biased)?;
        let case = self.cases[k]
            .as_mut()
            .expect("goro-channel: chose a removed operation");
        Some(SelectedOperation {
            index: k,
            id: case.id(),
            outcome: Some(case.outcome()),
            _lifetime: PhantomData,
        })
    }

    /// Chooses a ready operation without blocking.
    ///
    /// # Errors
    ///
    /// [`TrySelectError`] if none is ready.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.try_select().is_err());
    /// tx.send(1).unwrap();
    /// assert_eq!(sel.try_select().unwrap().recv(&rx), Ok(1));
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        self.run(Deadline::Now).ok_or(TrySelectError)
    }

    /// Blocks until an operation is ready and chooses it. With no
    /// operations, blocks forever (Go's `select {}`).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(0);
    /// goro::go!(move || tx.send(9).unwrap());
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&rx);
    /// assert_eq!(sel.select().recv(&rx), Ok(9));
    /// ```
    #[track_caller]
    pub fn select(&mut self) -> SelectedOperation<'a> {
        self.run(Deadline::Never)
            .expect("goro-channel: a blocking select returned without a choice")
    }

    /// Blocks until an operation is ready, for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] if none became ready in time.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (_tx, rx) = goro::chan::bounded::<u8>(0);
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select_timeout(Duration::from_millis(1)).is_err());
    /// ```
    #[track_caller]
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.run(Deadline::after(timeout)).ok_or(SelectTimeoutError)
    }

    /// Blocks until an operation is ready, until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] if none became ready in time.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let t = goro::chan::after(Duration::from_millis(1));
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&t);
    /// let op = sel.select_deadline(Instant::now() + Duration::from_secs(5)).unwrap();
    /// assert!(op.recv(&t).is_ok());
    /// ```
    #[track_caller]
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.run(Deadline::At(deadline)).ok_or(SelectTimeoutError)
    }
}

impl<'a> Select<'a> {
    /// Readiness, crossbeam's way: waits until some operation *could*
    /// complete, and returns its index without performing it (nothing is
    /// received, sent or reserved). Then try it, with `try_recv` or
    /// `try_send`: another party may have taken the chance meanwhile, in
    /// which case call `ready` again. With no operations, blocks forever.
    #[track_caller]
    fn ready_run(&mut self, deadline: Deadline) -> Option<usize> {
        let n = self.cases.len();
        let mut order: Vec<usize> = (0..n).collect();
        loop {
            if !self.biased {
                fastrand::shuffle(&mut order);
            }
            for &i in &order {
                if self.cases[i].as_ref().is_some_and(|c| c.ready_now(None)) {
                    return Some(i);
                }
            }
            if deadline.expired() {
                return None;
            }
            // Leave a waker everywhere, look once more, then park until
            // one of them (or a timer case's due time, or the deadline)
            // wakes us.
            let waker = park::current().into_waker();
            let mut ids = vec![None; n];
            let mut found = None;
            for &i in &order {
                if let Some(c) = &self.cases[i]
                    && c.ready_now(Some((&mut ids[i], &waker)))
                {
                    found = Some(i);
                    break;
                }
            }
            if found.is_none() {
                let mut wake = match deadline {
                    Deadline::At(t) => Some(t),
                    _ => None,
                };
                for c in self.cases.iter().flatten() {
                    if let Some(d) = c.deadline() {
                        wake = Some(wake.map_or(d, |w| w.min(d)));
                    }
                }
                match wake {
                    Some(t) => park::park_deadline(t),
                    None => park::park(),
                }
            }
            for (i, c) in self.cases.iter().enumerate() {
                if let Some(c) = c {
                    c.unwatch(ids[i], &waker);
                }
            }
            if found.is_some() {
                return found;
            }
        }
    }

    /// Blocks until an operation is ready and returns its index, without
    /// performing it. With no operations, blocks forever.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// goro::go!(move || tx.send(1).unwrap());
    /// let mut sel = goro::chan::Select::new();
    /// let i = sel.recv(&rx);
    /// assert_eq!(sel.ready(), i);
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    #[track_caller]
    pub fn ready(&mut self) -> usize {
        self.ready_run(Deadline::Never)
            .expect("goro-channel: a blocking ready returned without an index")
    }

    /// The index of an operation that is ready now, without performing it.
    ///
    /// # Errors
    ///
    /// [`TryReadyError`] if none is ready.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.try_ready().is_err());
    /// tx.send(1).unwrap();
    /// assert_eq!(sel.try_ready(), Ok(0));
    /// ```
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.ready_run(Deadline::Now).ok_or(TryReadyError)
    }

    /// As [`ready`](Select::ready), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ReadyTimeoutError`] if none became ready in time.
    ///
    /// ```
    /// let (_tx, rx) = goro::chan::bounded::<u8>(1);
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.ready_timeout(std::time::Duration::from_millis(1)).is_err());
    /// ```
    #[track_caller]
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        self.ready_run(Deadline::after(timeout))
            .ok_or(ReadyTimeoutError)
    }

    /// As [`ready`](Select::ready), waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`ReadyTimeoutError`] if none became ready in time.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let (tx, _rx) = goro::chan::bounded::<u8>(1);
    /// let mut sel = goro::chan::Select::new();
    /// sel.send(&tx);
    /// assert_eq!(sel.ready_deadline(Instant::now() + Duration::from_secs(1)), Ok(0));
    /// ```
    #[track_caller]
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        self.ready_run(Deadline::At(deadline))
            .ok_or(ReadyTimeoutError)
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl<'a> Clone for Select<'a> {
    fn clone(&self) -> Select<'a> {
        Select {
            cases: self
                .cases
                .iter()
                .map(|c| c.as_ref().map(|c| c.fresh()))
                .collect(),
            biased: self.biased,
        }
    }
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field(
                "operations",
                &self.cases.iter().filter(|c| c.is_some()).count(),
            )
            .finish()
    }
}

/// The operation a [`Select`] chose. Complete it with
/// [`recv`](SelectedOperation::recv) or [`send`](SelectedOperation::send)
/// on the channel it was added with.
///
/// Dropping it without completing it is a bug and panics (after giving
/// back what it held, so the channel stays consistent), as in crossbeam.
#[must_use = "a selected operation must be completed with `recv` or `send`"]
pub struct SelectedOperation<'a> {
    index: usize,
    id: usize,
    outcome: Option<Outcome<'a>>,
    _lifetime: PhantomData<&'a ()>,
}

impl<'a> SelectedOperation<'a> {
    /// The index that [`Select::recv`] or [`Select::send`] returned for
    /// the chosen operation.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// tx.send(0).unwrap();
    /// let mut sel = goro::chan::Select::new();
    /// let i = sel.recv(&rx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// let _ = op.recv(&rx);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes a chosen receive operation.
    ///
    /// # Errors
    ///
    /// [`RecvError`] if the channel was closed and drained.
    ///
    /// # Panics
    ///
    /// If `r` is not the receiver of the chosen operation (a receiver of
    /// the same channel is fine).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u8>(1);
    /// drop(tx);
    /// let mut sel = goro::chan::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select().recv(&rx).is_err());
    /// ```
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        let Some(Outcome::Recv(b)) = self.outcome.take().filter(|_| r.id() == self.id) else {
            panic!("goro-channel: passed a receiver that was not selected");
        };
        let raw = Box::into_raw(b) as *mut Result<T, RecvError>;
        // SAFETY: the outcome was made by a `RecvCase<U>` on the channel
        // whose allocation is at `self.id`, as a `Box<Result<U,
        // RecvError>>`. `r` refers to a live channel at that same address
        // (the `Select` borrows the original receiver for 'a, so that
        // channel is alive and no other can share its address), and a
        // channel's element type is fixed when it is allocated (clones keep
        // it), so `T == U` and the box holds a `Result<T, RecvError>`.
        let result = unsafe { Box::from_raw(raw) };
        *result
    }

    /// Completes a chosen send operation with its message.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the channel was closed.
    ///
    /// # Panics
    ///
    /// If `s` is not the sender of the chosen operation (a sender of the
    /// same channel is fine).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<&str>(0);
    /// let h = goro::go!(move || rx.recv().unwrap());
    /// let mut sel = goro::chan::Select::new();
    /// sel.send(&tx);
    /// sel.select().send(&tx, "hi").unwrap();
    /// assert_eq!(h.join().unwrap(), "hi");
    /// ```
    pub fn send<T>(mut self, s: &Sender<T>, msg: T) -> Result<(), SendError<T>> {
        let id = Arc::as_ptr(&s.chan) as *const () as usize;
        let Some(Outcome::Send(b)) = self.outcome.take().filter(|_| id == self.id) else {
            panic!("goro-channel: passed a sender that was not selected");
        };
        let raw = Box::into_raw(b) as *mut PendingSend<T>;
        // SAFETY: the outcome was made by a `SendCase<'a, U>` as a
        // `Box<PendingSend<U>>` for the channel at `self.id`; `s` refers
        // to the live channel at that address, whose element type is fixed
        // at allocation, so `T == U` (same argument as in `recv`).
        let mut pending = unsafe { Box::from_raw(raw) };
        let token = pending
            .token
            .take()
            .expect("goro-channel: a send operation without its grant");
        pending.chan.complete_send(token, msg)
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        if let Some(outcome) = self.outcome.take() {
            // Give back the grant (or drop the received message) first.
            drop(outcome);
            if !std::thread::panicking() {
                panic!("goro-channel: dropped a `SelectedOperation` without completing it");
            }
        }
    }
}

impl std::fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedOperation")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Random indices for pass 1's lazy shuffle. Each index comes from 32
/// random bits by a multiply-shift (`bits * n >> 32`), whose bias is at
/// most `n / 2^32`: nothing a fairness test could see. The first draw comes
/// from the thread-local generator and covers two indices; a generator on
/// the stack, seeded by it, covers the rest (a select over many cases, or
/// one that goes round several times).
struct Draws {
    bits: u64,
    left: u32,
    rng: Option<fastrand::Rng>,
}

impl Draws {
    fn new() -> Draws {
        Draws {
            bits: 0,
            left: 0,
            rng: None,
        }
    }

    /// A uniformly random index below `n`.
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0 && n <= u32::MAX as usize);
        if self.left == 0 {
            self.bits = match &mut self.rng {
                Some(rng) => rng.u64(..),
                None => {
                    let seed = random_seed();
                    self.rng = Some(fastrand::Rng::with_seed(seed));
                    seed
                }
            };
            self.left = 2;
        }
        let j = ((self.bits & 0xffff_ffff) * n as u64) >> 32;
        self.bits >>= 32;
        self.left -= 1;
        j as usize
    }
}

/// One draw from fastrand's thread-local generator. Never inlined: select
/// parks inside the loop that draws, and a migratable coroutine
/// (goro_runtime's `Builder::migratable`) may resume on another thread, so
/// the generator's thread-local address must not be cached across the park.
#[inline(never)]
fn random_seed() -> u64 {
    fastrand::u64(..)
}
