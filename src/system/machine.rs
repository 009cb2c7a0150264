//! The machine a measurement ran on, as reports record it.

use serde::Serialize;

/// What ran the measurement: this program's build and the machine under it.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub clab_version: &'static str,
    pub build: &'static str,
    pub kernel: String,
    pub cores: usize,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine {
            clab_version: env!("CARGO_PKG_VERSION"),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned()),
            // Configured CPUs, not this thread's affinity, which a pinned caller narrows.
            cores: nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
                .ok()
                .flatten()
                .map_or(1, |n| n.max(1) as usize),
        }
    }
}
