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
//! stats line this often (5; 0: never), `--workers N`, `--redis HOST:PORT`
//! cluster mode through that Redis, `--node NAME` this gateway's name in
//! cluster mode (default: its pid).
//!
//! Several gateways in cluster mode, sharing one `redis-server`:
//!
//! ```sh
//! redis-server --port 6390 --save "" --appendonly no &
//! cargo run --release --example push_server -- --listen 127.0.0.1:7101 --redis 127.0.0.1:6390 --node a
//! cargo run --release --example push_server -- --listen 127.0.0.1:7102 --redis 127.0.0.1:6390 --node b
//! ```
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
//!
//! # Cluster mode
//!
//! With `--redis`, gateways share rooms and broadcasts through Redis
//! pub/sub ([`cluster`]). Room membership stays local to each gateway;
//! what crosses gateways is messages:
//!
//! - `ROOM r text` is `PUBLISH goro-push:room:r <line>`, `ALL text` is
//!   `PUBLISH goro-push:all <line>`, and `SEND u text` to a user not
//!   connected here is `PUBLISH goro-push:user:u <line>` (so a remote
//!   unknown user gets no `ERR no such user`).
//! - Every gateway holds one subscriber connection with `PSUBSCRIBE
//!   goro-push:*` and delivers each message to its own members. The
//!   sending gateway delivers to its local members from that same stream,
//!   not directly: each gateway subscribes once, so every member gets
//!   each message exactly once, and because Redis sends every subscriber
//!   the messages in the order it received them, members see one order
//!   wherever they are connected.
//! - `Hub::with_cluster` returns only after Redis has confirmed the
//!   subscription, so a gateway gets every message published after it
//!   starts serving. Publishing never blocks a client: the publishes go
//!   to one writer coroutine over a bounded queue that batches them into
//!   one write per turn; a full queue or a broken connection loses
//!   messages, counted in `STATS` (`cluster ... lost=`), and the next
//!   batch reconnects. A broken subscription reconnects with a backoff;
//!   what was published meanwhile is missed, as with any Redis pub/sub
//!   (at-most-once; a durable feed would use Redis streams).
//! - Redis is reached with goro's own sockets speaking RESP2 (the encoder
//!   and reader are about 60 lines), not the sync `redis` crate under
//!   goro's `hook` feature: the example then needs no feature flag or libc
//!   interposition, its connections park coroutines like every other
//!   socket in the gateway, and two commands (`PUBLISH`, `PSUBSCRIBE`)
//!   are all it speaks.
//!
//! ## Scaling out, and the single-machine limits measured
//!
//! One machine was measured holding 19,951 idle connections at 5,403 B of
//! resident memory each (BENCHMARKS.md, "push server, idle connections
//! held"), so memory is not the first limit: 100k connections are about
//! 540 MB. The limits that come first are fds (one per connection; the
//! gateway raises its soft limit to the hard one) and fan-out CPU: a room
//! message costs one queue push per local member and one write per
//! member.
//!
//! To go past one machine, run gateways on many machines behind a TCP
//! load balancer (or DNS) and point them at the same Redis: each gateway
//! holds its share of connections and pays fan-out only for its own
//! members, so connections and per-member work scale with gateways. What
//! does not scale with them is Redis: every gateway receives every
//! message (the pattern subscription), so Redis's outbound traffic is
//! messages x gateways, and one Redis core handles a few hundred
//! thousand small messages a second. The next steps, in order: subscribe
//! per room (`SUBSCRIBE` on a room's first local member, `UNSUBSCRIBE` on
//! its last) so a gateway receives only rooms it has members in; then
//! Redis Cluster's sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7) to
//! spread channels over Redis nodes; and users pinned to gateways by a
//! hash of their id so that unicast can go to one gateway's channel.

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
    /// Shared with the key of `Hub::users` (one allocation, not two).
    name: Arc<str>,
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
    users: Mutex<HashMap<Arc<str>, Arc<Client>>>,
    rooms: Mutex<HashMap<Box<str>, Members>>,
    counters: Counters,
    baseline_rss: usize,
    baseline_heap: usize,
    /// Cluster mode: where room, broadcast and remote unicast messages go.
    cluster: Option<cluster::Publisher>,
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
        Arc::new(Hub::build(cfg, None))
    }

    fn build(cfg: Config, cluster: Option<cluster::Publisher>) -> Hub {
        Hub {
            cfg,
            next_id: AtomicU64::new(1),
            users: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            baseline_rss: rss_bytes(),
            baseline_heap: heap_bytes(),
            cluster,
        }
    }

    /// A hub in cluster mode (see "Cluster mode" in the module docs):
    /// connects to Redis and returns once this gateway is subscribed, so
    /// every message published by any gateway from then on reaches it.
    pub fn with_cluster(cfg: Config, cc: cluster::ClusterConfig) -> io::Result<Arc<Hub>> {
        let counters = Arc::new(cluster::Counters::default());
        let sub = cluster::Subscription::open(&cc, counters.clone())?;
        let publisher = cluster::Publisher::open(cc, counters)?;
        let hub = Arc::new(Hub::build(cfg, Some(publisher)));
        let h = hub.clone();
        goro::go!(move || sub.run(&h));
        Ok(hub)
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
        let mut line = format!(
            "STATS conns={conns} users={users} rss={rss} per_conn={per_conn} heap_per_conn={heap_per_conn} delivered={} dropped={} kicked_slow={} closed_idle={}",
            c.delivered.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.kicked_slow.load(Ordering::Relaxed),
            c.closed_idle.load(Ordering::Relaxed),
        );
        if let Some(p) = &self.cluster {
            let _ = write!(line, " {}", p.stats());
        }
        line
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

    /// Sends to one user: directly if connected here; in cluster mode
    /// otherwise through Redis (the gateway holding the user delivers it,
    /// so there is no "no such user" for remote users).
    fn unicast(&self, from: &Client, to: &str, text: &str) -> bool {
        let line = format!("MSG {} {text}\n", from.name);
        if self.deliver_user(to, &Line::from(line.as_str())) {
            return true;
        }
        match &self.cluster {
            Some(p) => {
                p.publish(&cluster::Topic::User(to), &line);
                true
            }
            None => false,
        }
    }

    fn multicast(&self, from: &Client, room: &str, text: &str) {
        let line = format!("ROOM {room} {} {text}\n", from.name);
        match &self.cluster {
            // Every gateway, this one included, delivers what Redis sends
            // it: one path, so members see one order wherever they are.
            Some(p) => p.publish(&cluster::Topic::Room(room), &line),
            None => self.deliver_room(room, &Line::from(line)),
        }
    }

    fn broadcast(&self, from: &Client, text: &str) {
        let line = format!("ALL {} {text}\n", from.name);
        match &self.cluster {
            Some(p) => p.publish(&cluster::Topic::All, &line),
            None => self.deliver_all(&Line::from(line)),
        }
    }

    /// Pushes `line` to `user` if connected here.
    fn deliver_user(&self, user: &str, line: &Line) -> bool {
        let target = self.users.lock().get(user).cloned();
        match target {
            Some(t) => {
                self.push(&t, line);
                true
            }
            None => false,
        }
    }

    /// Pushes `line` to this gateway's members of `room`.
    fn deliver_room(&self, room: &str, line: &Line) {
        // Snapshot the members, then push outside the lock.
        let members: Vec<Arc<Client>> = match self.rooms.lock().get(room) {
            Some(m) => m.values().cloned().collect(),
            None => return,
        };
        for m in &members {
            self.push(m, line);
        }
    }

    /// Pushes `line` to everyone logged in here.
    fn deliver_all(&self, line: &Line) {
        let all: Vec<Arc<Client>> = self.users.lock().values().cloned().collect();
        for c in &all {
            self.push(c, line);
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
    let Some((client, mut rooms)) = login(hub, &stream, &mut lines)? else {
        return Ok(());
    };
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

/// A logged-in client and the rooms it is in.
type LoggedIn = (Arc<Client>, Vec<Box<str>>);

/// Reads the first line, which must be `LOGIN <user> <room>`, and logs the
/// client in: `None` if the connection ended or sent something else.
/// Never inlined, like [`command`]: its temporaries then live in a frame
/// that is gone while the session waits for the next line, so they are
/// not part of what a parked session keeps (with shared stacks, its saved
/// frames).
#[inline(never)]
fn login(hub: &Arc<Hub>, stream: &TcpStream, lines: &mut Lines) -> io::Result<Option<LoggedIn>> {
    let Some(first) = lines.next(stream)? else {
        return Ok(None);
    };
    let mut w = first.split_whitespace();
    let (name, room): (Arc<str>, Box<str>) = match (w.next(), w.next(), w.next(), w.next()) {
        (Some("LOGIN"), Some(u), Some(r), None) => (u.into(), r.into()),
        _ => {
            (&*stream).write_all(b"ERR login first: LOGIN <user> <room>\n")?;
            return Ok(None);
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
    let rooms: Vec<Box<str>> = vec![room.clone()];
    hub.join(&client, &room);
    hub.push_str(&client, &format!("OK {}\n", client.name));
    Ok(Some((client, rooms)))
}

/// Handles one command line of a logged-in client. Never inlined (see
/// [`login`]).
#[inline(never)]
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

/// Accepts connections forever, a coroutine each, started on the workers
/// in turn (`Builder::worker`: a coroutine stays where it starts).
pub fn serve(hub: Arc<Hub>, listener: TcpListener) -> io::Result<()> {
    let workers = goro::stats().workers;
    for (i, conn) in listener.incoming().enumerate() {
        let conn = conn?;
        let hub = hub.clone();
        let spawned = goro::Builder::new()
            .worker(i % workers)
            .spawn(move || serve_conn(hub, conn));
        if let Err(e) = spawned {
            // No memory for the coroutine: the connection is closed, the
            // gateway goes on.
            eprintln!("push_server: dropping a connection: {e}");
        }
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

/// What the command line asks for.
struct Args {
    cfg: Config,
    listen: Vec<String>,
    stats: u64,
    workers: Option<usize>,
    cluster: Option<cluster::ClusterConfig>,
}

fn parse_args() -> Result<Args, String> {
    let mut cfg = Config::default();
    let mut redis = None;
    let mut node = None;
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
            "--redis" => redis = Some(value()?),
            "--node" => {
                let n = value()?;
                if n.is_empty()
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "--node takes letters, digits, '-' and '_', not {n:?}"
                    ));
                }
                node = Some(n)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if listen.is_empty() {
        listen.push("127.0.0.1:7100".to_string());
    }
    let cluster = match (redis, node) {
        (Some(r), n) => Some(cluster::ClusterConfig::new(
            r,
            n.unwrap_or_else(|| std::process::id().to_string()),
        )),
        (None, Some(_)) => return Err("--node needs --redis".into()),
        (None, None) => None,
    };
    Ok(Args {
        cfg,
        listen,
        stats,
        workers,
        cluster,
    })
}

fn main() -> io::Result<()> {
    let Args {
        cfg,
        listen,
        stats,
        workers,
        cluster,
    } = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "{e}\nusage: push_server [--listen ADDR]... [--idle SECS] [--queue N] [--slow drop|disconnect] [--write-timeout SECS] [--stats SECS] [--workers N] [--redis HOST:PORT [--node NAME]]"
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
    let hub = match cluster {
        Some(cc) => {
            println!(
                "cluster mode: node {} sharing rooms through Redis at {} (channels {}*)",
                cc.node, cc.redis, cc.prefix
            );
            Hub::with_cluster(cfg.clone(), cc)?
        }
        None => Hub::new(cfg.clone()),
    };
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

/// Cluster mode: gateways share rooms and broadcasts through Redis
/// pub/sub, over goro's own sockets speaking RESP2 (see "Cluster mode" in
/// the module docs).
pub mod cluster {
    use std::fmt;
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use goro::chan::{self, Receiver, Sender};
    use goro::net::TcpStream;

    use super::{Hub, Line, MAX_LINE};

    /// Publishes queued for Redis before more are dropped (and counted):
    /// a client coroutine never waits for Redis.
    const PUBLISH_QUEUE: usize = 64 << 10;
    /// Bytes of queued publishes written per `write`.
    const BATCH: usize = 64 << 10;
    /// Longest bulk string accepted from Redis.
    const MAX_BULK: usize = MAX_LINE + 1024;
    /// How long a (re)connection to Redis may take.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Where the cluster's Redis is and who this gateway is.
    #[derive(Clone, Debug)]
    pub struct ClusterConfig {
        /// `HOST:PORT` of the Redis server.
        pub redis: String,
        /// This gateway's name: its Redis connections are named
        /// `goro-push-<node>` (see `redis-cli CLIENT LIST`).
        pub node: String,
        /// Prefix of every channel the cluster uses, so that several
        /// clusters can share one Redis.
        pub prefix: String,
    }

    impl ClusterConfig {
        /// The default prefix, `goro-push:`.
        pub fn new(redis: impl Into<String>, node: impl Into<String>) -> ClusterConfig {
            ClusterConfig {
                redis: redis.into(),
                node: node.into(),
                prefix: "goro-push:".into(),
            }
        }
    }

    /// What a published message is addressed to.
    pub enum Topic<'a> {
        /// The members of a room, on every gateway.
        Room(&'a str),
        /// Everyone logged in, on every gateway.
        All,
        /// One user, on whichever gateway holds them.
        User(&'a str),
    }

    impl Topic<'_> {
        fn channel(&self, prefix: &str) -> String {
            match self {
                Topic::Room(r) => format!("{prefix}room:{r}"),
                Topic::All => format!("{prefix}all"),
                Topic::User(u) => format!("{prefix}user:{u}"),
            }
        }
    }

    /// Cluster counters, shown at the end of the `STATS` line.
    #[derive(Default)]
    pub struct Counters {
        published: AtomicU64,
        received: AtomicU64,
        lost: AtomicU64,
        redis_errors: AtomicU64,
        reconnects: AtomicU64,
    }

    /// A RESP2 command: an array of bulk strings.
    fn command(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    /// A RESP2 value from Redis.
    #[derive(Debug)]
    enum Value {
        Simple,
        Error(String),
        Int,
        Bulk(Option<Vec<u8>>),
        Array(Vec<Value>),
    }

    fn invalid(what: impl fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad reply from Redis: {what}"),
        )
    }

    /// Reads one value; arrays nest at most `depth` deep (pub/sub
    /// messages are flat arrays).
    fn read_value(r: &mut impl BufRead, depth: usize) -> io::Result<Value> {
        let mut line = Vec::new();
        if r.by_ref()
            .take(MAX_BULK as u64)
            .read_until(b'\n', &mut line)?
            == 0
        {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let Some(body) = line.strip_suffix(b"\r\n").filter(|b| !b.is_empty()) else {
            return Err(invalid("line without CRLF"));
        };
        let rest = std::str::from_utf8(&body[1..]).map_err(invalid)?;
        let num = || rest.parse::<i64>().map_err(invalid);
        Ok(match body[0] {
            b'+' => Value::Simple,
            b'-' => Value::Error(rest.to_string()),
            b':' => {
                num()?;
                Value::Int
            }
            b'$' => match usize::try_from(num()?) {
                Err(_) => Value::Bulk(None),
                Ok(n) if n > MAX_BULK => return Err(invalid(format!("bulk of {n} bytes"))),
                Ok(n) => {
                    let mut v = vec![0; n + 2];
                    r.read_exact(&mut v)?;
                    if !v.ends_with(b"\r\n") {
                        return Err(invalid("bulk without CRLF"));
                    }
                    v.truncate(n);
                    Value::Bulk(Some(v))
                }
            },
            b'*' if depth > 0 => match usize::try_from(num()?) {
                Err(_) => Value::Array(Vec::new()),
                Ok(n) if n > 16 => return Err(invalid(format!("array of {n}"))),
                Ok(n) => Value::Array(
                    (0..n)
                        .map(|_| read_value(r, depth - 1))
                        .collect::<io::Result<_>>()?,
                ),
            },
            t => return Err(invalid(format!("type byte {t:#x}"))),
        })
    }

    fn connect(cc: &ClusterConfig) -> io::Result<TcpStream> {
        let addr = goro::net::lookup_host(&cc.redis)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{}: no address", cc.redis))
            })?;
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    fn setname(cc: &ClusterConfig) -> Vec<u8> {
        command(&[
            b"CLIENT",
            b"SETNAME",
            format!("goro-push-{}", cc.node).as_bytes(),
        ])
    }

    /// The publishing side: one connection to Redis, written by one
    /// coroutine that batches whatever publishes are queued; a second
    /// coroutine reads (and counts the errors among) Redis's replies.
    pub struct Publisher {
        cc: ClusterConfig,
        tx: Sender<Vec<u8>>,
        counters: Arc<Counters>,
    }

    impl Publisher {
        /// Connects and starts the writer.
        pub fn open(cc: ClusterConfig, counters: Arc<Counters>) -> io::Result<Publisher> {
            let stream = open_publishing(&cc, &counters)?;
            let (tx, rx) = chan::bounded(PUBLISH_QUEUE);
            let (c, k) = (cc.clone(), counters.clone());
            goro::go!(move || publish_loop(c, stream, rx, k));
            Ok(Publisher { cc, tx, counters })
        }

        /// Queues `PUBLISH <topic's channel> <line>`; never blocks. A
        /// full queue (Redis slower than the clients) drops the message
        /// and counts it as lost.
        pub fn publish(&self, topic: &Topic<'_>, line: &str) {
            let ch = topic.channel(&self.cc.prefix);
            let cmd = command(&[b"PUBLISH", ch.as_bytes(), line.as_bytes()]);
            match self.tx.try_send(cmd) {
                Ok(()) => self.counters.published.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.counters.lost.fetch_add(1, Ordering::Relaxed),
            };
        }

        /// `cluster node=.. published=.. received=.. lost=.. redis_errors=.. reconnects=..`
        pub fn stats(&self) -> String {
            let c = &self.counters;
            format!(
                "cluster node={} published={} received={} lost={} redis_errors={} reconnects={}",
                self.cc.node,
                c.published.load(Ordering::Relaxed),
                c.received.load(Ordering::Relaxed),
                c.lost.load(Ordering::Relaxed),
                c.redis_errors.load(Ordering::Relaxed),
                c.reconnects.load(Ordering::Relaxed),
            )
        }
    }

    /// Starts the coroutine reading replies on a publishing connection.
    fn read_replies(stream: &TcpStream, counters: &Arc<Counters>) -> io::Result<()> {
        let mut r = BufReader::new(stream.try_clone()?);
        let counters = counters.clone();
        goro::go!(move || {
            while let Ok(v) = read_value(&mut r, 1) {
                if let Value::Error(e) = v {
                    counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("push cluster: Redis error: {e}");
                }
            }
        });
        Ok(())
    }

    /// A publishing connection: named, with its reply reader running.
    fn open_publishing(cc: &ClusterConfig, counters: &Arc<Counters>) -> io::Result<TcpStream> {
        let s = connect(cc)?;
        read_replies(&s, counters)?;
        (&s).write_all(&setname(cc))?;
        Ok(s)
    }

    /// The publisher's writer: a batch that fails is lost (counted), the
    /// connection is dropped, and the next batch reconnects first.
    fn publish_loop(
        cc: ClusterConfig,
        first: TcpStream,
        rx: Receiver<Vec<u8>>,
        counters: Arc<Counters>,
    ) {
        let mut stream = Some(first);
        let mut batch = Vec::with_capacity(BATCH);
        while let Ok(first) = rx.recv() {
            batch.clear();
            batch.extend_from_slice(&first);
            let mut n = 1;
            while batch.len() < BATCH
                && let Ok(more) = rx.try_recv()
            {
                batch.extend_from_slice(&more);
                n += 1;
            }
            if stream.is_none() {
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
                stream = open_publishing(&cc, &counters)
                    .inspect_err(|e| eprintln!("push cluster: reconnecting to {}: {e}", cc.redis))
                    .ok();
            }
            let sent = stream
                .as_ref()
                .is_some_and(|s| { s }.write_all(&batch).is_ok());
            if !sent {
                counters.lost.fetch_add(n, Ordering::Relaxed);
                stream = None;
            }
        }
    }

    /// The subscribing side: one connection on which this gateway has
    /// `PSUBSCRIBE`d to every channel under the prefix.
    pub struct Subscription {
        cc: ClusterConfig,
        reader: BufReader<TcpStream>,
        counters: Arc<Counters>,
    }

    impl Subscription {
        /// Connects and subscribes; returns once Redis has confirmed, so
        /// every message published after this returns is delivered.
        pub fn open(cc: &ClusterConfig, counters: Arc<Counters>) -> io::Result<Subscription> {
            let stream = connect(cc)?;
            stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
            let mut cmds = setname(cc);
            cmds.extend(command(&[
                b"PSUBSCRIBE",
                format!("{}*", cc.prefix).as_bytes(),
            ]));
            (&stream).write_all(&cmds)?;
            let mut reader = BufReader::new(stream);
            for _ in 0..2 {
                match read_value(&mut reader, 1)? {
                    Value::Simple => {}                   // CLIENT SETNAME's OK
                    Value::Array(a) if a.len() == 3 => {} // psubscribe confirmed
                    Value::Error(e) => return Err(io::Error::other(format!("Redis: {e}"))),
                    v => return Err(invalid(format!("{v:?}"))),
                }
            }
            // From now on the connection is quiet until a message comes.
            reader.get_ref().set_read_timeout(None)?;
            Ok(Subscription {
                cc: cc.clone(),
                reader,
                counters,
            })
        }

        /// Delivers every message to this gateway's clients, forever:
        /// when the connection breaks, reconnects with a backoff (messages
        /// published meanwhile are missed, as with any Redis pub/sub).
        pub fn run(mut self, hub: &Hub) {
            loop {
                let e = self.deliver(hub).unwrap_err();
                eprintln!("push cluster: subscription to {} lost: {e}", self.cc.redis);
                let mut backoff = Duration::from_millis(100);
                loop {
                    goro::sleep(backoff);
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    match Subscription::open(&self.cc, self.counters.clone()) {
                        Ok(s) => {
                            self = s;
                            break;
                        }
                        Err(e) => {
                            eprintln!("push cluster: reconnecting to {}: {e}", self.cc.redis);
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }

        /// Reads `pmessage` pushes until the connection fails.
        fn deliver(&mut self, hub: &Hub) -> io::Result<()> {
            loop {
                let Value::Array(mut a) = read_value(&mut self.reader, 1)? else {
                    return Err(invalid("a push that is not an array"));
                };
                // [pmessage, pattern, channel, payload]
                let (Some(Value::Bulk(Some(payload))), Some(Value::Bulk(Some(channel)))) =
                    (a.pop(), a.pop())
                else {
                    continue;
                };
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                let channel = String::from_utf8_lossy(&channel);
                let Some(topic) = channel.strip_prefix(&self.cc.prefix) else {
                    continue;
                };
                let line = Line::from(String::from_utf8_lossy(&payload));
                if topic == "all" {
                    hub.deliver_all(&line);
                } else if let Some(room) = topic.strip_prefix("room:") {
                    hub.deliver_room(room, &line);
                } else if let Some(user) = topic.strip_prefix("user:") {
                    hub.deliver_user(user, &line);
                }
            }
        }
    }
}
