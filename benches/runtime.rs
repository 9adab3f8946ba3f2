//! Placeholder: runtime benchmarks.
fn main() {}
