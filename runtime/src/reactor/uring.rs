//! The io_uring backend: completions instead of readiness. A main ring,
//! shared by the runtime, carries readiness polls and wake-ups; each
//! worker has an *op ring* of its own for its coroutines' data operations.
//! Only workers submit either kind.
//!
//! # What goes through the ring
//!
//! - **Data operations** of goro's stream sockets from a coroutine
//!   (`Registration::recv`, `send`, `accept`): an `IORING_OP_RECV`,
//!   `IORING_OP_SEND` or `IORING_OP_ACCEPT` whose completion wakes the
//!   coroutine. A read tries the system call first until one read of the
//!   fd has had to wait; from then on its reads go to the ring at once (a
//!   receive that finds data there completes during submission, with no
//!   system call of its own), until a read fills a buffer of 4 KiB or more
//!   (a bulk transfer), which sends the next one back to trying first. A
//!   write goes to the ring at once, so that a round of a busy worker turns
//!   many writes into one `io_uring_enter`. Measured on the echo benchmark:
//!   0.34 system calls per request for both sides, against 6 with epoll
//!   (`BENCHMARKS.md`).
//! - **Readiness** for everything else (plain threads, `connect`, UDP,
//!   `Registration::wait`, `goro_net::wait_readable` and the libc hooks): a
//!   one-shot `IORING_OP_POLL_ADD` for one direction, armed when the first
//!   waiter of that direction parks. Its completion bumps the direction's
//!   readiness sequence and wakes the waiters, exactly what an epoll edge
//!   does (the parent module's invariant 2). A one-shot poll checks the fd's
//!   state when it is armed, so readiness that arrived between the failed
//!   system call and the arming is seen: no edge is lost.
//! - **The wake-up eventfd**, as a one-shot poll re-armed after each drain
//!   (the order of `wake_latch.rs`: drain, clear, then re-arm; the re-armed
//!   poll sees a write that landed after the drain).
//!
//! # Submission and completion: one `io_uring_enter` per round
//!
//! 1. Pushing an entry takes the submission lock, writes the entry and
//!    publishes the queue's tail; it makes no system call and marks the
//!    ring's submission gate dirty. A thread that is not a worker then
//!    wakes the reactor owner (the eventfd), whose wait submits the entry.
//! 2. A worker flushes (`round`): when its local queues run dry or every
//!    `ROUND_TASKS` tasks, it submits its op ring and the main ring (one
//!    `io_uring_enter` each that has entries, everything queued there by
//!    every thread), then reaps both completion queues, which are shared
//!    memory (no system call), where no other thread is reaping.
//! 3. The idle worker that owns the reactor submits and waits in one
//!    `io_uring_enter` (`min_complete` 1, with the nearest timer as its
//!    timeout), then reaps. A completion for an entry submitted by any
//!    thread wakes it. Because step 2 reaps too, a busy worker may consume
//!    the eventfd's completion that was to wake the owner; the owner
//!    therefore waits only if the wake-up latch counted no drain since its
//!    last look at the queues (`wake_latch.rs`).
//!
//! # A ring per worker
//!
//! The kernel serialises everything that touches one ring under that
//! ring's mutex: every `io_uring_enter` that submits, and the task work in
//! which a request that had to wait (a receive on an empty socket)
//! completes, on the thread that submitted it. With one ring for both
//! workers of the echo benchmark, the workers spent about 38% of their
//! time spinning on that mutex in the kernel (`mutex_spin_on_owner`,
//! `perf record -g`), and io_uring lost to epoll. So data operations
//! (receive, send, accept) go to the op ring of the worker the coroutine
//! runs on: its submissions, its task work and its reaping touch no other
//! worker's ring. The coroutine is pinned to that worker (a started
//! coroutine never leaves it, unless `Builder::migratable`), so the
//! worker that reaps a completion is the one that runs its waiter.
//!
//! 4. A worker submits and reaps its own op ring in its rounds (step 2),
//!    and reaps it while it searches for work before sleeping.
//! 5. A worker about to sleep with operations in flight on its op ring
//!    makes sure a one-shot poll of that ring's fd is armed on the main
//!    ring (the *watch*), which the reactor owner waits on (and busy
//!    workers reap: an armed watch counts in the main ring's `inflight`).
//!    The watch fires when a completion lands; whoever reaps it reaps the
//!    op ring (unparking the waiters, which wakes their worker) and arms
//!    the watch again if that worker still sleeps with operations in
//!    flight. `ring_watch.rs` holds the protocol and its model check: a
//!    sleeping worker's ring always has exactly one watch.
//! 6. Entries on an op ring come only from workers: from the coroutines
//!    of its worker, and cancels of a migratable coroutine that moved
//!    away, which that other worker submits at once (the owner may be
//!    asleep).
//!
//! # One submitter at a time
//!
//! Busy workers submit a ring through a user-space gate
//! (`submit_gate.rs`): a worker that finds another submitting leaves its
//! entries to it instead of spinning on the ring's kernel mutex, and the
//! submitter goes round again for entries marked meanwhile, so none is
//! left queued with nobody to submit it (model-checked there).
//!
//! # Which threads enter the ring: workers only
//!
//! The kernel ties every request to the task whose `io_uring_enter`
//! submitted it, not to the thread that wrote the entry: a request that has
//! to wait (a receive on an empty socket, a poll) later runs its wake-up
//! work on that task, and once the task has exited it completes with
//! `-ECANCELED` instead. One `io_uring_enter` submits every queued entry,
//! whoever pushed it; so a plain thread that submitted would adopt the
//! coroutines' operations queued beside its own, and when it exited (a
//! test's thread, a blocking-pool thread retiring) their receives would
//! fail with `ECANCELED`, a spurious error that made a server drop its
//! connection with unread data (a reset). Workers live as long as the
//! runtime, so only they submit: in a round, in the owner's wait, or when
//! the queue is full. Any other thread pushes and wakes the owner, paying
//! an eventfd write (one `write`, the same system call count as submitting)
//! and the owner's wake-up as latency; the same holds for its poll
//! removals when a socket closes off the workers.
//!
//! # Buffers, cancellation and timeouts: why this is sound
//!
//! The kernel may write into an operation's buffer at any time until it
//! posts the operation's completion, so that buffer must stay valid and
//! untouched until the completion has been *seen*, whatever happens to the
//! coroutine that asked. Goro never gives the kernel the caller's buffer:
//!
//! - Each operation owns a heap buffer (`Op::buf`, at most `MAX_OP_BUF`
//!   bytes) inside an `Arc<Op>`. The submitted entry's `user_data` is one
//!   strong reference, made by `Arc::into_raw` when the entry is pushed and
//!   given back by `Arc::from_raw` when its (single: no multishot data
//!   operation is used) completion is reaped. So the buffer lives at least
//!   until the completion arrives, even if the waiter is gone.
//! - A receive copies the completed bytes into the caller's buffer after
//!   the waiter has seen `DONE` (stored with `Release` after the reaper
//!   read the completion); a send copies the caller's bytes in before the
//!   push. The caller's slice is therefore only touched by the coroutine
//!   itself, while it runs, on its own stack or heap.
//! - This is also what keeps the backend sound for coroutines on a
//!   **shared stack** (`Builder::shared_stack`): while such a coroutine is
//!   parked its frames are copied away and the stack holds another
//!   coroutine's frames, so a buffer on its stack is *not* at its address
//!   while the operation is in flight. Lending the kernel that address
//!   would let it write into a stranger's frames. No address of a
//!   coroutine's stack is ever put in an entry (accept's address buffer is
//!   in the `Op` too). Shared-stack coroutines do not use the op rings at
//!   all today (`Reactor::ring`): they wait for readiness, so that a parked
//!   one holds no operation buffer either.
//! - **Timeouts** are the waiter's: it parks with the deadline, and when
//!   that passes it pushes `IORING_OP_ASYNC_CANCEL` for its operation and
//!   keeps waiting, without a deadline, for the operation's own completion
//!   (cancellation completes at once for an operation that has not
//!   started). If the operation finished before the cancel landed, its
//!   result is returned as if no timeout had passed: bytes that a receive
//!   took from the socket, or a connection that an accept took, are never
//!   dropped on the floor. Only `-ECANCELED` turns into `TimedOut`.
//! - **A waiter that goes away** (a coroutine unwound while parked, at
//!   shutdown or by a panic) leaves its `InFlight` guard's drop behind: it
//!   flips the state `PENDING -> ORPHANED` and pushes a cancel. The reaper
//!   then frees the buffer when the completion comes, and closes the fd of
//!   an accept that completed for nobody. Exactly one of the two sides
//!   wins the state's compare-exchange, so the result has one owner.
//! - The memory held by buffers in flight is bounded: an operation first
//!   reserves its bytes against `MAX_BUFFERED` (4 MiB); past it the
//!   operation uses readiness (a poll through the ring, then the system
//!   call) and holds no buffer. So a gateway whose 100k connections park in
//!   `read` holds at most `MAX_BUFFERED` bytes of receive buffers, not 100k
//!   of them.
//!
//! Rejected: *lending the caller's slice* (no copy). The borrow does last
//! across the park, since `read(&mut self, buf)` cannot return before the
//! completion, but not across an unwind (the frame is freed while the
//! kernel may still write), and not at all on a shared stack. tokio-uring
//! and monoio take owned buffers for the same reason; goro keeps std's
//! `Read`/`Write` signatures and pays a copy of at most the bytes moved.
//! *Provided buffer rings* would remove the per-connection buffer of idle
//! readers but add a buffer-return protocol; the bound above was simpler.
//!
//! # Fallback
//!
//! `Uring::new` fails when `io_uring_setup` is refused (seccomp in
//! containers, `kernel.io_uring_disabled`, kernels before 5.11 that lack the
//! extended wait arguments); the reactor then uses epoll, and
//! `goro::stats().io_backend` says which one runs. `GORO_IO_URING_FAIL`
//! (any value) makes `Uring::new` fail as a refused setup would, which is
//! how `tests/net_io_backend.rs` tests the fallback.

use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};
use parking_lot::Mutex;

use super::cvt;
use super::ring_watch::RingWatch;
use super::submit_gate::SubmitGate;
use crate::park::{self, Unparker};
use crate::wake_latch::WakeLatch;

/// `user_data` tags, in the low 3 bits (an `Op` is 8-aligned, so its
/// address has them clear).
const TAG_OP: u64 = 0;
const TAG_POLL_READ: u64 = 1;
const TAG_POLL_WRITE: u64 = 2;
const TAG_WAKE: u64 = 3;
/// Completions of cancels and poll removals: nothing to do.
const TAG_IGNORE: u64 = 4;
/// A poll of a worker's op ring (its index above the tag) fired: the
/// ring has completions and its worker may be asleep.
const TAG_RING: u64 = 5;
const TAG_MASK: u64 = 7;

/// Submission queue entries. A worker flushes every round, so this bounds
/// the entries queued in one round; a full queue is submitted on the spot.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: room for many rounds of completions before
/// the kernel has to keep overflow on its side (it does, `IORING_FEAT_NODROP`).
const CQ_ENTRIES: u32 = 8192;
/// The same for each worker's op ring, which holds only its coroutines'
/// data operations.
const OP_SQ_ENTRIES: u32 = 512;
const OP_CQ_ENTRIES: u32 = 4096;
/// Largest buffer of one operation: a read of more returns a short count
/// (allowed by `Read`), a write of more a short write (`write_all` loops).
pub(super) const MAX_OP_BUF: usize = 64 << 10;
/// Most bytes of operation buffers in flight at once (see the module docs).
/// Small on purpose: a push gateway's 20k connections parked in reads of
/// 8 KiB buffers would otherwise add a buffer each to the memory of an
/// idle connection (measured: 6,152 B RSS per connection with 32 MiB here,
/// 5,507 on epoll). 4 MiB still covers 512 reads of 8 KiB or 64 of 64 KiB
/// in flight at once, and readers past it wait for readiness instead.
const MAX_BUFFERED: usize = 4 << 20;

static BUFFERED: AtomicUsize = AtomicUsize::new(0);

pub(super) struct Uring {
    ring: IoUring,
    /// Exclusive access to the submission queue's user side.
    sq: Mutex<()>,
    /// Exclusive access to the completion queue (the reaper).
    cq: Mutex<()>,
    /// Entries pushed since the last submission, and who submits them
    /// (`submit_gate.rs`).
    gate: SubmitGate,
    /// Watches of op rings armed here (busy workers reap only when some
    /// are).
    inflight: AtomicUsize,
    wake: OwnedFd,
    latch: WakeLatch,
    /// One ring per worker for its coroutines' data operations (module
    /// docs, "a ring per worker").
    ops: Box<[OpRing]>,
}

/// A worker's ring of data operations.
pub(super) struct OpRing {
    ring: IoUring,
    sq: Mutex<()>,
    cq: Mutex<()>,
    gate: SubmitGate,
    /// Data operations in flight (the worker reaps only when some are).
    inflight: AtomicUsize,
    /// The poll of this ring's fd on the main ring (`ring_watch.rs`).
    watch: RingWatch,
    /// This ring's worker.
    index: usize,
}

const PENDING: u8 = 0;
const DONE: u8 = 1;
const ORPHANED: u8 = 2;

/// An op's ownership word: `PENDING` until exactly one of the reaper's
/// [`Claim::complete`] and the departing waiter's [`Claim::abandon`] wins
/// its compare-exchange, which decides who owns the result (module docs,
/// "a waiter that goes away"; model-checked below).
pub(super) struct Claim(crate::loom::sync::atomic::AtomicU8);

impl Claim {
    fn new() -> Claim {
        Claim(crate::loom::sync::atomic::AtomicU8::new(PENDING))
    }

    /// The reaper, after storing the result: true if the waiter will take
    /// it, false if the waiter left (the reaper disposes of it).
    fn complete(&self) -> bool {
        use crate::loom::sync::atomic::Ordering;
        self.0
            .compare_exchange(PENDING, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A waiter that leaves without the result: true if the reaper will
    /// dispose of it, false if it is already there (the waiter does).
    fn abandon(&self) -> bool {
        use crate::loom::sync::atomic::Ordering;
        self.0
            .compare_exchange(PENDING, ORPHANED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the result is there (Acquire: the reaper's stores before
    /// `complete` are visible).
    fn is_done(&self) -> bool {
        use crate::loom::sync::atomic::Ordering;
        self.0.load(Ordering::Acquire) == DONE
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Recv,
    Send,
    Accept,
}

/// One data operation in flight (see the module docs).
struct Op {
    state: Claim,
    res: AtomicI32,
    kind: Kind,
    waiter: Unparker,
    /// Bytes reserved against `MAX_BUFFERED`.
    reserved: usize,
    buf: UnsafeCell<Box<[MaybeUninit<u8>]>>,
    addr: UnsafeCell<(libc::sockaddr_storage, libc::socklen_t)>,
}

// SAFETY: `buf` and `addr` are written by the kernel only while the op is
// PENDING, and by the waiter only before it pushes the entry (send's
// bytes); they are read only by the waiter after it has seen DONE with
// Acquire, which the reaper stored with Release after the completion told
// it the kernel is done. Everything else is atomics or immutable.
unsafe impl Send for Op {}
// SAFETY: as for Send.
unsafe impl Sync for Op {}

impl Drop for Op {
    fn drop(&mut self) {
        BUFFERED.fetch_sub(self.reserved, Ordering::Relaxed);
    }
}

impl Op {
    /// A new op with a buffer of `len` bytes, or `None` if the buffer
    /// budget is spent.
    fn new(kind: Kind, len: usize) -> Option<Arc<Op>> {
        if BUFFERED.fetch_add(len, Ordering::Relaxed) + len > MAX_BUFFERED {
            BUFFERED.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        Some(Arc::new(Op {
            state: Claim::new(),
            res: AtomicI32::new(0),
            kind,
            waiter: park::current(),
            reserved: len,
            buf: UnsafeCell::new(Box::new_uninit_slice(len)),
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            addr: UnsafeCell::new((unsafe { std::mem::zeroed() }, 0)),
        }))
    }

    fn buf_ptr(&self) -> *mut u8 {
        // SAFETY: only the address is taken; see `Send for Op`.
        unsafe { (*self.buf.get()).as_mut_ptr().cast() }
    }

    /// The reaper's side: the kernel is done with the op.
    fn complete(&self, res: i32) {
        self.res.store(res, Ordering::Relaxed);
        match self.state.complete() {
            true => self.waiter.unpark(),
            false => {
                // Orphaned: nobody will take the result.
                if self.kind == Kind::Accept && res >= 0 {
                    // SAFETY: the accepted fd is ours alone; nobody else
                    // ever saw its number.
                    drop(unsafe { OwnedFd::from_raw_fd(res) });
                }
            }
        }
    }
}

/// The waiter's hold on an op in flight; its drop orphans an op whose
/// completion has not been seen (module docs, "a waiter that goes away").
struct InFlight<'a> {
    ring: &'a OpRing,
    op: Arc<Op>,
    user_data: u64,
    taken: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        match self.op.state.abandon() {
            true => self.ring.cancel(self.user_data),
            false => {
                // DONE but not taken: an accepted fd would leak.
                let res = self.op.res.load(Ordering::Relaxed);
                if self.op.kind == Kind::Accept && res >= 0 {
                    // SAFETY: as in `Op::complete`.
                    drop(unsafe { OwnedFd::from_raw_fd(res) });
                }
            }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "goro: IO operation timed out")
}

/// Writes `e` into `ring`'s submission queue under its lock `sq`; false
/// (the lock released) if the queue is full.
fn push_entry(ring: &IoUring, sq: &Mutex<()>, e: &squeue::Entry) -> bool {
    let _g = sq.lock();
    // SAFETY: the submission lock gives exclusive access to the queue's
    // user side.
    let mut q = unsafe { ring.submission_shared() };
    // SAFETY: every entry goro pushes points only at memory that outlives
    // its operation: an `Op`'s heap buffers, kept alive by the reference in
    // `user_data` until the completion is reaped, or at nothing (polls,
    // cancels, removals).
    if unsafe { q.push(e) }.is_ok() {
        return true;
    }
    q.sync();
    false
}

/// A worker's op ring of `sq` entries (and `cq` completions) whose task
/// work does not interrupt the worker (`IORING_SETUP_COOP_TASKRUN`, Linux
/// 5.19), or, where the kernel refuses that flag, one that does.
///
/// Task work is how a request that had to wait (a receive on an empty
/// socket) finishes: the kernel queues it to the thread that submitted the
/// request. By default, queueing it sends that thread an inter-processor
/// interrupt if it is running, and every such interrupt takes the
/// process's signal lock on its way back to user space (`get_signal`): on
/// the kv_server benchmark with one worker that was about a fifth of the
/// worker's samples, most of it spinning on that lock (BENCHMARKS.md,
/// "Cooperative task work"). With the flag the work waits for the
/// thread's next entry into the kernel, and no later than its next timer
/// tick. That is safe for op rings because of who is waiting:
///
/// - The requests of an op ring are its worker's coroutines' (module
///   docs, step 6), and only that worker runs them. While it runs
///   anything else they could not run anyway; when its queues run dry its
///   round submits or, if the ring's `IORING_SQ_TASKRUN` flag says task
///   work is pending, enters the kernel to run it ([`needs_enter`], also
///   in the search before sleeping).
/// - A worker that sleeps is still woken for it: `TWA_SIGNAL_NO_IPI` skips
///   only the interrupt of a *running* thread, and wakes an interruptible
///   sleep, which both of a worker's sleeps are (`futex` in
///   `thread::park`, `io_uring_enter` waiting on the main ring).
///
/// The main ring keeps interrupting: its polls are submitted by whichever
/// worker flushes the queue (`submit_gate.rs`), often for another
/// worker's waiter, and a busy submitter should not hold that wake-up.
/// The kernel keeps one task-work list per thread, though, and notifies
/// only when the list goes from empty to not, so a main-ring completion
/// queued behind a pending op-ring one waits with it: for no longer than
/// the submitter's next system call (its next round, when its queues run
/// dry) or its next timer tick, the same bound as a coroutine that runs
/// without switching puts on its worker's other coroutines. (Cancels that
/// another worker submits for a migratable coroutine that moved away,
/// step 6, put task work on that other worker the same way.)
fn op_ring(sq: u32, cq: u32) -> io::Result<IoUring> {
    match IoUring::builder()
        .setup_cqsize(cq)
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(sq)
    {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(cq).build(sq)
        }
        r => r,
    }
}

/// Whether `ring` has task work pending that only an entry into the kernel
/// runs (see [`op_ring`]); always false on a kernel without the flag,
/// and false while another thread holds the submission lock `sq` (it is
/// pushing; the next round looks again).
fn needs_enter(ring: &IoUring, sq: &Mutex<()>) -> bool {
    let Some(_g) = sq.try_lock() else {
        return false;
    };
    // SAFETY: the submission lock gives exclusive access to the queue's
    // user side. (The view stores the tail back when dropped, so it must
    // never be made without the lock: it would undo a concurrent push.)
    unsafe { ring.submission_shared() }.taskrun()
}

/// A worker's submission of a full queue, on the spot.
fn submit_full(ring: &IoUring) {
    if let Err(err) = ring.submit()
        && err.raw_os_error() == Some(libc::EBUSY)
    {
        // Too many completions pending: let a reaper catch up.
        std::thread::yield_now();
    }
}

impl Uring {
    pub(super) fn new(workers: usize) -> io::Result<Uring> {
        if std::env::var_os("GORO_IO_URING_FAIL").is_some() {
            // A forced refusal, for testing the fallback.
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        // The main ring interrupts as usual (see `op_ring`).
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        let ops = (0..workers.max(1))
            .map(|index| {
                Ok(OpRing {
                    ring: op_ring(OP_SQ_ENTRIES, OP_CQ_ENTRIES)?,
                    sq: Mutex::new(()),
                    cq: Mutex::new(()),
                    gate: SubmitGate::new(),
                    inflight: AtomicUsize::new(0),
                    watch: RingWatch::new(),
                    index,
                })
            })
            .collect::<io::Result<Box<[OpRing]>>>()?;
        let p = ring.params();
        if !p.is_feature_ext_arg() || !p.is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without EXT_ARG/NODROP (kernel before 5.11)",
            ));
        }
        // SAFETY: a plain system call; the fd is checked and then owned.
        let wake = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        };
        let u = Uring {
            ring,
            sq: Mutex::new(()),
            cq: Mutex::new(()),
            gate: SubmitGate::new(),
            inflight: AtomicUsize::new(0),
            wake,
            latch: WakeLatch::new(),
            ops,
        };
        // Queued, not submitted: the first worker's round or wait submits
        // it (only workers enter the ring).
        u.arm_wake();
        Ok(u)
    }

    fn arm_wake(&self) {
        let e = opcode::PollAdd::new(types::Fd(self.wake.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(TAG_WAKE);
        self.push(e);
    }

    /// Step 1 of the module docs: queues `e`. Only a worker ever enters
    /// the ring (module docs, "which threads enter the ring"): a full
    /// queue is submitted on the spot by a worker, and waited out by any
    /// other thread, which wakes the reactor owner to submit for it.
    fn push(&self, e: squeue::Entry) {
        let worker = crate::context::worker().is_some();
        while !push_entry(&self.ring, &self.sq, &e) {
            if worker {
                submit_full(&self.ring);
                continue;
            }
            // Not a worker: the lock is released, so that workers can push
            // and submit meanwhile.
            self.gate.mark();
            self.notify();
            std::thread::yield_now();
        }
        self.gate.mark();
        if !worker {
            // Nobody may be about to flush: wake the reactor owner, whose
            // next wait submits the entry.
            self.notify();
        }
    }

    /// Submits whatever is queued, if anything is, unless another worker
    /// is submitting right now: then that one submits it (see the module
    /// docs, "one submitter at a time").
    pub(super) fn submit(&self) {
        self.gate.submit(|| self.ring.submit().is_ok());
    }

    pub(super) fn notify(&self) {
        self.latch.notify(|| {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        });
    }

    /// The wake-up latch's count of drains, for [`Uring::poll`]'s `since`.
    pub(super) fn wake_epoch(&self) -> usize {
        self.latch.epoch()
    }

    /// Whether busy worker `index` has anything to do in `round`.
    #[inline]
    pub(super) fn wants_round(&self, index: usize) -> bool {
        self.gate.is_dirty()
            || self.inflight.load(Ordering::Relaxed) > 0
            || self.ops.get(index).is_some_and(OpRing::wants_round)
    }

    /// The op ring of the calling worker (`None` off the workers).
    pub(super) fn op_ring(&self) -> Option<&OpRing> {
        let w = crate::context::worker()?;
        self.ops.get(w.index)
    }

    /// Reaps worker `index`'s op ring without waiting (a worker that
    /// searches for work before it sleeps).
    pub(super) fn reap_own(&self, index: usize) -> usize {
        self.ops
            .get(index)
            .filter(|r| r.inflight.load(Ordering::Relaxed) > 0)
            .map_or(0, |r| {
                r.run_task_work();
                r.reap()
            })
    }

    /// Worker `index` is about to sleep (its sleep state published): if
    /// operations of its ring are in flight, make sure a poll of that ring
    /// is armed on the main ring, so that their completions wake whoever
    /// waits there (module docs, "a ring per worker"). The caller submits
    /// the main ring next (the reactor owner's wait), or this does.
    pub(super) fn before_sleep(&self, index: usize, owner: bool) {
        let Some(r) = self.ops.get(index) else {
            return;
        };
        r.submit();
        if r.inflight.load(Ordering::Relaxed) > 0 {
            r.reap();
        }
        if r.watch.sleeps(r.inflight.load(Ordering::Relaxed) > 0) {
            self.arm_watch(r);
            if !owner {
                self.submit();
            }
        }
    }

    /// Worker `index` woke up (see `before_sleep`).
    pub(super) fn after_sleep(&self, index: usize) {
        if let Some(r) = self.ops.get(index) {
            r.watch.wakes();
        }
    }

    /// Arms the poll of op ring `r` (its `RingWatch` said to).
    fn arm_watch(&self, r: &OpRing) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.push(
            opcode::PollAdd::new(types::Fd(r.ring.as_raw_fd()), libc::POLLIN as u32)
                .build()
                .user_data(((r.index as u64) << 3) | TAG_RING),
        );
    }

    /// A poll of op ring `index` fired: reap it, and watch it again while
    /// its worker sleeps with operations in flight (`ring_watch.rs`).
    fn ring_fired(&self, index: usize) {
        let Some(r) = self.ops.get(index) else {
            return;
        };
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        r.watch.fired();
        r.reap();
        if r.watch.rearm(r.inflight.load(Ordering::Relaxed) > 0) {
            self.arm_watch(r);
        }
    }

    /// Arms a one-shot poll of `fd` for one direction under `key`.
    pub(super) fn arm_poll(&self, fd: RawFd, key: u64, writable: bool) {
        let (events, tag) = if writable {
            (libc::POLLOUT, TAG_POLL_WRITE)
        } else {
            (
                libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP,
                TAG_POLL_READ,
            )
        };
        self.push(
            opcode::PollAdd::new(types::Fd(fd), events as u32)
                .build()
                .user_data((key << 3) | tag),
        );
    }

    /// Removes the armed polls of `key` (a registration going away). A
    /// worker submits at once: the poll holds a reference to the file, so
    /// the socket's close takes effect only once the removal is processed.
    /// Another thread's removal waits for the reactor owner, which `push`
    /// wakes.
    pub(super) fn disarm(&self, key: u64, read: bool, write: bool) {
        for (armed, tag) in [(read, TAG_POLL_READ), (write, TAG_POLL_WRITE)] {
            if armed {
                self.push(
                    opcode::PollRemove::new((key << 3) | tag)
                        .build()
                        .user_data(TAG_IGNORE),
                );
            }
        }
        if (read || write) && crate::context::worker().is_some() {
            self.submit();
        }
    }

    /// Submits and waits up to `timeout` (`Some(ZERO)`: no wait) for
    /// completions, then reaps them (steps 2 and 3). `None` if another
    /// thread is reaping.
    ///
    /// `since` is the wake-up latch's epoch the caller read before its
    /// last look at the queues (`wake_epoch`): if a drain happened since,
    /// another thread may have consumed a wake-up meant for the caller, so
    /// this does not wait (`wake_latch.rs`, "a drain by someone else").
    pub(super) fn poll(
        &self,
        timeout: Option<Duration>,
        since: Option<usize>,
        deliver: impl FnMut(u64, bool),
    ) -> Option<usize> {
        let cq = self.cq.try_lock();
        // Every drain holds `cq`, so with it held the count is final for
        // this wait.
        let timeout = match since {
            Some(e) if cq.is_some() && self.latch.drained_since(e) => Some(Duration::ZERO),
            _ => timeout,
        };
        // A read-modify-write, not a store: a pusher publishes the queue's
        // tail and then marks the gate (Release). Taking the mark with
        // Acquire makes that tail visible to the submission below, and if
        // this comes first in the gate's order a mark made after it
        // survives. A plain store gives neither: the tail read may pass it,
        // and it may overwrite a mark set for an entry that the submission
        // then misses.
        self.gate.take();
        let r = match (timeout, &cq) {
            (_, None) | (Some(Duration::ZERO), _) => self.ring.submit(),
            (Some(d), Some(_)) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            (None, Some(_)) => self.ring.submit_and_wait(1),
        };
        if let Err(e) = r
            && !matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR))
        {
            // EBUSY and friends: what was not submitted goes next round.
            self.gate.mark();
        }
        let _cq = cq?;
        Some(self.reap(deliver))
    }

    /// Handles every completion in the queue; the caller holds `cq`.
    fn reap(&self, mut deliver: impl FnMut(u64, bool)) -> usize {
        let mut n = 0;
        // SAFETY: the caller holds the completion lock, so this is the only
        // view of the completion queue.
        let mut cq = unsafe { self.ring.completion_shared() };
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let res = cqe.result();
            match ud & TAG_MASK {
                TAG_RING => {
                    debug_assert!(res >= 0 || res == -libc::ECANCELED);
                    self.ring_fired((ud >> 3) as usize);
                    n += 1;
                }
                TAG_POLL_READ | TAG_POLL_WRITE => {
                    // A removed poll's `-ECANCELED` finds its slot gone
                    // (the key's generation), like any other stale event.
                    deliver(ud >> 3, ud & TAG_MASK == TAG_POLL_WRITE);
                    n += 1;
                }
                TAG_WAKE => {
                    self.latch.drained(|| {
                        let mut buf = 0u64;
                        // SAFETY: reading 8 bytes into a live u64 from our
                        // eventfd.
                        unsafe {
                            libc::read(self.wake.as_raw_fd(), (&mut buf as *mut u64).cast(), 8)
                        };
                    });
                    self.arm_wake();
                }
                _ => {}
            }
        }
        n
    }

    /// Busy worker `index`'s round (step 2): submit its op ring and the
    /// main ring, then reap each if nobody is.
    pub(super) fn round(&self, index: usize, deliver: impl FnMut(u64, bool)) {
        if let Some(r) = self.ops.get(index) {
            r.round();
        }
        if self.gate.is_dirty() {
            self.submit();
        }
        if let Some(_cq) = self.cq.try_lock() {
            self.reap(deliver);
        }
    }
}

impl OpRing {
    /// Queues `e` on this worker's ring. Only workers push here (data
    /// operations are a coroutine's): the ring's own worker submits in its
    /// next round; any other worker (a migratable coroutine's cancel)
    /// submits at once, since the owner may be asleep.
    fn push(&self, e: squeue::Entry) {
        while !push_entry(&self.ring, &self.sq, &e) {
            submit_full(&self.ring);
        }
        self.gate.mark();
        let here = crate::context::worker().map(|w| w.index);
        debug_assert!(here.is_some(), "goro: an op ring pushed off the workers");
        if here != Some(self.index) {
            self.submit();
        }
    }

    /// Submits what is queued, as `Uring::submit` does.
    fn submit(&self) {
        self.gate.submit(|| self.ring.submit().is_ok());
    }

    /// Whether its worker's round has anything to do here.
    fn wants_round(&self) -> bool {
        self.gate.is_dirty() || self.inflight.load(Ordering::Relaxed) > 0
    }

    /// Submits, then reaps if nobody else is; returns completions reaped.
    fn round(&self) -> usize {
        self.submit();
        self.run_task_work();
        self.reap()
    }

    /// Enters the kernel if completions of this ring wait there as task
    /// work (see [`op_ring`]). A submission in the same round ran it
    /// already, so usually this only takes the uncontended submission
    /// lock and reads the ring's flags.
    fn run_task_work(&self) {
        if needs_enter(&self.ring, &self.sq) {
            let _ = self.ring.submitter().submit();
        }
    }

    /// Completes every operation in the completion queue, unless another
    /// thread is reaping it.
    fn reap(&self) -> usize {
        let Some(_cq) = self.cq.try_lock() else {
            return 0;
        };
        let mut n = 0;
        // SAFETY: the completion lock is held, so this is the only view of
        // the completion queue.
        let mut cq = unsafe { self.ring.completion_shared() };
        for cqe in &mut cq {
            let ud = cqe.user_data();
            if ud & TAG_MASK == TAG_OP {
                // SAFETY: as in `Uring::reap`: the reference made by
                // `Arc::into_raw` in `start`, given back exactly once.
                let op = unsafe { Arc::from_raw(ud as *const Op) };
                self.inflight.fetch_sub(1, Ordering::Relaxed);
                op.complete(cqe.result());
                n += 1;
            }
        }
        n
    }

    fn cancel(&self, user_data: u64) {
        self.push(
            opcode::AsyncCancel::new(user_data)
                .build()
                .user_data(TAG_IGNORE),
        );
    }

    fn start(&self, op: Arc<Op>, e: squeue::Entry) -> InFlight<'_> {
        let user_data = Arc::into_raw(op.clone()) as u64;
        debug_assert_eq!(user_data & TAG_MASK, 0);
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.push(e.user_data(user_data));
        InFlight {
            ring: self,
            op,
            user_data,
            taken: false,
        }
    }

    /// Parks until the op completes; a deadline that passes cancels it
    /// through the ring and waits for its completion all the same.
    #[track_caller]
    fn finish(
        &self,
        f: &mut InFlight<'_>,
        mut deadline: Option<Instant>,
        kind: park::WaitKind,
    ) -> io::Result<usize> {
        let mut cancelled = false;
        while !f.op.state.is_done() {
            match deadline {
                Some(d) if crate::testing::now() >= d => {
                    self.cancel(f.user_data);
                    cancelled = true;
                    deadline = None;
                }
                Some(d) => park::park_deadline_with(d, kind),
                None => park::park_with(kind),
            }
        }
        f.taken = true;
        let res = f.op.res.load(Ordering::Relaxed);
        if res >= 0 {
            Ok(res as usize)
        } else if cancelled && res == -libc::ECANCELED {
            Err(timed_out())
        } else {
            Err(io::Error::from_raw_os_error(-res))
        }
    }

    /// A receive through the ring into the caller's `buf` (module docs).
    /// `None`: the buffer budget is spent, use readiness.
    #[track_caller]
    pub(super) fn recv(
        &self,
        fd: RawFd,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Option<io::Result<usize>> {
        let len = buf.len().min(MAX_OP_BUF);
        let op = Op::new(Kind::Recv, len)?;
        let e = opcode::Recv::new(types::Fd(fd), op.buf_ptr(), len as u32).build();
        let mut f = self.start(op, e);
        let r = self.finish(&mut f, deadline, park::WaitKind::NetRead { fd });
        if let Ok(n) = r {
            // SAFETY: DONE was seen (Acquire), so the kernel wrote these
            // `n <= len` bytes and is done with the buffer.
            unsafe { std::ptr::copy_nonoverlapping(f.op.buf_ptr(), buf.as_mut_ptr(), n.min(len)) };
        }
        Some(r)
    }

    /// A send through the ring of a copy of (a prefix of) `buf`.
    #[track_caller]
    pub(super) fn send(
        &self,
        fd: RawFd,
        buf: &[u8],
        deadline: Option<Instant>,
    ) -> Option<io::Result<usize>> {
        let len = buf.len().min(MAX_OP_BUF);
        let op = Op::new(Kind::Send, len)?;
        // SAFETY: the op is not submitted yet, so nobody else touches its
        // buffer, which holds `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), op.buf_ptr(), len) };
        let e = opcode::Send::new(types::Fd(fd), op.buf_ptr(), len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        let mut f = self.start(op, e);
        Some(self.finish(&mut f, deadline, park::WaitKind::NetWrite { fd }))
    }

    /// An accept through the ring: the new fd (non-blocking, close-on-exec)
    /// and the peer's raw address.
    #[track_caller]
    pub(super) fn accept(
        &self,
        fd: RawFd,
        deadline: Option<Instant>,
    ) -> Option<io::Result<(OwnedFd, libc::sockaddr_storage)>> {
        let op = Op::new(Kind::Accept, 0)?;
        let (addr, len) = {
            let a = op.addr.get();
            // SAFETY: not submitted yet; only the addresses are taken, and
            // the length is set to the storage's size first.
            unsafe {
                (*a).1 = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                (&raw mut (*a).0, &raw mut (*a).1)
            }
        };
        let e = opcode::Accept::new(types::Fd(fd), addr.cast(), len)
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build();
        let mut f = self.start(op, e);
        Some(
            self.finish(&mut f, deadline, park::WaitKind::NetAccept { fd })
                .map(|newfd| {
                    // SAFETY: the accept completed: the fd is new and ours, and
                    // the kernel is done writing the address (DONE seen).
                    unsafe { (OwnedFd::from_raw_fd(newfd as RawFd), (*f.op.addr.get()).0) }
                }),
        )
    }
}

/// Model check of the ownership word (run with `.ci/loom`): the reaper
/// stores a result and completes while the waiter either takes the result
/// or leaves; the result is disposed of exactly once, and whoever takes it
/// sees the value the reaper stored.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::Claim;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_owner_of_a_result() {
        loom::model(|| {
            let claim = Arc::new(Claim::new());
            let res = Arc::new(AtomicUsize::new(0));
            let owners = Arc::new(AtomicUsize::new(0));
            let reaper = {
                let (claim, res, owners) = (claim.clone(), res.clone(), owners.clone());
                loom::thread::spawn(move || {
                    res.store(7, Ordering::Relaxed);
                    if !claim.complete() {
                        owners.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            // The waiter looks once, then leaves (an unwind while parked).
            if claim.is_done() || !claim.abandon() {
                assert_eq!(res.load(Ordering::Relaxed), 7);
                owners.fetch_add(1, Ordering::Relaxed);
            }
            reaper.join().unwrap();
            assert_eq!(owners.load(Ordering::Relaxed), 1);
        });
    }
}
