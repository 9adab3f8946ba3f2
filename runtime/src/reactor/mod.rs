//! The IO reactor: readiness events (epoll, or polls through io_uring) and
//! completions (io_uring), delivered by unparking whoever waits on a file
//! descriptor.
//!
//! The user guide (what a [`Registration`] is for, the backends and how
//! to choose one) is the `goro::reactor` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/reactor/>.
//!
//! # Backends
//!
//! Both backends keep the invariants below (for io_uring, "registered"
//! means known to goro's fd table: the kernel learns of an fd only through
//! a poll or an operation on it). The system calls live in `epoll.rs` and
//! `uring.rs`; `uring.rs` also argues why its operations' buffers are
//! sound across a park, a timeout, a cancellation and a shared-stack
//! coroutine.
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
//!    direction; each re-checks. On epoll the read sequence also carries
//!    a "drained" mark that lets a stream read after a short read wait
//!    without its `recv` (`read_seq.rs`); an edge clears it as it bumps.
//! 3. Dropping a `Registration` deletes the fd from epoll, marks the
//!    source closed and wakes every waiter, all before returning, so the
//!    owner can close the fd only after nobody waits on it and no event for
//!    it can be mistaken for a later fd with the same number. Dropping the
//!    last `SharedRegistration` of an fd deletes the fd the same way, while
//!    that share still borrows it (nobody is left to wake).
//! 4. Events are looked up by key in a slab under a lock, never by pointer,
//!    so an event that races with a deregistration finds nothing instead of
//!    freed memory. Keys carry a generation against slot reuse.
//!    (io_uring: an fd number's file is told apart by its device and inode,
//!    from `fstat`, where epoll tells it apart by its kernel entry; the
//!    cases below then read "a different file" for "an add succeeded".)
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
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::park::{self, Unparker};
use crate::scheduler;

mod epoll;
mod read_seq;
mod ring_watch;
mod submit_gate;
mod uring;

/// Whether the caller runs in a goro coroutine, so that waiting on a
/// registration parks a coroutine rather than a thread: the same answer as
/// [`is_coroutine`](crate::is_coroutine), but inlined into the caller (one
/// thread-local load, no call), for checks made on every system call (the
/// hook's).
///
/// ```
/// assert!(!goro::reactor::in_coroutine());
/// assert!(goro::go!(goro::reactor::in_coroutine).join().unwrap());
/// ```
#[inline(always)]
pub fn in_coroutine() -> bool {
    crate::context::in_coroutine()
}

/// A cheaper, one-sided [`in_coroutine`]: `false` proves the caller is not
/// inside a coroutine (it is no worker thread); `true` means "maybe", and
/// the caller asks [`in_coroutine`]. It reads no thread-local, only the
/// thread pointer and one shared word, so a check built on it compiles
/// without the argument spills a thread-local read costs in
/// position-independent code. This is the plain-thread fast path of the
/// hook (`goro-hook`'s `fast_check`).
///
/// ```
/// // A plain thread of a program whose runtime has not started is no
/// // worker, though a `true` here would not be wrong, only slower.
/// if goro::reactor::may_be_in_coroutine() {
///     assert!(!goro::reactor::in_coroutine());
/// }
/// ```
#[inline(always)]
pub fn may_be_in_coroutine() -> bool {
    crate::worker_threads::may_be_worker()
}

/// Which readiness to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// The fd can be read (or accepted from) without blocking.
    Readable,
    /// The fd can be written (or a connect has finished).
    Writable,
}

/// The reactor's kernel interface ([`crate::Config::io`], `GORO_IO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoBackend {
    /// io_uring where `io_uring_setup` works, else epoll (the default).
    #[default]
    Auto,
    /// io_uring, falling back to epoll where it is refused.
    Uring,
    /// epoll only.
    Epoll,
}

struct Source {
    seq: [AtomicU64; 2],
    closed: AtomicBool,
    waiters: Mutex<[Vec<Unparker>; 2]>,
    /// The fd and the key, for arming polls (io_uring).
    fd: RawFd,
    key: AtomicU64,
    /// Whether a one-shot poll is armed per direction (io_uring).
    armed: [AtomicBool; 2],
    /// Whether the last read had to wait: the next one goes to the ring
    /// without trying first (io_uring, `uring.rs`).
    drained: AtomicBool,
}

/// Whether `fd` is a stream socket (`SO_TYPE`); false if that cannot be
/// told.
fn is_stream(fd: RawFd) -> bool {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized out-parameter for SO_TYPE.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && ty == libc::SOCK_STREAM
}

/// Why [`Source::wait`] stopped without readiness.
enum Ended {
    Closed,
    TimedOut,
    /// The caller's `interrupted` condition held (`Registration::wait_interruptible`).
    Interrupted,
}

impl Source {
    fn new(fd: RawFd) -> Arc<Source> {
        Arc::new(Source {
            seq: [AtomicU64::new(0), AtomicU64::new(0)],
            closed: AtomicBool::new(false),
            waiters: Mutex::new([Vec::new(), Vec::new()]),
            fd,
            key: AtomicU64::new(0),
            armed: [AtomicBool::new(false), AtomicBool::new(false)],
            drained: AtomicBool::new(false),
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

    /// An edge in `dir`: bump the sequence, wake the waiters.
    fn ready(&self, dir: usize) {
        self.ready_with(dir, false);
    }

    /// [`Source::ready`] for an edge that may report a hang-up (epoll):
    /// the read word follows `read_seq.rs`'s rule.
    fn ready_with(&self, dir: usize, hup: bool) {
        if dir == 0 {
            read_seq::edge(&self.seq[0], hup);
        } else {
            self.seq[1].fetch_add(1, Ordering::AcqRel);
        }
        self.wake(dir);
    }

    /// Marks the source closed and wakes everyone waiting on it.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake(0);
        self.wake(1);
    }

    /// io_uring: arms this direction's one-shot poll unless one is armed.
    /// Called after the waiter is queued and before its re-check, so a
    /// poll completion (which clears `armed` first) always finds it.
    fn arm(&self, dir: usize) {
        if let Backend::Uring(u) = &scheduler::get().reactor.backend
            && !self.armed[dir].swap(true, Ordering::AcqRel)
        {
            u.arm_poll(self.fd, self.key.load(Ordering::Relaxed), dir == 1);
        }
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
            if deadline.is_some_and(|d| crate::testing::now() >= d) {
                self.forget_waiter(dir, &me);
                return Err(Ended::TimedOut);
            }
            {
                let mut w = self.waiters.lock();
                if !w[dir].iter().any(|u| u.same_target(&me)) {
                    w[dir].push(me.clone());
                }
            }
            self.arm(dir);
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

/// A file's identity behind an fd number (io_uring; `(0, 0)` on epoll,
/// whose kernel entries tell files apart themselves).
type Ident = (u64, u64);

/// Who holds the registration of one fd number (invariant 5).
enum FdUse {
    /// One [`Registration`]: a goro socket, or code that registered the
    /// fd itself.
    Owned { key: usize, ident: Ident },
    /// The waiters of an fd that other code owns, `shares` of them.
    Shared {
        key: usize,
        source: Arc<Source>,
        shares: usize,
        ident: Ident,
    },
}

impl FdUse {
    fn ident(&self) -> Ident {
        match self {
            FdUse::Owned { ident, .. } | FdUse::Shared { ident, .. } => *ident,
        }
    }
}

/// Shards of the fd table, so that waits on different fds rarely share a
/// lock. The table is touched only when a wait starts or ends (never per
/// event), so a few shards are plenty on the machines goro targets; a
/// power of two keeps the shard pick a mask.
const FD_SHARDS: usize = 16;

type FdShard = Mutex<HashMap<RawFd, FdUse>>;

enum Backend {
    Epoll(epoll::Epoll),
    /// Boxed: the ring's handle is several times epoll's.
    Uring(Box<uring::Uring>),
}

pub(crate) struct Reactor {
    backend: Backend,
    slots: Mutex<(Vec<Slot>, Vec<u32>)>,
    /// The fd table (invariant 5). Lock order: a shard, then `slots` or a
    /// source's waiter list; never the other way round.
    fds: Box<[FdShard]>,
    live: AtomicUsize,
}

/// Keys carry 24 bits of generation, so that a key shifted by the io_uring
/// tag bits still fits in a `user_data`.
const GENERATION_MASK: u32 = 0xff_ffff;

fn key_of(index: u32, generation: u32) -> usize {
    ((generation as usize) << 32) | index as usize
}

pub(super) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `fstat` of `fd`: its identity, and whether it is a regular file.
fn ident_of(fd: RawFd) -> io::Result<(Ident, bool)> {
    // SAFETY: an all-zero stat is a valid value; fstat writes into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is live and writable; the kernel checks `fd`.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    Ok(((st.st_dev, st.st_ino), regular))
}

/// The error epoll gives for a regular file, on both backends.
fn not_pollable() -> io::Error {
    io::Error::from_raw_os_error(libc::EPERM)
}

impl Reactor {
    /// The reactor for `choice` (epoll if io_uring is refused).
    pub(crate) fn new(choice: IoBackend, workers: usize) -> io::Result<Reactor> {
        let backend = match choice {
            IoBackend::Epoll => Backend::Epoll(epoll::Epoll::new()?),
            IoBackend::Auto | IoBackend::Uring => match uring::Uring::new(workers) {
                Ok(u) => Backend::Uring(Box::new(u)),
                Err(_) => Backend::Epoll(epoll::Epoll::new()?),
            },
        };
        Ok(Reactor {
            backend,
            slots: Mutex::new((Vec::new(), Vec::new())),
            fds: (0..FD_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            live: AtomicUsize::new(0),
        })
    }

    /// The backend's name: `"io_uring"` or `"epoll"`.
    pub(crate) fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Epoll(_) => "epoll",
            Backend::Uring(_) => "io_uring",
        }
    }

    /// The fd table shard that holds `fd`.
    fn fd_shard(&self, fd: RawFd) -> &FdShard {
        &self.fds[fd as usize & (FD_SHARDS - 1)]
    }

    /// Puts `source` in a free slot and returns its key (also stored in
    /// the source).
    fn alloc_slot(&self, source: Arc<Source>) -> usize {
        let mut slots = self.slots.lock();
        let (list, free) = &mut *slots;
        let index = match free.pop() {
            Some(i) => {
                let s = &mut list[i as usize];
                s.generation = s.generation.wrapping_add(1) & GENERATION_MASK;
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
        let key = key_of(index, list[index as usize].generation);
        source.key.store(key as u64, Ordering::Relaxed);
        key
    }

    fn free_slot(&self, key: usize) {
        let mut slots = self.slots.lock();
        let index = (key & 0xffff_ffff) as u32;
        slots.0[index as usize].source = None;
        slots.1.push(index);
    }

    fn source_of(&self, key: u64) -> Option<Arc<Source>> {
        let index = (key & 0xffff_ffff) as u32;
        let generation = (key >> 32) as u32;
        let slots = self.slots.lock();
        match slots.0.get(index as usize) {
            Some(s) if s.generation == generation => s.source.clone(),
            _ => None,
        }
    }

    /// Adds `fd` under `key` to the kernel's set (epoll), or checks that
    /// it is a file the reactor can wait on (io_uring). Callers hold
    /// `fd`'s table shard (invariant 5). Returns the file's identity.
    fn add(&self, fd: RawFd, key: usize) -> io::Result<Ident> {
        match &self.backend {
            Backend::Epoll(e) => e.ctl(libc::EPOLL_CTL_ADD, fd, key).map(|()| (0, 0)),
            Backend::Uring(_) => match ident_of(fd)? {
                (_, true) => Err(not_pollable()),
                (ident, false) => Ok(ident),
            },
        }
    }

    /// Takes over a kernel entry for `fd` that nobody in goro holds
    /// (epoll's `EEXIST` after an add; never on io_uring).
    fn modify(&self, fd: RawFd, key: usize) -> io::Result<()> {
        match &self.backend {
            Backend::Epoll(e) => e.ctl(libc::EPOLL_CTL_MOD, fd, key),
            Backend::Uring(_) => Ok(()),
        }
    }

    /// Whether the file registered as `ident` under `key` is still at
    /// `fd` (`SharedRegistration::check`).
    fn still_there(&self, fd: RawFd, key: usize, ident: Ident) -> bool {
        match &self.backend {
            Backend::Epoll(e) => e.ctl(libc::EPOLL_CTL_MOD, fd, key).is_ok(),
            Backend::Uring(_) => matches!(ident_of(fd), Ok((i, _)) if i == ident),
        }
    }

    /// Takes `fd` out of the kernel's set (epoll), or removes the polls
    /// armed for `source` (io_uring). Callers hold `fd`'s table shard and
    /// have checked that the table names the caller for it (invariant 5).
    fn del(&self, fd: RawFd, source: &Source) {
        match &self.backend {
            Backend::Epoll(e) => e.del(fd),
            Backend::Uring(u) => u.disarm(
                source.key.load(Ordering::Relaxed),
                source.armed[0].swap(false, Ordering::AcqRel),
                source.armed[1].swap(false, Ordering::AcqRel),
            ),
        }
    }

    /// Ends a shared registration whose number another registration took
    /// over, or whose file is no longer at its number (invariant 5): no
    /// `epoll_ctl` by that number any more, only its slot freed and its
    /// waiters woken. An `Owned` entry is left to its `Registration`'s drop,
    /// which finds the table no longer names it.
    fn evict(&self, old: FdUse) {
        if let FdUse::Shared { key, source, .. } = old {
            if let Backend::Uring(u) = &self.backend {
                u.disarm(
                    key as u64,
                    source.armed[0].swap(false, Ordering::AcqRel),
                    source.armed[1].swap(false, Ordering::AcqRel),
                );
            }
            self.free_slot(key);
            self.live.fetch_sub(1, Ordering::Relaxed);
            source.close();
        }
    }

    /// Wakes a thread blocked in [`Reactor::poll`] (or makes its next poll
    /// return at once).
    pub(crate) fn notify(&self) {
        match &self.backend {
            Backend::Epoll(e) => e.notify(),
            Backend::Uring(u) => u.notify(),
        }
    }

    pub(crate) fn has_sources(&self) -> bool {
        self.live.load(Ordering::Relaxed) > 0
    }

    /// A readiness edge for `key`.
    fn deliver(&self, key: u64, readable: bool, writable: bool, hup: bool) {
        let Some(source) = self.source_of(key) else {
            return;
        };
        for (dir, ready) in [readable, writable].into_iter().enumerate() {
            if ready {
                source.ready_with(dir, hup);
            }
        }
    }

    /// An io_uring poll completion for `key`: the poll is no longer armed.
    fn deliver_poll(&self, key: u64, writable: bool) {
        let Some(source) = self.source_of(key) else {
            return;
        };
        let dir = writable as usize;
        source.armed[dir].store(false, Ordering::Release);
        source.ready(dir);
    }

    /// The wake-up latch's epoch, read by the reactor owner before its
    /// last look at the queues and handed to [`Reactor::poll`] (io_uring,
    /// where a busy worker's round may drain the owner's wake-up; always 0
    /// on epoll, where only the owner drains).
    pub(crate) fn wake_epoch(&self) -> usize {
        match &self.backend {
            Backend::Epoll(_) => 0,
            Backend::Uring(u) => u.wake_epoch(),
        }
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds on epoll,
    /// so never short) for events and delivers them; returns how many.
    /// With `since` (the reactor owner's [`Reactor::wake_epoch`]) it does
    /// not wait if a wake-up may have been drained by another thread since
    /// then.
    pub(crate) fn poll(&self, timeout: Option<Duration>, since: Option<usize>) -> usize {
        match &self.backend {
            Backend::Epoll(e) => {
                let mut n = 0;
                e.poll(timeout, |(key, r, w, hup)| {
                    n += 1;
                    self.deliver(key, r, w, hup);
                });
                n
            }
            Backend::Uring(u) => u
                .poll(timeout, since, |key, w| self.deliver_poll(key, w))
                .unwrap_or(0),
        }
    }

    /// Whether a busy worker's scheduling round should call
    /// [`Reactor::round`]: io_uring entries are queued or operations are
    /// in flight. Always false on epoll.
    #[inline]
    pub(crate) fn wants_round(&self, worker: usize) -> bool {
        match &self.backend {
            Backend::Epoll(_) => false,
            Backend::Uring(u) => u.wants_round(worker),
        }
    }

    /// A busy worker's round (io_uring): submit what is queued in one
    /// `io_uring_enter` per ring and reap completions without waiting.
    pub(crate) fn round(&self, worker: usize) {
        if let Backend::Uring(u) = &self.backend {
            u.round(worker, |key, w| self.deliver_poll(key, w));
        }
    }

    /// Worker `worker` searches for work before it sleeps (io_uring):
    /// completes its own ring's finished operations, whose coroutines it
    /// alone runs.
    pub(crate) fn reap_own(&self, worker: usize) -> usize {
        match &self.backend {
            Backend::Epoll(_) => 0,
            Backend::Uring(u) => u.reap_own(worker),
        }
    }

    /// Worker `worker` is about to sleep (io_uring): its own ring's
    /// operations in flight must wake the reactor owner when they
    /// complete (`uring.rs`, "a ring per worker"). `owner`: it is the
    /// reactor owner, whose wait submits the main ring.
    pub(crate) fn before_sleep(&self, worker: usize, owner: bool) {
        if let Backend::Uring(u) = &self.backend {
            u.before_sleep(worker, owner);
        }
    }

    /// Worker `worker` woke up (see [`Reactor::before_sleep`]).
    pub(crate) fn after_sleep(&self, worker: usize) {
        if let Backend::Uring(u) = &self.backend {
            u.after_sleep(worker);
        }
    }

    /// The ring, when an operation may go through it: io_uring, and the
    /// caller a coroutine (threads use readiness: no worker flushes for
    /// them, and they would pay an `io_uring_enter` per operation) outside
    /// a testing bubble (a bubble judges a member's socket wait by polling
    /// the socket, which an operation in flight would hide) and on a
    /// private stack. A shared-stack coroutine waits for readiness
    /// instead: an operation in flight holds a ring buffer (its own
    /// buffer may be evicted with its frames), and a shared-stack
    /// coroutine is there to park in as few bytes as it can.
    fn ring(&self) -> Option<&uring::OpRing> {
        match &self.backend {
            Backend::Uring(u)
                if crate::context::current_task()
                    .is_some_and(|t| t.bubble.is_none() && !t.frames.is_shared()) =>
            {
                u.op_ring()
            }
            _ => None,
        }
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
        let source = Source::new(fd);
        let key = r.alloc_slot(source.clone());
        let mut fds = r.fd_shard(fd).lock();
        let ident = match r.add(fd, key) {
            // io_uring: the same file at the same number is what epoll's
            // add refuses with `EEXIST`.
            Ok(ident) if ident != (0, 0) && fds.get(&fd).is_some_and(|u| u.ident() == ident) => {
                Err(io::Error::from_raw_os_error(libc::EEXIST))
            }
            other => other,
        };
        let ident = match ident {
            Ok(i) => i,
            Err(e) => {
                drop(fds);
                r.free_slot(key);
                return Err(e);
            }
        };
        r.live.fetch_add(1, Ordering::Relaxed);
        // The add succeeded, so whoever the table named for this number
        // registered a file that is no longer here (invariant 5).
        if let Some(old) = fds.insert(fd, FdUse::Owned { key, ident }) {
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

    /// Reads from a stream socket into `buf`, parking until data, end of
    /// file or an error comes, or until `timeout` (counted from the first
    /// wait) passes (`TimedOut`). What `recv(2)` with no flags returns.
    ///
    /// On io_uring, from a coroutine, a read that has to wait is a receive
    /// through the ring (`uring.rs`: the kernel fills a buffer of the
    /// operation's own, copied into `buf`); elsewhere it waits for
    /// readiness and retries.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// a.set_nonblocking(true).unwrap();
    /// // SAFETY: `a` outlives the registration.
    /// let reg = unsafe { goro::reactor::Registration::new(a.as_raw_fd()) }.unwrap();
    /// b.write_all(b"hi").unwrap();
    /// let got = goro::go!(move || {
    ///     let mut buf = [0; 8];
    ///     let n = reg.recv(&mut buf, None).unwrap();
    ///     buf[..n].to_vec()
    /// });
    /// assert_eq!(got.join().unwrap(), b"hi");
    /// ```
    ///
    /// # Errors
    ///
    /// What `recv(2)` reports; `TimedOut`; `NotConnected` if the
    /// registration is closed under the wait.
    pub fn recv(&self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        let r = &scheduler::get().reactor;
        let mut deadline = None;
        loop {
            let ring = r.ring().filter(|_| !buf.is_empty());
            if let Some(u) = ring
                && self.source.drained.load(Ordering::Relaxed)
            {
                let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
                match u.recv(self.fd, buf, d) {
                    Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Some(res) => {
                        // A bulk read that filled its buffer: more is likely
                        // there, so try first next time. Anything else
                        // (request-sized messages) keeps going to the
                        // ring, where a receive that finds data completes
                        // at submission, with no system call of its own.
                        let bulk = matches!(res, Ok(n) if n >= buf.len().min(uring::MAX_OP_BUF) && n >= BULK_READ);
                        self.source.drained.store(!bulk, Ordering::Relaxed);
                        return res;
                    }
                    None => {}
                }
            }
            let seen = self.seq(Interest::Readable);
            // epoll: the last read drained the socket and no edge came
            // since, so this one would say EAGAIN (`read_seq.rs`).
            let epoll = matches!(r.backend, Backend::Epoll(_));
            if epoll && read_seq::skip(seen) && !buf.is_empty() {
                let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
                self.wait(Interest::Readable, seen, d)?;
                continue;
            }
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                let n = n as usize;
                if epoll && n > 0 && n < buf.len() {
                    read_seq::short_read(&self.source.seq[0], seen, || is_stream(self.fd));
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(e),
            }
            if ring.is_some() && !self.source.drained.swap(true, Ordering::Relaxed) {
                continue;
            }
            let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
            self.wait(Interest::Readable, seen, d)?;
        }
    }

    /// Writes (a prefix of) `buf` to a stream socket, parking while its
    /// send buffer is full, up to `timeout` (counted from the first wait;
    /// `TimedOut`). What `send(2)` with `MSG_NOSIGNAL` returns.
    ///
    /// On io_uring, from a coroutine, the write goes through the ring at
    /// once (a copy of at most 64 KiB of `buf`), so that a worker's round
    /// submits many writes in one system call.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::fd::AsRawFd;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// a.set_nonblocking(true).unwrap();
    /// // SAFETY: `a` outlives the registration.
    /// let reg = unsafe { goro::reactor::Registration::new(a.as_raw_fd()) }.unwrap();
    /// let n = goro::go!(move || reg.send(b"hi", None).unwrap()).join().unwrap();
    /// let mut got = [0; 2];
    /// b.read_exact(&mut got[..n]).unwrap();
    /// assert_eq!(&got, b"hi");
    /// ```
    ///
    /// # Errors
    ///
    /// What `send(2)` reports (`BrokenPipe` once the peer is gone);
    /// `TimedOut`; `NotConnected` if the registration is closed under the
    /// wait.
    pub fn send(&self, buf: &[u8], timeout: Option<Duration>) -> io::Result<usize> {
        let r = &scheduler::get().reactor;
        let mut deadline = None;
        let mut ring = r.ring().filter(|_| !buf.is_empty());
        loop {
            if let Some(u) = ring {
                let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
                match u.send(self.fd, buf, d) {
                    Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => ring = None,
                    Some(res) => return res,
                    None => ring = None,
                }
            }
            let seen = self.seq(Interest::Writable);
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            let n =
                unsafe { libc::send(self.fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(e),
            }
            let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
            self.wait(Interest::Writable, seen, d)?;
        }
    }

    /// Accepts a connection on a listening socket: the new socket
    /// (non-blocking, close-on-exec) and the peer's address (`None` for a
    /// family other than IPv4 and IPv6), parking until one comes or
    /// `timeout` passes (`TimedOut`). Tries `accept4(2)` first; on
    /// io_uring, from a coroutine, then waits with an accept through the
    /// ring.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// l.set_nonblocking(true).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// // SAFETY: `l` outlives the registration.
    /// let reg = unsafe { goro::reactor::Registration::new(l.as_raw_fd()) }.unwrap();
    /// let h = goro::go!(move || reg.accept(None).map(|(_, peer)| peer.is_some()));
    /// let _c = std::net::TcpStream::connect(addr).unwrap();
    /// assert!(h.join().unwrap().unwrap());
    /// ```
    ///
    /// # Errors
    ///
    /// What `accept4(2)` reports (callers retry `ECONNABORTED` and the
    /// like); `TimedOut`; `NotConnected` if the registration is closed
    /// under the wait.
    pub fn accept(
        &self,
        timeout: Option<Duration>,
    ) -> io::Result<(OwnedFd, Option<std::net::SocketAddr>)> {
        let r = &scheduler::get().reactor;
        let mut deadline = None;
        let mut ring_next = false;
        loop {
            if ring_next && let Some(u) = r.ring() {
                let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
                match u.accept(self.fd, d) {
                    Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Some(res) => return res.map(|(fd, a)| (fd, inet_addr(&a))),
                    None => {}
                }
                ring_next = false;
            }
            let seen = self.seq(Interest::Readable);
            // SAFETY: an all-zero sockaddr_storage is valid; accept4 writes
            // at most `len` bytes into it.
            let mut a: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `a` and `len` are live and sized as the kernel is told.
            let fd = unsafe {
                libc::accept4(
                    self.fd,
                    (&raw mut a).cast(),
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: a new fd that nothing else owns.
                let fd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
                return Ok((fd, inet_addr(&a)));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(e),
            }
            if r.ring().is_some() {
                ring_next = true;
                continue;
            }
            let d = *deadline.get_or_insert_with(|| deadline_after(timeout));
            self.wait(Interest::Readable, seen, d)?;
        }
    }
}

/// A ring receive that fills a buffer of at least this many bytes sends
/// the next read back to trying the system call first (see `recv`).
const BULK_READ: usize = 4096;

fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| crate::testing::now().checked_add(t))
}

/// An IPv4 or IPv6 address from a raw one (`None` for other families).
fn inet_addr(a: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in,
            // which is smaller and less aligned than the storage.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(
                SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                    u16::from_be(v4.sin_port),
                )
                .into(),
            )
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(
                SocketAddrV6::new(
                    Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )
                .into(),
            )
        }
        _ => None,
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
            if let Some(FdUse::Owned { key, .. }) = fds.get(&self.fd)
                && *key == self.key
            {
                r.del(self.fd, &self.source);
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
        let source = Source::new(raw);
        let key = r.alloc_slot(source.clone());
        let added = match r.add(raw, key) {
            // A kernel entry nobody in goro holds (invariant 5): take it.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => r.modify(raw, key).map(|()| (0, 0)),
            other => other,
        };
        let ident = match added {
            Ok(i) => i,
            Err(e) => {
                drop(fds);
                r.free_slot(key);
                return Err(e);
            }
        };
        r.live.fetch_add(1, Ordering::Relaxed);
        fds.insert(
            raw,
            FdUse::Shared {
                key,
                source: source.clone(),
                shares: 1,
                ident,
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
                ..
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
        let ident = match fds.get(&raw) {
            Some(FdUse::Shared { key, ident, .. }) if *key == self.key => *ident,
            _ => return false,
        };
        if r.still_there(raw, self.key, ident) {
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
            r.del(raw, &self.source);
            fds.remove(&raw);
            drop(fds);
            r.free_slot(self.key);
            r.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
