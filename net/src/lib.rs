//! goro-net: placeholder, filled by the net issue.
