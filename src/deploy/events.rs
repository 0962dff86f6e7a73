//! What a run tells whoever watches it (the binary prints it; the library never does).

use std::time::Duration;

/// What the binary is told while a run goes on.
pub trait Events {
    /// A step finished.
    fn step(&mut self, step: &str, elapsed: Duration);
    /// Something worth a line (a hook's output, a pull status, a reconcile).
    fn note(&mut self, text: &str);
}
