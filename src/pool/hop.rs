//! What handing one job to a pool costs the interpreter, beyond moving it.
//!
//! CPython's executors run Python code for every job: the submitting thread makes the
//! future and the work item and later takes the result; a `ProcessPoolExecutor`'s manager
//! and feeder threads pickle the call, write it, read the result and unpickle it; a
//! subinterpreter is entered and the job's text compiled in it. All of that takes the GIL
//! where there is one. A process pool's worker runs Python too (unpickling the call,
//! calling, pickling the reply); that part is counted with the pool's, and the emulation
//! spends it on the manager thread beside the rest. In a server the jobs come a network
//! round trip apart, so each one wakes every thread of the hop from sleep: measured that
//! way, with its worker counted, 3.11's process-pool job costs about 100 µs of CPU here;
//! back to back and without its worker, 62.
//! The emulated pools move a job with a queue, a pipe or a channel and
//! no interpreter work, so a server spends a [`HopCost`] per job as CPU work of the
//! interpreter: its `submitter` part on the thread that submits, before it submits; its
//! `pool` part on the pool's own thread — a process pool's manager thread, half before it
//! writes the job and half after it reads the reply, as CPython's feeder and manager
//! threads each take the GIL once; a thread pool's worker; a subinterpreter, under its own
//! GIL.

use std::time::Duration;

use crate::pool::Executor;
use crate::protocol::Request;
use crate::system::cpu_time;

/// Interpreter work per job, in CPU time: on the submitting thread and on the pool's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HopCost {
    pub submitter: Duration,
    pub pool: Duration,
}

impl HopCost {
    pub const NONE: HopCost = HopCost {
        submitter: Duration::ZERO,
        pool: Duration::ZERO,
    };

    pub fn is_none(&self) -> bool {
        *self == HopCost::NONE
    }

    pub fn total(&self) -> Duration {
        self.submitter + self.pool
    }

    /// What `measured` costs beyond `own`, part by part (never below nothing): CPython's
    /// executor less what the emulated pool already spends on its queue, pipe and wake-ups.
    pub fn beyond(measured: HopCost, own: HopCost) -> HopCost {
        HopCost {
            submitter: measured.submitter.saturating_sub(own.submitter),
            pool: measured.pool.saturating_sub(own.pool),
        }
    }
}

/// A server's hop cost to each kind of pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HopCosts {
    pub threads: HopCost,
    pub processes: HopCost,
    pub interpreters: HopCost,
}

impl Default for HopCosts {
    /// CPython 3.11.7's executors (3.13.0's for subinterpreters) on an Intel Xeon host in
    /// December 2026, less what the emulated pools spend there themselves — measured as
    /// `clab lab` measures them per interpreter (a pause after each job, a worker process's
    /// CPU counted).
    fn default() -> HopCosts {
        let cost = |submitter_us, pool_us| HopCost {
            submitter: Duration::from_micros(submitter_us),
            pool: Duration::from_micros(pool_us),
        };
        HopCosts {
            threads: cost(9, 6),
            processes: cost(14, 71),
            interpreters: cost(6, 48),
        }
    }
}

impl HopCosts {
    pub const NONE: HopCosts = HopCosts {
        threads: HopCost::NONE,
        processes: HopCost::NONE,
        interpreters: HopCost::NONE,
    };
}

/// The pause after each job in [`measure`]: a server's next request comes a network round
/// trip after its reply, and in that pause every thread a hop wakes falls asleep again.
pub const GAP: Duration = Duration::from_micros(100);

/// The CPU time per job that handing `jobs` tiny jobs to `pool`, each followed by a
/// [`GAP`], costs — on the calling thread, and on every other of this process and in
/// `workers` (a process pool's worker processes' CPU so far) — the median of `repeats`.
/// What the pauses alone cost is measured in each repeat and taken off. The same
/// measurement as `clab_bench.py hop` makes of CPython's executors.
pub fn measure(
    pool: &dyn Executor,
    workers: impl Fn() -> Duration,
    jobs: u32,
    repeats: usize,
) -> std::io::Result<HopCost> {
    let jobs = jobs.max(1);
    let mut submitter = Vec::with_capacity(repeats);
    let mut others = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let (process, thread) = (cpu_time::process(), cpu_time::thread());
        for _ in 0..jobs {
            std::thread::sleep(GAP);
        }
        let pauses_here = cpu_time::thread() - thread;
        let pauses = cpu_time::process() - process;
        let (process, thread, workers_before) =
            (cpu_time::process(), cpu_time::thread(), workers());
        for _ in 0..jobs {
            let reply = pool
                .submit(Request::Fib(1))
                .map_err(std::io::Error::other)?
                .wait()
                .map_err(std::io::Error::other)?;
            if reply != crate::protocol::Reply::Fib(1) {
                return Err(std::io::Error::other(format!("`fib 1` answered {reply}")));
            }
            std::thread::sleep(GAP);
        }
        let mine = (cpu_time::thread() - thread).saturating_sub(pauses_here);
        let all = (cpu_time::process() - process).saturating_sub(pauses)
            + workers().saturating_sub(workers_before);
        submitter.push(mine / jobs);
        others.push(all.saturating_sub(mine) / jobs);
    }
    Ok(HopCost {
        submitter: median(submitter),
        pool: median(others),
    })
}

/// The middle of `durations` (the upper one of an even count); zero for none.
pub(crate) fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or_default()
}

/// Spends `cost` of CPU as interpreter work, checkpointing through `interpreter` (which holds
/// the GIL, if any, while it works). Nothing at all for no cost, not even a checkpoint.
pub fn spend(cost: Duration, interpreter: &mut impl crate::work::Interpreter) {
    if !cost.is_zero() {
        crate::work::busy(cost, interpreter);
    }
}

/// What each emulated pool of one worker, without a GIL, spends per tiny job by itself
/// (its queue, pipe and wake-ups), measured as [`measure`] does: what a CPython's measured
/// hop is reduced by before the emulation standing for it spends the rest.
pub fn own_costs(
    worker: crate::pool::WorkerCommand,
    jobs: u32,
    repeats: usize,
) -> std::io::Result<HopCosts> {
    use crate::gil::{GilConfig, Variant};
    use crate::pool::{InterpreterPool, ProcessPool, ThreadPool};
    let threads = ThreadPool::new(1, None)?;
    let processes = ProcessPool::new(1, worker)?;
    let interpreters = InterpreterPool::new(1, GilConfig::new(Variant::None), 45)?;
    let in_process = || Duration::ZERO;
    let workers = || {
        let pids = processes.worker_pids();
        pids.into_iter().map(cpu_time::of_process).sum()
    };
    Ok(HopCosts {
        threads: measure(&threads, in_process, jobs, repeats)?,
        processes: measure(&processes, workers, jobs, repeats)?,
        interpreters: measure(&interpreters, in_process, jobs, repeats)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ThreadPool;

    /// The pool's work is counted as the pool's, not the waiting submitter's.
    #[test]
    fn measure_tells_the_pools_work_from_the_submitters() {
        let pool = ThreadPool::spending(1, None, Duration::from_millis(1)).unwrap();
        let cost = measure(&pool, || Duration::ZERO, 20, 3).unwrap();
        assert!(cost.pool >= Duration::from_micros(800), "{cost:?}");
        assert!(cost.submitter < Duration::from_micros(500), "{cost:?}");
    }

    #[test]
    fn beyond_is_part_by_part_and_never_below_nothing() {
        let us = Duration::from_micros;
        let measured = HopCost {
            submitter: us(10),
            pool: us(50),
        };
        let own = HopCost {
            submitter: us(12),
            pool: us(5),
        };
        assert_eq!(
            HopCost::beyond(measured, own),
            HopCost {
                submitter: Duration::ZERO,
                pool: us(45)
            }
        );
    }
}
