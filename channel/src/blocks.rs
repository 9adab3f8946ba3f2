//! A small per-thread cache of freed packet blocks.
//!
//! Every blocked channel operation puts a [`Packet`](crate::waiter::Packet)
//! on the heap (waiter.rs explains why it cannot live on the waiting
//! coroutine's stack), and its owner frees it when the operation ends. In
//! a busy program that is one `malloc` and one `free` per hand-off, and
//! the pair costs more than the channel lock (BENCHMARKS.md, "a per-thread
//! block cache", has the figure). The pattern is regular: the block freed by
//! one blocked operation is the size the next one on the same thread asks
//! for. So a freed block goes into a handful of slots of the freeing
//! thread, and an allocation of the same layout on that thread takes it
//! back, without a call into the allocator.
//!
//! # Invariants
//!
//! 1. A slot holds either nothing or one block obtained from the global
//!    allocator with exactly the slot's layout, owned by the slot and not
//!    referenced from anywhere else. A block is handed out only for that
//!    same layout.
//! 2. The slots belong to one thread, and are reached only through the
//!    two functions below, which neither block nor call out while they
//!    hold the slots, so there is no reentrancy. Both are never inlined: a
//!    migratable coroutine (goro_runtime's `Builder::migratable`) may
//!    resume on another thread after a park, and must not use a cached
//!    address of the previous thread's slots.
//! 3. A block may be freed on a different thread from the one that
//!    allocated it (a coroutine may be migrated, a select may be finished
//!    by its owner on its own thread): it is a plain global-allocator
//!    block, so that is fine, and it simply joins that thread's slots.
//! 4. The slots' blocks are given back to the allocator when the thread
//!    exits. During thread teardown, when the slots are gone, both
//!    functions fall back to the allocator.
//!
//! Why not a crate: a general-purpose pool would add a lock or an atomic
//! operation per call, which is what this is here to avoid; the slots are
//! only a few words.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// Slots per thread: enough for a select over a few channels of one
/// element type, or a few blocked operations of different types.
const SLOTS: usize = 4;

struct Slots {
    blocks: [Cell<*mut u8>; SLOTS],
    layouts: [Cell<Layout>; SLOTS],
}

impl Drop for Slots {
    fn drop(&mut self) {
        for (block, layout) in self.blocks.iter().zip(&self.layouts) {
            let p = block.replace(ptr::null_mut());
            if !p.is_null() {
                // SAFETY: by invariant 1 the slot owned `p`, allocated with
                // this layout; we just emptied the slot.
                unsafe { alloc::dealloc(p, layout.get()) };
            }
        }
    }
}

thread_local! {
    static SLOTS_OF_THREAD: Slots = const {
        Slots {
            blocks: [const { Cell::new(ptr::null_mut()) }; SLOTS],
            layouts: [const { Cell::new(Layout::new::<u8>()) }; SLOTS],
        }
    };
}

/// Moves `value` into a heap block (from this thread's slots when one of
/// the right layout is there) and returns the pointer. Free it with
/// [`drop_with`].
pub(crate) fn allocate<T>(value: T) -> NonNull<T> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return NonNull::from(Box::leak(Box::new(value)));
    }
    let p = match reuse(layout) {
        Some(p) => p.cast::<T>(),
        None => {
            // SAFETY: the layout has a non-zero size (checked above).
            let p = unsafe { alloc::alloc(layout) }.cast::<T>();
            match NonNull::new(p) {
                Some(p) => p,
                None => alloc::handle_alloc_error(layout),
            }
        }
    };
    // SAFETY: `p` is a fresh block with `T`'s layout, owned by us.
    unsafe { p.as_ptr().write(value) };
    p
}

/// Lets `f` take what it needs out of the value in a block made by
/// [`allocate`], then drops the value in place and frees the block (into this
/// thread's slots when one is free). Nothing is copied out of the block
/// but what `f` returns.
///
/// # Safety
///
/// `p` came from [`allocate`] with the same `T`, has not been freed yet, and
/// nobody else uses it any more.
pub(crate) unsafe fn drop_with<T, R>(p: NonNull<T>, f: impl FnOnce(&mut T) -> R) -> R {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        // SAFETY: zero-sized values were boxed by `allocate`.
        return f(&mut *unsafe { Box::from_raw(p.as_ptr()) });
    }
    // SAFETY: the caller's contract: `p` holds a live `T` that is ours
    // alone. If `f` unwinds, the block is leaked, never freed twice.
    let r = f(unsafe { &mut *p.as_ptr() });
    // SAFETY: as above; the value is dropped exactly once, here.
    unsafe { ptr::drop_in_place(p.as_ptr()) };
    // SAFETY: the block came from the global allocator with `layout`
    // (either directly in `allocate` or through a slot, invariant 1), and the
    // value has been dropped.
    unsafe { recycle(p.cast::<u8>(), layout) };
    r
}

/// A cached block of exactly `layout`, if this thread has one.
#[inline(never)]
fn reuse(layout: Layout) -> Option<NonNull<u8>> {
    SLOTS_OF_THREAD
        .try_with(|s| {
            for (block, l) in s.blocks.iter().zip(&s.layouts) {
                let p = block.get();
                if !p.is_null() && l.get() == layout {
                    block.set(ptr::null_mut());
                    return NonNull::new(p);
                }
            }
            None
        })
        .ok()
        .flatten()
}

/// Keeps `p` in a free slot of this thread, or gives it back to the
/// allocator.
///
/// # Safety
///
/// `p` was allocated by the global allocator with `layout`, holds no live
/// value, and is ours alone.
#[inline(never)]
unsafe fn recycle(p: NonNull<u8>, layout: Layout) {
    let kept = SLOTS_OF_THREAD
        .try_with(|s| {
            for (block, l) in s.blocks.iter().zip(&s.layouts) {
                if block.get().is_null() {
                    block.set(p.as_ptr());
                    l.set(layout);
                    return true;
                }
            }
            false
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: the caller's contract.
        unsafe { alloc::dealloc(p.as_ptr(), layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_reused_for_the_same_layout_only() {
        let a = allocate(1u64);
        let addr = a.as_ptr() as usize;
        // SAFETY: from `allocate`, freed once.
        assert_eq!(unsafe { drop_with(a, |v| *v) }, 1);
        // A different layout does not get the cached block...
        let b = allocate([7u8; 3]);
        assert_ne!(b.as_ptr() as usize, addr);
        // ...the same one does.
        let c = allocate(2u64);
        assert_eq!(c.as_ptr() as usize, addr);
        // SAFETY: from `allocate`, freed once.
        unsafe {
            assert_eq!(drop_with(b, |v| *v), [7u8; 3]);
            assert_eq!(drop_with(c, |v| *v), 2);
        }
    }

    #[test]
    fn values_with_destructors_move_through_intact() {
        let blocks: Vec<_> = (0..SLOTS * 2).map(|i| allocate(vec![i; i])).collect();
        for (i, b) in blocks.into_iter().enumerate() {
            // SAFETY: from `allocate`, freed once.
            assert_eq!(unsafe { drop_with(b, std::mem::take) }, vec![i; i]);
        }
        let z = allocate(());
        // SAFETY: from `allocate`, freed once.
        unsafe { drop_with(z, |_| ()) };
        let v = allocate((String::from("kept"), vec![1, 2, 3]));
        // SAFETY: from `allocate`, freed once; the vector drops in place.
        let kept = unsafe { drop_with(v, |(s, _)| std::mem::take(s)) };
        assert_eq!(kept, "kept");
    }
}
