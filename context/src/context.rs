//! Go's `context` in Rust terms: cancellation and deadlines that flow
//! from a parent to every descendant.
//!
//! The user guide (the mapping from Go, the semantics, examples) is the
//! `goro::context` page of the `goro` crate:
//! <https://docs.rs/goro/latest/goro/context/>. This page is about how the
//! module is built.
//!
//! # How it works (invariants)
//!
//! Each context made by `with_*` is a heap node with: the reason it is
//! done (`err`, set once, under the node's lock), its deadline, a count of
//! its `Cancel` handles, and, under a short lock, its parent, a dense list
//! of *entries* (its un-cancelled children and its `on_done` hooks), its
//! alarm, and the sending side of its `done` channel.
//!
//! 1. An entry is in its node's list exactly while it is registered, and
//!    knows its index there (`slot`, read and written only under the
//!    list owner's lock). Registration pushes; deregistration swaps the
//!    last entry into the hole and fixes that entry's index: O(1) both
//!    ways, and the list shrinks when it gets sparse, so memory follows
//!    the number of live children, not the history.
//! 2. Registration happens under the parent's lock and fails if the
//!    parent is done, so a child is either in its parent's list or born
//!    done: no child misses its parent's cancellation.
//! 3. Cancelling a node, under its lock: set `err`, take its list, its
//!    parent link, its alarm and its `done` sender. Then the same for
//!    every child taken (an explicit work list, no recursion, so a deep
//!    tree cannot overflow a coroutine's stack); only then close the done
//!    channels, cancel the alarms and run the hooks, outside every lock;
//!    last, leave the parent's list (only the subtree's root: the others'
//!    parents emptied their lists themselves). A node whose parent was
//!    cancelled first finds its index out of range or pointing at another
//!    entry, and leaves nothing.
//! 4. No two node locks are ever held at once; no user code (a hook, a
//!    waker, a drop) runs under one.
//! 5. The `done` channel is made on first use (most contexts are never
//!    waited on); it is a rendezvous channel nobody sends on, closed when
//!    the node is cancelled, or made closed if it already was. Between a
//!    canceller's marking (step 3) and its closing of the channel, `done()`
//!    hands out a fresh closed channel, so a `done()` taken after an
//!    `err()` that said "done" is always closed (Go's `Err` and `Done`
//!    agree the same way, through the context's mutex).

use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use goro_channel::{Receiver, Sender, bounded_waiting_as, never};
use goro_runtime::alarm::{Alarm, Fire};
use parking_lot::Mutex;

/// Why a context is done: Go's `context.Canceled` and
/// `context.DeadlineExceeded`.
///
/// ```
/// use goro::context::{Context, ContextError};
///
/// let (ctx, cancel) = Context::with_cancel(&Context::background());
/// assert_eq!(ctx.err(), None);
/// cancel.cancel();
/// assert_eq!(ctx.err(), Some(ContextError::Canceled));
/// assert_eq!(ContextError::Canceled.to_string(), "context canceled");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Cancelled by a [`Cancel`] (or its drop), here or in an ancestor.
    Canceled,
    /// The deadline of this context (or an ancestor) passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

const LIVE: u8 = 0;
const CANCELED: u8 = 1;
const DEADLINE: u8 = 2;

fn decode(e: u8) -> Option<ContextError> {
    match e {
        LIVE => None,
        CANCELED => Some(ContextError::Canceled),
        _ => Some(ContextError::DeadlineExceeded),
    }
}

/// A cancellation scope: done when cancelled, when its deadline passes,
/// or when its parent is done. The Go-to-goro table and the semantics
/// are on the [`goro::context`](https://docs.rs/goro/latest/goro/context/)
/// page.
///
/// Cheap to clone (a reference count); `Send + Sync`.
///
/// ```
/// use std::time::Duration;
/// use goro::context::{Context, ContextError};
///
/// let (ctx, _cancel) = Context::with_timeout(&Context::background(), Duration::from_millis(20));
/// let done = ctx.done();
/// let got = goro::chan::select! {
///     recv(done) -> _ => ctx.err(),
///     recv(goro::chan::after(Duration::from_secs(10))) -> _ => None,
/// };
/// assert_eq!(got, Some(ContextError::DeadlineExceeded));
/// ```
#[derive(Clone, Default)]
pub struct Context {
    /// `None`: the background context, never done.
    node: Option<Arc<Node>>,
}

/// Cancels its context (and every descendant). Dropping the last
/// `Cancel` of a context cancels it too, so a context never outlives the
/// scope that owns its cancellation by accident.
///
/// Clones cancel the same context; the context is cancelled when any of
/// them calls [`cancel`](Cancel::cancel) or the last one is dropped.
#[must_use = "dropping a Cancel cancels its context at once"]
pub struct Cancel {
    node: Arc<Node>,
}

/// An `on_done` or `after_func` registration. Dropping it deregisters the
/// callback (as [`stop`](DoneHook::stop) does); [`detach`](DoneHook::detach)
/// keeps it registered for as long as the context lives.
#[must_use = "dropping a DoneHook stops its callback"]
pub struct DoneHook {
    state: HookState,
}

enum HookState {
    /// The context can never be done: the callback was dropped unrun.
    Never,
    /// The callback ran (or is running), or the hook was detached.
    Gone,
    /// Registered in the node's entries.
    Linked(Arc<Node>, Arc<dyn HookEntry>),
}

struct Node {
    deadline: Option<Instant>,
    /// `LIVE`, `CANCELED` or `DEADLINE`; written once, under `state`'s lock.
    err: AtomicU8,
    /// Live `Cancel` handles.
    cancels: AtomicUsize,
    /// This node's index in its parent's entries (invariant 1).
    slot: AtomicUsize,
    /// The receiving side of the done channel, made on first use.
    done: OnceLock<Receiver<()>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    parent: Option<Arc<Node>>,
    entries: Vec<Entry>,
    alarm: Option<Alarm>,
    done_tx: Option<Sender<()>>,
}

enum Entry {
    Child(Arc<Node>),
    Hook(Arc<dyn HookEntry>),
}

impl Entry {
    fn slot(&self) -> &AtomicUsize {
        match self {
            Entry::Child(c) => &c.slot,
            Entry::Hook(h) => h.slot(),
        }
    }
}

trait HookEntry: Send + Sync {
    fn slot(&self) -> &AtomicUsize;
    fn run(&self);
}

struct Hook<F> {
    slot: AtomicUsize,
    f: Mutex<Option<F>>,
}

impl<F: FnOnce() + Send> HookEntry for Hook<F> {
    fn slot(&self) -> &AtomicUsize {
        &self.slot
    }

    fn run(&self) {
        let f = self.f.lock().take();
        if let Some(f) = f {
            f();
        }
    }
}

/// What cancelling one node took out of it (invariant 3).
struct Marked {
    entries: Vec<Entry>,
    parent: Option<Arc<Node>>,
    alarm: Option<Alarm>,
    done_tx: Option<Sender<()>>,
}

impl Marked {
    /// Closes the done channel and cancels the alarm (outside the lock).
    fn finish(self) {
        if let Some(a) = self.alarm {
            a.cancel();
        }
        if let Some(tx) = self.done_tx {
            tx.close();
        }
    }
}

impl Node {
    fn new(deadline: Option<Instant>, parent: Option<Arc<Node>>) -> Arc<Node> {
        Arc::new(Node {
            deadline,
            err: AtomicU8::new(LIVE),
            cancels: AtomicUsize::new(1),
            slot: AtomicUsize::new(0),
            done: OnceLock::new(),
            state: Mutex::new(State {
                parent,
                ..State::default()
            }),
        })
    }

    #[inline]
    fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|d| goro_runtime::testing::now() >= d)
    }

    /// Cancels this node if its deadline has passed (deadlines are exact:
    /// see "Semantics" on the `goro::context` page).
    #[inline]
    fn check_deadline(&self) {
        if self.deadline.is_some() && self.err.load(Ordering::Acquire) == LIVE && self.expired() {
            self.cancel_tree(DEADLINE);
        }
    }

    /// Registers `entry` (invariant 2); `Err` with the reason if this node
    /// is done.
    fn link(&self, entry: Entry) -> Result<(), (u8, Entry)> {
        let mut st = self.state.lock();
        let e = self.err.load(Ordering::Relaxed);
        if e != LIVE {
            return Err((e, entry));
        }
        entry.slot().store(st.entries.len(), Ordering::Relaxed);
        st.entries.push(entry);
        Ok(())
    }

    /// Deregisters the entry whose index is in `slot`, if `is_it` says the
    /// entry there is the one (invariant 1). True if it was removed.
    fn unlink(&self, slot: &AtomicUsize, is_it: impl Fn(&Entry) -> bool) -> bool {
        let mut st = self.state.lock();
        let i = slot.load(Ordering::Relaxed);
        if i >= st.entries.len() || !is_it(&st.entries[i]) {
            return false;
        }
        let removed = st.entries.swap_remove(i);
        if let Some(moved) = st.entries.get(i) {
            moved.slot().store(i, Ordering::Relaxed);
        }
        let (len, cap) = (st.entries.len(), st.entries.capacity());
        if cap > 16 && len * 4 < cap {
            st.entries.shrink_to(len * 2);
        }
        drop(st);
        drop(removed);
        true
    }

    fn unlink_child(&self, child: &Node) -> bool {
        self.unlink(
            &child.slot,
            |e| matches!(e, Entry::Child(c) if std::ptr::eq(&**c, child)),
        )
    }

    /// Marks this node done (invariant 3, first half) with `err`, or with
    /// `DEADLINE` if its deadline has passed. `None` if it already was.
    fn mark(&self, err: u8) -> Option<Marked> {
        let err = if self.err.load(Ordering::Acquire) == LIVE && self.expired() {
            DEADLINE
        } else {
            err
        };
        self.mark_exact(err)
    }

    /// [`mark`](Node::mark) with exactly `err`.
    fn mark_exact(&self, err: u8) -> Option<Marked> {
        if self.err.load(Ordering::Acquire) != LIVE {
            return None;
        }
        let mut st = self.state.lock();
        if self.err.load(Ordering::Relaxed) != LIVE {
            return None;
        }
        self.err.store(err, Ordering::Release);
        Some(Marked {
            entries: mem::take(&mut st.entries),
            parent: st.parent.take(),
            alarm: st.alarm.take(),
            done_tx: st.done_tx.take(),
        })
    }

    /// Cancels this node and its subtree (invariant 3).
    fn cancel_tree(&self, err: u8) {
        let Some(mut top) = self.mark(err) else {
            return;
        };
        let parent = top.parent.take();
        let err = self.err.load(Ordering::Relaxed);
        let mut pending = mem::take(&mut top.entries);
        let mut marked = Vec::new();
        let mut hooks = Vec::new();
        while let Some(e) = pending.pop() {
            match e {
                Entry::Hook(h) => hooks.push(h),
                Entry::Child(c) => {
                    if let Some(mut m) = c.mark(err) {
                        pending.append(&mut m.entries);
                        // Its parent (a node of this subtree) emptied its
                        // list itself: nothing to leave.
                        m.parent = None;
                        marked.push(m);
                    }
                }
            }
        }
        top.finish();
        for m in marked {
            m.finish();
        }
        let mut panicked = None;
        for h in hooks {
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| h.run())) {
                panicked.get_or_insert(p);
            }
        }
        if let Some(p) = parent {
            p.unlink_child(self);
        }
        if let Some(p) = panicked {
            panic::resume_unwind(p);
        }
    }

    fn done_channel(&self) -> Receiver<()> {
        let mut closed = None;
        let rx = {
            let mut st = self.state.lock();
            self.done
                .get_or_init(|| {
                    // Waits on it show as `context done` in the dump.
                    let (tx, rx) = bounded_waiting_as(0, goro_runtime::WaitKind::ContextDone);
                    if self.err.load(Ordering::Relaxed) == LIVE {
                        st.done_tx = Some(tx);
                    } else {
                        closed = Some(tx);
                    }
                    rx
                })
                .clone()
        };
        // Dropping the only sender closes the channel.
        drop(closed);
        rx
    }
}

impl Fire for Node {
    fn fire(self: Arc<Self>) {
        self.cancel_tree(DEADLINE);
    }
}

impl Context {
    /// The root context: never done, no deadline. Go's
    /// `context.Background()`.
    ///
    /// ```
    /// let bg = goro::context::Context::background();
    /// assert!(!bg.is_done());
    /// assert_eq!(bg.deadline(), None);
    /// ```
    pub fn background() -> Context {
        Context { node: None }
    }

    /// A child of `parent` that is done when the returned [`Cancel`] says
    /// so (or its last clone is dropped), or when `parent` is done.
    ///
    /// ```
    /// use goro::context::Context;
    ///
    /// let (parent, cancel_parent) = Context::with_cancel(&Context::background());
    /// let (child, _cancel_child) = Context::with_cancel(&parent);
    /// cancel_parent.cancel();
    /// assert!(child.is_done());
    /// ```
    pub fn with_cancel(parent: &Context) -> (Context, Cancel) {
        let node = Node::new(parent.deadline(), parent.node.clone());
        Self::attach(parent, &node);
        (
            Context {
                node: Some(node.clone()),
            },
            Cancel { node },
        )
    }

    /// A child of `parent` that is also done at `deadline`. If `parent`'s
    /// deadline is earlier, the child has the parent's deadline instead
    /// (a child never outlives its parent). A deadline that has passed
    /// gives a child that is done at once, with `DeadlineExceeded`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use goro::context::{Context, ContextError};
    ///
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// let (parent, _c1) = Context::with_deadline(&Context::background(), soon);
    /// let (child, _c2) = Context::with_deadline(&parent, soon + Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon));
    ///
    /// let (late, _c3) = Context::with_deadline(&Context::background(), Instant::now());
    /// assert_eq!(late.err(), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn with_deadline(parent: &Context, deadline: Instant) -> (Context, Cancel) {
        if parent.deadline().is_some_and(|d| d <= deadline) {
            return Self::with_cancel(parent);
        }
        let node = Node::new(Some(deadline), parent.node.clone());
        Self::attach(parent, &node);
        if node.expired() {
            node.cancel_tree(DEADLINE);
        } else {
            let alarm = Alarm::set(deadline, node.clone());
            let mut st = node.state.lock();
            let late = if node.err.load(Ordering::Relaxed) == LIVE {
                st.alarm = Some(alarm);
                None
            } else {
                Some(alarm)
            };
            drop(st);
            drop(late);
        }
        (
            Context {
                node: Some(node.clone()),
            },
            Cancel { node },
        )
    }

    /// [`with_deadline`](Context::with_deadline) at `timeout` from now (a
    /// timeout too large for `Instant` means no deadline of its own).
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::context::{Context, ContextError};
    ///
    /// let (ctx, _cancel) = Context::with_timeout(&Context::background(), Duration::from_millis(5));
    /// let _ = ctx.done().recv(); // closed when the deadline passes
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn with_timeout(parent: &Context, timeout: Duration) -> (Context, Cancel) {
        match goro_runtime::testing::now().checked_add(timeout) {
            Some(t) => Self::with_deadline(parent, t),
            None => Self::with_cancel(parent),
        }
    }

    /// Registers a new node with its parent, or marks it born done.
    fn attach(parent: &Context, node: &Arc<Node>) {
        let Some(p) = &parent.node else {
            return;
        };
        p.check_deadline();
        if let Err((e, entry)) = p.link(Entry::Child(node.clone())) {
            // Born under a done parent: the parent's reason, as in Go,
            // even if the child's own deadline has passed too (the
            // parent's came first).
            if let Some(mut m) = node.mark_exact(e) {
                // Never linked: nothing to leave.
                m.parent = None;
                m.finish();
            }
            drop(entry);
        }
    }

    /// A channel that is closed when this context is done: a receive on it
    /// waits until then and returns `Err(RecvError)`. Use it in `select!`
    /// (or `Select`) next to other operations. The background context's is
    /// [`never()`](goro_channel::never), which is never ready.
    ///
    /// Every call returns a handle to the same channel; in a loop, take it
    /// once, before the loop.
    ///
    /// ```
    /// use goro::context::Context;
    ///
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let done = ctx.done();
    /// assert!(done.try_recv().is_err() && !done.is_closed());
    /// cancel.cancel();
    /// assert!(done.is_closed());
    /// ```
    pub fn done(&self) -> Receiver<()> {
        let Some(n) = &self.node else {
            return never();
        };
        n.check_deadline();
        let rx = match n.done.get() {
            Some(rx) => rx.clone(),
            None => n.done_channel(),
        };
        // A canceller marks the whole subtree before it closes any done
        // channel (invariant 3), so for a moment `err()` says done while
        // this channel is still open. Hand out a closed one then: a
        // `done()` never disagrees with an `err()` read before it.
        if n.err.load(Ordering::Acquire) != LIVE && !rx.is_closed() {
            let (tx, closed) = bounded_waiting_as(0, goro_runtime::WaitKind::ContextDone);
            drop(tx);
            return closed;
        }
        rx
    }

    /// Why this context is done, or `None` while it is not. Go's
    /// `ctx.Err()`.
    ///
    /// ```
    /// use goro::context::{Context, ContextError};
    ///
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// assert_eq!(ctx.err(), None);
    /// drop(cancel); // the last Cancel: cancels
    /// assert_eq!(ctx.err(), Some(ContextError::Canceled));
    /// ```
    pub fn err(&self) -> Option<ContextError> {
        let n = self.node.as_ref()?;
        n.check_deadline();
        decode(n.err.load(Ordering::Acquire))
    }

    /// Whether this context is done (`err().is_some()`).
    ///
    /// ```
    /// assert!(!goro::context::Context::background().is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// This context's deadline: its own or the earliest of its
    /// ancestors', or `None`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use goro::context::Context;
    ///
    /// let t = Instant::now() + Duration::from_secs(30);
    /// let (ctx, _cancel) = Context::with_deadline(&Context::background(), t);
    /// let (child, _cancel_child) = Context::with_cancel(&ctx);
    /// assert_eq!(child.deadline(), Some(t));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.as_ref().and_then(|n| n.deadline)
    }

    /// Runs `f` once this context is done, on whichever party makes it
    /// done (the thread or coroutine that cancels, or a runtime worker
    /// when the deadline passes), after every descendant is done; or at
    /// once, on the caller, if it already is. The background context is
    /// never done, so there `f` is dropped unrun.
    ///
    /// `f` must be short and must not block: it is meant to wake
    /// something (unpark a coroutine, close a channel, wake a `Waker`).
    /// Use [`after_func`](Context::after_func) for real work.
    ///
    /// Dropping the returned [`DoneHook`] deregisters `f`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use goro::context::Context;
    ///
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let fired = Arc::new(AtomicBool::new(false));
    /// let f = fired.clone();
    /// let hook = ctx.on_done(move || f.store(true, Ordering::Release));
    /// cancel.cancel();
    /// assert!(fired.load(Ordering::Acquire));
    /// assert!(!hook.stop()); // it ran
    /// ```
    pub fn on_done<F: FnOnce() + Send + 'static>(&self, f: F) -> DoneHook {
        let Some(n) = &self.node else {
            return DoneHook {
                state: HookState::Never,
            };
        };
        n.check_deadline();
        let hook: Arc<dyn HookEntry> = Arc::new(Hook {
            slot: AtomicUsize::new(0),
            f: Mutex::new(Some(f)),
        });
        match n.link(Entry::Hook(hook.clone())) {
            Ok(()) => DoneHook {
                state: HookState::Linked(n.clone(), hook),
            },
            Err((_, entry)) => {
                drop(entry);
                hook.run();
                DoneHook {
                    state: HookState::Gone,
                }
            }
        }
    }

    /// Go's `context.AfterFunc`: once this context is done, runs `f` in a
    /// new coroutine. Dropping the returned [`DoneHook`] (or calling
    /// `stop`) before then means `f` never runs; `detach` it to keep it
    /// registered.
    ///
    /// ```
    /// use goro::context::Context;
    ///
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// let (tx, rx) = goro::chan::bounded(1);
    /// ctx.after_func(move || tx.send("cleaned up").unwrap()).detach();
    /// cancel.cancel();
    /// assert_eq!(rx.recv(), Ok("cleaned up"));
    /// ```
    pub fn after_func<F: FnOnce() + Send + 'static>(&self, f: F) -> DoneHook {
        self.on_done(move || {
            drop(goro_runtime::spawn(f));
        })
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            None => f.write_str("Context::background()"),
            Some(n) => f
                .debug_struct("Context")
                .field("deadline", &n.deadline)
                .field("err", &decode(n.err.load(Ordering::Acquire)))
                .finish(),
        }
    }
}

impl Cancel {
    /// Cancels the context and every descendant, before returning. Later
    /// calls (and calls after the context was done for another reason)
    /// change nothing.
    ///
    /// ```
    /// use goro::context::{Context, ContextError};
    ///
    /// let (ctx, cancel) = Context::with_cancel(&Context::background());
    /// cancel.cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.err(), Some(ContextError::Canceled));
    /// ```
    pub fn cancel(&self) {
        self.node.cancel_tree(CANCELED);
    }
}

impl Clone for Cancel {
    fn clone(&self) -> Cancel {
        self.node.cancels.fetch_add(1, Ordering::Relaxed);
        Cancel {
            node: self.node.clone(),
        }
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        if self.node.cancels.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.node.cancel_tree(CANCELED);
        }
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cancel { .. }")
    }
}

impl DoneHook {
    /// Deregisters the callback. Returns `true` if that stopped it from
    /// ever running, `false` if it has run or is running (or was
    /// detached).
    pub fn stop(mut self) -> bool {
        self.stop_inner()
    }

    /// Leaves the callback registered until the context is done, however
    /// long that takes.
    pub fn detach(mut self) {
        self.state = HookState::Gone;
    }

    fn stop_inner(&mut self) -> bool {
        match mem::replace(&mut self.state, HookState::Gone) {
            HookState::Never => true,
            HookState::Gone => false,
            HookState::Linked(node, hook) => node.unlink(
                hook.slot(),
                |e| matches!(e, Entry::Hook(h) if Arc::ptr_eq(h, &hook)),
            ),
        }
    }
}

impl Drop for DoneHook {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

impl fmt::Debug for DoneHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DoneHook { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn children(ctx: &Context) -> usize {
        ctx.node
            .as_ref()
            .map_or(0, |n| n.state.lock().entries.len())
    }

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn context_is_clone_send_sync() {
        assert_send_sync::<Context>();
        assert_send_sync::<Cancel>();
    }

    #[test]
    fn children_leave_on_cancel_and_drop() {
        let (p, _pc) = Context::with_cancel(&Context::background());
        let kids: Vec<_> = (0..100).map(|_| Context::with_cancel(&p)).collect();
        assert_eq!(children(&p), 100);
        for (i, (_, c)) in kids.into_iter().enumerate() {
            if i % 2 == 0 {
                c.cancel();
            }
        }
        assert_eq!(children(&p), 0);
        let cap = p.node.as_ref().unwrap().state.lock().entries.capacity();
        assert!(cap <= 16, "entries not shrunk: capacity {cap}");
    }

    #[test]
    fn swap_remove_keeps_indices_right() {
        let (p, _pc) = Context::with_cancel(&Context::background());
        let mut kids: Vec<_> = (0..50).map(|_| Context::with_cancel(&p)).collect();
        // Remove in a scrambled order; every removal must find its entry.
        let mut seed = 7u32;
        while !kids.is_empty() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let i = seed as usize % kids.len();
            let (ctx, c) = kids.swap_remove(i);
            let before = children(&p);
            c.cancel();
            assert!(ctx.is_done());
            assert_eq!(children(&p), before - 1);
        }
        assert!(!p.is_done());
    }

    #[test]
    fn hooks_run_once_and_stop() {
        let (ctx, c) = Context::with_cancel(&Context::background());
        let n = Arc::new(AtomicUsize::new(0));
        let n1 = n.clone();
        let h1 = ctx.on_done(move || {
            n1.fetch_add(1, Ordering::Relaxed);
        });
        let n2 = n.clone();
        let h2 = ctx.on_done(move || {
            n2.fetch_add(10, Ordering::Relaxed);
        });
        assert!(h2.stop());
        assert_eq!(children(&ctx), 1);
        c.cancel();
        assert_eq!(n.load(Ordering::Relaxed), 1);
        assert!(!h1.stop());
        // Registering on a done context runs at once.
        let n3 = n.clone();
        let h3 = ctx.on_done(move || {
            n3.fetch_add(100, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 101);
        assert!(!h3.stop());
    }

    #[test]
    fn deep_trees_cancel_without_recursion() {
        let (root, cancel) = Context::with_cancel(&Context::background());
        let mut keep = Vec::new();
        let mut cur = root.clone();
        for _ in 0..100_000 {
            let (c, k) = Context::with_cancel(&cur);
            keep.push(k);
            cur = c;
        }
        cancel.cancel();
        assert_eq!(cur.err(), Some(ContextError::Canceled));
        drop(keep);
    }
}
