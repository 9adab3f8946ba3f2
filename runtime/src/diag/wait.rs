//! Wait reasons: what a parked coroutine or thread waits on, where, and
//! since when.
//!
//! # Recording (the park path)
//!
//! Every park site in goro calls [`park_with`](crate::park::park_with) (or
//! its deadline variant) with a [`WaitKind`]; the function is
//! `#[track_caller]`, and so is every public blocking call above it
//! (`Receiver::recv`, `Mutex::lock`, `JoinHandle::join`, ...), so
//! [`Location::caller`] names the user's line, not goro's.
//!
//! A coroutine records into its task's [`WaitSlot`]: three relaxed stores
//! of values known at the call site (the packed kind is a constant, the
//! location a static address) plus one relaxed load of the coarse clock
//! (`diag::coarse_tick`). No clock is read on the park path: reading one
//! costs more than the whole budget (2 ns per park).
//!
//! A thread records into its [`ThreadWait`], registered once per thread in
//! a global list; parking a thread costs a futex anyway, so it reads the
//! precise clock.
//!
//! # Invariants
//!
//! 1. A slot is written only by its owner (the coroutine, or the thread),
//!    right before it parks. Readers (the dump, the deadlock check) read
//!    its three words one by one without a lock: a reader racing with a
//!    new park may see the kind of one park with the location of the next.
//!    Reports are diagnostics; nothing decides on a slot but the kind's
//!    family (IO, blocking, timed), which is written first.
//! 2. A coroutine's slot is meaningful only while its scheduling state is
//!    `Parked`; it keeps its last value afterwards.
//! 3. A thread's `state` is `WAITING` only between its own store before
//!    parking and its store after; a waker sets `token` (SeqCst) before it
//!    unparks, so a reader that sees `WAITING` and no token knows no wake-up
//!    has reached the thread since it started waiting (the deadlock check
//!    relies on it; see `deadlock.rs`).

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What a parked coroutine or thread waits on.
///
/// Shown in [`goro::dump`](crate::dump) as Go shows a goroutine's wait
/// reason (`[chan receive, 3 minutes]`), and returned by
/// [`coroutines`](crate::coroutines) in [`WaitInfo`].
///
/// ```
/// use goro::WaitKind;
/// assert_eq!(WaitKind::ChanRecv.to_string(), "chan receive");
/// assert_eq!(WaitKind::Select { arms: 3 }.to_string(), "select (3 arms)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitKind {
    /// A plain [`park`](crate::park::park) by user code.
    Park,
    /// A channel receive (`recv`, `recv_timeout`, `iter`...).
    ChanRecv,
    /// A channel send.
    ChanSend,
    /// A `select!` or `Select` with this many arms.
    Select {
        /// Arms of the select (not counting `default`).
        arms: u32,
    },
    /// `Mutex::lock`.
    MutexLock,
    /// `RwLock::read`.
    RwLockRead,
    /// `RwLock::write`.
    RwLockWrite,
    /// `Condvar::wait`.
    CondvarWait,
    /// `Semaphore::acquire`.
    Semaphore,
    /// `WaitGroup::wait`.
    WaitGroup,
    /// `Barrier::wait`.
    Barrier,
    /// `Once::call_once` waiting for another caller's initializer.
    Once,
    /// `JoinHandle::join`.
    Join,
    /// `goro::sleep`.
    Sleep,
    /// Waiting for a socket to become readable.
    NetRead {
        /// The file descriptor.
        fd: i32,
    },
    /// Waiting for a socket to become writable.
    NetWrite {
        /// The file descriptor.
        fd: i32,
    },
    /// `TcpListener::accept` and friends.
    NetAccept {
        /// The file descriptor.
        fd: i32,
    },
    /// `TcpStream::connect` in progress.
    NetConnect {
        /// The file descriptor.
        fd: i32,
    },
    /// Waiting for a job on the blocking pool (`goro::blocking`, DNS).
    Blocking,
    /// A `scope` waiting for its coroutines.
    Scope,
    /// Waiting for a context to be done.
    ContextDone,
    /// A timer or alarm (`chan::after`, `tick`) that has not fired yet.
    Timer,
}

impl WaitKind {
    /// For a socket wait: the fd and the `poll(2)` events it waits for,
    /// so that a testing bubble can tell whether the socket has anything
    /// for it now.
    pub(crate) fn socket_poll(self) -> Option<(i32, i16)> {
        match self {
            WaitKind::NetRead { fd } | WaitKind::NetAccept { fd } => Some((fd, libc::POLLIN)),
            WaitKind::NetWrite { fd } | WaitKind::NetConnect { fd } => Some((fd, libc::POLLOUT)),
            _ => None,
        }
    }
}

const T_PARK: u64 = 0;
const T_RECV: u64 = 1;
const T_SEND: u64 = 2;
const T_SELECT: u64 = 3;
const T_MUTEX: u64 = 4;
const T_RREAD: u64 = 5;
const T_RWRITE: u64 = 6;
const T_CONDVAR: u64 = 7;
const T_SEM: u64 = 8;
const T_WG: u64 = 9;
const T_BARRIER: u64 = 10;
const T_ONCE: u64 = 11;
const T_JOIN: u64 = 12;
const T_SLEEP: u64 = 13;
const T_NREAD: u64 = 14;
const T_NWRITE: u64 = 15;
const T_NACCEPT: u64 = 16;
const T_NCONNECT: u64 = 17;
const T_BLOCKING: u64 = 18;
const T_SCOPE: u64 = 19;
const T_CONTEXT: u64 = 20;
const T_TIMER: u64 = 21;

/// The packed kind of a join of coroutine `target` (the id rides in the
/// argument bits, which `WaitKind::Join` does not show).
pub(crate) const fn pack_join(target: u64) -> u64 {
    T_JOIN | (target << 8)
}

impl WaitKind {
    /// One word: the tag in the low byte, the argument above it.
    #[inline(always)]
    pub(crate) const fn pack(self) -> u64 {
        let (tag, arg) = match self {
            WaitKind::Park => (T_PARK, 0),
            WaitKind::ChanRecv => (T_RECV, 0),
            WaitKind::ChanSend => (T_SEND, 0),
            WaitKind::Select { arms } => (T_SELECT, arms as u64),
            WaitKind::MutexLock => (T_MUTEX, 0),
            WaitKind::RwLockRead => (T_RREAD, 0),
            WaitKind::RwLockWrite => (T_RWRITE, 0),
            WaitKind::CondvarWait => (T_CONDVAR, 0),
            WaitKind::Semaphore => (T_SEM, 0),
            WaitKind::WaitGroup => (T_WG, 0),
            WaitKind::Barrier => (T_BARRIER, 0),
            WaitKind::Once => (T_ONCE, 0),
            WaitKind::Join => (T_JOIN, 0),
            WaitKind::Sleep => (T_SLEEP, 0),
            WaitKind::NetRead { fd } => (T_NREAD, fd as u32 as u64),
            WaitKind::NetWrite { fd } => (T_NWRITE, fd as u32 as u64),
            WaitKind::NetAccept { fd } => (T_NACCEPT, fd as u32 as u64),
            WaitKind::NetConnect { fd } => (T_NCONNECT, fd as u32 as u64),
            WaitKind::Blocking => (T_BLOCKING, 0),
            WaitKind::Scope => (T_SCOPE, 0),
            WaitKind::ContextDone => (T_CONTEXT, 0),
            WaitKind::Timer => (T_TIMER, 0),
        };
        tag | (arg << 8)
    }

    pub(crate) fn unpack(w: u64) -> WaitKind {
        let arg = (w >> 8) as u32;
        match w & 0xff {
            T_RECV => WaitKind::ChanRecv,
            T_SEND => WaitKind::ChanSend,
            T_SELECT => WaitKind::Select { arms: arg },
            T_MUTEX => WaitKind::MutexLock,
            T_RREAD => WaitKind::RwLockRead,
            T_RWRITE => WaitKind::RwLockWrite,
            T_CONDVAR => WaitKind::CondvarWait,
            T_SEM => WaitKind::Semaphore,
            T_WG => WaitKind::WaitGroup,
            T_BARRIER => WaitKind::Barrier,
            T_ONCE => WaitKind::Once,
            T_JOIN => WaitKind::Join,
            T_SLEEP => WaitKind::Sleep,
            T_NREAD => WaitKind::NetRead { fd: arg as i32 },
            T_NWRITE => WaitKind::NetWrite { fd: arg as i32 },
            T_NACCEPT => WaitKind::NetAccept { fd: arg as i32 },
            T_NCONNECT => WaitKind::NetConnect { fd: arg as i32 },
            T_BLOCKING => WaitKind::Blocking,
            T_SCOPE => WaitKind::Scope,
            T_CONTEXT => WaitKind::ContextDone,
            T_TIMER => WaitKind::Timer,
            _ => WaitKind::Park,
        }
    }

    /// Whether something outside goro's primitives (the network, a
    /// blocking-pool thread) may end this wait: such a wait never counts
    /// towards a deadlock, nor (but for a socket wait with a deadline) as
    /// *durably blocked* in a testing bubble (`goro::testing`).
    pub fn is_external(self) -> bool {
        matches!(
            self,
            WaitKind::NetRead { .. }
                | WaitKind::NetWrite { .. }
                | WaitKind::NetAccept { .. }
                | WaitKind::NetConnect { .. }
                | WaitKind::Blocking
        )
    }
}

impl fmt::Display for WaitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WaitKind::Park => f.write_str("park"),
            WaitKind::ChanRecv => f.write_str("chan receive"),
            WaitKind::ChanSend => f.write_str("chan send"),
            WaitKind::Select { arms: 1 } => f.write_str("select (1 arm)"),
            WaitKind::Select { arms } => write!(f, "select ({arms} arms)"),
            WaitKind::MutexLock => f.write_str("mutex lock"),
            WaitKind::RwLockRead => f.write_str("rwlock read"),
            WaitKind::RwLockWrite => f.write_str("rwlock write"),
            WaitKind::CondvarWait => f.write_str("condvar wait"),
            WaitKind::Semaphore => f.write_str("semaphore acquire"),
            WaitKind::WaitGroup => f.write_str("waitgroup wait"),
            WaitKind::Barrier => f.write_str("barrier wait"),
            WaitKind::Once => f.write_str("once wait"),
            WaitKind::Join => f.write_str("join"),
            WaitKind::Sleep => f.write_str("sleep"),
            WaitKind::NetRead { fd } => write!(f, "net read fd {fd}"),
            WaitKind::NetWrite { fd } => write!(f, "net write fd {fd}"),
            WaitKind::NetAccept { fd } => write!(f, "net accept fd {fd}"),
            WaitKind::NetConnect { fd } => write!(f, "net connect fd {fd}"),
            WaitKind::Blocking => f.write_str("blocking"),
            WaitKind::Scope => f.write_str("scope wait"),
            WaitKind::ContextDone => f.write_str("context done"),
            WaitKind::Timer => f.write_str("timer"),
        }
    }
}

/// What a parked coroutine (or a thread blocked in a goro call) waits on:
/// the operation, the caller's source line and since when.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use goro::park::{self, WaitKind};
///
/// let go = Arc::new(AtomicBool::new(false));
/// let g = go.clone();
/// let (unparker_tx, unparker_rx) = std::sync::mpsc::channel();
/// let h = goro::go!(move || {
///     unparker_tx.send(park::current()).unwrap();
///     while !g.load(Ordering::Acquire) {
///         park::park_with(WaitKind::Park);
///     }
/// });
/// let id = h.id();
/// let parked = || {
///     goro::coroutines().into_iter().find(|c| c.id == id && c.wait.is_some())
/// };
/// let info = loop {
///     match parked() {
///         Some(info) => break info,
///         None => std::thread::yield_now(),
///     }
/// };
/// let wait = info.wait.unwrap();
/// assert_eq!(wait.kind, WaitKind::Park);
/// assert!(wait.location.file().ends_with(".rs"));
/// go.store(true, Ordering::Release);
/// unparker_rx.recv().unwrap().unpark();
/// h.join().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitInfo {
    /// The operation.
    pub kind: WaitKind,
    /// Where the blocking call was made (the user's line: goro's blocking
    /// calls are `#[track_caller]`).
    pub location: &'static Location<'static>,
    /// When the wait began. For coroutines this is read from a coarse
    /// clock refreshed by the workers (every few milliseconds while they
    /// are busy, at least every half second while the watchdog runs), so
    /// it may be early by that much; for threads it is exact.
    pub since: Instant,
}

impl WaitInfo {
    /// How long it has waited so far.
    pub fn waited(&self) -> Duration {
        self.since.elapsed()
    }
}

/// One waiter's record (invariant 1).
pub(crate) struct WaitSlot {
    kind: AtomicU64,
    loc: AtomicPtr<Location<'static>>,
    /// `diag::coarse_tick` (coroutines) or microseconds since the clock's
    /// epoch (threads) at the start of the wait.
    since: AtomicU64,
    /// The lock a coroutine waits for, while it waits in a lock call
    /// (`owner.rs`, whose invariants govern it); 0 otherwise.
    pub(crate) object: AtomicUsize,
}

impl WaitSlot {
    pub(crate) const fn new() -> WaitSlot {
        WaitSlot {
            kind: AtomicU64::new(0),
            loc: AtomicPtr::new(std::ptr::null_mut()),
            since: AtomicU64::new(0),
            object: AtomicUsize::new(0),
        }
    }

    /// Records a wait. Relaxed stores only (invariant 1).
    #[inline(always)]
    pub(crate) fn record(&self, kind: WaitKind, loc: &'static Location<'static>, since: u64) {
        self.record_packed(kind.pack(), loc, since);
    }

    /// [`WaitSlot::record`] of a packed kind, which may carry an argument
    /// the public kind does not show (a join's target, [`join_target`]).
    #[inline(always)]
    pub(crate) fn record_packed(&self, kind: u64, loc: &'static Location<'static>, since: u64) {
        self.kind.store(kind, Ordering::Relaxed);
        self.loc.store(
            loc as *const Location<'static> as *mut Location<'static>,
            Ordering::Relaxed,
        );
        self.since.store(since, Ordering::Relaxed);
    }

    pub(crate) fn kind(&self) -> WaitKind {
        WaitKind::unpack(self.kind.load(Ordering::Relaxed))
    }

    /// The packed kind, location and start of the last wait: equal for two
    /// readings of one wait (the leak report compares them).
    pub(crate) fn identity(&self) -> (u64, usize, u64) {
        (
            self.kind.load(Ordering::Relaxed),
            self.loc.load(Ordering::Relaxed) as usize,
            self.since.load(Ordering::Relaxed),
        )
    }

    /// For a join, the id of the coroutine joined (0 if not recorded).
    pub(crate) fn join_target(&self) -> Option<u64> {
        let w = self.kind.load(Ordering::Relaxed);
        (w & 0xff == T_JOIN).then_some(w >> 8)
    }

    /// The record, if one was ever made; `since` is converted by `at`.
    pub(crate) fn read(&self, at: impl Fn(u64) -> Instant) -> Option<WaitInfo> {
        let loc = self.loc.load(Ordering::Relaxed);
        if loc.is_null() {
            return None;
        }
        // SAFETY: only `&'static Location` values are ever stored.
        let location: &'static Location<'static> = unsafe { &*loc };
        Some(WaitInfo {
            kind: self.kind(),
            location,
            since: at(self.since.load(Ordering::Relaxed)),
        })
    }
}

/// A thread's state: running its own code.
pub(crate) const RUNNING: u8 = 0;
/// Blocked in a goro wait with no deadline.
pub(crate) const WAITING: u8 = 1;
/// Blocked in a goro wait with a deadline (never a deadlock).
pub(crate) const TIMED: u8 = 2;

/// How long a thread waits before it looks for a deadlock (and lets the
/// workers look): long enough that busy hand-offs never pay for a check,
/// short enough that a deadlocked program is reported at once to a human.
const DEADLOCK_GRACE: Duration = Duration::from_millis(10);

/// A thread that has waited in goro at least once (invariant 3).
pub(crate) struct ThreadWait {
    pub(crate) slot: WaitSlot,
    pub(crate) state: AtomicU8,
    /// Set by a waker before it unparks the thread.
    pub(crate) token: AtomicBool,
    /// Waits begun so far (the deadlock check compares two readings).
    pub(crate) seq: AtomicU64,
    /// Set by the deadlock check when this thread is one of the deadlocked.
    pub(crate) deadlocked: AtomicBool,
    pub(crate) name: Option<String>,
    pub(crate) tid: AtomicI32,
    pub(crate) thread: crate::loom::thread::Thread,
}

impl ThreadWait {
    fn new() -> ThreadWait {
        let t = std::thread::current();
        ThreadWait {
            slot: WaitSlot::new(),
            state: AtomicU8::new(RUNNING),
            token: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            deadlocked: AtomicBool::new(false),
            name: t.name().map(str::to_owned),
            tid: AtomicI32::new(super::gettid()),
            thread: crate::loom::thread::current(),
        }
    }

    /// The waker's side (invariant 3).
    pub(crate) fn unpark(&self) {
        self.token.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }

    /// Blocks the thread (std's park semantics: spurious returns allowed).
    #[track_caller]
    pub(crate) fn park(&self, kind: WaitKind, deadline: Option<Instant>) {
        if cfg!(loom) {
            // The models see the park token only (the record is not
            // modelled: loom explores the protocol, not the reports).
            match deadline {
                None => crate::loom::thread::park(),
                Some(_) => crate::loom::thread::park_timeout(Duration::ZERO),
            }
            return;
        }
        self.slot
            .record(kind, Location::caller(), super::micros_now());
        self.seq.fetch_add(1, Ordering::Relaxed);
        let state = if deadline.is_some() { TIMED } else { WAITING };
        self.state.store(state, Ordering::SeqCst);
        let mut counted = false;
        if !self.token.swap(false, Ordering::SeqCst) {
            match deadline {
                None => {
                    // A grace period first, so that a thread trading
                    // messages quickly with coroutines never pays for the
                    // deadlock check (it reads /proc).
                    crate::loom::thread::park_timeout(DEADLOCK_GRACE);
                    if !self.token.load(Ordering::SeqCst) {
                        counted = true;
                        super::deadlock::thread_waits(self);
                        crate::loom::thread::park();
                    }
                }
                Some(d) => {
                    let now = Instant::now();
                    if d > now {
                        crate::loom::thread::park_timeout(d - now);
                    }
                }
            }
            self.token.store(false, Ordering::SeqCst);
        }
        self.state.store(RUNNING, Ordering::SeqCst);
        if counted {
            super::deadlock::thread_done_waiting();
        }
        if self.deadlocked.swap(false, Ordering::SeqCst) {
            super::deadlock::on_deadlocked_thread();
        }
    }
}

static THREADS: Mutex<Vec<Weak<ThreadWait>>> = Mutex::new(Vec::new());

#[cfg(not(loom))]
thread_local! {
    static ME: Arc<ThreadWait> = {
        let me = Arc::new(ThreadWait::new());
        let mut list = THREADS.lock();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&me));
        me
    };
}

/// The calling thread's record (registered on first use).
#[cfg(not(loom))]
#[inline(never)]
pub(crate) fn current_thread() -> Arc<ThreadWait> {
    ME.with(Arc::clone)
}

/// Under loom every call makes a fresh, unregistered record.
#[cfg(loom)]
pub(crate) fn current_thread() -> Arc<ThreadWait> {
    Arc::new(ThreadWait::new())
}

/// Calls `f` for every live thread record.
pub(crate) fn for_each_thread(mut f: impl FnMut(&ThreadWait)) {
    let list: Vec<Arc<ThreadWait>> = THREADS.lock().iter().filter_map(Weak::upgrade).collect();
    for t in &list {
        f(t);
    }
}

/// Calls `f` for every live thread record, with its `Arc`.
pub(crate) fn for_each_thread_arc(mut f: impl FnMut(&Arc<ThreadWait>)) {
    let list: Vec<Arc<ThreadWait>> = THREADS.lock().iter().filter_map(Weak::upgrade).collect();
    for t in &list {
        f(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        let kinds = [
            WaitKind::Park,
            WaitKind::ChanRecv,
            WaitKind::ChanSend,
            WaitKind::Select { arms: 7 },
            WaitKind::MutexLock,
            WaitKind::RwLockRead,
            WaitKind::RwLockWrite,
            WaitKind::CondvarWait,
            WaitKind::Semaphore,
            WaitKind::WaitGroup,
            WaitKind::Barrier,
            WaitKind::Once,
            WaitKind::Join,
            WaitKind::Sleep,
            WaitKind::NetRead { fd: 5 },
            WaitKind::NetWrite { fd: i32::MAX },
            WaitKind::NetAccept { fd: 0 },
            WaitKind::NetConnect { fd: 3 },
            WaitKind::Blocking,
            WaitKind::Scope,
            WaitKind::ContextDone,
            WaitKind::Timer,
        ];
        for k in kinds {
            assert_eq!(WaitKind::unpack(k.pack()), k, "{k}");
        }
    }
}
