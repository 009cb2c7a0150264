//! The workloads behind the requests: naive Fibonacci, calibrated busy work, sleep, echo,
//! and a profiled function's call (`work`).
//!
//! CPU work calls [`Interpreter::checkpoint`] where CPython's eval loop would look at its
//! eval breaker, and blocking calls run inside [`Interpreter::allow_threads`]. How much work
//! lies between two checkpoints is the interpreter's [`Pace`]: one *tick*, the time CPython
//! takes here between two such looks (measured per interpreter by the lab). Without a GIL
//! the interpreter is [`Free`], whose methods are empty inline functions that compile to
//! nothing; the emulated GIL (`crate::gil`) plugs in a per-thread handle instead.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::protocol::{Reply, Request, WorkProfile};

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
        Request::Work(profile) => {
            work(profile, interpreter);
            Reply::Worked
        }
        Request::Stats | Request::Events(_) | Request::Call => Reply::Error(
            "stats, events and the server's own workload are the server's, not a worker's".into(),
        ),
    }
}

/// The reply line to a request that crossed into another process or interpreter as text:
/// parsed again, computed, and sent back as text. A profiled call's reply carries its bytes
/// back (`worked` and that many more), so the crossing copies what the function's pickled
/// arguments and result would.
pub fn answer_copied(line: &[u8], max_n: u32, interpreter: &mut impl Interpreter) -> String {
    match Request::parse(line, max_n) {
        Ok(Request::Work(profile)) if profile.bytes > 0 => {
            let reply = run(&Request::Work(profile), interpreter);
            format!("{reply} {}", "x".repeat(profile.bytes as usize))
        }
        Ok(request) => run(&request, interpreter).to_string(),
        Err(error) => Reply::Error(error.to_string()).to_string(),
    }
}

/// One call of a profiled function: busy work holding the lock, reaching checkpoints as
/// Python code does; then, with the lock released as a C call releases it, busy work and
/// a wait.
pub fn work(profile: &WorkProfile, interpreter: &mut impl Interpreter) {
    busy(profile.held, interpreter);
    interpreter.allow_threads(|| {
        busy(profile.released, &mut Free);
        if !profile.waiting.is_zero() {
            std::thread::sleep(profile.waiting);
        }
    });
}

/// What running code tells an interpreter lock, as CPython's eval loop and C extensions do.
pub trait Interpreter {
    /// A call or a backward jump: every CPython looks at its eval breaker here, so the lock
    /// may be handed to another thread.
    fn checkpoint(&mut self);

    /// Any other instruction boundary: CPython up to 3.9 may switch here too, 3.10 and later
    /// never do (they look only at calls and backward jumps).
    fn instruction(&mut self);

    /// How much work lies between two checkpoints; `None` where nothing is listening (no
    /// GIL), so the work runs without counting.
    fn pace(&self) -> Option<Pace>;

    /// Runs blocking `f` with the lock released (`Py_BEGIN_ALLOW_THREADS`).
    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R;

    /// Releases the lock until [`reattach`](Interpreter::reattach), for a thread that has no
    /// Python code to run for a while (a connection that only watches the server). Where
    /// the lock cannot be let go that long, the thread keeps it, which is always correct.
    fn detach(&mut self) {}

    /// Takes the lock back after [`detach`](Interpreter::detach); nothing if it is held.
    fn reattach(&mut self) {}
}

/// No interpreter lock: checkpoints and releases cost nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Free;

impl Interpreter for Free {
    #[inline(always)]
    fn checkpoint(&mut self) {}

    #[inline(always)]
    fn instruction(&mut self) {}

    #[inline(always)]
    fn pace(&self) -> Option<Pace> {
        None
    }

    #[inline(always)]
    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Naive doubly-recursive Fibonacci, `fib(n) = 1` for `n <= 2`, reaching a checkpoint once
/// per tick of work. Exponential on purpose: it is the essays' stand-in for CPU-bound request
/// handling.
pub fn fib(n: u32, interpreter: &mut impl Interpreter) -> u64 {
    match interpreter.pace() {
        None => fib_free(n),
        Some(pace) => {
            let mut counted = Counted {
                interpreter,
                every: pace.fib_calls,
                left: pace.fib_calls,
            };
            fib_counted(n, &mut counted)
        }
    }
}

fn fib_free(n: u32) -> u64 {
    if n <= 2 {
        1
    } else {
        fib_free(n - 1) + fib_free(n - 2)
    }
}

/// Calls a checkpoint every `every` fib calls.
struct Counted<'a, I> {
    interpreter: &'a mut I,
    every: u32,
    left: u32,
}

fn fib_counted(n: u32, counted: &mut Counted<'_, impl Interpreter>) -> u64 {
    counted.left -= 1;
    if counted.left == 0 {
        counted.left = counted.every;
        counted.interpreter.checkpoint();
    }
    if n <= 2 {
        1
    } else {
        fib_counted(n - 1, counted) + fib_counted(n - 2, counted)
    }
}

/// How much of each workload is one tick: the work between two checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub fib_calls: u32,
    pub spin_iterations: u32,
}

impl Pace {
    /// The pace at which work reaches a checkpoint every `tick` on this machine (at least
    /// one fib call or spin iteration between two).
    pub fn for_tick(tick: Duration) -> Pace {
        Pace::for_ticks(tick, tick)
    }

    /// `spin` reaching a checkpoint every `tick`, and `fib` every `fib_tick`.
    pub fn for_ticks(tick: Duration, fib_tick: Duration) -> Pace {
        let costs = work_costs();
        let per = |tick: Duration, cost_ns: f64| {
            ((tick.as_nanos() as f64 / cost_ns).round() as u32).max(1)
        };
        Pace {
            fib_calls: per(fib_tick, costs.fib_call_ns),
            spin_iterations: per(tick, costs.spin_iteration_ns),
        }
    }
}

/// What one fib call and one spin iteration cost on this machine, measured once per process.
#[derive(Debug, Clone, Copy)]
pub struct WorkCosts {
    pub fib_call_ns: f64,
    pub spin_iteration_ns: f64,
}

pub fn work_costs() -> WorkCosts {
    static COSTS: OnceLock<WorkCosts> = OnceLock::new();
    *COSTS.get_or_init(|| {
        // Timed as it runs under a lock: counting calls, with a checkpoint every few. (The
        // plain recursion is about 1.6× faster: the compiler folds part of it into a loop.)
        // fib(24) makes 92,735 calls (2·fib(n) − 1): about a tenth of a millisecond.
        let calls = 2 * fib_free(24) - 1;
        let best = (0..5)
            .map(|_| {
                let mut counted = Counted {
                    interpreter: &mut Listening,
                    every: 8,
                    left: 8,
                };
                let started = Instant::now();
                black_box(fib_counted(black_box(24), &mut counted));
                started.elapsed()
            })
            .min()
            .unwrap_or(Duration::from_micros(100))
            .max(Duration::from_nanos(1));
        WorkCosts {
            fib_call_ns: best.as_nanos() as f64 / calls as f64,
            spin_iteration_ns: 1e6 / spin_iterations_per_ms() as f64,
        }
    })
}

/// An interpreter whose checkpoints cost a call the optimiser cannot drop: what a lock's
/// uncontended checkpoint costs, for timing the counted paths.
struct Listening;

impl Interpreter for Listening {
    #[inline(never)]
    fn checkpoint(&mut self) {
        black_box(());
    }

    fn instruction(&mut self) {}

    fn pace(&self) -> Option<Pace> {
        None
    }

    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Iterations of the mixing loop timed as one batch when calibrating, and run between
/// two looks at the clock-free counter when no interpreter is listening.
const SPIN_UNIT_ITERATIONS: u64 = 200;

/// `iterations` of busy work the optimiser cannot remove.
#[inline(never)]
fn spin_unit(mut state: u64, iterations: u64) -> u64 {
    for _ in 0..iterations {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
    }
    black_box(state)
}

/// How many spin iterations this machine runs per millisecond, measured once per process.
///
/// Spin is calibrated work, not a clock: under an interpreter lock, `spin 5` still does
/// 5 ms worth of computing and so takes longer in wall time, as real CPU work would.
pub fn spin_iterations_per_ms() -> u64 {
    static ITERATIONS_PER_MS: OnceLock<u64> = OnceLock::new();
    *ITERATIONS_PER_MS.get_or_init(calibrate)
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
                state = spin_unit(state, SPIN_UNIT_ITERATIONS);
            }
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(1))
        .max(Duration::from_nanos(1));
    let per_ms = (BATCH * SPIN_UNIT_ITERATIONS) as f64 * 1e6 / best.as_nanos() as f64;
    (per_ms as u64).max(1)
}

/// Busy CPU work for about `ms` milliseconds of this machine's time, reaching a checkpoint
/// once per tick of it.
pub fn spin(ms: u64, interpreter: &mut impl Interpreter) {
    busy(Duration::from_millis(ms), interpreter);
}

/// Busy CPU work for about `length` of this machine's time, reaching a checkpoint once per
/// tick of it.
pub fn busy(length: Duration, interpreter: &mut impl Interpreter) {
    let per_ms = u128::from(spin_iterations_per_ms());
    let mut left = u64::try_from(length.as_nanos() * per_ms / 1_000_000).unwrap_or(u64::MAX);
    let unit = interpreter
        .pace()
        .map_or(SPIN_UNIT_ITERATIONS, |pace| u64::from(pace.spin_iterations));
    let mut state = 0x2545_F491_4F6C_DD1D;
    while left > 0 {
        interpreter.checkpoint();
        let iterations = unit.min(left);
        state = spin_unit(state, iterations);
        left -= iterations;
    }
    black_box(state);
}

/// `n` bytecode instructions' worth of busy work, a tick each, with an instruction boundary
/// after each: a switch point only where every instruction is one (CPython ≤ 3.9).
pub fn instructions(n: u32, interpreter: &mut impl Interpreter) {
    let iterations = interpreter
        .pace()
        .map_or(1, |pace| u64::from(pace.spin_iterations));
    let mut state = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..n {
        state = spin_unit(state, iterations);
        interpreter.instruction();
    }
    black_box(state);
}

/// One tick of busy work at `pace`, ending at a checkpoint, whether or not a lock listens:
/// the eval loop's own time, which a free-threaded interpreter spends too.
pub fn tick(pace: Pace, interpreter: &mut impl Interpreter) {
    // Each tick goes on from the thread's last: ticks started from one constant are
    // independent, and the CPU runs the next one's chain before the last has finished
    // (7 iterations took 3.8 ns where the calibrated 10 ns were meant).
    thread_local! {
        static STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
    }
    STATE.with(|state| state.set(spin_unit(state.get(), u64::from(pace.spin_iterations))));
    interpreter.checkpoint();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts checkpoints at a given pace.
    struct Paced(u64, Pace);
    impl Interpreter for Paced {
        fn checkpoint(&mut self) {
            self.0 += 1;
        }
        fn instruction(&mut self) {}
        fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
            f()
        }
        fn pace(&self) -> Option<Pace> {
            Some(self.1)
        }
    }

    /// Counts a checkpoint every `every` fib calls and spin iterations.
    fn counter(every: u32) -> Paced {
        Paced(
            0,
            Pace {
                fib_calls: every,
                spin_iterations: every,
            },
        )
    }

    /// Short ticks one after another last as long as their pace says: the CPU cannot run the
    /// next one's chain before the last one's ends (started from a constant, a million ticks
    /// of 10 ns took 3.8 ms). A lower bound only: a busy machine makes them slower, never
    /// faster. The best of three.
    #[test]
    fn short_ticks_last_their_pace() {
        let pace = Pace::for_tick(Duration::from_nanos(10));
        let meant = spin_iterations_per_ms();
        let ticks = 1_000_000_u64;
        let best = (0..3)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..ticks {
                    tick(pace, &mut Free);
                }
                started.elapsed()
            })
            .min()
            .expect("three timings");
        let expected_ms = (ticks * u64::from(pace.spin_iterations)) as f64 / meant as f64;
        let took_ms = best.as_secs_f64() * 1e3;
        assert!(
            took_ms > 0.7 * expected_ms,
            "{ticks} ticks of {} iterations took {took_ms:.2} ms, meant {expected_ms:.2}",
            pace.spin_iterations
        );
    }

    #[test]
    fn fib_matches_the_essays_definition() {
        let values: Vec<u64> = (0..=10).map(|n| fib(n, &mut Free)).collect();
        assert_eq!(values, [1, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55]);
        assert_eq!(fib(30, &mut Free), 832_040);
    }

    #[test]
    fn fib_checkpoints_once_per_tick_of_calls() {
        let mut every_call = counter(1);
        assert_eq!(fib(10, &mut every_call), 55);
        // calls(n) = calls(n-1) + calls(n-2) + 1, with calls(1) = calls(2) = 1.
        assert_eq!(every_call.0, 109);
        let mut every_tenth = counter(10);
        assert_eq!(fib(10, &mut every_tenth), 55);
        assert_eq!(every_tenth.0, 10);
    }

    #[test]
    fn a_tick_is_that_much_work() {
        let costs = work_costs();
        let pace = Pace::for_tick(Duration::from_micros(1));
        let fib_ns = f64::from(pace.fib_calls) * costs.fib_call_ns;
        let spin_ns = f64::from(pace.spin_iterations) * costs.spin_iteration_ns;
        assert!((500.0..2000.0).contains(&fib_ns), "{pace:?} {costs:?}");
        assert!((500.0..2000.0).contains(&spin_ns), "{pace:?} {costs:?}");
        // Never less than one call or iteration, however short the tick.
        let finest = Pace::for_tick(Duration::from_nanos(1));
        assert!(finest.fib_calls >= 1 && finest.spin_iterations >= 1);
    }

    /// fib follows its own tick and spin the loop's: 2.7 looks at its breaker about every
    /// 11 ns in fib and every 7 ns in its countdown loop.
    #[test]
    fn fib_and_spin_keep_their_own_ticks() {
        let costs = work_costs();
        let pace = Pace::for_ticks(Duration::from_micros(1), Duration::from_micros(3));
        let fib_ns = f64::from(pace.fib_calls) * costs.fib_call_ns;
        let spin_ns = f64::from(pace.spin_iterations) * costs.spin_iteration_ns;
        assert!((1500.0..6000.0).contains(&fib_ns), "{pace:?} {costs:?}");
        assert!((500.0..2000.0).contains(&spin_ns), "{pace:?} {costs:?}");
    }

    /// Measured directly: the time between two checkpoints of fib and of spin is the tick,
    /// within a factor of two (the fastest of a few runs, the least disturbed).
    #[test]
    fn checkpoints_come_a_tick_of_work_apart() {
        let tick = Duration::from_nanos(400);
        let pace = Pace::for_tick(tick);
        let apart = |work: &dyn Fn(&mut Paced)| {
            (0..5)
                .map(|_| {
                    let mut counted = Paced(0, pace);
                    let started = Instant::now();
                    work(&mut counted);
                    started.elapsed().as_nanos() as f64 / counted.0.max(1) as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        let fib_ns = apart(&|counted| {
            black_box(fib(27, counted));
        });
        let spin_ns = apart(&|counted| spin(5, counted));
        for (what, ns) in [("fib", fib_ns), ("spin", spin_ns)] {
            assert!(
                (200.0..800.0).contains(&ns),
                "{what}: {ns:.0} ns between checkpoints for a 400 ns tick ({pace:?})"
            );
        }
    }

    #[test]
    fn spin_checkpoints_per_unit_and_takes_about_its_time() {
        let mut units = counter(1000);
        let started = Instant::now();
        spin(20, &mut units);
        let took = started.elapsed();
        assert_eq!(units.0, (20 * spin_iterations_per_ms()).div_ceil(1000));
        // Calibration keeps the fastest batch, so spinning never takes much less than asked;
        // a loaded machine may make it take longer, hence the wide upper bound.
        assert!(took >= Duration::from_millis(10), "spin 20 took {took:?}");
        assert!(took < Duration::from_secs(2), "spin 20 took {took:?}");
    }
}
