//! The may peer: stackful coroutines from the `may` crate (0.3), two workers
//! (`may::config().set_workers(2)`), `may::sync::mpsc` / `mpmc` channels,
//! `may::select!`, `may::sync::Mutex`, `may::net` sockets.
//!
//! may has no bounded or rendezvous channel: every channel here is unbounded
//! (`note=unbounded`). In `pingpong` and `chain` the hand-off is strictly
//! alternating, so the queue never holds more than one value anyway; in
//! `chan_mpmc` and `select` producers never block, which a capacity-128 or
//! unbuffered channel would make them do.
//!
//! `may::select!` runs every arm in its own coroutine and cancels the losers;
//! a loser that has already taken a value from its channel loses it. The
//! `select` workload counts what arrived and reports the rest as `lost`, and a
//! watchdog thread prints a partial result rather than hang.
//!
//! Each coroutine's stack is its own mapping plus a guard page, so with
//! `vm.max_map_count` = 65530 may cannot hold much more than ~32k live
//! coroutines: `idle` and `timers` at 100k are expected to fail here (the
//! suite runs each workload in its own process and reports the failure).
//!
//! Usage: `cmp-may <workload> [--quick] [--n N] [--values V] [--secs S]`.

#[path = "../../common/common.rs"]
mod common;

use common::{Args, Report};
use may::coroutine::JoinHandle;
use may::net::{TcpListener, TcpStream};
use may::sync::{mpmc, mpsc, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stack of the driver coroutine, in words (may counts stack in `usize`s): 1 MiB.
const DRIVER_STACK_WORDS: usize = 1 << 17;

/// Spawns a coroutine with may's default stack.
fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    may::go!(f)
}

fn main() {
    let args = Args::parse();
    exit_on_panic();
    may::config().set_workers(2);
    // The workload runs inside a coroutine, as Go's main runs in a goroutine,
    // so every blocking call below parks a coroutine rather than the thread.
    let builder = may::coroutine::Builder::new().name("driver".into()).stack_size(DRIVER_STACK_WORDS);
    let driver = may::go!(builder, move || run(&args)).expect("spawn driver coroutine");
    driver.join().expect("driver panicked");
}

/// Makes an ordinary panic anywhere end the process with status 101.
///
/// When may cannot map a coroutine stack (about 32k live coroutines on this
/// kernel) the spawning coroutine panics and the rest of the program can wait
/// forever on coroutines that will never run; exiting turns that hang into a
/// prompt, reported failure. may cancels coroutines (select! losers) by
/// unwinding with a non-string payload, which is left alone.
fn exit_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let is_message = payload.is::<&str>() || payload.is::<String>();
        default_hook(info);
        if is_message {
            std::process::exit(101);
        }
    }));
}

fn run(args: &Args) {
    match args.workload.as_str() {
        "spawn" => spawn(args),
        "pingpong" => pingpong(args),
        "chan_mpmc" => chan_mpmc(args),
        "select" => select_wl(args),
        "mutex" => mutex(args),
        "idle" => idle(args),
        "echo" => echo(args),
        "timers" => timers(args),
        "chain" => chain(args),
        other => unreachable!("workload {other} passed parsing"),
    }
}

/// Spawn n coroutines that do nothing, then join all.
fn spawn(args: &Args) {
    let n = args.n(None);
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| go(|| {})).collect();
    for h in handles {
        h.join().expect("coroutine panicked");
    }
    let el = start.elapsed();
    Report::new("spawn", "ns_per_op", common::ns_per(el, n)).kv("n", n).print();
}

/// Two coroutines bounce a counter over two (unbounded) channels.
fn pingpong(args: &Args) {
    let n = args.n(None);
    let (to_echo, echo_rx) = mpsc::channel::<u64>();
    let (to_main, main_rx) = mpsc::channel::<u64>();
    let echo = go(move || {
        for v in echo_rx {
            if to_main.send(v + 1).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut v = 0u64;
    for _ in 0..n {
        to_echo.send(v).expect("echo coroutine gone");
        v = main_rx.recv().expect("echo coroutine gone");
    }
    let el = start.elapsed();
    drop(to_echo);
    echo.join().expect("echo panicked");
    Report::new("pingpong", "ns_per_roundtrip", common::ns_per(el, n))
        .kv("n", n)
        .kv("lost", n as u64 - v)
        .kv("note", "unbounded")
        .print();
}

/// 4 producers, 4 consumers, one mpmc channel (unbounded: may has no bounded one).
fn chan_mpmc(args: &Args) {
    let n = args.n(None);
    let per = n / common::MPMC_PRODUCERS;
    let total = per * common::MPMC_PRODUCERS;
    let (tx, rx) = mpmc::channel::<u64>();
    let start = Instant::now();
    let producers: Vec<_> = (0..common::MPMC_PRODUCERS)
        .map(|_| {
            let tx = tx.clone();
            go(move || {
                for i in 0..per as u64 {
                    tx.send(i).expect("consumers gone");
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..common::MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            go(move || {
                let (mut count, mut sum) = (0usize, 0u64);
                for v in rx.iter() {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().expect("producer panicked");
    }
    let (mut count, mut sum) = (0, 0);
    for c in consumers {
        let (k, s) = c.join().expect("consumer panicked");
        count += k;
        sum += s;
    }
    let el = start.elapsed();
    let want = common::sum_below(per) * common::MPMC_PRODUCERS as u64;
    Report::new("chan_mpmc", "ns_per_msg", common::ns_per(el, total))
        .kv("n", total)
        .kv("lost", total - count)
        .kv("sum_ok", u8::from(sum == want))
        .kv("note", "unbounded")
        .print();
}

/// What the select arms record; shared by reference with the arm coroutines.
struct SelectState {
    count: AtomicU64,
    sum: AtomicU64,
    closed: [AtomicBool; 4],
    done: AtomicBool,
}

impl SelectState {
    fn on(&self, i: usize, res: Result<u64, std::sync::mpsc::RecvError>) {
        match res {
            Ok(v) => {
                self.count.fetch_add(1, Ordering::Relaxed);
                self.sum.fetch_add(v, Ordering::Relaxed);
            }
            Err(_) => self.closed[i].store(true, Ordering::Relaxed),
        }
    }

    fn all_closed(&self) -> bool {
        self.closed.iter().all(|c| c.load(Ordering::Relaxed))
    }
}

/// A select arm: the channel's `recv`, or, once the channel is closed, a
/// cancellable park that stands in for Go's nil channel (bounded by `until`).
fn arm_recv(
    rx: &mpsc::Receiver<u64>,
    closed: &AtomicBool,
    until: Instant,
) -> Result<u64, std::sync::mpsc::RecvError> {
    if closed.load(Ordering::Relaxed) {
        may::coroutine::park_timeout(until.saturating_duration_since(Instant::now()));
        return Err(std::sync::mpsc::RecvError);
    }
    rx.recv()
}

/// One receiver runs `may::select!` over 4 channels, one producer each.
fn select_wl(args: &Args) {
    let n = args.n(None);
    let per = n / common::SELECT_CHANNELS;
    let total = per * common::SELECT_CHANNELS;
    let limit = Duration::from_secs(if args.quick { 10 } else { 20 });
    let state = Arc::new(SelectState {
        count: AtomicU64::new(0),
        sum: AtomicU64::new(0),
        closed: Default::default(),
        done: AtomicBool::new(false),
    });
    let start = Instant::now();
    let deadline = start + limit;

    // Watchdog: if select! itself never returns, report what arrived and exit.
    let watch = Arc::clone(&state);
    std::thread::spawn(move || {
        let grace = deadline + Duration::from_secs(2);
        while Instant::now() < grace {
            if watch.done.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !watch.done.load(Ordering::Acquire) {
            let count = watch.count.load(Ordering::Relaxed) as usize;
            Report::new("select", "ns_per_msg", common::ns_per(start.elapsed(), count))
                .kv("n", total)
                .kv("received", count)
                .kv("lost", total - count.min(total))
                .kv("note", "unbounded,timed_out_in_select")
                .print();
            std::process::exit(0);
        }
    });

    let mut rxs = Vec::new();
    let mut producers = Vec::new();
    for _ in 0..common::SELECT_CHANNELS {
        let (tx, rx) = mpsc::channel::<u64>();
        rxs.push(rx);
        producers.push(go(move || {
            for i in 0..per as u64 {
                if tx.send(i).is_err() {
                    break;
                }
            }
        }));
    }
    let st = &*state;
    let mut timed_out = false;
    while !st.all_closed() {
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        may::select!(
            r = arm_recv(&rxs[0], &st.closed[0], deadline) => st.on(0, r),
            r = arm_recv(&rxs[1], &st.closed[1], deadline) => st.on(1, r),
            r = arm_recv(&rxs[2], &st.closed[2], deadline) => st.on(2, r),
            r = arm_recv(&rxs[3], &st.closed[3], deadline) => st.on(3, r)
        );
    }
    let el = start.elapsed();
    state.done.store(true, Ordering::Release);
    for p in producers {
        p.join().expect("producer panicked");
    }
    let count = st.count.load(Ordering::Relaxed) as usize;
    let sum = st.sum.load(Ordering::Relaxed);
    let want = common::sum_below(per) * common::SELECT_CHANNELS as u64;
    Report::new("select", "ns_per_msg", common::ns_per(el, count))
        .kv("n", total)
        .kv("received", count)
        .kv("lost", total - count.min(total))
        .kv("sum_ok", u8::from(sum == want || count != total))
        .kv("note", if timed_out { "unbounded,timed_out" } else { "unbounded" })
        .print();
}

/// 8 coroutines increment one counter under may::sync::Mutex.
fn mutex(args: &Args) {
    let n = args.n(None);
    let per = n / common::MUTEX_TASKS;
    let total = per * common::MUTEX_TASKS;
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let handles: Vec<_> = (0..common::MUTEX_TASKS)
        .map(|_| {
            let counter = Arc::clone(&counter);
            go(move || {
                for _ in 0..per {
                    *counter.lock().expect("poisoned") += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("incrementer panicked");
    }
    let el = start.elapsed();
    let got = *counter.lock().expect("poisoned");
    Report::new("mutex", "ns_per_lock", common::ns_per(el, total))
        .kv("n", total)
        .kv("lost", total as u64 - got)
        .print();
}

/// n coroutines each blocked on its own channel; RSS growth per coroutine.
fn idle(args: &Args) {
    let n = args.n(None);
    let before = common::rss_bytes();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let woke = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<u64>();
        senders.push(tx);
        let ready = ready_tx.clone();
        let woke = Arc::clone(&woke);
        handles.push(go(move || {
            let _ = ready.send(());
            if rx.recv().is_ok() {
                woke.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..n {
        ready_rx.recv().expect("idle coroutine died");
    }
    // Every coroutine has announced itself; give the last ones time to park.
    may::coroutine::sleep(Duration::from_millis(if args.quick { 10 } else { 200 }));
    let after = common::rss_bytes();
    for tx in &senders {
        tx.send(1).expect("idle coroutine gone");
    }
    for h in handles {
        h.join().expect("idle coroutine panicked");
    }
    let per = after.saturating_sub(before) as f64 / n as f64;
    Report::new("idle", "bytes_per_task", per)
        .kv("n", n)
        .kv("rss_before_kb", before / 1024)
        .kv("rss_after_kb", after / 1024)
        .kv("lost", n as u64 - woke.load(Ordering::Relaxed))
        .print();
}

/// TCP echo over 127.0.0.1 with may::net, a coroutine per connection on each side.
fn echo(args: &Args) {
    let conns = args.n(None);
    let secs = args.secs();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    // The accept coroutine stays parked in accept(); the process exits under it.
    go(move || {
        for stream in listener.incoming() {
            let Ok(s) = stream else { break };
            let _ = s.set_nodelay(true);
            go(move || common::echo_serve(s));
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
        .map(|(id, s)| go(move || common::echo_client(s, id, deadline)))
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

/// n coroutines each sleep a seeded random 0-50 ms; lateness from spawn + sleep.
fn timers(args: &Args) {
    let n = args.n(None);
    let durs = common::timer_durations(n);
    let ideal = durs.iter().copied().max().unwrap_or_default();
    let start = Instant::now();
    let handles: Vec<_> = durs
        .iter()
        .map(|&d| {
            let t0 = Instant::now();
            go(move || {
                may::coroutine::sleep(d);
                (t0.elapsed().saturating_sub(d)).as_secs_f64() * 1e3
            })
        })
        .collect();
    let late: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    common::report_timers(late, n, start.elapsed(), ideal);
}

/// A chain of n coroutines, each receiving from its left and sending +1 to its right.
fn chain(args: &Args) {
    let tasks = args.n(None);
    let values = args.values(None);
    let (first_tx, mut left) = mpsc::channel::<u64>();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (tx, rx) = mpsc::channel::<u64>();
        let l = std::mem::replace(&mut left, rx);
        handles.push(go(move || {
            for v in l {
                if tx.send(v + 1).is_err() {
                    break;
                }
            }
        }));
    }
    let last = left;
    let start = Instant::now();
    let feeder = go(move || {
        for i in 0..values as u64 {
            first_tx.send(i).expect("chain broken");
        }
    });
    let mut good = 0usize;
    for i in 0..values as u64 {
        match last.recv() {
            Ok(v) if v == i + tasks as u64 => good += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let el = start.elapsed();
    feeder.join().expect("feeder panicked");
    for h in handles {
        h.join().expect("chain coroutine panicked");
    }
    let hops = values * (tasks + 1);
    Report::new("chain", "ns_per_hop", common::ns_per(el, hops))
        .kv("n", tasks)
        .kv("values", values)
        .kv("lost", values - good)
        .kv("note", "unbounded")
        .print();
}
