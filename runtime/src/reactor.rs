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
//! 1. Each fd is registered once, edge-triggered for both directions: for
//!    as long as its [`Registration`] lives (goro's own sockets), or, for
//!    an fd that other code owns, for as long as some
//!    [`SharedRegistration`] of it lives (its waiters; see
//!    `goro_net::wait_readable`). A reader and a writer can wait on the
//!    same fd at once (full duplex from two coroutines), and any number of
//!    waiters can share one direction.
//! 2. Each direction has a *readiness sequence* that the reactor bumps on
//!    every edge. An operation reads the sequence, tries the syscall, and on
//!    `WouldBlock` waits until the sequence moves. An edge that arrives
//!    between the syscall and the wait has already moved it, so no edge is
//!    lost and no flag needs clearing. A bump wakes every waiter of that
//!    direction; each re-checks.
//! 3. Dropping a `Registration` deletes the fd from epoll, marks the
//!    source closed and wakes every waiter, all before returning, so the
//!    owner can close the fd only after nobody waits on it and no event for
//!    it can be mistaken for a later fd with the same number. Dropping the
//!    last `SharedRegistration` of an fd deletes the fd the same way, while
//!    that share still borrows it (nobody is left to wake).
//! 4. Events are looked up by key in a slab under a lock, never by pointer,
//!    so an event that races with a deregistration finds nothing instead of
//!    freed memory. Keys carry a generation against slot reuse.
//! 5. The *fd table* maps each fd number goro has registered to the one
//!    registration that holds it (`FdUse`), and every `epoll_ctl` on an fd
//!    number (add, modify, delete) happens under the lock of that number's
//!    table shard, together with the table update. So goro's view of which
//!    fd numbers are in its epoll set and the kernel's never disagree by
//!    goro's own doing, and a delete or modify by number only ever touches
//!    the registration the table names for that number:
//!    - a registration deletes its fd only while the table still names it;
//!      one the table no longer names (its number was closed and taken by
//!      another registration) leaves the kernel alone;
//!    - a successful add for a number the table names proves the old
//!      holder's file is no longer at that number (epoll keys entries by
//!      file *and* number), so the new registration takes the number over
//!      and the old one, if shared, is *evicted*: its waiters wake, and it
//!      never deletes or modifies by that number again;
//!    - an add that fails with `EEXIST` for a number the table does not
//!      name finds a kernel entry nobody in goro holds (left by a file whose
//!      number was closed while another fd kept it open), which a shared
//!      registration takes over with a modify.
//!
//! The reactor is driven by the workers (`scheduler/idle.rs`): the one idle
//! worker that owns it blocks in `poll`, busy workers poll it without
//! blocking every few scheduling ticks. Waiting works the same from plain
//! threads: they park and the polling worker unparks them.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::park::{self, Unparker};
use crate::scheduler;
use crate::wake_latch::WakeLatch;

/// Whether the caller runs in a goro coroutine, so that waiting on a
/// registration parks a coroutine rather than a thread: the same answer as
/// [`is_coroutine`](crate::is_coroutine), but inlined into the caller (one
/// thread-local load, no call), for checks made on every system call (the
/// hook's).
///
/// ```
/// assert!(!goro_runtime::reactor::in_coroutine());
/// assert!(goro_runtime::go!(goro_runtime::reactor::in_coroutine).join().unwrap());
/// ```
#[inline(always)]
pub fn in_coroutine() -> bool {
    crate::context::in_coroutine()
}

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

/// Why [`Source::wait`] stopped without readiness.
enum Ended {
    Closed,
    TimedOut,
    /// The caller's `interrupted` condition held (`Registration::wait_interruptible`).
    Interrupted,
}

impl Source {
    fn new() -> Arc<Source> {
        Arc::new(Source {
            seq: [AtomicU64::new(0), AtomicU64::new(0)],
            closed: AtomicBool::new(false),
            waiters: Mutex::new([Vec::new(), Vec::new()]),
        })
    }

    /// Wakes every waiter of one direction. Unparking under the lock keeps
    /// the waiter list's allocation for reuse (an unpark only queues the
    /// task or signals a thread; it never takes this lock).
    fn wake(&self, dir: usize) {
        let mut w = self.waiters.lock();
        for u in w[dir].drain(..) {
            u.unpark();
        }
    }

    /// Marks the source closed and wakes everyone waiting on it.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake(0);
        self.wake(1);
    }

    /// Parks until the sequence of `dir` moved past `seen`, the source is
    /// closed or the deadline passes.
    ///
    /// `interrupted` is checked after readiness and before each park; a
    /// party that makes it true must unpark the waiter afterwards (park's
    /// token makes an unpark that comes before the park count).
    ///
    /// `kind` is what the wait shows in the dump; `None`: `net read` or
    /// `net write` by direction.
    #[track_caller]
    fn wait(
        &self,
        fd: RawFd,
        dir: usize,
        seen: u64,
        deadline: Option<Instant>,
        interrupted: &dyn Fn() -> bool,
        kind: Option<park::WaitKind>,
    ) -> Result<(), Ended> {
        let kind = kind.unwrap_or(if dir == 0 {
            park::WaitKind::NetRead { fd }
        } else {
            park::WaitKind::NetWrite { fd }
        });
        let me = park::current();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Ended::Closed);
            }
            if self.seq[dir].load(Ordering::Acquire) != seen {
                return Ok(());
            }
            if interrupted() {
                self.forget_waiter(dir, &me);
                return Err(Ended::Interrupted);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.forget_waiter(dir, &me);
                return Err(Ended::TimedOut);
            }
            {
                let mut w = self.waiters.lock();
                if !w[dir].iter().any(|u| u.same_target(&me)) {
                    w[dir].push(me.clone());
                }
            }
            // Re-check after registering (the waker takes the list first).
            if self.seq[dir].load(Ordering::Acquire) != seen || self.closed.load(Ordering::Acquire)
            {
                self.forget_waiter(dir, &me);
                continue;
            }
            match deadline {
                Some(d) => park::park_deadline_with(d, kind),
                None => park::park_with(kind),
            }
        }
    }

    fn forget_waiter(&self, dir: usize, me: &Unparker) {
        self.waiters.lock()[dir].retain(|u| !u.same_target(me));
    }
}

struct Slot {
    generation: u32,
    source: Option<Arc<Source>>,
}

/// Who holds the registration of one fd number (invariant 5).
enum FdUse {
    /// One [`Registration`]: a goro socket, or code that registered the
    /// fd itself.
    Owned { key: usize },
    /// The waiters of an fd that other code owns, `shares` of them.
    Shared {
        key: usize,
        source: Arc<Source>,
        shares: usize,
    },
}

/// Shards of the fd table, so that waits on different fds rarely share a
/// lock. The table is touched only when a wait starts or ends (never per
/// event), so a few shards are plenty on the machines goro targets; a
/// power of two keeps the shard pick a mask.
const FD_SHARDS: usize = 16;

type FdShard = Mutex<HashMap<RawFd, FdUse>>;

pub(crate) struct Reactor {
    epoll: OwnedFd,
    wake: OwnedFd,
    /// Whether a wake-up is pending in `wake`, so that a burst of
    /// `notify` calls costs one write (`wake_latch.rs`).
    latch: WakeLatch,
    events: Mutex<Vec<libc::epoll_event>>,
    slots: Mutex<(Vec<Slot>, Vec<u32>)>,
    /// The fd table (invariant 5). Lock order: a shard, then `slots` or a
    /// source's waiter list; never the other way round.
    fds: Box<[FdShard]>,
    live: AtomicUsize,
}

/// The epoll key of the wake-up eventfd.
const WAKE_KEY: u64 = u64::MAX;
/// Events taken per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;
/// What every fd is registered for: both directions, edge-triggered.
const FD_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

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
                fds: (0..FD_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                live: AtomicUsize::new(0),
            })
        }
    }

    /// The fd table shard that holds `fd`.
    fn fd_shard(&self, fd: RawFd) -> &FdShard {
        &self.fds[fd as usize & (FD_SHARDS - 1)]
    }

    /// Puts `source` in a free slot and returns its key.
    fn alloc_slot(&self, source: Arc<Source>) -> usize {
        let mut slots = self.slots.lock();
        let (list, free) = &mut *slots;
        let index = match free.pop() {
            Some(i) => {
                let s = &mut list[i as usize];
                s.generation = s.generation.wrapping_add(1);
                s.source = Some(source);
                i
            }
            None => {
                list.push(Slot {
                    generation: 0,
                    source: Some(source),
                });
                (list.len() - 1) as u32
            }
        };
        key_of(index, list[index as usize].generation)
    }

    fn free_slot(&self, key: usize) {
        let mut slots = self.slots.lock();
        let index = (key & 0xffff_ffff) as u32;
        slots.0[index as usize].source = None;
        slots.1.push(index);
    }

    /// `EPOLL_CTL_ADD` or `EPOLL_CTL_MOD` of `fd` for [`FD_EVENTS`] under
    /// `key`. Callers hold `fd`'s table shard (invariant 5).
    fn ctl(&self, op: libc::c_int, fd: RawFd, key: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: FD_EVENTS,
            u64: key as u64,
        };
        // SAFETY: `ev` is a live, valid event. The kernel checks `fd`
        // itself; no memory of ours depends on it (events find their
        // source by key, invariant 4).
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// `EPOLL_CTL_DEL` of `fd`. Callers hold `fd`'s table shard and have
    /// checked that the table names the caller for it (invariant 5).
    fn del(&self, fd: RawFd) {
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

    /// Ends a shared registration whose number another registration took
    /// over, or whose file is no longer at its number (invariant 5): no
    /// `epoll_ctl` by that number any more, only its slot freed and its
    /// waiters woken. An `Owned` entry is left to its `Registration`'s drop,
    /// which finds the table no longer names it.
    fn evict(&self, old: FdUse) {
        if let FdUse::Shared { key, source, .. } = old {
            self.free_slot(key);
            self.live.fetch_sub(1, Ordering::Relaxed);
            source.close();
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
    /// # Errors
    ///
    /// What `epoll_ctl` reports: `AlreadyExists` if this file is already
    /// registered at this number (by another `Registration`, or because
    /// someone waits on it with a [`SharedRegistration`], such as
    /// `goro_net::wait_readable`); `PermissionDenied` for files epoll does
    /// not support (regular files).
    ///
    /// # Safety
    ///
    /// `fd` must be an open file descriptor that supports `epoll` and it
    /// must stay open until this `Registration` is dropped (drop it, then
    /// close the fd).
    pub unsafe fn new(fd: RawFd) -> io::Result<Registration> {
        let r = &scheduler::get().reactor;
        let source = Source::new();
        let key = r.alloc_slot(source.clone());
        let mut fds = r.fd_shard(fd).lock();
        if let Err(e) = r.ctl(libc::EPOLL_CTL_ADD, fd, key) {
            drop(fds);
            r.free_slot(key);
            return Err(e);
        }
        r.live.fetch_add(1, Ordering::Relaxed);
        // The add succeeded, so whoever the table named for this number
        // registered a file that is no longer here (invariant 5).
        if let Some(old) = fds.insert(fd, FdUse::Owned { key }) {
            r.evict(old);
        }
        drop(fds);
        Ok(Registration { fd, key, source })
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
    #[track_caller]
    pub fn wait(&self, interest: Interest, seen: u64, deadline: Option<Instant>) -> io::Result<()> {
        self.wait_interruptible(interest, seen, deadline, &|| false)
    }

    /// Like [`Registration::wait`], but also ends, with an `Interrupted`
    /// error, once `interrupted()` is true. It is checked before the first
    /// park and after every wake-up; whoever makes it true must then
    /// unpark the waiter (through a [`park::current`] taken before the
    /// call). This is the seam for cancellation: goro-net's context-taking
    /// socket calls pass "is the context done" and unpark from the
    /// context's done hook.
    #[track_caller]
    pub fn wait_interruptible(
        &self,
        interest: Interest,
        seen: u64,
        deadline: Option<Instant>,
        interrupted: &dyn Fn() -> bool,
    ) -> io::Result<()> {
        self.wait_as(interest, seen, deadline, interrupted, None)
    }

    /// [`Registration::wait_interruptible`] that shows in the dump
    /// ([`crate::dump`]) as `kind` (`None`: `net read`/`net write` by
    /// interest): goro-net labels its accept and connect waits this way.
    #[track_caller]
    pub fn wait_as(
        &self,
        interest: Interest,
        seen: u64,
        deadline: Option<Instant>,
        interrupted: &dyn Fn() -> bool,
        kind: Option<park::WaitKind>,
    ) -> io::Result<()> {
        self.source
            .wait(
                self.fd,
                interest as usize,
                seen,
                deadline,
                interrupted,
                kind,
            )
            .map_err(|end| match end {
                Ended::Closed => closed_error(),
                Ended::TimedOut => timed_out(),
                Ended::Interrupted => io::Error::from(io::ErrorKind::Interrupted),
            })
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
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "goro: the socket was closed while an operation waited on it",
    )
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "goro: IO operation timed out")
}

impl Drop for Registration {
    fn drop(&mut self) {
        let r = &scheduler::get().reactor;
        {
            let mut fds = r.fd_shard(self.fd).lock();
            // Only while the table names us (invariant 5): the fd is still
            // open (the caller's contract on `new`), and no one else's
            // registration can be behind this number.
            if let Some(FdUse::Owned { key }) = fds.get(&self.fd)
                && *key == self.key
            {
                r.del(self.fd);
                fds.remove(&self.fd);
            }
        }
        r.free_slot(self.key);
        r.live.fetch_sub(1, Ordering::Relaxed);
        self.source.close();
    }
}

/// One waiter's share of the reactor's registration of an fd that other
/// code owns: the mechanism under `goro_net::wait_readable` and
/// `wait_writable`, whose module docs give the whole protocol.
///
/// Any number of shares of one fd, for either direction, from coroutines
/// and threads, use one epoll registration (invariant 1): the first share
/// adds the fd, later ones only count themselves in the fd table, and the
/// last one to drop deletes the fd (invariant 3), while it still borrows
/// the fd, so the delete cannot hit a later fd with the same number.
///
/// A share cannot see the kernel's view of a close: if other code closes
/// the fd while a share waits on it (breaking I/O safety), no event ever
/// comes. Call [`SharedRegistration::check`] now and then while waiting;
/// it finds out and wakes every waiter of the fd.
pub struct SharedRegistration<'fd> {
    fd: BorrowedFd<'fd>,
    key: usize,
    source: Arc<Source>,
    registered: bool,
}

impl std::fmt::Debug for SharedRegistration<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegistration")
            .field("fd", &self.fd)
            .field("registered", &self.registered)
            .finish()
    }
}

impl<'fd> SharedRegistration<'fd> {
    /// Takes a share of `fd`'s registration if it has one already; costs a
    /// lock and no system call. `Ok(None)` if nobody waits on `fd` now.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if `fd` is held by a [`Registration`] (a goro
    /// socket's fd, say): wait through that socket or registration instead.
    pub fn find(fd: BorrowedFd<'fd>) -> io::Result<Option<SharedRegistration<'fd>>> {
        let r = &scheduler::get().reactor;
        let raw = fd.as_raw_fd();
        let mut fds = r.fd_shard(raw).lock();
        Self::share(fd, fds.get_mut(&raw))
    }

    /// Takes a share of `fd`'s registration, registering `fd` if nobody
    /// waits on it yet ([`SharedRegistration::registered`] then says so).
    ///
    /// # Errors
    ///
    /// As [`SharedRegistration::find`]; `PermissionDenied` for a file that
    /// epoll does not support (a regular file).
    pub fn join(fd: BorrowedFd<'fd>) -> io::Result<SharedRegistration<'fd>> {
        let r = &scheduler::get().reactor;
        let raw = fd.as_raw_fd();
        let mut fds = r.fd_shard(raw).lock();
        if let Some(share) = Self::share(fd, fds.get_mut(&raw))? {
            return Ok(share);
        }
        let source = Source::new();
        let key = r.alloc_slot(source.clone());
        let added = match r.ctl(libc::EPOLL_CTL_ADD, raw, key) {
            // A kernel entry nobody in goro holds (invariant 5): take it.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                r.ctl(libc::EPOLL_CTL_MOD, raw, key)
            }
            other => other,
        };
        if let Err(e) = added {
            drop(fds);
            r.free_slot(key);
            return Err(e);
        }
        r.live.fetch_add(1, Ordering::Relaxed);
        fds.insert(
            raw,
            FdUse::Shared {
                key,
                source: source.clone(),
                shares: 1,
            },
        );
        Ok(SharedRegistration {
            fd,
            key,
            source,
            registered: true,
        })
    }

    fn share(
        fd: BorrowedFd<'fd>,
        entry: Option<&mut FdUse>,
    ) -> io::Result<Option<SharedRegistration<'fd>>> {
        match entry {
            None => Ok(None),
            Some(FdUse::Owned { .. }) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "goro: fd {} belongs to a goro socket (or a reactor Registration); \
                     wait through its own methods",
                    fd.as_raw_fd()
                ),
            )),
            Some(FdUse::Shared {
                key,
                source,
                shares,
            }) => {
                *shares += 1;
                Ok(Some(SharedRegistration {
                    fd,
                    key: *key,
                    source: source.clone(),
                    registered: false,
                }))
            }
        }
    }

    /// The fd this share waits on.
    pub fn fd(&self) -> BorrowedFd<'fd> {
        self.fd
    }

    /// Whether this share registered the fd. Its sequences then started at
    /// 0, and the kernel reports the fd's readiness at registration as an
    /// edge, so waiting for a sequence to move past 0 misses nothing. A
    /// share of an existing registration must look at the fd itself (a
    /// zero-timeout `poll`) after reading the sequence: an edge from before
    /// it joined may already be counted.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// The readiness sequence of one direction (invariant 2).
    pub fn seq(&self, interest: Interest) -> u64 {
        self.source.seq[interest as usize].load(Ordering::Acquire)
    }

    /// Parks until readiness in `interest` moved past `seen` (`Ok`), the
    /// deadline passes (`TimedOut`), or the registration is evicted
    /// (`NotConnected`: the fd was closed, or its number taken by another
    /// file, under the wait; see [`SharedRegistration::check`]).
    #[track_caller]
    pub fn wait(&self, interest: Interest, seen: u64, deadline: Option<Instant>) -> io::Result<()> {
        self.source
            .wait(
                self.fd.as_raw_fd(),
                interest as usize,
                seen,
                deadline,
                &|| false,
                None,
            )
            .map_err(|end| match end {
                Ended::Closed => io::Error::new(
                    io::ErrorKind::NotConnected,
                    "goro: the fd was closed, or its number reused, while waited on",
                ),
                Ended::TimedOut => timed_out(),
                Ended::Interrupted => io::Error::from(io::ErrorKind::Interrupted),
            })
    }

    /// Whether the registration still covers the file at this fd number:
    /// one `EPOLL_CTL_MOD`, which fails once the file that was registered
    /// is no longer at the number (closed, or the number reused). Then the
    /// registration is evicted and every waiter of the fd wakes. A
    /// successful check also re-reports the fd's current readiness as an
    /// edge, which is harmless (waiters re-check).
    pub fn check(&self) -> bool {
        let r = &scheduler::get().reactor;
        let raw = self.fd.as_raw_fd();
        let mut fds = r.fd_shard(raw).lock();
        match fds.get(&raw) {
            Some(FdUse::Shared { key, .. }) if *key == self.key => {}
            _ => return false,
        }
        if r.ctl(libc::EPOLL_CTL_MOD, raw, self.key).is_ok() {
            return true;
        }
        if let Some(old) = fds.remove(&raw) {
            r.evict(old);
        }
        false
    }
}

impl Drop for SharedRegistration<'_> {
    fn drop(&mut self) {
        let r = &scheduler::get().reactor;
        let raw = self.fd.as_raw_fd();
        let mut fds = r.fd_shard(raw).lock();
        let Some(FdUse::Shared { key, shares, .. }) = fds.get_mut(&raw) else {
            return;
        };
        if *key != self.key {
            return; // evicted (invariant 5): nothing of ours is left
        }
        *shares -= 1;
        if *shares == 0 {
            // The last share: the fd is still borrowed, so still open and
            // still the file we registered (invariant 3). Even if other
            // code broke that, the table still naming us means no other
            // registration of goro's holds this number (invariant 5), so
            // the delete finds ours or nothing.
            r.del(raw);
            fds.remove(&raw);
            drop(fds);
            r.free_slot(self.key);
            r.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
