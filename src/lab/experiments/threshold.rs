//! The threshold server: answer cheap requests inline, send expensive ones to a process
//! pool. Tiny requests keep their rate beside the hogs, and the hogs still use both cores.

use std::time::Duration;

use crate::lab::outcome::Table;
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict, class, p50_ms};
use crate::load::{ClassPlan, Pacing};

use super::percent;

pub static EXPERIMENT: Experiment = Experiment {
    id: "threshold",
    claim: "offloading only expensive requests keeps both the rate and the scaling",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): only send fib(n) to the pool when n > 15",
    rule: "tiny requests are offered at a fixed 1,000 per second; rate kept = the rate served \
           beside two hog clients / alone; scaling = 2 × hog latency alone / hog latency with two \
           hog clients (2 = both cores). The hybrid holds when rate kept > 80 % and scaling > 1.5; \
           does not hold when rate kept < 50 % or scaling < 1.2.",
    history: &[],
    run,
};

/// About 13 ms here: expensive against the 15 threshold, short enough for many per window.
const HOG: &str = "fib 35";
/// Tiny requests per second, offered on a schedule (open loop): a rate a responsive server
/// serves in full with CPU to spare, so the client does not crowd the hogs off a core.
const OFFERED: f64 = 1000.0;
const KEPT: f64 = 0.8;
const LOST: f64 = 0.5;
const SCALES: f64 = 1.5;
const SERIAL: f64 = 1.2;

struct Row {
    label: &'static str,
    alone: f64,
    beside: f64,
    scaling: f64,
}

fn measure(lab: &mut Lab, args: &[&str], label: &'static str) -> Result<Row, LabError> {
    lab.step(&format!("threshold: {label}"));
    let all = lab.placement.server_all.clone();
    let server = lab.serve(args, &all)?;
    let window = lab.profile.window();
    let rapid = || {
        ClassPlan::new("rapid", 4, "fib 1", Pacing::Open { rate: OFFERED })
            .expect("a valid request")
    };
    let alone = lab.load(&server, lab.plan(&server, window, vec![rapid()]))?;
    let hog_alone = lab.load(
        &server,
        lab.plan(
            &server,
            window,
            vec![Lab::class("hog", 1, HOG, Duration::ZERO)],
        ),
    )?;
    let beside = lab.load(
        &server,
        lab.plan(
            &server,
            window,
            vec![rapid(), Lab::class("hog", 2, HOG, Duration::ZERO)],
        ),
    )?;
    server.stop();
    Ok(Row {
        label,
        alone: class(&alone, "rapid")?.rate_per_s,
        beside: class(&beside, "rapid")?.rate_per_s,
        scaling: 2.0 * p50_ms(&hog_alone, "hog")? / p50_ms(&beside, "hog")?,
    })
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let rows = [
        measure(
            lab,
            &["--model", "threads", "--gil", "new"],
            "threads --gil new",
        )?,
        measure(
            lab,
            &["--model", "procpool", "--gil", "new", "--workers", "2"],
            "procpool --gil new",
        )?,
        measure(
            lab,
            super::THRESHOLD_HYBRID,
            "hybrid --gil new, threshold:15",
        )?,
    ];
    let mut report = Report::default();
    let mut table = Table::new(
        format!("Tiny requests beside two `{HOG}` clients"),
        &[
            "server",
            "tiny served alone (req/s)",
            "beside hogs (req/s)",
            "rate kept",
            "hog scaling (of 2)",
        ],
    );
    for row in &rows {
        table.row(vec![
            row.label.into(),
            format!("{:.0}", row.alone),
            format!("{:.0}", row.beside),
            percent(row.beside / row.alone),
            format!("{:.2}", row.scaling),
        ]);
    }
    report.tables.push(table);
    let hybrid = &rows[2];
    let kept = hybrid.beside / hybrid.alone;
    report.checks.push(Check::new(
        "hybrid: keeps the tiny-request rate",
        Verdict::at_least(kept, KEPT, LOST),
        format!(
            "{:.0} → {:.0} requests/s beside two hogs: {}",
            hybrid.alone,
            hybrid.beside,
            percent(kept)
        ),
    ));
    report.checks.push(Check::new(
        "hybrid: the hogs use both cores",
        Verdict::at_least(hybrid.scaling, SCALES, SERIAL),
        format!("scaling {:.2} of 2", hybrid.scaling),
    ));
    report.summary = format!(
        "beside two hogs the hybrid still serves {} of 1,000 tiny requests/s and scales the hogs {:.2}×; threads serve {} and scale {:.2}×; procpool serves {}",
        percent(kept),
        hybrid.scaling,
        percent(rows[0].beside / rows[0].alone),
        rows[0].scaling,
        percent(rows[1].beside / rows[1].alone),
    );
    report.setup = vec![
        format!(
            "three runs per server, {} each: `fib 1` offered at {OFFERED} per second on a schedule (4 connections, open loop) alone; one `{HOG}` client alone; the `fib 1` schedule beside two `{HOG}` clients",
            super::seconds(lab.profile.window())
        ),
        format!("`{HOG}` takes about 13 ms here: expensive against the essay's n > 15 threshold"),
        "servers may use both CPUs; procpool and hybrid have two worker processes".into(),
    ];
    report.explanation = "The hybrid's event loop answers `fib 1` itself, without a hop, and sends \
        `fib 35` to worker processes, each with its own GIL: the loop's GIL is never held for long, so \
        tiny requests keep flowing, and the two hogs run on two cores. Threads under the GIL lose \
        both: the hogs share one lock, and the tiny requests wait out switch intervals. A plain \
        process pool keeps the scaling, but every tiny request pays the hop and, while both \
        workers compute hogs, waits in the queue behind them."
        .into();
    Ok(report)
}
