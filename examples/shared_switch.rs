//! The cost of a switch on shared stacks against the bytes copied:
//! ping-pong between two coroutines over unbuffered channels, on private
//! stacks, on shared stacks that the pair does not share (no copy), and
//! on one shared stack with `PAD` bytes of live frames each (two copies
//! per switch: the other's frames out, its own in).
//!
//! ```sh
//! cargo run --release --example shared_switch
//! ```
//!
//! Runs itself once per configuration (the shared-stack count is read at
//! start-up), one worker each.

use std::hint::black_box;
use std::time::Instant;

use goro::chan;

const ROUNDS: u64 = 200_000;

#[inline(never)]
fn with_pad<const PAD: usize>(rx: &chan::Receiver<u64>, tx: &chan::Sender<u64>, echo: bool) -> u64 {
    let pad = black_box([0u8; PAD]);
    let mut last = 0;
    if echo {
        for v in rx {
            if tx.send(v + 1).is_err() {
                break;
            }
            last = v;
        }
    } else {
        let mut v = 0;
        for _ in 0..ROUNDS {
            tx.send(v).unwrap();
            v = rx.recv().unwrap();
        }
        last = v;
    }
    last + pad[PAD / 2] as u64
}

fn pair<const PAD: usize>(shared: bool) -> f64 {
    let b = || {
        if shared {
            goro::Builder::new().shared_stack()
        } else {
            goro::Builder::new().private_stack()
        }
    };
    let (to_echo, echo_rx) = chan::bounded::<u64>(0);
    let (to_main, main_rx) = chan::bounded::<u64>(0);
    let echo = b()
        .spawn(move || with_pad::<PAD>(&echo_rx, &to_main, true))
        .unwrap();
    let main = b()
        .spawn(move || {
            let t = Instant::now();
            let v = with_pad::<PAD>(&main_rx, &to_echo, false);
            drop(to_echo);
            assert_eq!(v, ROUNDS);
            t.elapsed()
        })
        .unwrap();
    let el = main.join().unwrap();
    echo.join().unwrap();
    // Two switches per round trip.
    el.as_nanos() as f64 / (ROUNDS * 2) as f64
}

fn run(mode: &str) {
    let s0 = goro::stats();
    let (ns, pad) = match mode {
        "private" => (pair::<8>(false), 8),
        "shared-apart" => (pair::<8>(true), 8),
        "1" => (pair::<8>(true), 8),
        "64" => (pair::<64>(true), 64),
        "256" => (pair::<256>(true), 256),
        "1000" => (pair::<1000>(true), 1000),
        "4000" => (pair::<4000>(true), 4000),
        _ => unreachable!(),
    };
    let s = goro::stats();
    let copies = s.stack_copy_outs - s0.stack_copy_outs;
    let bytes = (s.stack_copy_out_bytes - s0.stack_copy_out_bytes)
        .checked_div(copies)
        .unwrap_or(0);
    println!(
        "shared_switch: mode={mode:<13} pad={pad:>5} B  {ns:>6.1} ns/switch  copy_outs/switch={:.2}  bytes/copy={bytes}",
        copies as f64 / (ROUNDS * 2) as f64
    );
}

fn main() {
    if let Ok(mode) = std::env::var("SHARED_SWITCH_MODE") {
        run(&mode);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    for (mode, per_worker) in [
        ("private", "4"),
        ("shared-apart", "4"),
        ("1", "1"),
        ("64", "1"),
        ("256", "1"),
        ("1000", "1"),
        ("4000", "1"),
    ] {
        let st = std::process::Command::new(&exe)
            .env("SHARED_SWITCH_MODE", mode)
            .env("GORO_WORKERS", "1")
            .env("GORO_SHARED_STACKS_PER_WORKER", per_worker)
            .status()
            .expect("run a configuration");
        assert!(st.success());
    }
}
