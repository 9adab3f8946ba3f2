//! Waiters and packets: what a blocked operation leaves on a channel.
//!
//! A blocked `send`, `recv` or `select` is represented by one [`Waiter`]
//! (who to wake, and a word saying whether, and for which case, the
//! operation has been decided) and one [`Packet`] per channel it waits on
//! (the case index, a value slot, and a status word saying how the case
//! ended). Both live on the heap, never on the waiting coroutine's stack:
//! the counterpart that completes the operation writes into them while the
//! waiter sleeps. Their blocks come from, and go back to, a few per-thread
//! slots in front of the allocator (`blocks.rs`), since a blocked operation
//! usually frees a block of the size the next one asks for.
//!
//! Channel queues hold plain pointers ([`PacketPtr`]) and each packet has
//! exactly one owner ([`OwnedPacket`]), the operation that created it, which
//! alone frees it. No reference counts are touched on the hot path: on the
//! machines goro targets an atomic read-modify-write costs as much as the
//! rest of a channel operation, and reference counting would add three of
//! them per blocked operation (and two more per select case).
//!
//! # Invariants
//!
//! 1. **One decision per waiter.** `Waiter::state` starts at `WAITING` and
//!    leaves it exactly once, by a compare-and-swap: to `CASE_BASE + i`
//!    when a counterpart *claims* the waiter for its case `i`, or to
//!    `ABORTED` when the owner gives up (a timeout; a select that may not
//!    wait, right after registering; a select whose registration pass saw
//!    a case ready). The winner of that CAS owns the completion;
//!    every other claimer fails and treats the packet as stale. This one
//!    word is what makes `select!` atomic across channels (Go's
//!    `sudog.selectdone`, crossbeam's `Context::try_select`). A plain
//!    operation's own waiter has a single packet on a single channel, and
//!    both its claims and its owner's abort happen under that channel's
//!    lock, so there the lock alone orders the decision and it is made
//!    with a plain load and store.
//! 2. **Claims and stale drops happen under the channel's lock**, by code
//!    that removes the packet from its queue in the same critical section.
//!    A failed claimer never touches the packet after unlocking.
//! 3. **A successful claimer finishes the packet with one final status
//!    store** ([`Packet::finish`]). Before it, the claimer owns the slot
//!    and moves the owner's `Unparker` out of the waiter; after it, the
//!    claimer touches neither packet nor waiter again (it wakes the owner
//!    through the `Unparker` it moved out).
//! 4. **The owner frees a packet only when nobody else can reach it**: it
//!    is in no queue (the owner removed it under the lock, or a claimer
//!    did) *and* no claimer is between its claim and its final status (the
//!    owner observed the final status with Acquire, or won the abort CAS,
//!    or the waiter was decided for another case). A select's shared
//!    waiter is freed after all of its packets.
//! 5. **Slot ownership follows the protocol**, which is why `slot` can be
//!    an `UnsafeCell`: the creator fills it before publishing the packet;
//!    a successful claimer owns it until its final status store; the owner
//!    owns it after observing that status (Acquire) or winning its abort.
//!    Deferred sends hand their message over in a separate reference-
//!    counted [`Handoff`], because there the receiver keeps waiting after
//!    the packet's final status (`AWAIT_VALUE`).
//! 6. **Status, then wake.** The waiter re-checks its status in a loop
//!    around `park`, so early, late and spurious wake-ups are harmless.

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use goro_runtime::park::{self, Unparker};

use crate::blocks;
use crate::loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// `Waiter::state`: not decided yet.
const WAITING: usize = 0;
/// `Waiter::state`: the owner gave up.
const ABORTED: usize = 1;
/// `Waiter::state`: `CASE_BASE + i` means case `i` was chosen.
const CASE_BASE: usize = 2;

/// What a waiter's decision word says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nobody decided yet.
    Waiting,
    /// The owner gave up (timeout or a retry of select).
    Aborted,
    /// A counterpart chose this case.
    Case(usize),
}

/// One blocked operation: a decision word and a way to wake its owner.
///
/// Shared by all packets of one select (which owns it in a `Box`); owned
/// inline by the packet of a plain `send`/`recv`.
#[doc(hidden)]
pub struct Waiter {
    state: AtomicUsize,
    /// Moved out by the winner of the decision (invariant 3).
    unparker: UnsafeCell<Option<Unparker>>,
}

// SAFETY: `state` is atomic; `unparker` (an `Unparker` is Send + Sync) is
// accessed only by the single party that won the decision CAS (invariant
// 1 and 3), or by the owner after the decision, so there is never
// concurrent access to it.
unsafe impl Sync for Waiter {}
// SAFETY: as above; all fields are Send.
unsafe impl Send for Waiter {}

impl Waiter {
    /// A waiter for the calling coroutine or thread.
    pub(crate) fn new() -> Waiter {
        Waiter {
            state: AtomicUsize::new(WAITING),
            unparker: UnsafeCell::new(Some(park::current())),
        }
    }

    /// Tries to decide this waiter for `case` (invariant 1). On success the
    /// caller owns the completion of that case.
    #[inline]
    pub(crate) fn try_claim(&self, case: usize) -> bool {
        self.state
            .compare_exchange(
                WAITING,
                case + CASE_BASE,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// [`try_claim`](Waiter::try_claim) for a plain operation's own
    /// waiter, which is only ever decided under its one channel's lock
    /// (invariant 1): a load and a store instead of an atomic
    /// read-modify-write.
    #[inline]
    fn claim_exclusive(&self, case: usize) -> bool {
        self.decide_exclusive(case + CASE_BASE)
    }

    #[inline]
    fn decide_exclusive(&self, decision: usize) -> bool {
        if self.state.load(Ordering::Relaxed) == WAITING {
            self.state.store(decision, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Tries to decide this waiter as given up. Fails if a counterpart
    /// claimed it first; its completion is then on its way.
    pub(crate) fn try_abort(&self) -> bool {
        self.state
            .compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The current decision (Acquire).
    #[inline]
    pub(crate) fn decision(&self) -> Decision {
        match self.state.load(Ordering::Acquire) {
            WAITING => Decision::Waiting,
            ABORTED => Decision::Aborted,
            s => Decision::Case(s - CASE_BASE),
        }
    }

    /// Whether nobody decided this waiter yet (a hint: it may change).
    #[inline]
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Relaxed) == WAITING
    }

    /// Moves the owner's wake handle out.
    ///
    /// # Safety
    ///
    /// The caller won this waiter's decision by a claim and has not yet
    /// stored the final status of the claimed packet (invariant 3).
    #[inline]
    unsafe fn take_unparker(&self) -> Option<Unparker> {
        // SAFETY: only the winner of the decision reaches here (the
        // caller's contract), and the owner does not touch the field until
        // it observes the final status, which the caller has not stored.
        unsafe { (*self.unparker.get()).take() }
    }
}

/// A packet's waiter: its own (plain operations, one allocation) or the
/// one its select owns.
enum WaiterRef {
    Own(Waiter),
    /// Points into the owning select's `Box<Waiter>`, which outlives all
    /// of its packets (invariant 4).
    Shared(NonNull<Waiter>),
}

/// Which side of the channel a packet waits on, and whether it carries its
/// message yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A receiver; the slot is empty until a sender fills it.
    Recv,
    /// A sender whose message is in the slot.
    Send,
    /// A select's send case: the message is produced only if this case is
    /// chosen (`select!` evaluates it lazily), so a receiver that claims
    /// it waits for it in a [`Handoff`] (`AWAIT_VALUE`).
    DeferredSend,
}

/// How a packet's case stands (`Packet::status`), or a hand-off
/// (`Handoff::status`). One byte, stored as such in the status atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status(u8);

impl Status {
    /// Nothing happened yet.
    pub(crate) const PENDING: Status = Status(0);
    /// Recv: the message is in the slot. Send: the message was taken.
    pub(crate) const DONE: Status = Status(1);
    /// The channel closed (or lost its receivers) while waiting. A send
    /// packet keeps its message in the slot for its owner to take back.
    pub(crate) const CLOSED: Status = Status(2);
    /// Deferred send: a buffer slot was reserved for the message.
    pub(crate) const RESERVED: Status = Status(3);
    /// Deferred send: a receiver waits for the message in the `Handoff`
    /// left in `partner`.
    pub(crate) const AWAIT_VALUE: Status = Status(4);
    /// `Handoff::status`: the message is in the hand-off slot.
    pub(crate) const VALUE_READY: Status = Status(5);
    /// The counterpart gave up an operation it had claimed: start over.
    pub(crate) const ABANDONED: Status = Status(6);
}

/// The byte itself, as the "finished with status N" panics print it.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One operation's presence on one channel (see the module docs).
pub(crate) struct Packet<T> {
    waiter: WaiterRef,
    case: usize,
    kind: Kind,
    status: AtomicU8,
    slot: UnsafeCell<Option<T>>,
    /// Deferred send: the hand-off a claiming receiver waits on (written
    /// by the claimer before `AWAIT_VALUE`, read by the owner after).
    partner: UnsafeCell<Option<Arc<Handoff<T>>>>,
}

impl<T> Packet<T> {
    /// A packet for a plain operation of the calling coroutine or thread.
    pub(crate) fn plain(kind: Kind, value: Option<T>) -> OwnedPacket<T> {
        OwnedPacket::new(Packet {
            waiter: WaiterRef::Own(Waiter::new()),
            case: 0,
            kind,
            status: AtomicU8::new(Status::PENDING.0),
            slot: UnsafeCell::new(value),
            partner: UnsafeCell::new(None),
        })
    }

    /// A packet for a plain operation of an async task, woken through
    /// `unparker` (an `Unparker::from_waker`).
    pub(crate) fn plain_for(kind: Kind, value: Option<T>, unparker: Unparker) -> OwnedPacket<T> {
        OwnedPacket::new(Packet {
            waiter: WaiterRef::Own(Waiter {
                state: AtomicUsize::new(WAITING),
                unparker: UnsafeCell::new(Some(unparker)),
            }),
            case: 0,
            kind,
            status: AtomicU8::new(Status::PENDING.0),
            slot: UnsafeCell::new(value),
            partner: UnsafeCell::new(None),
        })
    }

    /// Replaces the wake handle of a plain operation's own waiter (an
    /// async task polled with a new waker).
    ///
    /// # Safety
    ///
    /// Call under the lock of the channel whose queue holds the packet,
    /// with the waiter still undecided: plain waiters are claimed only
    /// under that lock (invariant 1), so no claimer can be taking the
    /// handle meanwhile.
    pub(crate) unsafe fn replace_unparker(&self, unparker: Unparker) {
        debug_assert!(self.waiter().is_waiting());
        if let WaiterRef::Own(w) = &self.waiter {
            // SAFETY: the caller's contract: undecided, under the lock, so
            // nobody else accesses the field.
            unsafe { *w.unparker.get() = Some(unparker) };
        }
    }

    /// A packet for case `case` of a select waiting with `waiter`.
    ///
    /// The select must keep `waiter` alive, at the same address, until it
    /// has freed this packet (invariant 4).
    pub(crate) fn for_select(waiter: &Waiter, case: usize, kind: Kind) -> OwnedPacket<T> {
        OwnedPacket::new(Packet {
            waiter: WaiterRef::Shared(NonNull::from(waiter)),
            case,
            kind,
            status: AtomicU8::new(Status::PENDING.0),
            slot: UnsafeCell::new(None),
            partner: UnsafeCell::new(None),
        })
    }

    #[inline]
    pub(crate) fn waiter(&self) -> &Waiter {
        match &self.waiter {
            WaiterRef::Own(w) => w,
            // SAFETY: the select that owns the waiter frees it only after
            // this packet (invariant 4), and anyone holding `&self` holds
            // the packet alive.
            WaiterRef::Shared(w) => unsafe { w.as_ref() },
        }
    }

    #[inline]
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether this packet belongs to `waiter` (a select never pairs with
    /// itself).
    #[inline]
    pub(crate) fn belongs_to(&self, waiter: &Waiter) -> bool {
        std::ptr::eq(self.waiter(), waiter)
    }

    /// Claims this packet's waiter for this packet's case (invariant 1).
    /// Call under the lock of the channel whose queue held the packet.
    #[inline]
    pub(crate) fn claim(&self) -> bool {
        match &self.waiter {
            WaiterRef::Own(w) => w.claim_exclusive(self.case),
            WaiterRef::Shared(_) => self.waiter().try_claim(self.case),
        }
    }

    /// The owner of a plain operation gives up. Call under the lock of the
    /// channel whose queue holds (or held) the packet; true if no claim
    /// came first.
    pub(crate) fn abort_locked(&self) -> bool {
        match &self.waiter {
            WaiterRef::Own(w) => w.decide_exclusive(ABORTED),
            WaiterRef::Shared(w) => {
                // SAFETY: see `waiter()`.
                unsafe { w.as_ref() }.try_abort()
            }
        }
    }

    /// The status (Acquire).
    #[inline]
    pub(crate) fn status(&self) -> Status {
        Status(self.status.load(Ordering::Acquire))
    }

    /// Stores the final status and wakes the owner (invariant 3).
    ///
    /// # Safety
    ///
    /// The caller claimed this packet and has not finished it. After this
    /// call the packet may be freed at any moment: do not touch it again.
    #[inline]
    pub(crate) unsafe fn finish(&self, status: Status) {
        // SAFETY: we won the claim and have not stored a final status yet
        // (this function's contract).
        let unparker = unsafe { self.waiter().take_unparker() };
        self.status.store(status.0, Ordering::Release);
        if let Some(u) = unparker {
            u.unpark();
        }
    }

    /// Puts `value` in the slot.
    ///
    /// # Safety
    ///
    /// The caller owns the slot (invariant 5).
    #[inline]
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: the caller owns the slot (this function's contract), so
        // no other reference to its contents exists.
        unsafe { *self.slot.get() = Some(value) };
    }

    /// Takes the value out of the slot.
    ///
    /// # Safety
    ///
    /// The caller owns the slot (invariant 5).
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: the caller owns the slot (this function's contract), so
        // no other reference to its contents exists.
        unsafe { (*self.slot.get()).take() }
    }

    /// Parks until the status is no longer `PENDING`; returns it. For an
    /// owner whose waiter is already decided for this packet's case: the
    /// claimer is about to store the status.
    pub(crate) fn wait_decided(&self) -> Status {
        loop {
            let s = self.status();
            if s != Status::PENDING {
                return s;
            }
            park::park();
        }
    }

    /// Receiver side of a deferred send: leaves a hand-off for the owner
    /// to fill, and finishes the packet with `AWAIT_VALUE`. Wait on the
    /// returned hand-off.
    ///
    /// # Safety
    ///
    /// As [`finish`](Packet::finish): the caller claimed this deferred-send
    /// packet and has not finished it.
    pub(crate) unsafe fn await_value(&self) -> Arc<Handoff<T>> {
        let handoff = Arc::new(Handoff {
            status: AtomicU8::new(Status::PENDING.0),
            slot: UnsafeCell::new(None),
            unparker: park::current(),
        });
        // SAFETY: as the claimer we own the packet's fields until the final
        // status (invariant 3); the owner reads `partner` only after it.
        unsafe { *self.partner.get() = Some(handoff.clone()) };
        // SAFETY: forwarded contract.
        unsafe { self.finish(Status::AWAIT_VALUE) };
        handoff
    }

    /// Owner side of a deferred send, after observing `AWAIT_VALUE`: the
    /// hand-off to fill.
    ///
    /// # Safety
    ///
    /// The caller is this packet's owner and observed `AWAIT_VALUE`.
    pub(crate) unsafe fn take_partner(&self) -> Arc<Handoff<T>> {
        // SAFETY: the claimer wrote `partner` before its final status store
        // and never touches the packet again; we observed that store with
        // Acquire (the caller's contract).
        let h = unsafe { (*self.partner.get()).take() };
        h.expect("goro-channel: Status::AWAIT_VALUE without a hand-off")
    }
}

/// Where a select's deferred send hands its message to the receiver that
/// claimed it. Reference-counted: the receiver waits on it after the
/// sender's packet is gone.
pub(crate) struct Handoff<T> {
    status: AtomicU8,
    slot: UnsafeCell<Option<T>>,
    unparker: Unparker,
}

// SAFETY: `slot` is written once by the sender before it stores
// VALUE_READY (Release) and read by the receiver after it observes that
// store (Acquire); nobody else touches it. Everything else is Send + Sync.
unsafe impl<T: Send> Sync for Handoff<T> {}
// SAFETY: as above; the hand-off owns at most one `T`.
unsafe impl<T: Send> Send for Handoff<T> {}

impl<T> Handoff<T> {
    /// Sender side: delivers the message and wakes the receiver. Call at
    /// most once, and not after [`abandon`](Handoff::abandon).
    pub(crate) fn give(&self, value: T) {
        debug_assert_eq!(Status(self.status.load(Ordering::Relaxed)), Status::PENDING);
        // SAFETY: the receiver reads the slot only after VALUE_READY, which
        // is stored below, and this is the only write (one sender, once).
        unsafe { *self.slot.get() = Some(value) };
        self.status.store(Status::VALUE_READY.0, Ordering::Release);
        self.unparker.unpark();
    }

    /// Sender side: gives up without a message; the receiver starts over.
    pub(crate) fn abandon(&self) {
        self.status.store(Status::ABANDONED.0, Ordering::Release);
        self.unparker.unpark();
    }

    /// Receiver side: parks until the message arrives (`Some`) or the
    /// sender gave up (`None`: retry).
    pub(crate) fn wait(&self) -> Option<T> {
        loop {
            match Status(self.status.load(Ordering::Acquire)) {
                Status::VALUE_READY => {
                    // SAFETY: we observed VALUE_READY with Acquire, after
                    // which the sender never touches the slot again.
                    return unsafe { (*self.slot.get()).take() };
                }
                Status::ABANDONED => return None,
                _ => park::park(),
            }
        }
    }
}

/// A queue's pointer to a packet. Valid while the packet is in a queue
/// (under that channel's lock) and for a successful claimer until it
/// finishes the packet (invariants 2 to 4).
pub(crate) struct PacketPtr<T>(NonNull<Packet<T>>);

impl<T> Clone for PacketPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for PacketPtr<T> {}

// SAFETY: a `PacketPtr` is only dereferenced under the protocol above, and
// the packet it points to is shareable across threads when `T: Send`
// (its slot is handed over through the status word, invariant 5).
unsafe impl<T: Send> Send for PacketPtr<T> {}

impl<T> PacketPtr<T> {
    /// The packet.
    ///
    /// # Safety
    ///
    /// The packet is alive: it is in a queue whose lock the caller holds,
    /// or the caller claimed it and has not finished it.
    #[inline]
    pub(crate) unsafe fn get<'x>(self) -> &'x Packet<T> {
        // SAFETY: the packet is alive (the caller's contract), and the
        // owner frees it only under invariant 4.
        unsafe { self.0.as_ref() }
    }

    /// Whether this is the packet `owned` points to.
    #[inline]
    pub(crate) fn is(self, owned: &OwnedPacket<T>) -> bool {
        self.0 == owned.0
    }
}

/// The owner's handle to its packet. Dropping it without
/// [`free`](OwnedPacket::free) leaks the packet: that only happens while
/// unwinding, when freeing could be unsound.
pub(crate) struct OwnedPacket<T>(NonNull<Packet<T>>);

// SAFETY: the owner's handle is a unique owner of a heap packet, which is
// shareable across threads when `T: Send` (see `PacketPtr`).
unsafe impl<T: Send> Send for OwnedPacket<T> {}

impl<T> OwnedPacket<T> {
    fn new(packet: Packet<T>) -> OwnedPacket<T> {
        OwnedPacket(blocks::allocate(packet))
    }

    /// The packet. Valid for as long as the owner does not free it.
    #[inline]
    pub(crate) fn get(&self) -> &Packet<T> {
        // SAFETY: only the owner frees the packet, through `free`, which
        // consumes this handle; so while `&self` lives the packet does.
        unsafe { self.0.as_ref() }
    }

    /// The pointer to put in a queue.
    #[inline]
    pub(crate) fn ptr(&self) -> PacketPtr<T> {
        PacketPtr(self.0)
    }

    /// Frees the packet, returning what its slot held.
    ///
    /// # Safety
    ///
    /// Nobody else can reach the packet any more (invariant 4).
    pub(crate) unsafe fn free(self) -> Option<T> {
        let this = ManuallyDrop::new(self);
        // SAFETY: the packet was made by `blocks::allocate` in `new`, and this
        // handle (consumed here) is its one owner; by the caller's
        // contract no other reference to it exists.
        unsafe { blocks::drop_with(this.0, |p| p.slot.get_mut().take()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_is_decided_once() {
        let w = Waiter::new();
        assert_eq!(w.decision(), Decision::Waiting);
        assert!(w.try_claim(3));
        assert!(!w.try_claim(1));
        assert!(!w.try_abort());
        assert_eq!(w.decision(), Decision::Case(3));
        let w = Waiter::new();
        assert!(w.try_abort());
        assert!(!w.try_claim(0));
        assert_eq!(w.decision(), Decision::Aborted);
    }

    #[test]
    fn plain_packets_claim_and_abort_exclusively() {
        let p = Packet::<u8>::plain(Kind::Recv, None);
        assert!(p.get().claim());
        assert!(!p.get().claim());
        assert!(!p.get().abort_locked());
        // SAFETY: claimed above and not finished; nobody else has it.
        unsafe { p.get().put(7) };
        // SAFETY: as above; after this the packet is only ours again.
        unsafe { p.get().finish(Status::DONE) };
        assert_eq!(p.get().status(), Status::DONE);
        // SAFETY: never queued, finished: nobody else can reach it.
        assert_eq!(unsafe { p.free() }, Some(7));
        let q = Packet::<u8>::plain(Kind::Send, Some(1));
        assert!(q.get().abort_locked());
        assert!(!q.get().claim());
        // SAFETY: never queued, aborted: nobody else can reach it.
        assert_eq!(unsafe { q.free() }, Some(1));
    }

    #[test]
    fn select_packets_share_one_decision() {
        let w = Box::new(Waiter::new());
        let a = Packet::<u8>::for_select(&w, 0, Kind::Recv);
        let b = Packet::<u8>::for_select(&w, 1, Kind::DeferredSend);
        assert!(a.get().belongs_to(&w) && b.get().belongs_to(&w));
        assert!(b.get().claim());
        assert!(!a.get().claim());
        assert_eq!(w.decision(), Decision::Case(1));
        // SAFETY: neither packet was ever queued.
        unsafe {
            a.free();
            b.free();
        }
    }

    #[test]
    fn handoff_delivers_or_abandons() {
        let h = Arc::new(Handoff {
            status: AtomicU8::new(Status::PENDING.0),
            slot: UnsafeCell::new(None),
            unparker: park::current(),
        });
        let h2 = h.clone();
        let t = std::thread::spawn(move || h2.give(5u32));
        assert_eq!(h.wait(), Some(5));
        t.join().unwrap();
        let h = Arc::new(Handoff::<u32> {
            status: AtomicU8::new(Status::PENDING.0),
            slot: UnsafeCell::new(None),
            unparker: park::current(),
        });
        h.abandon();
        assert_eq!(h.wait(), None);
    }
}
