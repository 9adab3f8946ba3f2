//! The sync `redis` crate, unmodified, from many coroutines on two
//! workers against a real `redis-server` (started on a free loopback port
//! and killed afterwards; skipped with a message if it is not installed).

mod support;

use support::{RedisServer, two_workers, within};

#[test]
fn sync_redis_from_200_coroutines() {
    two_workers();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    within("redis from coroutines", move || {
        const COROUTINES: usize = 200;
        const ROUNDS: usize = 20;
        let client = redis::Client::open(url).unwrap();
        let hs: Vec<_> = (0..COROUTINES)
            .map(|i| {
                let client = client.clone();
                goro_runtime::go!(move || {
                    let mut con = client.get_connection().unwrap();
                    for r in 0..ROUNDS {
                        let key = format!("k{i}");
                        let val = format!("v{i}-{r}");
                        redis::cmd("SET")
                            .arg(&key)
                            .arg(&val)
                            .exec(&mut con)
                            .unwrap();
                        let back: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
                        assert_eq!(back, val);
                        let _: i64 = redis::cmd("INCR").arg("counter").query(&mut con).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let mut con = client.get_connection().unwrap();
        let total: i64 = redis::cmd("GET").arg("counter").query(&mut con).unwrap();
        assert_eq!(total, (COROUTINES * ROUNDS) as i64);
    });
    drop(server);
}

/// A connection made on a plain thread and then used from a coroutine
/// (the hook makes it non-blocking underneath only there), and back.
#[test]
fn a_connection_moves_between_a_thread_and_a_coroutine() {
    two_workers();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    within("redis connection moved", move || {
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_connection().unwrap();
        redis::cmd("SET")
            .arg("moved")
            .arg("thread")
            .exec(&mut con)
            .unwrap();
        let mut con = goro_runtime::go!(move || {
            // BLPOP with a timeout parks this coroutine in recv for 0.1 s.
            let r: Option<(String, String)> = redis::cmd("BLPOP")
                .arg("nothing")
                .arg(0.1)
                .query(&mut con)
                .unwrap();
            assert!(r.is_none());
            let v: String = redis::cmd("GET").arg("moved").query(&mut con).unwrap();
            assert_eq!(v, "thread");
            redis::cmd("SET")
                .arg("moved")
                .arg("coroutine")
                .exec(&mut con)
                .unwrap();
            con
        })
        .join()
        .unwrap();
        let v: String = redis::cmd("GET").arg("moved").query(&mut con).unwrap();
        assert_eq!(v, "coroutine");
    });
    drop(server);
}

/// More coroutines than workers block in `BLPOP` until a coroutine
/// spawned after them pushes: only possible if the blocked reads park.
#[test]
fn blpop_waiters_do_not_hold_the_workers() {
    two_workers();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    within("redis BLPOP", move || {
        let client = redis::Client::open(url).unwrap();
        let waiters: Vec<_> = (0..10)
            .map(|i| {
                let client = client.clone();
                goro_runtime::go!(move || {
                    let mut con = client.get_connection().unwrap();
                    let (_, v): (String, String) = redis::cmd("BLPOP")
                        .arg(format!("q{i}"))
                        .arg(0)
                        .query(&mut con)
                        .unwrap();
                    v
                })
            })
            .collect();
        let pusher = goro_runtime::go!(move || {
            let mut con = client.get_connection().unwrap();
            for i in 0..10 {
                // Push only once the waiter is blocked (a client is
                // counted as blocked by the server), so the BLPOP really
                // waits.
                loop {
                    let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
                    let blocked = info
                        .lines()
                        .find_map(|l| l.strip_prefix("blocked_clients:"))
                        .and_then(|n| n.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if blocked >= 10 - i {
                        break;
                    }
                    goro_runtime::sleep(std::time::Duration::from_millis(2));
                }
                redis::cmd("RPUSH")
                    .arg(format!("q{i}"))
                    .arg(format!("m{i}"))
                    .exec(&mut con)
                    .unwrap();
            }
        });
        for (i, w) in waiters.into_iter().enumerate() {
            assert_eq!(w.join().unwrap(), format!("m{i}"));
        }
        pusher.join().unwrap();
    });
    drop(server);
}
