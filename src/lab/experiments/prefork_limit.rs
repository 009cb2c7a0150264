//! A pre-forked server serves one client per child: with more clients than children the
//! rest wait, however idle the machine is. Requests that sleep (I/O-bound) separate the
//! process count from the core count.

use std::time::Duration;

use crate::lab::outcome::{Chart, Figure, Series, Table};
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict};
use crate::load::LoadResult;

pub static EXPERIMENT: Experiment = Experiment {
    id: "prefork-limit",
    claim: "a pre-forked server's concurrency is capped at its process count",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): with a pre-forked server you are strictly limited in concurrency",
    rule: "with 2 children, throughput with 4 clients / with 2 clients: holds when < 1.25 (capped), \
           does not hold when > 1.6; threads must reach > 1.6 in the same runs for the check to mean anything.",
    history: &[],
    run,
};

const CHILDREN: usize = 2;
const REQUEST: &str = "sleep 50";
const CAPPED: f64 = 1.25;
const SCALED: f64 = 1.6;

/// One class per client, so each client's replies can be counted.
fn clients(
    lab: &Lab,
    server: &crate::lab::process::ChildServer,
    count: usize,
) -> Result<LoadResult, LabError> {
    let classes = (0..count)
        .map(|index| Lab::class(&format!("client{}", index + 1), 1, REQUEST, Duration::ZERO))
        .collect();
    lab.load(server, lab.plan(server, lab.profile.window(), classes))
}

fn throughput(result: &LoadResult) -> f64 {
    result.classes.iter().map(|class| class.rate_per_s).sum()
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let one = lab.placement.server_one.clone();
    let counts = lab
        .profile
        .pick(vec![2, 4], vec![1, 2, 3, 4, 6], vec![1, 2, 3, 4, 6]);
    let mut series = Vec::new();
    let mut results = Vec::new();
    let mut table = Table::new(
        format!("`{REQUEST}` clients against {CHILDREN} pre-forked children and against threads"),
        &["server", "clients", "requests/s", "clients never answered"],
    );
    let mut at =
        |label: &str, args: &[&str], lab: &mut Lab| -> Result<Vec<(usize, f64)>, LabError> {
            lab.step(&format!("prefork-limit: {label}"));
            let server = lab.serve(args, &one)?;
            let mut points = Vec::new();
            for &count in &counts {
                let result = clients(lab, &server, count)?;
                let starved = result.classes.iter().filter(|c| c.completed == 0).count();
                table.row(vec![
                    label.into(),
                    count.to_string(),
                    format!("{:.0}", throughput(&result)),
                    starved.to_string(),
                ]);
                points.push((count, throughput(&result)));
                results.push(result);
            }
            server.stop();
            Ok(points)
        };
    let workers = CHILDREN.to_string();
    let prefork = at(
        "prefork, 2 children",
        &["--model", "prefork", "--workers", &workers],
        lab,
    )?;
    let threads = at("threads", &["--model", "threads"], lab)?;
    let ratio = |points: &[(usize, f64)]| {
        let at = |n| points.iter().find(|p| p.0 == n).map_or(f64::NAN, |p| p.1);
        at(4) / at(2)
    };
    let (prefork_ratio, threads_ratio) = (ratio(&prefork), ratio(&threads));
    let mut report = Report::default();
    report.checks.push(Check::new(
        "prefork, 2 children: 4 clients get no more done than 2",
        Verdict::at_most(prefork_ratio, CAPPED, SCALED),
        format!("4 clients / 2 clients = {prefork_ratio:.2}"),
    ));
    report.checks.push(Check::new(
        "threads (the control): 4 clients get twice as much done as 2",
        Verdict::at_least(threads_ratio, SCALED, CAPPED),
        format!("4 clients / 2 clients = {threads_ratio:.2}"),
    ));
    report.summary = format!(
        "doubling the clients from 2 to 4 multiplies prefork's throughput by {prefork_ratio:.2} (2 children) and threads' by {threads_ratio:.2}"
    );
    for (label, points) in [("prefork, 2 children", &prefork), ("threads", &threads)] {
        series.push(Series::new(
            label,
            points.iter().map(|(n, r)| (*n as f64, *r)).collect(),
        ));
    }
    report.tables.push(table);
    report.figures.push(Figure {
        name: "throughput".into(),
        title: format!("Throughput of `{REQUEST}` clients"),
        x_label: "clients".into(),
        y_label: "requests/s".into(),
        chart: Chart::Lines {
            series,
            markers: Vec::new(),
            log_x: false,
            log_y: false,
        },
    });
    report.setup = vec![
        format!(
            "closed-loop clients sending `{REQUEST}`, each on its own connection, {} clients, {} per run",
            super::list(&counts),
            super::seconds(lab.profile.window())
        ),
        "sleeping requests use no CPU: the cap seen is the process count, not the two cores".into(),
    ];
    report.explanation = "Each pre-forked child accepts one connection and serves it until the \
        client goes away. With persistent clients, the first two connections occupy both children; \
        the others sit in the listen backlog and get nothing at all, while the machine idles. A \
        thread per connection has no such cap."
        .into();
    report.raw("loads", &results);
    Ok(report)
}
