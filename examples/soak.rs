//! Soak: many rounds of spawn / park / channel hand-off / exit, printing the
//! process's resident memory after each round, to show that a round leaves
//! nothing behind (no leaked tasks, no growing pools, registries or caches).
//!
//! Run it in release:
//!
//! ```text
//! cargo run --release --example soak                      # 10 rounds of 100k
//! cargo run --release --example soak -- --rounds 30 --coroutines 200000 --threads 8
//! ```
//!
//! Each round spawns `--coroutines` coroutines (half from a spawner
//! coroutine, half from the main thread, at the same time), and each one,
//! by its number modulo 8, does one of:
//!
//! | n % 8 | what it does                                                        |
//! |-------|---------------------------------------------------------------------|
//! | 0, 1  | receives its id on its own rendezvous channel from a plain thread   |
//! | 2, 3  | receives one message from a shared bounded(128) channel             |
//! | 4     | parks on a `WaitGroup` gate, then sends its id on the shared channel |
//! | 5, 6  | parks on a `Mutex` the main thread holds                            |
//! | 7     | parks on the gate, then `recv_timeout(1 ms)` on a channel nobody sends on (a timer, then a cancelled waiter) |
//!
//! The `--threads` plain feeder threads wait on the gate too, then send on
//! the rendezvous channels and the rest of the shared channel's messages.
//! The main thread opens the gate and the mutex only once every coroutine
//! has started, so every round holds all its coroutines live at once and
//! the rounds' peaks are the same. Every message carries a unique id and
//! is checked off exactly once. The main thread waits for every coroutine
//! to finish and for the runtime to count none live (`goro::stats()`) and
//! list none (`goro::coroutines()`), checks the counts, and prints VmRSS
//! (from `/proc/self/status`), the C heap's bytes in use and kept free
//! (glibc's `mallinfo2`), and the runtime's stack, blocking-thread and
//! timer counts. The first round grows the stack pool and the allocator's
//! arenas to their high-water mark; later rounds must stay at it.
//!
//! `--trim` calls glibc's `malloc_trim(0)` before reading RSS, so that the
//! free memory the allocator keeps (the "heap kept free" column) does not
//! hide or fake a leak; "heap in use" is what the program holds.
//!
//! What it measured on the development machine (2 cores, 2 workers,
//! release build, 10 rounds of 100,000 coroutines, 4 feeder threads):
//!
//! - Round 1 takes RSS to about 460 MiB (411 MiB with `--trim`): about
//!   398 MiB of it are the 100k stacks' touched pages, one 4 KiB page per
//!   stack, the rest task headers, channels and the allocator's free
//!   memory.
//! - Later rounds stay within +5 to +30 MiB of round 1 without `--trim`
//!   and +2 to +7 MiB with it. Heap in use stays at 2-6 MiB after every
//!   round, and no coroutine, timer or blocking thread is left. What moves
//!   is (a) free heap glibc keeps (50-75 MiB, varying with fragmentation;
//!   gone with `--trim`), (b) the stack pool growing by one or two slabs
//!   of 256 stacks past the round's 100k, because a worker's free-list
//!   shard may hold up to 512 stacks that another spawner cannot see, and
//!   (c) per-worker tables (the registry shard, the timer slab) whose
//!   capacity follows the largest share of a round any one worker has run
//!   so far, in doublings of up to 1 MiB. All three are bounded; none
//!   grows with the number of rounds (at 10k coroutines per round, heap in
//!   use levels off within a few hundred rounds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goro::chan::{self, Receiver, RecvTimeoutError, Sender};
use goro::sync::{Mutex, WaitGroup};

/// One round's parameters.
#[derive(Clone, Copy, Debug)]
pub struct RoundConfig {
    /// Coroutines spawned in the round.
    pub coroutines: usize,
    /// Plain feeder threads.
    pub threads: usize,
}

/// What one round counted; [`RoundReport::check`] compares it with what it
/// should have counted.
#[derive(Debug, Default)]
pub struct RoundReport {
    /// Coroutines spawned.
    pub spawned: u64,
    /// Rendezvous receivers (n % 8 in 0, 1), and how many got their id.
    pub own_expected: u64,
    /// Rendezvous receivers that got their id.
    pub own_received: u64,
    /// Shared-channel receivers (n % 8 in 2, 3).
    pub shared_expected: u64,
    /// Messages received on the shared channel.
    pub shared_received: u64,
    /// Shared-channel messages sent by coroutines (n % 8 == 4).
    pub shared_from_coroutines: u64,
    /// Mutex parkers (n % 8 in 5, 6).
    pub mutex_expected: u64,
    /// The mutex-protected counter at the end.
    pub mutex_count: u64,
    /// Timed-out receivers (n % 8 == 7).
    pub timeout_expected: u64,
    /// Receivers that saw `Timeout`.
    pub timeouts: u64,
    /// Ids seen twice (must be 0).
    pub duplicates: u64,
    /// Ids sent and never seen (must be 0).
    pub lost: u64,
    /// Wall time of the round.
    pub elapsed: Duration,
}

impl RoundReport {
    /// `Ok` when every count is what the round's shape demands.
    pub fn check(&self) -> Result<(), String> {
        let pairs = [
            ("rendezvous receives", self.own_received, self.own_expected),
            (
                "shared-channel receives",
                self.shared_received,
                self.shared_expected,
            ),
            ("mutex entries", self.mutex_count, self.mutex_expected),
            ("timeouts", self.timeouts, self.timeout_expected),
            ("duplicated ids", self.duplicates, 0),
            ("lost ids", self.lost, 0),
        ];
        for (what, got, want) in pairs {
            if got != want {
                return Err(format!("{what}: got {got}, expected {want}"));
            }
        }
        Ok(())
    }
}

struct Shared {
    /// `seen[id]` counts deliveries of message `id` (ids `0..2n`).
    seen: Vec<AtomicU8>,
    /// Coroutines that have started running.
    started: AtomicU64,
    own_received: AtomicU64,
    shared_received: AtomicU64,
    shared_from_coroutines: AtomicU64,
    timeouts: AtomicU64,
    mutex: Mutex<u64>,
    gate: WaitGroup,
    done: WaitGroup,
}

impl Shared {
    fn deliver(&self, id: u64) {
        self.seen[id as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// What a coroutine is given to do.
enum Role {
    Own(Receiver<u64>),
    SharedRecv(Receiver<u64>),
    GateThenSend(Sender<u64>, u64),
    Mutex,
    Timeout(Receiver<u64>),
}

fn body(s: &Shared, role: Role) {
    s.started.fetch_add(1, Ordering::Relaxed);
    match role {
        Role::Own(rx) => {
            let id = rx.recv().expect("rendezvous sender vanished");
            s.deliver(id);
            s.own_received.fetch_add(1, Ordering::Relaxed);
        }
        Role::SharedRecv(rx) => {
            let id = rx.recv().expect("shared channel closed early");
            s.deliver(id);
            s.shared_received.fetch_add(1, Ordering::Relaxed);
        }
        Role::GateThenSend(tx, id) => {
            s.gate.wait();
            tx.send(id).expect("shared channel closed early");
            s.shared_from_coroutines.fetch_add(1, Ordering::Relaxed);
        }
        Role::Mutex => {
            *s.mutex.lock() += 1;
        }
        Role::Timeout(rx) => {
            s.gate.wait();
            match rx.recv_timeout(Duration::from_millis(1)) {
                Err(RecvTimeoutError::Timeout) => {
                    s.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("silent channel gave {other:?}"),
            }
        }
    }
    s.done.done();
}

fn spawn_all(s: &Arc<Shared>, roles: Vec<Role>) {
    for role in roles {
        let s = s.clone();
        drop(goro::go!(move || body(&s, role)));
    }
}

/// Runs one round and returns what it counted. Returns once every
/// coroutine of the round has finished and the runtime counts none live.
pub fn round(cfg: RoundConfig) -> RoundReport {
    let start = Instant::now();
    let n = cfg.coroutines;
    let feeders = cfg.threads.max(1);
    let s = Arc::new(Shared {
        seen: (0..2 * n).map(|_| AtomicU8::new(0)).collect(),
        started: AtomicU64::new(0),
        own_received: AtomicU64::new(0),
        shared_received: AtomicU64::new(0),
        shared_from_coroutines: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        mutex: Mutex::new(0),
        gate: WaitGroup::new(),
        done: WaitGroup::new(),
    });
    let mut rep = RoundReport::default();
    let (shared_tx, shared_rx) = chan::bounded::<u64>(128);
    let (silent_tx, silent_rx) = chan::bounded::<u64>(1);

    // Build every coroutine's role, and what each feeder thread sends.
    let mut roles = Vec::with_capacity(n);
    let mut feeds: Vec<Vec<(Sender<u64>, u64)>> = (0..feeders).map(|_| Vec::new()).collect();
    let mut sent_ids = Vec::new();
    for i in 0..n {
        let id = i as u64;
        let role = match i % 8 {
            0 | 1 => {
                let (tx, rx) = chan::bounded(0);
                feeds[rep.own_expected as usize % feeders].push((tx, id));
                sent_ids.push(id);
                rep.own_expected += 1;
                Role::Own(rx)
            }
            2 | 3 => {
                rep.shared_expected += 1;
                Role::SharedRecv(shared_rx.clone())
            }
            4 => {
                sent_ids.push(id);
                Role::GateThenSend(shared_tx.clone(), id)
            }
            5 | 6 => {
                rep.mutex_expected += 1;
                Role::Mutex
            }
            _ => {
                rep.timeout_expected += 1;
                Role::Timeout(silent_rx.clone())
            }
        };
        roles.push(role);
    }
    // Threads send the shared messages the gated coroutines do not, with
    // ids above every coroutine's.
    let from_coroutines = sent_ids.len() as u64 - rep.own_expected;
    for k in 0..rep.shared_expected - from_coroutines {
        let id = n as u64 + k;
        feeds[k as usize % feeders].push((shared_tx.clone(), id));
        sent_ids.push(id);
    }
    drop((shared_tx, shared_rx, silent_rx));
    rep.spawned = n as u64;

    s.done.add(n);
    s.gate.add(1);
    let held = s.mutex.lock();

    // Feeders wait for the gate like the coroutines do.
    let threads: Vec<_> = feeds
        .into_iter()
        .map(|feed| {
            let gate = s.gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                for (tx, id) in feed {
                    tx.send(id).expect("receiver vanished");
                }
            })
        })
        .collect();

    // Half the coroutines come from a coroutine, half from this thread.
    let theirs = roles.split_off(n / 2);
    let spawner = {
        let s = s.clone();
        goro::go!(move || spawn_all(&s, theirs))
    };
    spawn_all(&s, roles);
    spawner.join().expect("spawner panicked");

    // Once every coroutine has started, all of them are parked (on the
    // gate, the mutex, or a receive whose sender waits for the gate), so
    // every round holds all its coroutines live at once: the stack pool's
    // high-water mark is the same each round and RSS can be compared.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.started.load(Ordering::Relaxed) != n as u64 {
        assert!(
            Instant::now() < deadline,
            "coroutines not started a minute after spawning: {:?}",
            goro::stats()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    drop(held);
    s.gate.done();
    s.done.wait();
    for t in threads {
        t.join().expect("feeder panicked");
    }
    drop(silent_tx);
    // `done()` is each coroutine's last act, but it still has to return and
    // be reaped; wait for the runtime to agree that nothing is live, by its
    // counters and in its registry (what `goro::coroutines()` lists).
    let deadline = Instant::now() + Duration::from_secs(60);
    while goro::stats().coroutines != 0 || !goro::coroutines().is_empty() {
        assert!(
            Instant::now() < deadline,
            "coroutines still live a minute after the round: {:?}",
            goro::stats()
        );
        std::thread::sleep(Duration::from_micros(200));
    }

    rep.own_received = s.own_received.load(Ordering::Relaxed);
    rep.shared_received = s.shared_received.load(Ordering::Relaxed);
    rep.shared_from_coroutines = s.shared_from_coroutines.load(Ordering::Relaxed);
    rep.timeouts = s.timeouts.load(Ordering::Relaxed);
    rep.mutex_count = *s.mutex.lock();
    let mut expected = vec![false; 2 * n];
    for id in sent_ids {
        expected[id as usize] = true;
    }
    for (seen, want) in s.seen.iter().zip(expected) {
        match (seen.load(Ordering::Relaxed), want) {
            (0, true) => rep.lost += 1,
            (0, false) | (1, true) => {}
            (k, _) => rep.duplicates += u64::from(k) - u64::from(want),
        }
    }
    rep.elapsed = start.elapsed();
    rep
}

/// Resident set size in KiB, from `/proc/self/status` (0 if unreadable).
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The C heap's bytes in use and bytes free but kept by the allocator, in
/// KiB (glibc only).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_kib() -> Option<(u64, u64)> {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let mi = unsafe { libc::mallinfo2() };
    Some((mi.uordblks as u64 / 1024, mi.fordblks as u64 / 1024))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_kib() -> Option<(u64, u64)> {
    None
}

/// Gives the C heap's free memory back to the kernel (glibc only), so that
/// RSS shows what is in use rather than what the allocator keeps.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim may be called at any time; it only releases free
    // memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: soak [--rounds R] [--coroutines N] [--threads T] [--trim]\n\
         defaults: 10 rounds of 100000 coroutines, 4 feeder threads\n\
         --trim: malloc_trim(0) before reading RSS (glibc), so RSS leaves out\n\
         \x20       the free memory the allocator keeps"
    );
    std::process::exit(2)
}

fn main() {
    let mut rounds = 10usize;
    let mut trim = false;
    let mut cfg = RoundConfig {
        coroutines: 100_000,
        threads: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--rounds" => &mut rounds,
            "--coroutines" => &mut cfg.coroutines,
            "--threads" => &mut cfg.threads,
            "--trim" => {
                trim = true;
                continue;
            }
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("soak: unknown argument {a:?}");
                usage()
            }
        };
        match args.next().and_then(|v| v.parse().ok()) {
            Some(v) if v > 0 => *slot = v,
            _ => {
                eprintln!("soak: {a} needs a positive number");
                usage()
            }
        }
    }

    println!(
        "soak: {rounds} rounds of {} coroutines, {} feeder threads, {} workers",
        cfg.coroutines,
        cfg.threads,
        goro::stats().workers
    );
    println!("start: RSS {:>8} KiB", rss_kib());
    println!(
        "{:>5} {:>8} {:>10} {:>11} {:>12} {:>13} {:>7} {:>8} {:>6}",
        "round",
        "time ms",
        "RSS KiB",
        "vs round 1",
        "heap in use",
        "heap kept free",
        "stacks",
        "blocking",
        "timers"
    );
    let mut first = 0u64;
    let mut later_max = 0u64;
    let mut failed = false;
    for r in 1..=rounds {
        let rep = round(cfg);
        if trim {
            trim_heap();
        }
        let rss = rss_kib();
        let (heap_used, heap_free) = match heap_kib() {
            Some((u, f)) => (u.to_string(), f.to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let st = goro::stats();
        if r == 1 {
            first = rss;
        } else {
            later_max = later_max.max(rss);
        }
        println!(
            "{r:>5} {:>8} {rss:>10} {:>+11} {heap_used:>12} {heap_free:>13} {:>7} {:>8} {:>6}",
            rep.elapsed.as_millis(),
            rss as i64 - first as i64,
            st.stacks,
            st.blocking_threads,
            st.timers
        );
        if let Err(e) = rep.check() {
            println!("round {r} FAILED: {e}");
            failed = true;
        }
    }
    println!("peak RSS (VmHWM): {} KiB", status_kib("VmHWM:"));
    if rounds > 1 {
        println!(
            "after round 1: {first} KiB; highest later: {later_max} KiB ({:+} KiB)",
            later_max as i64 - first as i64
        );
    }
    if failed {
        std::process::exit(1);
    }
}
