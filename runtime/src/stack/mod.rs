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
//!    `madvise(MADV_GUARD_INSTALL)`. Such a guard lives in the page tables,
//!    not in a mapping of its own, so a slab of 256 guarded stacks is still
//!    one mapping and a million stacks need about 4,000. An overflow faults
//!    on the guard page and the SIGSEGV handler (in `overflow.rs`, on an
//!    alternate signal stack) prints which coroutine overflowed and its
//!    stack size, then aborts.
//! 3. On older kernels (or with `GORO_STACK_GUARDS=mapped`) guard pages
//!    are made with `mprotect`, which splits the slab's mapping: each costs
//!    two mappings, so only a *guard budget* of stacks gets one (a quarter
//!    of `vm.max_map_count` in mappings: about 8,000 stacks on a default
//!    kernel). Beyond the budget, slabs hold 256 stacks with a guard page
//!    only under the lowest one. Each of the other stacks has a 16-byte
//!    *canary* just below its lowest usable byte, inside the top 64
//!    reserved bytes of the stack beneath it (a page that is resident
//!    anyway, so the canary costs no memory). The worker checks the canary
//!    every time the coroutine switches out, and the SIGSEGV handler also
//!    treats a fault taken with the stack pointer just below the running
//!    coroutine's stack as an overflow. Either way the process aborts with
//!    the coroutine's name and stack size.
//!
//! Light guards are also faster: installing one takes the address-space
//! lock shared, where `mprotect` takes it exclusively and stalls every
//! page fault of the other workers (measured as the largest kernel cost of
//! starting 100k coroutines in a fresh process), and a guarded stack needs
//! no canary check, which touched a second, cold page on every switch.
//!
//! # Limits, honestly
//!
//! A guarded stack's overflow is caught at the faulting instruction, as
//! long as a frame does not jump over the guard page (a frame larger than a
//! page that is never touched near its bottom; the compiler's stack probes
//! prevent that for Rust code). Under the `mapped` layout, an unguarded
//! stack's overflow is caught at the next switch (or at the first fault),
//! so a deep recursion that overflows and returns before switching may
//! already have written into the top 64 bytes of the neighbouring stack
//! (the neighbour's canary area and unused reserve) or, with a frame larger
//! than 64 bytes, into the neighbour's oldest frames. The process still
//! aborts with a message instead of running on silently, but the
//! neighbour's memory may be damaged before that. Code that recurses
//! deeply should get a larger stack (`Builder::stack_size`) or run early,
//! while stacks are still guarded.
//!
//! Stacks are never unmapped: a pool keeps its high-water mark. The
//! memory of a parked coroutine is the pages its stack has touched (usually
//! one, 4 KiB) plus its task header.

mod overflow;
mod pool;

pub(crate) use overflow::{check_canary, install_handler, prepare_thread};
pub(crate) use pool::{Pool, RawStack, choose_guards, pool_for, prepare, total_stacks};

use corosensei::stack::StackPointer;

/// Smallest stack `Builder::stack_size` accepts: 16 KiB leaves room for the
/// runtime's own frames plus printing a panic message.
pub const MIN_STACK_SIZE: usize = 16 << 10;
/// Largest stack `Builder::stack_size` accepts (1 GiB of address space).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// Default stack size: 64 KiB, overridable with `GORO_STACK_SIZE` or
/// `Config::stack_size`.
pub const DEFAULT_STACK_SIZE: usize = 64 << 10;

/// A pooled stack lent to one coroutine (the handle corosensei holds).
pub(crate) struct Stack {
    pub(crate) raw: RawStack,
}

// SAFETY: `raw` describes memory owned by the pool and lent exclusively to
// this handle: `top` and `guard` are 16-byte aligned, the usable part
// (`bottom..top`) is at least `MIN_STACK_SIZE` bytes, and overflow below
// `bottom` is caught as described in the module docs (a guard page, light
// or, within the budget, mapped; otherwise a canary checked at every switch
// and the fault handler). That last case is weaker than corosensei's stated
// requirement of a guard page for every stack; the module docs say what it
// costs.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.raw.top).expect("stack top is never null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.raw.guard).expect("stack limit is never null")
    }
}

/// The usable stack size of a task's pool (for messages).
pub(crate) fn pool_size_of(task: &crate::task::Task) -> usize {
    task.pool.size()
}
