//! The opt-in dump on a signal (Go prints every goroutine on SIGQUIT).
//!
//! With `GORO_DUMP_SIGNAL=QUIT` (or `USR1`, `USR2`, a number) or
//! [`Config::dump_signal`](crate::Config::dump_signal), the runtime
//! starts a thread `goro-dump-signal` when it starts. The signal handler
//! is signal-hook's: it only writes a byte to a pipe, which is all a
//! handler may safely do. The thread reads the pipe and writes
//! [`dump`](crate::dump) to stderr, so the program keeps running: unlike
//! Go's SIGQUIT, the signal does not end it.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal chosen with `Config::dump_signal` (0: none, -1: unset).
static CONFIGURED: AtomicI32 = AtomicI32::new(-1);

pub(crate) fn configure(sig: Option<i32>) {
    CONFIGURED.store(sig.unwrap_or(0), Ordering::Relaxed);
}

/// `QUIT`, `SIGQUIT`, `USR1`, `SIGUSR2`, `3`... to a signal number.
pub(crate) fn parse_signal(v: &str) -> Result<i32, String> {
    let v = v.trim();
    let name = v.strip_prefix("SIG").unwrap_or(v).to_ascii_uppercase();
    let sig = match name.as_str() {
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "HUP" => libc::SIGHUP,
        "WINCH" => libc::SIGWINCH,
        n => n.parse::<i32>().map_err(|_| {
            format!(
                "GORO_DUMP_SIGNAL={v:?} is not a signal (expected QUIT, USR1, USR2 or a number)"
            )
        })?,
    };
    if signal_hook::consts::FORBIDDEN.contains(&sig) {
        return Err(format!(
            "GORO_DUMP_SIGNAL={v:?}: that signal cannot be caught"
        ));
    }
    Ok(sig)
}

/// Called once when the runtime starts.
pub(crate) fn launch() {
    let sig = match CONFIGURED.load(Ordering::Relaxed) {
        0 => return,
        -1 => match std::env::var("GORO_DUMP_SIGNAL") {
            Ok(v) if v.is_empty() => return,
            Ok(v) => match parse_signal(&v) {
                Ok(s) => s,
                Err(msg) => {
                    eprintln!("goro: {msg}; no dump signal installed");
                    return;
                }
            },
            Err(_) => return,
        },
        s => s,
    };
    let mut signals = match signal_hook::iterator::Signals::new([sig]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("goro: cannot install the dump signal handler ({e})");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("goro-dump-signal".into())
        .spawn(move || {
            super::runtime_thread_started();
            for _ in signals.forever() {
                super::dump::dump();
            }
        });
    if let Err(e) = spawned {
        eprintln!("goro: cannot start the dump signal thread ({e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse_signal("QUIT"), Ok(libc::SIGQUIT));
        assert_eq!(parse_signal("SIGUSR1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("12"), Ok(12));
        assert!(parse_signal("KILL").is_err());
        assert!(parse_signal("nope").is_err());
    }
}
