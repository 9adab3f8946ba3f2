//! The errgroup. Its user documentation (an example, the Go-to-goro
//! table, the semantics) is on [`Group`] itself, which the `goro` crate
//! re-exports as `goro::Group`; this page says how it is built.
//!
//! # How it works
//!
//! One coroutine-aware mutex guards the count of running members, the
//! limit and the first error; two condition variables wake callers of `go`
//! waiting for a free slot (one per member that ends) and callers of
//! `wait` (when the count reaches zero). A member's count is taken before
//! its coroutine is spawned and given back after its closure and its
//! result are dealt with, so `wait` can never see zero while a member
//! still runs.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use goro_runtime::PanicPayload;
use goro_sync::{Condvar, Mutex};

use crate::context::{Cancel, Context};

/// Why a [`Group`] failed: the first member's error, or its panic.
pub enum GroupError<E> {
    /// A member returned this error.
    Failed(E),
    /// A member panicked with this payload (as `JoinHandle::join` returns
    /// it). Re-raise it with `std::panic::resume_unwind` if you want the
    /// panic to continue.
    Panicked(PanicPayload),
}

impl<E> GroupError<E> {
    /// The member's error, if it returned one (rather than panicking).
    pub fn failed(&self) -> Option<&E> {
        match self {
            GroupError::Failed(e) => Some(e),
            GroupError::Panicked(_) => None,
        }
    }

    /// The member's error, if it returned one; the payload otherwise.
    ///
    /// # Errors
    ///
    /// The panic payload, for a member that panicked.
    pub fn into_failed(self) -> Result<E, PanicPayload> {
        match self {
            GroupError::Failed(e) => Ok(e),
            GroupError::Panicked(p) => Err(p),
        }
    }

    /// The panic message, if a member panicked with a string (as
    /// `panic!("...")` does).
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            GroupError::Panicked(p) => payload_str(&**p),
            GroupError::Failed(_) => None,
        }
    }
}

fn payload_str(p: &(dyn Any + Send)) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}

impl<E: fmt::Debug> fmt::Debug for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            GroupError::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&payload_str(&**p).unwrap_or("<non-string payload>"))
                .finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Failed(e) => e.fmt(f),
            GroupError::Panicked(p) => match payload_str(&**p) {
                Some(m) => write!(f, "a group member panicked: {m}"),
                None => f.write_str("a group member panicked"),
            },
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GroupError<E> {}

/// An errgroup: coroutines that work on parts of one task, the first
/// failure of which fails (and cancels) the whole. Go's
/// `golang.org/x/sync/errgroup`.
///
/// ```
/// use goro::Group;
///
/// let g = Group::<String>::new();
/// for i in 0..4 {
///     g.go(move || if i == 2 { Err(format!("part {i} failed")) } else { Ok(()) });
/// }
/// let err = g.wait().unwrap_err();
/// assert_eq!(err.failed(), Some(&"part 2 failed".to_string()));
/// ```
///
/// # Go to goro
///
/// | Go | goro |
/// |---|---|
/// | `var g errgroup.Group` | `let g = Group::<E>::new();` |
/// | `g, ctx := errgroup.WithContext(parent)` | `let (g, ctx) = Group::with_context(&parent);` |
/// | `g.Go(func() error {..})` | `g.go(move \|\| { ..; Ok(()) })` |
/// | `g.TryGo(f)` | [`Group::try_go`] |
/// | `g.SetLimit(n)` | [`Group::set_limit`]`(n)` or `Group::new().with_limit(n)` |
/// | `err := g.Wait()` | `g.wait()` -> `Result<(), GroupError<E>>` |
/// | a panic in a member crashes the program | the panic becomes [`GroupError::Panicked`] |
///
/// # Semantics
///
/// - [`go`](Group::go) starts `f` in a new coroutine. With a limit, it
///   first waits (parks the caller) until fewer than `limit` members run;
///   [`try_go`](Group::try_go) does not wait and says whether it started
///   `f`.
/// - The first member to fail (return `Err` or panic) records its error;
///   later errors are dropped. With [`with_context`](Group::with_context),
///   that first failure cancels the group's context at once, so the other
///   members can see `ctx.done()` and stop early.
/// - [`wait`](Group::wait) parks until every member started so far has
///   finished (members may start more members; `wait` waits for those too),
///   then returns the first error and cancels the group's context, as Go's
///   `Wait` does. The group may be used again afterwards; a later `wait`
///   reports failures that happened after the previous one.
/// - No member is ever lost: each one runs to its end (stackful coroutines
///   cannot be aborted from outside; they stop when they look at the
///   context), its panic is caught and reported, and `wait` does not
///   return before it ends. Dropping every handle to the group without
///   waiting leaves its members running to completion, detached; their
///   errors are then dropped.
/// - `Group` is a cheap handle: clones (for members that start members)
///   refer to the same group.
pub struct Group<E> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    state: Mutex<State<E>>,
    /// A slot under the limit became free.
    slot_free: Condvar,
    /// `active` reached zero.
    all_done: Condvar,
    /// Cancels the group's context (`with_context` only).
    cancel: Option<Cancel>,
}

struct State<E> {
    active: usize,
    limit: Option<usize>,
    err: Option<GroupError<E>>,
}

impl<E> Clone for Group<E> {
    fn clone(&self) -> Self {
        Group {
            inner: self.inner.clone(),
        }
    }
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Send + 'static> Group<E> {
    /// A group without a context and without a limit.
    ///
    /// ```
    /// let g = goro::Group::<std::io::Error>::new();
    /// g.go(|| Ok(()));
    /// assert!(g.wait().is_ok());
    /// ```
    pub fn new() -> Group<E> {
        Self::build(None)
    }

    /// A group and a child of `parent` that is cancelled when a member
    /// first fails or when [`wait`](Group::wait) returns. Go's
    /// `errgroup.WithContext`.
    ///
    /// ```
    /// use goro::{Group, context::Context};
    ///
    /// let (g, ctx) = Group::<&str>::with_context(&Context::background());
    /// let c = ctx.clone();
    /// g.go(move || {
    ///     let _ = c.done().recv(); // until a sibling fails
    ///     Ok(())
    /// });
    /// g.go(|| Err("boom"));
    /// assert_eq!(g.wait().unwrap_err().failed(), Some(&"boom"));
    /// assert!(ctx.is_done());
    /// ```
    pub fn with_context(parent: &Context) -> (Group<E>, Context) {
        let (ctx, cancel) = Context::with_cancel(parent);
        (Self::build(Some(cancel)), ctx)
    }

    fn build(cancel: Option<Cancel>) -> Group<E> {
        Group {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    active: 0,
                    limit: None,
                    err: None,
                }),
                slot_free: Condvar::new(),
                all_done: Condvar::new(),
                cancel,
            }),
        }
    }

    /// This group, with at most `limit` members running at once.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (no member could ever start).
    ///
    /// ```
    /// let g = goro::Group::<()>::new().with_limit(2);
    /// for _ in 0..10 {
    ///     g.go(|| Ok(())); // waits while two are running
    /// }
    /// g.wait().unwrap();
    /// ```
    pub fn with_limit(self, limit: usize) -> Group<E> {
        self.set_limit(limit);
        self
    }

    /// Bounds the number of members running at once to `limit`, for
    /// members started from now on (running members are not affected;
    /// raising the limit lets waiting `go` calls proceed). Unlike Go's
    /// `SetLimit`, it may be called while members run.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (no member could ever start).
    pub fn set_limit(&self, limit: usize) {
        assert!(
            limit > 0,
            "goro: a Group limit of 0 would never start a member"
        );
        self.inner.state.lock().limit = Some(limit);
        self.inner.slot_free.notify_all();
    }

    /// Removes the limit.
    pub fn remove_limit(&self) {
        self.inner.state.lock().limit = None;
        self.inner.slot_free.notify_all();
    }

    /// Starts `f` in a new coroutine, first waiting (parking the caller)
    /// while the group is at its limit.
    ///
    /// A member that calls `go` on its own group while the group is at its
    /// limit waits for a sibling to finish, as in Go; if every member does
    /// that, they wait forever.
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        {
            let mut st = self.inner.state.lock();
            while st.limit.is_some_and(|l| st.active >= l) {
                self.inner.slot_free.wait(&mut st);
            }
            st.active += 1;
        }
        self.start(f);
    }

    /// Starts `f` in a new coroutine if the group is under its limit;
    /// returns whether it did. Go's `TryGo`.
    ///
    /// ```
    /// let g = goro::Group::<()>::new().with_limit(1);
    /// let (tx, rx) = goro::chan::bounded::<()>(0);
    /// assert!(g.try_go(move || { let _ = rx.recv(); Ok(()) }));
    /// assert!(!g.try_go(|| Ok(()))); // the first one is still running
    /// drop(tx);
    /// g.wait().unwrap();
    /// ```
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        {
            let mut st = self.inner.state.lock();
            if st.limit.is_some_and(|l| st.active >= l) {
                return false;
            }
            st.active += 1;
        }
        self.start(f);
        true
    }

    fn start<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let inner = self.inner.clone();
        drop(goro_runtime::spawn(move || {
            let outcome = match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(GroupError::Failed(e)),
                Err(p) => Some(GroupError::Panicked(p)),
            };
            inner.finish(outcome);
        }));
    }

    /// Waits until every member has finished, then returns the first
    /// failure (and forgets it) and cancels the group's context.
    ///
    /// # Errors
    ///
    /// The first member's error or panic, as a [`GroupError`].
    ///
    /// ```
    /// let g = goro::Group::<u8>::new();
    /// g.go(|| panic!("member down"));
    /// let e = g.wait().unwrap_err();
    /// assert_eq!(e.panic_message(), Some("member down"));
    /// assert!(g.wait().is_ok()); // reported once
    /// ```
    pub fn wait(&self) -> Result<(), GroupError<E>> {
        let err = {
            let mut st = self.inner.state.lock();
            while st.active > 0 {
                self.inner.all_done.wait(&mut st);
            }
            st.err.take()
        };
        if let Some(c) = &self.inner.cancel {
            c.cancel();
        }
        match err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Members running now (started and not finished).
    pub fn active(&self) -> usize {
        self.inner.state.lock().active
    }
}

impl<E> Inner<E> {
    fn finish(&self, outcome: Option<GroupError<E>>) {
        let mut first = false;
        let dropped;
        {
            let mut st = self.state.lock();
            dropped = match outcome {
                Some(e) if st.err.is_none() => {
                    st.err = Some(e);
                    first = true;
                    None
                }
                other => other,
            };
            st.active -= 1;
            if st.active == 0 {
                self.all_done.notify_all();
            }
            self.slot_free.notify_one();
        }
        if first && let Some(c) = &self.cancel {
            c.cancel();
        }
        // A later member's error is dropped outside the lock (it may run
        // user code).
        drop(dropped);
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Group { .. }")
    }
}
