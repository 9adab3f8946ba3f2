//! The panic report: one line naming the coroutine that panicked, written
//! before the report of the panic hook the program had (crate docs,
//! "Panics in coroutines").

use crate::context;

/// Installs goro's panic hook, chained to the hook in place when the
/// runtime starts (std's default, or the program's own): for a panic in a
/// coroutine it writes one line naming the coroutine, then calls that
/// previous hook, which prints the report (std's default prints
/// `thread 'goro-worker-N' panicked at ...` with the message) or does
/// whatever the program's hook does; panics elsewhere go to the previous
/// hook alone. The crate docs ("Panics") say what users see.
pub(crate) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(task) = context::current_task() {
            let name = task.name().unwrap_or("<unnamed>");
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("<unnamed>");
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "coroutine '{name}' (id {}) panicked on thread '{thread}'",
                task.id()
            );
        }
        previous(info);
    }));
}
