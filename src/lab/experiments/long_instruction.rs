//! One long uninterruptible operation — a C call that does not release the GIL, like
//! `'spam' in range(10**9)` — holds the lock with no checkpoint, so no other thread runs
//! Python until it returns; and since signal handlers run between bytecodes, even Ctrl-C
//! waits. Measured in this process on the emulated GIL, with real threads and a real signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::gil::{GilConfig, PythonThread, Variant};
use crate::lab::outcome::{Chart, Figure, Series, Table};
use crate::lab::{Check, Contrast, Experiment, Lab, LabError, Report, Verdict};
use crate::work::{Free, Interpreter, spin};

pub static EXPERIMENT: Experiment = Experiment {
    id: "long-instruction",
    claim: "one uninterruptible operation stalls every other thread, even its timers and signals",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): `'spam' in range(1000000000)` silences a printing thread and Ctrl-C",
    rule: "stall = the ticker's longest gap between ticks minus its period, as a share of the \
           operation's length L. Holds when the stall > 80 % of L and the signal waits > 50 % of \
           what remained of L when it was sent; does not hold when the stall < 20 % of L.",
    run,
};

const TICK: Duration = Duration::from_millis(10);
const STALLS: f64 = 0.8;
const RUNS_ON: f64 = 0.2;

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Measured {
    pub variant: &'static str,
    /// Milliseconds since the start at which the ticker ticked.
    pub ticks_ms: Vec<f64>,
    pub longest_gap_ms: f64,
    pub signal_sent_ms: f64,
    pub signal_handled_ms: f64,
    pub section_start_ms: f64,
    pub section_end_ms: f64,
}

/// One run: a ticker thread, a signal sent a quarter into the operation, and the main
/// thread running Python, then one uninterruptible operation of `length`, then Python again.
pub(crate) fn measure(
    config: GilConfig,
    length: Duration,
    cpus: &[usize],
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
    let pin = |cpu: usize| {
        let _ = crate::load::pin(&[cpu]);
    };
    let (first_cpu, last_cpu) = (cpus[0], *cpus.last().expect("a CPU"));
    let result = std::thread::scope(|scope| {
        let gil = gil.as_ref();
        let ticker = scope.spawn(move || {
            pin(last_cpu);
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
        let signalled = &signalled;
        let main = scope.spawn(move || {
            pin(first_cpu);
            let mut main = PythonThread::attach(gil, "main");
            let mut handled = None;
            let python = |main: &mut PythonThread, until: Duration, handled: &mut Option<f64>| {
                while start.elapsed() < until {
                    spin(1, main);
                    // The eval loop runs pending signal handlers at a bytecode boundary.
                    if handled.is_none() && signalled.load(Ordering::Acquire) {
                        *handled = Some(ms(Instant::now()));
                    }
                }
            };
            python(&mut main, lead, &mut handled);
            let section_start = ms(Instant::now());
            main.uninterruptible(|| spin(length.as_millis() as u64, &mut Free));
            let section_end = ms(Instant::now());
            python(&mut main, total + TICK * 2, &mut handled);
            (handled, section_start, section_end)
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
            ticks_ms: ticks,
            longest_gap_ms: longest_gap,
            signal_sent_ms: sent,
            signal_handled_ms: handled.unwrap_or(f64::NAN),
            section_start_ms: section_start,
            section_end_ms: section_end,
        }
    });
    signal_hook::low_level::unregister(registration);
    Ok(result)
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let length = Duration::from_millis(lab.profile.pick(200, 500, 500));
    let cpus = lab.placement.server_all.clone();
    lab.step("long-instruction: --gil new");
    let with_gil = measure(GilConfig::new(Variant::New), length, &cpus)?;
    lab.step("long-instruction: --gil none");
    let without_gil = measure(GilConfig::new(Variant::None), length, &cpus)?;
    let length_ms = length.as_secs_f64() * 1e3;
    let stall = |m: &Measured| (m.longest_gap_ms - TICK.as_secs_f64() * 1e3).max(0.0) / length_ms;
    let signal_wait = |m: &Measured| m.signal_handled_ms - m.signal_sent_ms;
    let remaining = |m: &Measured| m.section_end_ms - m.signal_sent_ms;
    let stall_check = |m: &Measured, subject: &str| {
        Check::new(
            subject,
            Verdict::at_least(stall(m), STALLS, RUNS_ON),
            format!(
                "the ticker's longest gap {:.0} ms during a {length_ms:.0} ms operation: {:.0} % stalled",
                m.longest_gap_ms,
                stall(m) * 100.0
            ),
        )
    };
    let mut report = Report::default();
    let stalled = stall_check(&with_gil, "--gil new: the ticker thread stalls");
    report.checks.push(stalled.clone());
    report.checks.push(Check::new(
        "--gil new: the signal waits for the operation",
        Verdict::at_least(
            signal_wait(&with_gil) / remaining(&with_gil).max(1e-3),
            0.5,
            0.1,
        ),
        format!(
            "sent {:.0} ms before the operation ended, handled after {:.0} ms",
            remaining(&with_gil),
            signal_wait(&with_gil)
        ),
    ));
    report.contrast = Some(Contrast {
        with_gil: stalled,
        without_gil: stall_check(&without_gil, "--gil none: the ticker thread stalls"),
    });
    report.summary = format!(
        "a {length_ms:.0} ms uninterruptible operation silenced the 10 ms ticker for {:.0} ms under --gil new ({:.0} ms without a GIL); a signal waited {:.0} ms",
        with_gil.longest_gap_ms,
        without_gil.longest_gap_ms,
        signal_wait(&with_gil)
    );
    let mut table = Table::new(
        "A ticker thread and a signal during one long operation",
        &[
            "GIL",
            "operation (ms)",
            "ticker's longest gap (ms)",
            "signal sent → handled (ms)",
        ],
    );
    for m in [&with_gil, &without_gil] {
        table.row(vec![
            m.variant.into(),
            format!("{:.0}", m.section_end_ms - m.section_start_ms),
            format!("{:.0}", m.longest_gap_ms),
            format!("{:.0}", signal_wait(m)),
        ]);
    }
    report.tables.push(table);
    let gaps = |m: &Measured| {
        m.ticks_ms
            .windows(2)
            .map(|pair| (pair[1], pair[1] - pair[0]))
            .collect::<Vec<_>>()
    };
    report.figures.push(Figure {
        name: "ticks".into(),
        title: format!(
            "Gap before each tick of a 10 ms ticker; the operation runs from {:.0} to {:.0} ms",
            with_gil.section_start_ms, with_gil.section_end_ms
        ),
        x_label: "time (ms)".into(),
        y_label: "gap (ms)".into(),
        chart: Chart::Lines {
            series: vec![
                Series::new("--gil new", gaps(&with_gil)),
                Series::new("--gil none", gaps(&without_gil)),
            ],
            markers: vec![crate::lab::outcome::Marker {
                x: with_gil.signal_sent_ms,
                label: "SIGUSR1 sent".into(),
            }],
            log_x: false,
            log_y: false,
        },
    });
    report.setup = vec![
        "in the lab's own process, on the emulated GIL: a main thread runs checkpointed work, then one uninterruptible operation of L ms (no checkpoint inside), then checkpointed work again".into(),
        format!("L = {length_ms:.0} ms; a ticker thread sleeps 10 ms (GIL released) and takes the GIL back to tick; a real SIGUSR1 is sent a quarter into the operation, and handled at the main thread's next checkpoint, as CPython runs Python signal handlers between bytecodes"),
        format!("threads pinned: main on CPU {}, ticker on CPU {}", cpus[0], cpus[cpus.len() - 1]),
    ];
    report.explanation = "The ticker's sleep releases the GIL; to tick it must take it back, and the \
        holder is inside an operation with no checkpoint, so no drop request can be honoured until it \
        returns: the ticker's gap grows to the operation's length. Without a GIL the ticker does not \
        need the main thread's permission and ticks on time. The signal is different: its handler \
        runs in the main thread at a bytecode boundary, so it waits for the operation either way — \
        that part is not the GIL's doing but the interpreter's."
        .into();
    report.raw("with_gil", &with_gil);
    report.raw("without_gil", &without_gil);
    Ok(report)
}
