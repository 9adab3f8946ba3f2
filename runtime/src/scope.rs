//! Scoped coroutines, which may borrow from the caller (like
//! `std::thread::scope`).
//!
//! # Why it is sound
//!
//! `scope` does not return, normally or by unwinding, until every coroutine
//! spawned in it has finished *and* its result has been taken or dropped
//! (join invariant 4). Until then the caller is parked (a coroutine is never
//! unwound while parked; a thread simply blocks), so everything the
//! children borrow outlives them. The closures are erased to `'static` only
//! to pass through the scheduler's queues.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::context;
use crate::join::{JoinHandle, Packet};
use crate::park::{self, Unparker};
use crate::spawn::Builder;

pub(crate) struct ScopeData {
    running: AtomicUsize,
    a_coroutine_panicked: AtomicBool,
    main: Unparker,
}

impl ScopeData {
    pub(crate) fn coroutine_finished(&self, panicked: bool) {
        if panicked {
            self.a_coroutine_panicked.store(true, Ordering::Relaxed);
        }
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.main.unpark();
        }
    }
}

/// A scope to spawn coroutines that borrow from outside it; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// An owned permission to join a scoped coroutine.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<T>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the coroutine; `Err(payload)` if it panicked.
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        self.inner.join()
    }

    /// Whether the coroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

/// Runs `f` with a [`Scope`] in which coroutines may borrow non-`'static`
/// data; returns after all of them have finished.
///
/// If any scoped coroutine panicked and was not joined, `scope` panics
/// after all have finished (as `std::thread::scope` does).
///
/// # Panics
///
/// In a coroutine that runs on a shared stack
/// ([`Builder::shared_stack`], `GORO_SHARED_STACKS=1`), before running
/// `f`: its frames are copied away while it waits, so children could not
/// borrow them. Spawn such a caller with [`Builder::private_stack`].
///
/// ```
/// let mut counts = vec![0u32; 4];
/// let label = String::from("shared");
/// goro::scope(|s| {
///     for c in counts.iter_mut() {
///         s.spawn(|| {
///             *c += label.len() as u32;
///         });
///     }
/// });
/// assert_eq!(counts, vec![6; 4]);
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    // Shared stacks lend nothing (`stack/shared.rs`): the children would
    // borrow frames that are copied away while this coroutine parks.
    if let Some(task) = context::current_task()
        && task.frames.is_shared()
    {
        panic!(
            "goro::scope called from a coroutine on a shared stack (coroutine {}): scoped \
             coroutines borrow the caller's frames, which a shared stack copies away while \
             the caller waits; spawn this coroutine with Builder::private_stack()",
            task.id()
        );
    }
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_coroutine_panicked: AtomicBool::new(false),
            main: park::current(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    while scope.data.running.load(Ordering::Acquire) != 0 {
        park::park_with(park::WaitKind::Scope);
    }
    match result {
        Err(e) => resume_unwind(e),
        Ok(_) if scope.data.a_coroutine_panicked.load(Ordering::Relaxed) => {
            panic!("a scoped coroutine panicked")
        }
        Ok(r) => r,
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a coroutine that may borrow from outside the scope.
    ///
    /// # Panics
    ///
    /// If no stack can be had for it (see `Builder::spawn` for the error).
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn_with(Builder::new(), f)
            .unwrap_or_else(|e| panic!("goro: failed to spawn a scoped coroutine: {e}"))
    }

    /// Spawns with the name and stack size of `builder`.
    pub fn spawn_with<F, T>(
        &'scope self,
        builder: Builder,
        f: F,
    ) -> std::io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.data.running.fetch_add(1, Ordering::Relaxed);
        let packet = Packet::new(Some(self.data.clone()));
        // SAFETY: `scope` waits for this coroutine to finish and for its
        // packet to drop before the `'scope` borrows end (module docs).
        let spawned = unsafe { builder.spawn_unchecked(f, packet) };
        match spawned {
            Ok(inner) => Ok(ScopedJoinHandle {
                inner,
                _scope: PhantomData,
            }),
            // No coroutine exists: nothing will end its packet, so undo the
            // count here.
            Err(e) => {
                self.data.coroutine_finished(false);
                Err(e)
            }
        }
    }
}
