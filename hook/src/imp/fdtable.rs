//! Per-fd state for the sockets the hook has seen created.
//!
//! # Invariants
//!
//! 1. The table is indexed by fd number and its slots are never freed:
//!    the slots of fds below [`DIRECT`] are one static array (zeroed
//!    `.bss`: a page of it becomes resident only when a socket with a
//!    number in it is tracked), and above it pages of [`PAGE`] slots are
//!    allocated on first use and leaked. A
//!    hook that races with a `close` of the same number (a bug in the
//!    program, as in C) therefore reads a stale or reset slot, never freed
//!    memory. Every field is an atomic or behind a lock.
//! 2. A slot describes a socket only while `TRACKED` is set. `socket`,
//!    `socketpair`, `accept`/`accept4` and the `dup` family set it, and
//!    `close` (and `dup2`/`dup3` over a tracked number) clears the whole
//!    slot *before* the number is released to the kernel, so a later
//!    object with the same number starts from a clean slot. Fds the hook
//!    never saw created (inherited ones, regular files, pipes) are never
//!    tracked and pass straight through every hook.
//! 3. `USER_NONBLOCK` is the blocking flag the program set (`SOCK_NONBLOCK`,
//!    `fcntl(F_SETFL)`, `ioctl(FIONBIO)`), kept apart from the real
//!    `O_NONBLOCK`. `GORO_NONBLOCK` says the hook turned `O_NONBLOCK` on
//!    underneath a socket the program thinks is blocking; from then on the
//!    real flag stays on and the hooks emulate blocking, by parking in a
//!    coroutine and by `poll(2)` on a plain thread.
//! 4. The reactor registration of a slot ([`HookReg`]) is made the first
//!    time a coroutine has to wait on the socket, and shared (an `Arc`) by
//!    every waiter. The slot's lock is held only to clone or take it,
//!    never across a park. It is deregistered (`EPOLL_CTL_DEL`) while the
//!    fd is still open: `close` takes it out of the slot, and if a waiter
//!    still holds it (a program that closes a socket another coroutine is
//!    blocked on) the real `close` is deferred to the last holder, so the
//!    number cannot be reused, and an `EPOLL_CTL_DEL` never hits another
//!    file, while the registration lives. The waiter sees the close and
//!    fails with `EBADF`.

use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use goro_runtime::reactor::{Interest, Registration};
use parking_lot::Mutex;

use super::real;

/// The slot describes a socket the hook saw created.
pub(crate) const TRACKED: u32 = 1;
/// A byte stream (`SOCK_STREAM`): blocking sends send everything.
pub(crate) const STREAM: u32 = 2;
/// The program asked for non-blocking IO on this fd.
pub(crate) const USER_NONBLOCK: u32 = 4;
/// The hook turned the real `O_NONBLOCK` on.
pub(crate) const GORO_NONBLOCK: u32 = 8;

/// Fds below this have their slot in [`DIRECT_SLOTS`]: finding it is one
/// bounds check and an offset from a static address, so a hook's check of
/// a low fd is a single load of its flags word (the hot path: see `io`).
pub(crate) const DIRECT: usize = 4096;
/// Slots per page (fds from [`DIRECT`] up).
pub(crate) const PAGE: usize = 1024;
const PAGES: usize = 1024;
/// Fds at or above this number are never tracked (they pass through).
pub(crate) const MAX_FD: usize = PAGE * PAGES;

/// One fd's state.
pub(crate) struct FdState {
    flags: AtomicU32,
    /// Receive and send timeouts in nanoseconds (index: `Interest as
    /// usize`), 0 for none.
    timeouts: [AtomicU64; 2],
    reg: Mutex<Option<Arc<HookReg>>>,
}

/// The slots of fds below [`DIRECT`] (about 160 KiB of `.bss`, resident
/// only where used).
static DIRECT_SLOTS: [FdState; DIRECT] = [const { FdState::new() }; DIRECT];
/// Pages of slots for the fds from [`DIRECT`] up (page `i` holds fds
/// `i * PAGE ..`; the pages below `DIRECT` stay null).
static TABLE: [AtomicPtr<FdState>; PAGES] = [const { AtomicPtr::new(ptr::null_mut()) }; PAGES];

impl FdState {
    const fn new() -> FdState {
        FdState {
            flags: AtomicU32::new(0),
            timeouts: [AtomicU64::new(0), AtomicU64::new(0)],
            reg: Mutex::new(None),
        }
    }

    /// The flags (`TRACKED`, ...).
    #[inline]
    pub(crate) fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, bits: u32) {
        self.flags.fetch_or(bits, Ordering::AcqRel);
    }

    pub(crate) fn clear(&self, bits: u32) {
        self.flags.fetch_and(!bits, Ordering::AcqRel);
    }

    /// The timeout of one direction in nanoseconds, 0 for none.
    pub(crate) fn timeout(&self, dir: Interest) -> u64 {
        self.timeouts[dir as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn set_timeout(&self, dir: Interest, nanos: u64) {
        self.timeouts[dir as usize].store(nanos, Ordering::Relaxed);
    }

    /// Starts tracking a socket just created with `flags`
    /// (invariant 2); drops whatever a close the hook did not see left.
    pub(crate) fn start(&self, flags: u32) {
        self.drop_registration();
        self.timeouts[0].store(0, Ordering::Relaxed);
        self.timeouts[1].store(0, Ordering::Relaxed);
        self.flags.store(flags | TRACKED, Ordering::Release);
    }

    /// Forgets the socket (invariant 2) and hands back its registration,
    /// for `close` to end (invariant 4).
    pub(crate) fn reset(&self) -> Option<Arc<HookReg>> {
        self.flags.store(0, Ordering::Release);
        self.timeouts[0].store(0, Ordering::Relaxed);
        self.timeouts[1].store(0, Ordering::Relaxed);
        if super::forked() {
            // The lock may have been held by a thread that does not exist
            // in this child; leave the registration alone (it belongs to
            // the parent's reactor).
            return None;
        }
        self.reg.lock().take()
    }

    /// Resets the slot after the fd was found closed or replaced (by
    /// `dup2`): ends the registration at once without closing anything.
    pub(crate) fn drop_registration(&self) {
        if super::forked() {
            return;
        }
        let old = self.reg.lock().take();
        if let Some(r) = old {
            // If a waiter still holds it, it ends with the last holder,
            // which closes nothing (`close_on_drop` stays false).
            drop(r);
        }
    }

    /// Drops the registration if no one waits on it: for an fd the program
    /// made non-blocking, so that it can hand it to code that registers it
    /// itself (goro's own sockets, `goro::net::wait_readable`).
    pub(crate) fn release_idle_registration(&self) {
        if super::forked() {
            return;
        }
        let mut g = self.reg.lock();
        if g.as_ref().is_some_and(|r| Arc::strong_count(r) == 1) {
            let r = g.take();
            drop(g);
            drop(r);
        }
    }

    /// The registration, made on first use (invariant 4).
    pub(crate) fn registration(&self, fd: RawFd) -> std::io::Result<Arc<HookReg>> {
        let mut g = self.reg.lock();
        if let Some(r) = &*g {
            return Ok(r.clone());
        }
        // SAFETY: the fd is a tracked, open socket; the registration is
        // dropped before the fd is closed (invariant 4), and `HookReg`
        // closes it only after dropping the registration.
        let reg = unsafe { Registration::new(fd) }?;
        let r = Arc::new(HookReg {
            reg: ManuallyDrop::new(reg),
            fd,
            close_on_drop: AtomicBool::new(false),
        });
        *g = Some(r.clone());
        Ok(r)
    }

    /// Copies what `dup` shares into `other` (a new number for the same
    /// socket): the flags and timeouts, not the registration.
    pub(crate) fn copy_to(&self, other: &FdState) {
        other.start(self.flags() & !TRACKED);
        for i in 0..2 {
            other.timeouts[i].store(self.timeouts[i].load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A tracked socket's reactor registration (invariant 4).
pub(crate) struct HookReg {
    reg: ManuallyDrop<Registration>,
    fd: RawFd,
    close_on_drop: AtomicBool,
}

impl HookReg {
    /// The registration to wait on.
    pub(crate) fn reg(&self) -> &Registration {
        &self.reg
    }

    /// Whether the program closed the fd while this was held.
    pub(crate) fn closed(&self) -> bool {
        self.close_on_drop.load(Ordering::Acquire)
    }

    /// Ends a registration taken out of its slot by `close`, then closes
    /// the fd; if waiters still hold it, the last of them does both and
    /// this returns 0 (invariant 4).
    pub(crate) fn close(this: Arc<HookReg>) -> libc::c_int {
        let fd = this.fd;
        this.close_on_drop.store(true, Ordering::Release);
        match Arc::try_unwrap(this) {
            Ok(last) => {
                last.close_on_drop.store(false, Ordering::Relaxed);
                drop(last);
                // SAFETY: the fd is ours to close (the caller is `close`).
                unsafe { real::close(fd) }
            }
            Err(shared) => {
                drop(shared);
                0
            }
        }
    }
}

impl Drop for HookReg {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.reg) };
        if self.close_on_drop.load(Ordering::Acquire) {
            let e = super::errno();
            // SAFETY: the program closed this fd while we held it; the
            // real close was deferred to us (invariant 4).
            unsafe { real::close(self.fd) };
            super::set_errno(e);
        }
    }
}

/// The slot of `fd`, if its page exists.
#[inline(always)]
pub(crate) fn get(fd: RawFd) -> Option<&'static FdState> {
    // A negative fd becomes a huge index and fails both checks.
    let i = fd as u32 as usize;
    if i < DIRECT {
        return Some(&DIRECT_SLOTS[i]);
    }
    get_paged(i)
}

/// The static slot of `i < DIRECT`.
#[inline(always)]
pub(crate) fn direct(i: usize) -> &'static FdState {
    &DIRECT_SLOTS[i]
}

#[inline(never)]
fn get_paged(i: usize) -> Option<&'static FdState> {
    if i >= MAX_FD {
        return None;
    }
    let page = TABLE[i / PAGE].load(Ordering::Acquire);
    if page.is_null() {
        return None;
    }
    // SAFETY: a non-null page holds PAGE slots and is never freed
    // (invariant 1).
    Some(unsafe { &*page.add(i % PAGE) })
}

/// The slot of `fd` if it is tracked.
#[inline(always)]
pub(crate) fn tracked(fd: RawFd) -> Option<(&'static FdState, u32)> {
    let s = get(fd)?;
    let f = s.flags();
    (f & TRACKED != 0).then_some((s, f))
}

/// The slot of `fd`, allocating its page if needed (`None` above
/// [`MAX_FD`]).
pub(crate) fn get_or_create(fd: RawFd) -> Option<&'static FdState> {
    super::install_fork_handler();
    if let Some(s) = get(fd) {
        return Some(s);
    }
    let i = usize::try_from(fd).ok()?;
    if !(DIRECT..MAX_FD).contains(&i) {
        return None;
    }
    // Built on the heap one slot at a time: a page is too large for a
    // coroutine's stack.
    let page: Box<[FdState]> = (0..PAGE).map(|_| FdState::new()).collect();
    let p = Box::into_raw(page) as *mut FdState;
    match TABLE[i / PAGE].compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {}
        Err(_) => {
            // SAFETY: we just made `p` from a Box of PAGE slots and nobody
            // else saw it.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, PAGE)) });
        }
    }
    get(fd)
}
