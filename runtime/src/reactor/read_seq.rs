//! The read direction's readiness word on epoll: a sequence number that
//! also remembers "the last read drained the socket", so that the next
//! read of a stream can wait without first making a `recv` that says
//! `EAGAIN` (tokio clears its read readiness on a short read for the same
//! saving).
//!
//! # The word
//!
//! - Bits 1..=61 count readiness edges; bit 0 is `DRAINED`; bit 62
//!   (`CHECKED`) says the socket's type was looked up; bit 63 (`NO_SKIP`)
//!   turns the saving off for good.
//! - An edge (epoll reported the fd readable) sets the word to
//!   `(w | DRAINED) + 1`, a compare-exchange loop: the count moves by one
//!   and `DRAINED` is cleared, in one step. An edge that reports a hang-up,
//!   an error or the peer's shutdown (`EPOLLHUP`, `EPOLLERR`,
//!   `EPOLLRDHUP`) also sets `NO_SKIP`.
//! - A reader reads the word (`seen`) before its `recv`. If that `recv`
//!   returns fewer bytes than asked (but some), the receive queue was
//!   empty when it returned, so the reader tries to set `DRAINED` with a
//!   compare-exchange from `seen`: it succeeds only if no edge came since
//!   `seen`.
//! - A read that finds `DRAINED` set in its `seen` skips the `recv` and
//!   waits for the word to change, as it would after `EAGAIN`.
//!
//! # Why no data is stranded
//!
//! Data that arrives after the draining `recv` returned makes the kernel
//! report an edge (the fd is registered edge-triggered, and every arrival
//! re-arms it), and that edge changes the word, so the waiter wakes and
//! reads. Data that arrived before `seen` was read is in the queue before
//! the `recv` and is returned by it (the read was short, so it took
//! everything queued). Data that arrived between reading `seen` and the
//! `recv`'s return may or may not have been taken, but its edge moves the
//! count past `seen` (if it was reported before the compare-exchange, that
//! fails and nothing is skipped; if after, it clears `DRAINED`). So a set
//! `DRAINED` always means: nothing has arrived that no edge will report.
//! The model check below explores those orders.
//!
//! Three cases break "a short read drained the queue" and so set
//! `NO_SKIP`: an end of file or an error that came with the last data
//! sends no further edge but must still be read (the sticky hang-up bit,
//! which tokio keeps too); TCP urgent data (a read stops at the urgent
//! mark with more queued, and its arrival is an `EPOLLPRI` edge, which
//! counts as a hang-up here); and sockets that are not streams, where a
//! short read is one datagram of many (checked once with `SO_TYPE` on the
//! first short read).

use std::sync::atomic::Ordering;

/// The last read drained the socket (see the module docs).
pub(super) const DRAINED: u64 = 1;
/// The socket's type has been looked up.
pub(super) const CHECKED: u64 = 1 << 62;
/// A short read proves nothing for this socket.
pub(super) const NO_SKIP: u64 = 1 << 63;

/// The operations the protocol needs of an atomic word: std's at run
/// time, loom's in the model check.
pub(super) trait Word {
    fn load(&self) -> u64;
    fn cas(&self, old: u64, new: u64) -> Result<u64, u64>;
    fn or(&self, bits: u64);
}

impl Word for std::sync::atomic::AtomicU64 {
    #[inline]
    fn load(&self) -> u64 {
        self.load(Ordering::Acquire)
    }
    #[inline]
    fn cas(&self, old: u64, new: u64) -> Result<u64, u64> {
        self.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
    }
    #[inline]
    fn or(&self, bits: u64) {
        self.fetch_or(bits, Ordering::AcqRel);
    }
}

#[cfg(all(test, loom))]
impl Word for loom::sync::atomic::AtomicU64 {
    fn load(&self) -> u64 {
        self.load(Ordering::Acquire)
    }
    fn cas(&self, old: u64, new: u64) -> Result<u64, u64> {
        self.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
    }
    fn or(&self, bits: u64) {
        self.fetch_or(bits, Ordering::AcqRel);
    }
}

/// A readable edge: the count moves and `DRAINED` clears in one step;
/// `hup` (hang-up, error, peer shutdown, urgent data) also sets `NO_SKIP`.
#[inline]
pub(super) fn edge(w: &impl Word, hup: bool) {
    let extra = if hup { NO_SKIP } else { 0 };
    let mut cur = w.load();
    loop {
        match w.cas(cur, ((cur | DRAINED) + 1) | extra) {
            Ok(_) => return,
            Err(now) => cur = now,
        }
    }
}

/// Whether a read that saw `seen` may wait without a `recv`.
#[inline]
pub(super) fn skip(seen: u64) -> bool {
    seen & DRAINED != 0
}

/// A read that saw `seen` returned fewer bytes than asked: marks the
/// socket drained unless an edge came since. `is_stream` is asked once
/// per socket, on its first short read.
#[inline]
pub(super) fn short_read(w: &impl Word, seen: u64, is_stream: impl FnOnce() -> bool) {
    if seen & (NO_SKIP | DRAINED) != 0 {
        return;
    }
    if seen & CHECKED == 0 {
        w.or(if is_stream() {
            CHECKED
        } else {
            CHECKED | NO_SKIP
        });
        // The word changed under `seen`: the next short read marks it.
        return;
    }
    let _ = w.cas(seen, seen | DRAINED);
}

/// Model check (run with `.ci/loom`): a reader makes one short read,
/// which takes everything queued, while the "kernel" queues more data
/// and reports an edge for each arrival; afterwards, once every edge is in,
/// a reader that would wait (`skip`) on the word it reads must find the
/// queue empty: no data is left that no edge will report.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, AtomicUsize};

    fn run(arrivals: usize, hup_last: bool) {
        loom::model(move || {
            // One arrival already queued and reported before the read.
            let word = Arc::new(AtomicU64::new(CHECKED));
            edge(&*word, false);
            let queued = Arc::new(AtomicUsize::new(1));
            let kernel = {
                let (word, queued) = (word.clone(), queued.clone());
                loom::thread::spawn(move || {
                    for i in 0..arrivals {
                        queued.fetch_add(1, Ordering::AcqRel);
                        edge(&*word, hup_last && i + 1 == arrivals);
                    }
                })
            };
            // One read: snapshot, take all that is queued (a short read
            // if it took anything), mark.
            let seen = word.load(Ordering::Acquire);
            if !skip(seen) {
                let took = queued.swap(0, Ordering::AcqRel);
                if took > 0 {
                    short_read(&*word, seen, || true);
                }
            }
            kernel.join().unwrap();
            // Every edge is in: a reader that would now wait must have
            // nothing stranded in the queue.
            let now = word.load(Ordering::Acquire);
            if skip(now) {
                assert_eq!(queued.load(Ordering::Acquire), 0, "data stranded");
            }
            if hup_last {
                // After a hang-up no short read may mark the socket.
                short_read(&*word, now, || true);
                assert!(!skip(word.load(Ordering::Acquire)));
            }
        });
    }

    #[test]
    fn loom_a_drained_mark_never_strands_data() {
        run(2, false);
    }

    #[test]
    fn loom_a_hang_up_turns_the_mark_off() {
        run(1, true);
    }
}
