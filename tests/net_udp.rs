//! UDP through `goro::net`: datagrams between coroutines and threads,
//! connected sockets, timeouts, and many coroutines parked on receives.

mod support;

use std::io;
use std::time::{Duration, Instant};

use goro::net::UdpSocket;

#[test]
fn send_to_and_recv_from_between_a_coroutine_and_a_thread() {
    support::within(
        "send to and recv from between a coroutine and a thread",
        || {
            let server = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = server.local_addr().unwrap();
            let h = goro::go!(move || {
                let mut buf = [0u8; 1500];
                for _ in 0..100 {
                    let (n, from) = server.recv_from(&mut buf).unwrap();
                    server.send_to(&buf[..n], from).unwrap();
                }
            });
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 1500];
            for i in 0..100u32 {
                let msg = i.to_le_bytes();
                client.send_to(&msg, addr).unwrap();
                let (n, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!(from, addr);
                assert_eq!(&buf[..n], &msg);
            }
            h.join().unwrap();
        },
    );
}

#[test]
fn connected_sockets_send_and_recv() {
    support::within("connected sockets send and recv", || {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            a.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        let h = goro::go!(move || {
            let mut buf = [0u8; 64];
            let n = b.recv(&mut buf).unwrap();
            b.send(&buf[..n]).unwrap();
            let mut peeked = [0u8; 64];
            let n = b.peek(&mut peeked).unwrap();
            let (m, _) = b.peek_from(&mut peeked).unwrap();
            assert_eq!(n, m);
            b.recv(&mut buf).unwrap()
        });
        a.send(b"ping").unwrap();
        let mut buf = [0u8; 64];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        a.send(b"second").unwrap();
        assert_eq!(h.join().unwrap(), 6);
    });
}

fn check_recv_timeout() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(25))).unwrap();
    assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(25)));
    let t = Instant::now();
    let e = s.recv_from(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    assert!(t.elapsed() >= Duration::from_millis(25));
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    assert_eq!(
        s.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn recv_timeout_gives_would_block_in_a_coroutine_and_a_thread() {
    support::within(
        "recv timeout gives would block in a coroutine and a thread",
        || {
            goro::go!(check_recv_timeout).join().unwrap();
            check_recv_timeout();
        },
    );
}

#[test]
fn many_coroutines_parked_on_receives() {
    support::within("many coroutines parked on receives", || {
        let sockets: Vec<_> = (0..100)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let handles: Vec<_> = sockets
            .into_iter()
            .map(|s| {
                goro::go!(move || {
                    let mut buf = [0u8; 8];
                    let (n, _) = s.recv_from(&mut buf).unwrap();
                    u64::from_le_bytes(buf[..n].try_into().unwrap())
                })
            })
            .collect();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for (i, a) in addrs.iter().enumerate() {
            sender.send_to(&(i as u64).to_le_bytes(), a).unwrap();
        }
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..100).sum());
    });
}

#[test]
fn options_clones_and_std_conversions() {
    let s = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
    s.set_broadcast(true).unwrap();
    assert!(s.broadcast().unwrap());
    s.set_ttl(9).unwrap();
    assert_eq!(s.ttl().unwrap(), 9);
    assert!(s.take_error().unwrap().is_none());
    let c = s.try_clone().unwrap();
    assert_eq!(c.local_addr().unwrap(), s.local_addr().unwrap());
    assert_eq!(
        c.into_std().unwrap_err().kind(),
        io::ErrorKind::ResourceBusy
    );
    let std_sock = s.into_std().unwrap();
    let back = UdpSocket::try_from(std_sock).unwrap();
    assert!(format!("{back:?}").contains("UdpSocket"));
    let e = back.send_to(b"x", &[][..]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}
