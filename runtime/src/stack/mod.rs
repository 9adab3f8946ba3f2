//! Coroutine stacks: pooled, slab-allocated, overflow-checked.
//!
//! # Why not one mapping per stack
//!
//! A stack with its own `mprotect`ed guard page is two kernel mappings
//! (VMAs): the guard (`PROT_NONE`) and the stack. A default Linux kernel allows 65,530
//! mappings per process (`vm.max_map_count`), so that design stops near
//! 32,000 coroutines, which is exactly where `may` fails. goro must hold a
//! million. It also must not call `mmap` on every spawn: a fresh mapping and
//! its `munmap` cost about 8.5 µs here, a pooled stack about 9 ns.
//!
//! # The strategy
//!
//! 1. Stacks are carved from *slabs*: one `mmap` (with `MAP_NORESERVE`, and
//!    `MADV_NOHUGEPAGE` so that transparent huge pages never make a 64 KiB
//!    stack resident at 2 MiB granularity) holds many stacks of one size.
//!    A stack goes back to its pool's free list when its coroutine ends and
//!    is reused, so spawn does no system call in the steady state.
//! 2. *Light guard pages* (the default, Linux 6.13 and later): every stack
//!    has a guard page below it, installed with
//!    `madvise(MADV_GUARD_INSTALL)` by the worker that first runs a
//!    coroutine on it. Such a guard lives in the page tables, not in a
//!    mapping of its own, so a slab of 256 guarded stacks is still one
//!    mapping and a million stacks need about 4,000.
//! 3. *Mapped guard pages* (kernels before 6.13, or
//!    `GORO_STACK_GUARDS=mapped`): guard pages are made with `mprotect`,
//!    which splits the slab's mapping, so each guarded stack costs two
//!    mappings. goro spends at most a quarter of `vm.max_map_count` on
//!    them: a *guard budget* of `vm.max_map_count / 8` stacks (8,191 on a
//!    default kernel), for the whole process and all stack sizes. Beyond
//!    it, [`Builder::spawn`](crate::Builder::spawn) fails with
//!    `OutOfMemory` and a message naming the limit and the ways out
//!    (Linux 6.13 or later; a larger `vm.max_map_count`, N of which allow
//!    N / 8 guarded stacks), and spawning succeeds again as soon as
//!    coroutines finish and give their guarded stacks back.
//! 4. *Canary stacks*, only behind an `unsafe` opt-in
//!    ([`Builder::allow_unguarded_stack`](crate::Builder::allow_unguarded_stack),
//!    [`Config::allow_unguarded_stacks`](crate::Config::allow_unguarded_stacks))
//!    and only once a mapped guard budget is spent: slabs of 256 stacks
//!    with a guard page only under the lowest one. Each of the other
//!    stacks has a 16-byte *canary* just below its lowest usable byte,
//!    inside the top 64 reserved bytes of the stack beneath it (a page that
//!    is resident anyway, so the canary costs no memory). The worker checks
//!    the canary every time the coroutine switches out, and the SIGSEGV
//!    handler also treats a fault taken with the stack pointer below the
//!    running coroutine's stack as an overflow.
//!
//! An overflow into a guard page faults at the instruction that touched
//! it; the SIGSEGV handler (in `overflow.rs`, on an alternate signal stack)
//! prints which coroutine overflowed and its stack size, then aborts.
//!
//! Light guards are also faster: installing one takes the address-space
//! lock shared, where `mprotect` takes it exclusively and stalls every
//! page fault of the other workers (measured as the largest kernel cost of
//! starting 100k coroutines in a fresh process), and a guarded stack needs
//! no canary check, which touched a second, cold page on every switch.
//!
//! # The guarantee
//!
//! *Safe code never runs a coroutine on a stack without a guard page of its
//! own directly below the stack's lowest usable byte*, whatever the kernel
//! and mode:
//!
//! - light guards (Linux 6.13+, default): every stack, with no budget. If
//!   the kernel refuses to install one when the coroutine first runs (out
//!   of memory for page tables), an `mprotect`ed guard stands in within the
//!   budget, or the process aborts with a message; it never runs the
//!   coroutine unguarded.
//! - mapped guards (older kernels, `GORO_STACK_GUARDS=mapped`): every
//!   stack, up to the budget; beyond it spawning fails with an error,
//!   never with an unguarded stack.
//! - the `unsafe` opt-ins: under mapped guards, beyond the budget, a
//!   canary stack, with the weaker detection below. It is the opt-in's
//!   caller who promises that no coroutine so spawned overflows.
//!
//! A guard page catches an overflow as long as no frame jumps over the
//! page without touching it. Rust's stack probes touch every page of a
//! frame larger than a page, in order, so Rust code cannot; C code
//! compiled without `-fstack-clash-protection` could. An overflow caught
//! this way aborts the process with the coroutine's name and stack size.
//!
//! A canary stack's overflow is caught only at the next switch (or at the
//! first fault), and only if the overflow wrote the canary's 16 bytes. A
//! recursion that overflows and returns before switching may already have
//! written into the top 64 bytes of the neighbouring stack or, with a
//! frame larger than 64 bytes, into the neighbour's live frames; a single
//! large frame that reaches past the canary without writing it (a big,
//! partly initialised local array) corrupts the neighbour with nothing
//! detected at all. That is undefined behaviour, hence `unsafe`: the
//! opt-in is for code whose stack use is known to fit, on kernels where
//! the alternative is not to run at all.
//!
//! There is deliberately no environment variable for canary stacks: the
//! environment is chosen by whoever runs a program, not by the code whose
//! soundness depends on the choice, so it cannot carry an `unsafe`
//! promise.
//!
//! A pool's memory goes back after a burst: pooled stacks beyond a small
//! reserve give their pages back to the OS (`madvise(MADV_DONTNEED)`)
//! from a worker about to go idle, as Go's scavenger does (pool invariant
//! 7), and under light guards the clean ones beyond a second reserve are
//! unmapped, list entries and page tables with them (invariant 9). Under
//! mapped guards stacks are never unmapped: the pool keeps its high-water
//! mark of address space and the guard budget it spent. The memory of a
//! parked coroutine is the pages its stack has touched (usually one,
//! 4 KiB) plus its task header; on a shared stack (`shared.rs`) it is the
//! bytes of its frames, copied to the heap, instead.

mod overflow;
mod pool;
pub(crate) mod shared;
mod sweep_gate;
pub(crate) mod trim;

pub(crate) use overflow::{check_canary, install_handler, prepare_thread};
pub(crate) use pool::{
    Pool, RawStack, bind_shard, choose_guards, pool_for, prepare, scavenge, scavenge_due_in,
    scavenged_bytes, total_stacks,
};

pub(crate) use shared::Frames;

use corosensei::stack::StackPointer;

/// Smallest stack `Builder::stack_size` accepts: 16 KiB leaves room for the
/// runtime's own frames plus printing a panic message.
pub const MIN_STACK_SIZE: usize = 16 << 10;
/// Largest stack `Builder::stack_size` accepts (1 GiB of address space).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// Default stack size: 64 KiB, overridable with `GORO_STACK_SIZE` or
/// `Config::stack_size`.
pub const DEFAULT_STACK_SIZE: usize = 64 << 10;

/// A pooled stack lent to one coroutine (the handle corosensei holds):
/// only its two ends, so that the coroutine in every task header stays
/// small; the whole `RawStack` (what goes back to the pool) is the task's
/// `raw_stack`.
pub(crate) struct Stack {
    top: usize,
    guard: usize,
}

impl Stack {
    pub(crate) fn new(raw: &RawStack) -> Stack {
        Stack {
            top: raw.top,
            guard: raw.guard,
        }
    }
}

// SAFETY: `top` and `guard` come from a `RawStack` that describes memory owned by the pool and lent exclusively to
// this handle: `top` and `guard` are 16-byte aligned and the usable part
// (`bottom..top`) is at least `MIN_STACK_SIZE` bytes. corosensei requires a
// guard page below `limit` so that an overflow faults instead of writing
// past the stack; the module docs' guarantee provides it: on light guards
// every stack has one (installed before the coroutine first runs, or the
// process aborts), on mapped guards every stack safe code can get has one
// (beyond the budget, spawning fails), and a canary stack without one
// exists only for a coroutine whose spawner promised, through an `unsafe`
// opt-in, that it never overflows, which is the same promise corosensei's
// requirement protects.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top).expect("stack top is never null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.guard).expect("stack limit is never null")
    }
}
