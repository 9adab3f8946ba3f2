//! The epoll backend: each fd registered once, edge-triggered for both
//! directions, and one `epoll_wait` per wait (see the parent module's
//! invariants; this file holds only the system calls).
//!
//! # Batching
//!
//! A wait takes up to [`EVENTS_PER_POLL`] events at once and delivers them
//! in one pass: each event costs a slab lookup under one lock and the
//! wake-up of its waiters. The busy workers' non-blocking polls are spaced
//! by `BUSY_IO_POLL_INTERVAL_US` (`scheduler/idle.rs`) and skipped while an
//! idle worker already sleeps in `epoll_wait`, so a loaded runtime makes
//! one `epoll_wait` per batch of events, not one per scheduling round.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use parking_lot::Mutex;

use super::cvt;
use crate::wake_latch::WakeLatch;

/// The epoll key of the wake-up eventfd.
const WAKE_KEY: u64 = u64::MAX;
/// Events taken per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;
/// What every fd is registered for: both directions, edge-triggered.
const FD_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET) as u32;

pub(super) struct Epoll {
    epoll: OwnedFd,
    wake: OwnedFd,
    /// Whether a wake-up is pending in `wake`, so that a burst of
    /// `notify` calls costs one write (`wake_latch.rs`).
    latch: WakeLatch,
    events: Mutex<Vec<libc::epoll_event>>,
}

/// Readiness reported for one registration key: `(key, readable, writable)`.
/// `(key, readable, writable, hang-up)`: the last is `EPOLLHUP`,
/// `EPOLLERR`, `EPOLLRDHUP` or `EPOLLPRI` (`read_seq.rs`).
pub(super) type Ready = (u64, bool, bool, bool);

impl Epoll {
    pub(super) fn new() -> io::Result<Epoll> {
        // SAFETY: plain system calls; each returned fd is checked and then
        // owned by exactly one `OwnedFd`.
        unsafe {
            let epoll = OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?);
            let wake = OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?);
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: WAKE_KEY,
            };
            cvt(libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                wake.as_raw_fd(),
                &mut ev,
            ))?;
            Ok(Epoll {
                epoll,
                wake,
                latch: WakeLatch::new(),
                events: Mutex::new(Vec::with_capacity(EVENTS_PER_POLL)),
            })
        }
    }

    /// `EPOLL_CTL_ADD` or `EPOLL_CTL_MOD` of `fd` under `key`.
    pub(super) fn ctl(&self, op: libc::c_int, fd: RawFd, key: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: FD_EVENTS,
            u64: key as u64,
        };
        // SAFETY: `ev` is a live, valid event. The kernel checks `fd`
        // itself; no memory of ours depends on it (events find their
        // source by key, the parent module's invariant 4).
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// `EPOLL_CTL_DEL` of `fd`.
    pub(super) fn del(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL; the kernel
        // checks `fd` itself.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    pub(super) fn notify(&self) {
        self.latch.notify(|| {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        });
    }

    /// One `epoll_wait` of up to `timeout`; hands each IO event to
    /// `deliver` (the whole batch in one pass). `None` if another thread
    /// is polling.
    pub(super) fn poll(
        &self,
        timeout: Option<Duration>,
        mut deliver: impl FnMut(Ready),
    ) -> Option<()> {
        let mut events = self.events.try_lock()?;
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
        };
        events.clear();
        // SAFETY: the buffer has capacity for EVENTS_PER_POLL events and
        // the kernel writes at most that many; we set the length to what
        // it reports.
        unsafe {
            let n = libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS_PER_POLL as libc::c_int,
                ms,
            );
            if n <= 0 {
                return Some(());
            }
            events.set_len(n as usize);
        }
        for ev in events.iter() {
            let (flags, key) = (ev.events, ev.u64);
            if key == WAKE_KEY {
                // Drain the eventfd, then clear the flag: the order that
                // loses no wake-up (`wake_latch.rs`).
                self.latch.drained(|| {
                    let mut buf = 0u64;
                    // SAFETY: reading 8 bytes into a live u64 from our
                    // eventfd.
                    unsafe { libc::read(self.wake.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
                });
                continue;
            }
            let err = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
            let readable =
                flags & ((libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 | err) != 0;
            let writable = flags & (libc::EPOLLOUT as u32 | err) != 0;
            let hup = flags & ((libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 | err) != 0;
            deliver((key, readable, writable, hup));
        }
        Some(())
    }
}
