//! One way to lock the plain-data mutexes of this crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering its data if a holder panicked: every mutex this is used on
/// guards plain data that no panic can leave half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
