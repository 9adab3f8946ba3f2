//! The tokio peer: async tasks on tokio's multi-thread runtime with its
//! default worker count (one per core), `tokio::sync::mpsc` channels,
//! `tokio::select!`, `tokio::sync::Mutex`, `tokio::net` sockets.
//!
//! tokio has no rendezvous channel and its `mpsc` needs capacity >= 1, so the
//! unbuffered channels of `pingpong`, `select`, `idle` and `chain` are
//! `mpsc::channel(1)` here (`note=cap1`). tokio has no multi-consumer channel,
//! so `chan_mpmc` uses `async-channel` (smol's bounded MPMC channel, runtime
//! agnostic) with capacity 128 (`note=async-channel`).
//!
//! The workload body runs in a spawned task, not in `block_on`, so that all
//! of it runs on the two worker threads, as Go's main runs in a goroutine.
//!
//! Usage: `cmp-tokio <workload> [--quick] [--n N] [--values V] [--secs S]`.

#[path = "../../common/common.rs"]
mod common;

use common::{Args, Report};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime");
    let body = rt.spawn(run(args));
    rt.block_on(body).expect("workload task panicked");
    // Leftover tasks (the echo accept loop) are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_millis(100));
}

async fn run(args: Args) {
    match args.workload.as_str() {
        "spawn" => spawn(&args).await,
        "pingpong" => pingpong(&args).await,
        "chan_mpmc" => chan_mpmc(&args).await,
        "select" => select_wl(&args).await,
        "mutex" => mutex(&args).await,
        "idle" => idle(&args).await,
        "echo" => echo(&args).await,
        "timers" => timers(&args).await,
        "chain" => chain(&args).await,
        other => unreachable!("workload {other} passed parsing"),
    }
}

/// Spawn n tasks that do nothing, then join all.
async fn spawn(args: &Args) {
    let n = args.n(None);
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
    for h in handles {
        h.await.expect("task panicked");
    }
    let el = start.elapsed();
    Report::new("spawn", "ns_per_op", common::ns_per(el, n)).kv("n", n).print();
}

/// Two tasks bounce a counter over two capacity-1 channels.
async fn pingpong(args: &Args) {
    let n = args.n(None);
    let (to_echo, mut echo_rx) = mpsc::channel::<u64>(1);
    let (to_main, mut main_rx) = mpsc::channel::<u64>(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = echo_rx.recv().await {
            if to_main.send(v + 1).await.is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut v = 0u64;
    for _ in 0..n {
        to_echo.send(v).await.expect("echo task gone");
        v = main_rx.recv().await.expect("echo task gone");
    }
    let el = start.elapsed();
    drop(to_echo);
    echo.await.expect("echo panicked");
    Report::new("pingpong", "ns_per_roundtrip", common::ns_per(el, n))
        .kv("n", n)
        .kv("lost", n as u64 - v)
        .kv("note", "cap1")
        .print();
}

/// 4 producers, 4 consumers, one async-channel of capacity 128.
async fn chan_mpmc(args: &Args) {
    let n = args.n(None);
    let per = n / common::MPMC_PRODUCERS;
    let total = per * common::MPMC_PRODUCERS;
    let (tx, rx) = async_channel::bounded::<u64>(common::MPMC_CAP);
    let start = Instant::now();
    let producers: Vec<_> = (0..common::MPMC_PRODUCERS)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..per as u64 {
                    tx.send(i).await.expect("consumers gone");
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..common::MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let (mut count, mut sum) = (0usize, 0u64);
                while let Ok(v) = rx.recv().await {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.await.expect("producer panicked");
    }
    let (mut count, mut sum) = (0, 0);
    for c in consumers {
        let (k, s) = c.await.expect("consumer panicked");
        count += k;
        sum += s;
    }
    let el = start.elapsed();
    let want = common::sum_below(per) * common::MPMC_PRODUCERS as u64;
    Report::new("chan_mpmc", "ns_per_msg", common::ns_per(el, total))
        .kv("n", total)
        .kv("lost", total - count)
        .kv("sum_ok", u8::from(sum == want))
        .kv("note", "async-channel")
        .print();
}

/// One receiver runs `tokio::select!` over 4 capacity-1 channels, one
/// producer each; a closed channel's branch is disabled by its precondition.
async fn select_wl(args: &Args) {
    let n = args.n(None);
    let per = n / common::SELECT_CHANNELS;
    let total = per * common::SELECT_CHANNELS;
    let start = Instant::now();
    let mut rxs = Vec::new();
    let mut producers = Vec::new();
    for _ in 0..common::SELECT_CHANNELS {
        let (tx, rx) = mpsc::channel::<u64>(1);
        rxs.push(rx);
        producers.push(tokio::spawn(async move {
            for i in 0..per as u64 {
                if tx.send(i).await.is_err() {
                    break;
                }
            }
        }));
    }
    let [mut r0, mut r1, mut r2, mut r3]: [mpsc::Receiver<u64>; 4] =
        rxs.try_into().expect("four receivers");
    let mut open = [true; 4];
    let (mut count, mut sum) = (0usize, 0u64);
    let limit = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(limit);
    let mut timed_out = false;
    let mut on = |i: usize, res: Option<u64>, open: &mut [bool; 4]| match res {
        Some(v) => {
            count += 1;
            sum += v;
        }
        None => open[i] = false,
    };
    while open.iter().any(|o| *o) {
        tokio::select! {
            res = r0.recv(), if open[0] => on(0, res, &mut open),
            res = r1.recv(), if open[1] => on(1, res, &mut open),
            res = r2.recv(), if open[2] => on(2, res, &mut open),
            res = r3.recv(), if open[3] => on(3, res, &mut open),
            () = &mut limit => {
                timed_out = true;
                break;
            }
        }
    }
    let el = start.elapsed();
    for p in producers {
        p.await.expect("producer panicked");
    }
    let want = common::sum_below(per) * common::SELECT_CHANNELS as u64;
    Report::new("select", "ns_per_msg", common::ns_per(el, count))
        .kv("n", total)
        .kv("received", count)
        .kv("lost", total - count)
        .kv("sum_ok", u8::from(sum == want || count != total))
        .kv("note", if timed_out { "cap1,timed_out" } else { "cap1" })
        .print();
}

/// 8 tasks increment one counter under tokio::sync::Mutex.
async fn mutex(args: &Args) {
    let n = args.n(None);
    let per = n / common::MUTEX_TASKS;
    let total = per * common::MUTEX_TASKS;
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let handles: Vec<_> = (0..common::MUTEX_TASKS)
        .map(|_| {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                for _ in 0..per {
                    *counter.lock().await += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("incrementer panicked");
    }
    let el = start.elapsed();
    let got = *counter.lock().await;
    Report::new("mutex", "ns_per_lock", common::ns_per(el, total))
        .kv("n", total)
        .kv("lost", total as u64 - got)
        .print();
}

/// n tasks each blocked on its own channel; RSS growth per task.
async fn idle(args: &Args) {
    let n = args.n(None);
    let before = common::rss_bytes();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let woke = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = mpsc::channel::<u64>(1);
        senders.push(tx);
        let ready = ready_tx.clone();
        let woke = Arc::clone(&woke);
        handles.push(tokio::spawn(async move {
            let _ = ready.send(());
            if rx.recv().await.is_some() {
                woke.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..n {
        ready_rx.recv().await.expect("idle task died");
    }
    // Every task has announced itself; give the last ones time to park.
    tokio::time::sleep(Duration::from_millis(if args.quick { 10 } else { 200 })).await;
    let after = common::rss_bytes();
    for tx in &senders {
        tx.send(1).await.expect("idle task gone");
    }
    for h in handles {
        h.await.expect("idle task panicked");
    }
    let per = after.saturating_sub(before) as f64 / n as f64;
    Report::new("idle", "bytes_per_task", per)
        .kv("n", n)
        .kv("rss_before_kb", before / 1024)
        .kv("rss_after_kb", after / 1024)
        .kv("lost", n as u64 - woke.load(Ordering::Relaxed))
        .kv("note", "cap1")
        .print();
}

/// TCP echo over 127.0.0.1 with tokio::net, a task per connection on each side.
async fn echo(args: &Args) {
    let conns = args.n(None);
    let secs = args.secs();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    // The accept task is dropped with the runtime at exit.
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; common::ECHO_MSG];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        streams.push(s);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(id, mut s)| {
            tokio::spawn(async move {
                let mut msg = [0u8; common::ECHO_MSG];
                let mut back = [0u8; common::ECHO_MSG];
                let (mut done, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    msg[..8].copy_from_slice(&(done ^ ((id as u64) << 40)).to_le_bytes());
                    if s.write_all(&msg).await.is_err() || s.read_exact(&mut back).await.is_err() {
                        errors += 1;
                        break;
                    }
                    if back != msg {
                        errors += 1;
                    }
                    done += 1;
                }
                (done, errors)
            })
        })
        .collect();
    let (mut reqs, mut errors) = (0, 0);
    for c in clients {
        let (d, e) = c.await.expect("client panicked");
        reqs += d;
        errors += e;
    }
    let el = start.elapsed().as_secs_f64();
    Report::new("echo", "req_per_s", reqs as f64 / el)
        .kv("n", conns)
        .kf("secs", el)
        .kv("requests", reqs)
        .kv("errors", errors)
        .print();
}

/// n tasks each sleep a seeded random 0-50 ms; lateness from spawn + sleep.
/// (tokio's timer wheel has 1 ms resolution and rounds sleeps up.)
async fn timers(args: &Args) {
    let n = args.n(None);
    let durs = common::timer_durations(n);
    let ideal = durs.iter().copied().max().unwrap_or_default();
    let start = Instant::now();
    let handles: Vec<_> = durs
        .iter()
        .map(|&d| {
            let t0 = Instant::now();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                (t0.elapsed().saturating_sub(d)).as_secs_f64() * 1e3
            })
        })
        .collect();
    let mut late = Vec::with_capacity(n);
    for h in handles {
        if let Ok(l) = h.await {
            late.push(l);
        }
    }
    common::report_timers(late, n, start.elapsed(), ideal);
}

/// A chain of n tasks, each receiving from its left and sending +1 to its right.
async fn chain(args: &Args) {
    let tasks = args.n(None);
    let values = args.values(None);
    let (first_tx, mut left) = mpsc::channel::<u64>(1);
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (tx, rx) = mpsc::channel::<u64>(1);
        let mut l = std::mem::replace(&mut left, rx);
        handles.push(tokio::spawn(async move {
            while let Some(v) = l.recv().await {
                if tx.send(v + 1).await.is_err() {
                    break;
                }
            }
        }));
    }
    let mut last = left;
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        for i in 0..values as u64 {
            first_tx.send(i).await.expect("chain broken");
        }
    });
    let mut good = 0usize;
    for i in 0..values as u64 {
        match last.recv().await {
            Some(v) if v == i + tasks as u64 => good += 1,
            Some(_) => {}
            None => break,
        }
    }
    let el = start.elapsed();
    feeder.await.expect("feeder panicked");
    for h in handles {
        h.await.expect("chain task panicked");
    }
    let hops = values * (tasks + 1);
    Report::new("chain", "ns_per_hop", common::ns_per(el, hops))
        .kv("n", tasks)
        .kv("values", values)
        .kv("lost", values - good)
        .kv("note", "cap1")
        .print();
}
