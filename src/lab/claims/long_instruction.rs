//! One long uninterruptible operation — a C call that does not release the GIL, like
//! `'spam' in range(10**9)` — holds the lock with no checkpoint, so no other thread runs
//! Python until it returns; and since CPython runs signal handlers only at its checkpoints
//! (the eval breaker), even Ctrl-C waits. Measured in this process on the emulated GIL,
//! with real threads and a real signal, beside a control: the same operation with
//! checkpoints inside.

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::long_operation::{Measured, Operation, measure};
use crate::lab::claims::method::{self, Emulated, On};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::{Chart, Figure, Marker, RuleChange, Series, Table};
use crate::lab::model::outcome::{Check, Contrast};
use crate::lab::running::{Lab, LabError};

pub static EXPERIMENT: Experiment = Experiment {
    id: "long-instruction",
    claim: "one uninterruptible operation stalls every other thread, even its timers and signals",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): `'spam' in range(1000000000)` silences a printing thread and Ctrl-C",
    rule: Rules {
        measures: "stall = the ticker's longest gap between ticks minus its period, as a share of the \
                   operation's length L; signal delay = from the signal to its handler, which runs at \
                   the main thread's next checkpoint, as a share of what remained of L when it was sent.",
        marks: &[&STALL, &SIGNAL_WAITS, &CONTROL_PROMPT],
        besides: "",
    },
    history: &[
        RuleChange {
            date: "2026-11-25",
            change: "the signal is observed at the main thread's checkpoints, also inside the \
                 operation when it has any, beside a control operation with checkpoints; the \
                 signal part fails below 10 % (it had no failing side: a floor of 1 µs on the \
                 remainder turned any delay into a pass)",
            reason: "the signal was looked for only between calls, outside the operation, so it was \
                 late by construction with or without a checkpoint inside: the rule could not fail",
        },
        RuleChange {
            date: "2026-12-03",
            change: "the emulation's operation takes the pair's length (300 ms in the default profile, was 500 ms; 150 ms quick, was 200 ms); marks unchanged",
            reason: "one method per quantity: the eras table's emulated cells are the experiment's runs, and CPython's operation is as long",
        },
        RuleChange {
            date: "2026-12-04",
            change: "the pair judges the signal's delay as a share of each side's own operation's measured length (band ±25 % as before), no longer in milliseconds, and no longer the ticker's longest gap in milliseconds beside its stall share, which already judges the gap against the operation's length; this claim's own marks unchanged",
            reason: "a sum over a range runs as long as the host and the moment make it: on an AMD host CPython's ran 1.3–1.7× its calibrated length while the emulation's ran as calibrated, so the millisecond rows missed (a signal delayed 335 against 240 ms) while both sides held the ticker and the signal for their whole operation",
        },
    ],
    era: Some(&ERA),
    pair: Some(Pair::LongInstruction),
    run: Method::Measure(run),
};

/// The stall's rule, for the experiment and each era alike.
const STALL: Mark = Mark {
    what: "the uninterruptible operation stalls the ticker, the stall",
    rule: Rule::AtLeast {
        holds: 0.8,
        fails: 0.2,
    },
    unit: Unit::Percent,
};
const SIGNAL_WAITS: Mark = Mark {
    what: "it delays the signal, the delay",
    rule: Rule::AtLeast {
        holds: 0.5,
        fails: 0.1,
    },
    unit: Unit::Percent,
};
const CONTROL_PROMPT: Mark = Mark {
    what: "the control (the same operation with checkpoints inside) does not, its delay",
    rule: Rule::AtMost {
        holds: 0.1,
        fails: 0.5,
    },
    unit: Unit::Percent,
};

/// In each era: a ticker thread beside one long C-level call in the same Python process.
static ERA: EraClaim = EraClaim {
    claim: "one long C-level operation in one Python process stalls its other threads for its whole length",
    metric: "the ticker thread's stall ÷ the operation's length",
    rule: STALL.rule,
    unit: Unit::Percent,
    measured_by: EraMetric::Pair(metrics::LONG_STALL),
    except: &[(
        Era::PerInterpreter,
        EraMetric::NotMeaningful(
            "the claim is about the threads of one interpreter, which share its GIL as under the new GIL",
        ),
    )],
};

/// The four runs: each GIL with each operation.
struct Runs {
    gil: Measured,
    gil_control: Measured,
    none: Measured,
    none_control: Measured,
}

/// The emulation's verdicts: the pair's operation — one long call beside a ticker thread and
/// a signal, of the pair's length — on clab's own configurations of the new GIL and of free
/// threading, each beside its control with checkpoints inside.
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let length = method::long_length(lab);
    let cpus = lab.placement.server_all.clone();
    let (new, free) = (Emulated::era(Era::New), Emulated::era(Era::FreeThreaded));
    let mut measure_as = |subject: &Emulated, operation: Operation| {
        lab.step(&format!(
            "long-instruction: {} {operation:?}",
            subject.subject.label
        ))?;
        measure(
            subject.gil().clone(),
            operation,
            length,
            (&cpus, &lab.health),
        )
    };
    let runs = Runs {
        gil: measure_as(&new, Operation::Uninterruptible)?,
        gil_control: measure_as(&new, Operation::Checkpointed)?,
        none: measure_as(&free, Operation::Uninterruptible)?,
        none_control: measure_as(&free, Operation::Checkpointed)?,
    };
    let mut report = Report {
        checks: checks(&runs),
        summary: format!(
            "a {} ms uninterruptible operation silenced the 10 ms ticker for {:.0} ms under --gil new ({:.0} ms without a GIL); a signal waited {:.0} ms for it, {:.1} ms when the operation had checkpoints",
            length.as_millis(),
            runs.gil.longest_gap_ms,
            runs.none.longest_gap_ms,
            runs.gil.signal_delay_ms(),
            runs.gil_control.signal_delay_ms()
        ),
        tables: vec![table(&runs)],
        figures: vec![figure(&runs)],
        ..Report::default()
    };
    report.contrast = Some(Contrast {
        with_gil: report.checks[0].clone(),
        without_gil: stall_check(&runs.none, "--gil none: the ticker thread stalls"),
    });
    report.setup = vec![
        "in the lab's own process, on the emulated GIL: a main thread runs checkpointed work, then one operation of L ms, then checkpointed work again; the operation is either uninterruptible (no checkpoint inside, a C call that keeps the GIL) or the control, the same work with a checkpoint every tick".into(),
        format!("L = {} ms; a ticker thread sleeps 10 ms (GIL released) and takes the GIL back to tick; a real SIGUSR1 is sent a quarter into the operation; its handler runs at the main thread's next checkpoint, where CPython's eval loop runs pending signal handlers", length.as_millis()),
        format!("threads pinned: main on CPU {}, ticker on CPU {}", cpus[0], cpus[cpus.len() - 1]),
    ];
    report.explanation = "The ticker's sleep releases the GIL; to tick it must take it back, and the \
        holder is inside an operation with no checkpoint, so no drop request can be honoured until it \
        returns: the ticker's gap grows to the operation's length. Without a GIL the ticker does not \
        need the main thread's permission and ticks on time. The signal is different: its handler \
        runs in the main thread at a checkpoint, so it waits for an operation without checkpoints \
        either way — that part is not the GIL's doing but the interpreter's — while the control, \
        the same work with checkpoints inside, runs the handler within a tick."
        .into();
    for (subject, measured) in [(&new, &runs.gil), (&free, &runs.none)] {
        let numbers = method::long_measured(On::Emulation(subject), measured);
        method::record(&mut report, Pair::LongInstruction, subject, &numbers);
    }
    report.raw(
        "runs",
        [&runs.gil, &runs.gil_control, &runs.none, &runs.none_control],
    );
    Ok(report)
}

fn stall_check(m: &Measured, subject: &str) -> Check {
    Check::new(
        subject,
        STALL.judge(m.stall()),
        format!(
            "the ticker's longest gap {:.0} ms during a {:.0} ms operation: {:.0} % stalled",
            m.longest_gap_ms,
            m.section_end_ms - m.section_start_ms,
            m.stall() * 100.0
        ),
    )
}

fn checks(runs: &Runs) -> Vec<Check> {
    let waits = |m: &Measured| {
        format!(
            "sent {:.1} ms before the operation ended, handled after {:.1} ms ({:.0} %)",
            m.section_end_ms - m.signal_sent_ms,
            m.signal_delay_ms(),
            m.signal_share() * 100.0
        )
    };
    vec![
        stall_check(&runs.gil, "--gil new: the ticker thread stalls"),
        Check::new(
            "--gil new: the signal waits for the uninterruptible operation",
            SIGNAL_WAITS.judge(runs.gil.signal_share()),
            waits(&runs.gil),
        ),
        Check::new(
            "--gil new, control with checkpoints inside: the signal is handled at once",
            CONTROL_PROMPT.judge(runs.gil_control.signal_share()),
            waits(&runs.gil_control),
        ),
    ]
}

fn table(runs: &Runs) -> Table {
    let mut table = Table::new(
        "A ticker thread and a signal during one long operation",
        &[
            "GIL",
            "operation",
            "length (ms)",
            "ticker's longest gap (ms)",
            "signal sent → handled (ms)",
        ],
    );
    for m in [&runs.gil, &runs.gil_control, &runs.none, &runs.none_control] {
        table.row(vec![
            m.variant.into(),
            match m.operation {
                Operation::Uninterruptible => "uninterruptible",
                Operation::Checkpointed => "control: checkpoints inside",
            }
            .into(),
            format!("{:.0}", m.section_end_ms - m.section_start_ms),
            format!("{:.0}", m.longest_gap_ms),
            format!("{:.1}", m.signal_delay_ms()),
        ]);
    }
    table
}

fn figure(runs: &Runs) -> Figure {
    let gaps = |m: &Measured| {
        m.ticks_ms
            .windows(2)
            .map(|pair| (pair[1], pair[1] - pair[0]))
            .collect::<Vec<_>>()
    };
    Figure::new(
        "ticks",
        format!(
            "Gap before each tick of a 10 ms ticker; the operation runs from {:.0} to {:.0} ms",
            runs.gil.section_start_ms, runs.gil.section_end_ms
        ),
        ("time (ms)", "gap (ms)"),
        Chart::Lines {
            series: vec![
                Series::new("--gil new, uninterruptible", gaps(&runs.gil)),
                Series::new("--gil new, checkpoints inside", gaps(&runs.gil_control)),
                Series::new("--gil none, uninterruptible", gaps(&runs.none)),
            ],
            markers: vec![Marker {
                x: runs.gil.signal_sent_ms,
                label: "SIGUSR1 sent".into(),
            }],
            log_x: false,
            log_y: false,
        },
    )
}
