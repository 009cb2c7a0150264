//! One client timing a CPU-bound request, then two at once: where the work cannot run in
//! parallel (one GIL, one event-loop thread) each request takes twice as long; where it can
//! (threads without a GIL, processes, pre-forked children) latency stays flat.

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::metrics;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::{Chart, Figure, Series, Table};
use crate::lab::model::outcome::{Check, Contrast};
use crate::lab::running::measure::latency;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, Sample};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "two-clients",
    claim: "one fib(n) client, then two: latency doubles under the GIL and on an event loop, stays flat with threads without a GIL, processes and prefork",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): perf1's times double when a second client starts",
    rule: Rules {
        measures: "slowdown = median latency with two clients / with one.",
        marks: &[&DOUBLES, &FLAT],
        besides: "",
    },
    history: &[],
    era: Some(&ERA),
    pair: Some(crate::lab::claims::metrics::Pair::TwoClients),
    run: Method::Measure(run),
};

/// In each era: a threads server of one Python process — with a GIL per interpreter, one
/// whose work runs in subinterpreters.
static ERA: EraClaim = EraClaim {
    claim: "a second client sending CPU-bound requests to one Python process doubles each request's latency",
    metric: "median latency with two clients ÷ with one",
    rule: DOUBLES.rule,
    unit: Unit::Times,
    metrics: [
        EraMetric::Pair(metrics::TWO_CLIENTS_THREADS),
        EraMetric::Pair(metrics::TWO_CLIENTS_THREADS),
        EraMetric::Pair(metrics::TWO_CLIENTS_INTERPRETERS),
        EraMetric::Pair(metrics::TWO_CLIENTS_THREADS),
    ],
};

const DOUBLES: Mark = Mark {
    what: "doubles (threads under a GIL, the event loop), the slowdown",
    rule: Rule::AtLeast {
        holds: 1.6,
        fails: 1.3,
    },
    unit: Unit::Times,
};
const FLAT: Mark = Mark {
    what: "flat (threads without a GIL, processes, prefork), the slowdown",
    rule: Rule::AtMost {
        holds: 1.3,
        fails: 1.6,
    },
    unit: Unit::Times,
};

/// A server and what the rule expects of its latency (doubling, or flat).
struct Configuration {
    spec: ServerSpec,
    doubles: bool,
}

fn configurations() -> Vec<Configuration> {
    let expect = |spec, doubles| Configuration { spec, doubles };
    vec![
        expect(ServerSpec::new(Model::Threads, Variant::New), true),
        expect(ServerSpec::new(Model::Eventloop, Variant::None), true),
        expect(ServerSpec::new(Model::Threads, Variant::None), false),
        expect(
            ServerSpec::new(Model::Procpool, Variant::New).workers(4),
            false,
        ),
        expect(
            ServerSpec::new(Model::Prefork, Variant::New).workers(4),
            false,
        ),
    ]
}

/// One server's median latencies by number of clients.
struct Row {
    label: String,
    doubles: bool,
    /// (clients, median latency with its spread), one per count.
    latencies: Vec<(usize, Sample)>,
}

impl Row {
    /// The median latency with one client (the first count) and with two (the second).
    fn one_and_two(&self) -> (&Sample, &Sample) {
        let [(_, one), (_, two), ..] = &self.latencies[..] else {
            unreachable!("every profile measures one client and two")
        };
        (one, two)
    }

    fn slowdown(&self) -> f64 {
        let (one, two) = self.one_and_two();
        two.median / one.median
    }

    fn check(&self, doubles: bool) -> Check {
        let slowdown = self.slowdown();
        let (verdict, expected) = if doubles {
            (DOUBLES.judge(slowdown), "doubles")
        } else {
            (FLAT.judge(slowdown), "flat")
        };
        Check::new(
            format!("{}: latency {expected}", self.label),
            verdict,
            format!(
                "{:.1} ms → {:.1} ms: ×{slowdown:.2}",
                self.one_and_two().0.median,
                self.one_and_two().1.median
            ),
        )
    }
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let all = lab.placement.server_all.clone();
    let counts: Vec<usize> = lab
        .profile
        .pick(vec![1, 2], vec![1, 2, 4], vec![1, 2, 3, 4]);
    let request = lab.setups.job.request();
    let mut rows = Vec::new();
    for configuration in configurations() {
        lab.step(&format!("two-clients: {}", configuration.spec.label()));
        let server = lab.serve(&configuration.spec, &all)?;
        let latencies = counts
            .iter()
            .map(|&clients| Ok((clients, latency(lab, &server, &request, clients)?)))
            .collect::<Result<Vec<_>, LabError>>()?;
        server.stop();
        rows.push(Row {
            label: configuration.spec.label(),
            doubles: configuration.doubles,
            latencies,
        });
    }
    let slowdown = |index: usize| rows[index].slowdown();
    Ok(Report {
        checks: rows.iter().map(|row| row.check(row.doubles)).collect(),
        contrast: Some(Contrast {
            with_gil: rows[0].check(true),
            without_gil: rows[2].check(true),
        }),
        summary: format!(
            "a second client slows requests ×{:.2} under --gil new and ×{:.2} on the event loop; ×{:.2} without a GIL, ×{:.2} procpool, ×{:.2} prefork",
            slowdown(0),
            slowdown(1),
            slowdown(2),
            slowdown(3),
            slowdown(4),
        ),
        setup: vec![
            format!(
                "closed-loop clients sending `{request}` ({} here, the time scale of CPython's fib(30) in the essay), {} clients, {} each",
                lab.setups.job.show(),
                crate::lab::words::list(&counts),
                crate::lab::words::seconds(lab.profile.window())
            ),
            "servers may use both CPUs — the claim is about using two cores; the load generator, waiting for 30 ms replies, uses next to none of its CPU, and measures latency, not a rate; procpool, prefork and interpreters have 4 workers, so no client waits for one".into(),
            "each era — the legacy GIL, a GIL per interpreter — is measured by the claim's pair, in the eras table".into(),
            "beyond two clients the two cores are busy whatever the model: only 1 → 2 is judged".into(),
        ],
        tables: vec![table(&rows)],
        figures: vec![Figure::new(
            "latency",
            format!("Median latency of `{request}` against concurrent clients"),
            ("clients", "median latency (ms)"),
            Chart::lines(
                rows.iter()
                    .map(|row| {
                        let points = row
                            .latencies
                            .iter()
                            .map(|(clients, sample)| (*clients as f64, sample.median))
                            .collect();
                        Series::new(row.label.clone(), points)
                    })
                    .collect(),
            ),
        )],
        explanation: "Two clients, two cores. Under the GIL the two handler threads take turns \
            holding the one lock, so each request progresses at half speed; on the event loop one \
            thread computes one request at a time, so the second client waits for the first. \
            Without a GIL the two threads run on the two cores at once; process pools and \
            pre-forked servers have a lock (or an interpreter) per process."
            .into(),
        ..Report::default()
    })
}

fn table(rows: &[Row]) -> Table {
    let mut table = Table::new(
        "Median latency (ms) by number of concurrent clients",
        &["server", "1 client", "2 clients", "slowdown", "expected"],
    );
    for row in rows {
        table.row(vec![
            row.label.clone(),
            row.one_and_two().0.show(1),
            row.one_and_two().1.show(1),
            format!("×{:.2}", row.slowdown()),
            if row.doubles { "doubles" } else { "flat" }.into(),
        ]);
    }
    table
}
