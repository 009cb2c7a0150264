//! Tiny requests through a process pool: each one crosses two pipes and wakes another
//! process, on top of the network round trip. How much of the rate that costs depends on
//! how expensive the rest of the round trip is — in CPython, most of it.

use std::time::{Duration, Instant};

use crate::lab::outcome::{Chart, Figure, Table};
use crate::lab::pythons::PythonGil;
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict, class};
use crate::pool::{Executor, ProcessPool, ThreadPool, WorkerCommand};
use crate::protocol::Request;

use super::percent;

pub static EXPERIMENT: Experiment = Experiment {
    id: "procpool-overhead",
    claim: "routing tiny requests through a process pool costs most of the rate (≈95 % in the essay's CPython); how much here, how much in CPython today, and why",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): a process pool cuts perf2's rate by about 95 %",
    rule: "cost = 1 − rate through the process pool / rate computing on the connection's thread \
           (both --gil new). Holds when cost > 50 %, does not hold when cost < 25 %.",
    history: &[],
    run,
};

const MOST: f64 = 0.5;
const LITTLE: f64 = 0.25;

fn rate(lab: &mut Lab, args: &[&str]) -> Result<f64, LabError> {
    let one = lab.placement.server_one.clone();
    let server = lab.serve(args, &one)?;
    let window = lab.profile.window();
    let sample = lab.repeat(|lab| {
        let plan = lab.plan(
            &server,
            window,
            vec![Lab::class("rapid", 1, "fib 1", Duration::ZERO)],
        );
        Ok(class(&lab.load(&server, plan)?, "rapid")?.rate_per_s)
    })?;
    server.stop();
    Ok(sample.median)
}

/// Mean time of `count` tiny jobs submitted and waited for one at a time, in µs.
fn round_trip_us(executor: &dyn Executor, count: usize) -> Result<f64, LabError> {
    let started = Instant::now();
    for _ in 0..count {
        executor
            .submit(Request::Fib(1))
            .map_err(|e| LabError::Measurement(format!("submitting to a pool: {e}")))?
            .wait()
            .map_err(|e| LabError::Measurement(format!("a pool job failed: {e}")))?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / count as f64)
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    lab.step("procpool-overhead: threads");
    let threads = rate(lab, &["--model", "threads", "--gil", "new"])?;
    lab.step("procpool-overhead: pool");
    let pool = rate(lab, &["--model", "pool", "--gil", "new", "--workers", "2"])?;
    lab.step("procpool-overhead: procpool");
    let procpool = rate(
        lab,
        &["--model", "procpool", "--gil", "new", "--workers", "2"],
    )?;
    // The pools alone, in this process, on the servers' CPU: what a hand-off costs without
    // the network around it.
    lab.step("procpool-overhead: pool round trips");
    let count = lab.profile.pick(2_000, 10_000, 10_000);
    let cpu = lab.placement.server_one.clone();
    let clab = lab.clab.clone();
    let log = lab.health.clone();
    let (thread_us, process_us) = std::thread::scope(|scope| {
        scope
            .spawn(move || -> Result<(f64, f64), LabError> {
                log.pin_thread("pool round trips", &cpu);
                let threads = ThreadPool::new(1, None)
                    .map_err(|e| LabError::Measurement(format!("thread pool: {e}")))?;
                let thread_us = round_trip_us(&threads, count)?;
                threads.shutdown(true);
                let processes = ProcessPool::new(1, WorkerCommand::clab(clab, 45))
                    .map_err(|e| LabError::Measurement(format!("process pool: {e}")))?;
                let process_us = round_trip_us(&processes, count)?;
                processes.shutdown(true);
                Ok((thread_us, process_us))
            })
            .join()
            .expect("the pool measurement does not panic")
    })?;
    // CPython's own cost, measured on the first interpreter with the new GIL (python3 where
    // the lab picked one per era), rather than quoted from the essay.
    let cpython = match lab
        .pythons
        .iter()
        .find(|p| p.gil == PythonGil::New)
        .cloned()
    {
        Some(python) => {
            lab.step(&format!("procpool-overhead: {}", python.label()));
            let (threads, procpool) = crate::lab::fidelity::cpython_pool_rates(lab, &python)?;
            Some((python.label(), threads, procpool))
        }
        None => None,
    };
    let cpython_words = match &cpython {
        Some((label, threads, procpool)) => format!(
            "{label}: {} ({threads:.0} → {procpool:.0}/s)",
            percent(1.0 - procpool / threads)
        ),
        None => "no CPython 3 measured here; the essay's: ≈95 %".into(),
    };
    let cost = 1.0 - procpool / threads;
    let mut report = Report::default();
    let extra_us = 1e6 / procpool - 1e6 / threads;
    report.checks.push(Check::new(
        "procpool --gil new against threads --gil new: the pool costs most of the rate",
        Verdict::at_least(cost, MOST, LITTLE),
        format!(
            "{threads:.0} → {procpool:.0} requests/s: {} lost, {extra_us:.0} µs more per request",
            percent(cost)
        ),
    ));
    report.summary = format!(
        "a process pool costs {} of the tiny-request rate here ({threads:.0} → {procpool:.0}/s; {cpython_words}): a pool round trip is {process_us:.1} µs against a {:.0} µs network round trip",
        percent(cost),
        1e6 / threads
    );
    let mut table = Table::new(
        "Tiny requests (`fib 1`), one client",
        &["server", "requests/s", "µs per request", "against threads"],
    );
    for (label, value) in [
        ("threads --gil new", threads),
        ("pool --gil new (thread pool hand-off)", pool),
        ("procpool --gil new (process pool)", procpool),
    ] {
        table.row(vec![
            label.into(),
            format!("{value:.0}"),
            format!("{:.1}", 1e6 / value),
            percent(value / threads),
        ]);
    }
    if let Some((label, cpython_threads, cpython_procpool)) = &cpython {
        for (server, value) in [
            ("threads", cpython_threads),
            ("procpool (ProcessPoolExecutor)", cpython_procpool),
        ] {
            table.row(vec![
                format!("{label} {server}"),
                format!("{value:.0}"),
                format!("{:.1}", 1e6 / value),
                percent(value / cpython_threads),
            ]);
        }
    }
    report.tables.push(table);
    let mut pools = Table::new(
        format!(
            "A tiny job's round trip through a pool, alone, {count} times, on the servers' CPU"
        ),
        &["executor", "µs per job"],
    );
    pools.row(vec!["thread pool".into(), format!("{thread_us:.1}")]);
    pools.row(vec![
        "process pool (`clab worker` over pipes)".into(),
        format!("{process_us:.1}"),
    ]);
    report.tables.push(pools);
    report.figures.push(Figure {
        name: "rates".into(),
        title: "Tiny-request rate by where the work runs".into(),
        x_label: "server".into(),
        y_label: "requests/s".into(),
        chart: Chart::Bars {
            categories: vec![
                "threads".into(),
                "thread pool".into(),
                "process pool".into(),
            ],
            series: vec![("requests/s".into(), vec![threads, pool, procpool])],
        },
    });
    report.setup = vec![
        format!(
            "one client sending `fib 1` back to back for {}; servers on one CPU (pool workers inherit it)",
            super::seconds(lab.profile.window())
        ),
        "then, without the network, a thread pool and a process pool of one worker each timing a tiny job's round trip".into(),
    ];
    report.explanation = format!(
        "Through the process pool a request is written to a worker's pipe, the worker wakes, parses, \
         computes and writes back, and the handler thread wakes again: {process_us:.1} µs here against \
         {thread_us:.1} µs for a thread pool. The network round trip to the client on the other core \
         costs about {:.0} µs, so the pool adds a fraction of it. CPython pays far more per hop: \
         pickling, a feeder thread and a result thread that all need the GIL ({cpython_words}; the \
         essay's lost 95 %). The lesson carries over in proportion: send a process pool work that \
         is large against the hop.",
        1e6 / threads
    );
    report.raw("rates_per_s", [threads, pool, procpool]);
    report.raw("round_trip_us", [thread_us, process_us]);
    Ok(report)
}
