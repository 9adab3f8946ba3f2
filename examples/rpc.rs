//! Full-duplex RPC over one TCP connection, the way Meizu's Kiev framework
//! does it in Go: many callers share one connection, every request carries
//! an id, and replies come back in whatever order the server finishes
//! them. The server runs a fixed pool of worker coroutines behind a bounded
//! priority queue that protects it from overload.
//!
//! ```sh
//! # a quick tour: calls/s with 1,000 callers, then a 10x overload flood
//! cargo run --release --example rpc
//! # the pieces on their own
//! cargo run --release --example rpc -- serve --listen 127.0.0.1:7200 --pool 4 --queue 1024
//! cargo run --release --example rpc -- bench --addr 127.0.0.1:7200 --callers 1000 --secs 5
//! cargo run --release --example rpc -- bench --callers 1000 --secs 5 --workers 2   # in-process server
//! cargo run --release --example rpc -- flood --workers 2
//! ```
//!
//! Options: `--listen ADDR`, `--addr ADDR` (bench: a running server; without
//! it the bench starts one in this process), `--pool N` server worker
//! coroutines (4), `--queue N` queued requests (1024), `--callers N` (1000),
//! `--secs S` (5), `--workers N` goro workers (GORO_WORKERS).
//!
//! # Wire format
//!
//! Every frame is a big-endian `u32` length of what follows, then:
//!
//! | frame | fields after the length |
//! |---|---|
//! | request | `u64` id, `u8` priority (0 lowest .. 3), `u8` method, `u32` budget in ms (0: none), body |
//! | reply | `u64` id, `u8` status ([`Status`]), body |
//!
//! A frame longer than [`MAX_FRAME`] or shorter than its header ends the
//! connection with `InvalidData` (the peer is not speaking this protocol).
//!
//! # Client: a channel per call, one reader
//!
//! 1. [`Client::call`] takes the next id, makes a one-slot reply channel
//!    and puts its sender in the pending map under that id (sharded by id
//!    so that 1,000 callers do not queue on one lock), then hands the
//!    encoded request to the connection's writer coroutine, which batches
//!    whatever requests are waiting into one `write`.
//! 2. The caller parks in `select!` on its reply channel and its
//!    [`Context`]'s `done()` channel: the context's deadline is the call's
//!    timeout, and is also sent to the server as the request's budget.
//! 3. The one reader coroutine reads reply frames and, holding the map
//!    shard's lock, removes the id's entry and `try_send`s the reply into
//!    it (the slot is free: one reply per id). An id with no entry is a
//!    late reply to a call that already gave up: it is dropped and
//!    counted ([`ClientStats::late`]).
//! 4. A caller whose context is done removes its entry itself. If it finds
//!    the entry gone, the reader got there first and the reply is already
//!    in the channel (step 3 sends under the lock), so the caller takes it:
//!    every call ends exactly once, as a reply or as a counted timeout.
//! 5. When the connection ends, the reader replaces every map shard with
//!    `None`, dropping the senders: parked callers wake with
//!    [`CallError::Disconnected`] and new calls fail at once.
//!
//! # Server: a fixed pool behind a priority queue
//!
//! - A reader coroutine per connection decodes requests and pushes them
//!   into the server's one [`PriorityQueue`]; its deadline is the arrival
//!   time plus the request's budget ([`ServerConfig::default_budget`] if
//!   it has none). Replies go to the connection's writer coroutine over a
//!   bounded channel; a client that stops reading loses replies (counted)
//!   rather than stalling the pool.
//! - The queue holds at most [`ServerConfig::queue`] requests, FIFO within
//!   each of [`LEVELS`] priorities. When it is full a new request evicts
//!   the oldest request of the lowest priority below its own; if there is
//!   none, the new request is rejected. Either way the loser gets an
//!   `Overloaded` reply at once. So a request is never evicted while a
//!   request of lower priority is queued, and at most `queue` requests
//!   of one priority level can crowd out that level.
//! - [`ServerConfig::pool`] worker coroutines take the highest-priority
//!   request; one whose deadline has passed is dropped unprocessed with an
//!   `Expired` reply (its caller has given up or is about to). Otherwise
//!   the handler runs with a [`Context`] carrying the request's deadline,
//!   as a Go handler gets its `ctx`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, Receiver, Sender};
use goro::context::{Context, ContextError};
use goro::net::{TcpListener, TcpStream};
use goro::sync::{Condvar, Mutex};

/// Priority levels: 0 is the lowest, `LEVELS - 1` the highest. A request's
/// priority byte is clamped to this range.
pub const LEVELS: usize = 4;
/// The lowest priority.
pub const LOW: u8 = 0;
/// The highest priority.
pub const HIGH: u8 = (LEVELS - 1) as u8;
/// Longest frame accepted (length field value).
pub const MAX_FRAME: usize = 1 << 20;
/// Bytes after the length in a request frame before its body.
const REQ_HEADER: usize = 8 + 1 + 1 + 4;
/// Bytes after the length in a reply frame before its body.
const REPLY_HEADER: usize = 8 + 1;
/// Shards of the client's pending map.
const SHARDS: usize = 16;
/// Batch written by a writer coroutine before it flushes.
const WRITE_BUF: usize = 64 << 10;

/// Built-in method: reply with the request body.
pub const ECHO: u8 = 1;
/// Built-in method: the body is a big-endian `u32` of milliseconds; sleep
/// that long (or until the request's deadline), reply with an empty body.
pub const SLEEP: u8 = 2;

/// Reply status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The handler's reply.
    Ok,
    /// Dropped unprocessed: the deadline passed while it was queued (or
    /// the handler gave up at the deadline).
    Expired,
    /// Evicted by a higher-priority request, or rejected by a full queue.
    Overloaded,
    /// No such method.
    BadMethod,
    /// The handler failed.
    Failed,
}

impl Status {
    fn to_byte(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Expired => 1,
            Status::Overloaded => 2,
            Status::BadMethod => 3,
            Status::Failed => 4,
        }
    }

    fn from_byte(b: u8) -> Status {
        match b {
            0 => Status::Ok,
            1 => Status::Expired,
            2 => Status::Overloaded,
            3 => Status::BadMethod,
            _ => Status::Failed,
        }
    }
}

/// Why a call did not return a reply body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The call's context reached its deadline before the reply came.
    Timeout,
    /// The call's context was canceled.
    Canceled,
    /// The connection ended before the reply came.
    Disconnected,
    /// The server answered with a status other than `Ok`.
    Server(Status),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("call timed out"),
            CallError::Canceled => f.write_str("call canceled"),
            CallError::Disconnected => f.write_str("connection closed"),
            CallError::Server(s) => write!(f, "server replied {s:?}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<ContextError> for CallError {
    fn from(e: ContextError) -> CallError {
        match e {
            ContextError::DeadlineExceeded => CallError::Timeout,
            ContextError::Canceled => CallError::Canceled,
        }
    }
}

// ---------------------------------------------------------------------------
// Frames

/// Appends a request frame to `buf`.
fn encode_request(
    buf: &mut Vec<u8>,
    id: u64,
    priority: u8,
    method: u8,
    budget_ms: u32,
    body: &[u8],
) {
    let len = (REQ_HEADER + body.len()) as u32;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&id.to_be_bytes());
    buf.push(priority);
    buf.push(method);
    buf.extend_from_slice(&budget_ms.to_be_bytes());
    buf.extend_from_slice(body);
}

/// A reply frame.
fn encode_reply(id: u64, status: Status, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(4 + REPLY_HEADER + body.len());
    buf.extend_from_slice(&((REPLY_HEADER + body.len()) as u32).to_be_bytes());
    buf.extend_from_slice(&id.to_be_bytes());
    buf.push(status.to_byte());
    buf.extend_from_slice(body);
    buf
}

/// Reads one frame (what follows the length) into `buf`; `Ok(false)` at
/// end of stream between frames.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, min: usize) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(min..=MAX_FRAME).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} outside {min}..={MAX_FRAME}"),
        ));
    }
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

fn u64_at(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// The writer coroutine of one connection (either side): writes every
/// frame it is given, batching those already waiting into one `write`.
fn write_loop(stream: TcpStream, frames: Receiver<Vec<u8>>) {
    let mut w = BufWriter::with_capacity(WRITE_BUF, &stream);
    let ok = (|| -> io::Result<()> {
        while let Ok(frame) = frames.recv() {
            w.write_all(&frame)?;
            while let Ok(frame) = frames.try_recv() {
                w.write_all(&frame)?;
            }
            w.flush()?;
        }
        Ok(())
    })();
    if ok.is_err() {
        // The peer is gone or stuck: end the connection so the reader
        // notices and cleans up.
        let _ = stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------
// Client

/// A reply on its way to a caller.
struct Reply {
    status: Status,
    body: Vec<u8>,
}

type Pending = Mutex<Option<HashMap<u64, Sender<Reply>>>>;

/// Counters of one client connection.
#[derive(Default)]
struct ClientCounters {
    ok: AtomicU64,
    timeouts: AtomicU64,
    late: AtomicU64,
    server_errors: AtomicU64,
}

/// A snapshot of a client's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Calls that returned a reply body.
    pub ok: u64,
    /// Calls whose context ended first (their entry removed by the caller).
    pub timeouts: u64,
    /// Replies that arrived for an id no caller waits on any more: dropped.
    pub late: u64,
    /// Calls the server answered with an error status.
    pub server_errors: u64,
    /// Calls waiting for a reply right now.
    pub pending: usize,
}

struct ClientShared {
    pending: [Pending; SHARDS],
    next_id: AtomicU64,
    out: Sender<Vec<u8>>,
    stream: TcpStream,
    counters: ClientCounters,
}

/// One multiplexed connection to an RPC server; cheap to share between
/// coroutines (`Arc<Client>` or `&Client` in a scope): every call from
/// every caller goes over the same TCP connection.
pub struct Client {
    shared: Arc<ClientShared>,
}

impl Client {
    /// Connects, and starts the connection's reader and writer coroutines.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let (out, frames) = chan::bounded(1024);
        let shared = Arc::new(ClientShared {
            pending: std::array::from_fn(|_| Mutex::new(Some(HashMap::new()))),
            next_id: AtomicU64::new(1),
            out,
            stream: stream.try_clone()?,
            counters: ClientCounters::default(),
        });
        let w = stream.try_clone()?;
        goro::go!(move || write_loop(w, frames));
        let sh = shared.clone();
        goro::go!(move || client_read_loop(sh, stream));
        Ok(Client { shared })
    }

    /// Calls `method` with `body` at `priority`, waiting until the reply
    /// comes or `ctx` is done (its deadline is also the server's budget).
    pub fn call(
        &self,
        ctx: &Context,
        method: u8,
        priority: u8,
        body: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        if let Some(e) = ctx.err() {
            return Err(e.into());
        }
        let sh = &*self.shared;
        let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
        let shard = &sh.pending[id as usize % SHARDS];
        let (tx, rx) = chan::bounded(1);
        match shard.lock().as_mut() {
            Some(m) => m.insert(id, tx),
            None => return Err(CallError::Disconnected),
        };
        // The budget rounds up, so a call with time left never asks for 0
        // (which means "no deadline").
        let budget = match ctx.deadline() {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_micros().div_ceil(1000).clamp(1, u32::MAX as u128) as u32
            }
            None => 0,
        };
        let mut frame = Vec::with_capacity(4 + REQ_HEADER + body.len());
        encode_request(&mut frame, id, priority, method, budget, body);
        if sh.out.send(frame).is_err() {
            if let Some(m) = shard.lock().as_mut() {
                m.remove(&id);
            }
            return Err(CallError::Disconnected);
        }
        let done = ctx.done();
        goro::select! {
            recv(rx) -> r => return self.finish(r.ok()),
            recv(done) -> _ => {}
        }
        // Given up: take the entry back (protocol step 4).
        let ours = shard.lock().as_mut().and_then(|m| m.remove(&id)).is_some();
        if ours {
            sh.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(ctx.err().map_or(CallError::Canceled, CallError::from));
        }
        // The reader removed it first and has sent (or the connection
        // ended and dropped the sender).
        self.finish(rx.recv().ok())
    }

    /// [`call`](Client::call) with a fresh context that times out after
    /// `timeout`.
    pub fn call_timeout(
        &self,
        method: u8,
        priority: u8,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let (ctx, _cancel) = Context::with_timeout(&Context::background(), timeout);
        self.call(&ctx, method, priority, body)
    }

    fn finish(&self, r: Option<Reply>) -> Result<Vec<u8>, CallError> {
        let c = &self.shared.counters;
        match r {
            Some(Reply {
                status: Status::Ok,
                body,
            }) => {
                c.ok.fetch_add(1, Ordering::Relaxed);
                Ok(body)
            }
            Some(Reply { status, .. }) => {
                c.server_errors.fetch_add(1, Ordering::Relaxed);
                Err(CallError::Server(status))
            }
            None => Err(CallError::Disconnected),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.shared.counters;
        ClientStats {
            ok: c.ok.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            late: c.late.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            pending: self
                .shared
                .pending
                .iter()
                .map(|s| s.lock().as_ref().map_or(0, |m| m.len()))
                .sum(),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Ends the reader (end of stream) and the writer (write error).
        let _ = self.shared.stream.shutdown(Shutdown::Both);
        self.shared.out.close();
    }
}

/// The client's reader coroutine: routes every reply to its caller.
fn client_read_loop(sh: Arc<ClientShared>, stream: TcpStream) {
    let mut r = BufReader::with_capacity(WRITE_BUF, &stream);
    let mut buf = Vec::new();
    while let Ok(true) = read_frame(&mut r, &mut buf, REPLY_HEADER) {
        let id = u64_at(&buf);
        let reply = Reply {
            status: Status::from_byte(buf[8]),
            body: buf[REPLY_HEADER..].to_vec(),
        };
        let mut shard = sh.pending[id as usize % SHARDS].lock();
        match shard.as_mut().and_then(|m| m.remove(&id)) {
            // One reply per id: the one slot is free.
            Some(tx) => {
                let _ = tx.try_send(reply);
            }
            None => {
                sh.counters.late.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for shard in &sh.pending {
        shard.lock().take();
    }
    sh.out.close();
    let _ = stream.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// Server: the queue

/// What [`PriorityQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Push<T> {
    /// Queued, and nothing was displaced.
    Queued,
    /// Queued, displacing this lower-priority item.
    Evicted(T),
    /// Not queued: the queue is full of items of this priority or higher.
    Rejected(T),
}

/// A bounded queue with [`LEVELS`] priorities, FIFO within a priority.
/// When full, a push evicts the oldest item of the lowest priority below
/// the new item's, or is rejected if there is none.
pub struct PriorityQueue<T> {
    cap: usize,
    len: usize,
    levels: [VecDeque<T>; LEVELS],
}

impl<T> PriorityQueue<T> {
    /// An empty queue holding at most `cap` items (at least 1).
    pub fn new(cap: usize) -> PriorityQueue<T> {
        PriorityQueue {
            cap: cap.max(1),
            len: 0,
            levels: std::array::from_fn(|_| VecDeque::new()),
        }
    }

    /// Queues `item` at `priority` (clamped to `LEVELS - 1`).
    pub fn push(&mut self, priority: u8, item: T) -> Push<T> {
        let p = usize::from(priority).min(LEVELS - 1);
        if self.len < self.cap {
            self.levels[p].push_back(item);
            self.len += 1;
            return Push::Queued;
        }
        for lower in 0..p {
            if let Some(victim) = self.levels[lower].pop_front() {
                self.levels[p].push_back(item);
                return Push::Evicted(victim);
            }
        }
        Push::Rejected(item)
    }

    /// The oldest item of the highest priority present.
    pub fn pop(&mut self) -> Option<T> {
        let item = self.levels.iter_mut().rev().find_map(|q| q.pop_front())?;
        self.len -= 1;
        Some(item)
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items queued at each priority.
    pub fn lens(&self) -> [usize; LEVELS] {
        std::array::from_fn(|p| self.levels[p].len())
    }
}

// ---------------------------------------------------------------------------
// Server

/// A request's handler: method, body and a context carrying the request's
/// deadline; returns the reply body or an error status.
pub type Handler = Arc<dyn Fn(&Context, u8, &[u8]) -> Result<Vec<u8>, Status> + Send + Sync>;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Worker coroutines.
    pub pool: usize,
    /// Requests queued at most.
    pub queue: usize,
    /// Deadline of a request that carries no budget.
    pub default_budget: Duration,
    /// Replies waiting for one connection's writer before more are dropped.
    pub reply_queue: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            pool: 4,
            queue: 1024,
            default_budget: Duration::from_secs(10),
            reply_queue: 4096,
        }
    }
}

/// One queued request.
struct Job {
    id: u64,
    priority: u8,
    method: u8,
    body: Vec<u8>,
    deadline: Instant,
    replies: Sender<Vec<u8>>,
}

/// Per-priority counters of the server.
#[derive(Default)]
struct ServerCounters {
    served: [AtomicU64; LEVELS],
    expired: [AtomicU64; LEVELS],
    evicted: [AtomicU64; LEVELS],
    rejected: [AtomicU64; LEVELS],
    replies_dropped: AtomicU64,
}

/// A snapshot of the server's counters, indexed by priority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests a handler ran for.
    pub served: [u64; LEVELS],
    /// Requests dropped unprocessed because their deadline had passed.
    pub expired: [u64; LEVELS],
    /// Requests evicted from the full queue by a higher-priority one.
    pub evicted: [u64; LEVELS],
    /// Requests turned away by a queue full of equal or higher priority.
    pub rejected: [u64; LEVELS],
    /// Replies dropped because a client was not reading them.
    pub replies_dropped: u64,
    /// Requests queued now, per priority.
    pub queued: [usize; LEVELS],
}

/// The RPC server: a queue, a pool of workers and a handler.
pub struct Server {
    cfg: ServerConfig,
    handler: Handler,
    queue: Mutex<PriorityQueue<Job>>,
    ready: Condvar,
    counters: ServerCounters,
}

/// The built-in methods: [`ECHO`] and [`SLEEP`].
pub fn builtin_handler() -> Handler {
    Arc::new(|ctx: &Context, method: u8, body: &[u8]| match method {
        ECHO => Ok(body.to_vec()),
        SLEEP => {
            let ms = u32::from_be_bytes(body.try_into().map_err(|_| Status::Failed)?);
            goro::select! {
                recv(chan::after(Duration::from_millis(ms.into()))) -> _ => Ok(Vec::new()),
                recv(ctx.done()) -> _ => Err(Status::Expired),
            }
        }
        _ => Err(Status::BadMethod),
    })
}

impl Server {
    /// A server with its worker pool running, not yet listening.
    pub fn start(cfg: ServerConfig, handler: Handler) -> Arc<Server> {
        let server = Arc::new(Server {
            queue: Mutex::new(PriorityQueue::new(cfg.queue)),
            cfg,
            handler,
            ready: Condvar::new(),
            counters: ServerCounters::default(),
        });
        for _ in 0..server.cfg.pool.max(1) {
            let s = server.clone();
            goro::go!(move || s.work());
        }
        server
    }

    /// Accepts connections forever, two coroutines each (reader, writer).
    pub fn serve(self: &Arc<Server>, listener: TcpListener) -> io::Result<()> {
        for conn in listener.incoming() {
            let conn = conn?;
            let s = self.clone();
            goro::go!(move || {
                let _ = s.serve_conn(conn);
            });
        }
        Ok(())
    }

    /// The counters so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let load = |a: &[AtomicU64; LEVELS]| std::array::from_fn(|p| a[p].load(Ordering::Relaxed));
        ServerStats {
            served: load(&c.served),
            expired: load(&c.expired),
            evicted: load(&c.evicted),
            rejected: load(&c.rejected),
            replies_dropped: c.replies_dropped.load(Ordering::Relaxed),
            queued: self.queue.lock().lens(),
        }
    }

    fn reply(&self, to: &Sender<Vec<u8>>, frame: Vec<u8>) {
        if to.try_send(frame).is_err() {
            self.counters
                .replies_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One connection's reader; its writer runs beside it.
    fn serve_conn(&self, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let (replies, frames) = chan::bounded(self.cfg.reply_queue);
        let w = stream.try_clone()?;
        goro::go!(move || write_loop(w, frames));
        let mut r = BufReader::with_capacity(WRITE_BUF, &stream);
        let mut buf = Vec::new();
        let result = (|| -> io::Result<()> {
            while read_frame(&mut r, &mut buf, REQ_HEADER)? {
                let now = Instant::now();
                let budget = u32::from_be_bytes(buf[10..14].try_into().expect("4 bytes"));
                let budget = match budget {
                    0 => self.cfg.default_budget,
                    ms => Duration::from_millis(ms.into()),
                };
                let job = Job {
                    id: u64_at(&buf),
                    priority: buf[8].min(HIGH),
                    method: buf[9],
                    body: buf[REQ_HEADER..].to_vec(),
                    deadline: now + budget,
                    replies: replies.clone(),
                };
                let pushed = self.queue.lock().push(job.priority, job);
                let loser = match pushed {
                    Push::Queued => None,
                    Push::Evicted(j) => {
                        self.counters.evicted[usize::from(j.priority)]
                            .fetch_add(1, Ordering::Relaxed);
                        Some(j)
                    }
                    Push::Rejected(j) => {
                        self.counters.rejected[usize::from(j.priority)]
                            .fetch_add(1, Ordering::Relaxed);
                        Some(j)
                    }
                };
                match loser {
                    Some(j) => self.reply(&j.replies, encode_reply(j.id, Status::Overloaded, &[])),
                    None => {
                        self.ready.notify_one();
                    }
                }
            }
            Ok(())
        })();
        // Queued jobs keep their own reply senders; the writer ends when
        // the last is gone.
        drop(replies);
        result
    }

    /// A worker coroutine: serves the queue forever.
    fn work(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock();
                loop {
                    if let Some(j) = q.pop() {
                        break j;
                    }
                    self.ready.wait(&mut q);
                }
            };
            let p = usize::from(job.priority);
            if Instant::now() >= job.deadline {
                self.counters.expired[p].fetch_add(1, Ordering::Relaxed);
                self.reply(&job.replies, encode_reply(job.id, Status::Expired, &[]));
                continue;
            }
            let (ctx, _cancel) = Context::with_deadline(&Context::background(), job.deadline);
            let frame = match (self.handler)(&ctx, job.method, &job.body) {
                Ok(body) => encode_reply(job.id, Status::Ok, &body),
                Err(status) => encode_reply(job.id, status, &[]),
            };
            self.counters.served[p].fetch_add(1, Ordering::Relaxed);
            self.reply(&job.replies, frame);
        }
    }
}

/// Starts a server on a free loopback port in this process.
pub fn start_local(cfg: ServerConfig, handler: Handler) -> io::Result<(Arc<Server>, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = Server::start(cfg, handler);
    let s = server.clone();
    goro::go!(move || s.serve(listener));
    Ok((server, addr))
}

// ---------------------------------------------------------------------------
// Load: the bench and the overload flood

/// What [`bench`] measured.
#[derive(Debug)]
pub struct BenchReport {
    /// Calls that got their echo back.
    pub calls: u64,
    /// Calls that failed (timeouts included).
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Sorted latencies of a sample of calls (every caller's every 16th).
    pub latencies: Vec<Duration>,
}

impl BenchReport {
    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-th percentile of the sampled latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i]
    }
}

/// `callers` coroutines, each calling [`ECHO`] with a 16-byte body in a
/// loop over the one `client` connection for `duration`.
pub fn bench(client: &Arc<Client>, callers: usize, duration: Duration) -> BenchReport {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..callers)
        .map(|i| {
            let (client, stop) = (client.clone(), stop.clone());
            goro::go!(move || {
                let body = (i as u128).to_be_bytes();
                let (mut ok, mut failed, mut lat) = (0u64, 0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match client.call_timeout(ECHO, HIGH, &body, Duration::from_secs(10)) {
                        Ok(b) if b == body => ok += 1,
                        _ => failed += 1,
                    }
                    if (ok + failed) % 16 == 0 {
                        lat.push(t.elapsed());
                    }
                }
                (ok, failed, lat)
            })
        })
        .collect();
    goro::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut r = BenchReport {
        calls: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for h in handles {
        let (ok, failed, lat) = h.join().expect("a bench caller panicked");
        r.calls += ok;
        r.failed += failed;
        r.latencies.extend(lat);
    }
    r.elapsed = start.elapsed();
    r.latencies.sort();
    r
}

/// The overload flood: a server whose pool can serve `capacity()` calls
/// per second is offered `overload` times that in low-priority calls,
/// while a few high-priority callers make calls of their own.
#[derive(Clone, Debug)]
pub struct Flood {
    /// Server worker coroutines.
    pub pool: usize,
    /// Server queue bound.
    pub queue: usize,
    /// Time a handler takes per call (it sleeps, as if calling a backend).
    pub service: Duration,
    /// Offered low-priority load, as a multiple of the pool's capacity.
    pub overload: usize,
    /// The low-priority callers' deadline.
    pub low_deadline: Duration,
    /// High-priority callers (at most `queue` keeps them from being rejected).
    pub high_callers: usize,
    /// Calls each high-priority caller makes.
    pub high_calls: usize,
    /// Pause between one high-priority caller's calls.
    pub high_gap: Duration,
    /// The high-priority callers' deadline.
    pub high_deadline: Duration,
}

impl Default for Flood {
    fn default() -> Flood {
        Flood {
            pool: 4,
            queue: 64,
            service: Duration::from_millis(2),
            overload: 10,
            low_deadline: Duration::from_millis(50),
            high_callers: 8,
            high_calls: 50,
            high_gap: Duration::from_millis(20),
            high_deadline: Duration::from_millis(500),
        }
    }
}

/// Pace of one low-priority caller: a call every this long.
const LOW_PERIOD: Duration = Duration::from_millis(10);

impl Flood {
    /// Calls per second the pool can serve.
    pub fn capacity(&self) -> f64 {
        self.pool as f64 / self.service.as_secs_f64()
    }

    /// Low-priority callers needed to offer `overload` x capacity, each
    /// calling every [`LOW_PERIOD`].
    pub fn low_callers(&self) -> usize {
        (self.overload as f64 * self.capacity() * LOW_PERIOD.as_secs_f64()).ceil() as usize
    }
}

/// What [`flood`] saw.
#[derive(Debug)]
pub struct FloodReport {
    /// High-priority calls that returned their reply in time.
    pub high_ok: u64,
    /// How every other high-priority call ended.
    pub high_failures: Vec<CallError>,
    /// The slowest high-priority call that succeeded.
    pub high_max_latency: Duration,
    /// Low-priority calls made, and how they ended.
    pub low_offered: u64,
    /// Low-priority calls answered.
    pub low_ok: u64,
    /// Low-priority calls evicted or rejected (`Overloaded`).
    pub low_overloaded: u64,
    /// Low-priority calls dropped unprocessed after their deadline.
    pub low_expired: u64,
    /// Low-priority calls whose caller gave up first.
    pub low_timeouts: u64,
    /// Wall time of the flood.
    pub elapsed: Duration,
    /// The server's counters at the end.
    pub server: ServerStats,
}

/// Runs the flood against a fresh in-process server; returns when every
/// high-priority caller has made its calls.
pub fn flood(f: &Flood) -> io::Result<FloodReport> {
    let service = f.service;
    let handler: Handler = Arc::new(move |_ctx: &Context, _m: u8, body: &[u8]| {
        goro::sleep(service);
        Ok(body.to_vec())
    });
    let cfg = ServerConfig {
        pool: f.pool,
        queue: f.queue,
        ..ServerConfig::default()
    };
    let (server, addr) = start_local(cfg, handler)?;
    let client = Arc::new(Client::connect(addr)?);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let lows: Vec<_> = (0..f.low_callers())
        .map(|_| {
            let (client, stop, deadline) = (client.clone(), stop.clone(), f.low_deadline);
            goro::go!(move || {
                // offered, ok, overloaded, expired, timeouts
                let mut n = [0u64; 5];
                let mut next = Instant::now() + LOW_PERIOD.mul_f64(fastrand::f64());
                while !stop.load(Ordering::Relaxed) {
                    goro::sleep(next.saturating_duration_since(Instant::now()));
                    next += LOW_PERIOD;
                    n[0] += 1;
                    match client.call_timeout(ECHO, LOW, b"low", deadline) {
                        Ok(_) => n[1] += 1,
                        Err(CallError::Server(Status::Overloaded)) => n[2] += 1,
                        Err(CallError::Server(Status::Expired)) => n[3] += 1,
                        Err(_) => n[4] += 1,
                    }
                }
                n
            })
        })
        .collect();
    let highs: Vec<_> = (0..f.high_callers)
        .map(|_| {
            let client = client.clone();
            let (calls, gap, deadline) = (f.high_calls, f.high_gap, f.high_deadline);
            goro::go!(move || {
                let mut results = Vec::with_capacity(calls);
                for _ in 0..calls {
                    goro::sleep(gap);
                    let t = Instant::now();
                    results.push(
                        client
                            .call_timeout(ECHO, HIGH, b"high", deadline)
                            .map(|_| t.elapsed()),
                    );
                }
                results
            })
        })
        .collect();
    let mut r = FloodReport {
        high_ok: 0,
        high_failures: Vec::new(),
        high_max_latency: Duration::ZERO,
        low_offered: 0,
        low_ok: 0,
        low_overloaded: 0,
        low_expired: 0,
        low_timeouts: 0,
        elapsed: Duration::ZERO,
        server: ServerStats::default(),
    };
    for h in highs {
        for res in h.join().expect("a high-priority caller panicked") {
            match res {
                Ok(lat) => {
                    r.high_ok += 1;
                    r.high_max_latency = r.high_max_latency.max(lat);
                }
                Err(e) => r.high_failures.push(e),
            }
        }
    }
    r.elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for h in lows {
        let n = h.join().expect("a low-priority caller panicked");
        r.low_offered += n[0];
        r.low_ok += n[1];
        r.low_overloaded += n[2];
        r.low_expired += n[3];
        r.low_timeouts += n[4];
    }
    r.server = server.stats();
    Ok(r)
}

// ---------------------------------------------------------------------------
// The program

struct Args {
    mode: String,
    listen: String,
    addr: Option<SocketAddr>,
    pool: usize,
    queue: usize,
    callers: usize,
    secs: f64,
    workers: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mode: "tour".into(),
        listen: "127.0.0.1:7200".into(),
        addr: None,
        pool: 4,
        queue: 1024,
        callers: 1000,
        secs: 5.0,
        workers: None,
    };
    let mut args = std::env::args().skip(1).peekable();
    if let Some(m) = args.peek()
        && !m.starts_with("--")
    {
        a.mode = args.next().expect("peeked");
    }
    while let Some(flag) = args.next() {
        let v = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--listen" => a.listen = v,
            "--addr" => a.addr = Some(v.parse().map_err(|e| format!("--addr: {e}"))?),
            "--pool" => a.pool = num(&v)?,
            "--queue" => a.queue = num(&v)?,
            "--callers" => a.callers = num(&v)?,
            "--secs" => a.secs = v.parse().map_err(|e| format!("--secs: {e}"))?,
            "--workers" => a.workers = Some(num(&v)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !["tour", "serve", "bench", "flood"].contains(&a.mode.as_str()) {
        return Err(format!("unknown mode {:?}", a.mode));
    }
    Ok(a)
}

fn print_bench(callers: usize, r: &BenchReport) {
    println!(
        "bench: {callers} callers on one connection: {:.0} calls/s ({} calls, {} failed, {:.2?}); latency p50 {:.2?} p99 {:.2?}",
        r.rate(),
        r.calls,
        r.failed,
        r.elapsed,
        r.percentile(50.0),
        r.percentile(99.0)
    );
}

fn print_flood(f: &Flood, r: &FloodReport) {
    let s = &r.server;
    println!(
        "flood: pool {} x {:?} = {:.0} calls/s capacity, {} low callers offering {}x ({:.0} calls/s offered), {} high callers",
        f.pool,
        f.service,
        f.capacity(),
        f.low_callers(),
        f.overload,
        r.low_offered as f64 / r.elapsed.as_secs_f64(),
        f.high_callers
    );
    println!(
        "  high: {} ok, {} failed {:?}, slowest {:.2?} (deadline {:?})",
        r.high_ok,
        r.high_failures.len(),
        r.high_failures.iter().take(3).collect::<Vec<_>>(),
        r.high_max_latency,
        f.high_deadline
    );
    println!(
        "  low: {} offered, {} ok, {} overloaded, {} expired, {} timed out",
        r.low_offered, r.low_ok, r.low_overloaded, r.low_expired, r.low_timeouts
    );
    println!(
        "  server by priority [low..high]: served {:?} expired {:?} evicted {:?} rejected {:?}",
        s.served, s.expired, s.evicted, s.rejected
    );
}

fn main() -> io::Result<()> {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{e}\nusage: rpc [tour|serve|bench|flood] [--listen ADDR] [--addr ADDR] [--pool N] [--queue N] [--callers N] [--secs S] [--workers N]"
            );
            std::process::exit(2);
        }
    };
    if let Some(n) = a.workers {
        goro::Config::new()
            .workers(n)
            .apply()
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let cfg = ServerConfig {
        pool: a.pool,
        queue: a.queue,
        ..ServerConfig::default()
    };
    match a.mode.as_str() {
        "serve" => {
            let listener = TcpListener::bind(a.listen.as_str())?;
            println!(
                "rpc server on {} (pool {}, queue {}); drive it with\n  cargo run --release --example rpc -- bench --addr {} --callers 1000",
                listener.local_addr()?,
                cfg.pool,
                cfg.queue,
                listener.local_addr()?
            );
            Server::start(cfg, builtin_handler()).serve(listener)
        }
        "bench" => {
            let addr = match a.addr {
                Some(addr) => addr,
                None => start_local(cfg, builtin_handler())?.1,
            };
            let client = Arc::new(Client::connect(addr)?);
            let r = bench(&client, a.callers, Duration::from_secs_f64(a.secs));
            print_bench(a.callers, &r);
            Ok(())
        }
        "flood" => {
            let f = Flood::default();
            print_flood(&f, &flood(&f)?);
            Ok(())
        }
        _ => {
            let (_, addr) = start_local(cfg, builtin_handler())?;
            let client = Arc::new(Client::connect(addr)?);
            let r = bench(&client, 1000, Duration::from_secs(3));
            print_bench(1000, &r);
            let f = Flood::default();
            print_flood(&f, &flood(&f)?);
            println!(
                "\nnext: `rpc serve --listen 127.0.0.1:7200`, then `rpc bench --addr 127.0.0.1:7200 --callers 1000 --secs 5`"
            );
            Ok(())
        }
    }
}
