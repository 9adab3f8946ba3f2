//! Placeholder: filled by the sync issue.
fn main() {}
