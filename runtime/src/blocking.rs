//! The blocking pool: threads for calls that would block a worker (DNS,
//! file IO, third-party blocking libraries).
//!
//! # Invariants
//!
//! 1. A coroutine that calls [`blocking`] stays parked until its job has
//!    run to completion (or panicked) on a pool thread, so the job may
//!    borrow from the coroutine's stack: the coroutine cannot return, and is
//!    never unwound, while it waits.
//! 2. The pool grows by one thread when a job arrives and no thread is
//!    idle (up to `MAX_THREADS`, beyond which jobs queue), and a thread
//!    exits after `KEEP_ALIVE` without work, so an idle runtime holds no
//!    blocking threads.
//! 3. `idle` counts waiting threads that no job has claimed. `submit`
//!    claims one (moving it from `idle` to `notified`) before it signals, so
//!    n jobs submitted at once never count on fewer than n threads; a woken
//!    thread consumes one `notified`, and a thread only exits on timeout if
//!    it was not claimed.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::park::{self, Unparker};
use crate::{context, scheduler};

/// Most blocking threads at once (Go's default thread limit is 10,000;
/// tokio's blocking pool defaults to 512; this matches tokio).
pub const MAX_THREADS: usize = 512;
/// How long an idle blocking thread waits for work before exiting.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    queue: VecDeque<Job>,
    /// Threads waiting for work that no `submit` has claimed yet.
    idle: usize,
    /// Wake-ups claimed by `submit` and not yet consumed by a thread.
    notified: usize,
    /// Jobs submitted since start (`Stats::blocking_jobs`).
    submitted: u64,
}

pub(crate) struct BlockingPool {
    state: Mutex<State>,
    cond: Condvar,
    threads: AtomicUsize,
}

impl BlockingPool {
    pub(crate) fn new() -> BlockingPool {
        BlockingPool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                idle: 0,
                notified: 0,
                submitted: 0,
            }),
            cond: Condvar::new(),
            threads: AtomicUsize::new(0),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads.load(Ordering::Relaxed)
    }

    /// For `stats()`: jobs queued and not yet taken by a thread, threads
    /// idle and unclaimed, and jobs submitted since start.
    pub(crate) fn metrics(&self) -> (usize, usize, u64) {
        let st = self.state.lock();
        (st.queue.len(), st.idle, st.submitted)
    }

    fn submit(&'static self, job: Job) {
        let mut st = self.state.lock();
        st.queue.push_back(job);
        st.submitted += 1;
        if st.idle > 0 {
            // Claim one idle thread for this job (invariant 3), so that two
            // submits never both count on the same idle thread.
            st.idle -= 1;
            st.notified += 1;
            self.cond.notify_one();
            return;
        }
        if self.threads.load(Ordering::Relaxed) >= MAX_THREADS {
            return;
        }
        self.threads.fetch_add(1, Ordering::Relaxed);
        drop(st);
        let spawned = std::thread::Builder::new()
            .name("goro-blocking".into())
            .spawn(move || self.thread_main());
        if spawned.is_err() {
            self.threads.fetch_sub(1, Ordering::Relaxed);
            // Run it here rather than lose it: only reachable when the OS
            // refuses threads.
            if let Some(job) = self.state.lock().queue.pop_back() {
                job();
            }
        }
    }

    fn thread_main(&'static self) {
        crate::diag::runtime_thread_started();
        let mut st = self.state.lock();
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = self.state.lock();
                continue;
            }
            st.idle += 1;
            loop {
                let timed_out = self.cond.wait_for(&mut st, KEEP_ALIVE).timed_out();
                if st.notified > 0 {
                    // A submit claimed us (it already took us off `idle`).
                    st.notified -= 1;
                    break;
                }
                if timed_out {
                    crate::diag::runtime_thread_exits();
                    st.idle -= 1;
                    self.threads.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                // Spurious wake-up: still idle, keep waiting.
            }
        }
    }
}

struct Slot<T> {
    done: AtomicBool,
    value: UnsafeCell<Option<std::thread::Result<T>>>,
    waiter: Unparker,
}

// SAFETY: `value` is written by the pool thread before `done` is set
// (Release) and read by the caller after it saw `done` (Acquire).
unsafe impl<T: Send> Sync for Slot<T> {}

/// Runs `f` on the blocking pool and parks the calling coroutine until it
/// returns; the worker runs other coroutines meanwhile. On a plain thread
/// `f` simply runs on the caller (blocking it is what the caller asked for).
///
/// A panic in `f` is resumed in the caller.
///
/// A coroutine on a shared stack ([`Builder::shared_stack`](crate::Builder::shared_stack))
/// keeps that stack to itself while `f` runs: coroutines whose frames were
/// copied off the same stack wait until `blocking` returns (new coroutines
/// take another shared stack). So `f` must not wait for such a coroutine;
/// a coroutine that does that, or blocks for long, is better spawned with
/// [`Builder::private_stack`](crate::Builder::private_stack).
///
/// ```
/// let h = goro::spawn(|| {
///     goro::blocking(|| std::fs::read_to_string("/proc/self/status").map(|s| s.len()))
/// });
/// assert!(h.join().unwrap().unwrap() > 0);
/// ```
#[track_caller]
pub fn blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let Some(task) = context::current_task() else {
        return f();
    };
    // The job may borrow this coroutine's frames while it parks: on a
    // shared stack they stay in place until it returns (`stack/shared.rs`,
    // "The invariant").
    let _lend = task.frames.lend();
    let pool = &scheduler::get().blocking;
    let slot = Arc::new(Slot {
        done: AtomicBool::new(false),
        value: UnsafeCell::new(None),
        waiter: park::current(),
    });
    let theirs = slot.clone();
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        // SAFETY: see `Slot`: we write before publishing `done`.
        unsafe { *theirs.value.get() = Some(r) };
        theirs.done.store(true, Ordering::Release);
        theirs.waiter.unpark();
    });
    // SAFETY: invariant 1: we park below until the job has run, so what it
    // borrows outlives it.
    let job: Job = unsafe { std::mem::transmute(job) };
    pool.submit(job);
    while !slot.done.load(Ordering::Acquire) {
        park::park_with(park::WaitKind::Blocking);
    }
    // SAFETY: `done` was observed with Acquire.
    match unsafe { (*slot.value.get()).take() }.expect("blocking job result") {
        Ok(v) => v,
        Err(p) => resume_unwind(p),
    }
}
