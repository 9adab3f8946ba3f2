//! Spawning coroutines, and the calls a coroutine makes about itself.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::join::{JoinHandle, Packet};
use crate::stack::{self, Frames, MAX_STACK_SIZE, MIN_STACK_SIZE, RawStack};
use crate::task::{Job, Payload, Request, Task};
use crate::{context, park, scheduler};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Ids are handed to each thread in blocks, so spawning threads do not
/// contend on one counter.
const ID_BLOCK: u64 = 1024;

thread_local! {
    static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Never inlined: a migratable coroutine may spawn, park, move to another
/// thread and spawn again in one function, and a thread-local address must
/// not be cached across that.
#[inline(never)]
fn next_id() -> u64 {
    IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// Configures a coroutine before spawning it: name and stack size.
///
/// ```
/// let h = goro::Builder::new()
///     .name("worker-7")
///     .stack_size(128 << 10)
///     .spawn(|| 1 + 1)
///     .expect("spawn");
/// assert_eq!(h.join().unwrap(), 2);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    migratable: bool,
    unguarded_stack: bool,
    shared_stack: Option<bool>,
    worker: Option<usize>,
    bubble: Option<Arc<crate::testing::Bubble>>,
}

impl Builder {
    /// Spawns into `b` (the root of a testing bubble).
    pub(crate) fn in_bubble(mut self, b: Arc<crate::testing::Bubble>) -> Builder {
        self.bubble = Some(b);
        self
    }

    /// A builder with no name and the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine (shown in panic messages, overflow reports and
    /// `coroutines()`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the stack size in bytes, rounded up to whole pages. Must be
    /// within `MIN_STACK_SIZE..=MAX_STACK_SIZE` (16 KiB to 1 GiB), or
    /// [`spawn`](Builder::spawn) fails with `InvalidInput`.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs the coroutine on one of its worker's *shared stacks*: while it
    /// is parked, the used part of its stack (often under a kilobyte) is
    /// copied to the heap, and copied back, at the same addresses, when it
    /// runs again. A parked coroutine then costs the bytes of its frames
    /// instead of a 4 KiB page; each switch that finds another coroutine
    /// on the stack costs a copy out and a copy in. See the `stack::shared`
    /// module docs for what is copied when, and
    /// [`Config::shared_stacks`](crate::Config::shared_stacks) (or
    /// `GORO_SHARED_STACKS=1`) to make it the default for `spawn`/`go!`.
    ///
    /// Coroutines on shared stacks and on private ones run side by side on
    /// the same workers. A shared-stack coroutine cannot be
    /// [`migratable`](Builder::migratable) (its frames belong at its
    /// worker's stack addresses): [`spawn`](Builder::spawn) refuses the
    /// pair with `InvalidInput`. While it waits in [`blocking`](crate::blocking)
    /// (whose closure may borrow its stack) it keeps its shared stack to
    /// itself, so the coroutines that share that stack wait for it; and it
    /// cannot open a [`scope`](crate::scope) (the children would borrow a
    /// stack that is copied away): `scope` panics with a message saying so.
    ///
    /// ```
    /// let h = goro::Builder::new()
    ///     .shared_stack()
    ///     .spawn(|| 6 * 7)
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    pub fn shared_stack(mut self) -> Builder {
        self.shared_stack = Some(true);
        self
    }

    /// Runs the coroutine on a private stack of its own even where shared
    /// stacks are the default ([`Config::shared_stacks`](crate::Config::shared_stacks),
    /// `GORO_SHARED_STACKS=1`): for a coroutine that opens a
    /// [`scope`](crate::scope), or that would keep a shared stack to
    /// itself for long in [`blocking`](crate::blocking).
    pub fn private_stack(mut self) -> Builder {
        self.shared_stack = Some(false);
        self
    }

    /// Lets the coroutine be resumed on any worker after it parks, instead
    /// of only on the worker it started on.
    ///
    /// By default a started coroutine never changes threads (see the crate
    /// docs): that keeps it sound for code that holds thread-local state
    /// across calls, at the price of a cross-worker hand-off whenever a
    /// coroutine on another worker wakes it. A migratable coroutine is
    /// woken onto the waker's worker, as Go does with goroutines, and idle
    /// workers may steal it, which makes channel and lock hand-offs between
    /// coroutines cheaper and balances load.
    ///
    /// # Safety
    ///
    /// The coroutine must not hold, across any call that may park (channel
    /// operations, locks, `sleep`, `join`, socket IO, `yield_now`), a
    /// reference into thread-local storage, a value that must stay on the
    /// thread that created it (such as `Rc`, a `RefCell` borrow of a
    /// `thread_local!`, a `std::sync::MutexGuard`), or any other state
    /// whose soundness depends on staying on one OS thread. Note that code
    /// you call may do this invisibly; goro's own crates do not. Its
    /// `coroutine_local!` values move with it and so must be `Send`.
    ///
    /// ```
    /// // SAFETY: the closure holds no thread-bound state across parks.
    /// let h = unsafe { goro::Builder::new().migratable() }
    ///     .spawn(|| {
    ///         goro::sleep(std::time::Duration::from_millis(1));
    ///         7
    ///     })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 7);
    /// ```
    pub unsafe fn migratable(mut self) -> Builder {
        self.migratable = true;
        self
    }

    /// Starts the coroutine on worker `index` (modulo the number of
    /// workers) instead of wherever the scheduler would start it.
    ///
    /// A coroutine stays on the worker that first runs it (unless
    /// [`migratable`](Builder::migratable)), so where it starts decides,
    /// for its whole life, which coroutines share a thread and a core with
    /// it. The scheduler starts a coroutine on its spawner's worker unless
    /// that worker is backed up, which keeps partners that talk to each
    /// other together, but an accept loop spawning a long-lived handler
    /// per connection then keeps every connection on the worker it runs on
    /// (its handlers start while it waits for the next connection), and
    /// the other workers sit idle. Spreading such handlers over the
    /// workers, round robin, is what this is for:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let workers = goro::stats().workers;
    /// let server = goro::go!(move || {
    ///     for (i, conn) in listener.incoming().take(4).enumerate() {
    ///         let mut conn = conn.unwrap();
    ///         goro::Builder::new()
    ///             .worker(i % workers)
    ///             .spawn(move || {
    ///                 let mut b = [0; 1];
    ///                 while conn.read(&mut b).unwrap() == 1 {
    ///                     conn.write_all(&b).unwrap();
    ///                 }
    ///             })
    ///             .unwrap();
    ///     }
    /// });
    /// for _ in 0..4 {
    ///     let mut c = goro::net::TcpStream::connect(addr).unwrap();
    ///     c.write_all(b"x").unwrap();
    ///     let mut b = [0; 1];
    ///     c.read_exact(&mut b).unwrap();
    ///     assert_eq!(&b, b"x");
    /// }
    /// server.join().unwrap();
    /// ```
    ///
    /// The coroutine waits in that worker's queue even when another worker
    /// is idle. Inside a testing bubble ([`goro::testing`](crate::testing))
    /// the bubble decides and this is ignored.
    pub fn worker(mut self, index: usize) -> Builder {
        self.worker = Some(index);
        self
    }

    /// Lets the coroutine run on a stack without a guard page of its own
    /// (a *canary stack*) when no guarded stack can be had.
    ///
    /// This matters only under mapped guard pages (kernels before Linux
    /// 6.13, or `GORO_STACK_GUARDS=mapped`), once the process's guard
    /// budget of `vm.max_map_count / 8` stacks is spent; without the
    /// opt-in, [`spawn`](Builder::spawn) then fails with `OutOfMemory`.
    /// While guarded stacks are available, and always under light guard
    /// pages, the coroutine gets a guarded stack anyway. See
    /// [`Config::allow_unguarded_stacks`](crate::Config::allow_unguarded_stacks)
    /// for the same opt-in for every spawn in the process.
    ///
    /// A canary stack sits directly above another coroutine's stack, with
    /// a 16-byte canary between them that the worker checks each time the
    /// coroutine switches out.
    ///
    /// # Safety
    ///
    /// The coroutine, and everything it calls, must never use more stack
    /// than its stack size (minus a few hundred bytes for the runtime's
    /// own frames). On a canary stack an overflow writes into the
    /// neighbouring coroutine's stack: detected only if it overwrote the
    /// canary, only at the next switch, after the damage is done; and a
    /// frame that reaches past the canary without writing it (a large,
    /// partly initialised local array, say a 32 KiB
    /// `[MaybeUninit<u8>; N]` on a 20 KiB stack) overwrites the
    /// neighbour's live locals with nothing detected at all. That is
    /// undefined behaviour in the neighbour, which may be any coroutine
    /// that opted in. Deep or unbounded recursion, large local buffers and
    /// foreign code of unknown stack use rule the opt-in out.
    ///
    /// ```
    /// // SAFETY: the closure uses a few hundred bytes of its 64 KiB stack.
    /// let h = unsafe { goro::Builder::new().allow_unguarded_stack() }
    ///     .spawn(|| 6 * 7)
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    pub unsafe fn allow_unguarded_stack(mut self) -> Builder {
        self.unguarded_stack = true;
        self
    }

    /// Spawns the coroutine.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` for a stack size out of range.
    /// - `OutOfMemory` when no guarded stack is left under mapped guard
    ///   pages (kernels before Linux 6.13, or `GORO_STACK_GUARDS=mapped`):
    ///   the process's guard budget of `vm.max_map_count / 8` stacks is
    ///   bound to live coroutines (or pooled for another stack size). The
    ///   message names the limit and the ways out; spawning succeeds again
    ///   once coroutines finish. The `unsafe`
    ///   [`allow_unguarded_stack`](Builder::allow_unguarded_stack) trades
    ///   this error for a stack without a guard page.
    /// - The OS error (usually `OutOfMemory`) when no stack can be mapped
    ///   (address space, `RLIMIT_AS`, mappings).
    ///
    /// The runtime keeps serving the coroutines it has either way. As with
    /// `std::thread::Builder::spawn`, failing to allocate the coroutine's
    /// header on the heap (a few hundred bytes) is not an error: it aborts
    /// the process through Rust's allocation error handler.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are `'static`, so nothing they hold can be
        // outlived by the coroutine.
        unsafe { self.spawn_unchecked(f, Packet::new(None)) }
    }

    /// Spawns without requiring `'static`.
    ///
    /// # Safety
    ///
    /// Everything `f` and its result borrow must outlive the coroutine and
    /// the drop of `packet` (what `scope` guarantees).
    pub(crate) unsafe fn spawn_unchecked<'a, F, T>(
        self,
        f: F,
        packet: Packet<T>,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let rt = scheduler::get();
        let pool = match self.stack_size {
            None => rt.default_pool,
            Some(s) if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&s) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "goro: stack size {s} bytes is out of range (expected {MIN_STACK_SIZE} to {MAX_STACK_SIZE} bytes)"
                    ),
                ));
            }
            Some(s) if s == rt.default_stack_size => rt.default_pool,
            Some(s) => stack::pool_for(s),
        };
        let shared = self
            .shared_stack
            .unwrap_or_else(crate::config::shared_stacks);
        let (stack, frames) = if shared {
            if self.migratable {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "goro: a coroutine on a shared stack cannot be migratable (its frames                      belong at its worker's stack addresses); use Builder::private_stack                      with Builder::migratable",
                ));
            }
            let set = stack::shared::set_for(
                pool,
                std::ptr::eq(pool, rt.default_pool),
                rt.workers.len(),
                crate::config::shared_per_worker(),
            )?;
            (RawStack::NONE, Frames::shared(set))
        } else {
            let stack = pool.take(self.unguarded_stack || crate::config::unguarded_stacks())?;
            (stack, Frames::private())
        };
        let id = next_id();
        let bubble = self.bubble.or_else(|| crate::testing::current().cloned());
        let task: Arc<Task<Job<T, F>>> = Arc::new(Task::new(
            id,
            self.name.map(String::into_boxed_str),
            self.migratable,
            pool,
            stack,
            frames,
            bubble.clone(),
            Job::new(packet, f),
        ));
        let task: Arc<Task<dyn Payload + 'a>> = task;
        // SAFETY: only the lifetime changes; the caller guarantees that what
        // `'a` covers outlives the coroutine and the end of its packet (this
        // function's contract), after which the payload holds only `None`s.
        let task: Arc<Task> =
            unsafe { std::mem::transmute::<Arc<Task<dyn Payload + 'a>>, Arc<Task>>(task) };
        // SAFETY: the payload is a `Job<T, F>`.
        let handle = unsafe { JoinHandle::new(task.clone(), id) };
        if let Some(b) = bubble {
            b.spawned(task);
        } else if let Some(i) = self.worker {
            rt.push_fresh_on(task, i % rt.workers.len());
        } else if rt.push_fresh(task) {
            yield_now();
        }
        Ok(handle)
    }
}

/// Spawns a coroutine running `f` and returns a handle to join it.
///
/// Works from coroutines and from plain threads alike; the first spawn
/// starts the runtime.
///
/// Spawning from a coroutine is a scheduling point: when the worker
/// already holds a backlog of coroutines that have not started (a spawn
/// loop far ahead of the workers), the spawner yields once after queueing,
/// so its own worker starts half of that backlog before the loop goes on.
/// That keeps the delay from `spawn` to the first run of a child short,
/// the way Go's preemption does for a goroutine spawning in a loop. So do
/// not hold a `std::sync::Mutex` guard (or any lock that parks the
/// thread) across `spawn` if another coroutine may take the same lock:
/// that was never safe across a `goro` call that parks, and a spawn loop
/// may now yield too. `goro::sync::Mutex` has no such restriction.
///
/// A panic in `f` ends only that coroutine: [`JoinHandle::join`] returns
/// it. It is reported through the panic hook, chained to the one the
/// program installed before the runtime started (crate docs, "Panics in
/// coroutines").
///
/// # Panics
///
/// If the runtime cannot start, or no stack can be had for the coroutine,
/// with the message of [`Builder::spawn`]'s error (use that to get it as an
/// `io::Error`). Under mapped guard pages (kernels before Linux 6.13) that
/// includes spawning beyond the guard budget of `vm.max_map_count / 8`
/// live coroutines.
///
/// ```
/// let h = goro::spawn(|| "hello from a coroutine");
/// assert_eq!(h.join().unwrap(), "hello from a coroutine");
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("goro: cannot spawn a coroutine: {e}"))
}

/// Spawns a coroutine: `go!(closure)` is [`spawn`]`(closure)`.
///
/// ```
/// let h = goro::go!(move || 40 + 2);
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[macro_export]
macro_rules! go {
    ($f:expr $(,)?) => {
        $crate::spawn($f)
    };
}

/// Whether the caller runs inside a goro coroutine.
pub fn is_coroutine() -> bool {
    context::current_task().is_some()
}

/// The id of the calling coroutine, or `None` on a plain thread.
pub fn current_id() -> Option<u64> {
    context::current_task().map(Task::id)
}

/// Lets other coroutines on this worker run; on a plain thread, yields the
/// thread's time slice.
pub fn yield_now() {
    match context::current_task() {
        Some(task) => task.suspend(Request::Yield),
        None => std::thread::yield_now(),
    }
}

/// Sleeps for at least `d`: parks the coroutine (the worker runs others),
/// or sleeps the thread outside a coroutine.
///
/// Like `std::thread::sleep`, it leaves the caller's park token alone: an
/// `unpark` that arrives during the sleep is still there afterwards.
#[track_caller]
pub fn sleep(d: Duration) {
    let Some(task) = context::current_task() else {
        std::thread::sleep(d);
        return;
    };
    let Some(deadline) = crate::testing::now().checked_add(d) else {
        loop {
            park::park_with(park::WaitKind::Sleep);
        }
    };
    let here = std::panic::Location::caller();
    // `park` returns at once if the deadline has passed, so each round
    // reads the clock twice: there and here.
    let mut woken = false;
    loop {
        task.wait
            .record(park::WaitKind::Sleep, here, crate::diag::coarse_tick());
        task.park(Some(deadline));
        if crate::testing::now() >= deadline {
            break;
        }
        woken = true;
    }
    if woken {
        // Give back what may have been a real token (a spurious wake-up
        // later is allowed; a lost one is not).
        task.unpark();
    }
}
