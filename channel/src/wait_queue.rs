//! A channel's queue of waiting senders or receivers, in FIFO order.
//!
//! Most channels never have more than one waiter on a side (an idle
//! receiver blocked on its own channel is the commonest case there is: a
//! connection's inbox, a done channel, a reply slot), so the queue keeps
//! one waiter inline and boxes a `VecDeque` only when a second one
//! arrives; it goes back to inline storage when it empties. An empty or
//! one-waiter queue allocates nothing, and the queue is two words in the
//! channel's header instead of `VecDeque`'s four: both are part of what
//! every parked coroutine costs.
//!
//! It holds `Copy` handles (`PacketPtr`s) and no more logic than a deque;
//! the engine (`engine.rs`) decides what to queue and when, under the
//! channel's lock, as before.

use std::collections::VecDeque;

/// A FIFO of `Copy` entries with room for one inline.
pub(crate) enum WaitQueue<P: Copy> {
    /// No entries.
    Empty,
    /// Exactly one entry.
    One(P),
    /// Two or more entries (never fewer: see [`WaitQueue::settle`]).
    /// Boxed on purpose: unboxed, the deque's four words would make every
    /// queue, empty ones included, three words instead of two.
    #[allow(clippy::box_collection)]
    Many(Box<VecDeque<P>>),
}

impl<P: Copy> WaitQueue<P> {
    pub(crate) const fn new() -> WaitQueue<P> {
        WaitQueue::Empty
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, WaitQueue::Empty)
    }

    /// Appends `p` at the back.
    pub(crate) fn push_back(&mut self, p: P) {
        match self {
            WaitQueue::Empty => *self = WaitQueue::One(p),
            WaitQueue::One(first) => {
                let mut q = VecDeque::with_capacity(4);
                q.push_back(*first);
                q.push_back(p);
                *self = WaitQueue::Many(Box::new(q));
            }
            WaitQueue::Many(q) => q.push_back(p),
        }
    }

    /// Takes the front entry.
    pub(crate) fn pop_front(&mut self) -> Option<P> {
        let p = match self {
            WaitQueue::Empty => return None,
            WaitQueue::One(p) => {
                let p = *p;
                *self = WaitQueue::Empty;
                return Some(p);
            }
            WaitQueue::Many(q) => q.pop_front(),
        };
        self.settle();
        p
    }

    /// Whether any entry satisfies `f`, front to back.
    pub(crate) fn any(&self, mut f: impl FnMut(&P) -> bool) -> bool {
        match self {
            WaitQueue::Empty => false,
            WaitQueue::One(p) => f(p),
            WaitQueue::Many(q) => q.iter().any(f),
        }
    }

    /// Removes the last entry that satisfies `f`; whether there was one.
    pub(crate) fn remove_last(&mut self, mut f: impl FnMut(&P) -> bool) -> bool {
        let found = match self {
            WaitQueue::Empty => false,
            WaitQueue::One(p) => {
                if !f(p) {
                    return false;
                }
                *self = WaitQueue::Empty;
                return true;
            }
            WaitQueue::Many(q) => match q.iter().rposition(f) {
                Some(i) => {
                    q.remove(i);
                    true
                }
                None => false,
            },
        };
        self.settle();
        found
    }

    /// Takes every entry, front first, leaving the queue empty.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = P> {
        let taken = std::mem::replace(self, WaitQueue::Empty);
        let (one, many) = match taken {
            WaitQueue::Empty => (None, None),
            WaitQueue::One(p) => (Some(p), None),
            WaitQueue::Many(q) => (None, Some(*q)),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Keeps `Many` for two or more entries: one goes back inline, none
    /// frees the box.
    fn settle(&mut self) {
        if let WaitQueue::Many(q) = self {
            match q.len() {
                0 => *self = WaitQueue::Empty,
                1 => *self = WaitQueue::One(q[0]),
                _ => {}
            }
        }
    }

    /// The entries, front first (tests).
    #[cfg(test)]
    fn to_vec(&self) -> Vec<P> {
        let mut v = Vec::new();
        self.any(|p| {
            v.push(*p);
            false
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::WaitQueue;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u8),
        Pop,
        RemoveLast(u8),
        TakeAll,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(|v| Op::Push(v % 8)),
            2 => Just(Op::Pop),
            2 => any::<u8>().prop_map(|v| Op::RemoveLast(v % 8)),
            1 => Just(Op::TakeAll),
        ]
    }

    proptest! {
        /// The queue behaves as a `VecDeque` under every sequence of
        /// operations, and is never `Many` with fewer than two entries.
        #[test]
        fn behaves_as_a_deque(ops in proptest::collection::vec(op(), 0..64)) {
            let mut q = WaitQueue::new();
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        q.push_back(v);
                        model.push_back(v);
                    }
                    Op::Pop => prop_assert_eq!(q.pop_front(), model.pop_front()),
                    Op::RemoveLast(v) => {
                        let want = model.iter().rposition(|&e| e == v);
                        if let Some(i) = want {
                            model.remove(i);
                        }
                        prop_assert_eq!(q.remove_last(|&e| e == v), want.is_some());
                    }
                    Op::TakeAll => {
                        let got: Vec<u8> = q.take_all().collect();
                        let want: Vec<u8> = model.drain(..).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(q.to_vec(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(q.is_empty(), model.is_empty());
                if let WaitQueue::Many(m) = &q {
                    prop_assert!(m.len() >= 2);
                }
            }
        }
    }

    #[test]
    fn is_two_words_for_a_pointer() {
        assert_eq!(
            std::mem::size_of::<WaitQueue<std::ptr::NonNull<u8>>>(),
            2 * std::mem::size_of::<usize>()
        );
    }
}
