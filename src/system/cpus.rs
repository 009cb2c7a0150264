//! CPU sets: pinning a thread (and what it starts afterwards) and reading where it may run.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The CPUs could not be set (one does not exist, or is not allowed here).
#[derive(Debug, thiserror::Error)]
#[error("cannot pin to CPUs {cpus:?}")]
pub struct PinError {
    pub cpus: Vec<usize>,
    #[source]
    pub source: nix::Error,
}

/// The set of `cpus`, for `sched_setaffinity`.
pub fn cpu_set(cpus: &[usize]) -> nix::Result<CpuSet> {
    let mut set = CpuSet::new();
    for cpu in cpus {
        set.set(*cpu)?;
    }
    Ok(set)
}

/// Pins the calling thread (and the threads it starts afterwards) to `cpus`.
pub fn pin(cpus: &[usize]) -> Result<(), PinError> {
    cpu_set(cpus)
        .and_then(|set| sched_setaffinity(Pid::from_raw(0), &set))
        .map_err(|source| PinError {
            cpus: cpus.to_vec(),
            source,
        })
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|cpu| set.is_set(*cpu).unwrap_or(false))
        .collect()
}
