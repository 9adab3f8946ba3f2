//! TCP: [`TcpListener`], [`TcpStream`], [`Incoming`].

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{self, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use goro_context::context::Context;
use goro_runtime::reactor::Interest;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::addr::{ToSocketAddrs, resolve};
use crate::fd::{PollFd, each_addr, impl_socket_traits, shared_error};
use crate::listener::{LISTEN_BACKLOG, accept_loop};

/// A TCP socket server, listening for connections: std's
/// [`std::net::TcpListener`], but `accept` parks only the calling coroutine
/// (and blocks a plain thread, as std does).
///
/// ```
/// use std::io::{Read, Write};
/// use goro::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = goro::go!(move || {
///     let (mut conn, _peer) = listener.accept().unwrap();
///     let mut buf = [0; 5];
///     conn.read_exact(&mut buf).unwrap();
///     conn.write_all(&buf).unwrap();
/// });
/// let mut c = TcpStream::connect(addr).unwrap();
/// c.write_all(b"hello").unwrap();
/// let mut back = [0; 5];
/// c.read_exact(&mut back).unwrap();
/// assert_eq!(&back, b"hello");
/// server.join().unwrap();
/// ```
///
/// # Running out of file descriptors
///
/// When `accept` fails because the process or the system has no file
/// descriptors or socket buffers left (`EMFILE`, `ENFILE`, `ENOBUFS`,
/// `ENOMEM`, or `ENOSPC` from the poller), the connection stays in the
/// kernel's backlog and `accept` pauses (5 ms, doubling up to 100 ms) and
/// tries again, parking only the calling coroutine. It returns once a
/// connection is accepted, so an accept loop survives fd exhaustion and
/// resumes serving as soon as descriptors are freed. A connection reset by
/// its peer before it was accepted (`ECONNABORTED`), or hit by one of the
/// network errors accept(2) lists (`EPROTO`, `ENETDOWN`, ...), is skipped.
/// Other errors are returned.
pub struct TcpListener {
    fd: PollFd<net::TcpListener>,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (each resolved address is tried
    /// in turn; the last error is returned if none works). Port 0 asks the
    /// OS for a free port; see [`TcpListener::local_addr`].
    ///
    /// Sets `SO_REUSEADDR`, as std does, and asks for the largest backlog
    /// the system allows (`net.core.somaxconn`).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(resolve(&addr)?, |a| {
            let sock = Socket::new(
                Domain::for_address(*a),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            sock.set_reuse_address(true)?;
            sock.bind(&(*a).into())?;
            sock.listen(LISTEN_BACKLOG)?;
            Ok(TcpListener {
                fd: PollFd::new(net::TcpListener::from(sock))?,
            })
        })
    }

    /// Accepts a new connection, parking the coroutine until one arrives.
    /// Survives fd exhaustion (see the type's docs).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_with(None)
    }

    /// [`accept`](TcpListener::accept) that gives up once `ctx` is done:
    /// the way to stop a server's accept loop from elsewhere (a signal
    /// handler, a shutdown coroutine), without a stop flag or a connection
    /// to itself. Fails with the context's error (kind `TimedOut` for a
    /// deadline, `Other` for a cancellation; [`crate::context_error`]
    /// tells which) at once if `ctx` is done already, or as soon as it is
    /// while waiting. A connection that arrives is accepted as long as the
    /// context is not done.
    ///
    /// ```
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{TcpListener, context_error};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let server = goro::go!(move || {
    ///     let mut served = 0;
    ///     loop {
    ///         match listener.accept_ctx(&ctx) {
    ///             Ok((_conn, _peer)) => served += 1,
    ///             Err(e) if context_error(&e).is_some() => return served, // shut down
    ///             Err(e) => panic!("accept: {e}"),
    ///         }
    ///     }
    /// });
    /// cancel.cancel(); // from anywhere: a coroutine, a thread, a signal watcher
    /// assert_eq!(server.join().unwrap(), 0);
    /// ```
    pub fn accept_ctx(&self, ctx: &Context) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_with(Some(ctx))
    }

    /// An iterator over accepted connections that ends (`None`) once
    /// `ctx` is done; other errors are yielded as `Some(Err(..))`.
    ///
    /// ```
    /// use goro::context::Context;
    /// use goro::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// drop(cancel); // dropping the last Cancel cancels
    /// assert!(listener.incoming_ctx(&ctx).next().is_none());
    /// ```
    pub fn incoming_ctx<'a>(&'a self, ctx: &'a Context) -> IncomingCtx<'a> {
        IncomingCtx {
            listener: self,
            ctx,
        }
    }

    fn accept_with(&self, ctx: Option<&Context>) -> io::Result<(TcpStream, SocketAddr)> {
        accept_loop(|| {
            let (std_stream, addr) = match ctx {
                // The plain accept goes through the ring on io_uring.
                None => {
                    let (fd, addr) = self.fd.accept()?;
                    (net::TcpStream::from(fd), addr)
                }
                Some(ctx) => {
                    let accept = |l: &net::TcpListener| {
                        SockRef::from(l).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    };
                    let kind = Some(goro_runtime::WaitKind::NetAccept {
                        fd: self.fd.as_raw_fd(),
                    });
                    let (sock, addr) = self.fd.io_ctx_as(Interest::Readable, kind, ctx, accept)?;
                    (net::TcpStream::from(sock), addr.as_socket())
                }
            };
            let addr = addr.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP address")
            })?;
            let stream = TcpStream {
                fd: PollFd::new(std_stream)?,
            };
            Ok((stream, addr))
        })
    }

    /// An endless iterator over accepted connections (`accept` in a loop).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().local_addr()
    }

    /// Another handle to the same listener. Both share one registration;
    /// the socket closes when the last handle is dropped.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            fd: self.fd.clone(),
        })
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.get().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.get().ttl()
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get().take_error()
    }

    /// Takes over a std listener: puts it in non-blocking mode and
    /// registers it with the reactor.
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            fd: PollFd::new(listener)?,
        })
    }

    /// Gives the socket back as a blocking std listener. Fails with
    /// `ResourceBusy` (and drops this handle) while other handles from
    /// [`TcpListener::try_clone`] exist.
    pub fn into_std(self) -> io::Result<net::TcpListener> {
        let l = self.fd.into_inner().map_err(|_| shared_error())?;
        l.set_nonblocking(false)?;
        Ok(l)
    }
}

/// An endless iterator of accepted connections, from
/// [`TcpListener::incoming`]. Never yields `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// Accepted connections until a context is done, from
/// [`TcpListener::incoming_ctx`].
#[derive(Debug)]
pub struct IncomingCtx<'a> {
    listener: &'a TcpListener,
    ctx: &'a Context,
}

impl Iterator for IncomingCtx<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        match self.listener.accept_ctx(self.ctx) {
            Ok((s, _)) => Some(Ok(s)),
            Err(e) if crate::context_error(&e).is_some() => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// A TCP connection: std's [`std::net::TcpStream`], but reads, writes and
/// connects park only the calling coroutine (and block a plain thread, as
/// std does).
///
/// `Read` and `Write` are implemented for `TcpStream` and `&TcpStream`, so
/// one coroutine can read while another writes the same connection (full
/// duplex): share it by reference (`Arc<TcpStream>`, `goro::scope`) or
/// with [`TcpStream::try_clone`].
///
/// Writes never raise `SIGPIPE`: writing to a connection the peer has
/// closed returns `BrokenPipe` (or `ConnectionReset`).
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use goro::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// goro::go!(move || {
///     // Echo lines back upper-cased.
///     let (conn, _peer) = listener.accept().unwrap();
///     let mut out = &conn;
///     for line in BufReader::new(&conn).lines() {
///         out.write_all((line.unwrap().to_uppercase() + "\n").as_bytes()).unwrap();
///     }
/// });
/// let conn = TcpStream::connect(addr).unwrap();
/// // Full duplex: a coroutine writes while this thread reads.
/// let mut writer = conn.try_clone().unwrap();
/// let w = goro::go!(move || {
///     for word in ["ping", "pong"] {
///         writer.write_all(format!("{word}\n").as_bytes()).unwrap();
///     }
/// });
/// let mut lines = BufReader::new(&conn).lines();
/// assert_eq!(lines.next().unwrap().unwrap(), "PING");
/// assert_eq!(lines.next().unwrap().unwrap(), "PONG");
/// w.join().unwrap();
/// ```
pub struct TcpStream {
    fd: PollFd<net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each resolved address in turn
    /// and returning the last error if none accepts, as std does. A host
    /// name is resolved on the blocking pool (see [`crate::lookup_host`]).
    ///
    /// A refused connection is `ConnectionRefused`.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(resolve(&addr)?, |a| connect_addr(a, None, None))
    }

    /// [`connect`](TcpStream::connect) that gives up once `ctx` is done
    /// (Go's `Dialer.DialContext`); a context with a deadline is a connect
    /// timeout. Fails with the context's error ([`crate::context_error`]);
    /// name resolution itself is not interrupted, but the context is
    /// checked after it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::context::Context;
    /// use goro::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let (ctx, _cancel) = Context::with_timeout(&Context::background(), Duration::from_secs(5));
    /// let conn = TcpStream::connect_ctx(listener.local_addr().unwrap(), &ctx).unwrap();
    /// assert_eq!(conn.peer_addr().unwrap(), listener.local_addr().unwrap());
    /// ```
    pub fn connect_ctx<A: ToSocketAddrs>(addr: A, ctx: &Context) -> io::Result<TcpStream> {
        crate::cancel::check(ctx)?;
        let addrs = resolve(&addr)?;
        each_addr(addrs, |a| connect_addr(a, None, Some(ctx)))
    }

    /// Reads into `buf` like [`Read::read`], but gives up once `ctx` is
    /// done, with the context's error ([`crate::context_error`]). A done
    /// context fails the call before it reads, even if data is waiting,
    /// so a cancelled reader stops at once.
    ///
    /// ```
    /// use std::io::Write;
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{TcpListener, TcpStream, context_error};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (s, _) = listener.accept().unwrap();
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// c.write_all(b"hi").unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(s.read_ctx(&mut buf, &ctx).unwrap(), 2);
    /// let h = goro::go!(move || {
    ///     let mut buf = [0; 8];
    ///     s.read_ctx(&mut buf, &ctx) // nothing more comes: waits
    /// });
    /// cancel.cancel();
    /// let err = h.join().unwrap().unwrap_err();
    /// assert_eq!(context_error(&err), Some(ContextError::Canceled));
    /// ```
    pub fn read_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Readable, ctx, |mut s| s.read(buf))
    }

    /// Writes from `buf` like [`Write::write`] (possibly in part), but
    /// gives up once `ctx` is done, with the context's error.
    ///
    /// ```
    /// use goro::context::Context;
    /// use goro::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert_eq!(c.write_ctx(b"hello", &Context::background()).unwrap(), 5);
    /// ```
    pub fn write_ctx(&self, buf: &[u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Writable, ctx, |s| {
            SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    /// A view of this stream whose every read and write gives up once
    /// `ctx` is done: `Read` and `Write`, so `read_exact`, `write_all`,
    /// `BufReader` and `io::copy` all become cancellable. (A cancelled
    /// call fails with kind `TimedOut` or `Other`, never `Interrupted`,
    /// which those helpers would retry forever.)
    ///
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::time::Duration;
    /// use goro::context::Context;
    /// use goro::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (s, _) = listener.accept().unwrap();
    /// c.write_all(b"ping\n").unwrap();
    /// let (ctx, _cancel) = Context::with_timeout(&Context::background(), Duration::from_secs(5));
    /// let mut line = String::new();
    /// BufReader::new(s.with_context(&ctx)).read_line(&mut line).unwrap();
    /// assert_eq!(line, "ping\n");
    /// ```
    pub fn with_context<'a>(&'a self, ctx: &'a Context) -> WithContext<'a> {
        WithContext { stream: self, ctx }
    }

    /// Opens a connection to `addr`, giving up with `TimedOut` after
    /// `timeout`. A zero timeout is an `InvalidInput` error, as with std.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        connect_addr(addr, Some(timeout), None)
    }

    /// The address of the remote end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().peer_addr()
    }

    /// The address of the local end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// This is how to interrupt another coroutine blocked on this
    /// connection: after `shutdown(Shutdown::Read)` (or `Both`) a waiting
    /// read returns `Ok(0)`; after `Write` (or `Both`) a waiting write
    /// fails with `BrokenPipe`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.get().shutdown(how)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.fd.get().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.fd.get().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.get().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.get().ttl()
    }

    /// Sets `SO_LINGER` (`Some(Duration::ZERO)`: close with a reset).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.fd.get()).set_linger(linger)
    }

    /// Reads `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(self.fd.get()).linger()
    }

    /// Sets how long each read may wait; `None` waits forever. A read that
    /// times out fails with `WouldBlock` (`EAGAIN`), exactly as std's does
    /// on Linux. `Some(Duration::ZERO)` is an `InvalidInput` error. Shared
    /// with every handle of the socket, like the socket option it mirrors.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(Interest::Readable, timeout)
    }

    /// Sets how long each write may wait; see
    /// [`TcpStream::set_read_timeout`].
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(Interest::Writable, timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.fd.timeout(Interest::Readable))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.fd.timeout(Interest::Writable))
    }

    /// Another handle to the same connection, for full duplex from two
    /// coroutines. Both share one registration and one set of timeouts
    /// (as `dup`ed sockets share their options with std); the connection
    /// closes when the last handle is dropped.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            fd: self.fd.clone(),
        })
    }

    /// Reads without removing the data from the receive queue, waiting
    /// like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.io(Interest::Readable, |s| s.peek(buf))
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get().take_error()
    }

    /// Takes over a connected std stream: puts it in non-blocking mode and
    /// registers it with the reactor. Its `SO_RCVTIMEO`/`SO_SNDTIMEO` are
    /// not carried over; set goro's timeouts instead.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            fd: PollFd::new(stream)?,
        })
    }

    /// Gives the connection back as a blocking std stream. Fails with
    /// `ResourceBusy` (and drops this handle) while other handles from
    /// [`TcpStream::try_clone`] exist.
    pub fn into_std(self) -> io::Result<net::TcpStream> {
        let s = self.fd.into_inner().map_err(|_| shared_error())?;
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

/// One connection attempt (Go's `netFD.connect`): start a non-blocking
/// connect, then wait for writability and ask the socket how it ended.
fn connect_addr(
    addr: &SocketAddr,
    timeout: Option<Duration>,
    ctx: Option<&Context>,
) -> io::Result<TcpStream> {
    if let Some(ctx) = ctx {
        crate::cancel::check(ctx)?;
    }
    let deadline = timeout.and_then(|t| goro_runtime::testing::now().checked_add(t));
    let mut hook = None;
    let sock = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    match sock.connect(&(*addr).into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream {
        fd: PollFd::new(net::TcpStream::from(sock))?,
    };
    let reg = stream.fd.registration();
    let kind = Some(goro_runtime::WaitKind::NetConnect { fd: reg.fd() });
    loop {
        let seen = reg.seq(Interest::Writable);
        // Writability alone proves nothing (a fresh registration may
        // report a stale edge): ask for the outcome, as Go does.
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => return Ok(stream),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
            Err(e) => return Err(e),
        }
        let waited = match ctx {
            None => reg.wait_as(Interest::Writable, seen, deadline, &|| false, kind),
            Some(ctx) => crate::cancel::wait(
                reg,
                Interest::Writable,
                seen,
                deadline,
                ctx,
                &mut hook,
                kind,
            ),
        };
        match waited {
            Err(e) if crate::context_error(&e).is_some() => return Err(e),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection timed out",
                ));
            }
            r => r?,
        }
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.recv(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.fd
            .io(Interest::Readable, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fd.send(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.fd.io(Interest::Writable, |s| {
            SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A [`TcpStream`] whose reads and writes give up once a context is
/// done, from [`TcpStream::with_context`].
#[derive(Debug)]
pub struct WithContext<'a> {
    stream: &'a TcpStream,
    ctx: &'a Context,
}

impl<'a> WithContext<'a> {
    /// The stream.
    pub fn get_ref(&self) -> &TcpStream {
        self.stream
    }

    /// The context.
    pub fn context(&self) -> &Context {
        self.ctx
    }

    /// Watches `ctx` from now on (for the next phase of a protocol: a
    /// server reads an idle connection under its shutdown context, and a
    /// request in flight under a longer one). Data buffered by a wrapper
    /// such as `BufReader` is kept.
    ///
    /// ```
    /// use std::io::{BufReader, Write};
    /// use goro::context::Context;
    /// use goro::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let _c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (s, _) = listener.accept().unwrap();
    /// let (idle, _stop) = Context::with_cancel(&Context::background());
    /// let busy = Context::background();
    /// let mut r = BufReader::new(s.with_context(&idle));
    /// r.get_mut().set_context(&busy);
    /// ```
    pub fn set_context(&mut self, ctx: &'a Context) {
        self.ctx = ctx;
    }
}

impl Read for WithContext<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_ctx(buf, self.ctx)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.stream
            .fd
            .io_ctx(Interest::Readable, self.ctx, |mut s| s.read_vectored(bufs))
    }
}

impl Write for WithContext<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write_ctx(buf, self.ctx)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.fd.io_ctx(Interest::Writable, self.ctx, |s| {
            SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl_socket_traits!(
    TcpListener => net::TcpListener,
    TcpStream => net::TcpStream,
);
