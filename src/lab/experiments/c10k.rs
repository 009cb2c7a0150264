//! Thousands of idle connections beside one busy client: a thread per connection pays for
//! each in memory and threads; an event loop hardly notices them.

use std::time::Duration;

use crate::lab::outcome::Table;
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict, class};

use super::percent;
use super::thread_memory::{hold, per_connection};

pub static EXPERIMENT: Experiment = Experiment {
    id: "c10k",
    claim: "thousands of idle connections: threads pay per connection, an event loop hardly does",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): tens of thousands of open sockets are no place for a thread each",
    rule: "the event loop holds when it keeps > 80 % of a `fib 1` client's rate beside the idle \
           connections and its memory per connection (resident plus kernel stacks) is < 1/2 of \
           threads'; does not hold when it keeps < 50 % or costs more than threads.",
    history: &[],
    run,
};

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let connections = lab.profile.pick(2_000, 10_000, 10_000);
    let limit = (connections + 100).to_string();
    let one = lab.placement.server_one.clone();
    let window = lab.profile.pick(
        Duration::from_millis(1500),
        Duration::from_secs(3),
        Duration::from_secs(3),
    );
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
    let mut rows = Vec::new();
    for (label, args) in [
        (
            "threads, 256 KiB stacks",
            vec![
                "--model",
                "threads",
                "--thread-stack",
                "256k",
                "--max-connections",
                &limit,
            ],
        ),
        (
            "eventloop",
            vec!["--model", "eventloop", "--max-connections", &limit],
        ),
        (
            "async",
            vec!["--model", "async", "--max-connections", &limit],
        ),
    ] {
        lab.step(&format!("c10k: {label}"));
        let server = lab.serve(&args, &one)?;
        let rapid = || Lab::class("rapid", 1, "fib 1", Duration::ZERO);
        let alone = lab.load(&server, lab.plan(&server, window, vec![rapid()]))?;
        let held = hold(lab, &server, connections, vec![rapid()], window)?;
        server.stop();
        let alone = class(&alone, "rapid")?.rate_per_s;
        let beside = class(&held.load, "rapid")?.rate_per_s;
        let resident = per_connection(held.before.rss_kib, held.during.rss_kib, held.opened);
        let kernel = held.kernel_stack_per_connection();
        table.row(vec![
            format!("{label} ({} connections held)", held.opened),
            format!("{alone:.0}"),
            format!("{beside:.0}"),
            percent(beside / alone),
            format!("{resident:.1}"),
            format!("{kernel:.1}"),
            held.during.threads.to_string(),
        ]);
        rows.push((label, alone, beside, resident + kernel, held.opened));
    }
    let (threads, eventloop) = (&rows[0], &rows[1]);
    let kept = eventloop.2 / eventloop.1;
    let mut report = Report::default();
    report.checks.push(Check::new(
        "eventloop: the busy client keeps its rate",
        Verdict::at_least(kept, 0.8, 0.5),
        format!(
            "{:.0} → {:.0} requests/s: {}",
            eventloop.1,
            eventloop.2,
            percent(kept)
        ),
    ));
    report.checks.push(Check::new(
        "eventloop: far less memory per connection than threads",
        Verdict::at_most(eventloop.3 / threads.3, 0.5, 1.0),
        format!(
            "{:.1} KiB against {:.1} KiB per connection, resident plus kernel stacks",
            eventloop.3, threads.3
        ),
    ));
    if threads.4 < connections as u64 || eventloop.4 < connections as u64 {
        report.checks.push(Check::new(
            "every idle connection was opened",
            Verdict::DoesNotHold,
            format!(
                "threads held {}, eventloop {} of {connections}",
                threads.4, eventloop.4
            ),
        ));
    }
    report.summary = format!(
        "beside {connections} idle connections the event loop kept {} of the busy client's rate at {:.1} KiB per connection (resident plus kernel stacks); threads kept {} at {:.1} KiB and one thread each",
        percent(kept),
        eventloop.3,
        percent(threads.2 / threads.1),
        threads.3
    );
    report.tables.push(table);
    report.setup = vec![
        format!(
            "per server: a `fib 1` client alone for {w}, then {connections} idle connections plus the same client for {w}",
            w = super::seconds(window)
        ),
        "threads get 256 KiB stacks so that ten thousand of them fit any machine; servers on one CPU".into(),
    ];
    report.explanation = "An idle connection costs a thread-per-connection server a thread: its \
        stack pages, its kernel task, a slot in the scheduler. An event loop keeps a small task and a \
        buffer per connection and one `epoll` registration; the sockets it is not reading cost it \
        nothing per request. Both keep the busy client's rate here, because idle threads are blocked \
        and cost no CPU — the price of threads is memory and the thread count, not time."
        .into();
    report.raw("rows", &rows);
    Ok(report)
}
