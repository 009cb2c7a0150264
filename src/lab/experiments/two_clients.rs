//! One client timing a CPU-bound request, then two at once: where the work cannot run in
//! parallel (one GIL, one event-loop thread) each request takes twice as long; where it can
//! (threads without a GIL, processes, pre-forked children) latency stays flat.

use crate::lab::outcome::{Chart, Figure, Series, Table};
use crate::lab::process::ChildServer;
use crate::lab::{Check, Contrast, Experiment, Lab, LabError, Report, Sample, Verdict, p50_ms};

pub static EXPERIMENT: Experiment = Experiment {
    id: "two-clients",
    claim: "one fib(n) client, then two: latency doubles under the GIL and on an event loop, stays flat with threads without a GIL, processes and prefork",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): perf1's times double when a second client starts",
    rule: "slowdown = median latency with two clients / with one. Doubles: holds when slowdown > 1.6, \
           does not hold when < 1.3. Flat: holds when slowdown < 1.3, does not hold when > 1.6.",
    history: &[],
    run,
};

/// About 30 ms here (fib 37), the scale of the essay's CPython fib(30) requests, so a
/// second-long window holds dozens of them.
pub const REQUEST: &str = "fib 37";
const DOUBLED: f64 = 1.6;
const FLAT: f64 = 1.3;

/// Median latency of `request` with `clients` closed-loop clients (the median of the
/// profile's repeats, with their spread).
pub fn latency(
    lab: &mut Lab,
    server: &ChildServer,
    request: &str,
    clients: usize,
) -> Result<Sample, LabError> {
    let window = lab.profile.window();
    lab.repeat(|lab| {
        let plan = lab.plan(
            server,
            window,
            vec![Lab::class("clients", clients, request, Default::default())],
        );
        p50_ms(&lab.load(server, plan)?, "clients")
    })
}

struct Model {
    args: &'static [&'static str],
    label: &'static str,
    doubles: bool,
}

const MODELS: &[Model] = &[
    Model {
        args: &["--model", "threads", "--gil", "new"],
        label: "threads --gil new",
        doubles: true,
    },
    Model {
        args: &["--model", "eventloop"],
        label: "eventloop",
        doubles: true,
    },
    Model {
        args: &["--model", "threads", "--gil", "none"],
        label: "threads --gil none",
        doubles: false,
    },
    Model {
        args: &["--model", "procpool", "--gil", "new", "--workers", "4"],
        label: "procpool --gil new",
        doubles: false,
    },
    Model {
        args: &["--model", "prefork", "--gil", "new", "--workers", "4"],
        label: "prefork --gil new",
        doubles: false,
    },
];

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let all = lab.placement.server_all.clone();
    let counts: Vec<usize> = lab
        .profile
        .pick(vec![1, 2], vec![1, 2, 3, 4], vec![1, 2, 3, 4]);
    let mut report = Report::default();
    let mut table = Table::new(
        "Median latency (ms) by number of concurrent clients",
        &["server", "1 client", "2 clients", "slowdown", "expected"],
    );
    let mut series = Vec::new();
    let mut slowdowns = Vec::new();
    for model in MODELS {
        lab.step(&format!("two-clients: {}", model.label));
        let server = lab.serve(model.args, &all)?;
        let mut points = Vec::new();
        let mut samples = Vec::new();
        for &clients in &counts {
            let sample = latency(lab, &server, REQUEST, clients)?;
            points.push((clients as f64, sample.median));
            samples.push(sample);
        }
        server.stop();
        let slowdown = points[1].1 / points[0].1;
        let verdict = if model.doubles {
            Verdict::at_least(slowdown, DOUBLED, FLAT)
        } else {
            Verdict::at_most(slowdown, FLAT, DOUBLED)
        };
        let evidence = format!(
            "{:.1} ms → {:.1} ms: ×{slowdown:.2}",
            points[0].1, points[1].1
        );
        let expected = if model.doubles { "doubles" } else { "flat" };
        report.checks.push(Check::new(
            format!("{}: latency {expected}", model.label),
            verdict,
            evidence.clone(),
        ));
        table.row(vec![
            model.label.into(),
            samples[0].show(1),
            samples[1].show(1),
            format!("×{slowdown:.2}"),
            expected.into(),
        ]);
        slowdowns.push(slowdown);
        series.push(Series::new(model.label, points));
    }
    report.contrast = Some(Contrast {
        with_gil: report.checks[0].clone(),
        without_gil: Check::new(
            "threads --gil none: latency doubles",
            Verdict::at_least(slowdowns[2], DOUBLED, FLAT),
            report.checks[2].evidence.clone(),
        ),
    });
    report.summary = format!(
        "a second client slows requests ×{:.2} under --gil new and ×{:.2} on the event loop; ×{:.2} without a GIL, ×{:.2} procpool, ×{:.2} prefork",
        slowdowns[0], slowdowns[1], slowdowns[2], slowdowns[3], slowdowns[4]
    );
    report.setup = vec![
        format!(
            "closed-loop clients sending `{REQUEST}` (≈30 ms here, the time scale of CPython's fib(30) in the essay), {} clients, {} each",
            super::list(&counts),
            super::seconds(lab.profile.window())
        ),
        "servers may use both CPUs; procpool and prefork have 4 workers, so no client waits for one".into(),
        "beyond two clients the two cores are busy whatever the model: only 1 → 2 is judged".into(),
    ];
    report.tables.push(table);
    report.figures.push(Figure {
        name: "latency".into(),
        title: format!("Median latency of `{REQUEST}` against concurrent clients"),
        x_label: "clients".into(),
        y_label: "median latency (ms)".into(),
        chart: Chart::Lines {
            series,
            markers: Vec::new(),
            log_x: false,
            log_y: false,
        },
    });
    report.explanation = "Two clients, two cores. Under the GIL the two handler threads take turns \
        holding the one lock, so each request progresses at half speed; on the event loop one thread \
        computes one request at a time, so the second client waits for the first. Without a GIL the \
        two threads run on the two cores at once; process pools and pre-forked servers have a lock \
        (or an interpreter) per process."
        .into();
    Ok(report)
}
