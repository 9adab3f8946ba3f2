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
//! Go's most common partial leak cannot happen in goro: a goroutine left
//! sending on (or receiving from) a channel whose other side was dropped,
//! such as the worker of a request that timed out. goro's channels count
//! their handles; dropping the last `Receiver` disconnects the channel and
//! wakes every blocked sender with an error (and the last `Sender` the
//! receivers), so such a coroutine runs on instead of leaking. What is
//! left are waits on an object whose other handles are held by coroutines
//! that are themselves stuck (two coroutines each holding the sender the
//! other waits on, a lock whose holder waits for its waiter); telling
//! which coroutine holds a handle would need every handle and guard to
//! record its owner, a cost on every clone, lock and unlock that goro
//! does not pay.

use super::{WaitInfo, dump};
use crate::scheduler;
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

/// Coroutines that nothing goro runs can ever wake (see the module docs of
/// what this can and cannot know): empty unless the whole runtime is
/// quiescent.
///
/// ```
/// assert!(goro::leaks().is_empty());
/// ```
pub fn leaks() -> Vec<Leak> {
    if scheduler::try_get().is_none() || !super::deadlock::is_settled() {
        return Vec::new();
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
