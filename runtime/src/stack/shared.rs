//! Shared stacks: many coroutines run on a few stacks per worker, and a
//! parked coroutine's frames wait on the heap (libco's "copy stack").
//!
//! # Why
//!
//! A parked coroutine on a private stack costs the pages its stack has
//! touched: at least one, 4 KiB, though a receive-like call chain uses
//! well under a kilobyte of it. On a shared stack it costs the bytes it
//! uses: when another coroutine needs the stack, the used part (from the
//! saved stack pointer to the top, plus a small margin) is copied to a
//! heap buffer sized to fit, and copied back to the same addresses before
//! the coroutine runs again. Frames hold pointers to their own stack
//! (locals borrowed by callees, the yielder, saved frame pointers), so
//! they must come back at exactly the addresses they left.
//!
//! # Glossary
//!
//! - *set*: the shared stacks of one stack size, [`SHARED_PER_WORKER`]
//!   (or `GORO_SHARED_STACKS_PER_WORKER`) per worker, taken from that
//!   size's pool the first time a coroutine of that size is spawned in
//!   shared mode, and never given back (a handful of stacks per worker;
//!   their untouched pages cost nothing).
//! - *owner*: the coroutine whose frames are on a shared stack right now.
//!   At most one per stack; it may be running, runnable or parked.
//! - *evict*: copy the owner's frames out to its buffer; the stack then
//!   has no owner. *Restore*: copy a coroutine's frames back in; it
//!   becomes the owner.
//! - *lender*: a coroutine that has let other code hold a pointer into
//!   its stack while it is parked (see "The invariant").
//!
//! # The protocol (all on the coroutine's home worker)
//!
//! 1. Spawn (any thread) takes no stack: it notes the set
//!    ([`Frames::set`]). A shared-stack coroutine is never migratable
//!    (`Builder::spawn` refuses the pair), so it is resumed only by the
//!    worker that first ran it.
//! 2. First run: the worker picks one of its stacks of that set, round
//!    robin, skipping stacks whose owner lends; if all lend, it adds a
//!    stack to its share of the set (up to [`MAX_PER_WORKER`]), else the
//!    coroutine waits for one. The coroutine is bound to that stack for
//!    life. Before corosensei writes the coroutine's first frame at the
//!    top of the stack, the stack's owner (if any) is evicted.
//! 3. Every suspension (park or yield) goes through one never-inlined
//!    function that records its own stack pointer, then calls
//!    corosensei's `Yielder::suspend` ([`Frames::suspend`]). What that
//!    call writes below the recorded pointer (its frame, the registers the
//!    switch pushes) is measured once per process on that very code path,
//!    before the first shared stack is used (`measure_margin`: a pattern
//!    fill, a suspension, a scan), and eviction copies that much more
//!    plus a slack (`MARGIN`).
//! 4. Resume of a coroutine bound to stack `S`: if it owns `S`, nothing is
//!    copied (the common case for a coroutine that parks and wakes while
//!    its neighbours sleep). Otherwise `S`'s owner, if any, is evicted
//!    (unless it lends: then the coroutine waits, step 6), and the
//!    coroutine's frames are restored. Eviction copies
//!    `[sp - margin, top)` as it is, a plain copy; restoring writes the
//!    same bytes back at the same addresses. The buffer is kept while the
//!    coroutine runs, so a pair that keeps evicting each other allocates
//!    nothing and copies at memory speed. Each worker lists its last
//!    [`PLAIN_KEEP`] plain copies; one that falls off the list while its
//!    coroutine is still evicted, and every one left when the worker goes
//!    idle, is *packed* (`pack`: zero words left out, repeated words as
//!    one-byte references; a parked receive's 560 bytes take about 280)
//!    and its buffer shrunk to fit. So coroutines that come back quickly
//!    never pay for packing, and those that stay parked (an idle
//!    connection, a million receivers) keep only their packed bytes.
//! 5. Finish: the coroutine gives up ownership and frees its buffer.
//! 6. A coroutine that waits for a lender's stack is kept in the stack's
//!    `waiting` list; after every switch-out of the owner that leaves it
//!    lending nothing, the list goes back to the worker's ready queue.
//!
//! # The invariant: shared stacks lend nothing
//!
//! *While a coroutine's frames are not on its stack, no pointer into them
//! is used by anyone.* The stack memory then holds another coroutine's
//! frames, so a read through such a pointer would see foreign data and a
//! write would corrupt it. The coroutine itself cannot use one: it is not
//! running. Other parties could only if the coroutine gave them such a
//! pointer and parked with it outstanding; goro keeps everything others
//! write while a coroutine parks off its stack (waiter nodes, channel
//! packets and rendezvous slots, select waiters, sync waiter nodes, park
//! tokens, timers, reactor registrations, join packets: all on the heap,
//! audited for this mode), and safe Rust hands out a pointer into the
//! stack to another coroutine or thread only through an API that keeps the
//! lender from returning while it is used. goro has two:
//!
//! - [`scope`](crate::scope): children borrow from the parent's frames
//!   while it parks in the scope. A shared-stack coroutine may not open
//!   one: `scope` panics with a message saying so (before spawning
//!   anything). The children themselves may be shared-stack coroutines:
//!   they borrow only while they run, and the parent's stack is private.
//! - [`blocking`](crate::blocking): the closure may borrow the caller's
//!   frames, and runs on another thread while the caller parks. The caller
//!   *lends* for that time ([`Frames::lend`]): its stack is never evicted,
//!   so its frames stay where the closure's pointers say. Coroutines bound
//!   to that stack wait until the call returns (step 6); fresh ones take
//!   another stack (step 2).
//!
//! Anything else that lends (a future `block_on`, whose future may be
//! pinned on the stack with intrusive waiters written by other threads)
//! must lend the same way.
//!
//! A `std::thread::scope` or any other call that blocks the worker thread
//! does not switch the coroutine out at all, so it cannot see a copy.
//!
//! Liveness: a coroutine that lends and, inside `blocking`, waits for a
//! coroutine bound to the same stack (whose frames are on the heap)
//! waits forever. Give such coroutines
//! [`Builder::private_stack`](crate::Builder::private_stack).
//!
//! # Guard pages
//!
//! Shared stacks come from the ordinary pools (`pool.rs`) with
//! `allow_unguarded = false`: every one has its own guard page, whatever
//! the guard mode, and under mapped guards a set costs `workers *
//! SHARED_PER_WORKER` stacks of the budget, once. A coroutine on a shared
//! stack needs no stack of its own, hence no guard of its own: that is
//! what lets ten million of them park under any guard budget. An overflow
//! hits the shared stack's guard page and is reported like any other
//! (`overflow.rs`), naming the coroutine: the task's `raw_stack` describes
//! the shared stack it runs on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use corosensei::Yielder;

use super::{Pool, RawStack, Stack};
use crate::scheduler::WorkerCounters;
use crate::task::{Coroutine, Request, Task};

/// Shared stacks per worker and set, unless `GORO_SHARED_STACKS_PER_WORKER`
/// says otherwise. With round-robin binding, the coroutines a worker starts
/// one after another land on different stacks, so a pair or a small group
/// that talks (ping-pong, a connection's reader and writer) usually owns a
/// stack each and never copies; more stacks barely help beyond that and
/// each keeps its owner's touched pages. Measured (`examples/shared_switch.rs`):
/// ping-pong over 1 stack copies on every switch, over 2 or more it copies
/// nothing.
pub(crate) const SHARED_PER_WORKER: usize = 4;
/// Most shared stacks a worker adds to one set when every one of them is
/// held by a lender (`blocking` callers).
pub(crate) const MAX_PER_WORKER: usize = 64;
/// Bytes below the recorded stack pointer that eviction copies too: the
/// frames of [`suspend_noting_sp`]'s callee (corosensei's
/// `Yielder::suspend`) and the words its switch pushes. Measured once per
/// process on the real code path (`measure_margin`), since it depends on
/// how corosensei was compiled (about 100 bytes optimised, 600 not), plus
/// [`MARGIN_SLACK`]; 0 until the first set exists.
static MARGIN: AtomicUsize = AtomicUsize::new(0);
/// Added to the measured margin. What lies below the recorded stack
/// pointer is written by the same never-inlined code on every suspension,
/// so the measurement is exact; the slack only rounds it up.
const MARGIN_SLACK: usize = 16;
/// Bytes of a stack's top that the margin probe fills with a pattern.
const PROBE_BYTES: usize = 8 << 10;

impl RawStack {
    /// No stack: what a shared-stack task holds until it is bound to one.
    pub(crate) const NONE: RawStack = RawStack {
        top: 0,
        bottom: 0,
        guard: 0,
        canary: 0,
        in_canary_slab: false,
        prepared: true,
        dirty: false,
    };
}

/// Glibc's malloc returns chunks of `16k + 8` usable bytes with no waste:
/// buffers are sized to those.
fn buffer_size(len: usize) -> usize {
    ((len + 8).div_ceil(16) * 16).max(32) - 8
}

/// The shared-stack state of one task. Touched only by the task's home
/// worker and by the coroutine itself while it runs (task invariant 2).
pub(crate) struct Frames {
    /// Where it runs: 0 for a private stack; a shared set's address + 1
    /// before its first run; then the `SharedStack` it is bound to (both
    /// leaked and 8-aligned, so bit 0 tells them apart). One word, not
    /// two: this header is most of what a parked coroutine costs.
    place: Cell<usize>,
    /// Its frames while evicted, a plain copy or packed (`pack`; which,
    /// [`PLAIN`] in `saved` says), in a boxed `[u8]` of `cap` bytes; null
    /// if none yet. Kept (stale) while it runs.
    buf: Cell<*mut u8>,
    /// Capacity of `buf` in bytes.
    cap: Cell<u32>,
    /// The stack's top minus the stack pointer at its last suspension
    /// (protocol step 3); stacks are at most `MAX_STACK_SIZE` (1 GiB).
    sp_off: Cell<u32>,
    /// Bytes of frames that `buf` holds (the length on the stack), with
    /// [`PLAIN`] set while `buf` holds them as a plain copy rather than
    /// packed; 0 when the frames are on the stack (or the coroutine never
    /// ran).
    saved: Cell<u32>,
    /// Nesting count of lending calls in progress (`lend`).
    lending: Cell<u16>,
    /// The worker's eviction count at this coroutine's last eviction
    /// (wrapping): tells [`compact`] whether an entry of the worker's
    /// plain-copy list is still this coroutine's current eviction.
    evicted_at: Cell<u16>,
}

impl Frames {
    pub(crate) fn private() -> Frames {
        Frames {
            place: Cell::new(0),
            buf: Cell::new(std::ptr::null_mut()),
            cap: Cell::new(0),
            sp_off: Cell::new(0),
            saved: Cell::new(0),
            lending: Cell::new(0),
            evicted_at: Cell::new(0),
        }
    }

    pub(crate) fn shared(set: &'static Set) -> Frames {
        let f = Frames::private();
        f.place.set(set as *const Set as usize | 1);
        f
    }

    /// Whether the coroutine runs on a shared stack.
    #[inline]
    pub(crate) fn is_shared(&self) -> bool {
        self.place.get() != 0
    }

    /// The shared stack it is bound to, if any.
    #[inline]
    fn stack(&self) -> Option<&'static SharedStack> {
        let p = self.place.get();
        // SAFETY: an even non-zero `place` is a leaked `SharedStack`.
        (p & 1 == 0 && p != 0).then(|| unsafe { &*(p as *const SharedStack) })
    }

    /// The set of a shared-stack coroutine that is not bound yet.
    fn unbound_set(&self) -> Option<&'static Set> {
        let p = self.place.get();
        // SAFETY: an odd `place` is a leaked `Set`'s address + 1.
        (p & 1 == 1).then(|| unsafe { &*((p - 1) as *const Set) })
    }

    /// The stack pointer at its last suspension.
    fn sp(&self, s: &SharedStack) -> usize {
        s.raw.top - self.sp_off.get() as usize
    }

    /// Records the stack pointer, then switches to the worker with `req`
    /// (protocol step 3): the one way a task suspends.
    pub(crate) fn suspend(&self, y: &Yielder<(), Request>, req: Request) {
        let top = self.stack().map_or(0, |s| s.raw.top);
        suspend_noting_sp(&self.sp_off, top, y, req);
    }

    /// Marks the running coroutine as lending its stack until the guard
    /// drops (see "The invariant").
    pub(crate) fn lend(&self) -> LendGuard<'_> {
        self.lending.set(self.lending.get() + 1);
        LendGuard(self)
    }

    fn lends(&self) -> bool {
        self.lending.get() > 0
    }

    /// Takes the buffer out (null, 0 if none): the caller owns it, a
    /// `Box<[u8]>` of that many bytes.
    fn take_buf(&self) -> (*mut u8, usize) {
        (
            self.buf.replace(std::ptr::null_mut()),
            self.cap.replace(0) as usize,
        )
    }

    /// Frees the buffer; returns its size in bytes.
    fn free_buf(&self) -> usize {
        let p = self.buf.replace(std::ptr::null_mut());
        if p.is_null() {
            return 0;
        }
        let cap = self.cap.replace(0) as usize;
        // SAFETY: `buf` came from `Box::<[u8]>::into_raw` with `cap`
        // bytes (`evict`), and is null again now, so freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, cap)) });
        cap
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.free_buf();
    }
}

/// Ends a lending call ([`Frames::lend`]).
pub(crate) struct LendGuard<'a>(&'a Frames);

impl Drop for LendGuard<'_> {
    fn drop(&mut self) {
        self.0.lending.set(self.0.lending.get() - 1);
    }
}

/// Records the stack pointer of this frame in `sp`, then suspends: never
/// inlined, so that what lies below the recorded value is always the same
/// code (what `measure_margin` measures).
#[inline(never)]
fn suspend_noting_sp(sp_off: &Cell<u32>, top: usize, y: &Yielder<(), Request>, req: Request) {
    sp_off.set(top.wrapping_sub(current_sp()) as u32);
    y.suspend(req);
}

/// Measures how far below the recorded stack pointer a suspension writes:
/// runs a coroutine on `s` (unused yet) whose top `PROBE_BYTES` were
/// filled with a pattern, suspends it through `suspend_noting_sp`, and
/// finds the lowest byte that changed.
fn measure_margin(s: &SharedStack) -> usize {
    const PATTERN: u8 = 0xA5;
    let top = s.raw.top;
    let lo = (top - PROBE_BYTES).max(s.raw.bottom);
    // SAFETY: the usable part of a stack nobody runs on yet.
    unsafe { std::ptr::write_bytes(lo as *mut u8, PATTERN, top - lo) };
    let sp_off = std::rc::Rc::new(Cell::new(0u32));
    let sp2 = sp_off.clone();
    let mut co = Coroutine::with_stack(Stack::new(&s.raw), move |y: &Yielder<(), Request>, ()| {
        suspend_noting_sp(&sp2, top, y, Request::Park);
    });
    let _ = co.resume(());
    // SAFETY: `lo..top` is mapped; the coroutine is suspended.
    let lowest = (lo..top)
        .find(|&a| unsafe { *(a as *const u8) } != PATTERN)
        .unwrap_or(lo);
    let _ = co.resume(());
    debug_assert!(co.done());
    let _ = co.into_stack();
    let below = (top - sp_off.get() as usize).saturating_sub(lowest);
    (below + MARGIN_SLACK).next_multiple_of(16)
}

/// The eviction margin (`MARGIN`).
fn margin() -> usize {
    MARGIN.load(Ordering::Relaxed)
}

/// The stack pointer (or a lower bound on the used part of the stack).
#[inline(always)]
fn current_sp() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: reads a register; touches no memory.
        unsafe {
            std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        sp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let sp: usize;
        // SAFETY: reads a register; touches no memory.
        unsafe {
            std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        sp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // No way to read it: copy the whole stack.
        0
    }
}

/// One shared stack.
pub(crate) struct SharedStack {
    raw: RawStack,
    /// The coroutine whose frames are on the stack; holding a strong
    /// reference keeps the pointer that eviction reads valid.
    owner: RefCell<Option<Arc<Task>>>,
    /// Coroutines bound here that wait for a lending owner (step 6).
    waiting: RefCell<Vec<Arc<Task>>>,
}

/// One worker's stacks of a set.
struct WorkerStacks {
    stacks: RefCell<Vec<&'static SharedStack>>,
    next: Cell<usize>,
}

/// The shared stacks of one stack size, for every worker.
pub(crate) struct Set {
    pool: &'static Pool,
    workers: Box<[WorkerStacks]>,
}

// SAFETY: a `Set` is built by one thread and published through `SETS`'s
// lock; after that, worker `i`'s `WorkerStacks` and the `SharedStack`s in
// it are touched only by worker `i`'s thread (the home worker of every
// coroutine bound to them: shared-stack coroutines never migrate), so no
// `Cell` or `RefCell` in it is ever used from two threads.
unsafe impl Sync for Set {}
// SAFETY: as above; a `Set` is never moved after it is leaked.
unsafe impl Send for Set {}

static SETS: Mutex<Vec<&'static Set>> = Mutex::new(Vec::new());
static DEFAULT_SET: OnceLock<&'static Set> = OnceLock::new();

/// The set for `pool`'s stack size, created (taking `per_worker` guarded
/// stacks for each of `workers` workers from `pool`) on first use.
pub(crate) fn set_for(
    pool: &'static Pool,
    default: bool,
    workers: usize,
    per_worker: usize,
) -> io::Result<&'static Set> {
    if default && let Some(s) = DEFAULT_SET.get() {
        return Ok(s);
    }
    let mut sets = SETS.lock();
    if let Some(s) = sets.iter().find(|s| std::ptr::eq(s.pool, pool)) {
        return Ok(s);
    }
    let mut per = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut stacks = Vec::with_capacity(per_worker);
        for _ in 0..per_worker {
            let s = new_stack(pool)?;
            if MARGIN.load(Ordering::Relaxed) == 0 {
                // The first shared stack of the process, unused yet.
                MARGIN.store(measure_margin(s), Ordering::Relaxed);
            }
            stacks.push(s);
        }
        per.push(WorkerStacks {
            stacks: RefCell::new(stacks),
            next: Cell::new(0),
        });
    }
    let set: &'static Set = Box::leak(Box::new(Set {
        pool,
        workers: per.into(),
    }));
    sets.push(set);
    if default {
        let _ = DEFAULT_SET.set(set);
    }
    Ok(set)
}

/// A guarded stack from `pool`, prepared (guard installed) at once.
fn new_stack(pool: &'static Pool) -> io::Result<&'static SharedStack> {
    let mut raw = pool.take(false)?;
    if !raw.prepared {
        super::prepare(&mut raw);
    }
    Ok(Box::leak(Box::new(SharedStack {
        raw,
        owner: RefCell::new(None),
        waiting: RefCell::new(Vec::new()),
    })))
}

/// Bytes held in evicted frames' buffers, and copy traffic: per worker,
/// single writer (plain load and store).
fn bump(c: &std::sync::atomic::AtomicU64, by: u64) {
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

fn bump_held(c: &std::sync::atomic::AtomicI64, by: i64) {
    c.store(c.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// What the worker does with a shared-stack task before resuming it.
pub(crate) enum Acquire {
    /// Its frames are on its stack: resume it.
    Ready,
    /// It waits for its stack (queued in the stack's `waiting` list).
    Wait,
}

/// Protocol steps 2 and 4: makes `task`'s frames the ones on its stack,
/// binding a fresh task to a stack first. `worker` is the home worker's
/// index.
pub(crate) fn acquire(task: &Arc<Task>, worker: usize, counters: &WorkerCounters) -> Acquire {
    let frames = &task.frames;
    if let Some(set) = frames.unbound_set() {
        match bind(set, worker) {
            Some(s) => {
                frames.place.set(s as *const SharedStack as usize);
                task.raw_stack.set(s.raw);
            }
            None => {
                // Every stack lends and none can be added: wait on one.
                let ws = &set.workers[worker % set.workers.len()];
                ws.stacks.borrow()[0]
                    .waiting
                    .borrow_mut()
                    .push(task.clone());
                return Acquire::Wait;
            }
        }
    }
    let s = frames.stack().expect("bound just above");
    {
        let owner = s.owner.borrow();
        if let Some(o) = owner.as_ref() {
            if Arc::ptr_eq(o, task) {
                return Acquire::Ready;
            }
            if o.frames.lends() {
                drop(owner);
                s.waiting.borrow_mut().push(task.clone());
                return Acquire::Wait;
            }
        }
    }
    if let Some(old) = s.owner.borrow_mut().take() {
        evict(&old, s, counters);
    }
    restore(task, s, counters);
    *s.owner.borrow_mut() = Some(task.clone());
    Acquire::Ready
}

/// Picks a stack for a fresh task (step 2).
fn bind(set: &'static Set, worker: usize) -> Option<&'static SharedStack> {
    let ws = &set.workers[worker % set.workers.len()];
    let n = ws.stacks.borrow().len();
    for _ in 0..n {
        let i = ws.next.get() % n;
        ws.next.set(i + 1);
        let s = ws.stacks.borrow()[i];
        let lends = s.owner.borrow().as_ref().is_some_and(|o| o.frames.lends());
        if !lends {
            return Some(s);
        }
    }
    if n >= MAX_PER_WORKER {
        return None;
    }
    let s = new_stack(set.pool).ok()?;
    ws.stacks.borrow_mut().push(s);
    Some(s)
}

/// Set in [`Frames::saved`] while the buffer holds a plain copy.
const PLAIN: u32 = 1 << 31;
/// Plain copies a worker keeps before it packs the oldest (step 4).
const PLAIN_KEEP: usize = 8;

/// Gives `f`'s buffer room for `need` bytes, keeping it if it has, else
/// taking the worker's spare buffer if that is large enough (the one the
/// last packing shrank away from), else a new one.
fn reserve(f: &Frames, need: usize, counters: &WorkerCounters) {
    reserve_from(f, need, counters, true);
}

/// [`reserve`], taking the spare buffer only if `spare` says so.
fn reserve_from(f: &Frames, need: usize, counters: &WorkerCounters, spare: bool) {
    if (f.cap.get() as usize) >= need {
        return;
    }
    let old = f.free_buf();
    let (b, cap) = match spare
        .then(|| SPARE.with(|s| s.take_if_fits(need)))
        .flatten()
    {
        Some(spare) => spare,
        None => {
            let cap = buffer_size(need);
            (
                Box::into_raw(vec![0u8; cap].into_boxed_slice()).cast::<u8>(),
                cap,
            )
        }
    };
    f.buf.set(b);
    f.cap.set(cap as u32);
    bump_held(&counters.saved_stack_bytes, cap as i64 - old as i64);
}

/// One buffer a worker keeps between a packing that shrank a frames
/// buffer and the next eviction, which takes it: the plain copies rotate
/// through the same few allocations instead of freeing and allocating one
/// per eviction.
struct Spare {
    buf: Cell<*mut u8>,
    cap: Cell<usize>,
}

impl Spare {
    /// Takes the spare buffer if it holds at least `need` bytes.
    fn take_if_fits(&self, need: usize) -> Option<(*mut u8, usize)> {
        (!self.buf.get().is_null() && self.cap.get() >= need)
            .then(|| (self.buf.replace(std::ptr::null_mut()), self.cap.replace(0)))
    }

    /// Keeps `buf` (of `cap` bytes, from `Box<[u8]>`) as the spare,
    /// freeing the one it held.
    fn put(&self, buf: *mut u8, cap: usize) {
        self.free();
        self.buf.set(buf);
        self.cap.set(cap);
    }

    fn free(&self) {
        let p = self.buf.replace(std::ptr::null_mut());
        if !p.is_null() {
            let cap = self.cap.replace(0);
            // SAFETY: a spare buffer came from `Box::<[u8]>::into_raw`
            // with `cap` bytes (`Frames::take_buf`) and is null again
            // now, so freed once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, cap)) });
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        self.free();
    }
}

/// Copies `old`'s frames out of `s` into its buffer, as they are (step
/// 4): a plain copy, which [`compact`] packs later if `old` is still
/// evicted by then.
fn evict(old: &Arc<Task>, s: &SharedStack, counters: &WorkerCounters) {
    let f = &old.frames;
    let top = s.raw.top;
    let start = f.sp(s).saturating_sub(margin()).max(s.raw.bottom).min(top) & !15;
    let start = start.max(s.raw.bottom);
    let len = top - start;
    debug_assert!(
        top.is_multiple_of(16) && len.is_multiple_of(8),
        "stack top not aligned"
    );
    // The oldest plain copy is packed first, so that the buffer it gives
    // up can take this one.
    let oldest = PLAIN_COPIES.with_borrow_mut(|q| {
        if q.len() >= PLAIN_KEEP {
            q.pop_front()
        } else {
            None
        }
    });
    if let Some((t, at)) = oldest {
        compact(&t, at, counters);
    }
    reserve(f, len, counters);
    // SAFETY: `start..top` lies in the usable part of `s`, which is mapped
    // and which nothing else uses now: `old` is suspended and its frames
    // are what is there (it is the owner). `buf` holds at least `len`
    // bytes, owned by this task's frames and touched only by its home
    // worker (task invariant 2); the two do not overlap (heap, stack).
    unsafe { std::ptr::copy_nonoverlapping(start as *const u8, f.buf.get(), len) };
    f.saved.set(len as u32 | PLAIN);
    let at = EVICTIONS.get().wrapping_add(1);
    EVICTIONS.set(at);
    f.evicted_at.set(at);
    bump(&counters.copy_outs, 1);
    bump(&counters.copy_out_bytes, len as u64);
    PLAIN_COPIES.with_borrow_mut(|q| q.push_back((old.clone(), at)));
}

/// Packs the frames of `t`'s eviction number `at`, if they are still a
/// plain copy in its buffer (`t` has not been restored since), and shrinks
/// the buffer to the packed size. Called on `t`'s home worker.
fn compact(t: &Task, at: u16, counters: &WorkerCounters) {
    let f = &t.frames;
    let saved = f.saved.get();
    if saved & PLAIN == 0 || f.evicted_at.get() != at {
        return;
    }
    let len = (saved & !PLAIN) as usize;
    WORDS.with_borrow_mut(|words| {
        words.clear();
        words.resize(len / 8, 0);
        // SAFETY: `buf` holds the plain copy of `len` bytes (`evict`),
        // owned by `t`'s frames, touched only by this, its home worker
        // (task invariant 2), while `t` is evicted (so not running);
        // `words` is this thread's scratch, `len` bytes long.
        unsafe { std::ptr::copy_nonoverlapping(f.buf.get(), words.as_mut_ptr().cast::<u8>(), len) };
        SCRATCH.with_borrow_mut(|packed| {
            pack(words, packed);
            let need = packed.len();
            // Shrink to the packed size (a new buffer; the plain copy's
            // becomes the spare for the next eviction), or grow in the
            // rare case that packing added more (two tag bits a word) than
            // it saved.
            if buffer_size(need) < f.cap.get() as usize {
                let (b, cap) = f.take_buf();
                bump_held(&counters.saved_stack_bytes, -(cap as i64));
                reserve_from(f, need, counters, false);
                SPARE.with(|s| s.put(b, cap));
            } else {
                reserve(f, need, counters);
            }
            // SAFETY: `buf` holds at least `need` bytes (just above),
            // owned as before; `packed` is this thread's scratch.
            unsafe { std::ptr::copy_nonoverlapping(packed.as_ptr(), f.buf.get(), need) };
        });
    });
    f.saved.set(len as u32);
    bump(&counters.packs, 1);
}

/// Packs every plain copy the calling worker keeps (a worker about to
/// sleep: what is parked then stays parked for a while, and takes its
/// packed size).
pub(crate) fn compact_all(counters: &WorkerCounters) {
    while let Some((t, at)) = PLAIN_COPIES.with_borrow_mut(|q| q.pop_front()) {
        compact(&t, at, counters);
    }
}

thread_local! {
    /// Where packing writes frames before it knows their packed size (one
    /// per worker thread; as large as the largest packing so far).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A plain copy, 8-aligned for packing (buffers are byte arrays).
    static WORDS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// This worker's evictions, counted (wrapping).
    static EVICTIONS: Cell<u16> = const { Cell::new(0) };
    /// The coroutines this worker evicted as plain copies, oldest first,
    /// with the eviction each entry is for (at most `PLAIN_KEEP`, and none
    /// once the worker has gone idle).
    static PLAIN_COPIES: RefCell<VecDeque<(Arc<Task>, u16)>> =
        const { RefCell::new(VecDeque::new()) };
    /// See [`Spare`].
    static SPARE: Spare = const {
        Spare {
            buf: Cell::new(std::ptr::null_mut()),
            cap: Cell::new(0),
        }
    };
}

/// Bits of a literal's slot in the table of recent literals ([`pack`]).
const RECENT_BITS: u32 = 6;

/// The slot of `w` in the table of recent literals (a multiplicative hash).
#[inline]
fn slot(w: u64) -> usize {
    (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - RECENT_BITS)) as usize
}

const TAG_ZERO: u8 = 0;
const TAG_LITERAL: u8 = 1;
const TAG_REPEAT: u8 = 2;

/// Packs `frames` into `out` (cleared first): two tag bits per word
/// (`frames.len() / 4` bytes, rounded up), then per word by its tag:
/// nothing for a zero word, 8 bytes for a literal, or one byte naming a
/// slot of a table of recent literals (64 slots, by a hash of the value:
/// one probe per word, so packing costs the same per byte however large
/// the frames; both sides fill the table alike).
///
/// A parked call chain is mostly zeros (empty `Option`s, cleared flags)
/// and a few values repeated from frame to frame (the task, the channel,
/// `self` pointers, the stack's own addresses): the frames of a parked
/// receive, 560 bytes, pack into about 280. A million parked coroutines
/// hold that much less, for one pass over bytes copied anyway.
fn pack(frames: &[u64], out: &mut Vec<u8>) {
    let tags_len = frames.len().div_ceil(4);
    out.clear();
    out.resize(tags_len, 0);
    let mut recent = [0u64; 1 << RECENT_BITS];
    for (i, &w) in frames.iter().enumerate() {
        let k = slot(w);
        let tag = if w == 0 {
            TAG_ZERO
        } else if recent[k] == w {
            out.push(k as u8);
            TAG_REPEAT
        } else {
            out.extend_from_slice(&w.to_le_bytes());
            recent[k] = w;
            TAG_LITERAL
        };
        out[i / 4] |= tag << ((i % 4) * 2);
    }
}

/// Writes what [`pack`] made of `frames.len()` words back into `frames`.
fn unpack(packed: &[u8], frames: &mut [u64]) {
    let (tags, mut data) = packed.split_at(frames.len().div_ceil(4));
    let mut recent = [0u64; 1 << RECENT_BITS];
    for (i, w) in frames.iter_mut().enumerate() {
        *w = match (tags[i / 4] >> ((i % 4) * 2)) & 3 {
            TAG_ZERO => 0,
            TAG_LITERAL => {
                let (lit, rest) = data.split_at(8);
                data = rest;
                let v = u64::from_le_bytes(lit.try_into().expect("8 bytes"));
                recent[slot(v)] = v;
                v
            }
            _ => {
                let k = data[0] as usize;
                data = &data[1..];
                recent[k]
            }
        };
    }
}

/// Copies `task`'s frames (if it has any saved) back into `s`.
fn restore(task: &Task, s: &SharedStack, counters: &WorkerCounters) {
    let f = &task.frames;
    let saved = f.saved.replace(0);
    let len = (saved & !PLAIN) as usize;
    if len == 0 {
        // A fresh task (every other one that does not own the stack was
        // evicted, so has frames saved): clear where its first frames
        // will go (step 2).
        clear_for_fresh(s);
        return;
    }
    debug_assert!(!f.buf.get().is_null(), "saved frames have a buffer");
    // SAFETY: saved frames are in `buf`, `cap` bytes (`evict`); worker-only
    // (task invariant 2).
    let b = unsafe { std::slice::from_raw_parts(f.buf.get(), f.cap.get() as usize) };
    // SAFETY: the frames were copied from `top - len..top` of this same
    // stack (8-aligned, mapped); the stack's previous owner was evicted,
    // so those bytes are nobody's now and get exactly the contents they
    // had when `task` switched out.
    let frames = unsafe { std::slice::from_raw_parts_mut((s.raw.top - len) as *mut u64, len / 8) };
    if saved & PLAIN != 0 {
        // SAFETY: the plain copy is `len` bytes at the start of `buf`, and
        // `frames` is `len` bytes of the stack (the same bytes as above).
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), frames.as_mut_ptr().cast::<u8>(), len) };
    } else {
        unpack(b, frames);
    }
    bump(&counters.copy_ins, 1);
    bump(&counters.copy_in_bytes, len as u64);
}

/// How much of a shared stack's top a fresh coroutine finds zeroed.
const FRESH_CLEAR: usize = 4096;

/// Zeroes the top [`FRESH_CLEAR`] bytes of `s` for a fresh coroutine.
///
/// A frame's slots that its function has not written yet hold whatever
/// the stack held before: on a shared stack, the frames of the coroutines
/// that used it earlier. When the new coroutine parks and is evicted,
/// those stale words are copied out with its frames, and [`pack`] can
/// leave out only zeros: a parked push-server reader kept about 990 bytes
/// with stale words and about 230 fewer without. A fresh coroutine's
/// first frames are the ones it keeps longest (its entry, its loop), so
/// this is where clearing pays.
fn clear_for_fresh(s: &SharedStack) {
    let start = s.raw.top.saturating_sub(FRESH_CLEAR).max(s.raw.bottom);
    // SAFETY: `start..top` lies in the usable part of `s`, which is mapped
    // and has no owner now (acquire evicted it, or it finished): nobody's
    // frames are there, and the fresh coroutine has not started.
    unsafe { std::ptr::write_bytes(start as *mut u8, 0, s.raw.top - start) };
}

/// After a shared-stack coroutine switched out: if it lends nothing, the
/// coroutines waiting for its stack may run again (step 6).
pub(crate) fn switched_out(task: &Task, ready: &RefCell<VecDeque<Arc<Task>>>) {
    let Some(s) = task.frames.stack() else {
        return;
    };
    if task.frames.lends() {
        return;
    }
    let mut w = s.waiting.borrow_mut();
    if !w.is_empty() {
        ready.borrow_mut().extend(w.drain(..));
    }
}

/// Step 5: a finished coroutine gives its stack up.
pub(crate) fn finished(task: &Task, counters: &WorkerCounters) {
    let Some(s) = task.frames.stack() else {
        return;
    };
    let owner = s.owner.borrow_mut().take();
    debug_assert!(owner.as_deref().is_some_and(|o| std::ptr::eq(o, task)));
    // Worker-only field (task invariant 2); the coroutine is done.
    let freed = task.frames.free_buf();
    bump_held(&counters.saved_stack_bytes, -(freed as i64));
    // Dropped last: it may be the last reference but one to `task`.
    drop(owner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips() {
        for len in [0usize, 1, 3, 4, 5, 63, 64, 65, 70, 200] {
            // Zeros, repeats near and far, and fresh literals.
            let frames: Vec<u64> = (0..len as u64)
                .map(|i| match i % 5 {
                    0 => 0,
                    1 => 0xdead_beef,
                    2 => i * 0x1234_5678_9abc,
                    3 => (i / 20) << 40,
                    _ => u64::MAX - i,
                })
                .collect();
            let mut out = Vec::new();
            pack(&frames, &mut out);
            assert!(out.len() <= len.div_ceil(4) + 8 * len);
            let mut back = vec![0xFFu64; len];
            unpack(&out, &mut back);
            assert_eq!(back, frames, "len {len}");
        }
        let mut out = Vec::new();
        pack(&[0; 64], &mut out);
        assert_eq!(out.len(), 16);
        pack(&[7; 64], &mut out);
        assert_eq!(out.len(), 16 + 8 + 63);
    }

    #[test]
    fn buffers_fit_malloc_chunks() {
        assert_eq!(buffer_size(1), 24);
        assert_eq!(buffer_size(24), 24);
        assert_eq!(buffer_size(25), 40);
        assert_eq!(buffer_size(800), 808);
    }

    /// The measured margin covers the switch, and is small when optimised.
    #[test]
    fn margin_covers_the_switch() {
        let pool = super::super::pool_for(64 << 10);
        let s = new_stack(pool).unwrap();
        let m = measure_margin(s);
        assert!(m > MARGIN_SLACK, "nothing measured below the stack pointer");
        assert!(m <= 2048, "margin {m} is implausibly large");
        if !cfg!(debug_assertions) {
            assert!(
                m <= 256,
                "margin {m} is larger than expected in an optimised build"
            );
        }
    }
}
