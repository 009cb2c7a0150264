//! CPU sets: pinning a thread (and what it starts afterwards), reading where it may run, and
//! the kernel's CPU list format that `/proc` and the command line both use; and the idle
//! scheduling class, for a task that must only ever run when nothing else would.

use std::collections::BTreeSet;

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

/// Parses the kernel's CPU list format: "0-2,5,7-8" → [0, 1, 2, 5, 7, 8] (sorted, each once);
/// `None` for anything else, a backward range included.
pub fn parse_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = BTreeSet::new();
    for part in list.split(',').filter(|part| !part.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.parse::<usize>().ok()?, last.parse().ok()?),
            None => {
                let cpu: usize = part.parse().ok()?;
                (cpu, cpu)
            }
        };
        if last < first || last > 1 << 16 {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus.into_iter().collect())
}

/// Puts the calling thread (and what it starts afterwards) in the kernel's idle class
/// (`SCHED_IDLE`): it runs only when no other task of the CPU wants to, and any that wakes
/// takes the CPU from it at once. One raw system call, so safe between fork and exec.
pub fn idle_class() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain system call on the calling thread with a valid parameter block.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_kernels_cpu_lists_parse() {
        assert_eq!(parse_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(parse_list("1"), Some(vec![1]));
        assert_eq!(parse_list(""), Some(vec![]));
        assert_eq!(parse_list("3-1"), None);
        assert_eq!(parse_list("a"), None);
    }

    proptest! {
        #[test]
        fn cpu_lists_round_trip(cpus in proptest::collection::btree_set(0usize..256, 0..40)) {
            let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
            let cpus: Vec<usize> = cpus.into_iter().collect();
            prop_assert_eq!(parse_list(&list.join(",")), Some(cpus));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in ".{0,40}") {
            let _ = parse_list(&text);
        }
    }
}
