//! [`Barrier`]: let `n` parties meet before any goes on; reusable.
//!
//! # Invariants
//!
//! 1. `state.arrived` counts the parties of the current generation that
//!    have called `wait`; it is below `n` whenever the lock is not held,
//!    and `state.waiting` holds exactly the nodes of those parties.
//! 2. The party whose arrival makes the count reach `n` is the leader of
//!    the generation: with the lock held it resets the count to zero and
//!    takes the whole queue, marking each node `RELEASED`. That ends the
//!    generation atomically: a party arriving afterwards (even a released
//!    one that comes straight back) starts the next generation and cannot
//!    be released by this one. Exactly one leader per generation.

use std::fmt;
use std::sync::Arc;

use crate::waiter::{self, WaitNode};

/// Node state: the generation completed.
const RELEASED: usize = 1;

struct State {
    arrived: usize,
    waiting: Vec<Arc<WaitNode>>,
}

/// A barrier: [`wait`](Barrier::wait) parks each caller until `n` callers
/// have arrived, then releases them all together. It can be used again for
/// the next round at once.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use goro::sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(4));
/// let hs: Vec<_> = (0..4)
///     .map(|_| {
///         let b = barrier.clone();
///         goro::go!(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = hs.into_iter().map(|h| h.join().unwrap()).filter(|&l| l).count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: parking_lot::Mutex<State>,
    /// The testing bubble it belongs to (`bubble.rs`).
    bubble: crate::bubble::BubbleMark,
}

/// What [`Barrier::wait`] returns: tells the one leader of each round
/// apart from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// `true` for exactly one caller per round: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// Creates a barrier for `n` parties. `n == 0` behaves like `n == 1`:
    /// every `wait` returns at once as leader (as std's does).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: parking_lot::Mutex::new(State {
                arrived: 0,
                waiting: Vec::new(),
            }),
            bubble: crate::bubble::BubbleMark::new(),
        }
    }

    /// Parks until `n` parties (this one included) have called `wait` in
    /// this round, then returns; the last to arrive is the round's leader.
    ///
    /// ```
    /// let b = goro::sync::Barrier::new(1);
    /// assert!(b.wait().is_leader());
    /// assert!(b.wait().is_leader()); // a new round
    /// ```
    #[track_caller]
    pub fn wait(&self) -> BarrierWaitResult {
        self.bubble.check("a goro::sync::Barrier");
        let mut state = self.state.lock();
        state.arrived += 1;
        if state.arrived >= self.n {
            state.arrived = 0;
            let woken = std::mem::take(&mut state.waiting);
            for w in &woken {
                w.set(RELEASED);
            }
            drop(state);
            waiter::unpark_all(woken);
            return BarrierWaitResult(true);
        }
        let node = WaitNode::new();
        state.waiting.push(node.clone());
        drop(state);
        node.wait(goro_runtime::park::WaitKind::Barrier);
        WaitNode::recycle(node);
        BarrierWaitResult(false)
    }
}

// A panic anywhere leaves the Barrier consistent (it holds no user data and
// its internal lock does not poison), so observing it after a caught panic
// is fine, as with std's types.
impl std::panic::UnwindSafe for Barrier {}
impl std::panic::RefUnwindSafe for Barrier {}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_one_never_block() {
        for n in [0, 1] {
            let b = Barrier::new(n);
            for _ in 0..3 {
                assert!(b.wait().is_leader());
            }
        }
    }

    #[test]
    fn two_threads_one_leader_per_round() {
        let b = Arc::new(Barrier::new(2));
        let b2 = b.clone();
        let h = std::thread::spawn(move || (0..100).filter(|_| b2.wait().is_leader()).count());
        let mine = (0..100).filter(|_| b.wait().is_leader()).count();
        assert_eq!(mine + h.join().unwrap(), 100);
    }
}
