//! Two CPU-bound jobs at once against one after the other: under a GIL the threads take
//! turns, so running them "in parallel" saves nothing; processes, and threads without a
//! GIL, use both cores.

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::{self, Emulated, Number};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::RuleChange;
use crate::lab::model::outcome::{Chart, Figure, Table};
use crate::lab::model::outcome::{Check, Contrast};
use crate::lab::running::{Lab, LabError};
use crate::lab::words::ratios;

pub static EXPERIMENT: Experiment = Experiment {
    id: "countdown",
    claim: "two CPU-bound jobs: threads under a GIL are no faster than serial (often slower); processes — and threads without a GIL — use both cores",
    essay: "Melvin, Concurrent Programming in Python is not what you think it is: two countdown() threads are slower than two calls in a row",
    rule: Rules {
        measures: "parallel/serial = time for two jobs at once / time for two in a row (2 × one job).",
        marks: &[&NO_FASTER, &BOTH_CORES],
        besides: "",
    },
    history: &[
        RuleChange {
            date: "2026-12-03",
            change: "the emulation's two jobs are timed in one process by the pair's method (two `spin` jobs as threads, as two workers with a lock each, and in a row; the median of the profile's repeats), no longer as the latency of a `clab serve` server with one client and then two; thresholds unchanged",
            reason: "one method per quantity: CPython's countdown was already timed in one process, and the eras table set the two methods' numbers side by side",
        },
        RuleChange {
            date: "2026-12-04",
            change: "with two cores, each of the two workers (threads, processes, subinterpreters) runs on a CPU of its own, on CPython and the emulation alike, instead of both on either; thresholds unchanged",
            reason: "left to the scheduler, two threads taking turns at a GIL may share one CPU for a while, where they thrash less: CPython 2.7's loops measured 1.0× the serial time on one CPU and 1.3× on two, and a repeat's ratio fell between as the threads moved",
        },
        RuleChange {
            date: "2026-12-04",
            change: "the default profile times seven interleaved pairs of 60 ms jobs (was three of 100 ms; quick three of 60, thorough nine of 100), on CPython and the emulation alike; thresholds unchanged",
            reason: "on an Intel Xeon host whose speed shifted by about half for seconds at a time (CPython 3.13's serial countdown took 0.22 s or 0.33 s in alternate spells), one pair in three or four spanned a shift and was off by 10–30 %; with three, two such pairs made the median: CPython 3.13's two threads on one core measured 1.16× and then 0.87× the serial time (1.27, 1.16, 1.05; two cores 0.97, 1.31, 1.27), where quiet pairs give 0.99–1.04",
        },
        RuleChange {
            date: "2026-12-04",
            change: "on two CPUs each ratio is the fastest of the seven runs at once over the fastest of the seven in a row (interleaved as before), no longer the median of the seven pairs' ratios, on CPython and the emulation alike; each pair's ratio is still shown as the spread; on one CPU the median of the pairs stays; thresholds unchanged",
            reason: "on the Intel Xeon host, another tenant on a CPU's core slowed CPython's eval loop about 1.75× in spells of a second to minutes, on one CPU at a time (88 of the 288 looks at its CPUs in three default runs found their speeds more than 15 % apart), while the emulation's work does not feel it; a run on both CPUs waits for the slow one and a run on one does not, so CPython's two countdown processes read 0.66–0.83× the serial time in four of six default runs where both sides read 0.50–0.55 on quiet CPUs. A shared host only adds time: each side's fastest run is the host at its quietest. Taken on one CPU as well, in the first run with the change, the fastest runs of free-threaded 3.13's emulated threads and serial jobs made 1.06 where the seven pairs ranged 0.99–1.07 (median 1.01; CPython 0.95, median 0.98): on one CPU both runs feel the host alike, so a pair's ratio is not pushed one way and their median is steady, where each side's fastest, lucky by its own amount, is the noisier",
        },
        RuleChange {
            date: "2026-12-05",
            change: "on one CPU a round of seven pairs whose ratios' middle half spans more than half the band (0.10 of ±10 %) is measured again, up to three rounds, and the median of the quietest round is judged, on CPython and the emulation alike; thresholds and bands unchanged",
            reason: "a spell of the host caught four of seven pairs in one run, and CPython 3.11's two threads on one CPU read 0.90× the serial time (pairs 1.02, 0.79, 1.63, 1.04, 0.80, 0.67, 0.90; their middle half 0.25 apart) where quiet rounds read 0.99–1.04 with their middle half within 0.07: the median sat inside its own measurement's spread",
        },
    ],
    era: Some(&ERA),
    pair: Some(Pair::Countdown),
    run: Method::Measure(run),
};

/// In each era: the two jobs on one Python process's threads — with a GIL per interpreter,
/// in two of its subinterpreters.
static ERA: EraClaim = EraClaim {
    claim: "two CPU-bound jobs at once in one Python process take no less time than one after the other",
    metric: "two at once ÷ two in a row, on both CPUs",
    rule: NO_FASTER.rule,
    unit: Unit::Times,
    measured_by: EraMetric::Pair(metrics::COUNTDOWN_THREADS),
    except: &[(
        Era::PerInterpreter,
        EraMetric::Pair(metrics::COUNTDOWN_INTERPRETERS),
    )],
};

const NO_FASTER: Mark = Mark {
    what: "no faster than serial (threads under a GIL), parallel/serial",
    rule: Rule::AtLeast {
        holds: 0.85,
        fails: 0.7,
    },
    unit: Unit::Times,
};
const BOTH_CORES: Mark = Mark {
    what: "uses both cores (processes, threads without a GIL), parallel/serial",
    rule: Rule::AtMost {
        holds: 0.7,
        fails: 0.85,
    },
    unit: Unit::Times,
};

/// The emulation's verdicts: the pair's method — two jobs as threads, as two workers with a
/// lock each, and one after the other, timed in one process — on clab's own configuration of
/// the new GIL and of free threading.
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let mut report = Report::default();
    let new = Emulated::era(Era::New);
    let free = Emulated::era(Era::FreeThreaded).only(metrics::COUNTDOWN_THREADS);
    let with_gil = method::on_emulation(lab, &new, Pair::Countdown, &mut report)?;
    let without_gil = method::on_emulation(lab, &free, Pair::Countdown, &mut report)?;
    let threads = Number::of(&with_gil, metrics::COUNTDOWN_THREADS)?;
    let processes = Number::of(&with_gil, metrics::COUNTDOWN_PROCESSES)?;
    let free_threads = Number::of(&without_gil, metrics::COUNTDOWN_THREADS)?;
    let check = |subject: &Emulated, number: &Number, mark: &Mark| {
        Check::new(
            format!(
                "{}, {}: {}",
                subject.subject.label, number.metric, mark.what
            ),
            mark.judge(number.value),
            format!("{:.2}: {}", number.value, number.note),
        )
    };
    report.checks = vec![
        check(&new, threads, &NO_FASTER),
        check(&new, processes, &BOTH_CORES),
        check(&free, free_threads, &BOTH_CORES),
    ];
    report.contrast = Some(Contrast {
        with_gil: check(&new, threads, &NO_FASTER),
        without_gil: check(&free, free_threads, &NO_FASTER),
    });
    report.summary = format!(
        "both jobs at once take {:.2}× the serial time on threads under the new GIL, {:.2}× without a GIL, {:.2}× on two workers with a lock each",
        threads.value, free_threads.value, processes.value,
    );
    let rows = [
        (&new, threads),
        (&new, processes),
        (&new, Number::of(&with_gil, metrics::COUNTDOWN_ONE_CORE)?),
        (&free, free_threads),
    ];
    let mut table = Table::new(
        "Two CPU-bound jobs at once, as a share of one after the other",
        &["subject", "how", "at once ÷ in a row", "repeats"],
    );
    for (subject, number) in rows {
        table.row(vec![
            subject.subject.label.clone(),
            number.metric.into(),
            format!("{:.2}", number.value),
            ratios(&number.repeats),
        ]);
    }
    report.tables = vec![table];
    report.figures = vec![Figure::new(
        "ratio",
        "Two jobs at once, as a share of the time one after the other",
        ("subject", "at once / in a row"),
        Chart::bars(
            "measured",
            rows.iter().map(|(subject, number)| {
                (
                    format!("{}, {}", subject.subject.label, number.metric),
                    number.value,
                )
            }),
        ),
    )];
    report.setup = vec![
        format!("each side: {}", threads.note),
        "the emulation's job is calibrated CPU work reaching a GIL checkpoint once per tick, like a Python countdown loop; a process is emulated as a worker with a lock of its own".into(),
        "each era is measured on CPython by the claim's pair with the same method, in the eras table: two countdown(n) in one process on each interpreter found, beside the emulation standing for it".into(),
    ];
    report.explanation = EXPLANATION.into();
    Ok(report)
}

const EXPLANATION: &str = "Each job is pure computation. Under the GIL only the thread \
    holding the lock computes; the other waits, asks for a switch after 5 ms, and the two \
    alternate, so two jobs finish no sooner than one after the other. The legacy GIL is worse \
    on two cores: its holder releases and immediately re-takes the lock every 100 ticks while \
    the waiter is still waking up — time is lost to the thrash. Processes each have their own \
    lock, and threads without one run on both cores; so do two interpreters of one process \
    when each has a lock of its own (3.12+).";
