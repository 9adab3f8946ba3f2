//! goro-net: sockets that read like blocking std code but park only the
//! coroutine.
//!
//! Most users reach this crate as `goro::net`. Its types have std's names,
//! signatures and error kinds: [`TcpListener`], [`TcpStream`],
//! [`UdpSocket`], [`UnixListener`], [`UnixStream`], [`UnixDatagram`], plus
//! [`lookup_host`] for DNS and [`wait_readable`]/[`wait_writable`] for file
//! descriptors owned by other code.
//!
//! ```
//! use std::io::{Read, Write};
//! use goro_net::{TcpListener, TcpStream};
//!
//! // An echo server: a coroutine per connection, written as blocking code.
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! goro_runtime::go!(move || {
//!     for conn in listener.incoming() {
//!         let mut conn = conn.unwrap();
//!         goro_runtime::go!(move || {
//!             let mut buf = [0; 1024];
//!             while let Ok(n @ 1..) = conn.read(&mut buf) {
//!                 if conn.write_all(&buf[..n]).is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! // Clients: the same calls work in coroutines and on plain threads.
//! let clients: Vec<_> = (0..10u8)
//!     .map(|i| {
//!         goro_runtime::go!(move || {
//!             let mut c = TcpStream::connect(addr).unwrap();
//!             c.write_all(&[i; 3]).unwrap();
//!             let mut back = [0; 3];
//!             c.read_exact(&mut back).unwrap();
//!             back == [i; 3]
//!         })
//!     })
//!     .collect();
//! assert!(clients.into_iter().all(|h| h.join().unwrap()));
//! let mut c = TcpStream::connect(addr).unwrap(); // from this thread
//! c.write_all(b"hi").unwrap();
//! ```
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
//!
//! # Differences from std
//!
//! - `connect`, `bind` and `send_to` take goro's [`ToSocketAddrs`], which
//!   std's address types implement, so call sites are unchanged; it is
//!   sealed (see its docs for why).
//! - `try_clone` cannot fail and returns a handle to the same fd (std
//!   `dup`s it); as with `dup`, the handles share the socket, its options
//!   and its timeouts.
//! - There is no `set_nonblocking`: every call is blocking for its caller
//!   and parks only the coroutine.
//!
//! # Limits
//!
//! Each socket costs one fd, one reactor registration and a shared handle
//! state (a few hundred bytes of user-space memory in all, plus the
//! kernel's socket buffers). How many
//! connections a process can hold is set by the system, not by goro; see
//! this crate's README for the limits to raise on the way to a million.

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
