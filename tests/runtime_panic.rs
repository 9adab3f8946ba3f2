//! A panic ends only its coroutine; join reports it; the runtime goes on.

#[test]
fn join_returns_the_payload_and_the_runtime_keeps_running() {
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
}

#[test]
fn many_panicking_coroutines_do_not_disturb_the_others() {
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
}

#[test]
fn a_panicking_coroutine_can_be_joined_by_a_coroutine() {
    let r = goro::spawn(|| goro::spawn(|| panic!("inner")).join().is_err())
        .join()
        .unwrap();
    assert!(r);
}

#[test]
fn panics_are_reported_with_the_coroutine_name() {
    // The report goes to stderr; run it in a child process to read it.
    if std::env::var_os("GORO_CHILD_PANIC").is_some() {
        let _ = goro::Builder::new()
            .name("reporter")
            .spawn(|| panic!("visible"))
            .unwrap()
            .join();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "panics_are_reported_with_the_coroutine_name",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GORO_CHILD_PANIC", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("coroutine 'reporter'")
            && err.contains("panicked at")
            && err.contains("visible"),
        "{err}"
    );
}
