//! Stack pools: one per stack size, each a free list over slabs.
//!
//! # Invariants
//!
//! 1. A stack is on a free list, or bound to exactly one task: `take`
//!    binds it when the task is spawned (so a failure to map memory is
//!    reported to the spawner as an `io::Error`, and starting never fails),
//!    and it comes back when the coroutine finishes or the task is dropped
//!    unstarted.
//! 2. Slabs are never unmapped; stacks on the free list may have dirty
//!    pages from earlier coroutines.
//! 3. The free list is sharded: each worker takes from and returns to its
//!    own shard, so steady-state spawn and exit touch no shared cache line
//!    (an earlier design kept a shared count of free stacks and measured
//!    it as 12% of spawn+join with both workers spawning). New slabs and
//!    overflowing shards go to the global list, which a shard refills from.
//!    A coroutine spawned on one worker and finished on another moves its
//!    stack from the first shard to the second; the high-water spill keeps
//!    that from piling up.
//! 4. A new slab is mapped by the spawner; each stack's guard page is
//!    installed, or its canary written, by the worker that first starts a
//!    coroutine on it (`prepare`). A burst of spawns thus spreads that work
//!    (a system call, or a first-touch page fault, per stack) over the
//!    workers instead of serialising it on the spawning thread, measured as
//!    the bottleneck of spawning 100k coroutines in a fresh process. A
//!    stack whose guard page cannot be installed gets a canary in that page.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::overflow::CANARY;
use crate::context;

/// Free-list shards (workers beyond this share them).
const SHARDS: usize = 16;
/// A shard holding more than this gives half back to the global list.
const SHARD_HIGH: usize = 512;
/// Stacks moved from the global list to a shard at once.
const SHARD_REFILL: usize = 32;

/// Stacks per slab while the guard budget lasts (each costs two mappings).
const GUARDED_PER_SLAB: usize = 32;
/// Stacks per slab when guard pages are light (one mapping for the slab).
const LIGHT_PER_SLAB: usize = 256;
/// `madvise` advice that turns a range into a guard region without a
/// mapping of its own (Linux 6.13, `include/uapi/asm-generic/mman-common.h`;
/// not yet in the libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// Stacks per slab beyond the budget (one mapping for the whole slab).
const UNGUARDED_PER_SLAB: usize = 256;
/// Bytes kept free at the top of every stack: holds the canary of the
/// stack above it in an unguarded slab.
const TOP_RESERVE: usize = 64;

/// Describes one stack's memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawStack {
    /// One past the highest usable byte (16-byte aligned).
    pub(crate) top: usize,
    /// Lowest usable byte.
    pub(crate) bottom: usize,
    /// Lowest address of the guard page, or `bottom` when there is none.
    pub(crate) guard: usize,
    /// Address of this stack's 16-byte canary, or 0 when it has a guard page.
    pub(crate) canary: usize,
    /// Whether the guard page is protected or the canary written yet
    /// (invariant 5).
    pub(crate) prepared: bool,
}

/// Stacks of one size.
pub(crate) struct Pool {
    size: usize,
    shards: Box<[CachePadded<Mutex<Vec<RawStack>>>]>,
    free: Mutex<Vec<RawStack>>,
    grow_lock: Mutex<()>,
    total: AtomicUsize,
}

/// Stacks that may still get their own guard page (two mappings each).
static GUARD_BUDGET: AtomicIsize = AtomicIsize::new(-1);
/// Whether this kernel has light guard regions (`MADV_GUARD_INSTALL`).
static LIGHT_GUARDS: OnceLock<bool> = OnceLock::new();
static POOLS: Mutex<Vec<&'static Pool>> = Mutex::new(Vec::new());

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// Whether guard pages can be light: a guard region installed with
/// `madvise` lives in the page tables, so it neither splits the slab's
/// mapping nor counts against `vm.max_map_count`, and installing one takes
/// the address-space lock shared, not exclusive as `mprotect` does (which
/// stalled page faults on the other workers). Probed once on a scratch
/// mapping; kernels before 6.13 answer `EINVAL`.
fn light_guards() -> bool {
    choose_guards(true)
}

/// Decides once per process whether guard pages are light: when `allowed`
/// (`GORO_STACK_GUARDS`) and the kernel has them. The runtime calls this
/// before mapping any stack; later calls return the decision.
pub(crate) fn choose_guards(allowed: bool) -> bool {
    *LIGHT_GUARDS.get_or_init(|| {
        if !allowed {
            return false;
        }
        let page = page_size();
        let Ok(base) = map(2 * page) else {
            return false;
        };
        // SAFETY: advice on the first page of our own fresh mapping.
        let ok = unsafe { libc::madvise(base as *mut _, page, MADV_GUARD_INSTALL) } == 0;
        // SAFETY: unmapping the scratch mapping, which nothing else uses.
        unsafe { libc::munmap(base as *mut _, 2 * page) };
        ok
    })
}

fn init_guard_budget() {
    if GUARD_BUDGET.load(Ordering::Relaxed) >= 0 {
        return;
    }
    let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<isize>().ok())
        .unwrap_or(65_530);
    // A quarter of the map budget, in stacks (two mappings each): the rest
    // stays for the heap, thread stacks, files and the application.
    let _ = GUARD_BUDGET.compare_exchange(-1, max_maps / 8, Ordering::Relaxed, Ordering::Relaxed);
}

/// The pool for stacks of `size` usable bytes (rounded up to a page).
pub(crate) fn pool_for(size: usize) -> &'static Pool {
    let page = page_size();
    let size = size.div_ceil(page) * page;
    let mut pools = POOLS.lock();
    if let Some(p) = pools.iter().find(|p| p.size == size) {
        return p;
    }
    init_guard_budget();
    let pool: &'static Pool = Box::leak(Box::new(Pool {
        size,
        shards: (0..SHARDS)
            .map(|_| CachePadded::new(Mutex::new(Vec::new())))
            .collect(),
        free: Mutex::new(Vec::new()),
        grow_lock: Mutex::new(()),
        total: AtomicUsize::new(0),
    }));
    pools.push(pool);
    pool
}

/// Total stacks mapped by all pools (for stats).
pub(crate) fn total_stacks() -> usize {
    POOLS
        .lock()
        .iter()
        .map(|p| p.total.load(Ordering::Relaxed))
        .sum()
}

impl Pool {
    /// Usable bytes per stack.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Takes a stack for a coroutine being spawned (invariants 1 and 3),
    /// mapping a new slab if every list the caller may take from is empty.
    pub(crate) fn take(&self) -> io::Result<RawStack> {
        if let Some(s) = self.take_listed() {
            return Ok(s);
        }
        let _g = self.grow_lock.lock();
        // Someone else may have grown the pool while we waited.
        if let Some(s) = self.take_listed() {
            return Ok(s);
        }
        let mut stacks = match self.grow() {
            Ok(stacks) => stacks,
            Err(e) => {
                // Out of memory or mappings: a stack freed into another
                // worker's shard is the last place one can come from.
                return self
                    .shards
                    .iter()
                    .find_map(|shard| shard.lock().pop())
                    .ok_or(e);
            }
        };
        let s = stacks.pop().expect("a slab holds stacks");
        self.total.fetch_add(stacks.len() + 1, Ordering::Relaxed);
        match shard_index() {
            Some(i) => self.shards[i].lock().extend(stacks),
            None => self.free.lock().extend(stacks),
        }
        Ok(s)
    }

    /// Pops from the caller's shard, else from the global list (moving a
    /// batch into the shard).
    fn take_listed(&self) -> Option<RawStack> {
        let shard = shard_index();
        if let Some(i) = shard
            && let Some(s) = self.shards[i].lock().pop()
        {
            return Some(s);
        }
        let mut global = self.free.lock();
        let s = global.pop()?;
        if let Some(i) = shard {
            let keep = global.len().saturating_sub(SHARD_REFILL);
            self.shards[i].lock().extend(global.drain(keep..));
        }
        Some(s)
    }

    /// Returns a stack whose coroutine has finished.
    pub(crate) fn release(&self, raw: RawStack) {
        match shard_index() {
            Some(i) => {
                let mut shard = self.shards[i].lock();
                shard.push(raw);
                if shard.len() > SHARD_HIGH {
                    let half = shard.len() / 2;
                    let spill: Vec<RawStack> = shard.drain(half..).collect();
                    drop(shard);
                    self.free.lock().extend(spill);
                }
            }
            None => self.free.lock().push(raw),
        }
    }

    /// Maps one slab and returns its stacks.
    fn grow(&self) -> io::Result<Vec<RawStack>> {
        if light_guards() {
            return self.map_guarded(LIGHT_PER_SLAB);
        }
        let guarded = GUARD_BUDGET.fetch_sub(GUARDED_PER_SLAB as isize, Ordering::Relaxed)
            >= GUARDED_PER_SLAB as isize;
        if guarded {
            match self.map_guarded(GUARDED_PER_SLAB) {
                Ok(stacks) => return Ok(stacks),
                Err(_) => {
                    // Most likely the map limit: stop spending the budget
                    // and try the one-mapping layout.
                    GUARD_BUDGET.store(0, Ordering::Relaxed);
                }
            }
        } else {
            GUARD_BUDGET.fetch_add(GUARDED_PER_SLAB as isize, Ordering::Relaxed);
        }
        self.map_unguarded()
    }

    /// `[guard][stack][guard][stack]...`: every stack has its own guard page.
    fn map_guarded(&self, stacks: usize) -> io::Result<Vec<RawStack>> {
        let page = page_size();
        let stride = page + self.size;
        let base = map(stride * stacks)?;
        Ok((0..stacks)
            .map(|i| {
                let guard = base + i * stride;
                let bottom = guard + page;
                RawStack {
                    top: bottom + self.size - TOP_RESERVE,
                    bottom,
                    guard,
                    canary: 0,
                    prepared: false,
                }
            })
            .collect())
    }

    /// `[guard][stack 0][stack 1]...`: one guard under the lowest stack,
    /// canaries for the others (module docs).
    fn map_unguarded(&self) -> io::Result<Vec<RawStack>> {
        let page = page_size();
        let len = page + self.size * UNGUARDED_PER_SLAB;
        let base = map(len)?;
        // SAFETY: the first page of our fresh mapping.
        if unsafe { libc::mprotect(base as *mut _, page, libc::PROT_NONE) } != 0 {
            let err = io::Error::last_os_error();
            // SAFETY: unmapping our own fresh, unshared mapping.
            unsafe { libc::munmap(base as *mut _, len) };
            return Err(err);
        }
        let mut stacks = Vec::with_capacity(UNGUARDED_PER_SLAB);
        for i in 0..UNGUARDED_PER_SLAB {
            let bottom = base + page + i * self.size;
            // Stack 0 sits on the slab's guard page; the others get a canary
            // in the top reserve of the stack below, written in `prepare`.
            let (guard, canary) = if i == 0 {
                (base, 0)
            } else {
                (bottom, bottom - 16)
            };
            stacks.push(RawStack {
                top: bottom + self.size - TOP_RESERVE,
                bottom,
                guard,
                canary,
                prepared: canary == 0,
            });
        }
        Ok(stacks)
    }
}

/// Installs a stack's guard page or writes its canary (invariant 4).
pub(crate) fn prepare(raw: &mut RawStack) {
    if raw.canary != 0 {
        // SAFETY: `canary..canary + 16` lies in the top reserve of the stack
        // below this one (or, after a failed mprotect, in this stack's own
        // unprotected guard page) inside a live slab; no coroutine ever
        // writes there, so this write races with nothing.
        unsafe { (raw.canary as *mut [u64; 2]).write(CANARY) };
    } else {
        let page = page_size();
        let light = light_guards();
        // SAFETY: `guard..guard + page` is this stack's guard page, inside a
        // live slab, used by no one; nothing was ever written there, so a
        // guard region that zaps its contents loses nothing.
        let failed = unsafe {
            if light {
                libc::madvise(raw.guard as *mut _, page, MADV_GUARD_INSTALL) != 0
            } else {
                libc::mprotect(raw.guard as *mut _, page, libc::PROT_NONE) != 0
            }
        };
        if failed {
            // Out of memory for page tables, or (mprotect) the map limit:
            // stop spending the guard budget and protect this stack with a
            // canary in its unprotected guard page.
            if !light {
                GUARD_BUDGET.store(0, Ordering::Relaxed);
            }
            raw.guard = raw.bottom;
            raw.canary = raw.bottom - 16;
            // SAFETY: as above, the guard page is ours, writable and unused.
            unsafe { (raw.canary as *mut [u64; 2]).write(CANARY) };
        }
    }
    raw.prepared = true;
}

fn shard_index() -> Option<usize> {
    context::worker().map(|w| w.index % SHARDS)
}

/// Maps `len` bytes of private, lazily committed, non-huge-page memory.
fn map(len: usize) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing affects no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: advice on our own fresh mapping; failure only means huge
    // pages stay possible, which costs memory, not correctness.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    Ok(p as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_release_accounting() {
        let pool = pool_for(20 << 10);
        assert_eq!(pool.size() % page_size(), 0);
        let mut taken: Vec<_> = (0..300).map(|_| pool.take().unwrap()).collect();
        for s in &mut taken {
            assert!(s.top > s.bottom && s.top - s.bottom >= (20 << 10) - TOP_RESERVE);
            assert_eq!(s.top % 16, 0);
            prepare(s);
            assert!(s.prepared);
        }
        let mut tops: Vec<_> = taken.iter().map(|s| s.top).collect();
        tops.sort_unstable();
        tops.dedup();
        assert_eq!(tops.len(), 300, "a stack was handed out twice");
        let total = pool.total.load(Ordering::Relaxed);
        for s in taken {
            pool.release(s);
        }
        // Released stacks are reused, not remapped.
        let again: Vec<_> = (0..300).map(|_| pool.take().unwrap()).collect();
        assert_eq!(pool.total.load(Ordering::Relaxed), total);
        for s in again {
            pool.release(s);
        }
    }
}
