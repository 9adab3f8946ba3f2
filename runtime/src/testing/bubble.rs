//! A bubble's scheduler: one coroutine of the bubble runs at a time, in an
//! order fixed by the seed, and its virtual clock.
//!
//! # Invariants
//!
//! 1. *The baton.* At most one member of a bubble is queued on a worker
//!    or running (`running`). Every other runnable member waits in
//!    `ready`. A member gives the baton back only on its worker, after it
//!    is fully off its stack: parked (`try_mark_parked` succeeded),
//!    yielded, or finished ([`Bubble::release`]). So members never run in
//!    parallel, and which one runs next is `rng`'s choice among `ready`:
//!    the same seed gives the same interleaving.
//! 2. A woken or spawned member goes through [`Bubble::make_ready`]: it
//!    takes the baton if it is free, else it joins `ready`. (A token that
//!    arrives while the member switches out makes the worker resume it at
//!    once; it still holds the baton then.)
//! 3. *Durably blocked.* The bubble is idle when nobody holds the baton
//!    and `ready` is empty: every member is parked. If no member is parked
//!    in a blocking-pool wait or a socket wait without a deadline
//!    (`nondurable == 0`), and no socket that a member waits on with a
//!    deadline (`sockets`) has anything for it (a zero-timeout `poll(2)`),
//!    nothing outside the bubble's timers can wake any of them (see the
//!    `goro::testing` page for what goro cannot see), and then, in
//!    this order: the member in [`wait`](super::wait) is woken; or the
//!    clock jumps to the earliest virtual timer, which fires; or, with no
//!    timer, the bubble is deadlocked and `bubble` panics. A socket that
//!    has something wakes its member through the reactor, which makes it
//!    ready and so comes back here. Members use the reactor's readiness
//!    path (never the io_uring operations), so a zero-timeout poll sees
//!    everything that could wake them.
//! 4. Virtual timers are fired outside the lock, one at a time, in
//!    (deadline, insertion) order; the clock never goes backwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::park::Unparker;
use crate::scheduler;
use crate::task::{NO_HOME, Task};
use crate::timer::Due;

/// A key of a virtual timer: its deadline and insertion number.
pub(crate) type VKey = (Instant, u64);

pub(crate) struct State {
    /// The virtual clock.
    pub(crate) now: Instant,
    /// A member holds the baton (invariant 1).
    running: bool,
    ready: Vec<Arc<Task>>,
    rng: u64,
    /// Live members (spawned and not finished).
    pub(crate) members: usize,
    /// Members parked in a blocking-pool wait or a socket wait without a
    /// deadline.
    nondurable: usize,
    /// Socket waits with a deadline: key, fd, `poll(2)` events.
    sockets: Vec<(u64, i32, i16)>,
    timers: BTreeMap<VKey, Due>,
    seq: u64,
    /// The member blocked in `testing::wait`.
    waiter: Option<Unparker>,
    /// Set once the bubble can never run again.
    pub(crate) deadlocked: bool,
    /// The thread or coroutine in `bubble()`, woken when the bubble ends.
    pub(crate) owner: Option<Unparker>,
}

/// One bubble.
pub(crate) struct Bubble {
    pub(crate) id: u64,
    pub(crate) st: Mutex<State>,
}

impl Bubble {
    pub(crate) fn new(id: u64, start: Instant, seed: u64, owner: Unparker) -> Bubble {
        Bubble {
            id,
            st: Mutex::new(State {
                now: start,
                running: false,
                ready: Vec::new(),
                // splitmix64 needs a non-zero state to start varied.
                rng: seed ^ 0x9E37_79B9_7F4A_7C15,
                members: 0,
                nondurable: 0,
                sockets: Vec::new(),
                timers: BTreeMap::new(),
                seq: 0,
                waiter: None,
                deadlocked: false,
                owner: Some(owner),
            }),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.st.lock().now
    }

    /// A member was spawned (by a member or by `bubble`).
    pub(crate) fn spawned(&self, task: Arc<Task>) {
        self.st.lock().members += 1;
        self.make_ready(task);
    }

    /// Invariant 2.
    pub(crate) fn make_ready(&self, task: Arc<Task>) {
        let mut st = self.st.lock();
        if st.running {
            st.ready.push(task);
            return;
        }
        st.running = true;
        drop(st);
        run(task);
    }

    /// A member parked in an IO or blocking wait (before it switches out).
    pub(crate) fn enter_nondurable(&self) {
        self.st.lock().nondurable += 1;
    }

    pub(crate) fn leave_nondurable(&self) {
        self.st.lock().nondurable -= 1;
    }

    /// A member parks in a socket wait with a deadline (before it switches
    /// out): `(fd, poll events)`. Returns the key for
    /// [`leave_socket_wait`](Bubble::leave_socket_wait).
    pub(crate) fn enter_socket_wait(&self, (fd, events): (i32, i16)) -> u64 {
        let mut st = self.st.lock();
        st.seq += 1;
        let key = st.seq;
        st.sockets.push((key, fd, events));
        key
    }

    pub(crate) fn leave_socket_wait(&self, key: u64) {
        self.st.lock().sockets.retain(|&(k, _, _)| k != key);
    }

    /// The running member yielded: it joins `ready` and the baton moves.
    pub(crate) fn yielded(&self, task: Arc<Task>) {
        self.st.lock().ready.push(task);
        self.release();
    }

    /// The running member finished.
    pub(crate) fn exited(&self) {
        let owner = {
            let mut st = self.st.lock();
            st.members -= 1;
            if st.members == 0 {
                st.owner.take()
            } else {
                None
            }
        };
        if let Some(o) = owner {
            o.unpark();
        }
        self.release();
    }

    /// The baton holder is off its stack: hand the baton to a seeded choice
    /// among `ready`, or, idle, advance (invariant 3).
    pub(crate) fn release(&self) {
        let mut st = self.st.lock();
        if !st.ready.is_empty() {
            let t = pick(&mut st);
            drop(st);
            run(t);
            return;
        }
        st.running = false;
        drop(st);
        self.advance();
    }

    /// Invariant 3, while idle.
    fn advance(&self) {
        loop {
            let mut st = self.st.lock();
            if st.running || !st.ready.is_empty() || st.nondurable > 0 || st.members == 0 {
                return;
            }
            if st
                .sockets
                .iter()
                .any(|&(_, fd, events)| has_something(fd, events))
            {
                return;
            }
            if let Some(w) = st.waiter.take() {
                drop(st);
                w.unpark();
                continue;
            }
            match st.timers.pop_first() {
                Some((key, due)) => {
                    if key.0 > st.now {
                        st.now = key.0;
                    }
                    drop(st);
                    due.fire();
                }
                None => {
                    st.deadlocked = true;
                    let owner = st.owner.take();
                    drop(st);
                    if let Some(o) = owner {
                        o.unpark();
                    }
                    return;
                }
            }
        }
    }

    pub(crate) fn insert_timer(&self, at: Instant, due: Due) -> VKey {
        let mut st = self.st.lock();
        st.seq += 1;
        let key = (at, st.seq);
        st.timers.insert(key, due);
        key
    }

    /// True if the timer had not fired.
    pub(crate) fn cancel_timer(&self, key: VKey) -> bool {
        let removed = self.st.lock().timers.remove(&key);
        removed.is_some()
    }

    /// `testing::wait` from a member: registers it; the caller then parks.
    pub(crate) fn set_waiter(&self, u: Unparker) {
        let mut st = self.st.lock();
        assert!(
            st.waiter.is_none(),
            "goro: testing::wait called by two coroutines of one bubble at once"
        );
        st.waiter = Some(u);
    }

    /// Whether `u` is still registered in `wait`.
    pub(crate) fn is_waiter(&self, u: &Unparker) -> bool {
        let st = self.st.lock();
        st.waiter.as_ref().is_some_and(|w| w.same_target(u))
    }
}

impl std::fmt::Debug for Bubble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bubble").field("id", &self.id).finish()
    }
}

/// The next member to run: a seeded choice (splitmix64).
fn pick(st: &mut State) -> Arc<Task> {
    st.rng = st.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = st.rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let i = (z % st.ready.len() as u64) as usize;
    st.ready.swap_remove(i)
}

/// Queues the member that holds the baton on a worker.
fn run(task: Arc<Task>) {
    if task.home() == NO_HOME {
        scheduler::get().push_fresh(task);
    } else {
        scheduler::schedule_woken_direct(task);
    }
}

/// Whether a zero-timeout `poll(2)` says `fd` has `events` (or an error or
/// hang-up, which also wake its waiter) now. An interrupted poll is
/// retried; any other error of `poll` itself counts as "something": the
/// bubble then waits instead of jumping ahead.
fn has_something(fd: i32, events: i16) -> bool {
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd and the count is 1; a zero
        // timeout never blocks. An fd closed meanwhile yields POLLNVAL,
        // not UB.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n >= 0 {
            return n > 0;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return true;
        }
    }
}
