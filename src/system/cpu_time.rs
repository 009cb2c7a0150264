//! CPU time used so far: by this whole process (every thread, user and system), or by the
//! calling thread alone.

use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};

/// Every thread of this process, user and system time; zero if the kernel will not say.
pub fn process() -> Duration {
    used(UsageWho::RUSAGE_SELF)
}

/// The calling thread's, user and system time; zero if the kernel will not say.
pub fn thread() -> Duration {
    used(UsageWho::RUSAGE_THREAD)
}

fn used(who: UsageWho) -> Duration {
    getrusage(who).map_or(Duration::ZERO, |usage| {
        let time = |t: nix::sys::time::TimeVal| {
            Duration::new(t.tv_sec().max(0) as u64, 0)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        time(usage.user_time()) + time(usage.system_time())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_computing_uses_cpu_time_that_the_process_counts_too() {
        let (process_before, thread_before) = (process(), thread());
        let started = std::time::Instant::now();
        let mut state = 1u64;
        while started.elapsed() < Duration::from_millis(30) {
            state = std::hint::black_box(state.wrapping_mul(31).rotate_left(7));
        }
        let thread_used = thread() - thread_before;
        assert!(thread_used >= Duration::from_millis(5), "{thread_used:?}");
        assert!(process() - process_before >= thread_used);
    }
}
