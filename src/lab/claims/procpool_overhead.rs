//! Tiny requests through a process pool: each one crosses two pipes and wakes another
//! process, on top of the network round trip. How much of the rate that costs depends on
//! how expensive the rest of the round trip is — in CPython, most of it.

use std::time::Instant;

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::{self, Emulated, On, pool_rate};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::Check;
use crate::lab::model::outcome::RuleChange;
use crate::lab::model::outcome::{Chart, Figure, Table};
use crate::lab::running::measure;
use crate::lab::running::{Lab, LabError};
use crate::pool::{Executor, ProcessPool, ThreadPool, WorkerCommand};
use crate::protocol::Request;
use crate::server::Model;

use crate::lab::words::percent;

pub static EXPERIMENT: Experiment = Experiment {
    id: "procpool-overhead",
    claim: "routing tiny requests through a process pool costs most of the rate (≈95 % in the essay's CPython); how much here, how much in CPython today, and why",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): a process pool cuts perf2's rate by about 95 %",
    rule: Rules {
        measures: "cost = 1 − rate through the process pool / rate computing on the connection's thread (both --gil new), one client sharing the servers' CPU.",
        marks: &[&COSTS_MOST],
        besides: "",
    },
    history: &[
        RuleChange {
            date: "2026-12-03",
            change: "the emulation's rates are measured by the pair's method (one short load per server after a warm-up) instead of the profile's window repeated; the mark unchanged",
            reason: "one method per quantity, CPython and the emulation alike",
        },
        RuleChange {
            date: "2026-12-04",
            change: "both servers start together and are loaded in turn, inline then pooled, as many pairs as the profile repeats (three by default); the cost is the median of the pairs' costs, on CPython and the emulation alike; the mark unchanged",
            reason: "one short load of each let a slow spell decide: the emulation standing for 3.11 once measured its inline rate at 10,525/s against about 14,000 in the runs before and after, and its cost at 0.49 against 0.64–0.65, on the mark",
        },
        RuleChange {
            date: "2026-12-04",
            change: "the client shares the servers' CPU instead of running on the other one, so a round trip is the client's and the server's CPU work; on CPython and the emulation alike, in every era; the mark unchanged",
            reason: "across cores the hop's share is hop ÷ (wake-up latency + hop), and that latency is the host's (about 70 µs on an Intel host, 190 µs on an AMD one): the subinterpreter's cost measured 0.47–0.54 and a free-threaded thread pool's 0.25–0.37 from run to run on one host, on both marks; on one CPU here they are 0.86 and 0.67, CPython 3.11's process pool 0.93",
        },
    ],
    era: Some(&ERA),
    pair: Some(Pair::ProcpoolOverhead),
    run: Method::Measure(run),
};

/// In each era: each tiny request handed to the worker that era computes in parallel with —
/// a process under a GIL, a subinterpreter with a GIL each, a thread without a GIL.
static ERA: EraClaim = EraClaim {
    claim: "handing each tiny request to the era's parallel worker (a process; from 3.12 a subinterpreter; free-threaded, a thread) costs most of the rate",
    metric: "1 − rate through the worker ÷ rate on the connection's thread",
    rule: COSTS_MOST.rule,
    unit: Unit::Percent,
    measured_by: EraMetric::Pair(metrics::PROCESS_POOL_COST),
    except: &[
        (
            Era::PerInterpreter,
            EraMetric::Pair(metrics::INTERPRETER_HOP_COST),
        ),
        (
            Era::FreeThreaded,
            EraMetric::Pair(metrics::THREAD_POOL_COST),
        ),
    ],
};

const COSTS_MOST: Mark = Mark {
    what: "the pool costs most of the rate, the cost",
    rule: Rule::AtLeast {
        holds: 0.5,
        fails: 0.25,
    },
    unit: Unit::Percent,
};

/// The tiny-request rate, requests/s, by where the work runs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Rates {
    /// On the connection's thread.
    threads: f64,
    /// Handed to a thread pool.
    pool: f64,
    /// Handed to a process pool.
    procpool: f64,
}

/// A tiny job's round trip through each pool alone, without the network, µs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct RoundTrips {
    count: usize,
    thread_us: f64,
    process_us: f64,
}

impl RoundTrips {
    /// Both pools of one worker, in this process, on the servers' CPU.
    fn measure(lab: &mut Lab) -> Result<RoundTrips, LabError> {
        lab.step("procpool-overhead: pool round trips")?;
        let count = lab.profile.pick(2_000, 10_000, 10_000);
        let (cpu, clab, log) = (
            lab.placement.server_one.clone(),
            lab.clab.clone(),
            lab.health.clone(),
        );
        std::thread::scope(|scope| {
            scope
                .spawn(move || -> Result<RoundTrips, LabError> {
                    log.pin_thread("pool round trips", &cpu);
                    let threads = ThreadPool::new(1, None)
                        .map_err(|e| LabError::Measurement(format!("thread pool: {e}")))?;
                    let thread_us = round_trip_us(&threads, count)?;
                    threads.shutdown(true);
                    let processes = ProcessPool::new(1, WorkerCommand::clab(clab, 45))
                        .map_err(|e| LabError::Measurement(format!("process pool: {e}")))?;
                    let process_us = round_trip_us(&processes, count)?;
                    processes.shutdown(true);
                    Ok(RoundTrips {
                        count,
                        thread_us,
                        process_us,
                    })
                })
                .join()
                .expect("the pool measurement does not panic")
        })
    }
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

fn rates_table(rates: &Rates) -> Table {
    let mut table = Table::new(
        "Tiny requests (`fib 1`), one client",
        &["server", "requests/s", "µs per request", "against threads"],
    );
    let mut row = |label: String, value: f64, against: f64| {
        table.row(vec![
            label,
            format!("{value:.0}"),
            format!("{:.1}", 1e6 / value),
            percent(value / against),
        ])
    };
    row("threads --gil new".into(), rates.threads, rates.threads);
    let pool = "pool --gil new, 2 workers (thread pool hand-off)";
    row(pool.into(), rates.pool, rates.threads);
    let procpool = "procpool --gil new, 2 workers (process pool)";
    row(procpool.into(), rates.procpool, rates.threads);
    table
}

fn round_trips_table(trips: &RoundTrips) -> Table {
    let mut pools = Table::new(
        format!(
            "A tiny job's round trip through a pool, alone, {} times, on the servers' CPU",
            trips.count
        ),
        &["executor", "µs per job"],
    );
    pools.row(vec![
        "thread pool".into(),
        format!("{:.1}", trips.thread_us),
    ]);
    pools.row(vec![
        "process pool (`clab worker` over pipes)".into(),
        format!("{:.1}", trips.process_us),
    ]);
    pools
}

/// The emulation's verdict: the pair's function — a `fib 1` client on threads, then through a
/// process pool of two — on clab's own configuration of the new GIL; beside it, a thread
/// pool's rate by the same load, and each pool's round trip without the network.
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let new = Emulated::era(Era::New).only(metrics::PROCESS_POOL_COST);
    let on = On::Emulation(&new);
    let costs = method::pool_costs(lab, on)?;
    let procpool_cost = costs
        .first()
        .ok_or_else(|| LabError::Measurement("the process pool's cost was not measured".into()))?;
    lab.step("procpool-overhead: a thread pool")?;
    let pool = pool_rate(lab, |lab, cpus| {
        lab.serve(&new.spec(Model::Pool).workers(2), cpus)
    })?;
    let rates = Rates {
        threads: procpool_cost.inline_per_s,
        pool,
        procpool: procpool_cost.pooled_per_s,
    };
    let trips = RoundTrips::measure(lab)?;
    let (threads, procpool) = (rates.threads, rates.procpool);
    let inline_us = 1e6 / threads;
    let cost = procpool_cost.cost();
    let mut report = Report {
        checks: vec![Check::new(
            format!(
                "{}: a process pool against threads: the pool costs most of the rate",
                new.subject.label
            ),
            COSTS_MOST.judge(cost),
            format!(
                "{threads:.0} → {procpool:.0} requests/s: {} lost, {:.0} µs more per request",
                percent(cost),
                1e6 / procpool - inline_us
            ),
        )],
        summary: format!(
            "a process pool costs {} of the tiny-request rate here ({threads:.0} → {procpool:.0}/s): a pool round trip is {:.1} µs against {inline_us:.0} µs for a whole request computed inline",
            percent(cost),
            trips.process_us,
        ),
        tables: vec![rates_table(&rates), round_trips_table(&trips)],
        figures: vec![Figure::new(
            "rates",
            "Tiny-request rate by where the work runs",
            ("server", "requests/s"),
            Chart::bars(
                "requests/s",
                [
                    ("threads".into(), threads),
                    ("thread pool".into(), rates.pool),
                    ("process pool".into(), procpool),
                ],
            ),
        )],
        setup: vec![
            format!(
                "one client sending `fib 1` back to back for {} after a warm-up; servers on one CPU (pool workers inherit it), the client on the same CPU, so a round trip is CPU work and not a wake-up across cores, whose latency is the host's",
                crate::lab::words::seconds(measure::short_window(lab))
            ),
            "then, without the network, a thread pool and a process pool of one worker each timing a tiny job's round trip".into(),
            "each era — the legacy GIL, a GIL per interpreter (a subinterpreter's hop), free threading (a thread pool's hop) — is measured on CPython by the claim's pair with the same function, in the eras table".into(),
        ],
        explanation: format!(
            "Through the process pool a request is written to a worker's pipe, the worker wakes, \
             parses, computes and writes back, and the handler thread wakes again: {:.1} µs here \
             against {:.1} µs for a thread pool. A whole request computed inline, the client's \
             work included (it shares the CPU), costs about {inline_us:.0} µs, so the hop's \
             switches between processes dominate it. CPython pays more per hop again: pickling, \
             a feeder thread and a result thread that all need the GIL (the essay's lost 95 %; \
             this machine's, on every CPython found, is the claim's fidelity pair). The lesson \
             carries over in proportion: send a process pool work that is large against the hop.",
            trips.process_us, trips.thread_us
        ),
        ..Report::default()
    };
    report.raw("rates_per_s", rates);
    report.raw("round_trip_us", trips);
    method::record(
        &mut report,
        Pair::ProcpoolOverhead,
        &new,
        [&procpool_cost.number(on)],
    );
    Ok(report)
}
