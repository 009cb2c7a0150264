//! What can go wrong while the lab runs: one error type for every layer above.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot pin to CPUs {0:?}")]
    Placement(Vec<usize>, #[source] nix::Error),
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] std::io::Error),
    #[error("the server {0:?} did not start: {1}")]
    Start(String, String),
    #[error("asking {0:?} for {1:?} failed")]
    Ask(String, String, #[source] std::io::Error),
    #[error("load on {0:?} failed")]
    Load(String, #[source] crate::load::LoadError),
    #[error("{0}")]
    Measurement(String),
    #[error("no experiment {0:?}; the catalogue has: {1}")]
    UnknownExperiment(String, String),
    #[error("interrupted by {0}")]
    Interrupted(String),
}
