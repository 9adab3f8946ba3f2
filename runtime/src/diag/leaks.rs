//! The leak report: coroutines that can never be woken.
//!
//! goro has no garbage collector, so it cannot see who holds the other end
//! of a channel or a lock. What it can prove is *quiescence*: every
//! started coroutine is parked on a goro primitive (no network wait, no
//! blocking-pool job), no timer is pending, every worker sleeps and every
//! thread that ever waited in goro is blocked in a goro wait without a
//! deadline. Then no goro party can ever wake any of those coroutines, and
//! [`leaks`] lists them all.
//!
//! What it cannot see: a thread outside goro (or a signal handler, or
//! another library's callback) that holds a `Sender`, a lock guard or an
//! `Unparker` and may still use it. So a leak report is "nothing goro runs
//! can wake these", exact only when every thread of the program is goro's
//! (then it is also a deadlock, see `deadlock.rs`). Partial leaks (some
//! coroutines blocked forever while others run, Go 1.26's goroutine-leak
//! profile) need to know which objects are reachable, which a GC gives Go
//! and goro does not have: they are not reported.
//!
//! # Partial leaks: wait-for cycles on locks and joins
//!
//! While other coroutines run, [`leaks`] still finds the coroutines whose
//! wait can only end through a coroutine that is itself stuck, for the
//! waits whose other party goro knows exactly:
//!
//! - a lock (`Mutex::lock`, and `RwLock::read`/`write` while a writer
//!   holds it): its holder, recorded when the lock is taken (goro's
//!   guards are not `Send`, so the taker is the holder; see `owner.rs`);
//! - a join (`JoinHandle::join`): the coroutine joined.
//!
//! Each such wait is an edge from the waiter to that party. The report is
//! the greatest set of parked coroutines whose edge leads into the set:
//! every wait-for cycle (a lock taken twice by one coroutine is a cycle of
//! one; two coroutines taking two locks in opposite orders, one of two),
//! and every coroutine whose chain of edges ends in one. Such a coroutine
//! cannot wake: the holder it waits for is parked on a lock or join that
//! only another member can end, and none of them runs. The edges are read
//! without stopping anything, so the set is computed twice, from two
//! snapshots, and only coroutines whose waits and edges were the same in
//! both are reported: a hand-over in flight between the two readings
//! drops out.
//!
//! What it does not see, and so never reports while the rest runs:
//!
//! - channel, condvar, semaphore, wait-group, barrier and select waits,
//!   and user `park`s: who holds the other handle of a channel (or will
//!   call `notify`) would need every handle to record its owner, a cost
//!   on every clone that goro does not pay. Go's most common partial leak
//!   cannot happen in goro anyway: a goroutine left sending on (or
//!   receiving from) a channel whose other side was dropped, such as the
//!   worker of a request that timed out. goro's channels count their
//!   handles; dropping the last `Receiver` disconnects the channel and
//!   wakes every blocked sender with an error (and the last `Sender` the
//!   receivers), so such a coroutine runs on instead of leaking. These
//!   waits are reported only in the quiescent case above.
//! - a lock held by a plain thread, or by readers (`RwLock` records its
//!   writer only), and waits of threads: their holder is unknown, so no
//!   edge leads on from them;
//! - coroutines on shared stacks are covered like any other (the edges
//!   name tasks, not stacks).

use super::{WaitInfo, dump};
use crate::scheduler;
use crate::task::{State, Task};
use std::collections::HashMap;
use std::fmt;

/// A coroutine [`leaks`] found parked for good.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leak {
    /// The coroutine's id.
    pub id: u64,
    /// Its name, if any.
    pub name: Option<String>,
    /// What it waits on.
    pub wait: Option<WaitInfo>,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coroutine {}", self.id)?;
        if let Some(n) = &self.name {
            write!(f, " '{n}'")?;
        }
        if let Some(w) = &self.wait {
            write!(f, " [{}] at {}", w.kind, w.location)?;
        }
        Ok(())
    }
}

/// Coroutines that can never be woken (see the module docs for what this
/// can and cannot know): while the program runs, those stuck in a
/// wait-for cycle of locks and joins; when the whole runtime is quiescent,
/// every parked coroutine.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
///
/// // Two coroutines take two locks in opposite orders.
/// let (a, b) = (Arc::new(goro::sync::Mutex::new(())), Arc::new(goro::sync::Mutex::new(())));
/// let (tx, rx) = goro::chan::bounded::<()>(2);
/// for (first, second) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
///     let tx = tx.clone();
///     goro::go!(move || {
///         let _g = first.lock();
///         tx.send(()).unwrap();
///         goro::sleep(Duration::from_millis(20)); // let the other take its first
///         let _h = second.lock();
///     });
/// }
/// rx.recv().unwrap();
/// rx.recv().unwrap();
/// let end = Instant::now() + Duration::from_secs(10);
/// while goro::leaks().len() < 2 {
///     assert!(Instant::now() < end, "the cycle was not found");
///     std::thread::sleep(Duration::from_millis(5));
/// }
/// ```
pub fn leaks() -> Vec<Leak> {
    if scheduler::try_get().is_none() {
        return Vec::new();
    }
    if !super::deadlock::is_settled() {
        return cycles();
    }
    let mut out: Vec<Leak> = dump::snapshot()
        .into_iter()
        .filter(|e| !e.thread)
        .map(|e| Leak {
            id: e.id,
            name: e.name,
            wait: e.wait,
        })
        .collect();
    out.sort_by_key(|l| l.id);
    out
}

/// One parked coroutine's wait with a known other party.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Edge {
    /// The waiter's packed kind, location and since (its wait's identity).
    wait: (u64, usize, u64),
    to: Party,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Party {
    /// A lock's holder: a task address.
    Holder(usize),
    /// A joined coroutine: its id.
    Joined(u64),
}

/// Serializes readers of wait slots' `object` words (`owner.rs`,
/// invariant 3).
static READER: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Every parked coroutine with a known party: id, task address, edge.
fn edges() -> Vec<(u64, usize, Edge)> {
    let _one = READER.lock();
    let mut out = Vec::new();
    scheduler::get().registry.for_each(|t| {
        if t.state() != State::Parked {
            return;
        }
        let wait = t.wait.identity();
        let to = if let Some(id) = t.wait.join_target() {
            Party::Joined(id)
        } else {
            match super::owner::holder_waited_for(&t.wait.object) {
                Some(h) if h != 0 => Party::Holder(h),
                _ => return,
            }
        };
        out.push((
            t.id(),
            (t as *const Task).cast::<u8>() as usize,
            Edge { wait, to },
        ));
    });
    out
}

/// The greatest set of `edges`' waiters whose party is in the set.
fn stuck(edges: &[(u64, usize, Edge)]) -> HashMap<u64, Edge> {
    let by_addr: HashMap<usize, u64> = edges.iter().map(|&(id, a, _)| (a, id)).collect();
    let mut set: HashMap<u64, Edge> = edges.iter().map(|&(id, _, e)| (id, e)).collect();
    loop {
        let before = set.len();
        let keep: Vec<u64> = set
            .iter()
            .filter(|(_, e)| {
                let to = match e.to {
                    Party::Holder(a) => by_addr.get(&a).copied(),
                    Party::Joined(id) => Some(id),
                };
                to.is_some_and(|id| set.contains_key(&id))
            })
            .map(|(&id, _)| id)
            .collect();
        set.retain(|id, _| keep.contains(id));
        if set.len() == before {
            return set;
        }
    }
}

/// The partial-leak report (module docs): members of a wait-for cycle in
/// two snapshots with the same waits.
fn cycles() -> Vec<Leak> {
    let first = stuck(&edges());
    if first.is_empty() {
        return Vec::new();
    }
    let second = stuck(&edges());
    let ids: Vec<u64> = second
        .iter()
        .filter(|(id, e)| first.get(id) == Some(e))
        .map(|(&id, _)| id)
        .collect();
    let mut out: Vec<Leak> = dump::snapshot()
        .into_iter()
        .filter(|e| !e.thread && ids.contains(&e.id))
        .map(|e| Leak {
            id: e.id,
            name: e.name,
            wait: e.wait,
        })
        .collect();
    out.sort_by_key(|l| l.id);
    out
}
