//! The workloads behind the requests: naive Fibonacci, calibrated busy work, sleep, echo.
//!
//! CPU work calls [`Interpreter::checkpoint`] at every "bytecode boundary" (each fib call,
//! each spin unit), and blocking calls run inside [`Interpreter::allow_threads`]. Without a
//! GIL the interpreter is [`Free`], whose methods are empty inline functions that compile to
//! nothing; the emulated GIL (`crate::gil`) plugs in a per-thread handle instead.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::protocol::{Reply, Request};

/// Does a request's work on the calling thread and returns its reply; `sleep` blocks the
/// thread (with the interpreter lock released). Pool threads and process workers run jobs
/// through this; servers also answer through it, except where a model waits its own way.
/// `stats` describes a server, so only a server can answer it.
pub fn run(request: &Request, interpreter: &mut impl Interpreter) -> Reply {
    match request {
        Request::Fib(n) => Reply::Fib(fib(*n, interpreter)),
        Request::Spin(ms) => {
            spin(*ms, interpreter);
            Reply::Spun(*ms)
        }
        Request::Sleep(ms) => {
            interpreter.allow_threads(|| std::thread::sleep(Duration::from_millis(*ms)));
            Reply::Slept(*ms)
        }
        Request::Echo(text) => Reply::Echo(text.clone()),
        Request::Stats => Reply::Error("stats are kept by the server, not by a worker".into()),
    }
}

/// What running code tells an interpreter lock, as CPython's eval loop and C extensions do.
pub trait Interpreter {
    /// A bytecode boundary: the lock may be handed to another thread here.
    fn checkpoint(&mut self);

    /// Runs blocking `f` with the lock released (`Py_BEGIN_ALLOW_THREADS`).
    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R;
}

/// No interpreter lock: checkpoints and releases cost nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Free;

impl Interpreter for Free {
    #[inline(always)]
    fn checkpoint(&mut self) {}

    #[inline(always)]
    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Naive doubly-recursive Fibonacci, `fib(n) = 1` for `n <= 2`, with a checkpoint per call.
/// Exponential on purpose: it is the essays' stand-in for CPU-bound request handling.
pub fn fib(n: u32, interpreter: &mut impl Interpreter) -> u64 {
    interpreter.checkpoint();
    if n <= 2 {
        1
    } else {
        fib(n - 1, interpreter) + fib(n - 2, interpreter)
    }
}

/// Iterations of the mixing loop in one spin unit: small enough (about a microsecond)
/// that a checkpoint per unit is as fine-grained as a switch interval needs.
const SPIN_UNIT_ITERATIONS: u32 = 200;

/// One unit of busy work the optimiser cannot remove.
#[inline(never)]
fn spin_unit(mut state: u64) -> u64 {
    for _ in 0..SPIN_UNIT_ITERATIONS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
    }
    black_box(state)
}

/// How many spin units this machine runs per millisecond, measured once per process.
///
/// Spin is calibrated work, not a clock: under an interpreter lock, `spin 5` still does
/// 5 ms worth of computing and so takes longer in wall time, as real CPU work would.
pub fn spin_units_per_ms() -> u64 {
    static UNITS_PER_MS: OnceLock<u64> = OnceLock::new();
    *UNITS_PER_MS.get_or_init(calibrate)
}

/// Times a few short batches and keeps the fastest, the one least disturbed by other load
/// on a shared machine.
fn calibrate() -> u64 {
    const BATCH: u64 = 2_000;
    let mut state = 0x9E37_79B9_7F4A_7C15;
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..BATCH {
                state = spin_unit(state);
            }
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(1))
        .max(Duration::from_nanos(1));
    let per_ms = BATCH as f64 * 1e6 / best.as_nanos() as f64;
    (per_ms as u64).max(1)
}

/// Busy CPU work for about `ms` milliseconds of this machine's time, checkpointing per unit.
pub fn spin(ms: u64, interpreter: &mut impl Interpreter) {
    let mut state = 0x2545_F491_4F6C_DD1D;
    for _ in 0..ms.saturating_mul(spin_units_per_ms()) {
        interpreter.checkpoint();
        state = spin_unit(state);
    }
    black_box(state);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u64);
    impl Interpreter for Counter {
        fn checkpoint(&mut self) {
            self.0 += 1;
        }
        fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
            f()
        }
    }

    #[test]
    fn fib_matches_the_essays_definition() {
        let values: Vec<u64> = (0..=10).map(|n| fib(n, &mut Free)).collect();
        assert_eq!(values, [1, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55]);
        assert_eq!(fib(30, &mut Free), 832_040);
    }

    #[test]
    fn fib_checkpoints_on_every_call() {
        let mut calls = Counter(0);
        fib(10, &mut calls);
        // calls(n) = calls(n-1) + calls(n-2) + 1, with calls(1) = calls(2) = 1.
        assert_eq!(calls.0, 109);
    }

    #[test]
    fn spin_checkpoints_per_unit_and_takes_about_its_time() {
        let mut units = Counter(0);
        let started = Instant::now();
        spin(20, &mut units);
        let took = started.elapsed();
        assert_eq!(units.0, 20 * spin_units_per_ms());
        // Calibration keeps the fastest batch, so spinning never takes much less than asked;
        // a loaded machine may make it take longer, hence the wide upper bound.
        assert!(took >= Duration::from_millis(10), "spin 20 took {took:?}");
        assert!(took < Duration::from_secs(2), "spin 20 took {took:?}");
    }
}
