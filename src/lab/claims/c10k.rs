//! Thousands of idle connections beside one busy client: a thread per connection pays for
//! each in memory and threads; an event loop hardly notices them. CPython's asyncio server
//! is measured the same way beside them, on every interpreter the lab found with asyncio.

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::{self, Emulated, IdleRun, On};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::RuleChange;
use crate::lab::model::outcome::Table;
use crate::lab::model::outcome::{Check, Verdict};
use crate::lab::running::{Lab, LabError};
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
    history: &[RuleChange {
        date: "2026-12-03",
        change: "CPython's asyncio is measured by the experiment's method — a busy client alone, then beside the profile's idle connections (2,000 quick, 10,000 default) — instead of 1,000 or 2,000 idle connections alone; the default profile's windows are 2 s (were 3 s); the marks unchanged",
        reason: "one method per quantity: the report showed CPython's asyncio memory at two connection counts, by two methods",
    }],
    era: Some(&ERA),
    pair: Some(Pair::C10k),
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
    measured_by: EraMetric::Pair(metrics::C10K_PER_CONNECTION),
    except: &[
        (Era::Legacy, EraMetric::NotMeaningful("2.x has no asyncio")),
        (
            Era::PerInterpreter,
            EraMetric::NotMeaningful(
                "an event loop runs in one interpreter; a GIL per interpreter changes nothing it holds",
            ),
        ),
    ],
};

fn cells(run: &IdleRun) -> Vec<String> {
    vec![
        format!(
            "{} ({} of {} connections held)",
            run.label, run.held, run.opened
        ),
        format!("{:.0}", run.alone_per_s),
        format!("{:.0}", run.beside_per_s),
        percent(run.kept()),
        format!("{:.1}", run.resident_kib),
        format!("{:.1}", run.kernel_stack_kib),
        run.threads.to_string(),
    ]
}

fn checks(threads: &IdleRun, eventloop: &IdleRun, connections: usize) -> Vec<Check> {
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

/// The emulation's verdicts: the pair's function — a busy client alone, then beside the idle
/// connections — on clab's own configuration of the new GIL: threads, the event loop and the
/// async runtime.
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let new = Emulated::era(Era::New);
    let on = On::Emulation(&new);
    let rows = [Model::Threads, Model::Eventloop, Model::Async]
        .into_iter()
        .map(|model| method::idle_run(lab, on, model))
        .collect::<Result<Vec<_>, _>>()?;
    let (threads, eventloop) = (&rows[0], &rows[1]);
    let connections = eventloop.connections;
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
    rows.iter().for_each(|row| table.row(cells(row)));
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
                "per server: a `fib 1` client alone, then {connections} idle connections plus the same client, for the profile's window each"
            ),
            "threads get 256 KiB stacks so that ten thousand of them fit any machine; servers on one CPU".into(),
            "the era with an event loop is measured on CPython by the claim's pair with the same function, in the eras table: asyncio on each interpreter found, beside the emulation's event loop standing for it".into(),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    method::record(&mut report, Pair::C10k, &new, [&eventloop.number(on)]);
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
