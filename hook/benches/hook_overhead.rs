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

/// `iters` send+recv pairs on a fresh socket pair, timed.
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

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
