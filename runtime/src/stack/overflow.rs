//! Catching stack overflow: the SIGSEGV handler and the canary check.
//!
//! # Invariants
//!
//! 1. The running coroutine is found through the thread's runtime context
//!    (`context::current_task`, set by the worker around every `resume`),
//!    and its stack bounds through the task's `raw_stack`. Both are plain
//!    thread-local and task reads, safe in a signal handler on that thread.
//! 2. The handler runs on an alternate signal stack (every worker gets one
//!    in `prepare_thread`), so it works although the faulting stack is
//!    exhausted. It allocates nothing and takes no lock: it formats into a
//!    buffer on its own stack and writes it with `write(2)`.
//! 3. A fault that is not a coroutine overflow is handed back: the handler
//!    reinstates the previous disposition and returns, the instruction
//!    faults again, and the previous handler (std's, or the default) sees it.

use std::fmt::Write as _;
use std::sync::OnceLock;

use super::RawStack;
use crate::task::Task;

/// Written below each stack of a canary slab but the lowest (the bytes
/// spell "goro_stk").
pub(crate) const CANARY: [u64; 2] = [0x6b74_735f_6f72_6f67, 0x6b74_735f_6f72_6f67];

struct OldAction(libc::sigaction);
// SAFETY: written once before the handler is installed, then only read.
unsafe impl Sync for OldAction {}
// SAFETY: plain data, as above.
unsafe impl Send for OldAction {}

static OLD_SEGV: OnceLock<OldAction> = OnceLock::new();

/// Aborts with a message if the canary under `raw` was overwritten.
#[inline]
pub(crate) fn check_canary(raw: &RawStack, task: &Task) {
    if raw.canary == 0 {
        return;
    }
    // SAFETY: `raw.canary` points at 16 bytes inside a live slab mapping:
    // the stack is bound to `task`, and only stacks off every list, bound
    // to no task, are ever unmapped; canary slabs never are (pool
    // invariants 1, 2 and 9).
    let seen = unsafe { std::ptr::read_volatile(raw.canary as *const [u64; 2]) };
    if seen != CANARY {
        report_and_abort(task, raw.top - raw.bottom, "its canary was overwritten");
    }
}

/// Installs the SIGSEGV handler once per process.
pub(crate) fn install_handler() {
    OLD_SEGV.get_or_init(|| {
        // SAFETY: sigaction with a zeroed struct is the documented way to
        // build one; the handler we install follows invariant 2.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_segv as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGSEGV, &new, &mut old);
            OldAction(old)
        }
    });
}

/// Gives the calling worker thread an alternate signal stack if it has none.
pub(crate) fn prepare_thread() {
    const ALT_SIZE: usize = 64 << 10;
    // SAFETY: querying and then setting this thread's signal stack; the new
    // stack is a fresh mapping that we never unmap (worker threads live for
    // the rest of the process).
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut old) != 0 {
            return;
        }
        if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= libc::MINSIGSTKSZ {
            return;
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            ALT_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        let st = libc::stack_t {
            ss_sp: p,
            ss_flags: 0,
            ss_size: ALT_SIZE,
        };
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn fault_sp(ctx: *mut libc::c_void) -> usize {
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    unsafe {
        (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RSP as usize] as usize
    }
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn fault_sp(ctx: *mut libc::c_void) -> usize {
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    unsafe { (*(ctx as *const libc::ucontext_t)).uc_mcontext.sp as usize }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn fault_sp(_ctx: *mut libc::c_void) -> usize {
    usize::MAX
}

extern "C" fn on_segv(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if let Some(task) = crate::context::current_task() {
        let raw = task.raw_stack.get();
        // SAFETY: the kernel passes a valid siginfo_t to SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        let sp = fault_sp(ctx);
        const NEAR: usize = 1 << 20;
        let in_guard = addr >= raw.guard && addr < raw.bottom;
        let just_below = addr < raw.bottom && addr + NEAR > raw.bottom;
        // A running coroutine's stack pointer is never below its stack: if
        // it is, at any distance, the coroutine overflowed (on an unguarded
        // stack a recursion that never switches can run through several
        // neighbouring stacks before it faults on a slab's guard page).
        let sp_below = sp < raw.bottom && raw.bottom - sp <= crate::stack::MAX_STACK_SIZE;
        if in_guard || just_below || sp_below {
            let size = task.stack_size();
            report_and_abort(task, size, "it hit the end of its stack");
        }
    }
    // Invariant 3: not ours. Restore the previous disposition and return.
    if let Some(old) = OLD_SEGV.get() {
        // SAFETY: reinstating the disposition saved at install time.
        unsafe { libc::sigaction(libc::SIGSEGV, &old.0, std::ptr::null_mut()) };
    }
}

/// A fixed buffer that formats without allocating (invariant 2).
struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl std::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn report_and_abort(task: &Task, size: usize, how: &str) -> ! {
    let mut buf = Buf {
        bytes: [0; 512],
        len: 0,
    };
    let name = task.name().unwrap_or("<unnamed>");
    let _ = write!(
        buf,
        "\ngoro: coroutine '{name}' (id {}) has overflowed its stack of {size} bytes ({how}); \
         give it a larger stack with goro::Builder::stack_size or GORO_STACK_SIZE\n",
        task.id()
    );
    // SAFETY: writing our own buffer to stderr, then aborting; both are
    // async-signal-safe.
    unsafe {
        libc::write(2, buf.bytes.as_ptr().cast(), buf.len);
        libc::abort();
    }
}
