//! Finding the programs the lab runs beside its own: on `PATH`, or where Debian installs
//! daemons such as `nats-server` (`/usr/sbin`, not on every user's `PATH`).

use std::path::PathBuf;

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `name` on `PATH`, else in the system's sbin directories.
pub fn find(name: &str) -> Option<PathBuf> {
    on_path(name).or_else(|| {
        ["/usr/local/sbin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|dir| PathBuf::from(dir).join(name))
            .find(|path| path.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_is_there_and_nothing_else() {
        assert!(find("sh").is_some());
        assert_eq!(find("clab-no-such-program"), None);
    }
}
