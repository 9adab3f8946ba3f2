//! The typed errors of channel operations.
//!
//! Errors of sending operations carry the message back, so nothing is ever
//! lost: a failed send returns the value it could not deliver. `Debug` does
//! not require `T: Debug` (the message is shown as `..`), and `Error` needs
//! only `T: Send`, as in crossbeam-channel and std's mpsc.

use std::error;
use std::fmt;

/// The error of [`Sender::send`](crate::Sender::send): the channel is
/// closed (or every receiver is gone). Holds the message that was not sent.
///
/// ```
/// use goro::chan::{bounded, SendError};
///
/// let (tx, rx) = bounded::<i32>(1);
/// drop(rx);
/// assert_eq!(tx.send(7), Err(SendError(7)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The error of [`Sender::try_send`](crate::Sender::try_send).
///
/// ```
/// use goro::chan::{bounded, TrySendError};
///
/// let (tx, rx) = bounded::<i32>(1);
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// tx.close();
/// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
/// # drop(rx);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The channel is full (for an unbuffered channel: no receiver is
    /// waiting right now). Holds the message.
    Full(T),
    /// The channel is closed (or every receiver is gone). Holds the message.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }

    /// Whether the send failed because the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the send failed because the channel was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

/// The error of [`Sender::send_timeout`](crate::Sender::send_timeout).
///
/// ```
/// use std::time::Duration;
/// use goro::chan::{bounded, SendTimeoutError};
///
/// let (tx, _rx) = bounded::<i32>(0);
/// let r = tx.send_timeout(5, Duration::from_millis(1));
/// assert_eq!(r, Err(SendTimeoutError::Timeout(5)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// No room (or no receiver) appeared before the timeout. Holds the
    /// message.
    Timeout(T),
    /// The channel is closed (or every receiver is gone). Holds the message.
    Closed(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Closed(v) => v,
        }
    }

    /// Whether the send timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether the send failed because the channel was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, SendTimeoutError::Closed(_))
    }
}

/// The error of [`Receiver::recv`](crate::Receiver::recv): the channel is
/// closed and its buffer is drained.
///
/// ```
/// use goro::chan::{bounded, RecvError};
///
/// let (tx, rx) = bounded::<i32>(1);
/// tx.send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.recv(), Ok(1));
/// assert_eq!(rx.recv(), Err(RecvError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// The error of [`Receiver::try_recv`](crate::Receiver::try_recv).
///
/// ```
/// use goro::chan::{bounded, TryRecvError};
///
/// let (tx, rx) = bounded::<i32>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive right now (for an unbuffered channel: no sender
    /// is waiting).
    Empty,
    /// The channel is closed and drained.
    Closed,
}

impl TryRecvError {
    /// Whether the channel was merely empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether the channel was closed and drained.
    pub fn is_closed(&self) -> bool {
        matches!(self, TryRecvError::Closed)
    }
}

/// The error of [`Receiver::recv_timeout`](crate::Receiver::recv_timeout).
///
/// ```
/// use std::time::Duration;
/// use goro::chan::{bounded, RecvTimeoutError};
///
/// let (_tx, rx) = bounded::<i32>(1);
/// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the timeout.
    Timeout,
    /// The channel is closed and drained.
    Closed,
}

impl RecvTimeoutError {
    /// Whether the receive timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Whether the channel was closed and drained.
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvTimeoutError::Closed)
    }
}

/// The error of [`Select::try_select`](crate::Select::try_select): no
/// operation was ready.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TrySelectError;

/// The error of [`Select::select_timeout`](crate::Select::select_timeout):
/// no operation became ready before the timeout.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct SelectTimeoutError;

/// The error of [`Select::try_ready`](crate::Select::try_ready): no
/// operation was ready.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TryReadyError;

/// The error of [`Select::ready_timeout`](crate::Select::ready_timeout)
/// and [`Select::ready_deadline`](crate::Select::ready_deadline): no
/// operation became ready in time.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct ReadyTimeoutError;

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T: Send> error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T: Send> error::Error for TrySendError<T> {}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Closed(e.0)
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T: Send> error::Error for SendTimeoutError<T> {}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Closed(e.0)
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on a closed and empty channel")
    }
}

impl error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Closed => f.write_str("receiving on a closed and empty channel"),
        }
    }
}

impl error::Error for TryRecvError {}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Closed
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Closed => f.write_str("receiving on a closed and empty channel"),
        }
    }
}

impl error::Error for RecvTimeoutError {}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Closed
    }
}

impl fmt::Display for TrySelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all operations in select would block")
    }
}

impl error::Error for TrySelectError {}

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on select")
    }
}

impl error::Error for SelectTimeoutError {}

impl fmt::Display for TryReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all operations in select would block")
    }
}

impl error::Error for TryReadyError {}

impl fmt::Display for ReadyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on ready")
    }
}

impl error::Error for ReadyTimeoutError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_do_not_need_debug_messages() {
        struct Opaque;
        let e = SendError(Opaque);
        assert_eq!(format!("{e:?}"), "SendError(..)");
        assert_eq!(e.to_string(), "sending on a closed channel");
        assert_eq!(format!("{:?}", TrySendError::Full(Opaque)), "Full(..)");
        assert_eq!(
            format!("{:?}", SendTimeoutError::Closed(Opaque)),
            "Closed(..)"
        );
        assert!(TrySendError::Full(1).is_full());
        assert!(SendTimeoutError::Timeout(1).is_timeout());
        assert_eq!(TrySendError::from(SendError(3)).into_inner(), 3);
        assert!(RecvTimeoutError::from(RecvError).is_closed());
        assert!(TryRecvError::from(RecvError).is_closed());
    }

    #[test]
    fn errors_are_std_errors() {
        fn is_error<E: error::Error + Send + Sync + 'static>(_: &E) {}
        is_error(&SendError(1u8));
        is_error(&TrySendError::Closed(1u8));
        is_error(&SendTimeoutError::Timeout(1u8));
        is_error(&RecvError);
        is_error(&TryRecvError::Empty);
        is_error(&RecvTimeoutError::Timeout);
        is_error(&TrySelectError);
        is_error(&SelectTimeoutError);
        is_error(&TryReadyError);
        is_error(&ReadyTimeoutError);
    }
}
