//! The IO reactor: readiness events from epoll, delivered by unparking
//! whoever waits on a file descriptor.
//!
//! # Why raw epoll and not the `polling` crate
//!
//! `polling`'s epoll backend re-arms a timerfd and its notifier around every
//! wait: about five system calls per `wait`, measured as 12% of a channel
//! ping-pong (the busy workers' periodic poll) and a large share of echo
//! latency. The runtime needs little: edge-triggered registration once per
//! fd, millisecond timeouts (the timing wheel has millisecond ticks), and a
//! wake-up. Here a wait is one `epoll_wait`, and waking the poller is at most
//! one `eventfd` write per wait cycle.
//!
//! # Invariants
//!
//! 1. Each fd is registered once, edge-triggered for both directions, for
//!    as long as its [`Registration`] lives. A reader and a writer can wait
//!    on the same fd at once (full duplex from two coroutines).
//! 2. Each direction has a *readiness sequence* that the reactor bumps on
//!    every edge. An operation reads the sequence, tries the syscall, and on
//!    `WouldBlock` waits until the sequence moves. An edge that arrives
//!    between the syscall and the wait has already moved it, so no edge is
//!    lost and no flag needs clearing.
//! 3. Dropping a `Registration` deletes the fd from epoll, marks the
//!    source closed and wakes every waiter, all before returning, so the
//!    owner can close the fd only after nobody waits on it and no event for
//!    it can be mistaken for a later fd with the same number.
//! 4. Events are looked up by key in a slab under a lock, never by pointer,
//!    so an event that races with a deregistration finds nothing instead of
//!    freed memory. Keys carry a generation against slot reuse.
//!
//! The reactor is driven by the workers (`scheduler/idle.rs`): the one idle
//! worker that owns it blocks in `poll`, busy workers poll it without
//! blocking every few scheduling ticks. Waiting works the same from plain
//! threads: they park and the polling worker unparks them.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use parking_lot::Mutex;

use crate::park::{self, Unparker};
use crate::scheduler;
use crate::wake_latch::WakeLatch;

/// Which readiness to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// The fd can be read (or accepted from) without blocking.
    Readable,
    /// The fd can be written (or a connect has finished).
    Writable,
}

struct Source {
    seq: [AtomicU64; 2],
    closed: AtomicBool,
    waiters: Mutex<[Vec<Unparker>; 2]>,
}

impl Source {
    /// Wakes every waiter of one direction. Unparking under the lock keeps
    /// the waiter list's allocation for reuse (an unpark only queues the
    /// task or signals a thread; it never takes this lock).
    fn wake(&self, dir: usize) {
        let mut w = self.waiters.lock();
        for u in w[dir].drain(..) {
            u.unpark();
        }
    }
}

struct Slot {
    generation: u32,
    source: Option<Arc<Source>>,
}

pub(crate) struct Reactor {
    epoll: OwnedFd,
    wake: OwnedFd,
    /// Whether a wake-up is pending in `wake`, so that a burst of
    /// `notify` calls costs one write (`wake_latch.rs`).
    latch: WakeLatch,
    events: Mutex<Vec<libc::epoll_event>>,
    slots: Mutex<(Vec<Slot>, Vec<u32>)>,
    live: AtomicUsize,
}

/// The epoll key of the wake-up eventfd.
const WAKE_KEY: u64 = u64::MAX;
/// Events taken per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;

fn key_of(index: u32, generation: u32) -> usize {
    ((generation as usize) << 32) | index as usize
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
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
            Ok(Reactor {
                epoll,
                wake,
                latch: WakeLatch::new(),
                events: Mutex::new(Vec::with_capacity(EVENTS_PER_POLL)),
                slots: Mutex::new((Vec::new(), Vec::new())),
                live: AtomicUsize::new(0),
            })
        }
    }

    /// Wakes a thread blocked in [`Reactor::poll`] (or makes its next poll
    /// return at once).
    pub(crate) fn notify(&self) {
        self.latch.notify(|| {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        });
    }

    pub(crate) fn has_sources(&self) -> bool {
        self.live.load(Ordering::Relaxed) > 0
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds, so never
    /// short) for events and delivers them; returns how many IO events.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> usize {
        let Some(mut events) = self.events.try_lock() else {
            return 0;
        };
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
        };
        events.clear();
        // SAFETY: the buffer has capacity for EVENTS_PER_POLL events and
        // the kernel writes at most that many; we set the length to what
        // it reports.
        let n = unsafe {
            let n = libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS_PER_POLL as libc::c_int,
                ms,
            );
            if n <= 0 {
                return 0;
            }
            events.set_len(n as usize);
            n as usize
        };
        let mut delivered = 0;
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
            let index = (key & 0xffff_ffff) as u32;
            let generation = (key >> 32) as u32;
            let source = {
                let slots = self.slots.lock();
                match slots.0.get(index as usize) {
                    Some(s) if s.generation == generation => s.source.clone(),
                    _ => None,
                }
            };
            let Some(source) = source else { continue };
            delivered += 1;
            let err = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
            let readable =
                flags & ((libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 | err) != 0;
            let writable = flags & (libc::EPOLLOUT as u32 | err) != 0;
            for (dir, ready) in [readable, writable].into_iter().enumerate() {
                if ready {
                    source.seq[dir].fetch_add(1, Ordering::AcqRel);
                    source.wake(dir);
                }
            }
        }
        debug_assert!(n <= EVENTS_PER_POLL);
        delivered
    }
}

/// An fd registered with the runtime's reactor (see the module docs).
///
/// This is the raw seam that goro's own sockets use, public so that
/// third-party code can wait for readiness of any fd: put the fd in
/// non-blocking mode, try the operation, and call [`Registration::wait`]
/// (or use [`Registration::io`]) when it says `WouldBlock`.
pub struct Registration {
    fd: RawFd,
    key: usize,
    source: Arc<Source>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .finish()
    }
}

impl Registration {
    /// Registers `fd` for readiness events in both directions.
    ///
    /// # Safety
    ///
    /// `fd` must be an open file descriptor that supports `epoll` and it
    /// must stay open until this `Registration` is dropped (drop it, then
    /// close the fd).
    pub unsafe fn new(fd: RawFd) -> io::Result<Registration> {
        let rt = scheduler::get();
        let r = &rt.reactor;
        let source = Arc::new(Source {
            seq: [AtomicU64::new(0), AtomicU64::new(0)],
            closed: AtomicBool::new(false),
            waiters: Mutex::new([Vec::new(), Vec::new()]),
        });
        let key = {
            let mut slots = r.slots.lock();
            let (list, free) = &mut *slots;
            let index = match free.pop() {
                Some(i) => {
                    let s = &mut list[i as usize];
                    s.generation = s.generation.wrapping_add(1);
                    s.source = Some(source.clone());
                    i
                }
                None => {
                    list.push(Slot {
                        generation: 0,
                        source: Some(source.clone()),
                    });
                    (list.len() - 1) as u32
                }
            };
            key_of(index, list[index as usize].generation)
        };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: key as u64,
        };
        // SAFETY: `ev` is a valid event; the caller promises `fd` is open
        // and stays open until this registration is dropped, and `Drop`
        // deletes it from epoll first (invariant 3).
        let added =
            cvt(unsafe { libc::epoll_ctl(r.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) });
        if let Err(e) = added {
            Self::free_slot(key);
            return Err(e);
        }
        r.live.fetch_add(1, Ordering::Relaxed);
        Ok(Registration { fd, key, source })
    }

    fn free_slot(key: usize) {
        let r = &scheduler::get().reactor;
        let mut slots = r.slots.lock();
        let index = (key & 0xffff_ffff) as u32;
        slots.0[index as usize].source = None;
        slots.1.push(index);
    }

    /// The registered fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The readiness sequence of one direction (invariant 2): read it
    /// *before* trying the operation, pass it to [`Registration::wait`].
    pub fn seq(&self, interest: Interest) -> u64 {
        self.source.seq[interest as usize].load(Ordering::Acquire)
    }

    /// Parks until readiness in `interest` moved past `seen`, the deadline
    /// passes (`TimedOut`) or the registration is closed.
    pub fn wait(&self, interest: Interest, seen: u64, deadline: Option<Instant>) -> io::Result<()> {
        let dir = interest as usize;
        let me = park::current();
        loop {
            if self.source.closed.load(Ordering::Acquire) {
                return Err(closed_error());
            }
            if self.source.seq[dir].load(Ordering::Acquire) != seen {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.forget_waiter(dir, &me);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "goro: IO operation timed out",
                ));
            }
            {
                let mut w = self.source.waiters.lock();
                if !w[dir].iter().any(|u| u.same_target(&me)) {
                    w[dir].push(me.clone());
                }
            }
            // Re-check after registering (the waker takes the list first).
            if self.source.seq[dir].load(Ordering::Acquire) != seen
                || self.source.closed.load(Ordering::Acquire)
            {
                self.forget_waiter(dir, &me);
                continue;
            }
            match deadline {
                Some(d) => park::park_deadline(d),
                None => park::park(),
            }
        }
    }

    /// Runs `op` until it stops returning `WouldBlock`, waiting for
    /// `interest` between tries (the whole pattern of invariant 2).
    pub fn io<R>(
        &self,
        interest: Interest,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            let seen = self.seq(interest);
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(interest, seen, deadline)?
                }
                r => return r,
            }
        }
    }

    fn forget_waiter(&self, dir: usize, me: &Unparker) {
        self.source.waiters.lock()[dir].retain(|u| !u.same_target(me));
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "goro: the socket was closed while an operation waited on it",
    )
}

impl Drop for Registration {
    fn drop(&mut self) {
        let r = &scheduler::get().reactor;
        // SAFETY: the fd is still open (the caller's contract on `new`); a
        // null event is allowed for EPOLL_CTL_DEL.
        unsafe {
            libc::epoll_ctl(
                r.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                self.fd,
                std::ptr::null_mut(),
            )
        };
        Self::free_slot(self.key);
        r.live.fetch_sub(1, Ordering::Relaxed);
        self.source.closed.store(true, Ordering::Release);
        self.source.wake(0);
        self.source.wake(1);
    }
}
