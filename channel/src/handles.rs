//! The public handles: [`Sender`], [`Receiver`], their iterators, and the
//! constructors.
//!
//! A `Sender` always refers to a channel core (`engine.rs`). A `Receiver`
//! may also be a timer (`after`, `at`, `tick`, see `timer.rs`) or Go's nil
//! channel (`never`); the `Flavor` enum dispatches. Timer receivers carry
//! a function pointer `fn(Instant) -> T`, which is the identity for the
//! `Receiver<Instant>` the constructors return: that keeps one generic
//! `Receiver<T>` type for all flavors without any unsafe conversion.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro_runtime::park;

use crate::engine::{Chan, Deadline};
use crate::err::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::timer::{At, Poll, Sched, Tick};

/// Creates a channel that buffers up to `cap` messages.
///
/// With `cap == 0` the channel is *unbuffered*, a rendezvous like Go's
/// `make(chan T)`: a send completes only when a receiver has taken the
/// message. The buffer grows as messages arrive, so a large `cap` costs
/// nothing up front.
///
/// ```
/// let (tx, rx) = goro::chan::bounded::<&str>(0);
/// let h = goro::go!(move || tx.send("ping").unwrap());
/// assert_eq!(rx.recv(), Ok("ping"));
/// h.join().unwrap();
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(cap)));
    (
        Sender { chan: chan.clone() },
        Receiver {
            flavor: Flavor::Chan(chan),
        },
    )
}

/// [`bounded`] whose blocked receives show as `kind` in the dump
/// (`goro::dump`), for channels that stand for something else: a
/// context's done channel shows as `context done`. Not a public API.
#[doc(hidden)]
pub fn bounded_waiting_as<T>(cap: usize, kind: goro_runtime::WaitKind) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(cap)).with_recv_kind(kind));
    (
        Sender { chan: chan.clone() },
        Receiver {
            flavor: Flavor::Chan(chan),
        },
    )
}

/// Creates a channel with no capacity limit: `send` never waits.
///
/// ```
/// let (tx, rx) = goro::chan::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().sum::<i32>(), 499_500);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(None));
    (
        Sender { chan: chan.clone() },
        Receiver {
            flavor: Flavor::Chan(chan),
        },
    )
}

/// A receiver that never receives anything, like Go's nil channel.
///
/// `recv` blocks forever, `try_recv` is always `Empty`, and a `select!`
/// arm on it is never chosen, which makes it the way to switch an arm off:
///
/// ```
/// use goro::chan::{bounded, never, select};
///
/// let (tx, rx) = bounded::<i32>(1);
/// tx.send(1).unwrap();
/// let off = never::<i32>();
/// let enabled = false;
/// let got = select! {
///     recv(if enabled { &rx } else { &off }) -> _ => "rx",
///     default => "nothing",
/// };
/// assert_eq!(got, "nothing");
/// ```
pub fn never<T>() -> Receiver<T> {
    Receiver {
        flavor: Flavor::Never(PhantomData),
    }
}

/// A receiver that delivers one message after `duration`: the instant at
/// which it fired (not the instant it is read). It never closes.
///
/// Like Go's `time.After`. Nothing runs in the background: the timer is
/// its due instant, checked when someone receives or selects on it.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let fired = goro::chan::after(Duration::from_millis(5)).recv().unwrap();
/// assert!(fired >= start + Duration::from_millis(5));
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    at_opt(goro_runtime::testing::now().checked_add(duration))
}

/// A receiver that delivers one message at `when` (at once if it has
/// passed): that instant. It never closes.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let when = Instant::now() + Duration::from_millis(2);
/// assert_eq!(goro::chan::at(when).recv(), Ok(when));
/// ```
pub fn at(when: Instant) -> Receiver<Instant> {
    at_opt(Some(when))
}

fn at_opt(due: Option<Instant>) -> Receiver<Instant> {
    Receiver {
        flavor: Flavor::At(Arc::new(At::new(due)), std::convert::identity),
    }
}

/// A receiver that delivers the instant of each tick, every `duration`,
/// like Go's `time.Ticker`.
///
/// The first tick is due one `duration` from now. A slow receiver finds at
/// most one pending tick (the earliest it missed); the others are dropped,
/// and the next comes at the following multiple of `duration`. A zero
/// `duration` is always ready. It never closes.
///
/// ```
/// use std::time::Duration;
///
/// let ticker = goro::chan::tick(Duration::from_millis(1));
/// let a = ticker.recv().unwrap();
/// let b = ticker.recv().unwrap();
/// assert!(b >= a + Duration::from_millis(1));
/// ```
pub fn tick(duration: Duration) -> Receiver<Instant> {
    Receiver {
        flavor: Flavor::Tick(Arc::new(Tick::new(duration)), std::convert::identity),
    }
}

/// The sending half of a channel. Clone it to have several senders.
///
/// The channel closes when [`close`](Sender::close) is called on any
/// sender, or when the last sender is dropped. `Sender<T>` is `Send` and
/// `Sync` when `T: Send`.
///
/// ```
/// let (tx, rx) = goro::chan::bounded(4);
/// let tx2 = tx.clone();
/// tx.send(1).unwrap();
/// tx2.send(2).unwrap();
/// drop((tx, tx2)); // the last sender closes the channel
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// Which kind of channel a receiver reads.
pub(crate) enum Flavor<T> {
    Chan(Arc<Chan<T>>),
    At(Arc<At>, fn(Instant) -> T),
    Tick(Arc<Tick>, fn(Instant) -> T),
    /// A stoppable `Timer` or `Ticker`.
    Sched(Arc<Sched>, fn(Instant) -> T),
    Never(PhantomData<fn() -> T>),
}

/// The receiving half of a channel. Clone it to have several receivers;
/// each message goes to exactly one of them.
///
/// Receivers drain what is buffered after the channel is closed, then get
/// `Err`. `Receiver<T>` is `Send` and `Sync` when `T: Send`.
///
/// ```
/// let (tx, rx) = goro::chan::unbounded();
/// let rx2 = rx.clone();
/// tx.send("a").unwrap();
/// tx.send("b").unwrap();
/// assert_eq!(rx.recv(), Ok("a"));
/// assert_eq!(rx2.recv(), Ok("b"));
/// ```
pub struct Receiver<T> {
    pub(crate) flavor: Flavor<T>,
}

impl<T> Sender<T> {
    /// Sends `msg`, waiting for room (for a receiver, if unbuffered).
    ///
    /// Parks the coroutine inside one, blocks the thread outside.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the channel is closed or every
    /// receiver is gone, including when that happens while waiting.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded(1);
    /// tx.send(5).unwrap();
    /// drop(rx);
    /// assert_eq!(tx.send(6).unwrap_err().into_inner(), 6);
    /// ```
    #[track_caller]
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.chan.send(msg, Deadline::Never).map_err(|e| match e {
            SendTimeoutError::Closed(v) | SendTimeoutError::Timeout(v) => SendError(v),
        })
    }

    /// Sends `msg` only if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if there is no room (unbuffered: no receiver
    /// waiting), [`TrySendError::Closed`] if the channel is closed; both
    /// hold the message.
    ///
    /// ```
    /// use goro::chan::TrySendError;
    ///
    /// let (tx, _rx) = goro::chan::bounded(1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.send(msg, Deadline::Now).map_err(|e| match e {
            SendTimeoutError::Timeout(v) => TrySendError::Full(v),
            SendTimeoutError::Closed(v) => TrySendError::Closed(v),
        })
    }

    /// Sends `msg`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if the time ran out,
    /// [`SendTimeoutError::Closed`] if the channel is or became closed;
    /// both hold the message.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, _rx) = goro::chan::bounded(0);
    /// let err = tx.send_timeout("late", Duration::from_millis(1)).unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    #[track_caller]
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, Deadline::after(timeout))
    }

    /// Sends `msg`, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Sender::send_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let (tx, rx) = goro::chan::bounded(1);
    /// tx.send_deadline(1, Instant::now() + Duration::from_secs(1)).unwrap();
    /// assert_eq!(rx.recv(), Ok(1));
    /// ```
    #[track_caller]
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, Deadline::At(deadline))
    }

    /// Closes the channel: no more sends; receivers drain the buffer, then
    /// get `Err`; blocked senders wake with their message in `Err`.
    ///
    /// Returns `true` if this call closed it, `false` if it was already
    /// closed (then nothing changes).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded(2);
    /// tx.send(1).unwrap();
    /// assert!(tx.close());
    /// assert!(!tx.close());
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert!(rx.recv().is_err());
    /// ```
    #[track_caller]
    pub fn close(&self) -> bool {
        self.chan.check_bubble();
        self.chan.close()
    }

    /// Whether a send would fail: the channel is closed, or every receiver
    /// is gone.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<()>(1);
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Messages in the buffer (0 for an unbuffered channel).
    ///
    /// ```
    /// let (tx, _rx) = goro::chan::bounded(3);
    /// tx.send(()).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether the buffer is empty (always true for an unbuffered channel).
    ///
    /// ```
    /// let (tx, _rx) = goro::chan::bounded::<u8>(3);
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a send would have to wait for room (always true for an
    /// unbuffered channel, never for an unbounded one).
    ///
    /// ```
    /// let (tx, _rx) = goro::chan::bounded(1);
    /// tx.send(0).unwrap();
    /// assert!(tx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// The buffer capacity: `Some(0)` unbuffered, `None` unbounded.
    ///
    /// ```
    /// assert_eq!(goro::chan::bounded::<u8>(7).0.capacity(), Some(7));
    /// assert_eq!(goro::chan::unbounded::<u8>().0.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether both senders belong to the same channel.
    ///
    /// ```
    /// let (tx, _rx) = goro::chan::bounded::<u8>(0);
    /// assert!(tx.same_channel(&tx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.acquire_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.release_sender();
    }
}

// A channel keeps its state consistent across a panic (nothing is left
// half-done under its lock: user code never runs there), so handles may
// cross `catch_unwind`, as crossbeam's do.
impl<T> std::panic::UnwindSafe for Sender<T> {}
impl<T> std::panic::RefUnwindSafe for Sender<T> {}
impl<T> std::panic::UnwindSafe for Receiver<T> {}
impl<T> std::panic::RefUnwindSafe for Receiver<T> {}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

/// Waits on a timer flavor until it yields a message or `deadline` passes.
#[track_caller]
fn recv_timer(poll: impl Fn() -> Poll, deadline: Deadline) -> Result<Instant, RecvTimeoutError> {
    loop {
        let wake = match poll() {
            Poll::Ready(i) => return Ok(i),
            Poll::Later(due) => Some(due),
            Poll::Never => None,
        };
        wait_until(wake, deadline)?;
    }
}

/// Waits on a stoppable timer: as `recv_timer`, but woken early by a
/// `stop`/`reset` (timer.rs invariant 5).
fn recv_sched(s: &Sched, deadline: Deadline) -> Result<Instant, RecvTimeoutError> {
    if let (Poll::Ready(i), _) = s.try_take(None) {
        return Ok(i);
    }
    if deadline == Deadline::Now {
        return Err(RecvTimeoutError::Timeout);
    }
    let waker = park::current().into_waker();
    let got = loop {
        let wake = match s.try_take(Some(&waker)).0 {
            Poll::Ready(i) => break Ok(i),
            Poll::Later(due) => Some(due),
            Poll::Never => None,
        };
        if let Err(e) = wait_until(wake, deadline) {
            break Err(e);
        }
    };
    s.unwatch(&waker);
    got
}

/// Parks until `wake` (if any) or `deadline`, whichever is first; `Err`
/// once the deadline has passed.
#[track_caller]
fn wait_until(wake: Option<Instant>, deadline: Deadline) -> Result<(), RecvTimeoutError> {
    let until = match (wake, deadline) {
        (_, Deadline::Now) => return Err(RecvTimeoutError::Timeout),
        (_, Deadline::At(t)) if goro_runtime::testing::now() >= t => {
            return Err(RecvTimeoutError::Timeout);
        }
        (Some(w), Deadline::At(t)) => Some(w.min(t)),
        (None, Deadline::At(t)) => Some(t),
        (w, Deadline::Never) => w,
    };
    match until {
        Some(t) => park::park_deadline_with(t, park::WaitKind::Timer),
        None => park::park_with(park::WaitKind::ChanRecv),
    }
    Ok(())
}

impl<T> Receiver<T> {
    #[track_caller]
    fn recv_deadline_inner(&self, deadline: Deadline) -> Result<T, RecvTimeoutError> {
        match &self.flavor {
            Flavor::Chan(c) => c.recv(deadline),
            Flavor::At(a, f) => recv_timer(|| a.try_take(), deadline).map(f),
            Flavor::Tick(t, f) => recv_timer(|| t.try_take(), deadline).map(f),
            Flavor::Sched(s, f) => recv_sched(s, deadline).map(f),
            Flavor::Never(_) => loop {
                wait_until(None, deadline)?;
            },
        }
    }

    /// Receives a message, waiting for one if needed.
    ///
    /// Parks the coroutine inside one, blocks the thread outside.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and drained.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded(0);
    /// std::thread::spawn(move || tx.send(42).unwrap());
    /// assert_eq!(rx.recv(), Ok(42));
    /// assert!(rx.recv().is_err()); // the sender is gone
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_deadline_inner(Deadline::Never)
            .map_err(|_| RecvError)
    }

    /// Receives a message only if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing is ready (unbuffered: no sender
    /// waiting), [`TryRecvError::Closed`] once closed and drained.
    ///
    /// ```
    /// use goro::chan::TryRecvError;
    ///
    /// let (tx, rx) = goro::chan::bounded(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(3).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(3));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.recv_deadline_inner(Deadline::Now)
            .map_err(|e| match e {
                RecvTimeoutError::Timeout => TryRecvError::Empty,
                RecvTimeoutError::Closed => TryRecvError::Closed,
            })
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time,
    /// [`RecvTimeoutError::Closed`] once closed and drained.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::chan::RecvTimeoutError;
    ///
    /// let (_tx, rx) = goro::chan::bounded::<u8>(0);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
    /// ```
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline_inner(Deadline::after(timeout))
    }

    /// Receives a message, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Receiver::recv_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let (tx, rx) = goro::chan::bounded(1);
    /// tx.send('x').unwrap();
    /// assert_eq!(rx.recv_deadline(Instant::now() + Duration::from_secs(1)), Ok('x'));
    /// ```
    #[track_caller]
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_deadline_inner(Deadline::At(deadline))
    }

    /// A blocking iterator: yields messages until the channel is closed
    /// and drained.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded(0);
    /// goro::go!(move || {
    ///     for i in 1..=3 {
    ///         tx.send(i).unwrap();
    ///     }
    /// });
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2, 3]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator: yields the messages ready now.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Whether the channel is closed (by `close` or the last sender's
    /// drop). Buffered messages may still be waiting to be received. Timer
    /// and `never` receivers are never closed.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded(1);
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// assert_eq!(rx.recv(), Ok(1));
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.is_closed(),
            _ => false,
        }
    }

    /// Messages ready to be received from the buffer (0 for an unbuffered
    /// channel; 0 or 1 for a timer).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::unbounded();
    /// tx.send(()).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(c) => c.len(),
            Flavor::At(a, _) => a.len(),
            Flavor::Tick(t, _) => t.len(),
            Flavor::Sched(s, _) => s.len(),
            Flavor::Never(_) => 0,
        }
    }

    /// Whether [`len`](Receiver::len) is 0.
    ///
    /// ```
    /// assert!(goro::chan::never::<u8>().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is full (always true for an unbuffered channel;
    /// for a timer: a message is pending).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded(1);
    /// tx.send(1).unwrap();
    /// assert!(rx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.is_full(),
            Flavor::At(..) | Flavor::Tick(..) | Flavor::Sched(..) => self.len() == 1,
            Flavor::Never(_) => true,
        }
    }

    /// The buffer capacity: `Some(0)` for unbuffered and `never`, `None`
    /// for unbounded, `Some(1)` for timers.
    ///
    /// ```
    /// assert_eq!(goro::chan::bounded::<u8>(3).1.capacity(), Some(3));
    /// assert_eq!(goro::chan::never::<u8>().capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.flavor {
            Flavor::Chan(c) => c.capacity(),
            Flavor::At(..) | Flavor::Tick(..) | Flavor::Sched(..) => Some(1),
            Flavor::Never(_) => Some(0),
        }
    }

    /// Whether both receivers read the same channel (`never` receivers are
    /// all the same nil channel).
    ///
    /// ```
    /// let (_tx, rx) = goro::chan::bounded::<u8>(0);
    /// assert!(rx.same_channel(&rx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        self.id() == other.id()
    }

    /// The address identifying the channel (0 for `never`).
    pub(crate) fn id(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(c) => Arc::as_ptr(c) as *const () as usize,
            Flavor::At(a, _) => Arc::as_ptr(a) as *const () as usize,
            Flavor::Tick(t, _) => Arc::as_ptr(t) as *const () as usize,
            Flavor::Sched(s, _) => Arc::as_ptr(s) as *const () as usize,
            Flavor::Never(_) => 0,
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            Flavor::Chan(c) => {
                c.acquire_receiver();
                Flavor::Chan(c.clone())
            }
            Flavor::At(a, f) => Flavor::At(a.clone(), *f),
            Flavor::Tick(t, f) => Flavor::Tick(t.clone(), *f),
            Flavor::Sched(s, f) => Flavor::Sched(s.clone(), *f),
            Flavor::Never(_) => Flavor::Never(PhantomData),
        };
        Receiver { flavor }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Flavor::Chan(c) = &self.flavor {
            c.release_receiver();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

/// Blocking iterator over a receiver's messages, from
/// [`Receiver::iter`] or `for msg in &rx`. Ends when the channel is closed
/// and drained.
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter { .. }")
    }
}

/// Non-blocking iterator over the messages ready now, from
/// [`Receiver::try_iter`].
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryIter { .. }")
    }
}

/// Owning blocking iterator, from `rx.into_iter()` or `for msg in rx`.
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntoIter { .. }")
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<X: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync_for_send_messages() {
        assert_send_sync::<Sender<Vec<u8>>>();
        assert_send_sync::<Receiver<Vec<u8>>>();
        // `Cell` is Send but not Sync: channels of it are still shareable.
        assert_send_sync::<Sender<std::cell::Cell<u8>>>();
        assert_send_sync::<Receiver<std::cell::Cell<u8>>>();
    }

    #[test]
    fn handles_are_unwind_safe() {
        fn check<X: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        check::<Sender<std::cell::Cell<u8>>>();
        check::<Receiver<std::cell::Cell<u8>>>();
        check::<&Sender<u8>>();
        check::<&Receiver<u8>>();
    }

    #[test]
    fn never_blocks_until_the_deadline() {
        let rx = never::<u8>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(!rx.is_closed());
        assert_eq!(rx.capacity(), Some(0));
    }

    #[test]
    fn after_delivers_once() {
        let rx = after(Duration::ZERO);
        assert!(rx.recv().is_ok());
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let far = after(Duration::MAX);
        assert_eq!(far.try_recv(), Err(TryRecvError::Empty));
    }
}
