//! UDP: [`UdpSocket`].

use std::io;
use std::net::{self, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use goro_context::context::Context;
use goro_runtime::reactor::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use crate::addr::{ToSocketAddrs, resolve};
use crate::fd::{PollFd, each_addr, impl_socket_traits, shared_error};

/// A UDP socket: std's [`std::net::UdpSocket`], but `recv`, `recv_from`,
/// `send` and `send_to` park only the calling coroutine when they have to
/// wait (and block a plain thread, as std does).
///
/// ```
/// use goro::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b_addr = b.local_addr().unwrap();
/// let h = goro::go!(move || {
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     b.send_to(&buf[..n], from).unwrap();
/// });
/// a.send_to(b"ping", b_addr).unwrap();
/// let mut buf = [0; 16];
/// let (n, from) = a.recv_from(&mut buf).unwrap();
/// assert_eq!((&buf[..n], from), (&b"ping"[..], b_addr));
/// h.join().unwrap();
/// ```
pub struct UdpSocket {
    fd: PollFd<net::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (each resolved address is tried in
    /// turn; the last error is returned if none works).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(resolve(&addr)?, |a| {
            let sock = Socket::new(
                Domain::for_address(*a),
                Type::DGRAM.nonblocking(),
                Some(Protocol::UDP),
            )?;
            sock.bind(&(*a).into())?;
            Ok(UdpSocket {
                fd: PollFd::new(net::UdpSocket::from(sock))?,
            })
        })
    }

    /// Sets the default destination of `send` and the only source `recv`
    /// accepts (each resolved address is tried in turn).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(resolve(&addr)?, |a| self.fd.get().connect(a))
    }

    /// Sends `buf` to the connected peer, waiting while the send buffer is
    /// full (within the write timeout).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.io(Interest::Writable, |s| s.send(buf))
    }

    /// Receives one datagram from the connected peer (within the read
    /// timeout). A datagram longer than `buf` is truncated.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.io(Interest::Readable, |s| s.recv(buf))
    }

    /// Like [`UdpSocket::recv`] but leaves the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.io(Interest::Readable, |s| s.peek(buf))
    }

    /// Sends `buf` to `addr` (its first resolved address, as std does).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(&addr)?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.fd.io(Interest::Writable, |s| s.send_to(buf, to))
    }

    /// Receives one datagram and the address it came from.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.io(Interest::Readable, |s| s.recv_from(buf))
    }

    /// [`recv`](UdpSocket::recv) that gives up once `ctx` is done, with
    /// the context's error ([`crate::context_error`]); a done context
    /// fails the call before it receives.
    ///
    /// ```
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{UdpSocket, context_error};
    ///
    /// let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let h = goro::go!(move || sock.recv_ctx(&mut [0; 16], &ctx)); // nothing comes
    /// cancel.cancel();
    /// let err = h.join().unwrap().unwrap_err();
    /// assert_eq!(context_error(&err), Some(ContextError::Canceled));
    /// ```
    pub fn recv_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Readable, ctx, |s| s.recv(buf))
    }

    /// [`recv_from`](UdpSocket::recv_from) that gives up once `ctx` is
    /// done, with the context's error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::context::{Context, ContextError};
    /// use goro::net::{UdpSocket, context_error};
    ///
    /// let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let (ctx, _cancel) = Context::with_timeout(&Context::background(), Duration::from_millis(10));
    /// let err = sock.recv_from_ctx(&mut [0; 16], &ctx).unwrap_err();
    /// assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn recv_from_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<(usize, SocketAddr)> {
        self.fd
            .io_ctx(Interest::Readable, ctx, |s| s.recv_from(buf))
    }

    /// [`send`](UdpSocket::send) that gives up once `ctx` is done while
    /// the send buffer is full, with the context's error.
    pub fn send_ctx(&self, buf: &[u8], ctx: &Context) -> io::Result<usize> {
        self.fd.io_ctx(Interest::Writable, ctx, |s| s.send(buf))
    }

    /// [`send_to`](UdpSocket::send_to) that gives up once `ctx` is done
    /// while the send buffer is full, with the context's error.
    pub fn send_to_ctx<A: ToSocketAddrs>(
        &self,
        buf: &[u8],
        addr: A,
        ctx: &Context,
    ) -> io::Result<usize> {
        crate::cancel::check(ctx)?;
        let to = resolve(&addr)?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.fd
            .io_ctx(Interest::Writable, ctx, |s| s.send_to(buf, to))
    }

    /// Like [`UdpSocket::recv_from`] but leaves the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.io(Interest::Readable, |s| s.peek_from(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().local_addr()
    }

    /// The connected peer's address (`NotConnected` if none).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get().peer_addr()
    }

    /// Sets how long each receive may wait; `None` waits forever. A receive
    /// that times out fails with `WouldBlock` (`EAGAIN`), as std's does on
    /// Linux. `Some(Duration::ZERO)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_timeout(Interest::Readable, timeout)
    }

    /// Sets how long each send may wait; see
    /// [`UdpSocket::set_read_timeout`].
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

    /// Another handle to the same socket (one shared registration).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            fd: self.fd.clone(),
        })
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.fd.get().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.fd.get().broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.get().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.get().ttl()
    }

    /// Joins an IPv4 multicast group on `interface`.
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.fd.get().join_multicast_v4(group, interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.fd.get().leave_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface`.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.fd.get().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.fd.get().leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.fd.get().set_multicast_loop_v4(on)
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get().take_error()
    }

    /// Takes over a std socket: puts it in non-blocking mode and registers
    /// it with the reactor.
    pub fn from_std(sock: net::UdpSocket) -> io::Result<UdpSocket> {
        sock.set_nonblocking(true)?;
        Ok(UdpSocket {
            fd: PollFd::new(sock)?,
        })
    }

    /// Gives the socket back as a blocking std socket. Fails with
    /// `ResourceBusy` (and drops this handle) while other handles from
    /// [`UdpSocket::try_clone`] exist.
    pub fn into_std(self) -> io::Result<net::UdpSocket> {
        let s = self.fd.into_inner().map_err(|_| shared_error())?;
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

impl_socket_traits!(
    UdpSocket => net::UdpSocket,
);
