//! parking_lot parity for `goro::sync`: the same test bodies, written
//! against parking_lot's names, compile and pass with `use parking_lot`
//! and with `use goro::sync` (the `parity!` macro instantiates them once
//! per import), so a parking_lot user switches by changing the import.
//! Below the shared part, goro-only checks: coroutines, upgradable
//! readers queueing, and mapped guards in coroutines.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shared suite: `$lk` is the crate (or module) that provides
/// parking_lot's `Mutex`, `MutexGuard`, `MappedMutexGuard`, `RwLock` (and
/// its guards) and `Condvar`.
macro_rules! parity {
    ($name:ident, $($lk:tt)+) => {
        mod $name {
            use super::*;
            use $($lk)+::{
                Condvar, MappedMutexGuard, MappedRwLockReadGuard, MappedRwLockWriteGuard, Mutex,
                MutexGuard, RwLock, RwLockReadGuard, RwLockUpgradableReadGuard,
                RwLockWriteGuard,
            };

            struct Conn {
                name: String,
                sent: u64,
                tags: Vec<&'static str>,
            }

            fn conn() -> Conn {
                Conn { name: "a".into(), sent: 0, tags: vec!["x"] }
            }

            #[test]
            fn mutex_guard_map_and_try_map() {
                let m = Mutex::new(conn());
                {
                    let mut sent: MappedMutexGuard<'_, u64> =
                        MutexGuard::map(m.lock(), |c| &mut c.sent);
                    *sent += 5;
                    assert!(m.try_lock().is_none(), "a mapped guard holds the lock");
                    let mut sent = MappedMutexGuard::map(sent, |s| s);
                    *sent += 1;
                }
                assert_eq!(m.lock().sent, 6);
                let g = match MutexGuard::try_map(m.lock(), |c| c.tags.get_mut(3)) {
                    Ok(_) => panic!("no fourth tag"),
                    Err(g) => g,
                };
                assert_eq!(g.name, "a", "try_map gives the guard back");
                let tag = MutexGuard::try_map(g, |c| c.tags.first_mut()).ok().unwrap();
                assert_eq!(*tag, "x");
                let tag = MappedMutexGuard::try_map(tag, |_| None::<&mut u8>).err().unwrap();
                drop(tag);
                assert!(m.try_lock().is_some());
            }

            #[test]
            fn mutex_guard_unlocked_releases_for_the_closure() {
                let m = Mutex::new(1);
                let mut g = m.lock();
                let inside = MutexGuard::unlocked(&mut g, || m.try_lock().map(|v| *v));
                assert_eq!(inside, Some(1));
                assert!(m.try_lock().is_none(), "relocked after the closure");
            }

            #[test]
            fn map_panicking_releases_the_lock() {
                let m = Mutex::new(0);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = MutexGuard::map(m.lock(), |_| -> &mut i32 { panic!("in map") });
                }));
                assert!(r.is_err());
                assert!(m.try_lock().is_some());
            }

            #[test]
            fn rwlock_mapped_guards() {
                let l = RwLock::new(conn());
                {
                    let name: MappedRwLockReadGuard<'_, String> =
                        RwLockReadGuard::map(l.read(), |c| &c.name);
                    assert!(l.try_read().is_some(), "a mapped read guard shares");
                    assert!(l.try_write().is_none());
                    let len = MappedRwLockReadGuard::map(name, |n| n.as_bytes());
                    assert_eq!(len.len(), 1);
                }
                {
                    let mut tags: MappedRwLockWriteGuard<'_, Vec<&'static str>> =
                        RwLockWriteGuard::map(l.write(), |c| &mut c.tags);
                    tags.push("y");
                    assert!(l.try_read().is_none(), "a mapped write guard excludes");
                    let t = MappedRwLockWriteGuard::try_map(tags, |t| t.get_mut(7)).err().unwrap();
                    assert_eq!(t.len(), 2);
                }
                assert!(RwLockReadGuard::try_map(l.read(), |c| c.tags.get(5)).is_err());
                assert!(RwLockWriteGuard::try_map(l.write(), |c| c.tags.get_mut(1)).is_ok());
                assert_eq!(l.read().tags, ["x", "y"]);
            }

            #[test]
            fn write_guard_downgrade_keeps_writers_out() {
                let l = Arc::new(RwLock::new(0));
                let mut w = l.write();
                *w = 1;
                let r = RwLockWriteGuard::downgrade(w);
                assert_eq!(*r, 1);
                assert!(l.try_read().is_some());
                assert!(l.try_write().is_none());
                drop(r);
                assert!(l.try_write().is_some());
                let u = RwLockWriteGuard::downgrade_to_upgradable(l.write());
                assert!(l.try_upgradable_read().is_none());
                assert!(l.try_read().is_some());
                drop(u);
            }

            #[test]
            fn upgradable_read_protocol() {
                let l = RwLock::new(vec![1]);
                let u = l.upgradable_read();
                assert!(l.try_read().is_some(), "plain readers share with it");
                assert!(l.try_upgradable_read().is_none(), "one upgradable at a time");
                assert!(l.try_write().is_none());
                let r = l.read();
                let u = match RwLockUpgradableReadGuard::try_upgrade(u) {
                    Ok(_) => panic!("upgraded over a plain reader"),
                    Err(u) => u,
                };
                drop(r);
                let mut w = RwLockUpgradableReadGuard::try_upgrade(u).ok().unwrap();
                w.push(2);
                drop(w);
                let u = l.upgradable_read();
                let r = RwLockUpgradableReadGuard::downgrade(u);
                assert!(l.try_upgradable_read().is_some(), "downgrade frees the upgradable slot");
                drop(r);
                assert_eq!(*l.read(), [1, 2]);
                assert!(l.try_write().is_some());
            }

            /// `upgrade` waits for the readers that hold the lock, and no
            /// writer gets in between (the value read is the one upgraded).
            #[test]
            fn upgrade_waits_for_readers_not_writers() {
                support::within("upgrade", || {
                    let l = Arc::new(RwLock::new(0u64));
                    let r = l.read();
                    let l2 = l.clone();
                    let writer = std::thread::spawn(move || *l2.write() += 100);
                    let l3 = l.clone();
                    let upgrader = std::thread::spawn(move || {
                        let u = l3.upgradable_read();
                        let seen = *u;
                        let mut w = RwLockUpgradableReadGuard::upgrade(u);
                        assert_eq!(*w, seen, "a writer got in during the upgrade");
                        *w += 1;
                    });
                    // Let both queue up behind the reader, then release it.
                    std::thread::sleep(Duration::from_millis(5));
                    drop(r);
                    upgrader.join().unwrap();
                    writer.join().unwrap();
                    assert_eq!(*l.read(), 101);
                });
            }

            #[test]
            fn condvar_wait_until_and_notify_counts() {
                support::within("condvar", || {
                    let pair = Arc::new((Mutex::new(0usize), Condvar::new()));
                    let (m, cv) = &*pair;
                    assert!(!cv.notify_one(), "nobody waits");
                    assert_eq!(cv.notify_all(), 0);
                    let mut g = m.lock();
                    let deadline = Instant::now() + Duration::from_millis(3);
                    assert!(cv.wait_until(&mut g, deadline).timed_out());
                    assert!(Instant::now() >= deadline);
                    assert!(cv.wait_for(&mut g, Duration::from_millis(1)).timed_out());
                    let r = cv.wait_while_until(&mut g, |n| *n == 0, Instant::now());
                    assert!(r.timed_out());
                    let r = cv.wait_while_for(&mut g, |n| *n == 0, Duration::from_millis(1));
                    assert!(r.timed_out());
                    drop(g);

                    const WAITERS: usize = 3;
                    let hs: Vec<_> = (0..WAITERS)
                        .map(|_| {
                            let p = pair.clone();
                            std::thread::spawn(move || {
                                let (m, cv) = &*p;
                                let mut g = m.lock();
                                *g += 1;
                                let far = Instant::now() + support::PATIENCE;
                                !cv.wait_until(&mut g, far).timed_out()
                            })
                        })
                        .collect();
                    // Every waiter counted itself under the mutex before it
                    // waited; once all are counted and the mutex is free,
                    // all are queued.
                    support::eventually("waiters to queue", || *m.lock() == WAITERS);
                    assert!(cv.notify_one());
                    let mut woken = 1;
                    let deadline = Instant::now() + support::PATIENCE;
                    while woken < WAITERS {
                        woken += cv.notify_all();
                        assert!(Instant::now() < deadline);
                    }
                    assert_eq!(woken, WAITERS, "notify counts add up to the waiters");
                    for h in hs {
                        assert!(h.join().unwrap(), "a notified waiter reported a timeout");
                    }
                });
            }
        }
    };
}

parity!(with_parking_lot, parking_lot);
parity!(with_goro, goro::sync);

/// goro only: the same guards in coroutines, mixed with threads.
#[test]
fn mapped_and_upgradable_guards_in_coroutines() {
    use goro::sync::{MutexGuard, RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};
    support::within("coroutines", || {
        let m = Arc::new(goro::sync::Mutex::new((0u64, 0u64)));
        let l = Arc::new(RwLock::new(Vec::<u64>::new()));
        let hs: Vec<_> = (0..8u64)
            .map(|i| {
                let (m, l) = (m.clone(), l.clone());
                goro::go!(move || {
                    for _ in 0..50 {
                        *MutexGuard::map(m.lock(), |p| &mut p.0) += 1;
                        // Insert `i` once: look, then upgrade and insert.
                        let u = l.upgradable_read();
                        if !u.contains(&i) {
                            let mut w = RwLockUpgradableReadGuard::upgrade(u);
                            assert!(!w.contains(&i), "somebody wrote during the upgrade");
                            w.push(i);
                            let r = RwLockWriteGuard::downgrade(w);
                            assert!(r.contains(&i));
                        }
                        let _ = l.read().len();
                        goro::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(m.lock().0, 400);
        let mut v = l.read().clone();
        v.sort();
        assert_eq!(v, (0..8).collect::<Vec<_>>());
        assert!(!l.is_locked());
    });
}

/// goro only: upgradable readers queue one after another, with plain
/// readers and writers around them, and nobody is lost (every party
/// finishes under the watchdog) or let in wrongly (checked by counters).
#[test]
fn upgradable_readers_queue_with_readers_and_writers() {
    use goro::sync::{RwLock, RwLockUpgradableReadGuard};
    use std::sync::atomic::{AtomicUsize, Ordering};
    support::within("mixed upgradable", || {
        let l = Arc::new(RwLock::new(0u64));
        let upgradables = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for k in 0..12u64 {
            let (l, upgradables) = (l.clone(), upgradables.clone());
            hs.push(goro::go!(move || {
                for _ in 0..30 {
                    match k % 3 {
                        0 => {
                            let u = l.upgradable_read();
                            assert_eq!(upgradables.fetch_add(1, Ordering::SeqCst), 0);
                            let before = *u;
                            upgradables.fetch_sub(1, Ordering::SeqCst);
                            let mut w = RwLockUpgradableReadGuard::upgrade(u);
                            assert_eq!(*w, before);
                            *w += 1;
                        }
                        1 => *l.write() += 1,
                        _ => {
                            let _ = *l.read();
                        }
                    }
                    goro::yield_now();
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.read(), 8 * 30);
        assert!(!l.is_locked());
    });
}
