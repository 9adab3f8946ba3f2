//! A set of coroutines joined in completion order. Its user
//! documentation (an example, the semantics) is on [`JoinSet`] itself,
//! which the `goro` crate re-exports as `goro::JoinSet`; this page says
//! how it is built.
//!
//! # How it works
//!
//! Each member runs its closure under `catch_unwind` and sends the
//! outcome on an unbounded channel that the set receives from; `len`
//! counts members whose outcome has not been taken. A member's send never
//! waits (the channel is unbounded) and fails only when the set is gone,
//! which is what detaching means.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use goro_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, unbounded};

/// A set of coroutines whose results are collected in the order they
/// finish: tokio's `JoinSet` for stackful coroutines.
///
/// ```
/// use std::time::Duration;
/// use goro::JoinSet;
///
/// let mut set = JoinSet::new();
/// for ms in [30u64, 10, 20] {
///     set.spawn(move || {
///         goro::sleep(Duration::from_millis(ms));
///         ms
///     });
/// }
/// let mut order = Vec::new();
/// while let Some(r) = set.join_next() {
///     order.push(r.unwrap());
/// }
/// assert_eq!(order.len(), 3); // usually [10, 20, 30]: completion order
/// ```
///
/// # Semantics
///
/// - [`join_next`](JoinSet::join_next) parks until some member has
///   finished and returns its result, `Err(payload)` if it panicked (as
///   `JoinHandle::join` does), or `None` if the set is empty. Results come
///   in the order members finished.
/// - There is no `abort`. A stackful coroutine cannot be stopped from
///   outside at a safe point: its frames may hold locks, half-written data
///   or borrowed buffers that only its own code can put right (tokio can
///   abort a task only because a future is a state machine that is simply
///   not polled again). To stop members early, give them a
///   [`Context`](crate::context::Context) and cancel it; they return when
///   they look at it.
/// - Dropping the set (or calling [`detach_all`](JoinSet::detach_all))
///   detaches the members: they run to completion and their results are
///   dropped, in the member, as they finish. Nothing waits for them.
pub struct JoinSet<T> {
    tx: Option<Sender<std::thread::Result<T>>>,
    rx: Receiver<std::thread::Result<T>>,
    pending: usize,
}

impl<T: Send + 'static> Default for JoinSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        let (tx, rx) = unbounded();
        JoinSet {
            tx: Some(tx),
            rx,
            pending: 0,
        }
    }

    /// Starts `f` in a new coroutine, as a member of this set.
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let tx = self
            .tx
            .get_or_insert_with(|| {
                let (tx, rx) = unbounded();
                self.rx = rx;
                tx
            })
            .clone();
        self.pending += 1;
        drop(goro_runtime::spawn(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(f));
            // Fails only if the set was dropped or detached: then nobody
            // wants the result, and it is dropped here.
            let _ = tx.send(r);
        }));
    }

    /// Parks until a member finishes and returns its result (`Err` with
    /// the panic payload if it panicked), or `None` if no member is left.
    ///
    /// ```
    /// let mut set = goro::JoinSet::new();
    /// set.spawn(|| 1);
    /// set.spawn(|| -> i32 { panic!("member down") });
    /// let mut ok = 0;
    /// let mut panicked = 0;
    /// while let Some(r) = set.join_next() {
    ///     match r {
    ///         Ok(v) => ok += v,
    ///         Err(_) => panicked += 1,
    ///     }
    /// }
    /// assert_eq!((ok, panicked), (1, 1));
    /// ```
    pub fn join_next(&mut self) -> Option<std::thread::Result<T>> {
        if self.pending == 0 {
            return None;
        }
        let r = self
            .rx
            .recv()
            .expect("goro: a JoinSet member ended without reporting");
        self.pending -= 1;
        Some(r)
    }

    /// The result of a member that has already finished, without waiting;
    /// `None` if none has (or the set is empty).
    pub fn try_join_next(&mut self) -> Option<std::thread::Result<T>> {
        if self.pending == 0 {
            return None;
        }
        match self.rx.try_recv() {
            Ok(r) => {
                self.pending -= 1;
                Some(r)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => unreachable!("goro: JoinSet channel closed"),
        }
    }

    /// [`join_next`](JoinSet::join_next), waiting at most `timeout`:
    /// `Err(())` if no member finished in time (the set is unchanged).
    ///
    /// # Errors
    ///
    /// `Err(())` when the time ran out.
    #[allow(clippy::result_unit_err)]
    pub fn join_next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<std::thread::Result<T>>, ()> {
        if self.pending == 0 {
            return Ok(None);
        }
        let deadline = goro_runtime::testing::now().checked_add(timeout);
        let r = match deadline {
            Some(d) => self.rx.recv_deadline(d),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Closed),
        };
        match r {
            Ok(r) => {
                self.pending -= 1;
                Ok(Some(r))
            }
            Err(RecvTimeoutError::Timeout) => Err(()),
            Err(RecvTimeoutError::Closed) => unreachable!("goro: JoinSet channel closed"),
        }
    }

    /// Waits for every member and returns their values in completion
    /// order.
    ///
    /// # Panics
    ///
    /// Re-raises the first member panic it meets (after which the
    /// remaining members are detached, as on drop).
    pub fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.pending);
        while let Some(r) = self.join_next() {
            match r {
                Ok(v) => out.push(v),
                Err(p) => panic::resume_unwind(p),
            }
        }
        out
    }

    /// Members whose result has not been taken yet (running or finished).
    pub fn len(&self) -> usize {
        self.pending
    }

    /// Whether [`len`](JoinSet::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Detaches every member: they run to completion, and their results
    /// are dropped as they finish. The set is empty afterwards and can be
    /// used again.
    pub fn detach_all(&mut self) {
        // A fresh channel: the members hold senders to the old one, whose
        // receiver goes away here, so their sends fail and drop results.
        self.tx = None;
        let (_, rx) = unbounded();
        self.rx = rx;
        self.pending = 0;
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet")
            .field("len", &self.pending)
            .finish()
    }
}
