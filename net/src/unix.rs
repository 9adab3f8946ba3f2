//! Unix domain sockets: [`UnixListener`], [`UnixStream`],
//! [`UnixDatagram`], with std's (`std::os::unix::net`) names and
//! signatures; blocking calls park only the calling coroutine.
//!
//! `UnixStream::connect` to a listener whose backlog is full cannot be
//! waited for with the reactor (the kernel reports no readiness for it),
//! so that rare case finishes the connect in blocking mode on the blocking
//! pool, which is exactly what std's blocking connect does.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net as unet;
use std::path::Path;
use std::time::Duration;

use goro_context::context::Context;
use goro_runtime::reactor::Interest;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::fd::{PollFd, impl_socket_traits, shared_error};
use crate::listener::{LISTEN_BACKLOG, accept_loop};

/// The address of a Unix socket (std's type).
pub use std::os::unix::net::SocketAddr;

/// A Unix stream socket server: std's
/// [`std::os::unix::net::UnixListener`], but `accept` parks only the
/// calling coroutine. Like [`crate::TcpListener`] it survives fd exhaustion
/// by backing off and retrying.
///
/// ```
/// use std::io::{Read, Write};
/// use goro::net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("goro-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path).unwrap();
/// let server = goro::go!(move || {
///     let (mut conn, _) = listener.accept().unwrap();
///     conn.write_all(b"hi").unwrap();
/// });
/// let mut c = UnixStream::connect(&path).unwrap();
/// let mut s = String::new();
/// c.read_to_string(&mut s).unwrap();
/// assert_eq!(s, "hi");
/// server.join().unwrap();
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct UnixListener {
    fd: PollFd<unet::UnixListener>,
}

impl UnixListener {
    /// Creates a listener bound to the file system path `path` (which must
    /// not exist yet).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let sock = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        sock.bind(&SockAddr::unix(path)?)?;
        sock.listen(LISTEN_BACKLOG)?;
        Ok(UnixListener {
            fd: PollFd::new(unet::UnixListener::from(sock))?,
        })
    }

    /// Creates a listener bound to `addr` (for example an abstract address
    /// on Linux).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::from_std(unet::UnixListener::bind_addr(addr)?)
    }

    /// Accepts a connection, parking the coroutine until one arrives.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        accept_loop(|| {
            let kind = Some(goro_runtime::WaitKind::NetAccept {
                fd: self.fd.as_raw_fd(),
            });
            let (s, addr) = self.fd.io_as(Interest::Readable, kind, |l| l.accept())?;
            Ok((UnixStream::from_std(s)?, addr))
        })
    }

    /// [`accept`](UnixListener::accept) that gives up once `ctx` is done,
    /// with the context's error ([`crate::context_error`]): how a server's
    /// accept loop stops, as with [`crate::TcpListener::accept_ctx`].
    ///
    /// ```
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{UnixListener, context_error};
    ///
    /// let path = std::env::temp_dir().join(format!("goro-doc-actx-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let server = goro::go!(move || listener.accept_ctx(&ctx).map(|_| ()));
    /// cancel.cancel();
    /// let err = server.join().unwrap().unwrap_err();
    /// assert_eq!(context_error(&err), Some(ContextError::Canceled));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn accept_ctx(&self, ctx: &Context) -> io::Result<(UnixStream, SocketAddr)> {
        accept_loop(|| {
            let kind = Some(goro_runtime::WaitKind::NetAccept {
                fd: self.fd.as_raw_fd(),
            });
            let (s, addr) = self
                .fd
                .io_ctx_as(Interest::Readable, kind, ctx, |l| l.accept())?;
            Ok((UnixStream::from_std(s)?, addr))
        })
    }

    /// An endless iterator over accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().local_addr()
    }

    /// Another handle to the same listener (one shared registration).
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            fd: self.fd.clone(),
        })
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get().take_error()
    }

    /// Takes over a std listener (non-blocking mode, registered).
    pub fn from_std(l: unet::UnixListener) -> io::Result<UnixListener> {
        l.set_nonblocking(true)?;
        Ok(UnixListener {
            fd: PollFd::new(l)?,
        })
    }

    /// Gives the socket back as a blocking std listener; fails with
    /// `ResourceBusy` while other handles exist.
    pub fn into_std(self) -> io::Result<unet::UnixListener> {
        let l = self.fd.into_inner().map_err(|_| shared_error())?;
        l.set_nonblocking(false)?;
        Ok(l)
    }
}

/// An endless iterator of accepted connections, from
/// [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix stream connection: std's [`std::os::unix::net::UnixStream`], but
/// reads and writes park only the calling coroutine. `Read`/`Write` are
/// implemented for `UnixStream` and `&UnixStream` (full duplex), and writes
/// never raise `SIGPIPE`.
///
/// ```
/// use std::io::{Read, Write};
///
/// let (a, mut b) = goro::net::UnixStream::pair().unwrap();
/// let h = goro::go!(move || {
///     let mut a = a;
///     a.write_all(b"over the socket pair").unwrap();
/// });
/// let mut s = String::new();
/// b.read_to_string(&mut s).unwrap();
/// assert_eq!(s, "over the socket pair");
/// h.join().unwrap();
/// ```
pub struct UnixStream {
    fd: PollFd<unet::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`. If the listener's backlog is full
    /// the connect waits (on the blocking pool) until it has room, as std's
    /// does.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let sock = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let addr = SockAddr::unix(path)?;
        match sock.connect(&addr) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Backlog full: nothing to poll for, so block for it where
                // blocking is allowed.
                sock.set_nonblocking(false)?;
                goro_runtime::blocking(|| sock.connect(&addr))?;
                sock.set_nonblocking(true)?;
            }
            Err(e) => return Err(e),
        }
        Ok(UnixStream {
            fd: PollFd::new(unet::UnixStream::from(sock))?,
        })
    }

    /// Connects to `addr` (for example an abstract address on Linux). The
    /// connect runs on the blocking pool.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::from_std(goro_runtime::blocking(|| {
            unet::UnixStream::connect_addr(addr)
        })?)
    }

    /// Reads into `buf` like [`Read::read`], but gives up once `ctx` is
    /// done, with the context's error ([`crate::context_error`]); a done
    /// context fails the call before it reads.
    ///
    /// ```
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{UnixStream, context_error};
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let h = goro::go!(move || {
    ///     let mut buf = [0; 8];
    ///     a.read_ctx(&mut buf, &ctx) // nothing comes: waits
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
    /// use goro::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// assert_eq!(a.write_ctx(b"hello", &Context::background()).unwrap(), 5);
    /// ```
    pub fn write_ctx(&self, buf: &[u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Writable, ctx, |s| {
            SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        Ok((
            UnixStream {
                fd: PollFd::new(unet::UnixStream::from(a))?,
            },
            UnixStream {
                fd: PollFd::new(unet::UnixStream::from(b))?,
            },
        ))
    }

    /// Another handle to the same connection (one shared registration and
    /// one set of timeouts).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            fd: self.fd.clone(),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().peer_addr()
    }

    /// Sets how long each read may wait (`WouldBlock` when it passes, as
    /// with std); `Some(Duration::ZERO)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(Interest::Readable, timeout)
    }

    /// Sets how long each write may wait.
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

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get().take_error()
    }

    /// Shuts down the read half, the write half, or both; wakes a coroutine
    /// waiting on that half (reads see end of file, writes `BrokenPipe`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.get().shutdown(how)
    }

    /// Takes over a connected std stream (non-blocking mode, registered).
    pub fn from_std(s: unet::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        Ok(UnixStream {
            fd: PollFd::new(s)?,
        })
    }

    /// Gives the connection back as a blocking std stream; fails with
    /// `ResourceBusy` while other handles exist.
    pub fn into_std(self) -> io::Result<unet::UnixStream> {
        let s = self.fd.into_inner().map_err(|_| shared_error())?;
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.recv(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.fd
            .io(Interest::Readable, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &UnixStream {
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

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for UnixStream {
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

/// A Unix datagram socket: std's [`std::os::unix::net::UnixDatagram`], but
/// sends and receives park only the calling coroutine.
///
/// ```
/// let (a, b) = goro::net::UnixDatagram::pair().unwrap();
/// let h = goro::go!(move || {
///     let mut buf = [0; 8];
///     let n = b.recv(&mut buf).unwrap();
///     buf[..n].to_vec()
/// });
/// a.send(b"dgram").unwrap();
/// assert_eq!(h.join().unwrap(), b"dgram");
/// ```
pub struct UnixDatagram {
    fd: PollFd<unet::UnixDatagram>,
}

impl UnixDatagram {
    /// Creates a socket bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let sock = Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        sock.bind(&SockAddr::unix(path)?)?;
        UnixDatagram::from_socket(sock)
    }

    /// Creates a socket bound to `addr` (for example an abstract address).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(unet::UnixDatagram::bind_addr(addr)?)
    }

    /// Creates a socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_socket(Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)?)
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        Ok((UnixDatagram::from_socket(a)?, UnixDatagram::from_socket(b)?))
    }

    fn from_socket(sock: Socket) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: PollFd::new(unet::UnixDatagram::from(sock))?,
        })
    }

    /// Sets the default destination of `send` (and the only source `recv`
    /// accepts).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        SockRef::from(self.fd.get()).connect(&SockAddr::unix(path)?)
    }

    /// Like [`UnixDatagram::connect`], to `addr`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.fd.get().connect_addr(addr)
    }

    /// Sends `buf` to the connected peer, waiting while the peer's queue is
    /// full (within the write timeout).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.io(Interest::Writable, |s| {
            SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    /// Sends `buf` to the socket at `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let to = SockAddr::unix(path)?;
        self.fd.io(Interest::Writable, |s| {
            SockRef::from(s).send_to_with_flags(buf, &to, libc::MSG_NOSIGNAL)
        })
    }

    /// Sends `buf` to `addr`.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.fd
            .io(Interest::Writable, |s| s.send_to_addr(buf, addr))
    }

    /// Receives one datagram (truncated to `buf`).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.io(Interest::Readable, |s| s.recv(buf))
    }

    /// Receives one datagram and its sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.io(Interest::Readable, |s| s.recv_from(buf))
    }

    /// [`recv`](UnixDatagram::recv) that gives up once `ctx` is done, with
    /// the context's error ([`crate::context_error`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{UnixDatagram, context_error};
    ///
    /// let (a, _b) = UnixDatagram::pair().unwrap();
    /// let (ctx, _cancel) = Context::with_timeout(&Context::background(), Duration::from_millis(10));
    /// let err = a.recv_ctx(&mut [0; 8], &ctx).unwrap_err();
    /// assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn recv_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Readable, ctx, |s| s.recv(buf))
    }

    /// [`recv_from`](UnixDatagram::recv_from) that gives up once `ctx` is
    /// done, with the context's error.
    pub fn recv_from_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<(usize, SocketAddr)> {
        self.fd
            .io_ctx(Interest::Readable, ctx, |s| s.recv_from(buf))
    }

    /// [`send`](UnixDatagram::send) that gives up once `ctx` is done while
    /// the peer's queue is full, with the context's error.
    pub fn send_ctx(&self, buf: &[u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Writable, ctx, |s| {
            SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().peer_addr()
    }

    /// Sets how long each receive may wait (`WouldBlock` when it passes);
    /// `Some(Duration::ZERO)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(Interest::Readable, timeout)
    }

    /// Sets how long each send may wait.
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

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.get().shutdown(how)
    }

    /// Another handle to the same socket (one shared registration).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: self.fd.clone(),
        })
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get().take_error()
    }

    /// Takes over a std socket (non-blocking mode, registered).
    pub fn from_std(s: unet::UnixDatagram) -> io::Result<UnixDatagram> {
        s.set_nonblocking(true)?;
        Ok(UnixDatagram {
            fd: PollFd::new(s)?,
        })
    }

    /// Gives the socket back as a blocking std socket; fails with
    /// `ResourceBusy` while other handles exist.
    pub fn into_std(self) -> io::Result<unet::UnixDatagram> {
        let s = self.fd.into_inner().map_err(|_| shared_error())?;
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

impl_socket_traits!(
    UnixListener => unet::UnixListener,
    UnixStream => unet::UnixStream,
    UnixDatagram => unet::UnixDatagram,
);
