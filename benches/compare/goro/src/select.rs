//! select: one receiver selects over 4 unbuffered channels, one producer each.
//! A closed channel's arm is switched to `chan::never()` (Go's nil channel);
//! a fifth arm on one `chan::after` timer channel bounds the run by time,
//! as Go's `time.NewTimer` arm and tokio's pinned `sleep` do.
//! API: `goro::go!`, `chan::bounded(0)`, `chan::never`, `chan::after`,
//! `goro::select!` with `recv(..) -> res` arms, `chan::RecvError`.

use crate::common::{self, Args, Report};
use goro::chan::{self, Receiver};
use std::time::{Duration, Instant};

/// Longest the receive loop may run before it reports what it has.
const LIMIT: Duration = Duration::from_secs(60);

pub fn run(args: &Args) {
    let n = args.n(None);
    let per = n / common::SELECT_CHANNELS;
    let total = per * common::SELECT_CHANNELS;
    let mut rxs: Vec<Receiver<u64>> = Vec::new();
    let mut producers = Vec::new();
    let start = Instant::now();
    for _ in 0..common::SELECT_CHANNELS {
        let (tx, rx) = chan::bounded::<u64>(0);
        rxs.push(rx);
        producers.push(goro::go!(move || {
            for i in 0..per as u64 {
                if tx.send(i).is_err() {
                    break;
                }
            }
        }));
    }
    let (count, sum, timed_out) = receive_all(&rxs, LIMIT);
    let el = start.elapsed();
    drop(rxs);
    for p in producers {
        p.join().expect("producer panicked");
    }
    let want = common::sum_below(per) * common::SELECT_CHANNELS as u64;
    let mut r = Report::new("select", "ns_per_msg", common::ns_per(el, count))
        .kv("n", total)
        .kv("received", count)
        .kv("lost", total - count)
        .kv("sum_ok", u8::from(sum == want || count != total));
    if timed_out {
        r = r.kv("note", "timed_out");
    }
    r.print();
}

/// Receives until all four channels are closed or `limit` passes; returns
/// (messages, their sum, whether time ran out).
fn receive_all(rxs: &[Receiver<u64>], limit: Duration) -> (usize, u64, bool) {
    let nev = chan::never::<u64>();
    let mut open = [true; 4];
    let (mut count, mut sum) = (0usize, 0u64);
    let limit = chan::after(limit);
    let mut timed_out = false;
    let mut on = |i: usize, res: Result<u64, chan::RecvError>, open: &mut [bool; 4]| match res {
        Ok(v) => {
            count += 1;
            sum += v;
        }
        Err(_) => open[i] = false,
    };
    while open.iter().any(|o| *o) && !timed_out {
        goro::select! {
            recv(if open[0] { &rxs[0] } else { &nev }) -> res => on(0, res, &mut open),
            recv(if open[1] { &rxs[1] } else { &nev }) -> res => on(1, res, &mut open),
            recv(if open[2] { &rxs[2] } else { &nev }) -> res => on(2, res, &mut open),
            recv(if open[3] { &rxs[3] } else { &nev }) -> res => on(3, res, &mut open),
            recv(limit) -> _ => timed_out = true,
        }
    }
    (count, sum, timed_out)
}
