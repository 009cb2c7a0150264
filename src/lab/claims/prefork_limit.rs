//! A pre-forked server serves one client per child: with more clients than children the
//! rest wait, however idle the machine is. Requests that sleep (I/O-bound) separate the
//! process count from the core count.

use std::time::Duration;

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::model::eras::{Rule, Unit};
use crate::lab::model::outcome::Check;
use crate::lab::model::outcome::{Chart, Figure, Series, Table};
use crate::lab::running::process::ChildServer;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError};
use crate::load::LoadResult;
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "prefork-limit",
    claim: "a pre-forked server's concurrency is capped at its process count",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): with a pre-forked server you are strictly limited in concurrency",
    rule: Rules {
        measures: "with 2 children, throughput with 4 clients / with 2 clients.",
        marks: &[&CAPPED, &SCALED],
        besides: "The threads' check makes the prefork one mean something: both come from the same runs.",
    },
    history: &[],
    era: None,
    pair: None,
    run: Method::Measure(run),
};

const CHILDREN: usize = 2;
const REQUEST: &str = "sleep 50";
const CAPPED: Mark = Mark {
    what: "prefork is capped, its ratio",
    rule: Rule::AtMost {
        holds: 1.25,
        fails: 1.6,
    },
    unit: Unit::Times,
};
const SCALED: Mark = Mark {
    what: "threads are not, their ratio",
    rule: Rule::AtLeast {
        holds: 1.6,
        fails: 1.25,
    },
    unit: Unit::Times,
};

/// One run of `clients` persistent clients.
#[derive(Debug, Clone, serde::Serialize)]
struct Point {
    clients: usize,
    requests_per_s: f64,
    /// Clients that got no reply in the whole window.
    starved: usize,
    load: LoadResult,
}

/// One server's throughput by number of clients.
struct Row {
    label: String,
    points: Vec<Point>,
}

impl Row {
    /// Throughput with 4 clients / with 2.
    fn doubling(&self) -> f64 {
        let at = |clients| {
            self.points
                .iter()
                .find(|point| point.clients == clients)
                .map_or(f64::NAN, |point| point.requests_per_s)
        };
        at(4) / at(2)
    }

    fn series(&self) -> Series {
        let points = self.points.iter();
        let points = points.map(|p| (p.clients as f64, p.requests_per_s));
        Series::new(self.label.clone(), points.collect())
    }
}

/// `count` clients, one class each so that each client's replies can be counted.
fn clients(lab: &Lab, server: &ChildServer, count: usize) -> Result<Point, LabError> {
    let classes = (0..count)
        .map(|index| Lab::class(&format!("client{}", index + 1), 1, REQUEST, Duration::ZERO))
        .collect();
    let load = lab.load(server, lab.plan(server, lab.profile.window(), classes)?)?;
    Ok(Point {
        clients: count,
        requests_per_s: load.classes.iter().map(|class| class.rate_per_s).sum(),
        starved: load.classes.iter().filter(|c| c.completed == 0).count(),
        load,
    })
}

/// Every count of clients against `spec` on the server CPU.
fn measure(lab: &mut Lab, spec: &ServerSpec, counts: &[usize]) -> Result<Row, LabError> {
    lab.step(&format!("prefork-limit: {}", spec.label()))?;
    let one = lab.placement.server_one.clone();
    let server = lab.serve(spec, &one)?;
    let points = counts
        .iter()
        .map(|&count| clients(lab, &server, count))
        .collect::<Result<Vec<_>, _>>()?;
    server.stop();
    Ok(Row {
        label: spec.label(),
        points,
    })
}

fn table(rows: &[&Row]) -> Table {
    let mut table = Table::new(
        format!("`{REQUEST}` clients against {CHILDREN} pre-forked children and against threads"),
        &["server", "clients", "requests/s", "clients never answered"],
    );
    for row in rows {
        for point in &row.points {
            table.row(vec![
                row.label.clone(),
                point.clients.to_string(),
                format!("{:.0}", point.requests_per_s),
                point.starved.to_string(),
            ]);
        }
    }
    table
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let counts = lab
        .profile
        .pick(vec![2, 4], vec![1, 2, 3, 4, 6], vec![1, 2, 3, 4, 6]);
    let prefork = ServerSpec::new(Model::Prefork, Variant::None).workers(CHILDREN);
    let prefork = measure(lab, &prefork, &counts)?;
    let threads = measure(
        lab,
        &ServerSpec::new(Model::Threads, Variant::None),
        &counts,
    )?;
    let (capped, scaled) = (prefork.doubling(), threads.doubling());
    let mut report = Report {
        checks: vec![
            Check::new(
                format!("{}: 4 clients get no more done than 2", prefork.label),
                CAPPED.judge(capped),
                format!("4 clients / 2 clients = {capped:.2}"),
            ),
            Check::new(
                format!(
                    "{} (the control): 4 clients get twice as much done as 2",
                    threads.label
                ),
                SCALED.judge(scaled),
                format!("4 clients / 2 clients = {scaled:.2}"),
            ),
        ],
        summary: format!(
            "doubling the clients from 2 to 4 multiplies prefork's throughput by {capped:.2} ({CHILDREN} children) and threads' by {scaled:.2}"
        ),
        tables: vec![table(&[&prefork, &threads])],
        figures: vec![Figure::new(
            "throughput",
            format!("Throughput of `{REQUEST}` clients"),
            ("clients", "requests/s"),
            Chart::lines(vec![prefork.series(), threads.series()]),
        )],
        setup: vec![
            format!(
                "closed-loop clients sending `{REQUEST}`, each on its own connection, {} clients, {} per run; servers on one CPU",
                crate::lab::words::list(&counts),
                crate::lab::words::seconds(lab.profile.window())
            ),
            "sleeping requests use no CPU: the cap seen is the process count, not the two cores"
                .into(),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    let points = [&prefork, &threads].map(|row| &row.points);
    report.raw("loads", points);
    Ok(report)
}

const EXPLANATION: &str = "Each pre-forked child accepts one connection and serves it until \
    the client goes away. With persistent clients, the first two connections occupy both \
    children; the others sit in the listen backlog and get nothing at all, while the machine \
    idles. A thread per connection has no such cap.";
