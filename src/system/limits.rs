//! Process limits a run needs raised, and what they allow: open file descriptors, for
//! thousands of connections.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The descriptor limit cannot be raised to what is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "about {needed} file descriptors are needed, but the limit is {limit}; raise it (ulimit -n) or ask for fewer connections"
)]
pub struct DescriptorLimit {
    pub needed: u64,
    pub limit: u64,
}

/// Makes sure this process may hold `needed` descriptors, raising the soft limit toward
/// the hard one if it must.
pub fn ensure_descriptors(needed: u64) -> Result<(), DescriptorLimit> {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    if needed <= soft {
        return Ok(());
    }
    if needed > hard || setrlimit(Resource::RLIMIT_NOFILE, needed, hard).is_err() {
        return Err(DescriptorLimit {
            needed,
            limit: hard,
        });
    }
    Ok(())
}

/// The most connections any server is configured for, whatever the limit says.
pub const MAX_CONNECTIONS: u64 = 1_000_000;

/// What the descriptor limit leaves for connections: the hard limit (the soft one can be
/// raised to it, see [`ensure_descriptors`]), less a reserve for the process's own files —
/// listener, event queue, pipes to worker processes, logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// The hard limit on open descriptors.
    pub limit: u64,
    /// Descriptors kept for everything but connections.
    pub reserved: u64,
}

impl DescriptorBudget {
    /// This process's budget. An unlimited or unreadable limit counts as [`MAX_CONNECTIONS`]
    /// plus its reserve.
    pub fn of_this_process() -> DescriptorBudget {
        let limit = getrlimit(Resource::RLIMIT_NOFILE)
            .map_or(u64::MAX, |(_soft, hard)| hard)
            .min(MAX_CONNECTIONS + MAX_CONNECTIONS / 20);
        DescriptorBudget::for_limit(limit)
    }

    /// The budget under a hard limit of `limit`: a twentieth (at least 64) is reserved.
    pub fn for_limit(limit: u64) -> DescriptorBudget {
        DescriptorBudget {
            limit,
            reserved: (limit / 20).max(64).min(limit),
        }
    }

    /// How many connections fit.
    pub fn connections(&self) -> u64 {
        (self.limit - self.reserved).clamp(1, MAX_CONNECTIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twentieth_of_the_limit_is_kept_for_the_process_own_files() {
        assert_eq!(DescriptorBudget::for_limit(20_000).connections(), 19_000);
        assert_eq!(DescriptorBudget::for_limit(1024).connections(), 960);
        assert_eq!(DescriptorBudget::for_limit(50).connections(), 1);
        assert_eq!(
            DescriptorBudget::for_limit(u64::MAX / 2).connections(),
            MAX_CONNECTIONS
        );
    }
}
