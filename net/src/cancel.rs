//! Cancellable socket calls: the context-taking variants of `accept`,
//! `connect`, `read` and `write` (`accept_ctx`, `connect_ctx`,
//! `read_ctx`, `write_ctx`, [`TcpStream::with_context`](crate::TcpStream::with_context)).
//!
//! # Protocol
//!
//! 1. **Done already?** A call first reads the context's state (one atomic
//!    load): a done context fails the call before any system call.
//! 2. **Try.** As every socket call does (`fd.rs`, invariant 2): read the
//!    direction's readiness sequence, then try the system call; only
//!    `WouldBlock` goes on.
//! 3. **Hook once.** The first time the call has to wait, it registers a
//!    done hook on the context ([`Context::on_done`]) that unparks the
//!    calling coroutine (or thread). One hook per call, however often the
//!    call waits; it is dropped (deregistered) when the call returns.
//! 4. **Wait, interruptibly.** `Registration::wait_interruptible` parks
//!    until readiness moves, the socket's own timeout passes, or "the
//!    context is done" holds, checked before each park and after each
//!    wake-up.
//!
//! No lost wake-up: a context records why it is done *before* it runs its
//! hooks, and the hook is registered before the first check of step 4, so
//! either that check sees the context done, or the hook's unpark comes
//! after it and (by park's token rule) ends the park that follows.
//! A context done at registration time runs the hook at once, which
//! leaves a token that ends the first park.
//!
//! # Errors
//!
//! A call stopped by its context fails with an `io::Error` that carries
//! the [`ContextError`] as its inner error ([`context_error`] gets it
//! back, Go's `errors.Is(err, context.Canceled)`):
//!
//! - `DeadlineExceeded` has kind `TimedOut` (Go: the error's `Timeout()`
//!   is true);
//! - `Canceled` has kind `Other`.
//!
//! Rejected: kind `Interrupted` for cancellation. std's `read_exact`,
//! `write_all`, `io::copy` and `BufReader` retry a call that fails with
//! `Interrupted` (it means `EINTR` to them), so a cancelled
//! [`with_context`](crate::TcpStream::with_context) stream would spin
//! forever inside them instead of returning.
//!
//! What is not interruptible: name resolution in `connect_ctx` (it runs
//! on the blocking pool, as `getaddrinfo` cannot be cancelled; the context
//! is checked again before connecting), and the short pause of an accept
//! that hit fd exhaustion (at most 100 ms; the context is checked after
//! it).

use std::io;
use std::time::Instant;

use goro_context::context::{Context, ContextError, DoneHook};
use goro_runtime::reactor::{Interest, Registration};

/// The error a socket call stopped by its context returns: kind
/// `TimedOut` for a passed deadline, `Other` for a cancellation, with the
/// [`ContextError`] inside (see [`context_error`]).
pub(crate) fn ctx_io_error(e: ContextError) -> io::Error {
    let kind = match e {
        ContextError::DeadlineExceeded => io::ErrorKind::TimedOut,
        ContextError::Canceled => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// The [`ContextError`] inside an `io::Error` that a context-taking call
/// (`accept_ctx`, `read_ctx`, ...) returned because its context was done;
/// `None` for any other error. Go's `errors.Is(err, context.Canceled)`.
///
/// ```
/// use goro::context::{Context, ContextError};
/// use goro::net::{TcpListener, context_error};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let (ctx, cancel) = Context::with_cancel(&Context::background());
/// cancel.cancel();
/// let err = listener.accept_ctx(&ctx).unwrap_err();
/// assert_eq!(context_error(&err), Some(ContextError::Canceled));
/// assert_eq!(context_error(&std::io::Error::other("x")), None);
/// ```
pub fn context_error(e: &io::Error) -> Option<ContextError> {
    e.get_ref()?.downcast_ref::<ContextError>().copied()
}

/// Step 1: the context's error as an `io::Error`, if it is done.
#[inline]
pub(crate) fn check(ctx: &Context) -> io::Result<()> {
    match ctx.err() {
        Some(e) => Err(ctx_io_error(e)),
        None => Ok(()),
    }
}

/// Steps 3 and 4 for one wait of a call: registers the call's hook on the
/// first wait (kept in `hook` for the rest of the call), then waits on
/// `reg`. Returns the context's error if it ended the wait; otherwise what
/// the registration said (`TimedOut` for `deadline`).
pub(crate) fn wait(
    reg: &Registration,
    interest: Interest,
    seen: u64,
    deadline: Option<Instant>,
    ctx: &Context,
    hook: &mut Option<DoneHook>,
    kind: Option<goro_runtime::WaitKind>,
) -> io::Result<()> {
    if hook.is_none() {
        let me = goro_runtime::park::current();
        *hook = Some(ctx.on_done(move || me.unpark()));
    }
    let r = reg.wait_as(interest, seen, deadline, &|| ctx.is_done(), kind);
    // The context wins over whatever else ended the wait at the same time.
    check(ctx)?;
    r
}
