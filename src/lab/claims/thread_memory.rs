//! What one more connection costs a server: a thread reserves its whole stack as virtual
//! memory but touches only a few pages; an event-loop task is a small heap object; a
//! pre-forked connection is a whole process. Read from `/proc` while idle connections are
//! held open.

use std::time::Duration;

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::model::eras::{Rule, Unit};
use crate::lab::model::outcome::{Chart, Figure, Table};
use crate::lab::model::outcome::{Check, Verdict};
use crate::lab::running::measure::{HeldMemory, hold};
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "thread-memory",
    claim: "a thread reserves ~8 MB of virtual stack but costs far less resident memory; what a thread, a task and a process cost per connection",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): a thread's 8 MB stack is a reservation of virtual memory, not physical memory",
    rule: Rules {
        measures: "threads with 8 MiB stacks, per idle connection: the virtual memory reserved and the \
                   resident memory paid.",
        marks: &[&RESERVES, &PAYS_LITTLE],
        besides: "Holds when both hold; does not hold when either does not.",
    },
    history: &[],
    era: None,
    pair: None,
    run: Method::Measure(run),
};

/// What a connection cost one server, in KiB: growth per connection while they were held;
/// for prefork, a child process's share (a process per connection).
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    label: String,
    connections: u64,
    virtual_kib: f64,
    resident_kib: f64,
    pss_kib: f64,
    kernel_stack_kib: f64,
    threads: u64,
    /// What the figure shows: resident memory, or PSS where shared pages would be counted
    /// once per process.
    charged_kib: f64,
    held: HeldMemory,
}

impl Row {
    fn per_connection(label: String, held: HeldMemory) -> Row {
        let resident_kib = held.resident_per_connection();
        Row {
            label,
            connections: held.held(),
            virtual_kib: held.per_connection(|usage| usage.virtual_kib),
            resident_kib,
            pss_kib: held.per_connection(|usage| usage.pss_kib),
            kernel_stack_kib: held.kernel_stack_per_connection(),
            threads: held.during.threads,
            charged_kib: resident_kib,
            held,
        }
    }

    /// A pre-forked server: each process's virtual and resident memory, and each child's
    /// proportional share, with the pages shared copy-on-write split between them.
    fn per_process(label: String, held: HeldMemory) -> Row {
        let during = held.during;
        let processes = during.processes.max(1) as f64;
        let pss_kib = during.pss_kib as f64 / during.processes.saturating_sub(1).max(1) as f64;
        Row {
            virtual_kib: during.virtual_kib as f64 / processes,
            resident_kib: during.rss_kib as f64 / processes,
            pss_kib,
            charged_kib: pss_kib,
            ..Row::per_connection(label, held)
        }
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.label.clone(),
            self.connections.to_string(),
            format!("{:.1}", self.virtual_kib),
            format!("{:.1}", self.resident_kib),
            format!("{:.1}", self.pss_kib),
            format!("{:.1}", self.kernel_stack_kib),
            self.threads.to_string(),
        ]
    }
}

/// Holds `connections` idle connections against `spec` on the server CPU.
fn held(lab: &mut Lab, spec: &ServerSpec, connections: usize) -> Result<HeldMemory, LabError> {
    lab.step(&format!("thread-memory: {}", spec.label()))?;
    let one = lab.placement.server_one.clone();
    let server = lab.serve(spec, &one)?;
    let held = hold(lab, &server, connections, Vec::new(), WINDOW)?;
    server.stop();
    Ok(held)
}

const WINDOW: Duration = Duration::from_millis(1500);

const RESERVES: Mark = Mark {
    what: "a thread reserves most of its stack, the virtual memory",
    rule: Rule::AtLeast {
        holds: 6.0,
        fails: 4.0,
    },
    unit: Unit::MiB,
};
const PAYS_LITTLE: Mark = Mark {
    what: "but pays little of it, resident ÷ virtual",
    rule: Rule::AtMost {
        holds: 0.125,
        fails: 0.5,
    },
    unit: Unit::Percent,
};

/// The rule, on the thread-per-connection row.
fn check(threads: &Row) -> Check {
    let (virtual_kib, resident) = (threads.virtual_kib, threads.resident_kib);
    let verdict = Verdict::all([
        RESERVES.judge(virtual_kib / 1024.0),
        PAYS_LITTLE.judge(resident / virtual_kib),
    ]);
    Check::new(
        "threads: 8 MiB of virtual stack, little resident",
        verdict,
        format!(
            "per connection {:.1} MiB virtual, {resident:.0} KiB resident",
            virtual_kib / 1024.0
        ),
    )
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let connections = lab.profile.pick(200, 1000, 1000);
    let processes = lab.profile.pick(8, 32, 32);
    let mut rows = Vec::new();
    for (spec, what) in [
        (
            ServerSpec::new(Model::Threads, Variant::None).option("--thread-stack", "8m"),
            "a thread each",
        ),
        (
            ServerSpec::new(Model::Eventloop, Variant::None),
            "a task each",
        ),
        (ServerSpec::new(Model::Async, Variant::None), "a task each"),
    ] {
        let held = held(lab, &spec, connections)?;
        rows.push(Row::per_connection(
            format!("{} ({what})", spec.label()),
            held,
        ));
    }
    let prefork = ServerSpec::new(Model::Prefork, Variant::None).workers(processes);
    let held = held(lab, &prefork, processes)?;
    let label = format!("{} (a process each, per process)", prefork.label());
    rows.push(Row::per_process(label, held));
    let (threads, eventloop, prefork) = (&rows[0], &rows[1], &rows[3]);
    let mut table = Table::new(
        "Memory per idle connection",
        &[
            "server",
            "connections",
            "virtual (KiB)",
            "resident (KiB)",
            "proportional, PSS (KiB)",
            "kernel stacks (KiB)",
            "threads",
        ],
    );
    rows.iter().for_each(|row| table.row(row.cells()));
    let mut report = Report {
        checks: vec![check(threads)],
        summary: format!(
            "a thread per connection reserved {:.1} MiB of virtual memory but {:.0} KiB resident; an event-loop task {:.1} KiB; a pre-forked process {:.0} KiB (PSS)",
            threads.virtual_kib / 1024.0,
            threads.resident_kib,
            eventloop.resident_kib,
            prefork.pss_kib,
        ),
        tables: vec![table],
        figures: vec![Figure::new(
            "memory",
            "Memory per connection (resident; PSS for processes)",
            ("server", "KiB per connection"),
            Chart::bars(
                "resident",
                rows.iter().map(|row| (row.label.clone(), row.charged_kib)),
            ),
        )],
        setup: vec![
            format!(
                "{connections} idle connections held open against each server for {}, on one CPU; `/proc/<pid>/status` and `smaps_rollup` read before and (every second) during, the largest sample kept",
                crate::lab::words::seconds(WINDOW)
            ),
            format!(
                "prefork: {processes} children, one idle connection each; its row is per process, shared pages split between the processes (PSS)"
            ),
            "8 MiB is Linux's default stack limit (`ulimit -s`), what CPython's threads get".into(),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    report.raw("rows", &rows);
    Ok(report)
}

const EXPLANATION: &str = "A new thread maps its whole stack at once — 8 MiB of address \
    space — but the kernel backs a page with memory only when it is touched, and a thread \
    blocked in `read` has touched a few: resident memory grows by kilobytes. (The virtual growth \
    exceeds the stack because glibc also reserves address space for per-thread malloc arenas; \
    the kernel keeps a 16 KiB stack of its own per thread, outside the process's resident \
    memory.) An event-loop task is a future on the heap plus the connection's read buffer. A \
    process, even one forked from the same parent and sharing its pages copy-on-write, brings \
    its own page tables, stack, heap and kernel structures: the most expensive way to hold a \
    connection.";
