//! The long-connection push gateway of a messaging service: clients log in
//! to rooms over TCP with a small line protocol and receive unicast, room
//! multicast and broadcast messages; heartbeats keep idle connections
//! alive, an idle timeout closes dead ones, and a bounded queue per client
//! drops messages for (or disconnects) slow consumers.
//!
//! ```sh
//! cargo run --release --example push_server -- --listen 127.0.0.1:7100 --stats 5
//! cargo run --release --example push_client -- --addr 127.0.0.1:7100 -n 19000 --hold 30
//! ```
//!
//! Options: `--listen ADDR` (repeatable; default `127.0.0.1:7100`),
//! `--idle SECS` idle timeout (90), `--queue N` per-client queue (64),
//! `--slow drop|disconnect` what to do when a client's queue is full
//! (`disconnect`), `--write-timeout SECS` (10), `--stats SECS` print a
//! stats line this often (5; 0: never), `--workers N`.
//!
//! # Protocol
//!
//! One command per line (`\n`); the server answers with lines.
//!
//! | client sends | server answers / delivers |
//! |---|---|
//! | `LOGIN <user> <room>` (first line) | `OK <user>` |
//! | `PING` (heartbeat) | `PONG` |
//! | `JOIN <room>` / `LEAVE <room>` | `OK <room>` |
//! | `SEND <user> <text>` | `MSG <from> <text>` to that user (or `ERR no such user`) |
//! | `ROOM <room> <text>` | `ROOM <room> <from> <text>` to every member |
//! | `ALL <text>` | `ALL <from> <text>` to everyone logged in |
//! | `STATS` | `STATS conns=.. users=.. rss=.. per_conn=.. ...` |
//! | `QUIT` | `BYE`, then the server closes |
//!
//! Any line resets the idle timer; after `--idle` seconds of silence the
//! server sends `BYE idle` and closes. Logging in again under a name in use
//! disconnects the older session.
//!
//! # Design
//!
//! - **A coroutine per connection** reads lines with blocking calls; its
//!   read timeout is the idle timeout (a read that times out returns
//!   `WouldBlock`, as with std).
//! - **A channel per client** (`goro::chan::bounded(--queue)`) carries every
//!   line to send, replies included, so one writer at a time owns the
//!   socket and lines never interleave. Pushing is `try_send`: a full queue
//!   is a slow consumer, whose message is dropped (`--slow drop`) or who is
//!   disconnected (`--slow disconnect`: `shutdown` wakes its reader with end
//!   of file, and it cleans up).
//! - **The writer runs only while there is something to write.** A Go
//!   gateway runs a reader and a writer goroutine per connection. Here the
//!   pusher that finds a client's `flushing` flag clear starts a writer
//!   coroutine, which drains the queue and exits, so an idle connection
//!   costs one parked coroutine, one small heap record and its socket. The
//!   flag protocol: a pusher enqueues, then sets `flushing` (SeqCst) and
//!   starts a writer if it was clear; a writer clears it when the queue is
//!   empty, then (SeqCst) looks again and continues if it can set it back.
//!   Either the writer sees the new message or the pusher sees the cleared
//!   flag, so no message is stranded.
//! - **Memory per idle connection** is printed as `per_conn`: resident set
//!   growth since start-up divided by live connections. Reading into a
//!   small stack buffer and freeing the partial-line buffer whenever it is
//!   empty keeps an idle coroutine within one page of stack.
//! - Nothing assumes an fd limit: when the process runs out of
//!   descriptors, `accept` backs off and retries (`goro::net`), and the
//!   connections wait in the kernel's backlog.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::Duration;

use goro::chan::{self, Receiver, Sender, TrySendError};
use goro::net::{TcpListener, TcpStream};
use goro::sync::Mutex;

/// Longest accepted line; a longer one is a protocol error.
const MAX_LINE: usize = 4096;
/// Bytes read per `read` call, on the reader's stack: small enough that a
/// parked reader stays within one page of stack, large enough for a burst
/// of commands.
const READ_CHUNK: usize = 512;

/// What to do with a client whose queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Drop the message (the client misses it) and keep the client.
    Drop,
    /// Disconnect the client.
    Disconnect,
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Close a connection silent for this long.
    pub idle_timeout: Duration,
    /// Messages queued per client before it counts as slow.
    pub queue: usize,
    /// What to do with slow clients.
    pub slow: SlowPolicy,
    /// How long one write to a client may block.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            idle_timeout: Duration::from_secs(90),
            queue: 64,
            slow: SlowPolicy::Disconnect,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A line to send: shared by every recipient of a room or broadcast
/// message (one allocation per message, not per recipient).
type Line = Arc<str>;

/// One logged-in client, shared by its reader, its writer and pushers.
struct Client {
    id: u64,
    name: Box<str>,
    /// The connection (a clone of the reader's handle): written by the
    /// writer coroutine, shut down to kick the client.
    stream: TcpStream,
    tx: Sender<Line>,
    rx: Receiver<Line>,
    /// Whether a writer coroutine is draining `rx` (see the module docs).
    flushing: AtomicBool,
}

/// The members of one room, by client id.
type Members = HashMap<u64, Arc<Client>>;

/// Counters, printed by `STATS` and the stats ticker.
#[derive(Default)]
struct Counters {
    conns: AtomicUsize,
    delivered: AtomicU64,
    dropped: AtomicU64,
    kicked_slow: AtomicU64,
    closed_idle: AtomicU64,
}

/// The shared state of the gateway.
pub struct Hub {
    cfg: Config,
    next_id: AtomicU64,
    users: Mutex<HashMap<Box<str>, Arc<Client>>>,
    rooms: Mutex<HashMap<Box<str>, Members>>,
    counters: Counters,
    baseline_rss: usize,
    baseline_heap: usize,
}

/// Resident set size of this process, in bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap_or(4096)
}

/// Bytes of heap in use (glibc's `mallinfo2`), 0 where unavailable.
pub fn heap_bytes() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads allocator statistics.
        unsafe { libc::mallinfo2() }.uordblks
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

impl Hub {
    /// A hub with no clients; notes the resident set size now as the
    /// baseline for `per_conn`.
    pub fn new(cfg: Config) -> Arc<Hub> {
        Arc::new(Hub {
            cfg,
            next_id: AtomicU64::new(1),
            users: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            baseline_rss: rss_bytes(),
            baseline_heap: heap_bytes(),
        })
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.counters.conns.load(Ordering::Relaxed)
    }

    /// One line of figures: connections, users, RSS, RSS growth per
    /// connection (and the part of it that is heap), messages delivered/dropped, clients kicked/timed out.
    pub fn stats_line(&self) -> String {
        let conns = self.connections();
        let users = self.users.lock().len();
        let rss = rss_bytes();
        let per_conn = rss.saturating_sub(self.baseline_rss) / conns.max(1);
        let heap_per_conn = heap_bytes().saturating_sub(self.baseline_heap) / conns.max(1);
        let c = &self.counters;
        format!(
            "STATS conns={conns} users={users} rss={rss} per_conn={per_conn} heap_per_conn={heap_per_conn} delivered={} dropped={} kicked_slow={} closed_idle={}",
            c.delivered.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.kicked_slow.load(Ordering::Relaxed),
            c.closed_idle.load(Ordering::Relaxed),
        )
    }

    /// Queues `line` for `c`, starting its writer if none runs; applies
    /// the slow-consumer policy when the queue is full.
    fn push(&self, c: &Arc<Client>, line: &Line) {
        match c.tx.try_send(line.clone()) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if !c.flushing.swap(true, Ordering::SeqCst) {
                    let c = c.clone();
                    goro::go!(move || flush(c));
                }
            }
            Err(TrySendError::Full(_)) => match self.cfg.slow {
                SlowPolicy::Drop => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                SlowPolicy::Disconnect => {
                    self.counters.kicked_slow.fetch_add(1, Ordering::Relaxed);
                    c.tx.close();
                    let _ = c.stream.shutdown(Shutdown::Both);
                }
            },
            Err(TrySendError::Closed(_)) => {} // leaving
        }
    }

    fn push_str(&self, c: &Arc<Client>, s: &str) {
        self.push(c, &Line::from(s));
    }

    fn unicast(&self, from: &Client, to: &str, text: &str) -> bool {
        let target = self.users.lock().get(to).cloned();
        match target {
            Some(t) => {
                self.push(&t, &Line::from(format!("MSG {} {text}\n", from.name)));
                true
            }
            None => false,
        }
    }

    fn multicast(&self, from: &Client, room: &str, text: &str) {
        // Snapshot the members, then push outside the lock.
        let members: Vec<Arc<Client>> = match self.rooms.lock().get(room) {
            Some(m) => m.values().cloned().collect(),
            None => return,
        };
        let line = Line::from(format!("ROOM {room} {} {text}\n", from.name));
        for m in &members {
            self.push(m, &line);
        }
    }

    fn broadcast(&self, from: &Client, text: &str) {
        let all: Vec<Arc<Client>> = self.users.lock().values().cloned().collect();
        let line = Line::from(format!("ALL {} {text}\n", from.name));
        for c in &all {
            self.push(c, &line);
        }
    }

    fn join(&self, c: &Arc<Client>, room: &str) {
        self.rooms
            .lock()
            .entry(room.into())
            .or_default()
            .insert(c.id, c.clone());
    }

    fn leave(&self, c: &Client, room: &str) {
        let mut rooms = self.rooms.lock();
        if let Some(m) = rooms.get_mut(room) {
            m.remove(&c.id);
            if m.is_empty() {
                rooms.remove(room);
            }
        }
    }
}

/// The writer: drains the client's queue onto its socket, then exits.
fn flush(c: Arc<Client>) {
    loop {
        while let Ok(line) = c.rx.try_recv() {
            if (&c.stream).write_all(line.as_bytes()).is_err() {
                // Timed out (a stuck consumer) or the peer is gone: end the
                // connection; the reader cleans up. `flushing` stays set,
                // so no new writer starts for this client.
                c.tx.close();
                let _ = c.stream.shutdown(Shutdown::Both);
                return;
            }
        }
        c.flushing.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if c.rx.is_empty() || c.flushing.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

/// Splits a byte stream into lines, holding a partial line between reads.
/// The buffer is freed whenever no partial line is pending, so an idle
/// connection holds no read buffer.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// The next line (without its `\n` or `\r\n`), reading as needed;
    /// `None` at end of file.
    fn next(&mut self, stream: &TcpStream) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let mut raw: Vec<u8> = self.pending.drain(..=i).collect();
                raw.pop();
                if raw.last() == Some(&b'\r') {
                    raw.pop();
                }
                if self.pending.is_empty() {
                    self.pending = Vec::new();
                }
                return Ok(Some(String::from_utf8_lossy(&raw).into_owned()));
            }
            if self.pending.len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let n = (&*stream).read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Whether the session goes on after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// Serves one connection until it ends (the reader coroutine).
pub fn serve_conn(hub: Arc<Hub>, stream: TcpStream) {
    hub.counters.conns.fetch_add(1, Ordering::Relaxed);
    let _ = session(&hub, stream);
    hub.counters.conns.fetch_sub(1, Ordering::Relaxed);
}

fn session(hub: &Arc<Hub>, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(hub.cfg.idle_timeout))?;
    stream.set_write_timeout(Some(hub.cfg.write_timeout))?;
    let mut lines = Lines::default();
    // Log in: the first line must be `LOGIN <user> <room>`.
    let Some(first) = lines.next(&stream)? else {
        return Ok(());
    };
    let mut w = first.split_whitespace();
    let (name, room): (Box<str>, Box<str>) = match (w.next(), w.next(), w.next(), w.next()) {
        (Some("LOGIN"), Some(u), Some(r), None) => (u.into(), r.into()),
        _ => {
            (&stream).write_all(b"ERR login first: LOGIN <user> <room>\n")?;
            return Ok(());
        }
    };
    let (tx, rx) = chan::bounded(hub.cfg.queue);
    let client = Arc::new(Client {
        id: hub.next_id.fetch_add(1, Ordering::Relaxed),
        name,
        stream: stream.try_clone()?,
        tx,
        rx,
        flushing: AtomicBool::new(false),
    });
    if let Some(old) = hub.users.lock().insert(client.name.clone(), client.clone()) {
        let _ = old.stream.shutdown(Shutdown::Both); // newest login wins
    }
    let mut rooms: Vec<Box<str>> = vec![room.clone()];
    hub.join(&client, &room);
    hub.push_str(&client, &format!("OK {}\n", client.name));

    let result = (|| -> io::Result<()> {
        while let Some(line) = lines.next(&stream)? {
            if command(hub, &client, &mut rooms, &line) == Flow::Stop {
                break;
            }
        }
        Ok(())
    })();
    if let Err(e) = &result
        && e.kind() == io::ErrorKind::WouldBlock
    {
        hub.counters.closed_idle.fetch_add(1, Ordering::Relaxed);
        hub.push_str(&client, "BYE idle\n");
    }
    // Leave everything; the writer (if any) finishes what is queued, and
    // the socket closes when the last handle is dropped.
    {
        let mut users = hub.users.lock();
        if users.get(&client.name).is_some_and(|c| c.id == client.id) {
            users.remove(&client.name);
        }
    }
    for r in &rooms {
        hub.leave(&client, r);
    }
    client.tx.close();
    result
}

/// Handles one command line of a logged-in client.
fn command(hub: &Hub, c: &Arc<Client>, rooms: &mut Vec<Box<str>>, line: &str) -> Flow {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "PING" => hub.push_str(c, "PONG\n"),
        "JOIN" | "LEAVE" if !rest.is_empty() && !rest.contains(' ') => {
            if cmd == "JOIN" {
                if !rooms.iter().any(|r| &**r == rest) {
                    rooms.push(rest.into());
                    hub.join(c, rest);
                }
            } else {
                rooms.retain(|r| &**r != rest);
                hub.leave(c, rest);
            }
            hub.push_str(c, &format!("OK {rest}\n"));
        }
        "SEND" => match rest.split_once(' ') {
            Some((to, text)) => {
                if !hub.unicast(c, to, text) {
                    hub.push_str(c, "ERR no such user\n");
                }
            }
            None => hub.push_str(c, "ERR usage: SEND <user> <text>\n"),
        },
        "ROOM" => match rest.split_once(' ') {
            Some((room, text)) => hub.multicast(c, room, text),
            None => hub.push_str(c, "ERR usage: ROOM <room> <text>\n"),
        },
        "ALL" => hub.broadcast(c, rest),
        "STATS" => {
            let mut s = hub.stats_line();
            s.push('\n');
            hub.push_str(c, &s);
        }
        "QUIT" => {
            hub.push_str(c, "BYE\n");
            return Flow::Stop;
        }
        "" => {}
        _ => {
            let mut s = String::from("ERR unknown command ");
            let _ = writeln!(s, "{cmd:?}");
            hub.push_str(c, &s);
        }
    }
    Flow::Go
}

/// Accepts connections forever, a coroutine each.
pub fn serve(hub: Arc<Hub>, listener: TcpListener) -> io::Result<()> {
    for conn in listener.incoming() {
        let conn = conn?;
        let hub = hub.clone();
        goro::go!(move || serve_conn(hub, conn));
    }
    Ok(())
}

/// Raises the soft fd limit to the hard limit (the server needs one fd
/// per connection; many systems start processes with a soft limit of
/// 1024).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

fn parse_args() -> Result<(Config, Vec<String>, u64, Option<usize>), String> {
    let mut cfg = Config::default();
    let mut listen = Vec::new();
    let mut stats = 5u64;
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        let secs = |v: String| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("bad duration {v:?}"))
        };
        match a.as_str() {
            "--listen" => listen.push(value()?),
            "--idle" => cfg.idle_timeout = secs(value()?)?,
            "--write-timeout" => cfg.write_timeout = secs(value()?)?,
            "--queue" => {
                cfg.queue = value()?
                    .parse()
                    .ok()
                    .filter(|&q| q > 0)
                    .ok_or("--queue takes a positive number")?
            }
            "--slow" => {
                cfg.slow = match value()?.as_str() {
                    "drop" => SlowPolicy::Drop,
                    "disconnect" => SlowPolicy::Disconnect,
                    other => return Err(format!("--slow drop|disconnect, not {other:?}")),
                }
            }
            "--stats" => stats = value()?.parse().map_err(|e| format!("--stats: {e}"))?,
            "--workers" => workers = Some(value()?.parse().map_err(|e| format!("--workers: {e}"))?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if listen.is_empty() {
        listen.push("127.0.0.1:7100".to_string());
    }
    Ok((cfg, listen, stats, workers))
}

fn main() -> io::Result<()> {
    let (cfg, listen, stats, workers) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "{e}\nusage: push_server [--listen ADDR]... [--idle SECS] [--queue N] [--slow drop|disconnect] [--write-timeout SECS] [--stats SECS] [--workers N]"
            );
            std::process::exit(2);
        }
    };
    if let Some(n) = workers {
        goro::Config::new()
            .workers(n)
            .apply()
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let fds = raise_fd_limit();
    let listeners = listen
        .iter()
        .map(|a| TcpListener::bind(a.as_str()))
        .collect::<io::Result<Vec<_>>>()?;
    let hub = Hub::new(cfg.clone());
    for l in &listeners {
        println!("push server listening on {}", l.local_addr()?);
    }
    println!(
        "fd limit {fds}, idle timeout {:?}, queue {} ({:?} slow consumers)",
        cfg.idle_timeout, cfg.queue, cfg.slow
    );
    if stats > 0 {
        let hub = hub.clone();
        goro::go!(move || loop {
            goro::sleep(Duration::from_secs(stats));
            println!("{}", hub.stats_line());
        });
    }
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let hub = hub.clone();
            goro::go!(move || serve(hub, l))
        })
        .collect();
    for s in servers {
        s.join()
            .map_err(|_| io::Error::other("the accept loop panicked"))??;
    }
    Ok(())
}
