//! echo: TCP echo over 127.0.0.1 (port 0), a coroutine per connection on
//! each side, 64-byte ping-pong for a fixed time.
//! API: `goro::go!`, `goro::Builder::worker`, `goro::net::{TcpListener::{bind, local_addr, incoming},
//! TcpStream::{connect, set_nodelay}}`, `std::io::{Read, Write}` on `TcpStream`.

use crate::common::{self, Args};
use goro::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

pub fn run(args: &Args) {
    let conns = args.n(None);
    let secs = args.secs();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    // The accept coroutine stays parked in accept(); the process exits under it.
    // Handlers and clients start on the workers in turn (a coroutine stays
    // where it starts): connection i's two ends share worker i % workers.
    let workers = goro::stats().workers;
    goro::go!(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(s) = stream else { break };
            let _ = s.set_nodelay(true);
            goro::Builder::new()
                .worker(i % workers)
                .spawn(move || common::echo_serve(s))
                .expect("spawn a handler");
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
        .map(|(id, s)| {
            goro::Builder::new()
                .worker(id % workers)
                .spawn(move || common::echo_client(s, id, deadline))
                .expect("spawn a client")
        })
        .collect();
    let (mut reqs, mut errors) = (0, 0);
    for c in clients {
        let (d, e) = c.join().expect("client panicked");
        reqs += d;
        errors += e;
    }
    let el = start.elapsed().as_secs_f64();
    common::report_echo(conns, el, reqs, errors);
}
