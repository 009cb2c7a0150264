//! Two CPU-bound jobs at once against one after the other: under a GIL the threads take
//! turns, so running them "in parallel" saves nothing; processes, and threads without a
//! GIL, use both cores.

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::metrics;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::{Chart, Figure, Table};
use crate::lab::model::outcome::{Check, Contrast};
use crate::lab::running::measure::latency;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "countdown",
    claim: "two CPU-bound jobs: threads under a GIL are no faster than serial (often slower); processes — and threads without a GIL — use both cores",
    essay: "Melvin, Concurrent Programming in Python is not what you think it is: two countdown() threads are slower than two calls in a row",
    rule: Rules {
        measures: "parallel/serial = time for two jobs at once / time for two in a row (2 × one job).",
        marks: &[&NO_FASTER, &BOTH_CORES],
        besides: "",
    },
    history: &[],
    era: Some(&ERA),
    pair: Some(crate::lab::claims::metrics::Pair::Countdown),
    run: Method::Measure(run),
};

/// In each era: the two jobs on one Python process's threads — with a GIL per interpreter,
/// in two of its subinterpreters.
static ERA: EraClaim = EraClaim {
    claim: "two CPU-bound jobs at once in one Python process take no less time than one after the other",
    metric: "two at once ÷ two in a row, on both CPUs",
    rule: NO_FASTER.rule,
    unit: Unit::Times,
    metrics: [
        EraMetric::Pair(metrics::COUNTDOWN_THREADS),
        EraMetric::Pair(metrics::COUNTDOWN_THREADS),
        EraMetric::Pair(metrics::COUNTDOWN_INTERPRETERS),
        EraMetric::Pair(metrics::COUNTDOWN_THREADS),
    ],
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

/// One server's time for one job alone and for two at once.
struct Row {
    label: String,
    one_ms: f64,
    both_ms: f64,
}

impl Row {
    /// Two at once as a share of two in a row.
    fn ratio(&self) -> f64 {
        self.both_ms / (2.0 * self.one_ms)
    }

    fn check(&self, no_faster: bool) -> Check {
        let (verdict, expected) = if no_faster {
            let verdict = NO_FASTER.judge(self.ratio());
            (verdict, "no faster than serial")
        } else {
            let verdict = BOTH_CORES.judge(self.ratio());
            (verdict, "uses both cores")
        };
        Check::new(
            format!("{}: {expected}", self.label),
            verdict,
            format!(
                "two at once {:.0} ms against {:.0} ms in a row: {:.2}",
                self.both_ms,
                2.0 * self.one_ms,
                self.ratio()
            ),
        )
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.label.clone(),
            format!("{:.0}", self.one_ms),
            format!("{:.0}", 2.0 * self.one_ms),
            format!("{:.0}", self.both_ms),
            format!("{:.2}", self.ratio()),
        ]
    }
}

/// One client sending `job` back to back, then two, against `spec` on both CPUs.
fn measure(lab: &mut Lab, spec: &ServerSpec, job: &str) -> Result<Row, LabError> {
    lab.step(&format!("countdown: {}", spec.label()));
    let all = lab.placement.server_all.clone();
    let server = lab.serve(spec, &all)?;
    let one_ms = latency(lab, &server, job, 1)?.median;
    let both_ms = latency(lab, &server, job, 2)?.median;
    server.stop();
    Ok(Row {
        label: spec.label(),
        one_ms,
        both_ms,
    })
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let job_ms = lab.profile.pick(100, 250, 250);
    let job = format!("spin {job_ms}");
    let threads = |gil| ServerSpec::new(Model::Threads, gil);
    let new = measure(lab, &threads(Variant::New), &job)?;
    let none = measure(lab, &threads(Variant::None), &job)?;
    let procpool = ServerSpec::new(Model::Procpool, Variant::New).workers(2);
    let procpool = measure(lab, &procpool, &job)?;
    let rows = [&new, &none, &procpool];
    let mut table = Table::new(
        "Two CPU-bound jobs: one after the other against both at once",
        &[
            "server",
            "one job (ms)",
            "two in a row (ms)",
            "two at once (ms)",
            "at once / in a row",
        ],
    );
    rows.iter().for_each(|row| table.row(row.cells()));
    Ok(Report {
        checks: vec![new.check(true), procpool.check(false), none.check(false)],
        contrast: Some(Contrast {
            with_gil: new.check(true),
            without_gil: none.check(true),
        }),
        summary: format!(
            "both jobs at once take {:.2}× the serial time under --gil new, {:.2}× without a GIL, {:.2}× in a process pool",
            new.ratio(),
            none.ratio(),
            procpool.ratio(),
        ),
        setup: vec![
            format!(
                "the job is `{job}`: calibrated CPU work reaching a GIL checkpoint once per tick, like a Python countdown loop; {job_ms} ms keeps the catalogue short while spanning {} switch intervals",
                job_ms / 5
            ),
            format!(
                "one client sending the job back to back, then two, {} each; the median latency is the time per job",
                crate::lab::words::seconds(lab.profile.window())
            ),
            "servers may use both CPUs".into(),
            "each era — the legacy GIL, a GIL per interpreter — is measured by the claim's pair, in the eras table: two jobs in one process on each interpreter found and on the emulation standing for it".into(),
        ],
        tables: vec![table],
        figures: vec![Figure::new(
            "ratio",
            "Two jobs at once, as a share of the time one after the other",
            ("server", "at once / in a row"),
            Chart::bars(
                "measured",
                rows.iter().map(|row| (row.label.clone(), row.ratio())),
            ),
        )],
        explanation: EXPLANATION.into(),
        ..Report::default()
    })
}

const EXPLANATION: &str = "Each job is pure computation. Under the GIL only the thread \
    holding the lock computes; the other waits, asks for a switch after 5 ms, and the two \
    alternate, so two jobs finish no sooner than one after the other. The legacy GIL is worse \
    on two cores: its holder releases and immediately re-takes the lock every 100 ticks while \
    the waiter is still waking up — time is lost to the thrash. Processes each have their own \
    lock, and threads without one run on both cores; so do two interpreters of one process \
    when each has a lock of its own (3.12+).";
