//! echo: TCP echo over 127.0.0.1 (port 0), a coroutine per connection on
//! each side, 64-byte ping-pong for a fixed time.
//! API: `goro::go!`, `goro::net::{TcpListener::{bind, local_addr, incoming},
//! TcpStream::{connect, set_nodelay}}`, `std::io::{Read, Write}` on `TcpStream`.

use crate::common::{self, Args, Report};
use goro::net::{TcpListener, TcpStream};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

pub fn run(args: &Args) {
    let conns = args.n(None);
    let secs = args.secs();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    // The accept coroutine stays parked in accept(); the process exits under it.
    goro::go!(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let _ = s.set_nodelay(true);
            goro::go!(move || {
                let mut buf = [0u8; common::ECHO_MSG];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(id, mut s)| {
            goro::go!(move || {
                let mut msg = [0u8; common::ECHO_MSG];
                let mut back = [0u8; common::ECHO_MSG];
                let (mut done, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    msg[..8].copy_from_slice(&(done ^ ((id as u64) << 40)).to_le_bytes());
                    if s.write_all(&msg).is_err() || s.read_exact(&mut back).is_err() {
                        errors += 1;
                        break;
                    }
                    if back != msg {
                        errors += 1;
                    }
                    done += 1;
                }
                (done, errors)
            })
        })
        .collect();
    let (mut reqs, mut errors) = (0, 0);
    for c in clients {
        let (d, e) = c.join().expect("client panicked");
        reqs += d;
        errors += e;
    }
    let el = start.elapsed().as_secs_f64();
    Report::new("echo", "req_per_s", reqs as f64 / el)
        .kv("n", conns)
        .kf("secs", el)
        .kv("requests", reqs)
        .kv("errors", errors)
        .print();
}
