//! The machine a measurement ran on, and the build of clab that measured it, as reports
//! record them: two reports can be tied to two builds.

use serde::Serialize;

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit built (`-dirty` when the sources differed from it), from the build script.
pub const COMMIT: &str = env!("CLAB_COMMIT");
/// The compiler, as `rustc --version` names itself.
pub const RUSTC: &str = env!("CLAB_RUSTC");
/// Cargo's profile: `debug` or `release`.
pub const PROFILE: &str = env!("CLAB_PROFILE");
/// `clab --version`'s line: "0.1.0 (commit 7b0b82f1a2b3, rustc 1.95.0 (…), release)".
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CLAB_COMMIT"),
    ", ",
    env!("CLAB_RUSTC"),
    ", ",
    env!("CLAB_PROFILE"),
    ")"
);

/// What ran the measurement: this program's build and the machine under it.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub clab_version: &'static str,
    /// `debug` or `release`: whether the code that measured was optimised.
    pub build: &'static str,
    pub commit: &'static str,
    pub rustc: &'static str,
    pub kernel: String,
    pub cores: usize,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine {
            clab_version: VERSION,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            commit: COMMIT,
            rustc: RUSTC,
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
