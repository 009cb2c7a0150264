//! Linux futexes: sleep while a word holds a value, wake a sleeper on it. The primitive
//! free-threaded CPython parks a thread on when an object's lock stays held.

use std::sync::atomic::AtomicU32;

/// Sleeps while `word` holds `expected`; returns at once if it does not, on a wake, or on a
/// signal or spurious wake-up — the caller looks again either way.
pub(crate) fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the address is a live, aligned u32 for the call's duration; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes every thread sleeping on `word`, if any.
pub(crate) fn wake_all(word: &AtomicU32) {
    // SAFETY: as in `wait`; waking needs only the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}
