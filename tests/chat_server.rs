//! `examples/chat_server.rs`: messages reach the other clients, and a
//! cancel stops the accept loop, every client and the hub: `serve`
//! returns, the listener is closed and clients see end of file.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;

use goro::context::Context;
use goro::net::{TcpListener, TcpStream};

#[allow(dead_code)]
#[path = "../examples/chat_server.rs"]
mod chat_server;

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn join(addr: SocketAddr, name: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::PATIENCE)).unwrap();
        let mut c = Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        };
        c.say(name);
        c
    }

    fn say(&mut self, line: &str) {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
}

#[test]
fn chat_then_cancel_stops_everything() {
    support::within("chat server", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (ctx, cancel) = Context::with_cancel(&Context::background());
        let server = goro::go!(move || chat_server::serve(listener, &ctx));

        let mut ann = Client::join(addr, "ann");
        let mut bob = Client::join(addr, "bob");
        // Joins are ordered with messages only per client: repeat until
        // bob is in the room and hears ann.
        let mut heard = String::new();
        support::eventually("bob to hear ann", || {
            ann.say("hi");
            bob.r
                .get_ref()
                .set_read_timeout(Some(std::time::Duration::from_millis(20)))
                .unwrap();
            let mut l = String::new();
            let got = bob.r.read_line(&mut l).is_ok() && !l.is_empty();
            heard = l;
            got
        });
        assert_eq!(heard.trim_end(), "ann: hi");
        bob.r
            .get_ref()
            .set_read_timeout(Some(support::PATIENCE))
            .unwrap();
        bob.say("hello ann");
        // A line never goes back to its sender, so this is bob's.
        assert_eq!(ann.line(), "bob: hello ann");

        cancel.cancel();
        assert_eq!(server.join().unwrap(), 2);
        // Every client sees end of file; the listener is closed.
        for c in [&mut ann, &mut bob] {
            let mut rest = Vec::new();
            c.r.read_to_end(&mut rest).unwrap();
        }
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}
