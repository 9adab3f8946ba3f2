//! Wait nodes (`WaitNode`): how every primitive in this crate waits.
//!
//! A blocked caller takes one [`WaitNode`] (heap-allocated, pooled),
//! puts an `Arc` to it into the primitive's queue and parks until another
//! party changes the node's `state` away from [`WAITING`]. The node lives
//! on the heap, never on the parked coroutine's stack, so a waker never
//! writes into a stack that is switched out, or copied away on a shared
//! stack (goro_runtime's `stack/shared.rs`, "The invariant: shared stacks
//! lend nothing").
//!
//! # Invariants
//!
//! 1. A node is in at most one queue at a time, and while it is queued its
//!    state is `WAITING`. A waker that takes it off the queue (with the
//!    queue's lock held) sets its state to something else before releasing
//!    that lock, so for the owner "still `WAITING`" means "still queued"
//!    whenever it holds that lock. The owner itself may take its node off
//!    (a timed-out `Condvar` wait) or re-arm it with [`WaitNode::rearm`]
//!    before queueing it again (a `Mutex` waiter that lost a race), both
//!    with the lock held.
//! 2. The state is written with `Release` by the waker after everything the
//!    woken party must see (a handed-off lock's protected data, a permit),
//!    and read with `Acquire` by the waiter, so the hand-off carries the
//!    happens-before edge.
//! 3. The waker unparks *after* setting the state and holds its own `Arc`
//!    to the node while doing so: the waiter may see the new state, return
//!    and drop its `Arc` before `unpark` runs. A late `unpark` only leaves a
//!    stale park token behind, which the park contract already allows (a
//!    spurious wake-up that every caller re-checks).
//! 4. `park` may return spuriously; [`WaitNode::wait`] loops until the state
//!    changes, so callers of `wait` never see a spurious return.
//! 5. Nodes are pooled per thread ([`WaitNode::recycle`]): a node goes back
//!    to the pool only when `Arc::get_mut` proves nobody else holds it (a
//!    waker still inside `unpark` keeps it out, and it is simply freed
//!    later), and its `Unparker` is dropped on the way in, so a pooled node
//!    keeps no finished coroutine alive. Taking from and returning to the
//!    pool never spans a park, so coroutines sharing a worker thread share
//!    its pool safely.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

use goro_runtime::park::{self, Unparker};

/// The state of a queued node. Every other value is chosen by the primitive
/// that owns the queue (granted, retry, notified, ...).
pub(crate) const WAITING: usize = 0;

/// Nodes kept per thread for reuse (invariant 5). A thread rarely waits on
/// more than a handful of primitives at once, and coroutines take a node
/// and give it back around each wait, so a few suffice; the bound keeps a
/// burst from pinning memory.
const POOL_SIZE: usize = 8;

thread_local! {
    static POOL: RefCell<Vec<Arc<WaitNode>>> = const { RefCell::new(Vec::new()) };
}

/// One blocked coroutine or thread (see the module docs).
pub(crate) struct WaitNode {
    /// Who to wake; `None` only while the node sits in the pool.
    unparker: Option<Unparker>,
    state: AtomicUsize,
    /// When the caller first queued (the mutex's starvation clock).
    since: Instant,
}

impl WaitNode {
    /// A node for the calling coroutine or thread, in state `WAITING`,
    /// from this thread's pool if it has one.
    // Never inlined, like `recycle`: a migratable coroutine (goro_runtime's
    // `Builder::migratable`) may take a node, park, move to another worker
    // thread and recycle it, and the pool's thread-local address must not be
    // cached across that park in one function body.
    #[inline(never)]
    pub(crate) fn new() -> Arc<WaitNode> {
        // Under loom nothing is pooled: a pooled node would carry one
        // model run's atomics into the next.
        let pooled = if cfg!(loom) {
            None
        } else {
            POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten()
        };
        match pooled {
            Some(mut node) => {
                let n = Arc::get_mut(&mut node).expect("goro: pooled waiter nodes are unshared");
                n.unparker = Some(park::current());
                n.state = AtomicUsize::new(WAITING);
                n.since = Instant::now();
                node
            }
            None => Arc::new(WaitNode {
                unparker: Some(park::current()),
                state: AtomicUsize::new(WAITING),
                since: Instant::now(),
            }),
        }
    }

    /// Gives a node its owner is done with back to this thread's pool, if
    /// nobody else holds it any more; otherwise just drops this reference.
    #[inline(never)]
    pub(crate) fn recycle(mut node: Arc<WaitNode>) {
        let Some(n) = Arc::get_mut(&mut node) else {
            return;
        };
        n.unparker = None;
        if cfg!(loom) {
            return;
        }
        let _ = POOL.try_with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < POOL_SIZE {
                pool.push(node);
            }
        });
    }

    /// When the node was made, that is when its owner started to wait.
    pub(crate) fn since(&self) -> Instant {
        self.since
    }

    /// Puts a node that was woken back into state `WAITING`, before its
    /// owner queues it again (call with the queue's lock held).
    pub(crate) fn rearm(&self) {
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// The current state (`Acquire`: pairs with [`WaitNode::set`]).
    pub(crate) fn state(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }

    /// Sets the state of a node just taken off a queue (call with the
    /// queue's lock held; invariant 1). Wake it with [`WaitNode::unpark`]
    /// afterwards, preferably after releasing the lock.
    pub(crate) fn set(&self, state: usize) {
        debug_assert_ne!(state, WAITING);
        self.state.store(state, Ordering::Release);
    }

    /// Wakes the node's owner (invariant 3: the caller holds an `Arc`).
    pub(crate) fn unpark(&self) {
        if let Some(u) = &self.unparker {
            u.unpark();
        }
    }

    /// Parks the caller, the node's owner, until the state is not
    /// `WAITING`, and returns it. Never returns spuriously.
    #[track_caller]
    pub(crate) fn wait(&self, kind: park::WaitKind) -> usize {
        loop {
            let s = self.state();
            if s != WAITING {
                return s;
            }
            park::park_with(kind);
        }
    }

    /// Like [`WaitNode::wait`], but gives up at `deadline` and then returns
    /// `WAITING`. The node may still be queued then: the caller must take
    /// the queue's lock and either remove it or find it was woken after all.
    #[track_caller]
    pub(crate) fn wait_deadline(&self, deadline: Instant, kind: park::WaitKind) -> usize {
        loop {
            let s = self.state();
            if s != WAITING || goro_runtime::testing::now() >= deadline {
                return s;
            }
            park::park_deadline_with(deadline, kind);
        }
    }
}

/// Wakes every node in `woken` (already taken off their queue and given
/// their new state with the queue's lock held, now released).
pub(crate) fn unpark_all(woken: impl IntoIterator<Item = Arc<WaitNode>>) {
    for w in woken {
        w.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled() -> usize {
        POOL.with(|p| p.borrow().len())
    }

    #[test]
    fn nodes_are_reused_without_their_unparker() {
        POOL.with(|p| p.borrow_mut().clear());
        let a = WaitNode::new();
        let addr = Arc::as_ptr(&a);
        a.set(1);
        WaitNode::recycle(a);
        assert_eq!(pooled(), 1);
        POOL.with(|p| assert!(p.borrow()[0].unparker.is_none()));
        let b = WaitNode::new();
        assert_eq!(Arc::as_ptr(&b), addr, "the pooled node is reused");
        assert_eq!(b.state(), WAITING);
        assert!(b.unparker.is_some());
        assert_eq!(pooled(), 0);
    }

    #[test]
    fn shared_nodes_are_not_pooled() {
        POOL.with(|p| p.borrow_mut().clear());
        let a = WaitNode::new();
        let waker_copy = a.clone();
        WaitNode::recycle(a);
        assert_eq!(pooled(), 0);
        drop(waker_copy);
    }

    #[test]
    fn wait_returns_the_new_state_across_threads() {
        let node = WaitNode::new();
        let waker = node.clone();
        let t = std::thread::spawn(move || {
            waker.set(7);
            waker.unpark();
        });
        assert_eq!(node.wait(park::WaitKind::Park), 7);
        t.join().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(2);
        let idle = WaitNode::new();
        assert_eq!(idle.wait_deadline(deadline, park::WaitKind::Park), WAITING);
        assert!(Instant::now() >= deadline);
    }
}
