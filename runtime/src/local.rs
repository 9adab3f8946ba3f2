//! Coroutine-local storage (`coroutine_local!`), libco's ROUTINE_VAR.
//!
//! # Invariants
//!
//! 1. Each task has a map from key address to a boxed value. Only the
//!    task's own coroutine touches it (task invariant 2), and no reference
//!    into the map itself is held while user code runs: `with` hands out a
//!    reference to the boxed value, whose address is stable until the
//!    coroutine ends.
//! 2. Values are created on first use in each coroutine from the key's
//!    initializer (nothing is inherited from the spawner) and dropped when
//!    the coroutine's closure has returned, before its result is published.
//! 3. Outside a coroutine a key is an ordinary `thread_local!`.

use std::any::Any;

use crate::context;

/// The values of one coroutine.
pub(crate) struct LocalMap {
    entries: Vec<(usize, Box<dyn Any>)>,
}

impl LocalMap {
    pub(crate) const fn new() -> LocalMap {
        LocalMap {
            entries: Vec::new(),
        }
    }
}

/// A key for a coroutine-local value; declare with [`coroutine_local!`](crate::coroutine_local).
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
    /// If the initializer itself uses the same key.
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        let Some(task) = context::current_task() else {
            return self.thread.with(f);
        };
        let key = self as *const Self as usize;
        let find = || -> Option<*const T> {
            // SAFETY: invariant 1: we are the task's coroutine and hold no
            // other reference to the map.
            let map = unsafe { &*task.locals.get() };
            map.entries
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.downcast_ref::<T>().expect("coroutine_local type") as *const T)
        };
        let ptr = match find() {
            Some(p) => p,
            None => {
                let value = (self.init)();
                assert!(
                    find().is_none(),
                    "coroutine_local initializer used its own key"
                );
                // SAFETY: invariant 1, as above; the initializer has returned.
                let map = unsafe { &mut *task.locals.get() };
                map.entries.push((key, Box::new(value)));
                let (_, v) = map.entries.last().expect("just pushed");
                v.downcast_ref::<T>().expect("coroutine_local type") as *const T
            }
        };
        // SAFETY: the value is boxed, so its address survives map growth,
        // and it is dropped only after the coroutine's closure returned
        // (invariant 2), which cannot happen while `f` runs.
        f(unsafe { &*ptr })
    }
}

/// Drops the running coroutine's locals (invariant 2). Destructors that
/// touch coroutine-locals again re-create them; after a few rounds the
/// stragglers are leaked rather than looping forever.
pub(crate) fn destroy_current() {
    let Some(task) = context::current_task() else {
        return;
    };
    for _ in 0..8 {
        // SAFETY: invariant 1; the entries are moved out before any
        // destructor runs, so destructors may use the map again.
        let entries = std::mem::take(unsafe { &mut (*task.locals.get()).entries });
        if entries.is_empty() {
            return;
        }
        drop(entries);
    }
    // SAFETY: as above.
    std::mem::forget(std::mem::take(unsafe { &mut (*task.locals.get()).entries }));
}

/// Declares coroutine-local statics: per coroutine inside one, per thread
/// outside (libco's `ROUTINE_VAR`).
///
/// ```
/// use std::cell::Cell;
/// goro_runtime::coroutine_local! {
///     static REQUEST_ID: Cell<u64> = Cell::new(0);
/// }
/// let h = goro_runtime::spawn(|| {
///     REQUEST_ID.with(|id| id.set(7));
///     REQUEST_ID.with(|id| id.get())
/// });
/// assert_eq!(h.join().unwrap(), 7);
/// // Each coroutine starts from the initializer.
/// assert_eq!(goro_runtime::spawn(|| REQUEST_ID.with(|id| id.get())).join().unwrap(), 0);
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
