//! Thousands of idle connections beside one busy client: a thread per connection pays for
//! each in memory and threads; an event loop hardly notices them. CPython's asyncio server
//! is measured the same way beside them, on every interpreter the lab found with asyncio.

use std::time::Duration;

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::metrics;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::Table;
use crate::lab::model::outcome::{Check, Verdict};
use crate::lab::running::measure::{self, hold, rapid};
use crate::lab::running::process::ChildServer;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, class_result};
use crate::server::Model;

use crate::lab::words::percent;

pub static EXPERIMENT: Experiment = Experiment {
    id: "c10k",
    claim: "thousands of idle connections: threads pay per connection, an event loop hardly does",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): tens of thousands of open sockets are no place for a thread each",
    rule: Rules {
        measures: "beside the idle connections, a `fib 1` client's rate kept = its rate beside them / alone; memory per connection = resident plus kernel stacks.",
        marks: &[&KEEPS_THE_RATE, &LIGHT],
        besides: "Every idle connection must have been opened.",
    },
    history: &[],
    era: Some(&ERA),
    pair: Some(crate::lab::claims::metrics::Pair::C10k),
    run: Method::Measure(run),
};

const KEEPS_THE_RATE: Mark = Mark {
    what: "the event loop keeps the busy client's rate, the rate kept",
    rule: Rule::AtLeast {
        holds: 0.8,
        fails: 0.5,
    },
    unit: Unit::Percent,
};
const LIGHT: Mark = Mark {
    what: "it costs far less per connection than threads, its memory ÷ threads'",
    rule: Rule::AtMost {
        holds: 0.5,
        fails: 1.0,
    },
    unit: Unit::Times,
};

/// In each era with an event loop: what one Python process's event loop pays per idle
/// connection. The marks are half and all of what a thread per connection costs in resident
/// memory and kernel stack (about 32 KiB, the experiment's threads server on these hosts).
static ERA: EraClaim = EraClaim {
    claim: "one Python process's event loop holds thousands of idle connections for a few KiB each",
    metric: "resident memory per idle connection on an event loop (asyncio on CPython)",
    rule: Rule::AtMost {
        holds: 16.0,
        fails: 32.0,
    },
    unit: Unit::KiB,
    metrics: [
        EraMetric::NotMeaningful("2.x has no asyncio"),
        EraMetric::Pair(metrics::C10K_PER_CONNECTION),
        EraMetric::NotMeaningful(
            "an event loop runs in one interpreter; a GIL per interpreter changes nothing it holds",
        ),
        EraMetric::Pair(metrics::C10K_PER_CONNECTION),
    ],
};

/// One server: the busy client's rate alone and beside the idle connections, and what
/// those cost.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    label: String,
    alone_per_s: f64,
    beside_per_s: f64,
    resident_kib: f64,
    kernel_stack_kib: f64,
    threads: u64,
    /// Idle connections the client opened.
    opened: u64,
    /// Of those, the ones the server held when its memory was sampled.
    held: u64,
}

impl Row {
    fn kept(&self) -> f64 {
        self.beside_per_s / self.alone_per_s
    }

    /// Memory per connection: resident plus the kernel stacks resident memory leaves out.
    fn cost_kib(&self) -> f64 {
        self.resident_kib + self.kernel_stack_kib
    }

    fn cells(&self) -> Vec<String> {
        vec![
            format!(
                "{} ({} of {} connections held)",
                self.label, self.held, self.opened
            ),
            format!("{:.0}", self.alone_per_s),
            format!("{:.0}", self.beside_per_s),
            percent(self.kept()),
            format!("{:.1}", self.resident_kib),
            format!("{:.1}", self.kernel_stack_kib),
            self.threads.to_string(),
        ]
    }
}

/// The busy client alone, then beside `connections` idle ones, on one CPU.
fn measure(
    lab: &mut Lab,
    spec: ServerSpec,
    connections: usize,
    window: Duration,
) -> Result<Row, LabError> {
    // Room for every idle connection and the busy client, whatever the default cap.
    let spec = spec.quiet_option("--max-connections", connections + 100);
    lab.step(&format!("c10k: {}", spec.label()));
    let one = lab.placement.server_one.clone();
    let server = lab.serve(&spec, &one)?;
    measure_server(lab, server, spec.label(), connections, window)
}

fn measure_server(
    lab: &mut Lab,
    server: ChildServer,
    label: String,
    connections: usize,
    window: Duration,
) -> Result<Row, LabError> {
    let alone = measure::rate(lab, &server, window, vec![rapid()], "rapid")?;
    let held = hold(lab, &server, connections, vec![rapid()], window)?;
    server.stop();
    Ok(Row {
        label,
        alone_per_s: alone,
        beside_per_s: class_result(&held.load, "rapid")?.rate_per_s,
        resident_kib: held.resident_per_connection(),
        kernel_stack_kib: held.kernel_stack_per_connection(),
        threads: held.during.threads,
        opened: held.opened,
        held: held.held(),
    })
}

fn checks(threads: &Row, eventloop: &Row, connections: usize) -> Vec<Check> {
    let mut checks = vec![
        Check::new(
            "eventloop: the busy client keeps its rate",
            KEEPS_THE_RATE.judge(eventloop.kept()),
            format!(
                "{:.0} → {:.0} requests/s: {}",
                eventloop.alone_per_s,
                eventloop.beside_per_s,
                percent(eventloop.kept())
            ),
        ),
        Check::new(
            "eventloop: far less memory per connection than threads",
            LIGHT.judge(eventloop.cost_kib() / threads.cost_kib()),
            format!(
                "{:.1} KiB against {:.1} KiB per connection, resident plus kernel stacks",
                eventloop.cost_kib(),
                threads.cost_kib()
            ),
        ),
    ];
    if threads.opened < connections as u64 || eventloop.opened < connections as u64 {
        checks.push(Check::new(
            "every idle connection was opened",
            Verdict::DoesNotHold,
            format!(
                "threads held {}, eventloop {} of {connections}",
                threads.opened, eventloop.opened
            ),
        ));
    }
    checks
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let connections = lab.profile.pick(2_000, 10_000, 10_000);
    let window = lab.profile.pick(
        Duration::from_millis(1500),
        Duration::from_secs(3),
        Duration::from_secs(3),
    );
    let server = |model| ServerSpec::new(model, Variant::None);
    let threads = server(Model::Threads).option("--thread-stack", "256k");
    let rows = [threads, server(Model::Eventloop), server(Model::Async)]
        .into_iter()
        .map(|spec| measure(lab, spec, connections, window))
        .collect::<Result<Vec<_>, _>>()?;
    let (threads, eventloop) = (&rows[0], &rows[1]);
    let mut table = Table::new(
        format!("{connections} idle connections beside one `fib 1` client"),
        &[
            "server",
            "rate alone (req/s)",
            "rate beside idle (req/s)",
            "kept",
            "resident per connection (KiB)",
            "kernel stacks per connection (KiB)",
            "threads",
        ],
    );
    rows.iter().for_each(|row| table.row(row.cells()));
    let mut report = Report {
        checks: checks(threads, eventloop, connections),
        summary: format!(
            "beside {connections} idle connections the event loop kept {} of the busy client's rate at {:.1} KiB per connection (resident plus kernel stacks); threads kept {} at {:.1} KiB and one thread each",
            percent(eventloop.kept()),
            eventloop.cost_kib(),
            percent(threads.kept()),
            threads.cost_kib(),
        ),
        tables: vec![table],
        setup: vec![
            format!(
                "per server: a `fib 1` client alone for {w}, then {connections} idle connections plus the same client for {w}",
                w = crate::lab::words::seconds(window)
            ),
            "threads get 256 KiB stacks so that ten thousand of them fit any machine; servers on one CPU".into(),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    report.raw("rows", &rows);
    Ok(report)
}

const EXPLANATION: &str = "An idle connection costs a thread-per-connection server a thread: \
    its stack pages, its kernel task, a slot in the scheduler. An event loop keeps a small task \
    per connection and one `epoll` registration — no read buffer while nothing is pending, no \
    timer of its own (one sweep times every idle connection) — about a kilobyte; asyncio keeps \
    a transport, a protocol and their dictionaries, several times that. The sockets an event \
    loop is not reading cost it nothing per request. Both keep the busy client's rate here, because idle threads are \
    blocked and cost no CPU — the price of threads is memory and the thread count, not time.";
