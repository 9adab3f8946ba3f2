//! Coroutine-local storage (`coroutine_local!`), libco's ROUTINE_VAR.
//!
//! # Invariants
//!
//! 1. Each task has a map from key address to a boxed value. Only the
//!    task's own coroutine touches it (task invariant 2), and no reference
//!    into the map itself is held while user code runs: `with` hands out a
//!    reference to the boxed value, whose address is stable until the value
//!    is destroyed, which happens only in teardown (4), never while a
//!    `with` call is running.
//! 2. Values are created on first use in each coroutine from the key's
//!    initializer (nothing is inherited from the spawner).
//! 3. The map's life has three phases, kept in `LocalMap::phase`: *alive*
//!    while the coroutine's user code runs; *destroying* during teardown;
//!    *destroyed* after it. Teardown runs once, on the coroutine's worker,
//!    inside the coroutine, after the last user code that runs on the
//!    coroutine's behalf there: the closure has returned and, if the
//!    `JoinHandle` was already dropped, its result has been dropped (see
//!    "How a coroutine finishes" in `join.rs`). A result that is still
//!    wanted was handed to the packet before teardown and is dropped by
//!    whoever takes it, outside this coroutine.
//! 4. Teardown drops the values newest first, one at a time, each inside
//!    `catch_unwind`. A value's entry is emptied (a tombstone) before its
//!    destructor runs. While destroying, a key whose value is still alive
//!    works as usual, a key never used before may be created (and is then
//!    the newest, so it is destroyed next), and a key with a tombstone
//!    fails (`AccessError`), as std's thread-locals do. Each key therefore
//!    gets at most one value per coroutine, and teardown ends after at most
//!    as many destructors as there are distinct keys.
//! 5. Once destroyed, every access fails, and the map holds nothing: its
//!    memory was freed on the worker, so the task's `LocalMap` is empty
//!    whichever thread drops the last `Arc<Task>` (checked in debug
//!    builds). A task dropped with its coroutine still suspended leaks its
//!    map with the coroutine (task invariant 5).
//! 6. Outside a coroutine a key is an ordinary `thread_local!`.

use std::any::Any;
use std::cell::Cell;
use std::fmt;

use crate::context;

/// Where a coroutine's locals are in their life (invariant 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Alive,
    Destroying,
    Destroyed,
}

/// The values of one coroutine.
pub(crate) struct LocalMap {
    /// Key address and value; `None` is a destroyed value's tombstone.
    entries: Vec<(usize, Option<Box<dyn Any>>)>,
    phase: Cell<Phase>,
}

impl LocalMap {
    pub(crate) const fn new() -> LocalMap {
        LocalMap {
            entries: Vec::new(),
            phase: Cell::new(Phase::Alive),
        }
    }
}

impl Drop for LocalMap {
    fn drop(&mut self) {
        // Invariant 5: teardown emptied the map on the coroutine's worker;
        // nothing of the coroutine's is dropped on whatever thread drops
        // its task last.
        debug_assert!(
            self.entries.is_empty(),
            "goro: coroutine-locals outlived their coroutine's teardown"
        );
    }
}

/// The error of [`LocalKey::try_with`]: the coroutine's local values are
/// being destroyed or have been, and this key's value is gone (or, outside
/// a coroutine, the thread's value is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessError;

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("already destroyed")
    }
}

impl std::error::Error for AccessError {}

/// A key for a coroutine-local value; declare with [`coroutine_local!`](crate::coroutine_local).
///
/// # Destruction
///
/// A coroutine's values are dropped on its own worker thread, inside the
/// coroutine, once nothing else runs on its behalf: after its closure has
/// returned and, if its [`JoinHandle`](crate::JoinHandle) was dropped
/// before that, after its result has been dropped (so a result's `Drop`
/// may still use coroutine-locals). They are dropped before
/// [`join`](crate::JoinHandle::join) returns. A result that a handle takes
/// (by `join`, or by being dropped after the closure returned) is dropped
/// wherever that happens, and sees the locals of that coroutine or thread.
///
/// Values are dropped newest first. Their destructors may use other
/// coroutine-locals, like std's thread-local destructors: a value not yet
/// dropped works as usual, a key not used before is created and dropped in
/// turn, and a value already dropped (or being dropped) is gone:
/// [`try_with`](LocalKey::try_with) returns [`AccessError`] and
/// [`with`](LocalKey::with) panics. A panic in a destructor is reported by
/// the panic hook; the other values are still dropped, and `join` returns
/// `Err` with that panic if the closure had returned normally.
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    thread: &'static std::thread::LocalKey<T>,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new(init: fn() -> T, thread: &'static std::thread::LocalKey<T>) -> LocalKey<T> {
        LocalKey { init, thread }
    }

    /// Calls `f` with this coroutine's value (this thread's, outside a
    /// coroutine), creating it from the initializer on first use.
    ///
    /// # Panics
    ///
    /// If the value has been destroyed or is being destroyed (see
    /// [Destruction](LocalKey#destruction); use
    /// [`try_with`](LocalKey::try_with) to get an error instead), or if the
    /// initializer itself uses the same key.
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(r) => r,
            Err(_) => panic!(
                "cannot access a coroutine-local value during or after destruction: AccessError"
            ),
        }
    }

    /// Calls `f` with this coroutine's value (this thread's, outside a
    /// coroutine), creating it from the initializer on first use; or fails
    /// if the value has been destroyed or is being destroyed.
    ///
    /// ```
    /// goro::coroutine_local! {
    ///     static DEPTH: std::cell::Cell<u32> = std::cell::Cell::new(1);
    /// }
    /// let h = goro::spawn(|| DEPTH.try_with(|d| d.get()));
    /// assert_eq!(h.join().unwrap(), Ok(1));
    /// ```
    ///
    /// # Errors
    ///
    /// [`AccessError`] during or after the destruction of this key's value
    /// (see [Destruction](LocalKey#destruction)).
    ///
    /// # Panics
    ///
    /// If the initializer itself uses the same key.
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let Some(task) = context::current_task() else {
            return self.thread.try_with(f).map_err(|_| AccessError);
        };
        let key = self as *const Self as usize;
        let find = || -> Option<Option<*const T>> {
            // SAFETY: invariant 1: we are the task's coroutine and hold no
            // other reference to the map.
            let map = unsafe { &*task.locals.get() };
            map.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| {
                v.as_ref()
                    .map(|v| v.downcast_ref::<T>().expect("coroutine_local type") as *const T)
            })
        };
        let ptr = match find() {
            Some(Some(p)) => p,
            // A tombstone: this key's value was destroyed (invariant 4).
            Some(None) => return Err(AccessError),
            None => {
                // SAFETY: invariant 1, as above.
                if unsafe { (*task.locals.get()).phase.get() } == Phase::Destroyed {
                    return Err(AccessError);
                }
                let value = (self.init)();
                assert!(
                    find().is_none(),
                    "coroutine_local initializer used its own key"
                );
                // SAFETY: invariant 1, as above; the initializer has returned.
                let map = unsafe { &mut *task.locals.get() };
                map.entries.push((key, Some(Box::new(value))));
                let v = map.entries.last().and_then(|(_, v)| v.as_ref());
                v.expect("just pushed")
                    .downcast_ref::<T>()
                    .expect("coroutine_local type") as *const T
            }
        };
        // SAFETY: the value is boxed, so its address survives map growth,
        // and it is dropped only by teardown, which neither runs while a
        // `with` is running nor drops a value twice (invariants 1 and 4).
        Ok(f(unsafe { &*ptr }))
    }
}

/// Destroys the running coroutine's locals (invariants 3 to 5) and ends
/// their life: afterwards every access fails. Returns the first panic a
/// destructor raised; later ones are dropped.
pub(crate) fn destroy_current() -> Option<Box<dyn Any + Send>> {
    let task = context::current_task()?;
    let map = task.locals.get();
    // SAFETY: invariant 1; no reference into the map is held while a
    // destructor runs, only raw-pointer accesses between them.
    unsafe {
        if (*map).entries.is_empty() {
            (*map).phase.set(Phase::Destroyed);
            return None;
        }
        (*map).phase.set(Phase::Destroying);
    }
    let mut first_panic = None;
    loop {
        // SAFETY: as above; the value is moved out, leaving its tombstone,
        // before its destructor runs.
        let value = unsafe {
            let entries = &mut (*map).entries;
            match entries.iter().rposition(|(_, v)| v.is_some()) {
                Some(i) => entries[i].1.take(),
                None => break,
            }
        };
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value))) {
            if first_panic.is_none() {
                first_panic = Some(e);
            } else {
                drop_quietly(e);
            }
        }
    }
    // SAFETY: as above; no destructor runs any more.
    unsafe {
        (*map).phase.set(Phase::Destroyed);
        (*map).entries = Vec::new();
    }
    first_panic
}

/// Drops a panic payload, swallowing a panic from its own destructor.
pub(crate) fn drop_quietly(payload: Box<dyn Any + Send>) {
    if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload))) {
        // Dropping this one could panic too: leak it.
        std::mem::forget(again);
        eprintln!("goro: a panic payload panicked while being dropped; leaked");
    }
}

/// Declares coroutine-local statics: per coroutine inside one, per thread
/// outside (libco's `ROUTINE_VAR`).
///
/// ```
/// use std::cell::Cell;
/// goro::coroutine_local! {
///     static REQUEST_ID: Cell<u64> = Cell::new(0);
/// }
/// let h = goro::spawn(|| {
///     REQUEST_ID.with(|id| id.set(7));
///     REQUEST_ID.with(|id| id.get())
/// });
/// assert_eq!(h.join().unwrap(), 7);
/// // Each coroutine starts from the initializer.
/// assert_eq!(goro::spawn(|| REQUEST_ID.with(|id| id.get())).join().unwrap(), 0);
/// ```
#[macro_export]
macro_rules! coroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::coroutine_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::coroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$t> = {
            fn __goro_init() -> $t {
                $init
            }
            ::std::thread_local! {
                static __GORO_THREAD: $t = __goro_init();
            }
            $crate::LocalKey::__new(__goro_init, &__GORO_THREAD)
        };
    };
}
