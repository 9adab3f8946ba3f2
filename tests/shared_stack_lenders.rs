//! Shared stacks lend nothing (`stack/shared.rs`, "The invariant"): every
//! goro API through which other code could reach into a parked
//! coroutine's stack either keeps the stack exclusively (`blocking`),
//! refuses (`scope`), or keeps what it shares on the heap (channels'
//! rendezvous slots, select, sync waiters, join, park tokens, timers,
//! sockets). Each test runs in a child with one worker and one shared
//! stack per worker, so that every switch between shared-stack coroutines
//! copies frames off the stack: a pointer into a parked coroutine's stack
//! held anywhere would then read or write another coroutine's frames.

mod support;

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use goro::chan;

fn shared() -> goro::Builder {
    goro::Builder::new().shared_stack()
}

/// Runs `body` in a child with one worker and one shared stack.
fn in_one_stack(name: &str, body: fn()) {
    support::run_in_child(
        name,
        &[
            ("GORO_WORKERS", "1"),
            ("GORO_SHARED_STACKS_PER_WORKER", "1"),
        ],
        body,
    );
}

/// Coroutines that keep the one stack busy: each parks with a local
/// pattern, wakes on `rx`, checks it.
fn churn(n: usize) -> (Vec<chan::Sender<()>>, Vec<goro::JoinHandle<()>>) {
    let mut txs = Vec::new();
    let mut hs = Vec::new();
    for i in 0..n {
        let (tx, rx) = chan::bounded::<()>(0);
        txs.push(tx);
        hs.push(
            shared()
                .spawn(move || {
                    let local = black_box([i as u8 ^ 0x5a; 512]);
                    let _ = rx.recv();
                    assert!(local.iter().all(|&b| b == i as u8 ^ 0x5a));
                })
                .unwrap(),
        );
    }
    (txs, hs)
}

#[test]
fn scope_on_a_shared_stack_panics_with_a_clear_message() {
    in_one_stack(
        "scope_on_a_shared_stack_panics_with_a_clear_message",
        || {
            let r = shared()
                .spawn(|| {
                    let mut x = 1;
                    goro::scope(|s| {
                        s.spawn(|| x += 1);
                    });
                    x
                })
                .unwrap()
                .join();
            let p = r.unwrap_err();
            let msg = p.downcast_ref::<String>().unwrap();
            assert!(msg.contains("shared stack"), "{msg}");
            assert!(msg.contains("private_stack"), "{msg}");
            // Scoped children may themselves be shared-stack coroutines.
            let mut v = vec![0u32; 8];
            goro::scope(|s| {
                for (i, x) in v.iter_mut().enumerate() {
                    s.spawn_with(shared(), move || {
                        goro::yield_now();
                        *x = i as u32;
                    })
                    .unwrap();
                }
            });
            assert_eq!(v, (0..8).collect::<Vec<_>>());
        },
    );
}

#[test]
fn blocking_keeps_its_shared_stack_while_the_closure_borrows_it() {
    in_one_stack(
        "blocking_keeps_its_shared_stack_while_the_closure_borrows_it",
        || {
            // `c` is bound to the one stack and parked before the lender
            // starts; waking it while the lender's closure runs must not
            // let it onto the stack.
            let c_ran = Arc::new(AtomicBool::new(false));
            let (c_tx, c_rx) = chan::bounded::<()>(1);
            let ran = c_ran.clone();
            let c = shared()
                .spawn(move || {
                    let mine = black_box([0xC3u8; 700]);
                    c_rx.recv().unwrap();
                    ran.store(true, Ordering::SeqCst);
                    assert!(mine.iter().all(|&b| b == 0xC3));
                })
                .unwrap();
            support::eventually("c to park", || goro::stats().parked >= 1);
            let ran = c_ran.clone();
            let lender = shared()
                .spawn(move || {
                    let mut buf = black_box([7u8; 2048]);
                    let n = goro::blocking(|| {
                        c_tx.send(()).unwrap();
                        // Fresh coroutines still run meanwhile (on a
                        // stack added for them), many times over.
                        for k in 0..20u8 {
                            let h = shared()
                                .spawn(move || {
                                    let l = black_box([k; 900]);
                                    goro::yield_now();
                                    l[k as usize]
                                })
                                .unwrap();
                            assert_eq!(h.join().unwrap(), k);
                            for b in buf.iter_mut() {
                                *b = b.wrapping_add(1);
                            }
                        }
                        assert!(
                            !ran.load(Ordering::SeqCst),
                            "a coroutine evicted from the lender's stack ran while it lent"
                        );
                        buf.iter().map(|&b| b as usize).sum::<usize>()
                    });
                    assert_eq!(n, 27 * 2048);
                    assert!(buf.iter().all(|&b| b == 27));
                    n
                })
                .unwrap();
            assert_eq!(lender.join().unwrap(), 27 * 2048);
            c.join().unwrap();
            assert!(c_ran.load(Ordering::SeqCst));
        },
    );
}

#[test]
fn rendezvous_and_buffered_channels_hand_values_between_evicted_coroutines() {
    in_one_stack(
        "rendezvous_and_buffered_channels_hand_values_between_evicted_coroutines",
        || {
            let (txs, hs) = churn(30);
            for cap in [0, 1, 16] {
                let (tx, rx) = chan::bounded::<[u64; 16]>(cap);
                let p = shared()
                    .spawn(move || {
                        for i in 0..500u64 {
                            tx.send([i; 16]).unwrap();
                        }
                    })
                    .unwrap();
                let c = shared()
                    .spawn(move || (0..500u64).all(|i| rx.recv().unwrap() == [i; 16]))
                    .unwrap();
                p.join().unwrap();
                assert!(c.join().unwrap());
            }
            for t in txs {
                t.send(()).unwrap();
            }
            hs.into_iter().for_each(|h| h.join().unwrap());
            let s = goro::stats();
            assert!(s.stack_copy_outs > 500, "{s:?}");
        },
    );
}

#[test]
fn select_and_sync_waiters_live_off_the_stack() {
    in_one_stack("select_and_sync_waiters_live_off_the_stack", || {
        let (txs, hs) = churn(20);
        let (a_tx, a_rx) = chan::bounded::<u32>(0);
        let (b_tx, b_rx) = chan::bounded::<u32>(0);
        let sel = shared()
            .spawn(move || {
                let mut sum = 0;
                for _ in 0..200 {
                    goro::select! {
                        recv(a_rx) -> v => sum += v.unwrap(),
                        recv(b_rx) -> v => sum += 2 * v.unwrap(),
                    }
                }
                sum
            })
            .unwrap();
        let sa = shared()
            .spawn(move || {
                (0..100).for_each(|_| a_tx.send(1).unwrap());
                // Kept open until the select is done: a closed channel's
                // arm is ready.
                a_tx
            })
            .unwrap();
        let sb = shared()
            .spawn(move || {
                (0..100).for_each(|_| b_tx.send(1).unwrap());
                b_tx
            })
            .unwrap();
        let _a = sa.join().unwrap();
        let _b = sb.join().unwrap();
        assert_eq!(sel.join().unwrap(), 300);
        // Mutex, Condvar, WaitGroup, Semaphore between shared coroutines.
        let m = Arc::new(goro::sync::Mutex::new(0u64));
        let cv = Arc::new(goro::sync::Condvar::new());
        let wg = goro::sync::WaitGroup::new();
        let sem = Arc::new(goro::sync::Semaphore::new(2));
        let hs2: Vec<_> = (0..16)
            .map(|_| {
                let (m, cv, wg, sem) = (m.clone(), cv.clone(), wg.clone(), sem.clone());
                wg.add(1);
                shared()
                    .spawn(move || {
                        for _ in 0..50 {
                            let _p = sem.acquire();
                            let mut g = m.lock();
                            *g += 1;
                            cv.notify_all();
                            drop(g);
                            goro::yield_now();
                        }
                        wg.done();
                    })
                    .unwrap()
            })
            .collect();
        let waiter = {
            let (m, cv) = (m.clone(), cv.clone());
            shared()
                .spawn(move || {
                    let mut g = m.lock();
                    while *g < 800 {
                        cv.wait(&mut g);
                    }
                    *g
                })
                .unwrap()
        };
        let wg2 = wg.clone();
        shared().spawn(move || wg2.wait()).unwrap().join().unwrap();
        hs2.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(waiter.join().unwrap(), 800);
        for t in txs {
            t.send(()).unwrap();
        }
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
}

#[test]
fn join_park_tokens_and_timers_between_shared_coroutines() {
    in_one_stack(
        "join_park_tokens_and_timers_between_shared_coroutines",
        || {
            let (txs, hs) = churn(20);
            // join: a shared coroutine joins another; the result is boxed
            // in the task, not on either stack.
            let inner = shared().spawn(|| [9u64; 40]).unwrap();
            let outer = shared().spawn(move || inner.join().unwrap()).unwrap();
            assert_eq!(outer.join().unwrap(), [9u64; 40]);
            // park tokens: unparked from a thread and from a coroutine.
            let woke = Arc::new(AtomicUsize::new(0));
            let w = woke.clone();
            let (id_tx, id_rx) = chan::bounded(1);
            let parker = shared()
                .spawn(move || {
                    id_tx.send(goro::park::current()).unwrap();
                    while w.load(Ordering::SeqCst) < 2 {
                        goro::park::park();
                    }
                })
                .unwrap();
            let u = id_rx.recv().unwrap();
            woke.fetch_add(1, Ordering::SeqCst);
            u.unpark();
            let u2 = u.clone();
            let w2 = woke.clone();
            shared()
                .spawn(move || {
                    w2.fetch_add(1, Ordering::SeqCst);
                    u2.unpark();
                })
                .unwrap()
                .join()
                .unwrap();
            parker.join().unwrap();
            // timers
            let sleepers: Vec<_> = (0..20u64)
                .map(|i| {
                    shared()
                        .spawn(move || {
                            let l = black_box([i; 30]);
                            goro::sleep(std::time::Duration::from_millis(i % 5));
                            l[(i % 30) as usize]
                        })
                        .unwrap()
                })
                .collect();
            for (i, h) in sleepers.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), i as u64);
            }
            for t in txs {
                t.send(()).unwrap();
            }
            hs.into_iter().for_each(|h| h.join().unwrap());
        },
    );
}

#[test]
fn sockets_read_into_stack_buffers_of_evicted_coroutines() {
    in_one_stack(
        "sockets_read_into_stack_buffers_of_evicted_coroutines",
        || {
            let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = shared()
                .spawn(move || {
                    let mut hs = Vec::new();
                    for _ in 0..8 {
                        let (mut s, _) = listener.accept().unwrap();
                        hs.push(
                            shared()
                                .spawn(move || {
                                    let mut buf = [0u8; 1500];
                                    loop {
                                        let n = s.read(&mut buf).unwrap();
                                        if n == 0 {
                                            break;
                                        }
                                        s.write_all(&buf[..n]).unwrap();
                                    }
                                })
                                .unwrap(),
                        );
                    }
                    hs.into_iter().for_each(|h| h.join().unwrap());
                })
                .unwrap();
            let clients: Vec<_> = (0..8u8)
                .map(|k| {
                    shared()
                        .spawn(move || {
                            let mut s = goro::net::TcpStream::connect(addr).unwrap();
                            for r in 0..50u8 {
                                let msg = [k ^ r; 700];
                                s.write_all(&msg).unwrap();
                                let mut back = [0u8; 700];
                                s.read_exact(&mut back).unwrap();
                                assert_eq!(back, msg);
                            }
                        })
                        .unwrap()
                })
                .collect();
            clients.into_iter().for_each(|h| h.join().unwrap());
            server.join().unwrap();
        },
    );
}
