//! Stack pools: one per stack size, each with free lists over slabs.
//!
//! # Invariants
//!
//! 1. A stack is on a free list, or bound to exactly one task: `take`
//!    binds it when the task is spawned (so a failure to map memory, or a
//!    spent guard budget, is reported to the spawner as an `io::Error`, and
//!    starting never fails), and it comes back when the coroutine finishes
//!    or the task is dropped unstarted.
//! 2. A stack is unmapped at most once, and only when it leaves the lists
//!    for good: the unlisted tail of a new slab whose guard pages could
//!    not all be installed, and, under light guards, runs of adjacent
//!    *clean* stacks beyond `CLEAN_RESERVE` (invariant 9). Stacks on the
//!    free lists may have dirty pages from earlier coroutines.
//! 3. Each free list is sharded: each worker takes from and returns to its
//!    own shard, so steady-state spawn and exit touch no shared cache line
//!    (a shared count of free stacks would be one, contended whenever two
//!    workers spawn). New slabs and
//!    overflowing shards go to the global list, which a shard refills from.
//!    A coroutine spawned on one worker and finished on another moves its
//!    stack from the first shard to the second; the high-water spill keeps
//!    that from piling up.
//! 4. A light guard page (`MADV_GUARD_INSTALL`) or a canary is installed
//!    by the worker that first starts a coroutine on the stack (`prepare`):
//!    a burst of spawns thus spreads that work (a system call, or a
//!    first-touch page fault, per stack) over the workers instead of
//!    serialising it on the spawning thread, measured as the bottleneck of
//!    spawning 100k coroutines in a fresh process. `mprotect`ed guard pages
//!    are installed by the spawner when it maps their slab, so that running
//!    out of mappings is the spawn's error: there are at most a budget's
//!    worth of them in the life of the process, a few milliseconds of
//!    system calls in all. A light guard the kernel refuses at start is
//!    replaced by an `mprotect`ed one within the budget, or the process
//!    aborts: no coroutine runs without its guard page.
//! 5. A pool has two free lists. `guarded` holds stacks with a guard page
//!    of their own, directly below their lowest usable byte; it is the
//!    only list safe code takes from. `canary` holds the stacks of *canary
//!    slabs* (one guard page under the lowest stack, a canary under each
//!    other), taken only for a coroutine whose spawner opted in through
//!    `unsafe` (`Builder::allow_unguarded_stack`,
//!    `Config::allow_unguarded_stacks`), only under mapped guards and only
//!    once the budget is spent. A stack goes back to the list it came from
//!    (`in_canary_slab`), so a canary slab's neighbours are only ever
//!    other opted-in coroutines.
//! 6. The mapped-guard budget is the process's, shared by all pools:
//!    `vm.max_map_count / 8` stacks (two mappings each, so a quarter of the
//!    mappings), read once. It is taken when a guarded slab is mapped
//!    (exactly, so the last slab may be short) and given back only for
//!    guard pages never installed; since mapped-guard slabs are never
//!    unmapped, a stack size that once held many coroutines keeps its
//!    share of the budget.
//! 7. Memory goes back after a burst (the *scavenger*, after Go's): a
//!    guarded free list keeps at most `SHARD_RESERVE` dirty stacks per
//!    shard and `GLOBAL_RESERVE` in its global list; what lies beyond
//!    (the coldest end of each list) is taken off the list, its pages are
//!    given back with `madvise(MADV_DONTNEED)` and it goes to the list's
//!    `clean` list, which takers use only when no dirty stack is left
//!    anywhere. Guard pages survive `MADV_DONTNEED` (light guard markers
//!    and `mprotect`ed pages alike), so adjacent stacks of a slab are
//!    given back in one call. A stack being scavenged is on no list, so
//!    no coroutine can be given it meanwhile. The sweep runs on a worker
//!    that is about to sleep (`scavenge`), never on the spawn or exit
//!    path, and stops between chunks as soon as the worker has work; it
//!    is armed by a release that takes a list past its reserve, and runs
//!    only once that release is `SCAVENGE_DELAY_MS` old (a sleeping
//!    worker wakes for it), so a loop that frees a batch and takes it
//!    again keeps its pages; an idle runtime does no periodic work once
//!    the sweep has run, and a warm pool (a working set within the
//!    reserves) is never scavenged. Canary-slab stacks are not
//!    scavenged: a canary lives in the neighbour's top page.
//! 8. A taker that finds its shard and the global list empty takes dirty
//!    stacks from other shards before clean ones, and clean ones before
//!    mapping a slab: the pool grows only when every stack is bound.
//! 9. After a sweep, the clean stacks beyond `CLEAN_RESERVE` stop costing
//!    memory altogether: under light guards, every run of at least
//!    `UNMAP_RUN` clean stacks adjacent in memory (a stack's guard page
//!    directly above the stack below it) is taken off the clean list and
//!    unmapped, guard pages included, and the lists' vectors are shrunk.
//!    A million clean stacks otherwise keep 40 MB of list entries and the
//!    page tables under their slabs. A stack off every list is bound to no
//!    task (invariant 1), so nothing can run on what is unmapped. The run
//!    length bounds how much unmapping can split mappings: at least a
//!    slab's worth of stacks goes per cut, so the mappings left are never
//!    more than twice the slabs. Under mapped guards (a budget of at most
//!    `vm.max_map_count / 8` stacks, taken for good: invariant 6) nothing
//!    is unmapped. A light-guard stack whose guard the kernel refused and
//!    `prepare` `mprotect`ed instead keeps its budget when unmapped (the
//!    pool cannot tell it apart): the budget only errs low.

use std::io;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::overflow::CANARY;
use super::sweep_gate::SweepGate;

/// Free-list shards (workers beyond this share them).
const SHARDS: usize = 16;
/// A shard holding more than this gives half back to the global list.
const SHARD_HIGH: usize = 512;
/// Stacks moved from the global list to a shard at once.
const SHARD_REFILL: usize = 32;
/// Dirty stacks a shard keeps before the scavenger gives pages back
/// (invariant 7).
const SHARD_RESERVE: usize = 64;
/// Dirty stacks the global list keeps before the scavenger gives pages
/// back (invariant 7).
const GLOBAL_RESERVE: usize = 64;
/// Stacks (in address order) the scavenger gives back between two looks
/// at whether its worker has work (no list lock is held meanwhile).
const SCAVENGE_CHUNK: usize = 256;
/// Clean stacks kept listed (mapped, no pages) after a sweep; the rest
/// is unmapped in runs (invariant 9).
const CLEAN_RESERVE: usize = 256;
/// The shortest run of adjacent clean stacks unmapped at once
/// (invariant 9): a light-guard slab's worth.
const UNMAP_RUN: usize = LIGHT_PER_SLAB;

/// Stacks per slab while the guard budget lasts (each costs two mappings).
const GUARDED_PER_SLAB: usize = 32;
/// Stacks per slab when guard pages are light (one mapping for the slab).
const LIGHT_PER_SLAB: usize = 256;
/// `madvise` advice that turns a range into a guard region without a
/// mapping of its own (Linux 6.13, `include/uapi/asm-generic/mman-common.h`;
/// not yet in the libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// Stacks per canary slab (one guard page and two mappings for the slab).
const UNGUARDED_PER_SLAB: usize = 256;
/// Bytes kept free at the top of every stack: holds the canary of the
/// stack above it in a canary slab.
const TOP_RESERVE: usize = 64;
/// `vm.max_map_count` when `/proc` cannot tell (the kernel's default).
const DEFAULT_MAX_MAP_COUNT: usize = 65_530;

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
    /// Whether the stack lies in a canary slab (invariant 5); such a stack
    /// goes back to the canary list even if it is the one guarded stack at
    /// the slab's bottom.
    pub(crate) in_canary_slab: bool,
    /// Whether the guard page is installed or the canary written yet
    /// (invariant 4).
    pub(crate) prepared: bool,
    /// Whether a coroutine may have touched its pages since it was mapped
    /// or last scavenged (invariant 7).
    pub(crate) dirty: bool,
}

/// A free list of stacks: per-worker shards over a global list
/// (invariant 3).
struct FreeList {
    shards: Box<[CachePadded<Mutex<Vec<RawStack>>>]>,
    global: Mutex<Vec<RawStack>>,
    /// Scavenged stacks, whose pages went back to the OS (invariant 7).
    clean: Mutex<Vec<RawStack>>,
}

/// Stacks of one size.
pub(crate) struct Pool {
    size: usize,
    /// Stacks with a guard page of their own: the only ones safe code gets.
    guarded: FreeList,
    /// Stacks of canary slabs, for coroutines that opted in (invariant 5).
    canary: FreeList,
    grow_lock: Mutex<()>,
    total: AtomicUsize,
}

/// How this process guards its stacks (decided once, `choose_guards`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guards {
    /// `MADV_GUARD_INSTALL` guard regions, no budget.
    Light,
    /// `mprotect`ed guard pages within the budget: `GORO_STACK_GUARDS=mapped`.
    MappedByRequest,
    /// `mprotect`ed guard pages within the budget: the kernel has no
    /// `MADV_GUARD_INSTALL` (before Linux 6.13).
    MappedByKernel,
}

/// The mapped-guard budget (invariant 6).
struct Budget {
    /// `vm.max_map_count` when the budget was set.
    max_maps: usize,
    /// Stacks the budget allowed in all.
    total: usize,
    /// Stacks that may still get an `mprotect`ed guard page.
    left: AtomicUsize,
}

static BUDGET: OnceLock<Budget> = OnceLock::new();
static GUARDS: OnceLock<Guards> = OnceLock::new();
static POOLS: Mutex<Vec<&'static Pool>> = Mutex::new(Vec::new());
/// Armed by a release that takes a free list past its reserve; passed by
/// the one sweep running at a time (invariant 7, `sweep_gate.rs`).
#[cfg(not(loom))]
static SWEEP: SweepGate = SweepGate::new();

#[cfg(not(loom))]
fn sweep_gate() -> &'static SweepGate {
    &SWEEP
}

/// Loom atomics cannot live in a static, and no loom model reaches the
/// stack pool (coroutines do not run under loom): the gate's own model is
/// in `sweep_gate.rs`.
#[cfg(loom)]
fn sweep_gate() -> &'static SweepGate {
    unreachable!("the stack pool is not part of any loom model")
}
/// Bytes given back to the OS by the scavenger since start (for stats).
static SCAVENGED_BYTES: AtomicU64 = AtomicU64::new(0);

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// Whether guard pages are light: a guard region installed with `madvise`
/// lives in the page tables, so it neither splits the slab's mapping nor
/// counts against `vm.max_map_count`, and installing one takes the
/// address-space lock shared, not exclusive as `mprotect` does (which
/// stalled page faults on the other workers).
fn light_guards() -> bool {
    guards() == Guards::Light
}

fn guards() -> Guards {
    *GUARDS.get_or_init(|| probe_guards(true))
}

/// Decides once per process whether guard pages are light: when `allowed`
/// (`GORO_STACK_GUARDS`) and the kernel has them. The runtime calls this
/// before mapping any stack; later calls return the decision.
pub(crate) fn choose_guards(allowed: bool) -> bool {
    *GUARDS.get_or_init(|| probe_guards(allowed)) == Guards::Light
}

/// Probes `MADV_GUARD_INSTALL` on a scratch mapping; kernels before 6.13
/// answer `EINVAL`.
fn probe_guards(allowed: bool) -> Guards {
    if !allowed {
        return Guards::MappedByRequest;
    }
    let page = page_size();
    let Ok(base) = map(2 * page) else {
        return Guards::MappedByKernel;
    };
    // SAFETY: advice on the first page of our own fresh mapping.
    let ok = unsafe { libc::madvise(base as *mut _, page, MADV_GUARD_INSTALL) } == 0;
    // SAFETY: unmapping the scratch mapping, which nothing else uses.
    unsafe { libc::munmap(base as *mut _, 2 * page) };
    if ok {
        Guards::Light
    } else {
        Guards::MappedByKernel
    }
}

fn budget() -> &'static Budget {
    BUDGET.get_or_init(|| {
        let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MAX_MAP_COUNT);
        // A quarter of the map budget, in stacks (two mappings each): the
        // rest stays for the heap, thread stacks, files and the application.
        let total = max_maps / 8;
        Budget {
            max_maps,
            total,
            left: AtomicUsize::new(total),
        }
    })
}

/// Takes up to `n` stacks from the guard budget; returns how many it got.
fn take_budget(n: usize) -> usize {
    let left = &budget().left;
    let mut cur = left.load(Ordering::Relaxed);
    loop {
        let k = n.min(cur);
        if k == 0 {
            return 0;
        }
        match left.compare_exchange_weak(cur, cur - k, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return k,
            Err(now) => cur = now,
        }
    }
}

/// Gives back budget taken for guard pages that were never installed.
fn refund_budget(k: usize) {
    if k > 0 {
        budget().left.fetch_add(k, Ordering::Relaxed);
    }
}

/// The error of a spawn beyond the mapped-guard budget.
///
/// `OutOfMemory`, the kind the kernel itself gives (`ENOMEM`) when a
/// process runs out of the same resource, mappings: a caller that backs off
/// when memory runs out handles both alike, and the message tells them
/// apart.
fn budget_error() -> io::Error {
    let b = budget();
    let why = match guards() {
        Guards::MappedByRequest => "GORO_STACK_GUARDS=mapped is set",
        _ => "this kernel has no MADV_GUARD_INSTALL",
    };
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "no stack with a guard page is left: {why}, so each guard page is an mprotect'ed \
             mapping (two mappings per stack), and goro spends at most a quarter of \
             vm.max_map_count on them: {} stacks (vm.max_map_count {} / 8), all bound to live \
             coroutines or pooled for another stack size. Let coroutines finish, run on Linux \
             6.13 or later (whose MADV_GUARD_INSTALL guard pages cost no mapping) without \
             GORO_STACK_GUARDS=mapped, or raise vm.max_map_count (N allows N / 8 guarded \
             stacks); canary-only stacks need the unsafe Builder::allow_unguarded_stack or \
             Config::allow_unguarded_stacks",
            b.total, b.max_maps
        ),
    )
}

/// The pool for stacks of `size` usable bytes (rounded up to a page).
pub(crate) fn pool_for(size: usize) -> &'static Pool {
    let page = page_size();
    let size = size.div_ceil(page) * page;
    let mut pools = POOLS.lock();
    if let Some(p) = pools.iter().find(|p| p.size == size) {
        return p;
    }
    let pool: &'static Pool = Box::leak(Box::new(Pool {
        size,
        guarded: FreeList::new(),
        canary: FreeList::new(),
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

impl FreeList {
    fn new() -> FreeList {
        FreeList {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            global: Mutex::new(Vec::new()),
            clean: Mutex::new(Vec::new()),
        }
    }

    /// Pops from the caller's shard, else from the global list (moving a
    /// batch into the shard).
    fn take(&self) -> Option<RawStack> {
        let shard = shard_index();
        if let Some(i) = shard
            && let Some(s) = self.shards[i].lock().pop()
        {
            return Some(s);
        }
        let mut global = self.global.lock();
        let s = global.pop()?;
        if let Some(i) = shard {
            let keep = global.len().saturating_sub(SHARD_REFILL);
            self.shards[i].lock().extend(global.drain(keep..));
        }
        Some(s)
    }

    /// The slow path before mapping (invariant 8): the caller's lists,
    /// then a batch of the most recently freed stacks of the fullest other
    /// shard (moved to the caller's shard, or to the global list for a
    /// thread that is not a worker), then a clean stack.
    fn take_any(&self) -> Option<RawStack> {
        if let Some(s) = self.take() {
            return Some(s);
        }
        let fullest = self
            .shards
            .iter()
            .enumerate()
            .max_by_key(|(_, shard)| shard.lock().len())
            .map(|(i, _)| i)?;
        let batch: Vec<RawStack> = {
            let mut shard = self.shards[fullest].lock();
            let keep = shard
                .len()
                .saturating_sub(SHARD_REFILL.max(shard.len() / 2));
            shard.drain(keep..).collect()
        };
        let mut batch = batch;
        if let Some(s) = batch.pop() {
            if !batch.is_empty() {
                match shard_index() {
                    Some(i) => self.shards[i].lock().extend(batch),
                    None => self.global.lock().extend(batch),
                }
            }
            return Some(s);
        }
        self.clean.lock().pop()
    }

    /// Puts one stack back into the caller's shard (or the global list).
    fn put(&self, raw: RawStack) {
        match shard_index() {
            Some(i) => {
                let mut shard = self.shards[i].lock();
                shard.push(raw);
                if shard.len() > SHARD_RESERVE {
                    arm_sweep();
                }
                if shard.len() > SHARD_HIGH {
                    let half = shard.len() / 2;
                    let spill: Vec<RawStack> = shard.drain(half..).collect();
                    drop(shard);
                    self.global.lock().extend(spill);
                }
            }
            None => {
                let mut global = self.global.lock();
                global.push(raw);
                if global.len() > GLOBAL_RESERVE {
                    arm_sweep();
                }
            }
        }
    }

    /// Gives back the pages of the stacks beyond the reserves (invariant
    /// 7); returns the stacks scavenged, and whether it stopped early.
    fn scavenge(&self, size: usize, stop: &dyn Fn() -> bool) -> (usize, bool) {
        let mut done = 0;
        let lists = self
            .shards
            .iter()
            .map(|s| (&**s, SHARD_RESERVE))
            .chain(std::iter::once((&self.global, GLOBAL_RESERVE)));
        for (list, reserve) in lists {
            loop {
                // Everything beyond the reserve at once, sorted by
                // address: after a burst the list is in release order,
                // and only a sorted whole lets `give_back` merge the
                // stacks of a slab into a few calls (one per stack
                // otherwise: a million took a minute, mostly TLB
                // shootdowns). The front is the coldest end: takers pop
                // the back.
                let mut excess: Vec<RawStack> = {
                    let mut l = list.lock();
                    let n = l.len().saturating_sub(reserve);
                    if n == 0 {
                        break;
                    }
                    l.drain(..n).collect()
                };
                excess.sort_unstable_by_key(|s| s.bottom);
                let mut rest = &mut excess[..];
                while !rest.is_empty() {
                    let (chunk, tail) = rest.split_at_mut(rest.len().min(SCAVENGE_CHUNK));
                    done += chunk.len();
                    give_back(chunk, size);
                    self.clean.lock().extend_from_slice(chunk);
                    rest = tail;
                    if stop() {
                        // The rest goes back, still dirty, cold end first.
                        let rest = rest.to_vec();
                        list.lock().splice(0..0, rest);
                        return (done, true);
                    }
                }
            }
        }
        (done, false)
    }

    /// Unmaps the runs of adjacent clean stacks beyond `CLEAN_RESERVE`
    /// (invariant 9) and shrinks the lists' vectors; returns the stacks
    /// unmapped, and whether it stopped early because `stop` said the
    /// worker has work. Called only under light guards, after a sweep.
    fn unmap_clean(&self, size: usize, stop: &dyn Fn() -> bool) -> (usize, bool) {
        let page = page_size();
        // The runs to unmap leave the list under its lock, and the rest
        // stays listed: a taker meanwhile waits for the lock or finds the
        // stacks kept, and never maps a slab because the list was away.
        let runs: Vec<Vec<RawStack>> = {
            let mut l = self.clean.lock();
            if l.len() < CLEAN_RESERVE + UNMAP_RUN {
                shrink(&mut l);
                return (0, false);
            }
            if stop() {
                return (0, true);
            }
            l.sort_unstable_by_key(|s| s.bottom);
            let mut listed = l.len();
            let mut runs = Vec::new();
            let mut kept: Vec<RawStack> = Vec::with_capacity(CLEAN_RESERVE + UNMAP_RUN);
            let mut rest = &l[..];
            while !rest.is_empty() {
                // The run of stacks adjacent in memory that `rest` starts
                // with.
                let mut n = 1;
                while n < rest.len() && rest[n].guard == rest[n - 1].bottom + size {
                    n += 1;
                }
                let (run, tail) = rest.split_at(n);
                rest = tail;
                let cut = run.len().min(listed.saturating_sub(CLEAN_RESERVE));
                if cut < UNMAP_RUN {
                    kept.extend_from_slice(run);
                    continue;
                }
                let (gone, stay) = run.split_at(cut);
                listed -= cut;
                runs.push(gone.to_vec());
                kept.extend_from_slice(stay);
            }
            *l = kept;
            runs
        };
        let mut unmapped = 0;
        let mut stopped = false;
        let mut back = Vec::new();
        for gone in runs {
            stopped = stopped || stop();
            debug_assert!(
                gone.iter()
                    .all(|s| !s.dirty && !s.in_canary_slab && s.canary == 0)
            );
            let (start, end) = (gone[0].guard, gone[gone.len() - 1].bottom + size);
            debug_assert_eq!(end - start, gone.len() * (size + page));
            // SAFETY: `start..end` covers exactly the guard pages and
            // usable memory of `gone`'s stacks, adjacent in one or more
            // live slab mappings (a stack is unmapped only here, once:
            // invariant 2). They are off every list, so bound to no task
            // (invariant 1) and used by nothing; `gone` is the last record
            // of their addresses, and it is dropped below.
            if !stopped && unsafe { libc::munmap(start as *mut _, end - start) } == 0 {
                unmapped += gone.len();
            } else {
                // Stopped for work, or the split was refused (the
                // mappings limit): the run stays, listed again.
                back.extend(gone);
            }
        }
        let mut l = self.clean.lock();
        l.extend(back);
        shrink(&mut l);
        drop(l);
        for shard in self.shards.iter() {
            shrink(&mut shard.lock());
        }
        shrink(&mut self.global.lock());
        (unmapped, stopped)
    }

    /// Lists the stacks of a new slab.
    fn put_new(&self, stacks: Vec<RawStack>) {
        match shard_index() {
            Some(i) => self.shards[i].lock().extend(stacks),
            None => self.global.lock().extend(stacks),
        }
    }
}

impl Pool {
    /// Usable bytes per stack.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Takes a stack for a coroutine being spawned (invariants 1 and 3),
    /// mapping a new slab if every list the caller may take from is empty.
    ///
    /// The stack has a guard page of its own (invariant 5) unless
    /// `allow_unguarded` (the caller's `unsafe` opt-in) and the
    /// mapped-guard budget is spent; then it may be a canary stack. Under
    /// light guards the opt-in changes nothing.
    pub(crate) fn take(&self, allow_unguarded: bool) -> io::Result<RawStack> {
        if let Some(s) = self.guarded.take() {
            return Ok(s);
        }
        let unguarded = allow_unguarded && !light_guards();
        if unguarded
            && budget().left.load(Ordering::Relaxed) == 0
            && let Some(s) = self.canary.take()
        {
            return Ok(s);
        }
        let _g = self.grow_lock.lock();
        // Someone else may have grown the pool while we waited, and other
        // shards or the clean list may hold stacks (invariant 8).
        if let Some(s) = self.guarded.take_any() {
            return Ok(s);
        }
        let err = match self.grow_guarded() {
            Ok(stacks) => return Ok(self.keep(&self.guarded, stacks)),
            Err(e) => e,
        };
        if !unguarded {
            return Err(err);
        }
        if let Some(s) = self.canary.take_any() {
            return Ok(s);
        }
        let stacks = self.map_canary_slab()?;
        Ok(self.keep(&self.canary, stacks))
    }

    /// Lists a new slab's stacks but one, which it returns.
    fn keep(&self, list: &FreeList, mut stacks: Vec<RawStack>) -> RawStack {
        let s = stacks.pop().expect("a slab holds stacks");
        self.total.fetch_add(stacks.len() + 1, Ordering::Relaxed);
        list.put_new(stacks);
        s
    }

    /// Returns a stack whose coroutine has finished, to the list it came
    /// from.
    pub(crate) fn release(&self, mut raw: RawStack) {
        raw.dirty = true;
        if raw.in_canary_slab {
            self.canary.put(raw);
        } else {
            self.guarded.put(raw);
        }
    }

    /// Maps one slab of stacks that each have a guard page of their own:
    /// light guards (installed later, by `prepare`), or `mprotect`ed ones
    /// within the budget, installed here (invariant 6).
    fn grow_guarded(&self) -> io::Result<Vec<RawStack>> {
        if light_guards() {
            return self.map_guarded(LIGHT_PER_SLAB);
        }
        let k = take_budget(GUARDED_PER_SLAB);
        if k == 0 {
            return Err(budget_error());
        }
        let mut stacks = match self.map_guarded(k) {
            Ok(stacks) => stacks,
            Err(e) => {
                refund_budget(k);
                return Err(e);
            }
        };
        let page = page_size();
        for i in 0..k {
            let guard = stacks[i].guard;
            // SAFETY: `guard..guard + page` is stack i's guard page in our
            // fresh mapping, which nothing else uses yet.
            if unsafe { libc::mprotect(guard as *mut _, page, libc::PROT_NONE) } != 0 {
                let e = io::Error::last_os_error();
                refund_budget(k - i);
                // Stacks i.. lie in one unsplit mapping at the slab's end:
                // unmapping it gives their memory and mappings back.
                let end = stacks[k - 1].bottom + self.size;
                // SAFETY: that tail of our own mapping holds no stack in
                // use (none of this slab's stacks was handed out yet).
                unsafe { libc::munmap(guard as *mut _, end - guard) };
                if i == 0 {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "cannot protect a stack's guard page with mprotect ({e}); \
                             the process may be at its vm.max_map_count limit"
                        ),
                    ));
                }
                stacks.truncate(i);
                break;
            }
            stacks[i].prepared = true;
        }
        Ok(stacks)
    }

    /// `[guard][stack][guard][stack]...`: every stack has its own guard page
    /// (not installed yet).
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
                    in_canary_slab: false,
                    prepared: false,
                    dirty: false,
                }
            })
            .collect())
    }

    /// `[guard][stack 0][stack 1]...`: one guard under the lowest stack,
    /// canaries for the others (invariant 5; module docs).
    fn map_canary_slab(&self) -> io::Result<Vec<RawStack>> {
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
                in_canary_slab: true,
                prepared: canary == 0,
                dirty: false,
            });
        }
        Ok(stacks)
    }
}

/// Writes a canary stack's canary, or installs a light-guard stack's guard
/// page (invariant 4). `mprotect`ed guard pages were installed when their
/// slab was mapped.
///
/// If the kernel refuses a light guard (out of memory for page tables) and
/// no `mprotect`ed one can stand in within the budget, the process aborts
/// with a message: the coroutine was spawned already, it must not run
/// without a guard, and a worker must not panic. That is what Rust does
/// when the heap cannot grow.
pub(crate) fn prepare(raw: &mut RawStack) {
    if raw.canary != 0 {
        // SAFETY: `canary..canary + 16` lies in the top reserve of the stack
        // below this one inside a live canary slab; no coroutine ever
        // writes there, so this write races with nothing.
        unsafe { (raw.canary as *mut [u64; 2]).write(CANARY) };
        raw.prepared = true;
        return;
    }
    let page = page_size();
    // SAFETY: `guard..guard + page` is this stack's guard page, inside a
    // live slab, used by no one; nothing was ever written there, so a guard
    // region that zaps its contents loses nothing.
    if unsafe { libc::madvise(raw.guard as *mut _, page, MADV_GUARD_INSTALL) } == 0 {
        raw.prepared = true;
        return;
    }
    let err = io::Error::last_os_error();
    if take_budget(1) == 1 {
        // SAFETY: as above; `mprotect` makes the same page a guard.
        if unsafe { libc::mprotect(raw.guard as *mut _, page, libc::PROT_NONE) } == 0 {
            raw.prepared = true;
            return;
        }
        refund_budget(1);
    }
    let _ = writeln!(
        io::stderr(),
        "\ngoro: cannot install the guard page of a coroutine's stack ({err}); \
         the kernel is out of memory for page tables or the process out of mappings. \
         A coroutine must not run without a guard page, so the process aborts."
    );
    std::process::abort();
}

/// How long the stacks a release took past its list's reserve stay
/// resident before the scavenger gives their pages back (invariant 7): a
/// loop that releases a batch and takes it again within this time keeps
/// the pages instead of paying a `MADV_DONTNEED` (a TLB shootdown of the
/// other CPUs) and a page fault per page to get them back.
const SCAVENGE_DELAY_MS: u64 = 100;

/// The coarse tick (`diag`, milliseconds) of the last release that armed
/// the sweep.
static LAST_ARM_MS: AtomicU64 = AtomicU64::new(0);

fn arm_sweep() {
    LAST_ARM_MS.store(crate::diag::coarse_tick(), Ordering::Relaxed);
    sweep_gate().arm();
}

/// How long until an armed sweep is due: `None` if none is armed, zero if
/// it is due now. An idle worker sleeps at most this long (`idle.rs`), so
/// a deferred sweep still runs when every worker sleeps.
pub(crate) fn scavenge_due_in() -> Option<std::time::Duration> {
    if !sweep_gate().is_armed() {
        return None;
    }
    let since = crate::diag::coarse_tick().saturating_sub(LAST_ARM_MS.load(Ordering::Relaxed));
    Some(std::time::Duration::from_millis(
        SCAVENGE_DELAY_MS.saturating_sub(since),
    ))
}

/// `madvise(MADV_DONTNEED)` on the usable part of each dirty stack, one
/// call per run of adjacent stacks (their guard pages in between survive
/// the advice: invariant 7). Leaves every stack marked clean.
fn give_back(chunk: &mut [RawStack], size: usize) {
    chunk.sort_unstable_by_key(|s| s.bottom);
    let page = page_size();
    let mut run: Option<(usize, usize)> = None;
    let mut bytes = 0u64;
    let flush = |run: (usize, usize)| {
        // SAFETY: `run` covers the usable parts of stacks that are on no
        // free list and bound to no task (the caller took them off their
        // list under its lock), plus the guard pages between them, all
        // inside one live slab mapping; discarding their contents is what
        // the pool wants, and guard pages keep their protection.
        unsafe { libc::madvise(run.0 as *mut _, run.1 - run.0, libc::MADV_DONTNEED) };
    };
    for s in chunk.iter_mut() {
        if !s.dirty {
            continue;
        }
        s.dirty = false;
        bytes += size as u64;
        let (start, end) = (s.bottom, s.bottom + size);
        run = match run {
            Some((a, b)) if start == b + page => Some((a, end)),
            Some(r) => {
                flush(r);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some(r) = run {
        flush(r);
    }
    SCAVENGED_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// The scavenger (invariant 7): called by a worker about to sleep. Costs
/// one relaxed load unless a release armed it; then gives back the pages
/// of every guarded pool's stacks beyond the reserves, stopping between
/// chunks when `stop` says the worker has work (the sweep is then armed
/// again for the next idle moment).
pub(crate) fn scavenge(stop: &dyn Fn() -> bool) {
    if scavenge_due_in().is_some_and(|d| !d.is_zero()) {
        return; // deferred: the last release is too recent
    }
    let gate = sweep_gate();
    if !gate.begin() {
        return;
    }
    let mut total = 0;
    'sweep: loop {
        let pools: Vec<&'static Pool> = POOLS.lock().clone();
        for pool in pools {
            let (n, stopped) = pool.guarded.scavenge(pool.size, stop);
            total += n;
            if stopped {
                gate.abandon();
                break 'sweep;
            }
            if light_guards() {
                let (gone, stopped) = pool.guarded.unmap_clean(pool.size, stop);
                pool.total.fetch_sub(gone, Ordering::Relaxed);
                if stopped {
                    gate.abandon();
                    break 'sweep;
                }
            }
        }
        // A release that armed the gate after this pass went by its list
        // is swept now, not at some later idle moment that may never come.
        if !gate.finish() {
            break;
        }
    }
    if total >= TRIM_AFTER {
        super::trim::after_burst();
    }
}

/// Gives a list's vector back its spare capacity once it holds under a
/// quarter of it (a drained burst's list keeps its pages resident
/// otherwise: 40 bytes a stack).
fn shrink(l: &mut Vec<RawStack>) {
    let floor = SHARD_HIGH.max(2 * l.len());
    if l.capacity() > 2 * floor {
        l.shrink_to(floor);
    }
}

/// A sweep that gave back this many stacks followed a burst: the
/// coroutine headers of that burst were freed too, so the heap is
/// trimmed as well.
const TRIM_AFTER: usize = 1024;

/// Bytes of stack the scavenger has given back since start.
pub(crate) fn scavenged_bytes() -> u64 {
    SCAVENGED_BYTES.load(Ordering::Relaxed)
}

thread_local! {
    /// This thread's free-list shard, `usize::MAX` on a thread that is not
    /// a worker; set once by [`bind_shard`].
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Gives the calling thread, worker `worker`, its free-list shard. Called
/// once by each worker thread as it starts, so the pool need not know what
/// a worker is.
pub(crate) fn bind_shard(worker: usize) {
    SHARD.with(|s| s.set(worker % SHARDS));
}

/// Never inlined, like `context::worker`: a migratable coroutine may move
/// to another thread between two calls, and a thread-local address must
/// not be cached across that.
#[inline(never)]
fn shard_index() -> Option<usize> {
    let s = SHARD.with(std::cell::Cell::get);
    (s != usize::MAX).then_some(s)
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
        let mut taken: Vec<_> = (0..300).map(|_| pool.take(false).unwrap()).collect();
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
        assert!(taken.iter().all(|s| s.canary == 0 && !s.in_canary_slab));
        for s in taken {
            pool.release(s);
        }
        // Released stacks are reused, not remapped.
        let again: Vec<_> = (0..300).map(|_| pool.take(false).unwrap()).collect();
        assert_eq!(pool.total.load(Ordering::Relaxed), total);
        for s in again {
            pool.release(s);
        }
    }
}
