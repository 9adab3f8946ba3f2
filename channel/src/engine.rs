//! The channel core behind `bounded(0)` (rendezvous), `bounded(n)` and
//! `unbounded()`.
//!
//! One lock (a spin lock, `lock.rs`) guards the buffer and two FIFO queues
//! of waiting operations, as in Go's `hchan`: `sendq` holds blocked
//! senders, `recvq` blocked receivers, each as a pointer to a heap packet
//! owned by the waiting operation (see `waiter.rs`). A sender that finds a waiting receiver hands its message
//! straight to it; a receiver that finds a waiting sender takes the message
//! straight from it, and when it frees a buffer slot it refills the slot
//! from the first waiting sender. Waking happens after the lock is
//! released.
//!
//! # Invariants
//!
//! 1. `buf.len() + reserved <= cap`. `reserved` counts buffer slots
//!    promised to select send cases whose message is not produced yet.
//! 2. A receiver waits in `recvq` only while `buf` is empty, no live sender
//!    waits, and the channel is not closed; a sender waits in `sendq` only
//!    while there is no room and no live receiver, and the channel is open
//!    with receivers. So at most one of the two queues holds live entries.
//! 3. Queues hold pointers to packets owned by the waiting operations
//!    (`waiter.rs`). A packet is claimed, or dropped as stale when its
//!    claim fails (its select was decided elsewhere, or its owner gave up),
//!    only by code that pops it from its queue under the lock. A claimed
//!    packet is finished after the lock is released; a stale one is never
//!    touched again.
//! 4. `closed` and `rx_gone` only ever go from false to true. Closing
//!    claims every waiting packet of both queues (under the lock) and
//!    finishes each with `CLOSED` (after it): receivers get `Err`, senders
//!    their message back. Buffered messages stay for receivers to drain
//!    (`closed`), or are dropped when no receiver is left (`rx_gone`).
//! 5. Queued packets never hold a message that a queue would drop: a
//!    waiting sender's message is taken by whoever claims it, or by its
//!    owner, who frees the packet.
//! 6. Nothing that runs user code (dropping a `T`) or wakes anyone happens
//!    under the lock, and no `T` is dropped while a claimed packet is
//!    still unfinished: a destructor may panic, and a claimed waiter that
//!    is never finished sleeps forever (its abort has lost, so not even a
//!    timeout frees it). Buffered messages are dropped one at a time
//!    (`drop_messages`): if a destructor panics, the ones after it are
//!    leaked, not dropped during the unwinding, where a second panic
//!    would abort the process.
//! 7. `hint` is republished at the end of every critical section (by the
//!    `Locked` guard), so it always describes the state as of the last
//!    unlock. It is only ever used to answer "not ready" without locking,
//!    which is a correct answer for that moment: a critical section takes
//!    effect, for lock-free readers, at its hint store, and for everyone
//!    else at its unlock, which comes after.
//! 8. Every change of the hint's flags also advances the version in its
//!    upper bits. A clear flag means "not ready" (the flags only ever
//!    over-approximate readiness), and two loads of the whole word that
//!    return the same value prove that the flags did not change in
//!    between. So a select that saw "not ready" in the flags of each of
//!    its channels re-reads their words and, if none moved, knows there
//!    was one instant (between its two passes) at which no case was ready
//!    (`select.rs`, pass 2). Stores are Release (under the lock) and these
//!    loads Acquire, so a flag change that happens before the second load
//!    (a peer that sent here before taking from a channel whose first load
//!    saw that take) is seen by it: no change the select could have learnt
//!    of is missed. The version wraps after 2^62 changes (2^30 on 32-bit
//!    targets), far beyond what can happen between two loads a few
//!    nanoseconds apart.
//! 9. Async operations and readiness waits do not queue packets: they
//!    leave a `Watch` (a `Waker`) in the channel's watches (`recv` or
//!    `send`, boxed on first use), in the same critical section as their
//!    failed attempt, and try again when woken. Every unlock whose hint says a receive (a send) may succeed
//!    wakes the first receive (send) watcher, except on the side where
//!    that critical section itself registered one; closing wakes all of
//!    them. Every change that makes an operation possible ends with such
//!    an unlock, so no watcher sleeps through one. A watcher that goes
//!    away after being woken, without completing, takes the lock to
//!    deregister, and that unlock passes the wake-up on. So a dropped
//!    future never takes a message with it: until its poll returns
//!    `Ready`, the message is in the channel (or in the future's own
//!    hands, for a send).

use std::collections::VecDeque;
use std::mem::{self, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use goro_runtime::park;

use crate::err::{RecvError, RecvTimeoutError, SendError, SendTimeoutError};
use crate::lock::{SpinGuard, SpinLock};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::wait_queue::WaitQueue;
use crate::waiter::{Handoff, Kind, OwnedPacket, Packet, PacketPtr, Status, Waiter};

/// How long a blocking operation may wait.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Do not wait at all.
    Now,
    /// Wait until this instant.
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    /// `d` from now; a duration too large to represent means forever.
    pub fn after(d: Duration) -> Deadline {
        match goro_runtime::testing::now().checked_add(d) {
            Some(t) => Deadline::At(t),
            None => Deadline::Never,
        }
    }

    /// Whether the deadline has passed (`Now` always has).
    pub(crate) fn expired(self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::At(t) => goro_runtime::testing::now() >= t,
            Deadline::Never => false,
        }
    }
}

/// A select send case's claim on the channel, before its message exists.
pub(crate) enum SendToken<T> {
    /// The channel is closed: the send fails with its message.
    Closed,
    /// A buffer slot is reserved (invariant 1).
    Reserved,
    /// This waiting receiver was claimed (and removed from `recvq`); it
    /// waits for the message. Valid until we finish it.
    Receiver(PacketPtr<T>),
    /// Our registered packet was claimed by a receiver that waits for the
    /// message in this hand-off.
    Partner(Arc<Handoff<T>>),
}

/// `Chan::hint` bit: a receive might succeed (or see the close) without
/// waiting.
const RECV_MAY: usize = 1;
/// `Chan::hint` bit: a send might succeed (or see the close) without
/// waiting.
const SEND_MAY: usize = 2;
/// `Chan::hint`: the flag bits; the rest is the version (invariant 8).
const HINT_FLAGS: usize = RECV_MAY | SEND_MAY;
/// `Chan::hint`: one step of the version.
const HINT_VERSION: usize = HINT_FLAGS + 1;

/// What a lock-free look at a channel saw when it found a case not ready:
/// the whole hint word, to compare with a later look (invariant 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(usize);

struct State<T> {
    buf: VecDeque<T>,
    reserved: usize,
    closed: bool,
    rx_gone: bool,
    sendq: WaitQueue<PacketPtr<T>>,
    recvq: WaitQueue<PacketPtr<T>>,
    /// Async operations' and readiness waiters' watches (invariant 9),
    /// boxed on first use: most channels never have one, and every
    /// channel's header is part of what a parked coroutine costs.
    watch: Option<Box<Watches>>,
}

/// The watches of one channel (invariant 9).
#[derive(Default)]
struct Watches {
    /// Async receivers (and readiness waiters) to wake when a receive may
    /// succeed.
    recv: Vec<Watch>,
    /// Async senders (and readiness waiters) to wake when a send may
    /// succeed.
    send: Vec<Watch>,
    /// Source of `Watch::id`s.
    ids: u64,
}

/// A waker left on a channel by an operation that did not wait in a queue
/// (invariant 9).
pub(crate) struct Watch {
    id: u64,
    waker: Waker,
}

/// Which side of a channel a watcher waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Recv,
    Send,
}

/// `Locked::quiet` bits: the critical section registered a watcher on
/// that side, after failing to complete; its unlock wakes nobody there.
const QUIET_RECV: u8 = 1;
const QUIET_SEND: u8 = 2;

/// Messages a drained buffer may keep room for; above this, the buffer
/// that a burst grew is given back once it is empty (an unbounded channel
/// that once held 32k messages would otherwise keep that room, 24 bytes a
/// park token, for as long as it lives).
const BUF_KEEP: usize = 1024;

/// Takes the oldest buffered message. Call under the lock.
#[inline]
fn take_buffered<T>(buf: &mut VecDeque<T>) -> Option<T> {
    let v = buf.pop_front()?;
    if buf.is_empty() && buf.capacity() > BUF_KEEP {
        buf.shrink_to(BUF_KEEP);
    }
    Some(v)
}

/// Queues a waiter's packet (a channel's first waiter on a side is kept
/// inline: `wait_queue.rs`). Call under the lock.
#[inline]
fn enqueue<T>(q: &mut WaitQueue<PacketPtr<T>>, p: PacketPtr<T>) {
    q.push_back(p);
}

/// Pops entries until one can be claimed (invariant 3). Call under the
/// lock. The returned packet stays valid until the caller finishes it.
#[inline]
fn claim_first<T>(q: &mut WaitQueue<PacketPtr<T>>) -> Option<PacketPtr<T>> {
    while let Some(p) = q.pop_front() {
        // SAFETY: the packet was in the queue and we hold its lock, so its
        // owner has not freed it (waiter.rs invariant 4).
        if unsafe { p.get() }.claim() {
            return Some(p);
        }
    }
    None
}

/// Whether `q` holds an undecided entry of a waiter other than `own`.
/// Call under the lock.
fn has_live_peer<T>(q: &WaitQueue<PacketPtr<T>>, own: &Waiter) -> bool {
    q.any(|p| {
        // SAFETY: queued and under the lock, as in `claim_first`.
        let p = unsafe { p.get() };
        !p.belongs_to(own) && p.waiter().is_waiting()
    })
}

/// Removes `owned`'s packet from `q` if it is still there (searching from
/// the back, where a recent registration usually is). Call under the lock.
fn remove<T>(q: &mut WaitQueue<PacketPtr<T>>, owned: &OwnedPacket<T>) {
    q.remove_last(|e| e.is(owned));
}

/// Claims every packet of `q` that can be claimed, emptying it. Call under
/// the lock; finish the returned packets after unlocking.
fn claim_all<T>(q: &mut WaitQueue<PacketPtr<T>>) -> Vec<PacketPtr<T>> {
    let mut claimed = Vec::new();
    for p in q.take_all() {
        // SAFETY: queued and under the lock, as in `claim_first`.
        if unsafe { p.get() }.claim() {
            claimed.push(p);
        }
    }
    claimed
}

/// Drops `msgs` one at a time, front first (invariant 6). If a destructor
/// panics, the panic propagates and the messages behind it are leaked:
/// dropping them while unwinding would abort the process at the next
/// panicking destructor.
fn drop_messages<T>(msgs: VecDeque<T>) {
    let mut msgs = ManuallyDrop::new(msgs);
    while let Some(m) = msgs.pop_front() {
        drop(m);
    }
    // Empty now: this only frees the buffer's memory.
    drop(ManuallyDrop::into_inner(msgs));
}

/// How a blocked operation's wait ended.
enum Waited {
    /// A counterpart decided it with this status.
    Status(Status),
    /// The owner gave up first (the deadline passed).
    Aborted,
}

/// Parks until `p` is decided, or `deadline` passes and `abort` (which
/// decides the waiter as given up and dequeues the packet, under the lock)
/// wins. `kind` is what the wait shows in the dump.
#[track_caller]
fn wait<T>(
    p: &Packet<T>,
    kind: park::WaitKind,
    mut deadline: Deadline,
    abort: impl Fn() -> bool,
) -> Waited {
    loop {
        let s = p.status();
        if s != Status::PENDING {
            return Waited::Status(s);
        }
        match deadline {
            Deadline::Never | Deadline::Now => park::park_with(kind),
            Deadline::At(t) => {
                if goro_runtime::testing::now() >= t {
                    if abort() {
                        return Waited::Aborted;
                    }
                    // Claimed: the completion is on its way; wait for it.
                    deadline = Deadline::Never;
                } else {
                    park::park_deadline_with(t, kind);
                }
            }
        }
    }
}

/// Receives from a sender packet we claimed (and removed from `sendq`).
/// `None`: it was a select's deferred send whose owner gave up; retry.
fn take_from_sender<T>(p: PacketPtr<T>) -> Option<T> {
    // SAFETY: we claimed the packet and have not finished it, so it is
    // alive (waiter.rs invariant 4).
    let packet = unsafe { p.get() };
    match packet.kind() {
        Kind::Send => {
            // SAFETY: as the claimer we own the slot until we finish.
            let v = unsafe { packet.take() };
            // SAFETY: claimed, not finished; we do not touch it after.
            unsafe { packet.finish(Status::DONE) };
            debug_assert!(v.is_some(), "a waiting sender without its message");
            v
        }
        Kind::DeferredSend => {
            // SAFETY: claimed, not finished; we do not touch it after.
            let handoff = unsafe { packet.await_value() };
            handoff.wait()
        }
        Kind::Recv => unreachable!("goro-channel: a receiver packet in sendq"),
    }
}

/// Waits for the final status of a claimed plain packet whose owner
/// cannot park for it (an async task): the claimer is a few instructions
/// from its final store (`Chan::abandon_send`).
fn spin_until_final<T>(p: &Packet<T>) -> Status {
    let backoff = crossbeam_utils::Backoff::new();
    loop {
        let s = p.status();
        if s != Status::PENDING {
            return s;
        }
        if backoff.is_completed() {
            // Let the claimer run if it shares our worker (or thread).
            goro_runtime::yield_now();
        } else {
            backoff.spin();
        }
    }
}

/// Hands `value` to a receiver packet we claimed.
fn deliver<T>(p: PacketPtr<T>, value: T) {
    // SAFETY: we claimed the packet and have not finished it: it is alive
    // and we own its slot (waiter.rs invariants 4 and 5).
    let packet = unsafe { p.get() };
    // SAFETY: as above.
    unsafe { packet.put(value) };
    // SAFETY: claimed, not finished; we do not touch it after.
    unsafe { packet.finish(Status::DONE) };
}

/// Finishes a packet we claimed with `status`.
fn finish<T>(p: PacketPtr<T>, status: Status) {
    // SAFETY: we claimed the packet and have not finished it: it is alive.
    // We do not touch it after `finish`.
    unsafe { p.get().finish(status) };
}

/// The channel lock's guard. Dropping it publishes the readiness hint
/// (`Chan::hint`) while still holding the lock.
struct Locked<'a, T> {
    chan: &'a Chan<T>,
    st: ManuallyDrop<SpinGuard<'a, State<T>>>,
    quiet: u8,
}

impl<T> Deref for Locked<'_, T> {
    type Target = State<T>;

    #[inline]
    fn deref(&self) -> &State<T> {
        &self.st
    }
}

impl<T> DerefMut for Locked<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.st
    }
}

impl<T> Drop for Locked<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let st = &*self.st;
        let mut hint = 0;
        if !st.buf.is_empty() || !st.sendq.is_empty() || st.closed {
            hint |= RECV_MAY;
        }
        if st.closed || st.rx_gone || self.chan.has_room(st) || !st.recvq.is_empty() {
            hint |= SEND_MAY;
        }
        // Only the lock holder stores, so a load and a store suffice.
        let word = self.chan.hint.load(Ordering::Relaxed);
        if word & HINT_FLAGS != hint {
            let version = (word & !HINT_FLAGS).wrapping_add(HINT_VERSION);
            self.chan.hint.store(version | hint, Ordering::Release);
        }
        if st
            .watch
            .as_ref()
            .is_none_or(|w| w.recv.is_empty() && w.send.is_empty())
        {
            // SAFETY: dropped once, here, and never used after.
            unsafe { ManuallyDrop::drop(&mut self.st) };
            return;
        }
        // Invariant 9: pick who to wake, wake them after unlocking.
        let closed = st.closed;
        let rx_gone = st.rx_gone;
        let quiet = self.quiet;
        let w = self.st.watch.as_deref_mut().expect("watches checked above");
        let mut wake: Vec<Waker> = Vec::new();
        if closed {
            wake.extend(w.recv.drain(..).map(|w| w.waker));
        } else if hint & RECV_MAY != 0 && quiet & QUIET_RECV == 0 && !w.recv.is_empty() {
            wake.push(w.recv.remove(0).waker);
        }
        if closed || rx_gone {
            wake.extend(w.send.drain(..).map(|w| w.waker));
        } else if hint & SEND_MAY != 0 && quiet & QUIET_SEND == 0 && !w.send.is_empty() {
            wake.push(w.send.remove(0).waker);
        }
        // SAFETY: dropped once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.st) };
        for w in wake {
            w.wake();
        }
    }
}

/// The shared core of one channel.
pub(crate) struct Chan<T> {
    state: SpinLock<State<T>>,
    /// What a non-blocking operation could achieve, as of the last critical
    /// section (`RECV_MAY`, `SEND_MAY`), and a version that moves with
    /// every change of those flags (invariants 7 and 8). Lets `try_*` and
    /// select's first pass skip the lock when nothing can succeed: they
    /// linearize at the load. A select that gives up relies on the version
    /// to prove its verdicts held at one common instant.
    hint: AtomicUsize,
    /// Buffer capacity; 0 for a rendezvous channel.
    cap: usize,
    /// No capacity limit (`unbounded()`): `cap` is `usize::MAX`.
    unbounded: bool,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    /// The testing bubble the channel was made in (0: none). Send, receive,
    /// select and close from outside it panic (Go's synctest rule); a
    /// channel made outside every bubble pays one branch on this field.
    bubble: u64,
    /// What a blocked receive shows in the dump (`chan receive`, or
    /// `context done` for a context's done channel).
    recv_kind: park::WaitKind,
}

impl<T> Drop for Chan<T> {
    /// The last handle is gone. The last receiver's drop has emptied the
    /// buffer already (`disconnect_receivers`), and no operation is queued
    /// (each holds a handle); what is left is dropped as there
    /// (invariant 6).
    fn drop(&mut self) {
        let st = self.state.get_mut();
        debug_assert!(st.sendq.is_empty() && st.recvq.is_empty());
        drop_messages(mem::take(&mut st.buf));
    }
}

impl<T> Chan<T> {
    /// A channel with one sender and one receiver. `cap: None` is
    /// unbounded. No buffer memory is allocated up front: the buffer grows
    /// as messages arrive, so a huge capacity costs nothing until used.
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        let cap_n = cap.unwrap_or(usize::MAX);
        Chan {
            state: SpinLock::new(State {
                buf: VecDeque::new(),
                reserved: 0,
                closed: false,
                rx_gone: false,
                sendq: WaitQueue::new(),
                recvq: WaitQueue::new(),
                watch: None,
            }),
            hint: AtomicUsize::new(if cap_n > 0 { SEND_MAY } else { 0 }),
            cap: cap_n,
            unbounded: cap.is_none(),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            bubble: goro_runtime::testing::current_bubble_id(),
            recv_kind: park::WaitKind::ChanRecv,
        }
    }

    /// Sets what a blocked receive shows in the dump.
    pub(crate) fn with_recv_kind(mut self, kind: park::WaitKind) -> Chan<T> {
        self.recv_kind = kind;
        self
    }

    /// Panics if the channel belongs to a testing bubble the caller is not
    /// in (`goro::testing`).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn check_bubble(&self) {
        if self.bubble != 0 {
            goro_runtime::testing::check_bubble(self.bubble, "a channel");
        }
    }

    #[inline]
    fn lock(&self) -> Locked<'_, T> {
        Locked {
            chan: self,
            st: ManuallyDrop::new(self.state.lock()),
            quiet: 0,
        }
    }

    #[inline]
    fn hint(&self, bit: usize) -> bool {
        self.hint.load(Ordering::Acquire) & bit != 0
    }

    /// The hint word now (Acquire).
    #[inline]
    fn hint_word(&self) -> usize {
        self.hint.load(Ordering::Acquire)
    }

    /// Whether the hint word is still `stamp`: then the flags that made a
    /// case "not ready" when `stamp` was taken have not changed since
    /// (invariant 8).
    #[inline]
    pub(crate) fn unchanged_since(&self, stamp: Stamp) -> bool {
        self.hint_word() == stamp.0
    }

    #[inline]
    fn has_room(&self, st: &State<T>) -> bool {
        st.buf.len() + st.reserved < self.cap
    }

    /// Claims the first waiting sender to fill one freed buffer slot.
    /// Returns the packet and the status to finish it with, after the lock.
    fn refill(&self, st: &mut State<T>) -> Option<(PacketPtr<T>, Status)> {
        if !self.has_room(st) {
            return None;
        }
        let p = claim_first(&mut st.sendq)?;
        // SAFETY: claimed by us and not finished: alive.
        let packet = unsafe { p.get() };
        match packet.kind() {
            Kind::Send => {
                // SAFETY: as the claimer we own the slot until we finish.
                let v = unsafe { packet.take() };
                st.buf
                    .push_back(v.expect("goro-channel: a waiting sender without its message"));
                Some((p, Status::DONE))
            }
            Kind::DeferredSend => {
                st.reserved += 1;
                Some((p, Status::RESERVED))
            }
            Kind::Recv => unreachable!("goro-channel: a receiver packet in sendq"),
        }
    }

    /// Sends `value`, waiting until `deadline`. `Timeout` with
    /// `Deadline::Now` means the channel was full.
    #[track_caller]
    pub(crate) fn send(&self, value: T, deadline: Deadline) -> Result<(), SendTimeoutError<T>> {
        self.check_bubble();
        if deadline == Deadline::Now && !self.hint(SEND_MAY) {
            return Err(SendTimeoutError::Timeout(value));
        }
        let mut st = self.lock();
        if st.closed || st.rx_gone {
            return Err(SendTimeoutError::Closed(value));
        }
        // 1. A receiver is waiting: hand the message over directly.
        if let Some(p) = claim_first(&mut st.recvq) {
            drop(st);
            deliver(p, value);
            return Ok(());
        }
        // 2. Room in the buffer.
        if self.has_room(&st) {
            st.buf.push_back(value);
            return Ok(());
        }
        if deadline.expired() {
            return Err(SendTimeoutError::Timeout(value));
        }
        // 3. Wait in sendq with the message in our packet.
        let owned = Packet::plain(Kind::Send, Some(value));
        enqueue(&mut st.sendq, owned.ptr());
        drop(st);
        let waited = wait(owned.get(), park::WaitKind::ChanSend, deadline, || {
            let mut st = self.lock();
            let won = owned.get().abort_locked();
            if won {
                remove(&mut st.sendq, &owned);
            }
            won
        });
        // SAFETY: the packet is out of sendq (a claimer removed it, or our
        // abort did) and no claimer is mid-completion (we observed the
        // final status, or our abort won): nobody else can reach it.
        let leftover = unsafe { owned.free() };
        match waited {
            Waited::Status(Status::DONE) => Ok(()),
            Waited::Status(Status::CLOSED) => Err(SendTimeoutError::Closed(
                leftover.expect("goro-channel: lost a message"),
            )),
            Waited::Status(s) => unreachable!("goro-channel: send finished with status {s}"),
            Waited::Aborted => Err(SendTimeoutError::Timeout(
                leftover.expect("goro-channel: lost a message"),
            )),
        }
    }

    /// Receives, waiting until `deadline`. `Timeout` with `Deadline::Now`
    /// means the channel was empty.
    #[track_caller]
    pub(crate) fn recv(&self, deadline: Deadline) -> Result<T, RecvTimeoutError> {
        self.check_bubble();
        if deadline == Deadline::Now && !self.hint(RECV_MAY) {
            return Err(RecvTimeoutError::Timeout);
        }
        self.recv_locked(deadline)
    }

    /// Select's lock-free first look at one side: `Some(stamp)` if the
    /// hint word says an operation on `side` cannot proceed now, `None` if
    /// it may. Completes and claims nothing.
    #[inline]
    #[track_caller]
    pub(crate) fn select_peek(&self, side: Side) -> Option<Stamp> {
        self.check_bubble();
        let may = match side {
            Side::Recv => RECV_MAY,
            Side::Send => SEND_MAY,
        };
        let word = self.hint_word();
        (word & may == 0).then_some(Stamp(word))
    }

    /// Select's first pass for a receive case: the result if the case is
    /// ready now; if not, the stamp of the lock-free look that said so
    /// (`None` when it took the lock to find out).
    #[inline]
    #[track_caller]
    pub(crate) fn select_recv(&self) -> Result<Result<T, RecvError>, Option<Stamp>> {
        self.check_bubble();
        let word = self.hint_word();
        if word & RECV_MAY == 0 {
            return Err(Some(Stamp(word)));
        }
        match self.recv_locked(Deadline::Now) {
            Ok(v) => Ok(Ok(v)),
            Err(RecvTimeoutError::Closed) => Ok(Err(RecvError)),
            Err(RecvTimeoutError::Timeout) => Err(None),
        }
    }

    /// `recv` past its lock-free check.
    #[track_caller]
    fn recv_locked(&self, deadline: Deadline) -> Result<T, RecvTimeoutError> {
        loop {
            let mut st = self.lock();
            // 1. The buffer has a message; refill the freed slot from a
            //    waiting sender, keeping FIFO order.
            if let Some(v) = take_buffered(&mut st.buf) {
                let refilled = if st.sendq.is_empty() {
                    None
                } else {
                    self.refill(&mut st)
                };
                drop(st);
                if let Some((p, status)) = refilled {
                    finish(p, status);
                }
                return Ok(v);
            }
            // 2. A sender is waiting (rendezvous): take its message.
            if let Some(p) = claim_first(&mut st.sendq) {
                drop(st);
                match take_from_sender(p) {
                    Some(v) => return Ok(v),
                    None => continue,
                }
            }
            if st.closed {
                return Err(RecvTimeoutError::Closed);
            }
            if deadline.expired() {
                return Err(RecvTimeoutError::Timeout);
            }
            // 3. Wait in recvq for a sender to fill our packet.
            let owned = Packet::plain(Kind::Recv, None);
            enqueue(&mut st.recvq, owned.ptr());
            drop(st);
            let waited = wait(owned.get(), self.recv_kind, deadline, || {
                let mut st = self.lock();
                let won = owned.get().abort_locked();
                if won {
                    remove(&mut st.recvq, &owned);
                }
                won
            });
            // SAFETY: as in `send`: out of the queue, and no claimer is
            // mid-completion.
            let got = unsafe { owned.free() };
            match waited {
                Waited::Status(Status::DONE) => {
                    return Ok(got.expect("goro-channel: lost a message"));
                }
                Waited::Status(Status::CLOSED) => return Err(RecvTimeoutError::Closed),
                Waited::Status(Status::ABANDONED) => continue,
                Waited::Status(s) => unreachable!("goro-channel: recv finished with status {s}"),
                Waited::Aborted => return Err(RecvTimeoutError::Timeout),
            }
        }
    }

    /// Closes the channel (invariant 4). Returns false if it already was.
    pub(crate) fn close(&self) -> bool {
        let (receivers, senders) = {
            let mut st = self.lock();
            if st.closed {
                return false;
            }
            st.closed = true;
            (claim_all(&mut st.recvq), claim_all(&mut st.sendq))
        };
        for p in receivers.into_iter().chain(senders) {
            finish(p, Status::CLOSED);
        }
        true
    }

    /// The last receiver is gone: fail waiting senders, then drop the
    /// buffer (invariant 6: the senders are woken before any destructor
    /// runs).
    fn disconnect_receivers(&self) {
        let (buf, senders) = {
            let mut st = self.lock();
            st.rx_gone = true;
            (mem::take(&mut st.buf), claim_all(&mut st.sendq))
        };
        for p in senders {
            finish(p, Status::CLOSED);
        }
        drop_messages(buf);
    }

    /// A new sender handle.
    pub(crate) fn acquire_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender handle dropped; the last one closes the channel.
    pub(crate) fn release_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    /// A new receiver handle.
    pub(crate) fn acquire_receiver(&self) {
        self.receivers.fetch_add(1, Ordering::Relaxed);
    }

    /// A receiver handle dropped; the last one disconnects the senders.
    pub(crate) fn release_receiver(&self) {
        if self.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.disconnect_receivers();
        }
    }

    /// Closed, or no receiver left: a send would fail.
    pub(crate) fn is_closed(&self) -> bool {
        let st = self.state.lock();
        st.closed || st.rx_gone
    }

    /// Messages in the buffer.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    /// Whether a send would have to wait for room (always true for a
    /// rendezvous channel).
    pub(crate) fn is_full(&self) -> bool {
        let st = self.state.lock();
        !self.has_room(&st)
    }

    /// `None` for unbounded.
    pub(crate) fn capacity(&self) -> Option<usize> {
        if self.unbounded { None } else { Some(self.cap) }
    }

    // ---- async operations and readiness (invariant 9) --------------------

    /// Takes `id`'s watch off `side` if it is still there.
    fn take_watch(st: &mut State<T>, side: Side, id: Option<u64>) -> Option<Watch> {
        let id = id?;
        let w = st.watch.as_deref_mut()?;
        let list = match side {
            Side::Recv => &mut w.recv,
            Side::Send => &mut w.send,
        };
        let i = list.iter().position(|w| w.id == id)?;
        Some(list.remove(i))
    }

    /// Leaves a watch for `waker` on `side` (reusing `old` if it wakes the
    /// same task) and marks the unlock quiet on that side.
    fn put_watch(
        st: &mut Locked<'_, T>,
        side: Side,
        id: &mut Option<u64>,
        old: Option<Watch>,
        waker: &Waker,
    ) {
        let ws = st.watch.get_or_insert_with(Box::default);
        let watch = match old {
            Some(w) if w.waker.will_wake(waker) => w,
            _ => {
                let n = match *id {
                    Some(n) => n,
                    None => {
                        ws.ids += 1;
                        ws.ids
                    }
                };
                Watch {
                    id: n,
                    waker: waker.clone(),
                }
            }
        };
        *id = Some(watch.id);
        match side {
            Side::Recv => {
                ws.recv.push(watch);
                st.quiet |= QUIET_RECV;
            }
            Side::Send => {
                ws.send.push(watch);
                st.quiet |= QUIET_SEND;
            }
        }
    }

    /// Withdraws a watch (a future dropped, a readiness wait over). Always
    /// takes the lock, so that a wake-up this watcher received and did not
    /// use is passed on by the unlock (invariant 9).
    pub(crate) fn unwatch(&self, side: Side, id: Option<u64>) {
        if id.is_none() {
            return;
        }
        let mut st = self.lock();
        drop(Self::take_watch(&mut st, side, id));
    }

    /// One poll of an async receive: the message, the close, or a watch
    /// left for `waker`.
    pub(crate) fn poll_recv(
        &self,
        id: &mut Option<u64>,
        waker: &Waker,
    ) -> Poll<Result<T, RecvError>> {
        loop {
            let mut st = self.lock();
            let old = Self::take_watch(&mut st, Side::Recv, *id);
            if let Some(v) = take_buffered(&mut st.buf) {
                let refilled = if st.sendq.is_empty() {
                    None
                } else {
                    self.refill(&mut st)
                };
                drop(st);
                if let Some((p, status)) = refilled {
                    finish(p, status);
                }
                return Poll::Ready(Ok(v));
            }
            if let Some(p) = claim_first(&mut st.sendq) {
                drop(st);
                match take_from_sender(p) {
                    Some(v) => return Poll::Ready(Ok(v)),
                    None => continue,
                }
            }
            if st.closed {
                return Poll::Ready(Err(RecvError));
            }
            Self::put_watch(&mut st, Side::Recv, id, old, waker);
            return Poll::Pending;
        }
    }

    /// One poll of an async send. The first poll (`msg` holds the
    /// message) sends it or queues it in a packet woken through `waker`,
    /// like a blocked `send` (`packet`); later polls look at the packet.
    pub(crate) fn poll_send(
        &self,
        msg: &mut Option<T>,
        packet: &mut Option<OwnedPacket<T>>,
        waker: &Waker,
    ) -> Poll<Result<(), SendError<T>>> {
        if let Some(owned) = packet {
            if owned.get().status() == Status::PENDING {
                let st = self.lock();
                if owned.get().waiter().is_waiting() {
                    // SAFETY: queued (undecided plain packets stay in
                    // sendq), undecided, and we hold the lock.
                    unsafe {
                        owned
                            .get()
                            .replace_unparker(park::Unparker::from_waker(waker.clone()))
                    };
                    drop(st);
                    return Poll::Pending;
                }
                drop(st);
            }
            // Decided: the claimer finishes at once (see `abandon_send`).
            let status = spin_until_final(owned.get());
            let owned = packet.take().expect("checked above");
            // SAFETY: out of sendq (its claimer removed it) and finished.
            let leftover = unsafe { owned.free() };
            return Poll::Ready(match status {
                Status::DONE => Ok(()),
                Status::CLOSED => Err(SendError(leftover.expect("goro-channel: lost a message"))),
                s => unreachable!("goro-channel: async send finished with status {s}"),
            });
        }
        let value = msg
            .take()
            .expect("goro-channel: a send future polled after completion");
        let mut st = self.lock();
        if st.closed || st.rx_gone {
            return Poll::Ready(Err(SendError(value)));
        }
        if let Some(p) = claim_first(&mut st.recvq) {
            drop(st);
            deliver(p, value);
            return Poll::Ready(Ok(()));
        }
        if self.has_room(&st) {
            st.buf.push_back(value);
            return Poll::Ready(Ok(()));
        }
        let owned = Packet::plain_for(
            Kind::Send,
            Some(value),
            park::Unparker::from_waker(waker.clone()),
        );
        st.sendq.push_back(owned.ptr());
        *packet = Some(owned);
        Poll::Pending
    }

    /// A pending async send is dropped: withdraws its packet (dropping the
    /// unsent message), or, if a receiver claimed it already, waits the
    /// moment it takes to finish. Claimers of plain send packets run no
    /// user code between claim and finish (they move the message out, or
    /// close), so that wait is a few instructions.
    pub(crate) fn abandon_send(&self, owned: OwnedPacket<T>) {
        let won = {
            let mut st = self.lock();
            let won = owned.get().abort_locked();
            if won {
                remove(&mut st.sendq, &owned);
            }
            won
        };
        if !won {
            spin_until_final(owned.get());
        }
        // SAFETY: out of sendq (our abort removed it, or its claimer did),
        // and no claimer is mid-completion (we won the abort or saw the
        // final status).
        drop(unsafe { owned.free() });
    }

    /// Whether an operation on `side` would complete (or see the close)
    /// without waiting; with `watch`, leaves a watch when it would not.
    /// A readiness check, like crossbeam's `Select::ready`: nothing is
    /// taken or reserved.
    pub(crate) fn ready(&self, side: Side, watch: Option<(&mut Option<u64>, &Waker)>) -> bool {
        let mut st = self.lock();
        let ready = match side {
            Side::Recv => {
                !st.buf.is_empty()
                    || st.closed
                    || st.sendq.any(|p| {
                        // SAFETY: queued and under the lock, as in `claim_first`.
                        unsafe { p.get() }.waiter().is_waiting()
                    })
            }
            Side::Send => {
                st.closed
                    || st.rx_gone
                    || self.has_room(&st)
                    || st.recvq.any(|p| {
                        // SAFETY: as above.
                        unsafe { p.get() }.waiter().is_waiting()
                    })
            }
        };
        if let Some((id, waker)) = watch {
            let old = Self::take_watch(&mut st, side, *id);
            if !ready {
                Self::put_watch(&mut st, side, id, old, waker);
            }
        }
        ready
    }

    // ---- select support -------------------------------------------------

    /// Select's first pass for a send case: claims what makes it ready
    /// now; if nothing does, the stamp of the lock-free look that said so
    /// (`None` when it took the lock to find out).
    #[inline]
    #[track_caller]
    pub(crate) fn try_select_send(&self) -> Result<SendToken<T>, Option<Stamp>> {
        self.check_bubble();
        let word = self.hint_word();
        if word & SEND_MAY == 0 {
            return Err(Some(Stamp(word)));
        }
        let mut st = self.lock();
        if st.closed || st.rx_gone {
            return Ok(SendToken::Closed);
        }
        if let Some(p) = claim_first(&mut st.recvq) {
            return Ok(SendToken::Receiver(p));
        }
        if self.has_room(&st) {
            st.reserved += 1;
            return Ok(SendToken::Reserved);
        }
        Err(None)
    }

    /// Select's registration pass for a receive case: registers a packet
    /// for case `case` of `waiter`, or returns `None` if the case is ready
    /// now.
    ///
    /// Once the packet is queued, and for as long as `waiter` is
    /// undecided, nothing can make this case ready without claiming the
    /// packet (or a live receiver queued ahead of it, which leaves the
    /// case as it was): a send, and a reserved slot's completion, claim
    /// from `recvq` before touching the buffer; a refill needs a live
    /// waiting sender, and a sender waits only after finding no receiver
    /// to claim; closing claims every packet.
    pub(crate) fn register_recv(&self, waiter: &Waiter, case: usize) -> Option<OwnedPacket<T>> {
        let mut st = self.lock();
        if !st.buf.is_empty() || st.closed || has_live_peer(&st.sendq, waiter) {
            return None;
        }
        let owned = Packet::for_select(waiter, case, Kind::Recv);
        enqueue(&mut st.recvq, owned.ptr());
        Some(owned)
    }

    /// Select's registration pass for a send case: registers a
    /// deferred-send packet, or returns `None` if the case is ready now.
    ///
    /// As for `register_recv`: while the packet is queued and `waiter`
    /// undecided, nothing makes this case ready without claiming it (or a
    /// live sender ahead of it, which takes the room): a receive that
    /// frees a slot refills it from `sendq`, a released reservation too; a
    /// receiver waits only after finding no sender to claim, so none is
    /// live in `recvq` for a reserved slot's completion to bypass the
    /// buffer with; closing and the last receiver's drop claim every
    /// packet.
    pub(crate) fn register_send(&self, waiter: &Waiter, case: usize) -> Option<OwnedPacket<T>> {
        let mut st = self.lock();
        if st.closed || st.rx_gone || self.has_room(&st) || has_live_peer(&st.recvq, waiter) {
            return None;
        }
        let owned = Packet::for_select(waiter, case, Kind::DeferredSend);
        enqueue(&mut st.sendq, owned.ptr());
        Some(owned)
    }

    /// Select's last pass: a losing receive case leaves `recvq` and frees its packet.
    pub(crate) fn unregister_recv(&self, owned: OwnedPacket<T>) {
        remove(&mut self.lock().recvq, &owned);
        // SAFETY: out of recvq now, and the select was decided for another
        // case (or aborted), so no claim of this packet succeeded.
        drop(unsafe { owned.free() });
    }

    /// Select's last pass: a losing send case leaves `sendq` and frees its packet.
    pub(crate) fn unregister_send(&self, owned: OwnedPacket<T>) {
        remove(&mut self.lock().sendq, &owned);
        // SAFETY: as in `unregister_recv`.
        drop(unsafe { owned.free() });
    }

    /// Select's last pass: the winning receive case collects its result and frees its
    /// packet. `None`: the claiming (select) sender gave up; start over.
    pub(crate) fn accept_recv(owned: OwnedPacket<T>) -> Option<Result<T, RecvError>> {
        let status = owned.get().wait_decided();
        // SAFETY: the claimer removed the packet from recvq and stored its
        // final status, which we observed: nobody else can reach it.
        let got = unsafe { owned.free() };
        match status {
            Status::DONE => Some(Ok(got.expect("goro-channel: lost a message"))),
            Status::CLOSED => Some(Err(RecvError)),
            Status::ABANDONED => None,
            s => unreachable!("goro-channel: receive case finished with status {s}"),
        }
    }

    /// Select's last pass: the winning send case learns what it was granted, and frees
    /// its packet.
    pub(crate) fn accept_send(owned: OwnedPacket<T>) -> SendToken<T> {
        let status = owned.get().wait_decided();
        let token = match status {
            Status::RESERVED => SendToken::Reserved,
            // SAFETY: we own the packet and observed AWAIT_VALUE.
            Status::AWAIT_VALUE => SendToken::Partner(unsafe { owned.get().take_partner() }),
            Status::CLOSED => SendToken::Closed,
            s => unreachable!("goro-channel: send case finished with status {s}"),
        };
        // SAFETY: as in `accept_recv`.
        drop(unsafe { owned.free() });
        token
    }

    /// Completes a chosen send case with its message.
    pub(crate) fn complete_send(&self, token: SendToken<T>, value: T) -> Result<(), SendError<T>> {
        match token {
            SendToken::Closed => Err(SendError(value)),
            SendToken::Receiver(p) => {
                deliver(p, value);
                Ok(())
            }
            SendToken::Partner(h) => {
                h.give(value);
                Ok(())
            }
            SendToken::Reserved => {
                let mut st = self.lock();
                st.reserved -= 1;
                if st.closed || st.rx_gone {
                    // Closed since the slot was promised: the send reports
                    // the close, as if it had come first. Closing already
                    // failed every waiting sender, so nobody needs the slot.
                    return Err(SendError(value));
                }
                // A receiver may have started waiting on the (empty) buffer
                // meanwhile: it gets the message directly.
                if let Some(p) = claim_first(&mut st.recvq) {
                    drop(st);
                    deliver(p, value);
                    return Ok(());
                }
                st.buf.push_back(value);
                Ok(())
            }
        }
    }

    /// Gives back what a chosen send case was granted, without a message
    /// (the message expression panicked, or a `SelectedOperation` was
    /// dropped).
    pub(crate) fn release_send(&self, token: SendToken<T>) {
        match token {
            SendToken::Closed => {}
            SendToken::Receiver(p) => finish(p, Status::ABANDONED),
            SendToken::Partner(h) => h.abandon(),
            SendToken::Reserved => {
                let refilled = {
                    let mut st = self.lock();
                    st.reserved -= 1;
                    if st.closed || st.rx_gone {
                        None
                    } else {
                        self.refill(&mut st)
                    }
                };
                if let Some((p, status)) = refilled {
                    finish(p, status);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_capacity() {
        let c = Chan::<u32>::new(Some(2));
        assert!(c.send(1, Deadline::Now).is_ok());
        assert!(c.send(2, Deadline::Now).is_ok());
        assert!(matches!(
            c.send(3, Deadline::Now),
            Err(SendTimeoutError::Timeout(3))
        ));
        assert_eq!(c.len(), 2);
        assert!(c.is_full());
        assert_eq!(c.recv(Deadline::Now), Ok(1));
        assert_eq!(c.recv(Deadline::Now), Ok(2));
        assert_eq!(c.recv(Deadline::Now), Err(RecvTimeoutError::Timeout));
    }

    #[test]
    fn a_drained_burst_gives_its_room_back() {
        let c = Chan::<u64>::new(None);
        for i in 0..(8 * BUF_KEEP as u64) {
            assert!(c.send(i, Deadline::Now).is_ok());
        }
        assert!(c.state.lock().buf.capacity() >= 8 * BUF_KEEP);
        for i in 0..(8 * BUF_KEEP as u64) {
            assert_eq!(c.recv(Deadline::Now), Ok(i));
        }
        assert!(c.state.lock().buf.capacity() <= BUF_KEEP);
    }

    #[test]
    fn huge_capacity_allocates_lazily() {
        let c = Chan::<[u8; 1024]>::new(Some(usize::MAX / 2));
        assert!(c.send([0; 1024], Deadline::Now).is_ok());
        assert!(c.state.lock().buf.capacity() < 1024);
    }

    #[test]
    fn close_is_once() {
        let c = Chan::<u32>::new(Some(1));
        c.send(5, Deadline::Now).unwrap();
        assert!(c.close());
        assert!(!c.close());
        assert!(matches!(
            c.send(6, Deadline::Now),
            Err(SendTimeoutError::Closed(6))
        ));
        assert_eq!(c.recv(Deadline::Now), Ok(5));
        assert_eq!(c.recv(Deadline::Now), Err(RecvTimeoutError::Closed));
    }

    #[test]
    fn reservation_counts_as_full_and_is_released() {
        let c = Chan::<u32>::new(Some(1));
        let t = c.try_select_send().ok().unwrap();
        assert!(matches!(t, SendToken::Reserved));
        assert!(c.is_full());
        c.release_send(t);
        assert!(!c.is_full());
        let t = c.try_select_send().ok().unwrap();
        c.complete_send(t, 9).unwrap();
        assert_eq!(c.recv(Deadline::Now), Ok(9));
    }

    #[test]
    fn a_panicking_destructor_in_the_final_drop_leaks_the_rest() {
        use std::sync::atomic::AtomicUsize;
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
                panic!("bomb");
            }
        }
        let c = Chan::<Bomb>::new(None);
        for _ in 0..3 {
            assert!(c.send(Bomb, Deadline::Now).is_ok());
        }
        // Dropped without a receiver's disconnect: the buffer is still
        // full. A second panic while unwinding would abort the test.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(c)));
        assert!(r.is_err());
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn timeout_recovers_the_message() {
        let c = Chan::<String>::new(Some(0));
        let r = c.send("x".into(), Deadline::after(Duration::from_millis(2)));
        assert!(matches!(r, Err(SendTimeoutError::Timeout(s)) if s == "x"));
        assert!(c.state.lock().sendq.is_empty());
    }
}
