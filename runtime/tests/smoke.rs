//! Smoke tests for the runtime core.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn spawn_join_many() {
    let t = Instant::now();
    let hs: Vec<_> = (0..100_000u64)
        .map(|i| goro_runtime::spawn(move || i))
        .collect();
    let s: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(s, 100_000 * 99_999 / 2);
    eprintln!("100k spawn+join {:?}", t.elapsed());
}

#[test]
fn park_pingpong() {
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let h = goro_runtime::spawn(move || {
        let me = goro_runtime::park::current();
        let c2 = c.clone();
        let other = goro_runtime::spawn(move || {
            for _ in 0..1000 {
                c2.fetch_add(1, Ordering::SeqCst);
                me.unpark();
                goro_runtime::yield_now();
            }
        });
        while c.load(Ordering::SeqCst) < 1000 {
            goro_runtime::park::park();
        }
        other.join().unwrap();
    });
    h.join().unwrap();
}

#[test]
fn sleep_works() {
    let t = Instant::now();
    let hs: Vec<_> = (0..1000)
        .map(|i| goro_runtime::spawn(move || goro_runtime::sleep(Duration::from_millis(i % 50))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(t.elapsed() >= Duration::from_millis(49));
    eprintln!("sleep took {:?}", t.elapsed());
}

#[test]
fn panics_are_caught() {
    let h = goro_runtime::spawn(|| panic!("boom"));
    let e = h.join().unwrap_err();
    assert_eq!(*e.downcast::<&str>().unwrap(), "boom");
}
