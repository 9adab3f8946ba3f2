//! The OS-threads peer: every task is a `std::thread`, channels are
//! crossbeam-channel (`bounded(0)` is a true rendezvous), the lock is
//! `std::sync::Mutex`, sockets are `std::net` in blocking mode.
//!
//! A thread costs two memory mappings (stack and guard page), so with
//! `vm.max_map_count` = 65530 a process holds at most ~32k threads: `spawn`,
//! `idle` and `timers` default to 10k threads here, and a rendezvous hand-off
//! between threads costs a futex wake (tens of µs in this VM), so `pingpong`,
//! `select` and `chain` run fewer operations to stay within ~5 s; each such
//! result carries a `note=`.
//!
//! Usage: `cmp-threads <workload> [--quick] [--n N] [--values V] [--secs S]`.

#[path = "../../common/common.rs"]
mod common;

use common::{Args, Report};
use crossbeam_channel::{bounded, never, select, Receiver, Sender};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Thread-count cap used where 100k threads cannot run: (normal, quick).
const SMALL: Option<(usize, usize)> = Some((10_000, 100));
/// Stack of the many-thread workloads: enough for these bodies, and small
/// enough that 10k of them reserve little address space.
const SMALL_STACK: usize = 64 << 10;

fn main() {
    let args = Args::parse();
    match args.workload.as_str() {
        "spawn" => spawn(&args),
        "pingpong" => pingpong(&args),
        "chan_mpmc" => chan_mpmc(&args),
        "select" => select_wl(&args),
        "mutex" => mutex(&args),
        "idle" => idle(&args),
        "echo" => echo(&args),
        "timers" => timers(&args),
        "chain" => chain(&args),
        other => unreachable!("workload {other} passed parsing"),
    }
}

fn small_thread<F: FnOnce() + Send + 'static>(f: F) -> thread::JoinHandle<()> {
    thread::Builder::new().stack_size(SMALL_STACK).spawn(f).expect("spawn thread")
}

/// Spawn n threads that do nothing, then join all.
fn spawn(args: &Args) {
    let n = args.n(SMALL);
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| small_thread(|| {})).collect();
    for h in handles {
        h.join().expect("thread panicked");
    }
    let el = start.elapsed();
    Report::new("spawn", "ns_per_op", common::ns_per(el, n))
        .kv("n", n)
        .kv("note", "smaller_n")
        .print();
}

/// Two threads bounce a counter over two rendezvous channels.
fn pingpong(args: &Args) {
    let n = args.n(Some((50_000, 1_000)));
    let (to_echo, echo_rx) = bounded::<u64>(0);
    let (to_main, main_rx) = bounded::<u64>(0);
    let echo = thread::spawn(move || {
        for v in echo_rx {
            if to_main.send(v + 1).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut v = 0u64;
    for _ in 0..n {
        to_echo.send(v).expect("echo thread gone");
        v = main_rx.recv().expect("echo thread gone");
    }
    let el = start.elapsed();
    drop(to_echo);
    echo.join().expect("echo panicked");
    Report::new("pingpong", "ns_per_roundtrip", common::ns_per(el, n))
        .kv("n", n)
        .kv("lost", n as u64 - v)
        .kv("note", "smaller_n")
        .print();
}

/// 4 producers, 4 consumers, one channel of capacity 128.
fn chan_mpmc(args: &Args) {
    let n = args.n(None);
    let per = n / common::MPMC_PRODUCERS;
    let total = per * common::MPMC_PRODUCERS;
    let (tx, rx) = bounded::<u64>(common::MPMC_CAP);
    let start = Instant::now();
    let producers: Vec<_> = (0..common::MPMC_PRODUCERS)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
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
            thread::spawn(move || {
                let (mut count, mut sum) = (0usize, 0u64);
                for v in rx {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            })
        })
        .collect();
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
        .print();
}

/// One receiver selects over 4 rendezvous channels, one producer each.
fn select_wl(args: &Args) {
    let n = args.n(Some((200_000, 10_000)));
    let per = n / common::SELECT_CHANNELS;
    let total = per * common::SELECT_CHANNELS;
    let mut rxs: Vec<Receiver<u64>> = Vec::new();
    let mut producers = Vec::new();
    let start = Instant::now();
    for _ in 0..common::SELECT_CHANNELS {
        let (tx, rx) = bounded::<u64>(0);
        rxs.push(rx);
        producers.push(thread::spawn(move || {
            for i in 0..per as u64 {
                if tx.send(i).is_err() {
                    break;
                }
            }
        }));
    }
    let (count, sum, timed_out) = select_loop(&rxs, Duration::from_secs(60));
    let el = start.elapsed();
    drop(rxs);
    for p in producers {
        p.join().expect("producer panicked");
    }
    let want = common::sum_below(per) * common::SELECT_CHANNELS as u64;
    let mut r = Report::new("select", "ns_per_msg", common::ns_per(el, count))
        .kv("n", total)
        .kv("received", count)
        .kv("lost", total - count)
        .kv("sum_ok", u8::from(sum == want || count != total));
    r = r.kv("note", if timed_out { "timed_out" } else { "smaller_n" });
    r.print();
}

/// Receives until all four channels are closed (a closed channel's arm is
/// replaced by `never()`, Go's nil channel) or `limit` passes (a fifth arm
/// on one `after` timer channel, as Go's timer arm).
fn select_loop(rxs: &[Receiver<u64>], limit: Duration) -> (usize, u64, bool) {
    let nev = never::<u64>();
    let mut open = [true; 4];
    let (mut count, mut sum) = (0usize, 0u64);
    let limit = crossbeam_channel::after(limit);
    let mut timed_out = false;
    let mut on = |i: usize, res: Result<u64, crossbeam_channel::RecvError>, open: &mut [bool; 4]| {
        match res {
            Ok(v) => {
                count += 1;
                sum += v;
            }
            Err(_) => open[i] = false,
        }
    };
    while open.iter().any(|o| *o) && !timed_out {
        select! {
            recv(if open[0] { &rxs[0] } else { &nev }) -> res => on(0, res, &mut open),
            recv(if open[1] { &rxs[1] } else { &nev }) -> res => on(1, res, &mut open),
            recv(if open[2] { &rxs[2] } else { &nev }) -> res => on(2, res, &mut open),
            recv(if open[3] { &rxs[3] } else { &nev }) -> res => on(3, res, &mut open),
            recv(limit) -> _ => timed_out = true,
        }
    }
    (count, sum, timed_out)
}

/// 8 threads increment one counter under std::sync::Mutex.
fn mutex(args: &Args) {
    let n = args.n(None);
    let per = n / common::MUTEX_TASKS;
    let total = per * common::MUTEX_TASKS;
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let handles: Vec<_> = (0..common::MUTEX_TASKS)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
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

/// n threads each blocked on its own channel; RSS growth per thread.
fn idle(args: &Args) {
    let n = args.n(SMALL);
    let before = common::rss_bytes();
    let (ready_tx, ready_rx) = bounded::<()>(n);
    let woke = Arc::new(AtomicU64::new(0));
    let mut senders: Vec<Sender<u64>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = bounded::<u64>(0);
        senders.push(tx);
        let ready = ready_tx.clone();
        let woke = Arc::clone(&woke);
        handles.push(small_thread(move || {
            let _ = ready.send(());
            if rx.recv().is_ok() {
                woke.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..n {
        ready_rx.recv().expect("idle thread died");
    }
    // Every thread has announced itself; give the last ones time to block.
    thread::sleep(Duration::from_millis(if args.quick { 10 } else { 200 }));
    let after = common::rss_bytes();
    for tx in &senders {
        tx.send(1).expect("idle thread gone");
    }
    for h in handles {
        h.join().expect("idle thread panicked");
    }
    let per = after.saturating_sub(before) as f64 / n as f64;
    Report::new("idle", "bytes_per_task", per)
        .kv("n", n)
        .kv("rss_before_kb", before / 1024)
        .kv("rss_after_kb", after / 1024)
        .kv("lost", n as u64 - woke.load(Ordering::Relaxed))
        .kv("note", "smaller_n")
        .print();
}

/// TCP echo over 127.0.0.1: a thread per connection on each side.
fn echo(args: &Args) {
    let conns = args.n(None);
    let secs = args.secs();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    // The accept thread is left blocked in accept(); the process exits under it.
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(s) = stream else { break };
            let _ = s.set_nodelay(true);
            thread::spawn(move || common::echo_serve(s));
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
        .map(|(id, s)| thread::spawn(move || common::echo_client(s, id, deadline)))
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

/// n threads each sleep a seeded random 0-50 ms; lateness from spawn + sleep.
fn timers(args: &Args) {
    let n = args.n(SMALL);
    let durs = common::timer_durations(n);
    let ideal = durs.iter().copied().max().unwrap_or_default();
    let start = Instant::now();
    let handles: Vec<_> = durs
        .iter()
        .map(|&d| {
            let t0 = Instant::now();
            thread::Builder::new()
                .stack_size(SMALL_STACK)
                .spawn(move || {
                    thread::sleep(d);
                    (t0.elapsed().saturating_sub(d)).as_secs_f64() * 1e3
                })
                .expect("spawn thread")
        })
        .collect();
    let late: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    common::report_timers(late, n, start.elapsed(), ideal);
}

/// A chain of n threads, each receiving from its left and sending +1 to its right.
fn chain(args: &Args) {
    let tasks = args.n(None);
    let values = args.values(Some((20, 10)));
    let (first_tx, mut left) = bounded::<u64>(0);
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (tx, rx) = bounded::<u64>(0);
        let l = std::mem::replace(&mut left, rx);
        handles.push(small_thread(move || {
            for v in l {
                if tx.send(v + 1).is_err() {
                    break;
                }
            }
        }));
    }
    let last = left;
    let start = Instant::now();
    let feeder = thread::spawn(move || {
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
        h.join().expect("chain thread panicked");
    }
    let hops = values * (tasks + 1);
    Report::new("chain", "ns_per_hop", common::ns_per(el, hops))
        .kv("n", tasks)
        .kv("values", values)
        .kv("lost", values - good)
        .kv("note", "fewer_values")
        .print();
}
