//! The `select!` macro: crossbeam-channel's grammar, goro's engine.
//!
//! `select!` expands in two stages, keeping macro recursion shallow (one
//! level per arm) so that 32 arms fit in the default recursion limit:
//!
//! 1. `@parse` takes one arm per step: it checks its shape (`recv(r) ->
//!    res => body`, `send(s, msg) -> res => body`, `default => body`,
//!    `default(timeout) => body`; bodies are blocks, or expressions with a
//!    comma unless last), reports mistakes with `compile_error!`, wraps the
//!    body in braces, and gives the arm a case variable and an index.
//! 2. `@gen` emits flat code. A lone `recv` arm (with or without a
//!    default) becomes a plain `recv`/`try_recv`/`recv_timeout` call.
//!    Its expression is borrowed in a `match` (see below). Otherwise:
//!    each arm's channel expression is evaluated once, in order, and only
//!    borrowed, all of them together in the scrutinee of one `match
//!    (&expr0, &expr1, ..)`: `recv(rx)` does not move `rx` and works in a
//!    loop, and temporaries in the expressions (`recv(r.unwrap_or(&never()))`)
//!    live until the select is over, as with crossbeam's macro (a `let`
//!    per expression would drop them at the end of its statement: error
//!    E0716). One case per arm is created on the
//!    stack (holding only a reference: everything another thread touches
//!    is on the heap); the engine in `select.rs` chooses; then the chosen
//!    arm collects its result (for `send`, evaluating the message
//!    expression only now), drops every case so that the body may use or
//!    reassign the channel variables, binds the result pattern, and runs
//!    the body.

/// Waits on several channel operations and runs the arm of the one that
/// completes. Exactly crossbeam-channel's grammar:
///
/// ```text
/// select! {
///     recv(rx) -> res => body,          // res: Result<T, RecvError>
///     send(tx, msg) -> res => body,     // res: Result<(), SendError<T>>
///     default => body,                  // or: default(timeout) => body,
/// }
/// ```
///
/// Bodies are blocks (comma optional) or expressions followed by a comma
/// (optional after the last arm). The whole `select!` is an expression
/// whose value is the chosen arm's body. `recv(rx)` and `send(tx, ..)`
/// take a `Receiver`/`Sender` or a reference to one and only borrow it,
/// so `select!` works in a loop and arm bodies may reassign the channel
/// variables (for instance to [`never()`](crate::never()), Go's way of
/// switching an arm off). They also take an `Option` of either: `None`
/// switches the arm off, like Go's nil channel, for send arms as well as
/// receive arms (`send(enabled.then_some(&tx), v)`). `recv` also takes a
/// [`Timer`](crate::Timer) or [`Ticker`](crate::Ticker).
///
/// ```
/// use goro::chan::{bounded, select};
///
/// // Go: `var out chan int; if ready { out = ch }; select { case out <- v: ... }`
/// let (tx, rx) = bounded::<i32>(1);
/// let mut pending = vec![3, 2, 1];
/// while let Some(&v) = pending.last() {
///     let out = (rx.is_empty()).then_some(&tx); // off while the buffer is full
///     select! {
///         send(out, v) -> r => { r.unwrap(); pending.pop(); }
///         recv(rx) -> got => assert!(got.is_ok()),
///     }
/// }
/// ```
///
/// # Semantics (Go's `select`)
///
/// - **Exactly one arm runs.** Its operation completes; no other arm's
///   operation happens at all: a losing `recv` receives nothing, a losing
///   `send` delivers nothing.
/// - **Lazy messages.** As in crossbeam, the message expression of a
///   `send` arm is evaluated only if that arm is chosen, after the choice;
///   a losing arm's message is never evaluated, so it is neither sent nor
///   moved nor dropped (in Go, every message is evaluated up front). The
///   channel expressions are evaluated once, in order, before anything
///   else. On an unbuffered channel the receiver paired with a chosen
///   `send` arm waits while the message expression runs, so keep it short
///   and non-blocking.
/// - **Fairness.** Among the arms that are ready, the choice is uniformly
///   random.
/// - **Closed channels are ready**: a `recv` arm on a closed, drained
///   channel runs with `Err(RecvError)`, a `send` arm on a closed channel
///   with `Err(SendError(msg))`.
/// - **`never()` arms are never chosen.**
/// - **`default`** runs if no arm is ready right now; **`default(d)`**
///   runs if none becomes ready within the `Duration` `d`. Without a
///   default, `select!` waits as long as it takes; with no arms at all it
///   waits forever, like Go's `select {}`.
/// - Works in coroutines (parks the coroutine) and on plain threads
///   (blocks the thread), and both may be on the other end.
///
/// ```
/// use std::time::Duration;
/// use goro::chan::{after, bounded, select};
///
/// let (tx, rx) = bounded::<i32>(0);
/// let (done_tx, done_rx) = bounded::<()>(0);
/// let h = goro::go!(move || {
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
///     done_tx.send(()).unwrap();
/// });
/// let timeout = after(Duration::from_secs(10));
/// let mut got = Vec::new();
/// loop {
///     select! {
///         recv(rx) -> msg => got.push(msg.unwrap()),
///         recv(done_rx) -> _ => break,
///         recv(timeout) -> _ => panic!("took too long"),
///     }
/// }
/// assert_eq!(got, [0, 1, 2]);
/// h.join().unwrap();
/// ```
///
/// Sending, with a give-up time:
///
/// ```
/// use std::time::Duration;
/// use goro::chan::{bounded, select};
///
/// let (tx, _rx) = bounded::<String>(0); // nobody receives
/// let outcome = select! {
///     send(tx, "hello".to_string()) -> res => res.is_ok(),
///     default(Duration::from_millis(5)) => false,
/// };
/// assert!(!outcome);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__goro_select_internal!(@start $($tokens)*)
    };
}

/// [`select!`] with priorities: when several arms are ready, the first
/// one written wins, instead of a random one (crossbeam's
/// `select_biased!`). Same grammar and semantics otherwise. A busy first
/// arm can starve the others; use it for "shutdown before work" and the
/// like.
///
/// ```
/// use goro::chan::{bounded, select_biased};
///
/// let (quit_tx, quit) = bounded::<()>(1);
/// let (work_tx, work) = bounded::<u32>(1);
/// work_tx.send(1).unwrap();
/// quit_tx.send(()).unwrap();
/// let got = select_biased! {
///     recv(quit) -> _ => "quit",
///     recv(work) -> _ => "work",
/// };
/// assert_eq!(got, "quit");
/// ```
#[macro_export]
macro_rules! select_biased {
    ($($tokens:tt)*) => {
        $crate::__goro_select_internal!(@start_biased $($tokens)*)
    };
}

/// The implementation of [`select!`]. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __goro_select_internal {
    // ---- stage 1: parse one arm per step ---------------------------------
    //
    // State: (input) (bindings) (arms) (case variables) (default) (labels).

    (@start $($tokens:tt)*) => {
        $crate::__goro_select_internal!(@start_mode fair $($tokens)*)
    };
    (@start_biased $($tokens:tt)*) => {
        $crate::__goro_select_internal!(@start_mode biased $($tokens)*)
    };
    // The mode rides at the head of the bindings list, untouched by the
    // parser.
    (@start_mode $mode:ident $($tokens:tt)*) => {
        $crate::__goro_select_internal!(
            @parse ($($tokens)*) ($mode) () () ()
            (
                (_goro_case0 0usize) (_goro_case1 1usize) (_goro_case2 2usize)
                (_goro_case3 3usize) (_goro_case4 4usize) (_goro_case5 5usize)
                (_goro_case6 6usize) (_goro_case7 7usize) (_goro_case8 8usize)
                (_goro_case9 9usize) (_goro_case10 10usize) (_goro_case11 11usize)
                (_goro_case12 12usize) (_goro_case13 13usize) (_goro_case14 14usize)
                (_goro_case15 15usize) (_goro_case16 16usize) (_goro_case17 17usize)
                (_goro_case18 18usize) (_goro_case19 19usize) (_goro_case20 20usize)
                (_goro_case21 21usize) (_goro_case22 22usize) (_goro_case23 23usize)
                (_goro_case24 24usize) (_goro_case25 25usize) (_goro_case26 26usize)
                (_goro_case27 27usize) (_goro_case28 28usize) (_goro_case29 29usize)
                (_goro_case30 30usize) (_goro_case31 31usize)
            )
        )
    };

    // All arms parsed.
    (@parse () $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        $crate::__goro_select_internal!(@gen $binds $arms $vars $vars $default)
    };

    // `default =>` is `default() =>`.
    (@parse (default => $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        $crate::__goro_select_internal!(
            @parse (default() => $($tail)*) $binds $arms $vars $default $labels
        )
    };
    (@parse (default $(($($args:tt)*))? -> $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!("expected `=>` after `default`, found `->`")
    };
    (@parse (default($($t:expr)? $(,)?) => $body:block, $($tail:tt)*) $binds:tt $arms:tt $vars:tt () $labels:tt) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*) $binds $arms $vars (($($t)?) $body) $labels
        )
    };
    (@parse (default($($t:expr)? $(,)?) => $body:expr, $($tail:tt)*) $binds:tt $arms:tt $vars:tt () $labels:tt) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*) $binds $arms $vars (($($t)?) $body) $labels
        )
    };
    (@parse (default($($t:expr)? $(,)?) => $body:block $($tail:tt)*) $binds:tt $arms:tt $vars:tt () $labels:tt) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*) $binds $arms $vars (($($t)?) $body) $labels
        )
    };
    (@parse (default($($t:expr)? $(,)?) => $body:expr) $binds:tt $arms:tt $vars:tt () $labels:tt) => {
        $crate::__goro_select_internal!(
            @parse () $binds $arms $vars (($($t)?) $body) $labels
        )
    };
    (@parse (default $($tail:tt)*) $binds:tt $arms:tt $vars:tt ($($d:tt)+) $labels:tt) => {
        ::core::compile_error!("a `select!` may have only one `default` arm")
    };

    // Arms beyond the labels.
    (@parse (recv $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt ()) => {
        ::core::compile_error!("too many arms in a `select!` (at most 32)")
    };
    (@parse (send $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt ()) => {
        ::core::compile_error!("too many arms in a `select!` (at most 32)")
    };

    // recv(r) -> res => body
    (@parse (recv($r:expr $(,)?) -> $res:pat => $body:block, $($tail:tt)*)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*)
            ($($binds)* (recv $var ($r)))
            ($($arms)* [$i] (recv $var ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (recv($r:expr $(,)?) -> $res:pat => $body:expr, $($tail:tt)*)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*)
            ($($binds)* (recv $var ($r)))
            ($($arms)* [$i] (recv $var ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (recv($r:expr $(,)?) -> $res:pat => $body:block $($tail:tt)*)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*)
            ($($binds)* (recv $var ($r)))
            ($($arms)* [$i] (recv $var ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (recv($r:expr $(,)?) -> $res:pat => $body:expr)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ()
            ($($binds)* (recv $var ($r)))
            ($($arms)* [$i] (recv $var ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (recv($($args:tt)*) => $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!("expected `-> pattern` after `recv(..)`, found `=>`")
    };
    (@parse (recv $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!(::core::concat!(
            "invalid `recv` arm: expected `recv(receiver) -> pattern => body`, ",
            "with a comma after an expression body, found `recv ",
            ::core::stringify!($($tail)*), "`"
        ))
    };

    // send(s, msg) -> res => body
    (@parse (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:block, $($tail:tt)*)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*)
            ($($binds)* (send $var ($s)))
            ($($arms)* [$i] (send $var ($m) ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr, $($tail:tt)*)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*)
            ($($binds)* (send $var ($s)))
            ($($arms)* [$i] (send $var ($m) ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:block $($tail:tt)*)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ($($tail)*)
            ($($binds)* (send $var ($s)))
            ($($arms)* [$i] (send $var ($m) ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr)
        ($($binds:tt)*) ($($arms:tt)*) ($($vars:tt)*) $default:tt (($var:ident $i:tt) $($labels:tt)*)
    ) => {
        $crate::__goro_select_internal!(
            @parse ()
            ($($binds)* (send $var ($s)))
            ($($arms)* [$i] (send $var ($m) ($res) $body))
            ($($vars)* $var) $default ($($labels)*)
        )
    };
    (@parse (send($($args:tt)*) => $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!("expected `-> pattern` after `send(..)`, found `=>`")
    };
    (@parse (send $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!(::core::concat!(
            "invalid `send` arm: expected `send(sender, message) -> pattern => body`, ",
            "with a comma after an expression body, found `send ",
            ::core::stringify!($($tail)*), "`"
        ))
    };

    (@parse (default $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!(::core::concat!(
            "invalid `default` arm: expected `default => body` or ",
            "`default(timeout) => body`, found `default ",
            ::core::stringify!($($tail)*), "`"
        ))
    };
    (@parse ($other:tt $($tail:tt)*) $binds:tt $arms:tt $vars:tt $default:tt $labels:tt) => {
        ::core::compile_error!(::core::concat!(
            "expected `recv`, `send` or `default`, found `", ::core::stringify!($other), "`"
        ))
    };

    // ---- stage 2: generate ---------------------------------------------

    // A lone recv arm: a plain receive (a disabled one: a `never()`).
    (@gen ($mode:ident (recv $v:ident ($r:expr))) ([$i:tt] (recv $var:ident ($res:pat) $body:tt)) $vars:tt $vars2:tt ()) => {{
        match &$r {
            _goro_r => {
                let _goro_never;
                let _goro_r = match $crate::internal::recv_target(_goro_r) {
                    ::core::option::Option::Some(r) => r,
                    ::core::option::Option::None => {
                        _goro_never = $crate::never();
                        &_goro_never
                    }
                };
                let $res = _goro_r.recv();
                $body
            }
        }
    }};
    (@gen ($mode:ident (recv $v:ident ($r:expr))) ([$i:tt] (recv $var:ident ($res:pat) $body:tt)) $vars:tt $vars2:tt (() $default_body:tt)) => {{
        match &$r {
            _goro_r => {
                let _goro_never;
                let _goro_r = match $crate::internal::recv_target(_goro_r) {
                    ::core::option::Option::Some(r) => r,
                    ::core::option::Option::None => {
                        _goro_never = $crate::never();
                        &_goro_never
                    }
                };
                match _goro_r.try_recv() {
                    ::core::result::Result::Err($crate::TryRecvError::Empty) => $default_body,
                    _goro_res => {
                        let $res = _goro_res.map_err(|_| $crate::RecvError);
                        $body
                    }
                }
            }
        }
    }};
    (@gen ($mode:ident (recv $v:ident ($r:expr))) ([$i:tt] (recv $var:ident ($res:pat) $body:tt)) $vars:tt $vars2:tt (($timeout:expr) $default_body:tt)) => {{
        match &$r {
            _goro_r => {
                let _goro_never;
                let _goro_r = match $crate::internal::recv_target(_goro_r) {
                    ::core::option::Option::Some(r) => r,
                    ::core::option::Option::None => {
                        _goro_never = $crate::never();
                        &_goro_never
                    }
                };
                match _goro_r.recv_timeout($timeout) {
                    ::core::result::Result::Err($crate::RecvTimeoutError::Timeout) => $default_body,
                    _goro_res => {
                        let $res = _goro_res.map_err(|_| $crate::RecvError);
                        $body
                    }
                }
            }
        }
    }};
    // The general case.
    (@gen ($mode:ident $($bind:tt)*) ($([$i:tt] $arm:tt)*) $vars:tt ($($var:ident)*) $default:tt) => {{
        match ($( $crate::__goro_select_internal!(@borrow $bind), )*) {
            ($($var,)*) => {
                $( $crate::__goro_select_internal!(@bind $bind); )*
                let _goro_deadline = $crate::__goro_select_internal!(@deadline $default);
                let _goro_index = {
                    let _goro_cases: &mut [&mut dyn $crate::internal::Case] =
                        &mut [$(&mut $var),*];
                    $crate::__goro_select_internal!(@run $mode)(_goro_cases, _goro_deadline)
                };
                match _goro_index {
                    $( ::core::option::Option::Some($i) => {
                        $crate::__goro_select_internal!(@arm $vars $arm)
                    } )*
                    _ => $crate::__goro_select_internal!(@default $vars $default),
                }
            }
        }
    }};

    // An arm's channel expression, borrowed: evaluated in the scrutinee of
    // the `match` above, so its temporaries live for the whole select.
    (@borrow (recv $var:ident ($r:expr))) => {
        &$r
    };
    (@borrow (send $var:ident ($s:expr))) => {
        &$s
    };

    // Creates an arm's case from the borrow that the `match` bound to
    // `$var`.
    (@bind (recv $var:ident ($r:expr))) => {
        #[allow(unused_mut)]
        let mut $var = $crate::internal::RecvCase::new($crate::internal::recv_target($var));
    };
    (@bind (send $var:ident ($s:expr))) => {
        #[allow(unused_mut)]
        let mut $var = $crate::internal::SendCase::new($crate::internal::send_target($var));
    };

    (@run fair) => {
        $crate::internal::run
    };
    (@run biased) => {
        $crate::internal::run_biased
    };

    (@deadline ()) => {
        $crate::internal::Deadline::Never
    };
    (@deadline (() $body:tt)) => {
        $crate::internal::Deadline::Now
    };
    (@deadline (($timeout:expr) $body:tt)) => {
        $crate::internal::Deadline::after($timeout)
    };

    // Runs the chosen arm.
    (@arm ($($all:ident)*) (recv $var:ident ($res:pat) $body:tt)) => {{
        let _goro_res = $var.take();
        $( $crate::internal::done($all); )*
        let $res = _goro_res;
        $body
    }};
    (@arm ($($all:ident)*) (send $var:ident ($m:expr) ($res:pat) $body:tt)) => {{
        let _goro_res = $var.complete($m);
        $( $crate::internal::done($all); )*
        let $res = _goro_res;
        $body
    }};

    (@default ($($all:ident)*) ()) => {{
        $( $crate::internal::done($all); )*
        ::core::unreachable!("goro-channel: a blocking select! returned without a choice")
    }};
    (@default ($($all:ident)*) ($timeout:tt $body:tt)) => {{
        $( $crate::internal::done($all); )*
        $body
    }};
}
