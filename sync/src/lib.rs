//! goro-sync: placeholder, filled by the sync issue.
