//! goro-net: sockets that read like blocking std code but park only the
//! coroutine.
//!
//! The user guide (what is here, the mapping from Go, the semantics,
//! examples) is the `goro::net` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/net/>. This page is about how the
//! crate is built.
//!
//! # How a call waits (Go's netpoll, in goro)
//!
//! Go's `internal/poll` puts every socket in non-blocking mode, registers
//! it once with the runtime's poller (`pollDesc`), and lets each `Read`
//! try the system call first, parking the goroutine on `EAGAIN` until the
//! poller reports readiness. goro does the same with the runtime's reactor
//! (`goro_runtime::reactor`):
//!
//! 1. **Non-blocking underneath, blocking on top.** Every socket is created
//!    with `SOCK_NONBLOCK` (or switched to it when taken over from std) and
//!    stays so. The user sees blocking calls with optional std-style
//!    timeouts.
//! 2. **Registered once.** A socket is registered with the reactor when it
//!    is created, for its whole life, edge-triggered for both directions.
//!    `try_clone` shares the registration (the handles share one `Arc`ed
//!    state), it never registers the fd again.
//! 3. **Syscall first, park only on `WouldBlock`.** An operation reads the
//!    direction's readiness sequence, tries the call, and on `WouldBlock`
//!    waits until the sequence moves past what it read. An edge between the
//!    call and the wait has already moved it, so no wake-up is lost. Inside
//!    a coroutine the wait parks the coroutine; on a plain thread it parks
//!    the thread; both are woken by the worker that polls the reactor. So
//!    one code path serves both kinds of caller.
//! 4. **Full duplex.** Readers and writers wait on separate directions, so
//!    one coroutine can block in `read` while another writes the same
//!    socket (`impl Read/Write for &TcpStream`, `try_clone`).
//! 5. **Closing.** The socket closes when its last handle is dropped. The
//!    registration is dropped first, while the fd is still open: the fd is
//!    deleted from the poller and anything still waiting is woken with an
//!    error (`NotConnected`), and only then is the fd closed, so a stale
//!    event can never reach a new socket that reuses the fd number. In
//!    practice nothing is waiting then: every waiting call borrows a
//!    handle, so the last handle cannot be dropped under it. As with std,
//!    dropping one handle of several closes nothing; to interrupt a
//!    coroutine blocked on a socket, call `shutdown` on another handle:
//!    a blocked read returns `Ok(0)`, a blocked write fails with
//!    `BrokenPipe`.
//! 6. **Timeouts are std's.** `set_read_timeout`/`set_write_timeout` bound
//!    each call's wait; when one passes the call fails with `WouldBlock`
//!    (`EAGAIN`, what std reports on Linux). `connect_timeout` fails with
//!    `TimedOut`. A zero timeout is `InvalidInput`.
//! 7. **Names resolve on the blocking pool.** `getaddrinfo` blocks, so
//!    [`lookup_host`] and the lookup inside `connect("host:port")`/`bind`
//!    run on `goro_runtime::blocking`; IP literals and `SocketAddr`s are
//!    converted in place. `connect` tries every resolved address in turn and
//!    returns the last error, as std does.
//! 8. **Servers keep running.** `accept` backs off and retries on fd or
//!    memory exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) and skips
//!    connections reset before they were accepted; stream writes use
//!    `MSG_NOSIGNAL`, so a write to a closed peer is a `BrokenPipe` error,
//!    never a `SIGPIPE` that kills the process.

mod addr;
mod cancel;
mod fd;
mod listener;
mod tcp;
mod udp;
pub mod unix;
mod wait;

pub use addr::{ToSocketAddrs, lookup_host};
pub use cancel::context_error;
pub use tcp::{Incoming, IncomingCtx, TcpListener, TcpStream, WithContext};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
pub use wait::{wait_readable, wait_writable};

/// std's `Shutdown`, re-exported so `goro::net::Shutdown` reads like
/// `std::net::Shutdown`.
pub use std::net::Shutdown;
