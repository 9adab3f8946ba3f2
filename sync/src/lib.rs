//! goro-sync (placeholder, filled by its issue).
