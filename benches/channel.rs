//! Placeholder: filled by the channel issue.
fn main() {}
