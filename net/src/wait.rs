//! Readiness of any file descriptor, for third-party IO code:
//! [`wait_readable`] and [`wait_writable`].
//!
//! The fd belongs to other code (a database driver, a C library, and soon
//! the libc hooks), which may wait on it from several coroutines and
//! threads at once: a reader and a writer (full duplex), or many readers.
//! All of them share one reactor registration of the fd, a
//! `goro_runtime::reactor::SharedRegistration` each, counted in the
//! reactor's fd table (`goro_runtime::reactor`, invariant 5), and the fd
//! is registered exactly while it has waiters.
//!
//! # Protocol
//!
//! 1. **Look up.** Take a share of the fd's registration if it has one
//!    (`SharedRegistration::find`: the fd table's shard lock, no system
//!    call). An fd held by a `Registration`, such as a goro socket's, is
//!    refused with `AlreadyExists`: goro's sockets already wait on their
//!    own fds, through their own methods.
//! 2. **Look at the fd.** With a share, read the direction's readiness
//!    sequence, *then* `poll(2)` the fd with a zero timeout; without one,
//!    just poll. Ready: return `Ok` (dropping the share, step 6), having
//!    registered nothing.
//! 3. **Register if first.** `SharedRegistration::join` under the shard
//!    lock: either a registration appeared since step 1 (join it, and read
//!    the sequence and poll as in step 2), or add the fd to epoll. A fresh
//!    registration's sequences start at 0 and the kernel reports the fd's
//!    readiness at the add as an edge, so it waits from 0 without a poll.
//! 4. **Park** until the sequence moves past the value from step 2 or 3,
//!    then return `Ok`. Each edge wakes every waiter of its direction.
//!    Readiness may be spurious (another reader took the data): callers
//!    retry their operation and wait again on `WouldBlock`.
//! 5. **Check while parked.** The kernel says nothing when an fd is
//!    closed, so a waiter whose fd other code closes under it (breaking
//!    I/O safety) would wait forever. Each park is therefore bounded by a
//!    check time, [`FIRST_CHECK`] after the wait starts and doubling up to
//!    [`MAX_CHECK`]: a waiter that reaches it calls
//!    `SharedRegistration::check`, one `EPOLL_CTL_MOD`, which fails once
//!    the registered file is no longer at that number. Then the
//!    registration is evicted and all its waiters wake (step 7).
//! 6. **Leave.** Dropping the share; the last one deletes the fd from
//!    epoll, under the shard lock, while the fd is still borrowed.
//! 7. **After an eviction** (the fd was closed, or its number reused, under
//!    the wait; also when a goro socket takes over the number): poll the
//!    number once more. Closed: `EBADF`. Open: `Ok`, readiness that may be
//!    spurious, as in step 4.
//!
//! # Invariants
//!
//! - **One registration per fd.** All waiters of an fd, both directions,
//!   coroutines and threads, share one epoll registration, made by the
//!   first (step 3) and deleted by the last (step 6); the fd table's shard
//!   lock orders joins and leaves, so a leave that deletes and a join that
//!   adds never overlap.
//! - **No lost wake-up.** A waiter's starting sequence is read before the
//!   poll that found the fd not ready (step 2), or is 0 on a registration
//!   whose add reported the fd's state (step 3). Readiness after that
//!   point moves the sequence, and the sequence is re-read after the waiter
//!   has queued itself (`goro_runtime::reactor`, `Source::wait`).
//! - **No stale wake on a reused number.** The last waiter deletes the fd
//!   while it still borrows it, so before the fd can be closed and its
//!   number reused; events find their registration by a key with a
//!   generation, so an event of an old registration finds nothing.
//! - **A close under a waiter never hangs it and never touches another
//!   registration.** The waiter wakes at its next check (step 5). Every
//!   `epoll_ctl` by number happens under the shard lock and only while the
//!   fd table names the caller for that number, and any registration that
//!   takes the number over evicts the old one first (`goro_runtime::reactor`,
//!   invariant 5), so a modify or delete by a stale waiter cannot reach a
//!   later file's registration. The cost of such a close falls on the
//!   number's next user only briefly: a waiter on a new fd that got the
//!   number before the eviction joins the stale registration, and wakes
//!   (spuriously, and at most [`FIRST_CHECK`] late) at its own first check,
//!   after which its retry registers the new file. A goro socket that gets
//!   the number evicts the stale registration at once.
//!
//! # Costs
//!
//! An fd ready at once: one lock and one `poll`. A waiter that joins an fd
//! others already wait on: one `poll` and no `epoll_ctl` (locks to join
//! and leave, and a timer for the check, which is cancelled if readiness
//! comes first). A waiter alone on its fd adds the fd and deletes it
//! again: two `epoll_ctl` per wait that parks. A waiter parked past its
//! check times costs one wake-up and one `epoll_ctl` per check, one every
//! [`MAX_CHECK`] at most once it has waited a while. Code that waits on
//! one fd over and over should hold a share (or a `Registration`) for the
//! fd's life and read the sequence before each operation: then no wait
//! needs a system call of its own.
//!
//! # Rejected
//!
//! - *A registration per call*: a second waiter on the fd, such as the
//!   writer beside a reader, fails its add with `EEXIST`.
//! - *`EPOLLONESHOT`*: each edge disarms the fd, so every wait would need
//!   an `EPOLL_CTL_MOD` to re-arm it (a system call per wait even while the
//!   fd has other waiters), and one direction's edge would disarm the
//!   other's waiters too.
//! - *Level-triggered*: a readable fd whose waiters are busy retrying (or
//!   have left while other waiters stay for writing) is reported by every
//!   `epoll_wait` again, so the reactor would spin; edges with sequences
//!   need no re-arm and report each change once.
//! - *Keeping the registration after the last waiter leaves*, to save the
//!   delete and the next add: goro does not see the owner close the fd,
//!   so the table would keep naming a number whose file is gone, and the
//!   next waiter on a reused number would join a registration of a file
//!   that is no longer there. Code that knows the fd's lifetime (the libc
//!   hooks will: they see `close`) can hold a share for it instead.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use goro_runtime::reactor::{Interest, SharedRegistration};

/// The first check of a parked waiter's registration (step 5). Short,
/// because the bug it catches (code closing an fd that a wait still
/// borrows) usually closes it right after the wait began.
const FIRST_CHECK: Duration = Duration::from_millis(100);

/// The longest gap between checks (step 5): a waiter parked for hours
/// costs one wake-up and one `epoll_ctl` per this much time, and a close
/// under it is found within about this much time.
const MAX_CHECK: Duration = Duration::from_secs(10);

/// Waits until `fd` is readable (or has an error or a hang-up to report),
/// parking only the calling coroutine; on a plain thread it blocks the
/// thread. Gives up with `TimedOut` at `deadline`.
///
/// This is the hook for code goro does not own: a database driver or a C
/// library that exposes its socket can put it in non-blocking mode, try
/// its operation, and call this when the operation says `EAGAIN`, then try
/// again (readiness may be spurious; always retry the operation).
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream; // std's, not goro's
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// b.set_nonblocking(true).unwrap();
/// let h = goro::go!(move || {
///     let mut buf = [0; 4];
///     loop {
///         match b.read(&mut buf) {
///             Ok(n) => return buf[..n].to_vec(),
///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
///                 goro::net::wait_readable(&b, None).unwrap();
///             }
///             Err(e) => panic!("{e}"),
///         }
///     }
/// });
/// a.write_all(b"ok").unwrap();
/// assert_eq!(h.join().unwrap(), b"ok");
/// ```
///
/// Any number of coroutines and threads may wait on one fd at once, for
/// reading and writing; they share one registration with the reactor, held
/// while the fd has waiters (goro-net's `wait.rs` gives the protocol and
/// what it costs). Code that waits on one fd over and over can keep a
/// [`goro_runtime::reactor::Registration`] instead (`goro::reactor` in the
/// facade), which is what goro's own sockets do.
///
/// If other code closes `fd` while this waits on it, the wait returns
/// within a bounded time (about 10 s at worst, usually far sooner):
/// `EBADF` if the number is free, otherwise `Ok` (the number now names
/// another file; the retried operation will tell).
///
/// # Errors
///
/// `TimedOut` when the deadline passes; `EBADF` for a closed fd;
/// `AlreadyExists` for an fd that a goro socket (or a reactor
/// `Registration`) holds: use that socket's own methods instead.
pub fn wait_readable(fd: impl AsFd, deadline: Option<Instant>) -> io::Result<()> {
    wait(fd.as_fd(), Interest::Readable, deadline)
}

/// Waits until `fd` is writable (or has an error or a hang-up to report);
/// see [`wait_readable`].
pub fn wait_writable(fd: impl AsFd, deadline: Option<Instant>) -> io::Result<()> {
    wait(fd.as_fd(), Interest::Writable, deadline)
}

/// Whether `fd` is ready now, by a zero-timeout `poll(2)`; `EBADF` if the
/// number is not open.
fn ready_now(fd: BorrowedFd<'_>, interest: Interest) -> io::Result<bool> {
    let events = match interest {
        Interest::Readable => libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP,
        Interest::Writable => libc::POLLOUT,
    };
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid pollfd and we pass a count of 1; a zero
        // timeout never blocks.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n >= 0 {
            if p.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn wait(fd: BorrowedFd<'_>, interest: Interest, deadline: Option<Instant>) -> io::Result<()> {
    // Steps 1 to 3 of the protocol.
    let (share, seen) = match SharedRegistration::find(fd)? {
        Some(share) => {
            let seen = share.seq(interest);
            if ready_now(fd, interest)? {
                return Ok(());
            }
            (share, seen)
        }
        None => {
            if ready_now(fd, interest)? {
                return Ok(());
            }
            let share = SharedRegistration::join(fd)?;
            if share.registered() {
                (share, 0)
            } else {
                let seen = share.seq(interest);
                if ready_now(fd, interest)? {
                    return Ok(());
                }
                (share, seen)
            }
        }
    };
    park_on(&share, interest, seen, deadline)
    // Step 6: `share` drops here.
}

/// Steps 4, 5 and 7: parks on `share` until the sequence of `interest`
/// moves past `seen`, checking the registration at growing intervals.
fn park_on(
    share: &SharedRegistration<'_>,
    interest: Interest,
    seen: u64,
    deadline: Option<Instant>,
) -> io::Result<()> {
    let mut every = FIRST_CHECK;
    loop {
        let check_at = goro_runtime::testing::now().checked_add(every);
        let (until, checking) = match (deadline, check_at) {
            (Some(d), Some(c)) if c < d => (Some(c), true),
            (None, Some(c)) => (Some(c), true),
            (d, _) => (d, false),
        };
        match share.wait(interest, seen, until) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if !checking {
                    return Err(e);
                }
                if !share.check() {
                    return after_eviction(share, interest);
                }
                every = (every * 2).min(MAX_CHECK);
            }
            Err(_) => return after_eviction(share, interest),
        }
    }
}

/// Step 7: `EBADF` if the number is closed, else (spurious) readiness.
fn after_eviction(share: &SharedRegistration<'_>, interest: Interest) -> io::Result<()> {
    ready_now(share.fd(), interest).map(drop)
}
