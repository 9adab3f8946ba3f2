//! Which threads may be workers, answered without touching thread-local
//! storage.
//!
//! The hook asks "is the caller inside a coroutine?" on every blocking
//! call a plain thread makes on a socket (`hook/src/imp/io.rs`,
//! `fast_check`). The exact answer is a thread-local read, and in code
//! built position-independent (every rlib) a thread-local read is a call
//! of `__tls_get_addr`. The linker relaxes that call to a load from the
//! thread pointer when it links an executable, but by then the compiler
//! has already saved and restored the hook's arguments around a call
//! that is no longer there: about twenty instructions on a path whose
//! whole budget is a few nanoseconds.
//!
//! This filter answers the common case, "a thread that is not a worker",
//! from the thread pointer alone. The thread pointer (`%fs:0` on x86-64,
//! `tpidr_el0` on aarch64) is one register read that stays the same for
//! a thread's whole life and differs between live threads. Every worker
//! sets one bit of [`MARKS`], chosen by a hash of its thread pointer,
//! before it runs its first coroutine; [`may_be_worker`] tests the
//! caller's bit.
//!
//! # Invariants
//!
//! 1. **No false negatives.** A thread that runs coroutines is a worker
//!    (only `scheduler/worker.rs` resumes them), and a worker marks itself
//!    in [`mark_this_thread`] before its scheduling loop starts. Its own
//!    later loads see its own store (coherence of one location, in program
//!    order), whatever other workers do: bits are only ever set, with
//!    `fetch_or`, never cleared (workers live as long as the process).
//!    So `may_be_worker() == false` proves the caller is not inside a
//!    coroutine.
//! 2. **False positives are only slower.** A plain thread whose hash meets
//!    a worker's bit, or that reuses the thread pointer of a thread that
//!    was a worker, goes on to the exact thread-local check. With 256
//!    bits and a handful of workers that is a few percent of threads.
//! 3. On other architectures the filter always answers "maybe", and every
//!    caller falls back to the exact check.
//!
//! The protocol is one location per bit written only by read-modify-write
//! and read by the thread that wrote it, so there is no interleaving to
//! model beyond coherence; the loom model below checks it anyway.

// Under loom the filter answers "maybe" and only the model uses the marks.
#![cfg_attr(loom, allow(dead_code))]

use crate::loom::sync::atomic::{AtomicU64, Ordering};

/// One bit per hash bucket of worker thread pointers (4 × 64 = 256).
#[cfg(not(loom))]
static MARKS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// The caller's thread pointer, or `None` where it cannot be read cheaply.
#[inline(always)]
fn thread_pointer() -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        let tp: usize;
        // SAFETY: on x86-64 Linux the TLS ABI (variant II, which glibc and
        // musl both follow) stores the thread pointer itself at `%fs:0`,
        // the first word of the thread control block, for every thread,
        // from its start; the load reads that word and nothing else.
        unsafe {
            std::arch::asm!(
                "mov {}, qword ptr fs:[0]",
                out(reg) tp,
                options(nostack, readonly, preserves_flags)
            );
        }
        Some(tp)
    }
    #[cfg(all(target_arch = "aarch64", not(loom)))]
    {
        let tp: usize;
        // SAFETY: reading `tpidr_el0`, the thread pointer register, has no
        // side effect and is allowed at EL0 on every aarch64 Linux.
        unsafe {
            std::arch::asm!(
                "mrs {}, tpidr_el0",
                out(reg) tp,
                options(nomem, nostack, preserves_flags)
            );
        }
        Some(tp)
    }
    #[cfg(any(loom, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        None
    }
}

/// The bucket of a thread pointer: 0..256, spread by a multiplicative hash
/// (thread pointers share their low bits, page offsets within a thread's
/// stack mapping).
#[inline(always)]
fn bucket(tp: usize) -> usize {
    ((tp as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// Whether the calling thread may be a worker: `false` proves it is not
/// (invariant 1), `true` means "ask the thread-local".
#[inline(always)]
pub(crate) fn may_be_worker() -> bool {
    #[cfg(not(loom))]
    {
        match thread_pointer() {
            Some(tp) => {
                let b = bucket(tp);
                MARKS[b >> 6].load(Ordering::Relaxed) & (1 << (b & 63)) != 0
            }
            None => true,
        }
    }
    #[cfg(loom)]
    {
        true
    }
}

/// Marks the calling thread as a worker (invariant 1): called once by each
/// worker thread before it resumes any coroutine.
pub(crate) fn mark_this_thread() {
    #[cfg(not(loom))]
    if let Some(tp) = thread_pointer() {
        mark(&MARKS, bucket(tp));
    }
}

/// Sets bucket `b`'s bit in `marks`.
fn mark(marks: &[AtomicU64; 4], b: usize) {
    marks[b >> 6].fetch_or(1 << (b & 63), Ordering::Relaxed);
}

/// Whether bucket `b`'s bit is set in `marks`.
#[cfg(any(test, loom))]
fn marked(marks: &[AtomicU64; 4], b: usize) -> bool {
    marks[b >> 6].load(Ordering::Relaxed) & (1 << (b & 63)) != 0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_marked_thread_is_seen_and_an_unmarked_one_mostly_not() {
        // Spawn plain threads and count how many the (still empty or
        // nearly empty, in this test binary) filter passes as workers;
        // then mark each and check it always sees itself.
        let seen_before: usize = (0..32)
            .map(|_| std::thread::spawn(may_be_worker).join().unwrap() as usize)
            .sum();
        assert!(
            seen_before < 32,
            "every plain thread looked like a worker: the filter filters nothing"
        );
        for _ in 0..32 {
            std::thread::spawn(|| {
                mark_this_thread();
                assert!(may_be_worker(), "a marked thread must see its own mark");
            })
            .join()
            .unwrap();
        }
    }

    #[test]
    fn buckets_spread_page_aligned_pointers() {
        let marks = [const { AtomicU64::new(0) }; 4];
        for i in 0..64usize {
            mark(&marks, bucket(0x7f00_0000_0000 + i * (8 << 20) + 0x6c0));
        }
        let set: u32 = marks
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum();
        assert!(
            set > 40,
            "64 thread stacks 8 MiB apart fell into {set} buckets"
        );
        assert!(marked(&marks, bucket(0x7f00_0000_0000 + 0x6c0)));
    }
}

#[cfg(all(loom, test))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two workers mark themselves while a third thread marks and reads:
    /// a thread always sees its own mark, whatever the others do.
    #[test]
    fn a_worker_always_sees_its_own_mark() {
        loom::model(|| {
            let marks = Arc::new([(); 4].map(|()| AtomicU64::new(0)));
            let handles: Vec<_> = [3usize, 67, 5]
                .into_iter()
                .map(|b| {
                    let marks = marks.clone();
                    loom::thread::spawn(move || {
                        mark(&marks, b);
                        assert!(marked(&marks, b));
                    })
                })
                .collect();
            mark(&marks, 4);
            assert!(marked(&marks, 4));
            for h in handles {
                h.join().unwrap();
            }
        });
    }
}
