//! I/O-bound work: every model overlaps the waits, so what tells them apart is what the
//! overlap costs — threads and an event loop do it in one process, processes need one
//! each.

use std::time::Duration;

use crate::lab::outcome::{Chart, Figure, Table};
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict, class};

use super::percent;

pub static EXPERIMENT: Experiment = Experiment {
    id: "io-bound",
    claim: "for I/O-bound work, threads and an event loop overlap waits as well as processes do, at lower cost",
    essay: "Burton, Concurrency in Python – A Primer: threads and event loops are for waiting on I/O",
    rule: "with 16 clients sending `sleep 20`: threads and the event loop hold when each reaches \
           > 90 % of the process pool's throughput with less memory (PSS); do not hold below 70 %.",
    history: &[],
    run,
};

const CLIENTS: usize = 16;
const REQUEST: &str = "sleep 20";

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let one = lab.placement.server_one.clone();
    let window = lab.profile.window();
    let workers = CLIENTS.to_string();
    let mut table = Table::new(
        format!(
            "{CLIENTS} clients sending `{REQUEST}` (ideal: {} requests/s)",
            CLIENTS * 50
        ),
        &[
            "server",
            "requests/s",
            "of ideal",
            "server CPU (ms)",
            "memory, PSS (KiB)",
            "processes",
        ],
    );
    let mut rows = Vec::new();
    for (label, args) in [
        (
            "threads --gil new",
            vec!["--model", "threads", "--gil", "new"],
        ),
        (
            "eventloop --gil new",
            vec!["--model", "eventloop", "--gil", "new"],
        ),
        (
            "procpool --gil new, 16 workers",
            vec!["--model", "procpool", "--gil", "new", "--workers", &workers],
        ),
    ] {
        lab.step(&format!("io-bound: {label}"));
        let server = lab.serve(&args, &one)?;
        // Workers start lazily on some models: one request each way first.
        server.ask(REQUEST)?;
        let before = server.usage();
        let result = lab.load(
            &server,
            lab.plan(
                &server,
                window,
                vec![Lab::class("clients", CLIENTS, REQUEST, Duration::ZERO)],
            ),
        )?;
        let after = server.usage();
        server.stop();
        let rate = class(&result, "clients")?.rate_per_s;
        let cpu_ms = (after.cpu_s - before.cpu_s) * 1e3;
        table.row(vec![
            label.into(),
            format!("{rate:.0}"),
            percent(rate / (CLIENTS as f64 * 50.0)),
            format!("{cpu_ms:.0}"),
            after.pss_kib.to_string(),
            after.processes.to_string(),
        ]);
        rows.push((label, rate, cpu_ms, after.pss_kib as f64));
    }
    let processes = rows[2];
    let mut report = Report::default();
    for row in &rows[..2] {
        let share = row.1 / processes.1;
        let cheaper = row.3 < processes.3;
        let verdict = match Verdict::at_least(share, 0.9, 0.7) {
            Verdict::Holds if !cheaper => Verdict::DoesNotHold,
            verdict => verdict,
        };
        report.checks.push(Check::new(
            format!("{}: overlaps as well as processes, for less", row.0),
            verdict,
            format!(
                "{:.0} requests/s ({} of the process pool's) in {:.0} KiB against {:.0} KiB",
                row.1,
                percent(share),
                row.3,
                processes.3
            ),
        ));
    }
    report.summary = format!(
        "{CLIENTS} waiting clients: threads {:.0}/s in {:.1} MiB, the event loop {:.0}/s in {:.1} MiB, a 16-process pool {:.0}/s in {:.1} MiB",
        rows[0].1,
        rows[0].3 / 1024.0,
        rows[1].1,
        rows[1].3 / 1024.0,
        rows[2].1,
        rows[2].3 / 1024.0
    );
    report.tables.push(table);
    report.figures.push(Figure {
        name: "memory".into(),
        title: format!("Memory to overlap {CLIENTS} waits"),
        x_label: "server".into(),
        y_label: "PSS (KiB)".into(),
        chart: Chart::Bars {
            categories: rows.iter().map(|r| r.0.to_string()).collect(),
            series: vec![("PSS".into(), rows.iter().map(|r| r.3).collect())],
        },
    });
    report.setup = vec![
        format!(
            "{CLIENTS} closed-loop clients sending `{REQUEST}` (a 20 ms wait without CPU, the I/O stand-in) for {}; servers on one CPU",
            super::seconds(window)
        ),
        "memory is the proportional set size of the server and all its processes, shared pages split".into(),
    ];
    report.explanation = "A sleeping request releases the GIL and uses no CPU, so one thread per \
        connection, or one event loop, waits for all sixteen at once — the waits overlap and the \
        throughput is close to sixteen per 20 ms. A process pool overlaps them too, but needs sixteen \
        processes, each with its own interpreter's worth of memory, and a hop per request."
        .into();
    report.raw("rows", &rows);
    Ok(report)
}
