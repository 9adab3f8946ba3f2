//! The goro peer of the comparison suite, written against goro's public
//! API: `goro::go!` / `goro::spawn` / `goro::Builder`,
//! `JoinHandle::join`, `goro::sleep`, `goro::chan::{bounded, unbounded, never}`,
//! `goro::select!`, `goro::sync::Mutex`, `goro::net::{TcpListener, TcpStream}`
//! and `goro::stats()`.
//!
//! Each workload is its own module behind its own cargo feature (all on by
//! default), so one whose API is missing can be left out while the rest
//! build; a workload that was not built exits with status 3. Each workload
//! body runs in a "driver" coroutine, as Go's `main` runs in a goroutine.
//! goro's worker count is its default (available parallelism: 2 here) unless
//! `GORO_WORKERS` says otherwise.
//!
//! Usage: `cmp-goro <workload> [--quick] [--n N] [--values V] [--secs S]`.

#[path = "../../common/common.rs"]
mod common;

#[cfg(feature = "rt")]
mod rt;

#[cfg(feature = "chain")]
mod chain;
#[cfg(feature = "chan_mpmc")]
mod chan_mpmc;
#[cfg(feature = "echo")]
mod echo;
#[cfg(feature = "idle")]
mod idle;
#[cfg(feature = "mutex")]
mod mutex;
#[cfg(feature = "pingpong")]
mod pingpong;
#[cfg(feature = "select")]
mod select;
#[cfg(feature = "spawn")]
mod spawn;
#[cfg(feature = "timers")]
mod timers;

/// Exit status of a workload this binary was built without.
const NOT_BUILT: i32 = 3;

fn main() {
    let args = common::Args::parse();
    let body: Option<fn(&common::Args)> = match args.workload.as_str() {
        #[cfg(feature = "spawn")]
        "spawn" => Some(spawn::run),
        #[cfg(feature = "pingpong")]
        "pingpong" => Some(pingpong::run),
        #[cfg(feature = "chan_mpmc")]
        "chan_mpmc" => Some(chan_mpmc::run),
        #[cfg(feature = "select")]
        "select" => Some(select::run),
        #[cfg(feature = "mutex")]
        "mutex" => Some(mutex::run),
        #[cfg(feature = "idle")]
        "idle" => Some(idle::run),
        #[cfg(feature = "echo")]
        "echo" => Some(echo::run),
        #[cfg(feature = "timers")]
        "timers" => Some(timers::run),
        #[cfg(feature = "chain")]
        "chain" => Some(chain::run),
        _ => None,
    };
    match body {
        #[cfg(feature = "rt")]
        Some(body) => rt::drive(args, body),
        _ => {
            eprintln!("cmp-goro: workload {} was not built (its cargo feature is off)", args.workload);
            std::process::exit(NOT_BUILT);
        }
    }
}
