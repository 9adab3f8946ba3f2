//! pingpong: two coroutines bounce a counter over two unbuffered channels.
//! API: `goro::go!`, `chan::bounded(0)`, `Sender::send`, `Receiver::recv`, `&Receiver` iteration.

use crate::common::{self, Args, Report};
use goro::chan;
use std::time::Instant;

pub fn run(args: &Args) {
    let n = args.n(None);
    let (to_echo, echo_rx) = chan::bounded::<u64>(0);
    let (to_main, main_rx) = chan::bounded::<u64>(0);
    let echo = goro::go!(move || {
        for v in &echo_rx {
            if to_main.send(v + 1).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut v = 0u64;
    for _ in 0..n {
        to_echo.send(v).expect("echo coroutine gone");
        v = main_rx.recv().expect("echo coroutine gone");
    }
    let el = start.elapsed();
    drop(to_echo);
    echo.join().expect("echo panicked");
    Report::new("pingpong", "ns_per_roundtrip", common::ns_per(el, n))
        .kv("n", n)
        .kv("lost", n as u64 - v)
        .print();
}
