//! goro-runtime (placeholder, filled by its issue).
