//! What the TCP and Unix listeners share: the `listen` backlog and the
//! accept loop that rides out transient errors and fd exhaustion.

use std::io;
use std::time::Duration;

/// First pause of `accept` when the process or system is out of file
/// descriptors or socket memory (Go's `net/http` starts at 5 ms too).
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest pause between two `accept` retries while resources stay
/// exhausted. Go's `net/http` goes up to 1 s; 100 ms lets a server take
/// connections again within a tenth of a second of fds being freed, and
/// ten failing `accept4` calls a second cost nothing measurable.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// The kernel clamps a `listen` backlog to `net.core.somaxconn`, so asking
/// for the most gives whatever the administrator allowed (std asks for
/// 128, which drops SYNs when thousands of clients connect at once).
pub(crate) const LISTEN_BACKLOG: i32 = i32::MAX;

/// Whether an `accept` error means "out of fds or memory right now": the
/// connection stays in the backlog and the call backs off and retries.
pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ENOSPC)
    )
}

/// Whether an `accept` error concerns only the one connection being
/// accepted (the peer reset it while it waited in the backlog, or a
/// network error hit it: accept(2) says to retry on these as on `EAGAIN`):
/// the call retries at once, as Go's `accept` does for `ECONNABORTED`. Each
/// such error consumes its connection, so retrying cannot spin.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EINTR
                | libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
        )
    )
}

/// The accept loop shared by TCP and Unix listeners: retries transient
/// errors at once and resource exhaustion after a growing pause (parking
/// only the coroutine), so a server keeps running through both.
pub(crate) fn accept_loop<T>(mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut pause = ACCEPT_BACKOFF_START;
    loop {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(e) if is_transient(&e) => continue,
            Err(e) if is_exhaustion(&e) => {
                goro_runtime::sleep(pause);
                pause = (pause * 2).min(ACCEPT_BACKOFF_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}
