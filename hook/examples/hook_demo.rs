//! The hook at scale: unmodified blocking code on 2 workers.
//!
//! ```text
//! cargo run --release -p goro-hook --example hook_demo            # everything
//! cargo run --release -p goro-hook --example hook_demo -- echo    # one part
//! ```
//!
//! Parts:
//! - `echo`: 1,000 coroutines, each a `std::net::TcpStream` client doing
//!   100 64-byte round trips against an echo server on goro's sockets in
//!   the same process; then the same load with `goro::net` clients.
//! - `sleep`: 10,000 coroutines each calling `std::thread::sleep(100 ms)`.
//! - `curl`: 200 concurrent libcurl transfers (8 KiB each) against an
//!   in-process HTTP server.
//! - `redis`: 1,000 sync `redis` connections doing `INCR` for 3 s, from
//!   1,000 coroutines (private stacks, then shared stacks) and then from
//!   1,000 OS threads, each in its own process so their memory is
//!   measured apart (needs `redis-server`).
//!
//! Everything runs on 2 workers (`GORO_WORKERS` is not read: the demo
//! sets it).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    assert!(goro_hook::enabled(), "the hooks are not in effect");
    goro_runtime::Config::new().workers(2).apply().unwrap();
    let part = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    match part.as_str() {
        "all" => {
            echo();
            sleep();
            curl();
            redis();
        }
        "echo" => echo(),
        "sleep" => sleep(),
        "curl" => curl(),
        "redis" => redis(),
        "redis-coroutines" => redis_load(Clients::Coroutines),
        "redis-shared" => redis_load(Clients::SharedStacks),
        "redis-threads" => redis_load(Clients::Threads),
        other => {
            eprintln!("unknown part {other:?}: use echo, sleep, curl, redis or all");
            std::process::exit(2);
        }
    }
}

fn echo_server() -> SocketAddr {
    let listener = goro_net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    goro_runtime::go!(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { continue };
            goro_runtime::go!(move || {
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = c.read(&mut buf) {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

const CONNS: usize = 1000;
const ROUNDS: usize = 100;

fn run_clients<S: Read + Write + 'static>(
    addr: SocketAddr,
    connect: fn(SocketAddr) -> S,
) -> Duration {
    let t = Instant::now();
    let hs: Vec<_> = (0..CONNS)
        .map(|i| {
            goro_runtime::go!(move || {
                let mut s = connect(addr);
                let msg = [i as u8; 64];
                let mut back = [0; 64];
                for _ in 0..ROUNDS {
                    s.write_all(&msg).unwrap();
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    t.elapsed()
}

fn echo() {
    let addr = echo_server();
    let std_clients = |a| {
        let s = std::net::TcpStream::connect(a).unwrap();
        s.set_nodelay(true).unwrap();
        s
    };
    let goro_clients = |a| {
        let s = goro_net::TcpStream::connect(a).unwrap();
        s.set_nodelay(true).unwrap();
        s
    };
    // A warm-up pass of each, then interleaved passes; medians.
    run_clients(addr, std_clients);
    run_clients(addr, goro_clients);
    let (mut hooked, mut native) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        hooked.push(run_clients(addr, std_clients).as_secs_f64());
        native.push(run_clients(addr, goro_clients).as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (h, n) = (median(&mut hooked), median(&mut native));
    let rt = (CONNS * ROUNDS) as f64;
    println!(
        "echo: {CONNS} coroutines x {ROUNDS} round trips on 2 workers, median of 7: \
         std::net (hooked) {:.0} ms ({:.0} rt/s), goro::net {:.0} ms ({:.0} rt/s), hooked/goro {:.2}",
        h * 1e3,
        rt / h,
        n * 1e3,
        rt / n,
        h / n,
    );
}

fn sleep() {
    const N: usize = 10_000;
    let t = Instant::now();
    let hs: Vec<_> = (0..N)
        .map(|_| goro_runtime::go!(|| std::thread::sleep(Duration::from_millis(100))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    println!(
        "sleep: {N} coroutines x std::thread::sleep(100 ms) on 2 workers: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}

fn http_server() -> SocketAddr {
    let listener = goro_net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = vec![b'x'; 8 << 10];
    goro_runtime::go!(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { continue };
            let body = body.clone();
            goro_runtime::go!(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let mut resp =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                                .into_bytes();
                        resp.extend_from_slice(&body);
                        if c.write_all(&resp).is_err() {
                            return;
                        }
                    }
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn curl() {
    curl::init();
    let addr = http_server();
    const N: usize = 200;
    for pass in 0..2 {
        let t = Instant::now();
        let hs: Vec<_> = (0..N)
            .map(|i| {
                goro_runtime::go!(move || {
                    let mut easy = curl::easy::Easy::new();
                    easy.url(&format!("http://{addr}/t{i}")).unwrap();
                    let mut n = 0;
                    {
                        let mut tr = easy.transfer();
                        tr.write_function(|d| {
                            n += d.len();
                            Ok(d.len())
                        })
                        .unwrap();
                        tr.perform().unwrap();
                    }
                    n
                })
            })
            .collect();
        let bytes: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(bytes, N * (8 << 10));
        if pass == 1 {
            println!(
                "curl: {N} concurrent libcurl transfers of 8 KiB from coroutines on 2 workers: {:.0} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// Starts redis-server on a free port; `None` if it is not installed.
fn start_redis() -> Option<(std::process::Child, u16)> {
    let exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(exe)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "10000"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..500 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((child, port));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

fn redis() {
    let Some((mut server, port)) = start_redis() else {
        println!("redis: SKIPPED (redis-server is not installed)");
        return;
    };
    let exe = std::env::current_exe().unwrap();
    for kind in ["redis-coroutines", "redis-shared", "redis-threads"] {
        let out = std::process::Command::new(&exe)
            .arg(kind)
            .env("DEMO_REDIS_PORT", port.to_string())
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Resident memory of this process in KiB (VmRSS).
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What runs the redis clients.
#[derive(Clone, Copy, PartialEq)]
enum Clients {
    /// Coroutines on private stacks (the default).
    Coroutines,
    /// Coroutines on shared stacks (`Builder::shared_stack`).
    SharedStacks,
    /// OS threads.
    Threads,
}

fn redis_load(kind: Clients) {
    const CLIENTS: usize = 1000;
    const RUN: Duration = Duration::from_secs(3);
    let port: u16 = std::env::var("DEMO_REDIS_PORT").unwrap().parse().unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    // Start the runtime (and its workers) before the baseline, so both
    // kinds of run are measured from a started process.
    goro_runtime::go!(|| ()).join().unwrap();
    let base = rss_kib();
    let ops = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let body = {
        let (ops, connected, go, stop) = (ops.clone(), connected.clone(), go.clone(), stop.clone());
        move |i: usize, client: redis::Client| {
            let mut con = client.get_connection().unwrap();
            connected.fetch_add(1, Ordering::Relaxed);
            while !go.load(Ordering::Acquire) {
                // std::thread::sleep: parks a coroutine (hooked), sleeps a thread.
                std::thread::sleep(Duration::from_millis(1));
            }
            let key = format!("c{i}");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let _: i64 = redis::cmd("INCR").arg(&key).query(&mut con).unwrap();
                n += 1;
            }
            ops.fetch_add(n, Ordering::Relaxed);
        }
    };
    let mut joins: Vec<Box<dyn FnOnce()>> = Vec::new();
    for i in 0..CLIENTS {
        let (body, client) = (body.clone(), client.clone());
        if kind == Clients::SharedStacks {
            let h = goro_runtime::Builder::new()
                .shared_stack()
                .spawn(move || body(i, client))
                .unwrap();
            joins.push(Box::new(move || h.join().unwrap()));
        } else if kind == Clients::Coroutines {
            let h = goro_runtime::go!(move || body(i, client));
            joins.push(Box::new(move || h.join().unwrap()));
        } else {
            let h = std::thread::spawn(move || body(i, client));
            joins.push(Box::new(move || h.join().unwrap()));
        }
    }
    while connected.load(Ordering::Relaxed) < CLIENTS as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    go.store(true, Ordering::Release);
    std::thread::sleep(RUN / 2);
    let mid = rss_kib();
    let saved = goro_runtime::stats().saved_stack_bytes;
    std::thread::sleep(RUN / 2);
    stop.store(true, Ordering::Relaxed);
    for j in joins {
        j();
    }
    let total = ops.load(Ordering::Relaxed);
    println!(
        "redis: {CLIENTS} sync connections on {}: {:.0} INCR/s, memory {:.1} MiB above the start ({:.1} KiB per client{})",
        match kind {
            Clients::Coroutines => "coroutines (2 workers)",
            Clients::SharedStacks => "shared-stack coroutines (2 workers)",
            Clients::Threads => "OS threads",
        },
        total as f64 / RUN.as_secs_f64(),
        mid.saturating_sub(base) as f64 / 1024.0,
        mid.saturating_sub(base) as f64 / CLIENTS as f64,
        if kind == Clients::SharedStacks {
            format!(
                ", of which saved stacks {:.1} KiB",
                saved as f64 / 1024.0 / CLIENTS as f64
            )
        } else {
            String::new()
        },
    );
}
