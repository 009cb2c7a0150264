//! The long-instruction method on the emulation: a main thread that runs one operation with
//! no checkpoint inside (a C call that keeps the GIL), or the control with a checkpoint every
//! tick, beside a ticker thread and a real signal; `python/clab_bench.py long` is CPython's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::gil::{GilConfig, PythonThread};
use crate::lab::running::LabError;
use crate::lab::running::health::HealthLog;
use crate::work::{Free, Interpreter, Pace, spin};

const TICK: Duration = Duration::from_millis(10);

/// The long operation: one C call with no checkpoint inside, or the control, the same
/// work with a checkpoint at every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Operation {
    Uninterruptible,
    Checkpointed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Measured {
    pub variant: &'static str,
    pub operation: Operation,
    /// Milliseconds since the start at which the ticker ticked.
    pub ticks_ms: Vec<f64>,
    pub longest_gap_ms: f64,
    pub signal_sent_ms: f64,
    pub signal_handled_ms: f64,
    pub section_start_ms: f64,
    pub section_end_ms: f64,
}

impl Measured {
    pub fn stall(&self) -> f64 {
        stall(
            self.longest_gap_ms,
            self.section_end_ms - self.section_start_ms,
        )
    }

    pub fn length_ms(&self) -> f64 {
        self.section_end_ms - self.section_start_ms
    }

    pub fn signal_delay_ms(&self) -> f64 {
        self.signal_handled_ms - self.signal_sent_ms
    }

    /// The signal's delay as a share of what remained of the operation when it was sent.
    pub fn signal_share(&self) -> f64 {
        self.signal_delay_ms() / (self.section_end_ms - self.signal_sent_ms)
    }
}

/// How much of an operation of `length_ms` the ticker lost: its longest gap beyond its own
/// period, as a share of the length.
pub(crate) fn stall(longest_gap_ms: f64, length_ms: f64) -> f64 {
    (longest_gap_ms - TICK.as_secs_f64() * 1e3).max(0.0) / length_ms
}

/// The main thread as CPython's eval loop: at every checkpoint it may switch, and it runs
/// the pending signal handler.
struct MainThread<'a> {
    thread: PythonThread,
    signalled: &'a AtomicBool,
    start: Instant,
    handled: Option<f64>,
}

impl Interpreter for MainThread<'_> {
    fn checkpoint(&mut self) {
        self.thread.checkpoint();
        if self.handled.is_none() && self.signalled.load(Ordering::Acquire) {
            self.handled = Some(self.start.elapsed().as_secs_f64() * 1e3);
        }
    }

    fn instruction(&mut self) {
        self.thread.instruction();
    }

    fn pace(&self) -> Option<Pace> {
        self.thread.pace()
    }

    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.thread.allow_threads(f)
    }
}

/// One run: a ticker thread, a signal sent a quarter into the operation, and the main
/// thread running Python, then the operation of `length`, then Python again.
pub(crate) fn measure(
    config: GilConfig,
    operation: Operation,
    length: Duration,
    (cpus, log): (&[usize], &HealthLog),
) -> Result<Measured, LabError> {
    let variant = config.variant;
    let gil = config.lock();
    let signalled = Arc::new(AtomicBool::new(false));
    let registration = signal_hook::flag::register(signal_hook::consts::SIGUSR1, signalled.clone())
        .map_err(|e| LabError::Measurement(format!("cannot handle SIGUSR1: {e}")))?;
    let lead = Duration::from_millis(50);
    let total = lead + length + lead;
    let start = Instant::now();
    let ms = |at: Instant| at.duration_since(start).as_secs_f64() * 1e3;
    let (first_cpu, last_cpu) = (cpus[0], *cpus.last().expect("a CPU"));
    let measured = std::thread::scope(|scope| {
        let gil = gil.as_ref();
        let ticker = scope.spawn(move || {
            log.pin_thread("ticker", &[last_cpu]);
            let mut thread = PythonThread::attach(gil, "ticker");
            let mut ticks = Vec::new();
            while start.elapsed() < total {
                thread.allow_threads(|| std::thread::sleep(TICK));
                // Holding the GIL again: this is when the tick's Python code runs.
                ticks.push(ms(Instant::now()));
            }
            ticks
        });
        let sender = scope.spawn(move || {
            // A quarter into the long operation, as a user pressing Ctrl-C would.
            std::thread::sleep(lead + length / 4);
            let sent = ms(Instant::now());
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGUSR1);
            sent
        });
        // The interpreter's main thread: its own OS thread, so pinning it leaves the lab's
        // thread where it was.
        let signalled = signalled.as_ref();
        let main = scope.spawn(move || {
            log.pin_thread("main", &[first_cpu]);
            let mut main = MainThread {
                thread: PythonThread::attach(gil, "main"),
                signalled,
                start,
                handled: None,
            };
            let python = |main: &mut MainThread, until: Duration| {
                while start.elapsed() < until {
                    spin(1, main);
                }
            };
            python(&mut main, lead);
            let section_start = ms(Instant::now());
            let millis = length.as_millis() as u64;
            match operation {
                Operation::Uninterruptible => {
                    main.thread.uninterruptible(|| spin(millis, &mut Free))
                }
                Operation::Checkpointed => spin(millis, &mut main),
            }
            let section_end = ms(Instant::now());
            python(&mut main, total + TICK * 2);
            (main.handled, section_start, section_end)
        });
        let (handled, section_start, section_end) =
            main.join().expect("the main thread does not panic");
        let ticks = ticker.join().expect("the ticker does not panic");
        let sent = sender.join().expect("the sender does not panic");
        let longest_gap = ticks
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .fold(0.0, f64::max);
        Measured {
            variant: variant.name(),
            operation,
            ticks_ms: ticks,
            longest_gap_ms: longest_gap,
            signal_sent_ms: sent,
            signal_handled_ms: handled.unwrap_or(f64::NAN),
            section_start_ms: section_start,
            section_end_ms: section_end,
        }
    });
    signal_hook::low_level::unregister(registration);
    if !measured.signal_handled_ms.is_finite() {
        return Err(LabError::Measurement(format!(
            "{operation:?} operation under --gil {}: the signal was never handled",
            measured.variant
        )));
    }
    if measured.signal_sent_ms >= measured.section_end_ms {
        return Err(LabError::Measurement(format!(
            "{operation:?} operation: the signal was sent after the operation had ended ({:.1} ms ≥ {:.1} ms); nothing to judge",
            measured.signal_sent_ms, measured.section_end_ms
        )));
    }
    Ok(measured)
}
