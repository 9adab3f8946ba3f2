//! The IO reactor: readiness events from `polling::Poller`, delivered by
//! unparking whoever waits on a file descriptor.
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
//! 3. Dropping a `Registration` deletes the fd from the poller, marks the
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
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use polling::{Event, Events, PollMode, Poller};

use crate::park::{self, Unparker};
use crate::scheduler;

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
    fn wake(&self, dir: usize) {
        let list = std::mem::take(&mut self.waiters.lock()[dir]);
        for u in list {
            u.unpark();
        }
    }
}

struct Slot {
    generation: u32,
    source: Option<Arc<Source>>,
}

pub(crate) struct Reactor {
    poller: Poller,
    events: Mutex<Events>,
    slots: Mutex<(Vec<Slot>, Vec<u32>)>,
    live: AtomicUsize,
}

fn key_of(index: u32, generation: u32) -> usize {
    ((generation as usize) << 32) | index as usize
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            events: Mutex::new(Events::new()),
            slots: Mutex::new((Vec::new(), Vec::new())),
            live: AtomicUsize::new(0),
        })
    }

    /// Wakes a thread blocked in [`Reactor::poll`] (or makes its next poll
    /// return at once).
    pub(crate) fn notify(&self) {
        let _ = self.poller.notify();
    }

    pub(crate) fn has_sources(&self) -> bool {
        self.live.load(Ordering::Relaxed) > 0
    }

    /// Waits up to `timeout` for events and delivers them; returns how many.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> usize {
        let Some(mut events) = self.events.try_lock() else {
            return 0;
        };
        events.clear();
        if self.poller.wait(&mut events, timeout).is_err() {
            return 0;
        }
        let mut n = 0;
        for ev in events.iter() {
            let index = (ev.key & 0xffff_ffff) as u32;
            let generation = (ev.key >> 32) as u32;
            let source = {
                let slots = self.slots.lock();
                match slots.0.get(index as usize) {
                    Some(s) if s.generation == generation => s.source.clone(),
                    _ => None,
                }
            };
            let Some(source) = source else { continue };
            n += 1;
            for (dir, ready) in [ev.readable, ev.writable].into_iter().enumerate() {
                if ready {
                    source.seq[dir].fetch_add(1, Ordering::AcqRel);
                    source.wake(dir);
                }
            }
        }
        n
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
        // SAFETY: the caller promises `fd` is open and stays open until this
        // registration is dropped, and `Drop` deletes it from the poller
        // first (invariant 3), which is what `Poller::add` requires.
        let added = unsafe { r.poller.add_with_mode(fd, Event::all(key), PollMode::Edge) };
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
        // SAFETY: the fd is still open (the caller's contract on `new`).
        let _ = r.poller.delete(unsafe { BorrowedFd::borrow_raw(self.fd) });
        Self::free_slot(self.key);
        r.live.fetch_sub(1, Ordering::Relaxed);
        self.source.closed.store(true, Ordering::Release);
        self.source.wake(0);
        self.source.wake(1);
    }
}
