//! goro-net (placeholder, filled by its issue).
