//! A chat server whose accept loop stops cleanly with a context: the
//! program from issue 15 that could only stop with a stop flag and a
//! connection to itself. Here `cancel.cancel()` (from a signal handler, a
//! test, an admin command) ends the accept loop, every client's reader
//! and the hub, and [`serve`] returns once all of them are gone.
//!
//! ```sh
//! cargo run --example chat_server -- 127.0.0.1:7001
//! # nc 127.0.0.1 7001, type a name, then messages; Ctrl-C stops the server
//! ```
//!
//! Protocol: a client's first line is its name; every later line goes to
//! every other client as `name: line`. `tests/chat_server.rs` drives
//! [`serve`].

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};

use goro::chan::{self, Sender};
use goro::context::{Cancel, Context};
use goro::net::{TcpListener, TcpStream};
use goro::sync::WaitGroup;

enum Event {
    Join(u64, Sender<String>),
    Say(u64, String),
    Leave(u64),
}

/// Serves chat clients on `listener` until `ctx` is done, then returns
/// the number of clients it served, after every client coroutine ended
/// and the listener closed.
pub fn serve(listener: TcpListener, ctx: &Context) -> usize {
    let (events, inbox) = chan::unbounded::<Event>();
    let wg = WaitGroup::new();
    let hub_ctx = ctx.clone();
    wg.go(move || hub(inbox, &hub_ctx));
    let mut clients = 0;
    for conn in listener.incoming_ctx(ctx) {
        let Ok(conn) = conn else { continue };
        clients += 1;
        let (id, events, ctx) = (clients as u64, events.clone(), ctx.clone());
        wg.go(move || client(id, conn, events, &ctx));
    }
    drop(listener);
    drop(events);
    wg.wait();
    clients
}

/// Owns the room: fans each message out to the other clients' outboxes.
fn hub(inbox: chan::Receiver<Event>, ctx: &Context) {
    let mut room: HashMap<u64, Sender<String>> = HashMap::new();
    let done = ctx.done();
    loop {
        let ev = goro::select! {
            recv(inbox) -> ev => match ev { Ok(ev) => ev, Err(_) => return },
            recv(done) -> _ => return, // dropping `room` ends every writer
        };
        match ev {
            Event::Join(id, out) => drop(room.insert(id, out)),
            Event::Leave(id) => drop(room.remove(&id)),
            Event::Say(from, line) => {
                for (id, out) in &room {
                    if *id != from {
                        let _ = out.try_send(line.clone()); // a slow client misses lines
                    }
                }
            }
        }
    }
}

/// One client: a reader here (under `ctx`), a writer coroutine fed by the
/// hub.
fn client(id: u64, conn: TcpStream, events: Sender<Event>, ctx: &Context) {
    let (out, outbox) = chan::bounded::<String>(64);
    let writer_conn = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let writer = goro::go!(move || {
        for line in &outbox {
            if (&writer_conn).write_all_lines(&line).is_err() {
                return;
            }
        }
    });
    let mut lines = BufReader::new(conn.with_context(ctx)).lines();
    if let Some(Ok(name)) = lines.next() {
        let _ = events.send(Event::Join(id, out));
        for line in lines {
            let Ok(line) = line else { break };
            let _ = events.send(Event::Say(id, format!("{name}: {line}")));
        }
        let _ = events.send(Event::Leave(id));
    }
    // The hub drops our outbox sender on Leave (or when it stops); the
    // writer then ends, and the last handle of the socket closes it.
    let _ = writer.join();
}

/// `write_all` of a line and its newline.
trait WriteLine {
    fn write_all_lines(self, line: &str) -> io::Result<()>;
}

impl WriteLine for &TcpStream {
    fn write_all_lines(mut self, line: &str) -> io::Result<()> {
        use std::io::Write;
        self.write_all(format!("{line}\n").as_bytes())
    }
}

/// Cancels on the first SIGINT or SIGTERM.
fn cancel_on_signal(cancel: Cancel) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            cancel.cancel();
        }
    });
    Ok(())
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(addr.as_str())?;
    println!("chat on {}", listener.local_addr()?);
    let (ctx, cancel) = Context::with_cancel(&Context::background());
    cancel_on_signal(cancel)?;
    let n = serve(listener, &ctx);
    println!("stopped after {n} clients");
    Ok(())
}
