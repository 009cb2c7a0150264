//! One timing-shaped measurement at a time on this machine: a test that times work on both
//! cores holds [`timing_lock`] for its whole run, so no two measurements share the cores —
//! across threads of one test binary and across binaries (a runner such as nextest runs them
//! side by side).

use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};

/// Held for a measurement's whole run; dropping it lets the next one start.
pub struct TimingLock {
    _file: std::fs::File,
    _here: MutexGuard<'static, ()>,
}

/// Waits until no other measurement holds the lock, in this process or another.
pub fn timing_lock() -> TimingLock {
    static HERE: Mutex<()> = Mutex::new(());
    let here = HERE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("clab-timing-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the timing lock");
    // SAFETY: flock on a descriptor this function owns; released when the file closes.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "lock {}", path.display());
    TimingLock {
        _file: file,
        _here: here,
    }
}
