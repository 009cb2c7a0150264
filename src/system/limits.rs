//! Process limits a run needs raised: open file descriptors, for thousands of connections.

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
