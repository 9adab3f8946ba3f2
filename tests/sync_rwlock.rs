//! `goro::sync::RwLock`: readers share, writers exclude, a waiting writer
//! holds off new readers (writer preference), queued readers go before the
//! next writer, and coroutines and threads mix.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use goro::sync::RwLock;

/// All readers hold the lock at the same time: each waits, holding it,
/// until it sees every other reader inside.
#[test]
fn readers_share_the_lock() {
    support::within("readers share the lock", || {
        const COROUTINES: usize = 6;
        const THREADS: usize = 2;
        const N: usize = COROUTINES + THREADS;
        let lock = Arc::new(RwLock::new(7));
        let inside = Arc::new(AtomicUsize::new(0));
        let reader = |lock: Arc<RwLock<i32>>, inside: Arc<AtomicUsize>| {
            move || {
                let g = lock.read();
                inside.fetch_add(1, Ordering::SeqCst);
                let deadline = Instant::now() + support::PATIENCE;
                while inside.load(Ordering::SeqCst) < N {
                    assert!(Instant::now() < deadline, "readers did not share the lock");
                    goro::yield_now();
                }
                *g
            }
        };
        let cos: Vec<_> = (0..COROUTINES)
            .map(|_| goro::spawn(reader(lock.clone(), inside.clone())))
            .collect();
        let ths: Vec<_> = (0..THREADS)
            .map(|_| std::thread::spawn(reader(lock.clone(), inside.clone())))
            .collect();
        for h in cos {
            assert_eq!(h.join().unwrap(), 7);
        }
        for h in ths {
            assert_eq!(h.join().unwrap(), 7);
        }
    });
}

/// Go's RWMutex guarantee: once a writer waits, new readers wait behind it
/// even though the lock is only read-held.
#[test]
fn waiting_writer_blocks_new_readers() {
    support::within("waiting writer blocks new readers", || {
        let lock = Arc::new(RwLock::new(Vec::new()));
        let first_reader = lock.read();
        let l = lock.clone();
        let writer = goro::go!(move || l.write().push("writer"));
        let wid = writer.id();
        support::eventually("writer to park", || support::is_parked(wid));
        assert!(
            lock.try_read().is_none(),
            "a new reader got in past a waiting writer"
        );
        let l = lock.clone();
        let late_reader = goro::go!(move || l.read().clone());
        let rid = late_reader.id();
        support::eventually("late reader to park", || support::is_parked(rid));
        drop(first_reader);
        writer.join().unwrap();
        // The late reader saw the writer's update: it went after the writer.
        assert_eq!(late_reader.join().unwrap(), ["writer"]);
    });
}

/// Readers that queued while a writer held the lock go before the next
/// queued writer, so a stream of writers cannot starve readers.
#[test]
fn queued_readers_go_before_the_next_writer() {
    support::within("queued readers go before the next writer", || {
        const READERS: usize = 4;
        let lock = Arc::new(RwLock::new(0u32));
        let w1 = lock.write();
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let l = lock.clone();
                goro::go!(move || *l.read())
            })
            .collect();
        for r in &readers {
            let id = r.id();
            support::eventually("reader to park", || support::is_parked(id));
        }
        let l = lock.clone();
        let w2 = goro::go!(move || *l.write() += 1);
        let id = w2.id();
        support::eventually("second writer to park", || support::is_parked(id));
        drop(w1);
        for r in readers {
            assert_eq!(r.join().unwrap(), 0, "a reader ran after the queued writer");
        }
        w2.join().unwrap();
        assert_eq!(*lock.read(), 1);
    });
}

/// Writers keep an invariant (both fields equal) that readers check, with
/// coroutines and threads on both sides.
#[test]
fn writers_exclude_everybody() {
    support::within("writers exclude everybody", || {
        const WRITERS: usize = 4;
        const READERS: usize = 4;
        const ITERS: usize = 1_000;
        let lock = Arc::new(RwLock::new((0u64, 0u64)));
        let mut cos = Vec::new();
        let mut ths = Vec::new();
        for i in 0..WRITERS {
            let l = lock.clone();
            let body = move || {
                for k in 0..ITERS {
                    let mut g = l.write();
                    g.0 += 1;
                    if k.is_multiple_of(32) && goro::is_coroutine() {
                        goro::yield_now();
                    }
                    g.1 += 1;
                }
            };
            if i.is_multiple_of(2) {
                cos.push(goro::spawn(body));
            } else {
                ths.push(std::thread::spawn(body));
            }
        }
        for i in 0..READERS {
            let l = lock.clone();
            let body = move || {
                for k in 0..ITERS {
                    let g = l.read();
                    let a = g.0;
                    if k.is_multiple_of(32) && goro::is_coroutine() {
                        goro::yield_now();
                    }
                    assert_eq!(a, g.1, "a reader saw a half-done write");
                }
            };
            if i.is_multiple_of(2) {
                cos.push(goro::spawn(body));
            } else {
                ths.push(std::thread::spawn(body));
            }
        }
        for h in cos {
            h.join().unwrap();
        }
        for h in ths {
            h.join().unwrap();
        }
        let total = (WRITERS * ITERS) as u64;
        assert_eq!(*lock.read(), (total, total));
    });
}

#[test]
fn try_variants_and_ownership() {
    support::within("try variants and ownership", || {
        let mut lock = RwLock::new(1);
        {
            let r = lock.read();
            assert!(lock.try_write().is_none());
            assert!(lock.try_read().is_some());
            drop(r);
            let w = lock.try_write().expect("free");
            assert!(lock.try_read().is_none());
            assert!(lock.try_write().is_none());
            drop(w);
        }
        *lock.get_mut() += 1;
        assert_eq!(lock.into_inner(), 2);
    });
}

#[test]
fn panic_in_writer_releases_without_poison() {
    support::within("panic in writer releases without poison", || {
        let lock = Arc::new(RwLock::new(1));
        let l = lock.clone();
        let r = goro::go!(move || {
            let mut g = l.write();
            *g = 2;
            panic!("panic while write-locked");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*lock.read(), 2);
        *lock.write() = 3;
        assert_eq!(*lock.read(), 3);
    });
}
