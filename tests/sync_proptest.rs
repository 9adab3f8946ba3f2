//! Property tests: random interleavings of `lock`, `try_lock`, yields
//! inside and outside critical sections (and the same for `RwLock` readers
//! and writers) by several coroutines and a thread never let two holders
//! in at once, and every completed critical section is counted exactly
//! once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use goro::sync::{Mutex, RwLock};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `lock`, optionally yielding while holding it.
    Lock { yield_inside: bool },
    /// `try_lock`, optionally yielding while holding it if it succeeded.
    TryLock { yield_inside: bool },
    /// Yield outside any critical section.
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|yield_inside| Op::Lock { yield_inside }),
        2 => any::<bool>().prop_map(|yield_inside| Op::TryLock { yield_inside }),
        1 => Just(Op::Yield),
    ]
}

/// Scripts for 2 to 5 coroutines plus one OS thread.
fn scripts() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..40), 3..7)
}

fn yield_any() {
    if goro::is_coroutine() {
        goro::yield_now();
    } else {
        std::thread::yield_now();
    }
}

/// Runs one script; returns how many critical sections it completed.
fn run_mutex_script(ops: Vec<Op>, m: Arc<Mutex<u64>>, holders: Arc<AtomicUsize>) -> u64 {
    let mut done = 0;
    for op in ops {
        let (guard, yield_inside) = match op {
            Op::Lock { yield_inside } => (Some(m.lock()), yield_inside),
            Op::TryLock { yield_inside } => (m.try_lock(), yield_inside),
            Op::Yield => {
                yield_any();
                continue;
            }
        };
        let Some(mut g) = guard else { continue };
        assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
        let before = *g;
        if yield_inside {
            yield_any();
        }
        *g = before + 1;
        assert_eq!(holders.fetch_sub(1, Ordering::SeqCst), 1, "two holders");
        drop(g);
        done += 1;
    }
    done
}

#[derive(Clone, Copy, Debug)]
enum RwOp {
    Read { yield_inside: bool },
    Write { yield_inside: bool },
    TryRead,
    TryWrite,
}

fn rw_op() -> impl Strategy<Value = RwOp> {
    prop_oneof![
        3 => any::<bool>().prop_map(|yield_inside| RwOp::Read { yield_inside }),
        3 => any::<bool>().prop_map(|yield_inside| RwOp::Write { yield_inside }),
        1 => Just(RwOp::TryRead),
        1 => Just(RwOp::TryWrite),
    ]
}

/// `state` counts readers in its low bits and writers in bit 16 and up;
/// a writer must be alone, readers must see no writer.
const WRITER: usize = 1 << 16;

fn run_rw_script(ops: Vec<RwOp>, l: Arc<RwLock<u64>>, state: Arc<AtomicUsize>) -> u64 {
    let mut writes = 0;
    let read = |yield_inside: bool, g: goro::sync::RwLockReadGuard<'_, u64>| {
        let prev = state.fetch_add(1, Ordering::SeqCst);
        assert!(prev < WRITER, "reader inside with a writer");
        if yield_inside {
            yield_any();
        }
        state.fetch_sub(1, Ordering::SeqCst);
        drop(g);
    };
    let write = |yield_inside: bool, mut g: goro::sync::RwLockWriteGuard<'_, u64>| {
        assert_eq!(
            state.fetch_add(WRITER, Ordering::SeqCst),
            0,
            "writer not alone"
        );
        let v = *g;
        if yield_inside {
            yield_any();
        }
        *g = v + 1;
        state.fetch_sub(WRITER, Ordering::SeqCst);
    };
    for op in ops {
        match op {
            RwOp::Read { yield_inside } => read(yield_inside, l.read()),
            RwOp::TryRead => {
                if let Some(g) = l.try_read() {
                    read(false, g);
                }
            }
            RwOp::Write { yield_inside } => {
                write(yield_inside, l.write());
                writes += 1;
            }
            RwOp::TryWrite => {
                if let Some(g) = l.try_write() {
                    write(false, g);
                    writes += 1;
                }
            }
        }
    }
    writes
}

proptest! {
    // A case that hangs fails by the watchdog after `support::PATIENCE`;
    // shrinking stops after a minute so a hang cannot make it run for
    // hours.
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutex_never_admits_two_holders(mut scripts in scripts()) {
        support::within("random Mutex scripts in coroutines and a thread", move || {
            let m = Arc::new(Mutex::new(0u64));
            let holders = Arc::new(AtomicUsize::new(0));
            // The last script runs on a plain thread, the rest in coroutines.
            let thread_ops = scripts.pop().unwrap();
            let (tm, th) = (m.clone(), holders.clone());
            let thread = std::thread::spawn(move || run_mutex_script(thread_ops, tm, th));
            let cos: Vec<_> = scripts
                .into_iter()
                .map(|ops| {
                    let (m, h) = (m.clone(), holders.clone());
                    goro::spawn(move || run_mutex_script(ops, m, h))
                })
                .collect();
            let mut done = 0;
            for c in cos {
                done += c.join().map_err(|_| TestCaseError::fail("a coroutine panicked"))?;
            }
            done += thread.join().map_err(|_| TestCaseError::fail("the thread panicked"))?;
            prop_assert_eq!(*m.lock(), done);
            prop_assert_eq!(holders.load(Ordering::SeqCst), 0);
            Ok(())
        })?;
    }

    #[test]
    fn rwlock_writers_are_alone(
        mut scripts in prop::collection::vec(prop::collection::vec(rw_op(), 1..40), 3..7)
    ) {
        support::within("random RwLock scripts in coroutines and a thread", move || {
            let l = Arc::new(RwLock::new(0u64));
            let state = Arc::new(AtomicUsize::new(0));
            let thread_ops = scripts.pop().unwrap();
            let (tl, ts) = (l.clone(), state.clone());
            let thread = std::thread::spawn(move || run_rw_script(thread_ops, tl, ts));
            let cos: Vec<_> = scripts
                .into_iter()
                .map(|ops| {
                    let (l, s) = (l.clone(), state.clone());
                    goro::spawn(move || run_rw_script(ops, l, s))
                })
                .collect();
            let mut writes = 0;
            for c in cos {
                writes += c.join().map_err(|_| TestCaseError::fail("a coroutine panicked"))?;
            }
            writes += thread.join().map_err(|_| TestCaseError::fail("the thread panicked"))?;
            prop_assert_eq!(*l.read(), writes);
            prop_assert_eq!(state.load(Ordering::SeqCst), 0);
            Ok(())
        })?;
    }
}
