//! goro-channel: placeholder, filled by the channels issue.

/// Placeholder until the channels issue lands.
#[macro_export]
macro_rules! select {
    ($($t:tt)*) => {
        compile_error!("goro::select! is not implemented yet")
    };
}
