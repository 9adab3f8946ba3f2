//! 100k contexts created and cancelled (or dropped) under one long-lived
//! parent leave nothing behind: the parent's list of children is empty and
//! shrunk, no timer stays on the wheels, and live heap memory returns to
//! where it was.
//!
//! Heap use is measured with a counting global allocator, so this binary
//! holds one test only (nothing else allocates concurrently, apart from the
//! runtime's own idle workers).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use goro::context::{Context, ContextError};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only
// adds bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: usize = 100_000;
/// Allowed drift of live heap bytes (runtime housekeeping, lazily grown
/// caches); a leak of one small allocation per context would be megabytes.
const SLACK: isize = 256 << 10;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn cancelled_contexts_leave_nothing_behind() {
    support::within("100k contexts under one parent", || {
        let (parent, _keep) = Context::with_cancel(&Context::background());
        // Warm up: start the runtime, grow whatever is grown once.
        for _ in 0..1000 {
            let (c, k) = Context::with_timeout(&parent, Duration::from_secs(3600));
            let _ = c.done();
            k.cancel();
        }
        let timers_before = goro::stats().timers;
        let base = live();

        // 1. 100k live children at once, then all cancelled.
        let kids: Vec<_> = (0..N).map(|_| Context::with_cancel(&parent)).collect();
        assert!(live() - base > (N as isize) * 32, "children not allocated?");
        for (ctx, cancel) in &kids {
            cancel.cancel();
            assert_eq!(ctx.err(), Some(ContextError::Canceled));
        }
        drop(kids);
        let after_bulk = live() - base;
        assert!(
            after_bulk < SLACK,
            "{after_bulk} bytes left after cancelling {N} children"
        );

        // 2. 100k children with deadlines and done channels, one at a
        //    time, half cancelled and half dropped.
        for i in 0..N {
            let (ctx, cancel) = Context::with_timeout(&parent, Duration::from_secs(3600));
            let done = ctx.done();
            if i % 2 == 0 {
                cancel.cancel();
            } else {
                drop(cancel);
            }
            assert!(done.is_closed());
        }
        let after_seq = live() - base;
        assert!(
            after_seq < SLACK,
            "{after_seq} bytes left after {N} timed children"
        );
        assert_eq!(
            goro::stats().timers,
            timers_before,
            "timers left on the wheels"
        );
        assert!(!parent.is_done());
    });
}
