//! I/O-bound work: every model overlaps the waits, so what tells them apart is what the
//! overlap costs — threads and an event loop do it in one process, processes need one
//! each.

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::{self, CLIENTS, Emulated, IDEAL_RATE, IoRun, On, REQUEST};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::RuleChange;
use crate::lab::model::outcome::{Chart, Figure, Table};
use crate::lab::model::outcome::{Check, Verdict};
use crate::lab::running::{Lab, LabError};
use crate::server::Model;

use crate::lab::words::percent;

pub static EXPERIMENT: Experiment = Experiment {
    id: "io-bound",
    claim: "for I/O-bound work, threads and an event loop overlap waits as well as processes do, at lower cost",
    essay: "Burton, Concurrency in Python – A Primer: threads and event loops are for waiting on I/O",
    rule: Rules {
        measures: "16 clients sending `sleep 20`; share = a server's throughput / the process pool's.",
        marks: &[&OVERLAPS],
        besides: "Threads and the event loop hold only with less memory (PSS) than the process pool.",
    },
    history: &[RuleChange {
        date: "2026-12-03",
        change: "the pair measures CPython's threads by the experiment's method (the profile's window, memory sampled under load) instead of a short load; the marks unchanged",
        reason: "one method per quantity, CPython and the emulation alike",
    }],
    era: Some(&ERA),
    pair: Some(Pair::IoBound),
    run: Method::Measure(run),
};

/// In each era: one Python process's threads overlapping the waits — with a GIL per
/// interpreter, a server whose work runs in subinterpreters (its waits stay on the threads).
static ERA: EraClaim = EraClaim {
    claim: "threads of one Python process overlap I/O waits: sixteen waiting clients are served nearly as fast as if each had the server to itself",
    metric: "requests/s ÷ the ideal 800/s",
    rule: Rule::AtLeast {
        holds: 0.9,
        fails: 0.7,
    },
    unit: Unit::Percent,
    measured_by: EraMetric::Pair(metrics::IO_BOUND_SHARE),
    except: &[(
        Era::PerInterpreter,
        EraMetric::NotMeaningful(
            "the waits are on the connections' threads, which share the main interpreter's GIL as under the new GIL; subinterpreters would only compute",
        ),
    )],
};

/// Threads and the event loop overlap the waits as well as processes do.
const OVERLAPS: Mark = Mark {
    what: "threads and the event loop overlap the waits as well as processes, the share",
    rule: Rule::AtLeast {
        holds: 0.9,
        fails: 0.7,
    },
    unit: Unit::Percent,
};

/// The emulation's verdicts: the pair's method — the waiting clients against a server on one
/// CPU, its memory sampled under load — on clab's own configuration of the new GIL, on
/// threads, the event loop and a process pool of one worker per client.
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let new = Emulated::era(Era::New);
    let on = On::Emulation(&new);
    let rows = vec![
        method::io_run(lab, on, Model::Threads)?,
        method::io_run(lab, on, Model::Eventloop)?,
        method::io_run(lab, on, Model::Procpool)?,
    ];
    let processes = &rows[2];
    let checks = rows[..2]
        .iter()
        .map(|row| {
            let share = row.rate_per_s / processes.rate_per_s;
            let verdict = match OVERLAPS.judge(share) {
                Verdict::Holds if row.peak_pss_kib >= processes.peak_pss_kib => {
                    Verdict::DoesNotHold
                }
                verdict => verdict,
            };
            Check::new(
                format!("{}: overlaps as well as processes, for less", row.label),
                verdict,
                format!(
                    "{:.0} requests/s ({} of the process pool's) in {} KiB at peak against {} KiB",
                    row.rate_per_s,
                    percent(share),
                    row.peak_pss_kib,
                    processes.peak_pss_kib
                ),
            )
        })
        .collect();
    let mib = |row: &IoRun| row.peak_pss_kib as f64 / 1024.0;
    let mut report = Report {
        checks,
        summary: format!(
            "{CLIENTS} waiting clients: threads {:.0}/s in {:.1} MiB, the event loop {:.0}/s in {:.1} MiB, a 16-process pool {:.0}/s in {:.1} MiB (peak memory under load)",
            rows[0].rate_per_s,
            mib(&rows[0]),
            rows[1].rate_per_s,
            mib(&rows[1]),
            rows[2].rate_per_s,
            mib(&rows[2]),
        ),
        tables: vec![table(&rows)],
        figures: vec![Figure::new(
            "memory",
            format!("Peak memory while overlapping {CLIENTS} waits"),
            ("server", "PSS (KiB)"),
            Chart::bars(
                "PSS",
                rows.iter().map(|r| (r.label.clone(), r.peak_pss_kib as f64)),
            ),
        )],
        setup: vec![
            format!(
                "{CLIENTS} closed-loop clients sending `{REQUEST}` (a 20 ms wait without CPU, the I/O stand-in) for {}; servers on one CPU",
                crate::lab::words::seconds(lab.profile.window())
            ),
            "memory is the proportional set size of the server and all its processes (shared pages split), sampled once a second during the load; the table shows the peak".into(),
            "each era is measured on CPython by the claim's pair with the same method, in the eras table: threads of one Python process on each interpreter found, beside the emulation standing for it".into(),
        ],
        explanation: "A sleeping request releases the GIL and uses no CPU, so one thread per \
            connection, or one event loop, waits for all sixteen at once — the waits overlap and \
            the throughput is close to sixteen per 20 ms. A process pool overlaps them too, but \
            needs sixteen processes, each with its own interpreter's worth of memory, and a hop per \
            request."
            .into(),
        ..Report::default()
    };
    method::record(
        &mut report,
        Pair::IoBound,
        &new,
        [&method::io_bound_share(on, &rows[0])],
    );
    report.raw("rows", &rows);
    Ok(report)
}

fn table(rows: &[IoRun]) -> Table {
    let mut table = Table::new(
        format!(
            "{CLIENTS} clients sending `{REQUEST}` (ideal: {} requests/s)",
            IDEAL_RATE
        ),
        &[
            "server",
            "requests/s",
            "of ideal",
            "server CPU (ms)",
            "peak memory, PSS (KiB)",
            "processes",
        ],
    );
    for row in rows {
        table.row(vec![
            row.label.clone(),
            format!("{:.0}", row.rate_per_s),
            percent(row.rate_per_s / IDEAL_RATE),
            format!("{:.0}", row.cpu_ms),
            row.peak_pss_kib.to_string(),
            row.processes.to_string(),
        ]);
    }
    table
}
