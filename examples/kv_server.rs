//! A Redis-protocol (RESP2) key-value server: one coroutine per connection
//! over a sharded map guarded by goro's locks, with expiry on goro timers.
//! Unmodified `redis-cli` and `redis-benchmark` drive it.
//!
//! ```sh
//! cargo run --release --example kv_server -- --port 6380 --workers 2
//! redis-cli -p 6380 set hello world
//! redis-benchmark -p 6380 -t set,get -c 50 -n 1000000 -P 16 -q
//! ```
//!
//! Options: `--port N` (default 6380; 0 picks a free port), `--bind ADDR`
//! (127.0.0.1), `--workers N` (goro's worker threads; default
//! `GORO_WORKERS` or every core).
//!
//! # Commands
//!
//! PING [msg], ECHO, GET, SET key value [EX s | PX ms] [NX | XX] [KEEPTTL],
//! DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, MGET, MSET, EXPIRE, PEXPIRE,
//! TTL, PTTL, PERSIST, KEYS pattern (Redis's glob: `*`, `?`, `[a-z]`,
//! `[^x]`, `\`), DBSIZE, FLUSHALL, FLUSHDB, SELECT 0, QUIT, and what the
//! stock clients ask on connect (COMMAND, CONFIG GET save/appendonly, INFO).
//! Requests come as RESP arrays of bulk strings (what every client sends)
//! or as inline lines (`PING\r\n`, what `telnet` sends). Pipelining is
//! free: every complete request in one read is answered, and the replies
//! go out in one write.
//!
//! # Design
//!
//! - **A coroutine per connection** reads into a buffer, parses requests
//!   in place (arguments are ranges of the buffer: no copy per argument),
//!   runs each and appends its reply to an output buffer written once per
//!   read. A `GET` copies the value straight from the map into that buffer
//!   under the shard's lock.
//! - **64 shards**, each a `goro::sync::Mutex` over a `HashMap` and a
//!   min-heap of deadlines. A key's shard is an FNV-1a hash of its bytes.
//!   Locks are held only for the map operation itself, never across IO.
//!   `MSET` locks its shards in ascending order, so it is atomic and
//!   cannot deadlock with another `MSET`; `MGET`, `DEL`, `EXISTS`, `KEYS`
//!   and `FLUSHALL` take one shard at a time.
//! - **Expiry** is lazy and active, like Redis: a read of an expired key
//!   removes it, and a sweeper coroutine woken by `goro::chan::tick` every
//!   100 ms pops the due deadlines of each shard's heap and removes the
//!   keys whose deadline is still that one (a key overwritten or
//!   `PERSIST`ed since leaves a stale heap entry that is skipped). The
//!   sweeper holds the database weakly and ends when it is dropped.
//! - **Bad input never kills the server or the connection.** A framing
//!   error (garbage where a `*` or `$` header belongs, a bulk length over
//!   512 MiB such as a 1 GiB one, more than 1 Mi arguments, an inline line
//!   over 64 KiB) is answered with `-ERR Protocol error: ...`, the
//!   offending line is discarded and parsing resumes at the next line.
//!   (redis-server answers the same errors and then closes the
//!   connection.) A bad command gets Redis's error text.
//!
//! # Measured
//!
//! `redis-benchmark -t set,get -c 50 -n 1000000 -P 1` and `-P 16`, against
//! this server on 2 workers and against `redis-server` 7.0 in the same
//! sitting: see BENCHMARKS.md, "kv_server against redis-server".
//!
//! The serving logic is [`serve`] and [`handle`] over a [`Db`], so the
//! tests (`tests/example_kv_server.rs`) run this same code in-process.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use goro::net::{TcpListener, TcpStream};
use goro::sync::Mutex;

/// Number of shards: a power of two well above the worker count, so two
/// workers rarely meet on one lock unless they touch the same key.
const SHARDS: usize = 64;
/// Longest bulk string accepted (Redis's default `proto-max-bulk-len`).
pub const MAX_BULK: usize = 512 << 20;
/// Most arguments in one request (Redis's limit).
pub const MAX_ARGS: usize = 1 << 20;
/// Longest inline request or header line (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_LINE: usize = 64 << 10;
/// Bytes read per `read` call when the buffer is empty.
const READ_CHUNK: usize = 16 << 10;
/// Flush the reply buffer early once it is this big, so a long pipeline
/// of big `GET`s does not hold everything in memory.
const FLUSH_AT: usize = 64 << 10;
/// Requests with up to this many arguments are run without allocating.
const SMALL_ARGS: usize = 8;
/// How often the sweeper removes expired keys nobody reads.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// One stored value.
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: &Now) -> bool {
        self.expires.is_none_or(|t| t > now.get())
    }
}

/// The clock, read at most once per command and only if a key with a
/// deadline (or a new deadline) needs it: most `GET`s and `SET`s never
/// look at it.
struct Now(std::cell::Cell<Option<Instant>>);

impl Now {
    fn new() -> Now {
        Now(std::cell::Cell::new(None))
    }

    fn get(&self) -> Instant {
        match self.0.get() {
            Some(t) => t,
            None => {
                let t = Instant::now();
                self.0.set(Some(t));
                t
            }
        }
    }
}

/// One shard: its keys and a min-heap of their deadlines.
#[derive(Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
    deadlines: BinaryHeap<Reverse<(Instant, Box<[u8]>)>>,
}

impl Shard {
    /// The live entry for `key`; an expired one is removed.
    fn get_live(&mut self, key: &[u8], now: &Now) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| !e.live(now)) {
            self.map.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn set_deadline(&mut self, key: &[u8], at: Instant) {
        self.deadlines.push(Reverse((at, key.into())));
    }

    /// Removes the keys whose deadline has passed; returns how many.
    fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, key)) = self.deadlines.pop().expect("peeked");
            if self.map.get(&key).is_some_and(|e| e.expires == Some(at)) {
                self.map.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// The database: sharded, shared by every connection.
pub struct Db {
    shards: Box<[Mutex<Shard>]>,
}

fn shard_of(key: &[u8]) -> usize {
    // FNV-1a: cheap, and good enough to spread keys over 64 shards.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize % SHARDS
}

impl Db {
    /// An empty database with its expiry sweeper running.
    pub fn new() -> Arc<Db> {
        let db = Arc::new(Db {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        });
        let weak = Arc::downgrade(&db);
        goro::go!(move || sweeper(weak));
        db
    }

    fn shard(&self, key: &[u8]) -> goro::sync::MutexGuard<'_, Shard> {
        self.shards[shard_of(key)].lock()
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        let now = Now::new();
        self.shards
            .iter()
            .map(|s| s.lock().map.values().filter(|e| e.live(&now)).count())
            .sum()
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys stored, expired ones not yet removed included (what the
    /// sweeper works on).
    pub fn stored(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }
}

/// Removes expired keys every [`SWEEP_EVERY`] until the database is gone.
fn sweeper(db: Weak<Db>) {
    let ticks = goro::chan::tick(SWEEP_EVERY);
    while ticks.recv().is_ok() {
        let Some(db) = db.upgrade() else { return };
        let now = Instant::now();
        for s in db.shards.iter() {
            let mut s = s.lock();
            if !s.deadlines.is_empty() {
                s.sweep(now);
            }
        }
    }
}

// ---------------------------------------------------------------------
// RESP parsing.

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A request of `args` (ranges into the buffer), `n` bytes long.
    Request(usize),
    /// An empty request (`*0`, a blank line) of `n` bytes: ignore it.
    Empty(usize),
    /// Not a whole request yet.
    Incomplete,
    /// A framing error: reply with it and discard `n` bytes. `n` is the
    /// buffer's whole length when the bad line has no end yet; the caller
    /// then discards input up to the next `\n`.
    Error(&'static str, usize),
}

/// Finds the line starting at `at`: returns the index of its `\n`.
fn line_end(buf: &[u8], at: usize) -> Option<usize> {
    buf[at..].iter().position(|&b| b == b'\n').map(|i| at + i)
}

/// Parses a decimal integer (Redis's strict rules: no spaces, no `+`).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses too.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg { Some(n) } else { n.checked_neg() }
}

/// Parses one request from the start of `buf` into `args`.
pub fn parse(buf: &[u8], args: &mut Vec<Range<usize>>) -> Parsed {
    args.clear();
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] != b'*' {
        return parse_inline(buf, args);
    }
    // "*<count>\r\n"
    let Some(end) = line_end(buf, 0) else {
        return too_long_or_incomplete(buf);
    };
    let count = match parse_i64(trim_cr(&buf[1..end])) {
        Some(n) if n <= MAX_ARGS as i64 => n,
        _ => return Parsed::Error("ERR Protocol error: invalid multibulk length", end + 1),
    };
    if count <= 0 {
        return Parsed::Empty(end + 1);
    }
    let mut at = end + 1;
    for _ in 0..count {
        // "$<len>\r\n<bytes>\r\n"
        if at >= buf.len() {
            return Parsed::Incomplete;
        }
        let Some(end) = line_end(buf, at) else {
            return too_long_or_incomplete(&buf[at..]);
        };
        if buf[at] != b'$' {
            return Parsed::Error("ERR Protocol error: expected '$'", end + 1);
        }
        let len = match parse_i64(trim_cr(&buf[at + 1..end])) {
            Some(n) if (0..=MAX_BULK as i64).contains(&n) => n as usize,
            _ => return Parsed::Error("ERR Protocol error: invalid bulk length", end + 1),
        };
        let start = end + 1;
        if buf.len() < start + len + 2 {
            return Parsed::Incomplete;
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Parsed::Error(
                "ERR Protocol error: expected CRLF after bulk string",
                start + len,
            );
        }
        args.push(start..start + len);
        at = start + len + 2;
    }
    Parsed::Request(at)
}

fn trim_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn too_long_or_incomplete(rest: &[u8]) -> Parsed {
    if rest.len() > MAX_LINE {
        Parsed::Error("ERR Protocol error: too big request line", usize::MAX)
    } else {
        Parsed::Incomplete
    }
}

/// An inline request: words separated by spaces, ended by `\n`.
fn parse_inline(buf: &[u8], args: &mut Vec<Range<usize>>) -> Parsed {
    let Some(end) = line_end(buf, 0) else {
        return too_long_or_incomplete(buf);
    };
    if end > MAX_LINE {
        return Parsed::Error("ERR Protocol error: too big inline request", end + 1);
    }
    let line = trim_cr(&buf[..end]);
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let s = i;
        while i < line.len() && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i > s {
            args.push(s..i);
        }
    }
    if args.is_empty() {
        Parsed::Empty(end + 1)
    } else {
        Parsed::Request(end + 1)
    }
}

// ---------------------------------------------------------------------
// Replies.

fn put_int_digits(out: &mut Vec<u8>, n: i64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let neg = n < 0;
    let mut u = n.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&tmp[i..]);
}

fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

fn err(out: &mut Vec<u8>, msg: &str) {
    out.push(b'-');
    // A line break inside an error (from a client's command name) would
    // break the reply's framing.
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    put_int_digits(out, n);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'$');
    put_int_digits(out, v.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    put_int_digits(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

fn wrong_args(out: &mut Vec<u8>, name: &[u8]) {
    let msg = format!(
        "ERR wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name).to_lowercase()
    );
    err(out, &msg);
}

const NOT_INT: &str = "ERR value is not an integer or out of range";

// ---------------------------------------------------------------------
// Commands.

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    Continue,
    /// Flush and close (QUIT).
    Close,
}

/// Runs one request (`args[0]` is the command name) and appends its
/// reply to `out`.
pub fn execute(db: &Db, args: &[&[u8]], out: &mut Vec<u8>) -> After {
    let name = args[0];
    let mut upper = [0u8; 16];
    let cmd: &[u8] = if name.len() <= upper.len() {
        upper[..name.len()].copy_from_slice(name);
        upper[..name.len()].make_ascii_uppercase();
        &upper[..name.len()]
    } else {
        name
    };
    let argc = args.len();
    // (name, min args, max args) checks, Redis's error text.
    macro_rules! arity {
        ($ok:expr) => {
            if !$ok {
                wrong_args(out, name);
                return After::Continue;
            }
        };
    }
    match cmd {
        b"GET" => {
            arity!(argc == 2);
            let now = Now::new();
            match db.shard(args[1]).get_live(args[1], &now) {
                Some(e) => bulk(out, &e.value),
                None => nil(out),
            }
        }
        b"SET" => {
            arity!(argc >= 3);
            set(db, args, out);
        }
        b"PING" => {
            arity!(argc <= 2);
            match args.get(1) {
                Some(m) => bulk(out, m),
                None => out.extend_from_slice(b"+PONG\r\n"),
            }
        }
        b"ECHO" => {
            arity!(argc == 2);
            bulk(out, args[1]);
        }
        b"DEL" | b"UNLINK" => {
            arity!(argc >= 2);
            let now = Now::new();
            let mut n = 0;
            for k in &args[1..] {
                let mut s = db.shard(k);
                if let Some(e) = s.map.remove(*k) {
                    n += i64::from(e.live(&now));
                }
            }
            int(out, n);
        }
        b"EXISTS" => {
            arity!(argc >= 2);
            let now = Now::new();
            let n = args[1..]
                .iter()
                .filter(|k| db.shard(k).get_live(k, &now).is_some())
                .count();
            int(out, n as i64);
        }
        b"INCR" | b"DECR" | b"INCRBY" | b"DECRBY" => {
            let by = match cmd {
                b"INCR" | b"DECR" => {
                    arity!(argc == 2);
                    1
                }
                _ => {
                    arity!(argc == 3);
                    match parse_i64(args[2]) {
                        Some(n) => n,
                        None => return reply_err(out, NOT_INT),
                    }
                }
            };
            let by = if cmd.starts_with(b"DECR") {
                match by.checked_neg() {
                    Some(n) => n,
                    None => return reply_err(out, NOT_INT),
                }
            } else {
                by
            };
            incr(db, args[1], by, out);
        }
        b"MGET" => {
            arity!(argc >= 2);
            let now = Now::new();
            array(out, argc - 1);
            for k in &args[1..] {
                match db.shard(k).get_live(k, &now) {
                    Some(e) => bulk(out, &e.value),
                    None => nil(out),
                }
            }
        }
        b"MSET" => {
            arity!(argc >= 3 && argc % 2 == 1);
            mset(db, &args[1..]);
            ok(out);
        }
        b"EXPIRE" | b"PEXPIRE" => {
            arity!(argc == 3);
            let Some(n) = parse_i64(args[2]) else {
                return reply_err(out, NOT_INT);
            };
            let ms = if cmd == b"EXPIRE" {
                n.checked_mul(1000)
            } else {
                Some(n)
            };
            let Some(ms) = ms else {
                return reply_err(out, "ERR invalid expire time in 'expire' command");
            };
            int(out, i64::from(expire(db, args[1], ms)));
        }
        b"TTL" | b"PTTL" => {
            arity!(argc == 2);
            let now = Now::new();
            let ttl = match db.shard(args[1]).get_live(args[1], &now) {
                None => -2,
                Some(Entry { expires: None, .. }) => -1,
                Some(Entry {
                    expires: Some(t), ..
                }) => {
                    let ms = t.saturating_duration_since(now.get()).as_millis() as i64;
                    if cmd == b"TTL" { (ms + 500) / 1000 } else { ms }
                }
            };
            int(out, ttl);
        }
        b"PERSIST" => {
            arity!(argc == 2);
            let now = Now::new();
            let n = match db.shard(args[1]).get_live(args[1], &now) {
                Some(e) if e.expires.is_some() => {
                    e.expires = None;
                    1
                }
                _ => 0,
            };
            int(out, n);
        }
        b"KEYS" => {
            arity!(argc == 2);
            let now = Now::new();
            let mut found: Vec<Box<[u8]>> = Vec::new();
            for s in db.shards.iter() {
                let s = s.lock();
                found.extend(
                    s.map
                        .iter()
                        .filter(|(k, e)| e.live(&now) && glob_match(args[1], k))
                        .map(|(k, _)| k.clone()),
                );
            }
            array(out, found.len());
            for k in &found {
                bulk(out, k);
            }
        }
        b"DBSIZE" => {
            arity!(argc == 1);
            int(out, db.len() as i64);
        }
        b"FLUSHALL" | b"FLUSHDB" => {
            arity!(argc <= 2);
            for s in db.shards.iter() {
                *s.lock() = Shard::default();
            }
            ok(out);
        }
        b"SELECT" => {
            arity!(argc == 2);
            if args[1] == b"0" {
                ok(out);
            } else {
                err(out, "ERR DB index is out of range");
            }
        }
        b"QUIT" => {
            ok(out);
            return After::Close;
        }
        b"COMMAND" => {
            // redis-cli asks `COMMAND DOCS` for its hints; none is fine.
            array(out, 0);
        }
        b"CONFIG" => config(args, out),
        b"INFO" => bulk(
            out,
            b"# Server\r\nredis_version:7.0.0\r\nserver_name:goro-kv\r\n",
        ),
        _ => {
            let mut msg = format!(
                "ERR unknown command '{}', with args beginning with:",
                String::from_utf8_lossy(name)
            );
            for a in args[1..].iter().take(8) {
                msg.push_str(&format!(" '{}'", String::from_utf8_lossy(a)));
            }
            err(out, &msg);
        }
    }
    After::Continue
}

fn reply_err(out: &mut Vec<u8>, msg: &str) -> After {
    err(out, msg);
    After::Continue
}

/// `CONFIG GET` for the two settings `redis-benchmark` asks about.
fn config(args: &[&[u8]], out: &mut Vec<u8>) {
    if args.len() == 3 && args[1].eq_ignore_ascii_case(b"GET") {
        let v: Option<&[u8]> = match args[2] {
            b"save" => Some(b""),
            b"appendonly" => Some(b"no"),
            _ => None,
        };
        match v {
            Some(v) => {
                array(out, 2);
                bulk(out, args[2]);
                bulk(out, v);
            }
            None => array(out, 0),
        }
    } else {
        err(out, "ERR unsupported CONFIG subcommand");
    }
}

fn set(db: &Db, args: &[&[u8]], out: &mut Vec<u8>) {
    let (key, value) = (args[1], args[2]);
    let (mut nx, mut xx, mut keepttl) = (false, false, false);
    let mut ttl_ms: Option<i64> = None;
    let mut i = 3;
    while i < args.len() {
        let o = args[i];
        if o.eq_ignore_ascii_case(b"NX") && !xx {
            nx = true;
        } else if o.eq_ignore_ascii_case(b"XX") && !nx {
            xx = true;
        } else if o.eq_ignore_ascii_case(b"KEEPTTL") && ttl_ms.is_none() {
            keepttl = true;
        } else if (o.eq_ignore_ascii_case(b"EX") || o.eq_ignore_ascii_case(b"PX"))
            && ttl_ms.is_none()
            && !keepttl
            && i + 1 < args.len()
        {
            let Some(n) = parse_i64(args[i + 1]) else {
                return err(out, NOT_INT);
            };
            let ms = if o.eq_ignore_ascii_case(b"EX") {
                n.checked_mul(1000)
            } else {
                Some(n)
            };
            match ms {
                Some(ms) if ms > 0 => ttl_ms = Some(ms),
                _ => return err(out, "ERR invalid expire time in 'set' command"),
            }
            i += 1;
        } else {
            return err(out, "ERR syntax error");
        }
        i += 1;
    }
    let now = Now::new();
    let expires = match ttl_ms {
        Some(ms) => match now.get().checked_add(Duration::from_millis(ms as u64)) {
            Some(t) => Some(t),
            None => return err(out, "ERR invalid expire time in 'set' command"),
        },
        None => None,
    };
    let mut s = db.shard(key);
    let old = s.get_live(key, &now);
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return nil(out);
    }
    match old {
        // Overwrite in place: no key allocation on the hot path.
        Some(e) => {
            e.value.clear();
            e.value.extend_from_slice(value);
            if !keepttl {
                e.expires = expires;
            }
        }
        None => {
            s.map.insert(
                key.into(),
                Entry {
                    value: value.to_vec(),
                    expires,
                },
            );
        }
    }
    if let Some(t) = expires {
        s.set_deadline(key, t);
    }
    ok(out);
}

fn incr(db: &Db, key: &[u8], by: i64, out: &mut Vec<u8>) {
    let now = Now::new();
    let mut s = db.shard(key);
    let n = match s.get_live(key, &now) {
        None => {
            s.map.insert(
                key.into(),
                Entry {
                    value: by.to_string().into_bytes(),
                    expires: None,
                },
            );
            by
        }
        Some(e) => {
            let Some(cur) = parse_i64(&e.value) else {
                return err(out, NOT_INT);
            };
            let Some(n) = cur.checked_add(by) else {
                return err(out, "ERR increment or decrement would overflow");
            };
            e.value.clear();
            put_int_digits(&mut e.value, n);
            n
        }
    };
    int(out, n);
}

fn mset(db: &Db, pairs: &[&[u8]]) {
    let mut idx: Vec<usize> = pairs.chunks(2).map(|p| shard_of(p[0])).collect();
    idx.sort_unstable();
    idx.dedup();
    // Ascending order: two MSETs can never wait for each other in a cycle.
    let mut guards: Vec<_> = idx.iter().map(|&i| (i, db.shards[i].lock())).collect();
    for p in pairs.chunks(2) {
        let i = shard_of(p[0]);
        let g = &mut guards
            .iter_mut()
            .find(|(j, _)| *j == i)
            .expect("locked above")
            .1;
        g.map.insert(
            p[0].into(),
            Entry {
                value: p[1].to_vec(),
                expires: None,
            },
        );
    }
}

/// Sets `key`'s time to live; `ms <= 0` deletes it. Whether it existed.
fn expire(db: &Db, key: &[u8], ms: i64) -> bool {
    let now = Now::new();
    let mut s = db.shard(key);
    if s.get_live(key, &now).is_none() {
        return false;
    }
    if ms <= 0 {
        s.map.remove(key);
        return true;
    }
    let Some(at) = now.get().checked_add(Duration::from_millis(ms as u64)) else {
        return true;
    };
    s.map.get_mut(key).expect("live above").expires = Some(at);
    s.set_deadline(key, at);
    true
}

/// Redis's glob: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Backtracking point for the last `*`: (pattern after it, input pos).
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p + 1, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pat, p, s[i])
                        && matched
                    {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() => {
                    if pat[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pat[p] == b'['`: (matched,
/// index after the class). An unclosed class matches literally to the end.
fn class_match(pat: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let negate = pat.get(j) == Some(&b'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    loop {
        match pat.get(j) {
            None => break,
            Some(b']') => {
                j += 1;
                break;
            }
            Some(b'\\') if j + 1 < pat.len() => {
                matched |= pat[j + 1] == c;
                j += 2;
            }
            Some(&lo) if pat.get(j + 1) == Some(&b'-') && j + 2 < pat.len() => {
                let hi = pat[j + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                j += 3;
            }
            Some(&x) => {
                matched |= x == c;
                j += 1;
            }
        }
    }
    Some((matched != negate, j))
}

// ---------------------------------------------------------------------
// Connections.

/// Serves one connection until the client closes it, sends QUIT, or an
/// IO error (reset, broken pipe) ends it.
pub fn handle(db: &Db, mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(8);
    // After a framing error on a line with no end yet: drop input up to
    // the next `\n`.
    let mut skip_line = false;
    loop {
        // Make room: move the unparsed tail to the front, or grow.
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            } else {
                let n = buf.len() * 2;
                buf.resize(n, 0);
            }
        }
        let n = conn.read(&mut buf[end..])?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        if skip_line {
            match line_end(&buf[..end], start) {
                Some(e) => {
                    start = e + 1;
                    skip_line = false;
                }
                None => {
                    start = end;
                }
            }
        }
        let mut close = false;
        while start < end {
            let chunk = &buf[start..end];
            match parse(chunk, &mut ranges) {
                Parsed::Incomplete => break,
                Parsed::Empty(n) => start += n,
                Parsed::Error(msg, n) => {
                    err(&mut out, msg);
                    if n >= chunk.len() {
                        start = end;
                        skip_line = n == usize::MAX;
                    } else {
                        start += n;
                    }
                }
                Parsed::Request(n) => {
                    let after = if ranges.len() <= SMALL_ARGS {
                        let mut small: [&[u8]; SMALL_ARGS] = [&[]; SMALL_ARGS];
                        for (a, r) in small.iter_mut().zip(&ranges) {
                            *a = &chunk[r.clone()];
                        }
                        execute(db, &small[..ranges.len()], &mut out)
                    } else {
                        let args: Vec<&[u8]> = ranges.iter().map(|r| &chunk[r.clone()]).collect();
                        execute(db, &args, &mut out)
                    };
                    start += n;
                    if after == After::Close {
                        close = true;
                        break;
                    }
                    if out.len() >= FLUSH_AT {
                        conn.write_all(&out)?;
                        out.clear();
                    }
                }
            }
        }
        if start == end {
            start = 0;
            end = 0;
            if buf.len() > 4 * READ_CHUNK {
                // A big request is done: give its memory back.
                buf = vec![0u8; READ_CHUNK];
            }
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            out.clear();
            if out.capacity() > 4 * FLUSH_AT {
                out = Vec::with_capacity(READ_CHUNK);
            }
        }
        if close {
            return Ok(());
        }
    }
}

/// Accepts connections forever, one coroutine per connection, started on
/// the workers in turn (`Builder::worker`: a coroutine stays where it
/// starts, and connection handlers left to start beside this loop would
/// all share its worker).
pub fn serve(db: Arc<Db>, listener: TcpListener) -> io::Result<()> {
    let workers = goro::stats().workers;
    for (i, conn) in listener.incoming().enumerate() {
        let conn = conn?;
        let db = db.clone();
        let spawned = goro::Builder::new().worker(i % workers).spawn(move || {
            // A failed connection ends only its own coroutine.
            let _ = handle(&db, conn);
        });
        if let Err(e) = spawned {
            // No memory for the coroutine: the connection is closed, the
            // server goes on.
            eprintln!("kv_server: dropping a connection: {e}");
        }
    }
    Ok(())
}

/// Command-line settings.
pub struct Args {
    /// Address to bind.
    pub bind: String,
    /// Port to listen on.
    pub port: u16,
    /// Worker threads, if set.
    pub workers: Option<usize>,
}

/// Parses `--port N`, `--bind ADDR`, `--workers N`.
pub fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        bind: "127.0.0.1".into(),
        port: 6380,
        workers: None,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => a.port = val()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--bind" => a.bind = val()?,
            "--workers" => a.workers = Some(val()?.parse().map_err(|e| format!("--workers: {e}"))?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn main() -> io::Result<()> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: kv_server [--port N] [--bind ADDR] [--workers N]");
            std::process::exit(2);
        }
    };
    if let Some(n) = args.workers {
        goro::Config::new()
            .workers(n)
            .apply()
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let listener = TcpListener::bind((args.bind.as_str(), args.port))?;
    let addr = listener.local_addr()?;
    println!("kv server listening on {addr}");
    println!(
        "try: redis-cli -p {} ping; redis-benchmark -p {} -t set,get -c 50 -P 16 -q",
        addr.port(),
        addr.port()
    );
    serve(Db::new(), listener)
}
