//! Addresses and name resolution: goro's [`ToSocketAddrs`] and
//! [`lookup_host`].
//!
//! Resolving a name (`getaddrinfo`) blocks the calling thread for as long
//! as DNS takes, so inside a coroutine it runs on the blocking pool
//! (`goro_runtime::blocking`), never on a worker. Addresses that need no
//! lookup (`SocketAddr`s, IP literals such as `"127.0.0.1:80"`) are
//! converted in place, with no thread hop.

use std::io;
use std::net::{self, IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Values that can be turned into socket addresses, for goro's `connect`,
/// `bind` and `send_to`.
///
/// This is std's [`std::net::ToSocketAddrs`] with the same implementors
/// (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`, `("host", port)`,
/// `String`, `&[SocketAddr]`, references to any of these), so call sites
/// read exactly as with std. It is goro's own trait because it must know
/// which values need a DNS lookup: those are resolved on the blocking pool,
/// the others in place. It is sealed; convert other address types to one
/// of these (for example collect them into a `Vec<SocketAddr>` and pass a
/// slice).
///
/// ```
/// use goro::net::TcpListener;
///
/// let a = TcpListener::bind("127.0.0.1:0").unwrap();
/// let b = TcpListener::bind(("127.0.0.1", 0)).unwrap();
/// let addr = a.local_addr().unwrap();
/// let c = goro::net::TcpStream::connect(addr).unwrap();
/// # drop((b, c));
/// ```
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use super::Addrs;
    use std::io;

    /// The resolving half of [`super::ToSocketAddrs`], private to goro.
    pub trait Sealed {
        /// Resolves to a list of addresses, on the blocking pool if that
        /// needs a name lookup.
        fn resolve(&self) -> io::Result<Addrs>;
    }
}

/// A resolved address list: one address without allocating, or many.
#[derive(Debug)]
pub enum Addrs {
    /// Exactly one address.
    One(Option<SocketAddr>),
    /// Any number of addresses.
    Many(std::vec::IntoIter<SocketAddr>),
}

impl Iterator for Addrs {
    type Item = SocketAddr;
    fn next(&mut self) -> Option<SocketAddr> {
        match self {
            Addrs::One(a) => a.take(),
            Addrs::Many(it) => it.next(),
        }
    }
}

pub(crate) fn resolve(a: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Addrs> {
    sealed::Sealed::resolve(a)
}

macro_rules! direct {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {}
        impl sealed::Sealed for $t {
            fn resolve(&self) -> io::Result<Addrs> {
                Ok(Addrs::One(Some(SocketAddr::from(*self))))
            }
        }
    )*};
}

direct!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for &[SocketAddr] {}
impl sealed::Sealed for &[SocketAddr] {
    fn resolve(&self) -> io::Result<Addrs> {
        Ok(Addrs::Many(Vec::from(*self).into_iter()))
    }
}

impl ToSocketAddrs for str {}
impl sealed::Sealed for str {
    fn resolve(&self) -> io::Result<Addrs> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(Addrs::One(Some(a)));
        }
        lookup(self).map(|v| Addrs::Many(v.into_iter()))
    }
}

impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn resolve(&self) -> io::Result<Addrs> {
        sealed::Sealed::resolve(self.as_str())
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl sealed::Sealed for (&str, u16) {
    fn resolve(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Addrs::One(Some(SocketAddr::new(ip, port))));
        }
        lookup((host, port)).map(|v| Addrs::Many(v.into_iter()))
    }
}

impl ToSocketAddrs for (String, u16) {}
impl sealed::Sealed for (String, u16) {
    fn resolve(&self) -> io::Result<Addrs> {
        sealed::Sealed::resolve(&(self.0.as_str(), self.1))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {
    fn resolve(&self) -> io::Result<Addrs> {
        sealed::Sealed::resolve(&**self)
    }
}

/// Runs std's resolver on the blocking pool (inline on a plain thread).
fn lookup(a: impl net::ToSocketAddrs + Send) -> io::Result<Vec<SocketAddr>> {
    goro_runtime::blocking(move || a.to_socket_addrs().map(Iterator::collect))
}

/// Resolves `"host:port"` to socket addresses, like std's
/// `"host:port".to_socket_addrs()`, without ever blocking a worker: inside
/// a coroutine the lookup runs on the blocking pool and only the coroutine
/// waits; on a plain thread it runs on that thread. IP literals are parsed
/// in place.
///
/// # Errors
///
/// What `getaddrinfo` reports (an unknown host is an error whose kind is
/// `Uncategorized`, as with std), or `InvalidInput` for a string that is
/// not `host:port`.
///
/// ```
/// let h = goro::go!(|| goro::net::lookup_host("localhost:80"));
/// let addrs = h.join().unwrap().unwrap();
/// assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
/// ```
pub fn lookup_host(host_port: &str) -> io::Result<Vec<SocketAddr>> {
    sealed::Sealed::resolve(host_port).map(Iterator::collect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(a: &(impl ToSocketAddrs + ?Sized)) -> Vec<SocketAddr> {
        resolve(a).unwrap().collect()
    }

    #[test]
    fn literals_resolve_in_place() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(all(&v4), vec![v4]);
        assert_eq!(all("127.0.0.1:80"), vec![v4]);
        assert_eq!(all(&String::from("[::1]:443")), vec![v6]);
        assert_eq!(all(&("127.0.0.1", 80)), vec![v4]);
        assert_eq!(all(&("::1".to_string(), 443)), vec![v6]);
        assert_eq!(all(&(Ipv4Addr::LOCALHOST, 80)), vec![v4]);
        assert_eq!(all(&(Ipv6Addr::LOCALHOST, 443)), vec![v6]);
        assert_eq!(all(&(IpAddr::from(Ipv4Addr::LOCALHOST), 80)), vec![v4]);
        assert_eq!(all(&&&v4), vec![v4]);
        assert_eq!(all(&&[v4, v6][..]), vec![v4, v6]);
        let SocketAddr::V4(a) = v4 else {
            unreachable!()
        };
        assert_eq!(all(&a), vec![v4]);
    }

    #[test]
    fn malformed_strings_are_invalid_input() {
        for bad in ["nonsense", "host:", "127.0.0.1:99999"] {
            let e = resolve(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
