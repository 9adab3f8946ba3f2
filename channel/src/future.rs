//! Async channel operations: [`Sender::send_async`] and
//! [`Receiver::recv_async`], so that async code (a tokio task, a future
//! under `block_on`) and coroutines can share a channel.
//!
//! # Invariants
//!
//! 1. **A pending receive holds a waker, never a slot.** A pending
//!    `RecvFuture` leaves a waker on the channel, not a packet that a
//!    sender could fill (`engine.rs` invariant 9): a receive happens only
//!    inside a poll that returns `Ready`, so **dropping a receive future
//!    loses no message**. A pending `SendFuture` waits in the channel's
//!    send queue like a blocked `send`, its message in its packet and its
//!    waker as the packet's wake handle (so two async parties meet on an
//!    unbuffered channel); dropping it withdraws the packet and drops the
//!    unsent message, as with flume and async-channel. If a receiver took
//!    the message first, the send has happened and the drop only frees
//!    the packet.
//! 2. **No lost wake-up.** The watch is left in the same critical section
//!    as the failed attempt, and every critical section that makes the
//!    operation possible ends by waking a watcher. A future woken and then
//!    dropped passes the wake-up on when it deregisters.
//! 3. **Cancellation is cheap.** Dropping a pending future takes the
//!    channel lock once to withdraw its waker; nothing else is left
//!    behind. Timer receivers keep an [`Alarm`] for their due instant,
//!    cancelled on drop.
//! 4. **Wakers may change.** Each poll leaves the waker of that poll (the
//!    previous one is kept when it `will_wake` the same task).
//!
//! A receive that meets a `select!` sending on the same channel may wait
//! a moment, blocking the polling thread, for that select to produce its
//! message (sends in `select!` are evaluated lazily); keep message
//! expressions short, as the `select!` docs ask.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use goro_runtime::alarm::{Alarm, Fire};

use crate::engine::Side;
use crate::err::{RecvError, SendError};
use crate::handles::{Flavor, Receiver, Sender};
use crate::timer;
use crate::waiter::OwnedPacket;

/// Wakes a waker at an instant (a timer receiver's due time).
struct WakeAt(Mutex<Waker>);

impl Fire for WakeAt {
    fn fire(self: Arc<Self>) {
        let w = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        w.wake();
    }
}

/// The future of [`Receiver::recv_async`]: resolves to the next message,
/// or `Err(RecvError)` once the channel is closed and drained.
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    rx: &'a Receiver<T>,
    watch: Option<u64>,
    /// Timer receivers: the alarm for the due instant, and that instant.
    alarm: Option<(Alarm, Instant, Arc<WakeAt>)>,
    /// Stoppable timers: the waker left on the schedule.
    sched_waker: Option<Waker>,
}

/// The future of [`Sender::send_async`]: resolves when the message is
/// sent, or to `Err(SendError(msg))` if the channel is closed.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    tx: &'a Sender<T>,
    msg: Option<T>,
    /// Queued like a blocked `send`, once the first poll found no room.
    packet: Option<OwnedPacket<T>>,
}

// Neither future is self-referential, and neither pins the message.
impl<T> Unpin for RecvFuture<'_, T> {}
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> RecvFuture<'_, T> {
    /// Arms (or keeps) the alarm that wakes `waker` at `due`.
    fn wake_at(&mut self, due: Option<Instant>, waker: &Waker) {
        let Some(due) = due else {
            self.alarm = None;
            return;
        };
        if let Some((_, at, target)) = &self.alarm
            && *at == due
        {
            let mut w = target.0.lock().unwrap_or_else(|e| e.into_inner());
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
            return;
        }
        let target = Arc::new(WakeAt(Mutex::new(waker.clone())));
        self.alarm = Some((Alarm::set(due, target.clone()), due, target));
    }

    fn timer_poll(
        &mut self,
        poll: timer::Poll,
        map: fn(Instant) -> T,
        waker: &Waker,
    ) -> Poll<Result<T, RecvError>> {
        match poll {
            timer::Poll::Ready(i) => {
                self.alarm = None;
                Poll::Ready(Ok(map(i)))
            }
            timer::Poll::Later(due) => {
                self.wake_at(Some(due), waker);
                Poll::Pending
            }
            timer::Poll::Never => {
                self.wake_at(None, waker);
                Poll::Pending
            }
        }
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let rx = this.rx;
        match &rx.flavor {
            Flavor::Chan(c) => {
                let r = c.poll_recv(&mut this.watch, cx.waker());
                if r.is_ready() {
                    this.watch = None;
                }
                r
            }
            Flavor::At(a, f) => {
                let (p, f) = (a.try_take(), *f);
                this.timer_poll(p, f, cx.waker())
            }
            Flavor::Tick(t, f) => {
                let (p, f) = (t.try_take(), *f);
                this.timer_poll(p, f, cx.waker())
            }
            Flavor::Sched(s, f) => {
                let (p, f) = (s.try_take(Some(cx.waker())).0, *f);
                let r = this.timer_poll(p, f, cx.waker());
                match this.sched_waker.take() {
                    Some(old) if !old.will_wake(cx.waker()) => s.unwatch(&old),
                    _ => {}
                }
                if r.is_ready() {
                    s.unwatch(cx.waker());
                } else {
                    this.sched_waker = Some(cx.waker().clone());
                }
                r
            }
            Flavor::Never(_) => Poll::Pending,
        }
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        if let Flavor::Chan(c) = &self.rx.flavor {
            c.unwatch(Side::Recv, self.watch.take());
        }
        if let (Flavor::Sched(s, _), Some(w)) = (&self.rx.flavor, self.sched_waker.take()) {
            s.unwatch(&w);
        }
    }
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.tx
            .chan
            .poll_send(&mut this.msg, &mut this.packet, cx.waker())
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(p) = self.packet.take() {
            self.tx.chan.abandon_send(p);
        }
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecvFuture { .. }")
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendFuture { .. }")
    }
}

impl<T> Sender<T> {
    /// Sends `msg` from async code: the future resolves once the message
    /// is in the channel (taken by a receiver, for an unbuffered one), or
    /// to `Err(SendError(msg))` if the channel is or becomes closed.
    ///
    /// Works with any executor (tokio, [`goro_runtime::block_on`]); the
    /// receiver may be a coroutine, a thread, or another future. Dropping
    /// the future before it completes drops the message unsent and leaves
    /// nothing behind.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<&str>(0);
    /// let h = goro::go!(move || rx.recv());
    /// goro::block_on(tx.send_async("hi")).unwrap();
    /// assert_eq!(h.join().unwrap(), Ok("hi"));
    /// ```
    pub fn send_async(&self, msg: T) -> SendFuture<'_, T> {
        SendFuture {
            tx: self,
            msg: Some(msg),
            packet: None,
        }
    }
}

impl<T> Receiver<T> {
    /// Receives from async code: the future resolves to the next message,
    /// or to `Err(RecvError)` once the channel is closed and drained.
    ///
    /// Works with any executor; the sender may be a coroutine, a thread,
    /// or another future. The future is cancellation-safe: dropping it
    /// never loses a message (one is taken only by the poll that returns
    /// it). Timer receivers (`after`, `tick`, [`Timer`](crate::Timer))
    /// work too, woken by goro's timers.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::bounded::<u32>(0);
    /// goro::go!(move || tx.send(5).unwrap());
    /// assert_eq!(goro::block_on(rx.recv_async()), Ok(5));
    /// ```
    pub fn recv_async(&self) -> RecvFuture<'_, T> {
        RecvFuture {
            rx: self,
            watch: None,
            alarm: None,
            sched_waker: None,
        }
    }
}
