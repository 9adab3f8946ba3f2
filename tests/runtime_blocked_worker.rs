//! The blocked-worker watchdog: a worker stuck in one coroutine (a plain
//! blocking call, a futex wait, a CPU loop) longer than the threshold is
//! reported once per episode, on stderr and in `goro::stats()`, naming the
//! coroutine and the system call it is blocked in; a coroutine that switches
//! is never reported; a threshold of 0 turns the watchdog off; an idle
//! runtime's watchdog sleeps without a timeout; and the program that used to
//! hang silently (plain `std::net` clients in coroutines against a goro
//! server on 2 workers) is reported.
//!
//! The configuration is read once, when the runtime starts, so every
//! scenario runs in a child process of its own (this test binary
//! re-executed with `--exact <test>` and `CHILD` set) and the parent checks
//! the child's exit status and stderr.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set in a child process: run the scenario instead of spawning one.
const CHILD: &str = "GORO_TEST_BLOCKED_WORKER_CHILD";
/// The watchdog's threshold in the scenarios that use the environment.
const THRESHOLD: Duration = Duration::from_millis(100);

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn episodes() -> u64 {
    goro::stats().blocked_worker_episodes
}

/// A child running the test `test` with `env` set.
fn child_command(test: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("GORO_BLOCKED_WORKER_MS")
        .env_remove("GORO_WORKERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the test `test` in a child with `env`; returns its output after
/// checking that it succeeded.
fn run_child(test: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = child_command(test, env);
    let out = support::within("the child scenario", move || cmd.output().unwrap());
    assert!(
        out.status.success(),
        "scenario {test} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value printed by the child as `KEY=value` on stdout (after the test
/// harness's `test name ... ` on the same line, if it is the first output).
fn printed(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{key}=");
    stdout
        .lines()
        .find_map(|l| Some(l.split_once(&prefix)?.1))
        .unwrap_or_else(|| panic!("the child printed no {key}:\n{stdout}"))
        .to_string()
}

/// The watchdog's report lines in `stderr`.
fn reports(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("goro: worker"))
        .collect()
}

/// The names of this process's threads (`/proc/self/task/*/comm`).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

/// The OS thread id of the thread named `name`.
fn tid_of(name: &str) -> Option<String> {
    std::fs::read_dir("/proc/self/task").unwrap().find_map(|e| {
        let e = e.ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

/// Voluntary plus involuntary context switches of thread `tid`: how often
/// it woke up.
fn wakeups(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// A coroutine blocking its worker in `std::thread::sleep` is reported
/// exactly once however long it stays blocked, and the report names it and
/// the system call.
#[test]
fn a_sleeping_coroutine_is_reported_once() {
    if is_child() {
        let h = goro::Builder::new()
            .name("sleeper")
            .spawn(|| {
                let start = Instant::now();
                // Blocks its worker (no switch) until the watchdog has
                // reported it (normally during the first sleep); bounded so
                // a broken watchdog fails below.
                while episodes() == 0 && start.elapsed() < support::PATIENCE {
                    std::thread::sleep(3 * THRESHOLD);
                }
                // Still the same episode: three more thresholds without a
                // switch must not be reported again.
                std::thread::sleep(3 * THRESHOLD);
                goro::current_id().unwrap()
            })
            .unwrap();
        let id = h.join().unwrap();
        println!("SLEEPER_ID={id}");
        assert_eq!(episodes(), 1, "one episode, reported once");
        return;
    }
    let out = run_child(
        "a_sleeping_coroutine_is_reported_once",
        &[("GORO_BLOCKED_WORKER_MS", "100"), ("GORO_WORKERS", "2")],
    );
    let id = printed(&out, "SLEEPER_ID");
    let err = stderr_of(&out);
    let r = reports(&err);
    assert_eq!(r.len(), 1, "exactly one report:\n{err}");
    assert!(
        r[0].contains(&format!("coroutine 'sleeper' (id {id})")),
        "the report names the coroutine: {}",
        r[0]
    );
    assert!(
        r[0].contains("nanosleep"),
        "the report names the system call: {}",
        r[0]
    );
}

/// Coroutines that switch often are never reported, however long they run;
/// the threshold and a reporter of one's own come from `Config`, and the
/// reporter replaces the line on stderr.
#[test]
fn switching_coroutines_are_never_reported() {
    static SEEN: Mutex<Vec<(u64, Option<String>)>> = Mutex::new(Vec::new());
    let threshold = Duration::from_millis(250);
    if is_child() {
        goro::Config::new()
            .workers(2)
            .blocked_worker_threshold(threshold)
            .on_blocked_worker(|b: &goro::BlockedWorker| {
                SEEN.lock().unwrap().push((b.coroutine, b.name.clone()));
                println!("REPORT={b}");
            })
            .apply()
            .unwrap();
        let busy: Vec<_> = (0..4)
            .map(|i| {
                goro::Builder::new()
                    .name(format!("yielder-{i}"))
                    .spawn(move || {
                        let start = Instant::now();
                        let mut n = 0u64;
                        while start.elapsed() < 4 * threshold {
                            if i % 2 == 0 {
                                goro::yield_now();
                            } else {
                                goro::sleep(Duration::from_millis(1));
                            }
                            n += 1;
                        }
                        n
                    })
                    .unwrap()
            })
            .collect();
        for h in busy {
            assert!(h.join().unwrap() > 0);
        }
        assert_eq!(episodes(), 0, "switching coroutines were reported");
        assert!(SEEN.lock().unwrap().is_empty());
        // The watchdog is on, with that threshold and that reporter.
        let stuck = goro::Builder::new()
            .name("spinner")
            .spawn(|| {
                let start = Instant::now();
                while episodes() == 0 && start.elapsed() < support::PATIENCE {
                    std::hint::spin_loop();
                }
                goro::current_id().unwrap()
            })
            .unwrap();
        let id = stuck.join().unwrap();
        assert_eq!(episodes(), 1);
        assert_eq!(
            *SEEN.lock().unwrap(),
            vec![(id, Some("spinner".to_string()))]
        );
        return;
    }
    let out = run_child("switching_coroutines_are_never_reported", &[]);
    let err = stderr_of(&out);
    assert!(reports(&err).is_empty(), "own reporter, no stderr:\n{err}");
    let line = printed(&out, "REPORT");
    assert!(line.contains("coroutine 'spinner'"), "{line}");
    assert!(line.contains("running"), "a CPU loop is running: {line}");
}

/// A threshold of 0 turns the watchdog off, from the environment or from
/// `Config` (which wins over the environment); by default it is on.
#[test]
fn threshold_zero_turns_the_watchdog_off() {
    if is_child() {
        if std::env::var_os("VIA_CONFIG").is_some() {
            goro::Config::new()
                .blocked_worker_threshold(Duration::ZERO)
                .apply()
                .unwrap();
        }
        goro::Builder::new()
            .name("sleeper")
            .spawn(|| std::thread::sleep(3 * THRESHOLD))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(episodes(), 0);
        let watchdog_thread = || thread_names().iter().any(|n| n == "goro-watchdog");
        if std::env::var_os("EXPECT_ON").is_some() {
            // A new thread names itself once it runs.
            support::eventually("the watchdog thread", watchdog_thread);
        }
        println!("WATCHDOG_THREAD={}", watchdog_thread());
        return;
    }
    let test = "threshold_zero_turns_the_watchdog_off";
    let out = run_child(test, &[("GORO_BLOCKED_WORKER_MS", "0")]);
    assert_eq!(printed(&out, "WATCHDOG_THREAD"), "false");
    assert!(reports(&stderr_of(&out)).is_empty());

    let out = run_child(
        test,
        &[("GORO_BLOCKED_WORKER_MS", "100"), ("VIA_CONFIG", "1")],
    );
    assert_eq!(printed(&out, "WATCHDOG_THREAD"), "false");
    assert!(reports(&stderr_of(&out)).is_empty());

    let out = run_child(test, &[("EXPECT_ON", "1")]);
    assert_eq!(printed(&out, "WATCHDOG_THREAD"), "true", "on by default");
}

/// A bad `GORO_BLOCKED_WORKER_MS` stops start-up with a message naming the
/// variable and the value; `Config` refuses a threshold it cannot honour.
#[test]
fn bad_thresholds_are_refused() {
    if is_child() {
        let r = std::panic::catch_unwind(|| goro::spawn(|| ()).join());
        let e = r.expect_err("the runtime must not start");
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        println!("MESSAGE={msg}");
        return;
    }
    let out = run_child(
        "bad_thresholds_are_refused",
        &[("GORO_BLOCKED_WORKER_MS", "soon")],
    );
    let msg = printed(&out, "MESSAGE");
    assert!(
        msg.contains("GORO_BLOCKED_WORKER_MS=\"soon\""),
        "the message names the variable and the value: {msg}"
    );
    assert_eq!(
        goro::Config::new()
            .blocked_worker_threshold(Duration::from_micros(10))
            .apply(),
        Err(goro::ConfigError::InvalidBlockedWorkerThreshold(
            Duration::from_micros(10)
        ))
    );
}

/// With no coroutine running the watchdog sleeps without a timeout (an
/// idle runtime does not wake up periodically), and work wakes it again.
#[test]
fn an_idle_runtime_does_not_wake_the_watchdog() {
    if is_child() {
        goro::spawn(|| ()).join().unwrap();
        let mut tid = None;
        // A new thread names itself once it runs.
        support::eventually("the watchdog thread", || {
            tid = tid_of("goro-watchdog");
            tid.is_some()
        });
        let tid = tid.unwrap();
        // It checks every 50 ms while a worker is busy: a 300 ms window
        // without a wake-up means it sleeps without a timeout.
        support::eventually("the watchdog to sleep without a timeout", || {
            let before = wakeups(&tid);
            std::thread::sleep(3 * THRESHOLD);
            wakeups(&tid) == before
        });
        goro::Builder::new()
            .name("late")
            .spawn(|| {
                let start = Instant::now();
                while episodes() == 0 && start.elapsed() < support::PATIENCE {
                    std::thread::sleep(THRESHOLD / 2);
                }
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(episodes(), 1, "woken by work, it reports again");
        return;
    }
    let out = run_child(
        "an_idle_runtime_does_not_wake_the_watchdog",
        &[("GORO_BLOCKED_WORKER_MS", "100"), ("GORO_WORKERS", "2")],
    );
    let err = stderr_of(&out);
    assert_eq!(reports(&err).len(), 1, "{err}");
    assert!(err.contains("coroutine 'late'"), "{err}");
}

/// Kills the child when dropped (the scenario below never ends by itself).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The program that used to hang silently: two coroutines doing plain
/// `std::net` request/response against a goro server coroutine, on two
/// workers. Both workers block in `recv` and the server never runs; the
/// watchdog now says so, naming the clients and `recvfrom`.
#[test]
fn plain_std_net_clients_are_reported_instead_of_hanging_silently() {
    if is_child() {
        let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = goro::Builder::new()
            .name("server")
            .spawn(move || {
                for conn in listener.incoming() {
                    let mut conn = conn.unwrap();
                    goro::spawn(move || {
                        let mut buf = [0u8; 4];
                        while conn.read_exact(&mut buf).is_ok() {
                            if conn.write_all(&buf).is_err() {
                                break;
                            }
                        }
                    });
                }
            })
            .unwrap();
        // Reports the counter as it changes, from a plain thread.
        std::thread::spawn(|| {
            let mut last = 0;
            loop {
                let n = episodes();
                if n != last {
                    eprintln!("EPISODES={n}");
                    last = n;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let clients: Vec<_> = (0..2)
            .map(|i| {
                goro::Builder::new()
                    .name(format!("client-{i}"))
                    .spawn(move || {
                        let mut s = std::net::TcpStream::connect(addr).unwrap();
                        // A backstop so that an orphaned child ends.
                        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                        let mut buf = [0u8; 4];
                        for n in 0..1000u32 {
                            s.write_all(&n.to_le_bytes()).unwrap();
                            s.read_exact(&mut buf).unwrap();
                            assert_eq!(buf, n.to_le_bytes());
                        }
                    })
                    .unwrap()
            })
            .collect();
        for c in clients {
            let _ = c.join();
        }
        return;
    }
    let mut cmd = child_command(
        "plain_std_net_clients_are_reported_instead_of_hanging_silently",
        &[("GORO_BLOCKED_WORKER_MS", "100"), ("GORO_WORKERS", "2")],
    );
    let child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + support::PATIENCE;
    let mut seen = Vec::new();
    let mut report = None;
    let mut counted = false;
    while report.is_none() || !counted {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if line.starts_with("goro: worker") && line.contains("'client-") {
                    report = Some(line.clone());
                }
                if line.starts_with("EPISODES=") {
                    counted = true;
                }
                seen.push(line);
            }
            Err(_) => panic!(
                "watchdog: no report of the blocked clients within {:?}; stderr so far:\n{}",
                support::PATIENCE,
                seen.join("\n")
            ),
        }
    }
    let report = report.unwrap();
    assert!(
        report.contains("recvfrom") || report.contains("recv"),
        "the report names the system call: {report}"
    );
    drop(child);
}
