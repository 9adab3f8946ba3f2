//! A panic ends only its coroutine; join reports it; the runtime goes on.

mod support;

#[test]
fn join_returns_the_payload_and_the_runtime_keeps_running() {
    support::within(
        "join returns the payload and the runtime keeps running",
        || {
            let seven = std::hint::black_box(7);
            let h = goro::spawn(move || -> u32 { panic!("boom {seven}") });
            let payload = h.join().unwrap_err();
            assert_eq!(
                payload.downcast_ref::<String>().map(String::as_str),
                Some("boom 7")
            );
            let str_payload = goro::spawn(|| panic!("static")).join().unwrap_err();
            assert_eq!(*str_payload.downcast::<&str>().unwrap(), "static");
            assert_eq!(goro::spawn(|| 1 + 1).join().unwrap(), 2);
        },
    );
}

#[test]
fn many_panicking_coroutines_do_not_disturb_the_others() {
    support::within(
        "many panicking coroutines do not disturb the others",
        || {
            let hs: Vec<_> = (0..300)
                .map(|i| goro::spawn(move || if i % 3 == 0 { panic!("p{i}") } else { i }))
                .collect();
            let mut ok = 0;
            let mut failed = 0;
            for h in hs {
                match h.join() {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            assert_eq!((ok, failed), (200, 100));
        },
    );
}

#[test]
fn a_panicking_coroutine_can_be_joined_by_a_coroutine() {
    support::within("a panicking coroutine can be joined by a coroutine", || {
        let r = goro::spawn(|| goro::spawn(|| panic!("inner")).join().is_err())
            .join()
            .unwrap();
        assert!(r);
    });
}

#[test]
fn panics_are_reported_with_the_coroutine_name() {
    // The report goes to stderr; run it in a child process to read it.
    let name = "panics_are_reported_with_the_coroutine_name";
    if support::in_child(name) {
        let _ = goro::Builder::new()
            .name("reporter")
            .spawn(|| panic!("visible"))
            .unwrap()
            .join();
        return;
    }
    let out = support::child(name, &[("RUST_BACKTRACE", "0")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("coroutine 'reporter'")
            && err.contains("panicked at")
            && err.contains("visible"),
        "{err}"
    );
}
