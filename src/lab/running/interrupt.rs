//! A lab run asked to stop (SIGINT or SIGTERM): the binary notes the signal here, and the
//! lab looks at each step of a measurement (`Lab::step`), each server it starts and each load
//! it runs, so an interrupted run ends at the next of them — its servers stopped, the report
//! of what finished written.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// Shared between whoever catches the signal and the lab; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    /// The signal's number; 0 while none came.
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Notes that `signal` asked the run to stop (the first signal counts).
    pub fn raise(&self, signal: i32) {
        let _ = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The signal that asked the run to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// The signal's name, as the report shows it ("SIGINT").
    pub fn name(&self) -> Option<String> {
        let signal = self.signal()?;
        Some(
            nix::sys::signal::Signal::try_from(signal)
                .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned()),
        )
    }

    /// `Err(Interrupted)` once a signal came: the lab's checkpoints.
    pub fn check(&self) -> Result<(), super::LabError> {
        match self.name() {
            Some(name) => Err(super::LabError::Interrupted(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_counts_and_checks_fail_after_it() {
        let interrupt = Interrupt::new();
        assert!(interrupt.check().is_ok());
        interrupt.clone().raise(libc::SIGTERM);
        interrupt.raise(libc::SIGINT);
        assert_eq!(interrupt.name().as_deref(), Some("SIGTERM"));
        assert!(matches!(
            interrupt.check(),
            Err(crate::lab::LabError::Interrupted(name)) if name == "SIGTERM"
        ));
    }
}
