//! CPU time used so far: by this whole process (every thread, user and system), by the
//! calling thread alone, or by another process of ours.

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

/// Every thread of process `pid`, to the nanosecond (the scheduler's own count, where the
/// clock-tick figures of `/proc/PID/stat` have only hundredths of a second); zero if the
/// kernel will not say.
pub fn of_process(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let on_cpu_ns = |task: std::fs::DirEntry| -> Option<u64> {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        stat.split_whitespace().next()?.parse().ok()
    };
    Duration::from_nanos(tasks.flatten().filter_map(on_cpu_ns).sum())
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
        assert!(of_process(std::process::id()) >= thread_used);
    }
}
