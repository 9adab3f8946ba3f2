//! Runs `examples/tokio_bridge.rs` (compiled in as a module, so this is
//! the code `cargo run --example tokio_bridge` runs).

mod support;

#[allow(dead_code)]
#[path = "../examples/tokio_bridge.rs"]
mod tokio_bridge;

#[test]
fn coroutines_get_answers_from_tokio_only_code() {
    support::within("the tokio bridge example", || {
        let mut answers = tokio_bridge::run(20, 3);
        answers.sort();
        let mut want: Vec<String> = (0..20)
            .flat_map(|w| (0..3).map(move |i| format!("value-of-k{w}-{i}")))
            .collect();
        want.sort();
        assert_eq!(answers, want);
    });
}
