//! `PollFd`: one non-blocking socket, its reactor registration and its
//! timeouts, shared by every handle of the socket (Go's `poll.FD` plus
//! `pollDesc`).
//!
//! # Invariants
//!
//! 1. The socket is in non-blocking mode at the OS level for as long as a
//!    `PollFd` owns it, and it is registered with the reactor exactly once,
//!    here, for that whole time. `try_clone` shares this one registration
//!    (an `Arc`), it never registers the fd again.
//! 2. An operation reads the direction's readiness sequence, *then* tries
//!    the system call, and waits for the sequence to move only when the
//!    call said `WouldBlock` (see `goro_runtime::reactor`, invariant 2).
//!    Nothing is cleared, so a readiness edge can never be lost between the
//!    call and the wait, and the common case (data already there) costs
//!    exactly one system call. (The one exception, a drained mark that
//!    is set only if no edge came since the read began, is below.) On the
//!    io_uring backend, stream reads, writes and accepts from coroutines
//!    (`PollFd::recv`, `send`, `accept`) complete through the ring instead; the runtime's
//!    `reactor/uring.rs` argues why no data is lost to a timeout and why
//!    no buffer of the caller's is ever lent to the kernel. Everything
//!    else still follows the sequence protocol, with readiness from polls
//!    through the ring.
//! 3. `reg` is declared before `sock`, so when the last handle drops, the
//!    registration is dropped first: the fd is deleted from the poller and
//!    every waiter is woken while the fd is still open, and only then is
//!    the fd closed and its number free for reuse.
//! 4. Every operation that waits borrows a handle, so the last handle
//!    cannot drop while an operation waits on it; a waiter is never woken
//!    by a close. (To interrupt a blocked reader or writer from elsewhere,
//!    `shutdown` the socket: readers then see end of file, writers
//!    `BrokenPipe`. This is what std offers too.)
//! 5. Timeouts are per call, as with std's `SO_RCVTIMEO`/`SO_SNDTIMEO`:
//!    each read (write) may wait up to the read (write) timeout, measured
//!    from the moment it first has to wait. When it passes, the call fails
//!    with `EAGAIN` (kind `WouldBlock`), exactly the error std reports on
//!    Linux.
//!
//! On epoll, a stream read that returned less than it asked marks the
//! socket drained, and the next read waits for the next edge without a
//! `recv` that would say `EAGAIN` (tokio does the same). That cannot lose
//! an end of file or an error that came with the last data, because a
//! hang-up edge turns the saving off for good, nor a datagram, because
//! only stream sockets are marked: `goro_runtime`'s `reactor/read_seq.rs`
//! argues it, with a model check.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goro_runtime::reactor::{Interest, Registration};

/// The state every handle of one socket shares.
struct Shared<S> {
    // Invariant 3: `reg` must stay declared before `sock`.
    reg: Registration,
    sock: S,
    /// Read timeout in nanoseconds, 0 for none.
    read_timeout: AtomicU64,
    /// Write timeout in nanoseconds, 0 for none.
    write_timeout: AtomicU64,
}

/// A shared, registered, non-blocking socket.
pub(crate) struct PollFd<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for PollFd<S> {
    fn clone(&self) -> Self {
        PollFd {
            shared: self.shared.clone(),
        }
    }
}

impl<S: AsFd> PollFd<S> {
    /// Registers `sock`, which the caller has already put in non-blocking
    /// mode.
    pub(crate) fn new(sock: S) -> io::Result<PollFd<S>> {
        let fd = sock.as_fd().as_raw_fd();
        // SAFETY: `sock` owns the fd and moves into the same `Shared` as
        // the registration, where it is dropped (closed) only after the
        // registration (invariant 3).
        let reg = unsafe { Registration::new(fd) }?;
        Ok(PollFd {
            shared: Arc::new(Shared {
                reg,
                sock,
                read_timeout: AtomicU64::new(0),
                write_timeout: AtomicU64::new(0),
            }),
        })
    }

    /// The socket, for calls that never block (options, addresses).
    pub(crate) fn get(&self) -> &S {
        &self.shared.sock
    }

    /// The registration, for protocols that wait by hand (connect).
    pub(crate) fn registration(&self) -> &Registration {
        &self.shared.reg
    }

    /// Takes the socket back out of the runtime if this is its only handle:
    /// deregisters it (invariant 3) and leaves it in non-blocking mode.
    pub(crate) fn into_inner(self) -> Result<S, PollFd<S>> {
        match Arc::try_unwrap(self.shared) {
            Ok(Shared { reg, sock, .. }) => {
                drop(reg);
                Ok(sock)
            }
            Err(shared) => Err(PollFd { shared }),
        }
    }

    fn timeout_cell(&self, interest: Interest) -> &AtomicU64 {
        match interest {
            Interest::Readable => &self.shared.read_timeout,
            Interest::Writable => &self.shared.write_timeout,
        }
    }

    /// std's `set_read_timeout`/`set_write_timeout`: `Some(0)` is an
    /// `InvalidInput` error, `None` waits forever.
    pub(crate) fn set_timeout(&self, interest: Interest, t: Option<Duration>) -> io::Result<()> {
        let nanos = match t {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ));
            }
            // At least 1 ns; beyond u64::MAX ns (584 years) means forever
            // in all but name.
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
        };
        self.timeout_cell(interest).store(nanos, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn timeout(&self, interest: Interest) -> Option<Duration> {
        match self.timeout_cell(interest).load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Runs `op` until it stops saying `WouldBlock`, waiting for
    /// `interest` in between (invariant 2) within the direction's timeout
    /// (invariant 5).
    #[inline]
    pub(crate) fn io<R>(
        &self,
        interest: Interest,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_as(interest, None, op)
    }

    /// [`PollFd::io`] whose waits show in the dump as `kind` (`None`: by
    /// interest, `net read`/`net write`).
    #[inline]
    pub(crate) fn io_as<R>(
        &self,
        interest: Interest,
        kind: Option<goro_runtime::WaitKind>,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut deadline = Deadline::Unset;
        loop {
            let seen = self.shared.reg.seq(interest);
            match op(&self.shared.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            self.wait(interest, seen, &mut deadline, kind)?;
        }
    }

    /// [`PollFd::io`] that also ends when `ctx` is done (the protocol in
    /// `cancel.rs`): fails at once with the context's error if it is done
    /// already, and otherwise waits interruptibly, registering one done
    /// hook for the whole call the first time it has to wait.
    pub(crate) fn io_ctx<R>(
        &self,
        interest: Interest,
        ctx: &goro_context::context::Context,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_ctx_as(interest, None, ctx, op)
    }

    /// [`PollFd::io_ctx`] whose waits show in the dump as `kind`.
    pub(crate) fn io_ctx_as<R>(
        &self,
        interest: Interest,
        kind: Option<goro_runtime::WaitKind>,
        ctx: &goro_context::context::Context,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        crate::cancel::check(ctx)?;
        let mut deadline = Deadline::Unset;
        let mut hook = None;
        loop {
            let seen = self.shared.reg.seq(interest);
            match op(&self.shared.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            let at = self.deadline(interest, &mut deadline);
            match crate::cancel::wait(&self.shared.reg, interest, seen, at, ctx, &mut hook, kind) {
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        && crate::context_error(&e).is_none() =>
                {
                    return Err(io::Error::from_raw_os_error(libc::EAGAIN));
                }
                r => r?,
            }
        }
    }

    /// The call's deadline from the direction's timeout, computed on the
    /// call's first wait (invariant 5).
    fn deadline(&self, interest: Interest, deadline: &mut Deadline) -> Option<Instant> {
        match *deadline {
            Deadline::At(at) => at,
            Deadline::Unset => {
                let at = self
                    .timeout(interest)
                    .and_then(|t| goro_runtime::testing::now().checked_add(t));
                *deadline = Deadline::At(at);
                at
            }
        }
    }

    /// A stream read (`recv(2)`, no flags) within the read timeout. On
    /// io_uring a read that has to wait goes through the ring (see
    /// `goro_runtime::reactor::Registration::recv`); invariants 2 and 5
    /// hold either way.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        timed_out_is_eagain(self.shared.reg.recv(buf, self.timeout(Interest::Readable)))
    }

    /// A stream write (`send(2)` with `MSG_NOSIGNAL`) within the write
    /// timeout; through the ring on io_uring.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        timed_out_is_eagain(self.shared.reg.send(buf, self.timeout(Interest::Writable)))
    }

    /// One `accept4` (non-blocking, close-on-exec), waiting as `recv` does.
    pub(crate) fn accept(
        &self,
    ) -> io::Result<(std::os::fd::OwnedFd, Option<std::net::SocketAddr>)> {
        timed_out_is_eagain(self.shared.reg.accept(self.timeout(Interest::Readable)))
    }

    #[cold]
    fn wait(
        &self,
        interest: Interest,
        seen: u64,
        deadline: &mut Deadline,
        kind: Option<goro_runtime::WaitKind>,
    ) -> io::Result<()> {
        let at = match *deadline {
            Deadline::At(at) => at,
            Deadline::Unset => {
                let at = self
                    .timeout(interest)
                    .and_then(|t| goro_runtime::testing::now().checked_add(t));
                *deadline = Deadline::At(at);
                at
            }
        };
        match self.shared.reg.wait_as(interest, seen, at, &|| false, kind) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // What std's SO_RCVTIMEO/SO_SNDTIMEO give on Linux.
                Err(io::Error::from_raw_os_error(libc::EAGAIN))
            }
            r => r,
        }
    }
}

/// What std's `SO_RCVTIMEO`/`SO_SNDTIMEO` give on Linux for a call that
/// timed out (invariant 5).
fn timed_out_is_eagain<T>(r: io::Result<T>) -> io::Result<T> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            Err(io::Error::from_raw_os_error(libc::EAGAIN))
        }
        r => r,
    }
}

/// A call's deadline, computed only once the call first has to wait, so a
/// call that never waits never reads the clock.
#[derive(Clone, Copy)]
enum Deadline {
    Unset,
    At(Option<Instant>),
}

impl<S: AsFd> AsFd for PollFd<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.sock.as_fd()
    }
}

impl<S: AsFd> AsRawFd for PollFd<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.sock.as_fd().as_raw_fd()
    }
}

/// The error of `into_std` on a socket that other handles
/// (`try_clone`) still share: `PollFd::into_inner` needs the only one.
pub(crate) fn shared_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        "other handles (try_clone) still share this socket",
    )
}

/// The trait impls every socket type delegates to its `PollFd` (as std's
/// `impl_as_raw_fd!` does for its fd wrappers): `$t` wraps a
/// `PollFd<$std>` in a field named `fd` and has a `from_std`.
///
/// - `TryFrom<$std>`: `from_std`, which can fail (non-blocking mode,
///   registration with the reactor), hence not `From`;
/// - `Debug`: the std socket's (address and fd);
/// - `AsFd` and `AsRawFd`: the socket's fd.
macro_rules! impl_socket_traits {
    ($($t:ident => $std:ty),+ $(,)?) => {$(
        impl ::std::convert::TryFrom<$std> for $t {
            type Error = ::std::io::Error;
            fn try_from(s: $std) -> ::std::io::Result<$t> {
                $t::from_std(s)
            }
        }

        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(self.fd.get(), f)
            }
        }

        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(&self.fd)
            }
        }

        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                ::std::os::fd::AsRawFd::as_raw_fd(&self.fd)
            }
        }
    )+};
}
pub(crate) use impl_socket_traits;

/// The error std gives when an address list resolves to nothing.
pub(crate) fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any addresses",
    )
}

/// Tries `f` on each address in turn, returning the first success or the
/// last error, as std's `each_addr` does.
pub(crate) fn each_addr<T>(
    addrs: impl IntoIterator<Item = std::net::SocketAddr>,
    mut f: impl FnMut(&std::net::SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pollfd() -> PollFd<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        PollFd::new(s).unwrap()
    }

    #[test]
    fn timeouts_follow_std_rules() {
        let fd = pollfd();
        assert_eq!(fd.timeout(Interest::Readable), None);
        let e = fd
            .set_timeout(Interest::Readable, Some(Duration::ZERO))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        fd.set_timeout(Interest::Writable, Some(Duration::from_nanos(1)))
            .unwrap();
        assert_eq!(
            fd.timeout(Interest::Writable),
            Some(Duration::from_nanos(1))
        );
        // Absurdly long timeouts saturate instead of wrapping to "none".
        fd.set_timeout(Interest::Readable, Some(Duration::MAX))
            .unwrap();
        assert!(fd.timeout(Interest::Readable).unwrap() > Duration::from_secs(1 << 34));
        // Clones share timeouts.
        let other = fd.clone();
        fd.set_timeout(Interest::Readable, None).unwrap();
        assert_eq!(other.timeout(Interest::Readable), None);
    }

    #[test]
    fn a_timed_out_wait_is_eagain_like_std() {
        let fd = pollfd();
        fd.set_timeout(Interest::Readable, Some(Duration::from_millis(5)))
            .unwrap();
        let mut buf = [0u8; 4];
        let e = fd.io(Interest::Readable, |s| s.recv(&mut buf)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
    }

    #[test]
    fn into_inner_needs_the_only_handle() {
        let fd = pollfd();
        let other = fd.clone();
        let fd = fd.into_inner().map(drop).unwrap_err();
        drop(other);
        let sock = fd.into_inner().ok().unwrap();
        assert!(sock.local_addr().is_ok());
    }

    #[test]
    fn each_addr_returns_the_first_success_or_the_last_error() {
        let a: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.1:2".parse().unwrap();
        let r = each_addr([a, b], |x| {
            if x.port() == 2 {
                Ok(x.port())
            } else {
                Err(io::Error::other("no"))
            }
        });
        assert_eq!(r.unwrap(), 2);
        let e = each_addr([a, b], |x| Err::<(), _>(io::Error::other(x.to_string())));
        assert_eq!(e.unwrap_err().to_string(), "127.0.0.1:2");
        let e = each_addr([], |_| Ok(()));
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
