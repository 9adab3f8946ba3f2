//! coroutine_local!: per coroutine inside one, per thread outside.

mod support;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};

goro::coroutine_local! {
    static COUNTER: Cell<u32> = Cell::new(100);
    /// A documented one.
    pub static NAME: RefCell<String> = RefCell::new(String::from("init"));
}

#[test]
fn each_coroutine_starts_from_the_initializer() {
    support::within("each coroutine starts from the initializer", || {
        let hs: Vec<_> = (0..100u32)
            .map(|i| {
                goro::spawn(move || {
                    assert_eq!(COUNTER.with(Cell::get), 100);
                    for _ in 0..=i {
                        COUNTER.with(|c| c.set(c.get() + 1));
                        goro::yield_now(); // others on this worker must not see it
                    }
                    COUNTER.with(Cell::get)
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), 100 + i as u32 + 1);
        }
    });
}

#[test]
fn nothing_is_inherited_from_the_spawner() {
    support::within("nothing is inherited from the spawner", || {
        let child_saw = goro::spawn(|| {
            NAME.with(|n| n.borrow_mut().push_str("-parent"));
            goro::spawn(|| NAME.with(|n| n.borrow().clone()))
                .join()
                .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(child_saw, "init");
    });
}

#[test]
fn outside_a_coroutine_it_is_per_thread() {
    support::within("outside a coroutine it is per thread", || {
        COUNTER.with(|c| c.set(5));
        assert_eq!(COUNTER.with(Cell::get), 5);
        assert_eq!(
            std::thread::spawn(|| COUNTER.with(Cell::get))
                .join()
                .unwrap(),
            100
        );
        assert_eq!(goro::spawn(|| COUNTER.with(Cell::get)).join().unwrap(), 100);
    });
}

static DROPS: AtomicUsize = AtomicUsize::new(0);
struct Tracked;
impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}
goro::coroutine_local! {
    static TRACKED: Tracked = Tracked;
}

#[test]
fn values_are_dropped_when_the_coroutine_ends_before_join_returns() {
    support::within(
        "values are dropped when the coroutine ends before join returns",
        || {
            let before = DROPS.load(Ordering::SeqCst);
            let hs: Vec<_> = (0..10)
                .map(|_| goro::spawn(|| TRACKED.with(|_| ())))
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(DROPS.load(Ordering::SeqCst) - before, 10);
        },
    );
}
