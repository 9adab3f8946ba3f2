//! Readiness of any file descriptor, for third-party IO code:
//! [`wait_readable`] and [`wait_writable`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use goro_runtime::reactor::{Interest, Registration};

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
/// let h = goro_runtime::go!(move || {
///     let mut buf = [0; 4];
///     loop {
///         match b.read(&mut buf) {
///             Ok(n) => return buf[..n].to_vec(),
///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
///                 goro_net::wait_readable(&b, None).unwrap();
///             }
///             Err(e) => panic!("{e}"),
///         }
///     }
/// });
/// a.write_all(b"ok").unwrap();
/// assert_eq!(h.join().unwrap(), b"ok");
/// ```
///
/// Each call registers the fd with the reactor for its duration (two
/// `epoll_ctl` calls, skipped when a zero-timeout `poll` finds the fd
/// ready at once). Code that waits on one fd over and over can keep a
/// [`goro_runtime::reactor::Registration`] instead (`goro::reactor` in the
/// facade), which is what goro's own sockets do.
///
/// # Errors
///
/// `TimedOut` when the deadline passes; `AlreadyExists` (from `epoll_ctl`)
/// for an fd that goro already has registered, such as the fd of one of
/// goro's own sockets: use that socket's own methods instead.
pub fn wait_readable(fd: impl AsFd, deadline: Option<Instant>) -> io::Result<()> {
    wait(fd.as_fd(), Interest::Readable, deadline)
}

/// Waits until `fd` is writable (or has an error or a hang-up to report);
/// see [`wait_readable`].
pub fn wait_writable(fd: impl AsFd, deadline: Option<Instant>) -> io::Result<()> {
    wait(fd.as_fd(), Interest::Writable, deadline)
}

/// Whether `fd` is ready now, by a zero-timeout `poll(2)`.
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
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn wait(fd: BorrowedFd<'_>, interest: Interest, deadline: Option<Instant>) -> io::Result<()> {
    if ready_now(fd, interest)? {
        return Ok(());
    }
    // SAFETY: `fd` is borrowed for this whole call, so it stays open until
    // `reg` is dropped at the end of it.
    let reg = unsafe { Registration::new(fd.as_raw_fd()) }?;
    loop {
        // Read the sequence, then look: readiness that came before the
        // read is seen by `poll`, readiness after it moves the sequence.
        let seen = reg.seq(interest);
        if ready_now(fd, interest)? {
            return Ok(());
        }
        reg.wait(interest, seen, deadline)?;
    }
}
