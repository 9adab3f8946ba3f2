//! goro-channel (placeholder, filled by its issue).
