//! The workloads behind the requests: naive Fibonacci, calibrated busy work, sleep, echo.
//!
//! CPU work calls [`Checkpoint::checkpoint`] at every "bytecode boundary" (each fib call,
//! each spin unit). Without a GIL the checkpoint is [`Free`], an empty inline function that
//! compiles to nothing; the emulated GIL plugs in a handle that may give the lock away there.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A place where CPU-bound code lets an interpreter lock switch threads.
pub trait Checkpoint {
    fn checkpoint(&mut self);
}

/// No interpreter lock: checkpoints cost nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Free;

impl Checkpoint for Free {
    #[inline(always)]
    fn checkpoint(&mut self) {}
}

/// Naive doubly-recursive Fibonacci, `fib(n) = 1` for `n <= 2`, with a checkpoint per call.
/// Exponential on purpose: it is the essays' stand-in for CPU-bound request handling.
pub fn fib(n: u32, checkpoint: &mut impl Checkpoint) -> u64 {
    checkpoint.checkpoint();
    if n <= 2 {
        1
    } else {
        fib(n - 1, checkpoint) + fib(n - 2, checkpoint)
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
pub fn spin(ms: u64, checkpoint: &mut impl Checkpoint) {
    let mut state = 0x2545_F491_4F6C_DD1D;
    for _ in 0..ms.saturating_mul(spin_units_per_ms()) {
        checkpoint.checkpoint();
        state = spin_unit(state);
    }
    black_box(state);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u64);
    impl Checkpoint for Counter {
        fn checkpoint(&mut self) {
            self.0 += 1;
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
