//! Running a workload inside the goro runtime.

use crate::common::Args;

/// Stack of the driver coroutine: the workload bodies keep their data on the
/// heap, 1 MiB is ample.
const DRIVER_STACK: usize = 1 << 20;

/// Runs `body` in a named coroutine and waits for it from the main thread
/// (`JoinHandle::join` works outside a coroutine too).
pub fn drive(args: Args, body: fn(&Args)) {
    let handle = goro::Builder::new()
        .name("driver")
        .stack_size(DRIVER_STACK)
        .spawn(move || body(&args))
        .expect("spawn the driver coroutine");
    if handle.join().is_err() {
        // The panic message has already been printed, as for a thread.
        std::process::exit(101);
    }
}
