//! What the hook adds to a call that does not wait: one `send` of a byte
//! and one `recv` of it on a ready Unix socket pair, through the hooks
//! (`libc::send`/`libc::recv`, which bind to goro-hook's definitions in
//! this binary) against libc's own functions (looked up with
//! `dlsym(RTLD_NEXT)`, what the program calls without the hook), on a
//! plain thread (the hook passes through) and in a coroutine (the hook's
//! own path on a socket it made non-blocking).
//!
//! `cargo bench -p goro-hook --bench hook_overhead`. Each iteration is a
//! send plus a recv, so the per-call overhead is half the difference.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use criterion::Criterion;

type SendFn = unsafe extern "C" fn(i32, *const libc::c_void, usize, i32) -> isize;
type RecvFn = unsafe extern "C" fn(i32, *mut libc::c_void, usize, i32) -> isize;

/// libc's own send and recv, bypassing the hooks.
fn libc_fns() -> (SendFn, RecvFn) {
    // SAFETY: NUL-terminated names looked up after this executable; the
    // results are libc's send and recv, of these prototypes.
    unsafe {
        let s = libc::dlsym(libc::RTLD_NEXT, c"send".as_ptr());
        let r = libc::dlsym(libc::RTLD_NEXT, c"recv".as_ptr());
        assert!(!s.is_null() && !r.is_null());
        (
            std::mem::transmute::<*mut libc::c_void, SendFn>(s),
            std::mem::transmute::<*mut libc::c_void, RecvFn>(r),
        )
    }
}

fn hooked_fns() -> (SendFn, RecvFn) {
    (libc::send, libc::recv)
}

/// `iters` send+recv pairs on a fresh socket pair, timed (never inlined,
/// so that an instruction count can be limited to it).
#[inline(never)]
fn pairs(iters: u64, (send, recv): (SendFn, RecvFn)) -> Duration {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    let mut byte = [7u8];
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: one-byte buffers on open sockets; the byte sent is
        // there to receive, so neither call blocks.
        unsafe {
            assert_eq!(send(fa, byte.as_ptr().cast(), 1, 0), 1);
            assert_eq!(recv(fb, byte.as_mut_ptr().cast(), 1, 0), 1);
        }
    }
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    assert!(goro_hook::enabled());
    let _ = goro_runtime::Config::new().workers(2).apply();
    let mut g = c.benchmark_group("send_recv_ready");
    g.bench_function("thread/libc", |b| b.iter_custom(|n| pairs(n, libc_fns())));
    g.bench_function("thread/hooked", |b| {
        b.iter_custom(|n| pairs(n, hooked_fns()))
    });
    g.bench_function("coroutine/libc", |b| {
        b.iter_custom(|n| {
            goro_runtime::go!(move || pairs(n, libc_fns()))
                .join()
                .unwrap()
        })
    });
    g.bench_function("coroutine/hooked", |b| {
        b.iter_custom(|n| {
            goro_runtime::go!(move || pairs(n, hooked_fns()))
                .join()
                .unwrap()
        })
    });
    g.finish();
}

/// The difference itself, measured paired: 2,001 rounds of 5,000 pairs
/// alternate between libc's functions and the hooks on the same socket
/// pair, each round's two halves in the opposite order of the last
/// round's, so drift of the machine (a VM whose system calls vary by more
/// than the hook costs) cancels out; prints the median difference per
/// call. Short rounds keep the drift inside one pair of halves small; many
/// of them keep the median steady.
fn paired(label: &str, in_coroutine: bool) {
    let run = move || {
        const N: u64 = 5_000;
        const ROUNDS: usize = 2_001;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        let mut byte = [7u8];
        let mut once = |(send, recv): (SendFn, RecvFn)| {
            let t = Instant::now();
            for _ in 0..N {
                // SAFETY: as in `pairs`.
                unsafe {
                    assert_eq!(send(fa, byte.as_ptr().cast(), 1, 0), 1);
                    assert_eq!(recv(fb, byte.as_mut_ptr().cast(), 1, 0), 1);
                }
            }
            t.elapsed().as_secs_f64() * 1e9 / (2 * N) as f64
        };
        let (mut base, mut diff, mut lows) = (Vec::new(), Vec::new(), (f64::MAX, f64::MAX));
        for round in 0..ROUNDS {
            let (l, h) = if round % 2 == 0 {
                let l = once(libc_fns());
                (l, once(hooked_fns()))
            } else {
                let h = once(hooked_fns());
                (once(libc_fns()), h)
            };
            base.push(l);
            diff.push(h - l);
            lows = (lows.0.min(l), lows.1.min(h));
        }
        base.sort_by(f64::total_cmp);
        diff.sort_by(f64::total_cmp);
        let m = diff.len();
        (
            base[m / 2],
            diff[m / 2],
            diff[m / 4],
            diff[3 * m / 4],
            lows.1 - lows.0,
        )
    };
    let (base, d, q1, q3, low) = if in_coroutine {
        goro_runtime::go!(run).join().unwrap()
    } else {
        run()
    };
    println!(
        "paired {label}: libc call {base:.1} ns; hook adds {d:+.1} ns per call \
         (median of 2,001 rounds, quartiles {q1:+.1} .. {q3:+.1}; fastest rounds differ by {low:+.1})"
    );
}

/// `GORO_HOOK_ICOUNT=<thread|coroutine>-<libc|hooked>:<pairs>` runs that
/// many pairs on one path and exits: for counting instructions, which
/// (unlike time on a shared VM) repeat exactly. The difference between two
/// counts of pairs, run under `valgrind --tool=callgrind`, divided by the
/// difference in pairs, is the user-space instructions per pair:
/// `GORO_HOOK_ICOUNT=coroutine-hooked:20000 valgrind --tool=callgrind
/// target/release/deps/hook_overhead-* --bench`.
fn icount(spec: &str) {
    let (path, n) = spec.split_once(':').expect("path:pairs");
    let n: u64 = n.parse().expect("pairs");
    let fns = match path.rsplit_once('-').map(|p| p.1) {
        Some("libc") => libc_fns(),
        Some("hooked") => hooked_fns(),
        _ => panic!("unknown path {path}"),
    };
    let t = if path.starts_with("coroutine") {
        let _ = goro_runtime::Config::new().workers(2).apply();
        goro_runtime::go!(move || pairs(n, fns)).join().unwrap()
    } else {
        pairs(n, fns)
    };
    println!("{path}: {n} pairs in {t:?}");
}

fn main() {
    if let Ok(spec) = std::env::var("GORO_HOOK_ICOUNT") {
        return icount(&spec);
    }
    // GORO_HOOK_PAIRED_ONLY=1 skips the criterion part.
    if std::env::var_os("GORO_HOOK_PAIRED_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
    }
    paired("thread (pass-through)", false);
    paired("coroutine (hook's own path)", true);
}
