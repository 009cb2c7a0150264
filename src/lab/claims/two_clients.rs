//! One client timing a CPU-bound request, then two at once: where the work cannot run in
//! parallel (one GIL, one event-loop thread) each request takes twice as long; where it can
//! (threads without a GIL, processes, pre-forked children) latency stays flat.

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::{self, ClientsRun, Emulated, On};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::RuleChange;
use crate::lab::model::outcome::{Chart, Figure, Series, Table};
use crate::lab::model::outcome::{Check, Contrast};
use crate::lab::running::{Lab, LabError, Sample};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "two-clients",
    claim: "one fib(n) client, then two: latency doubles under the GIL and on an event loop, stays flat with threads without a GIL, processes and prefork",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): perf1's times double when a second client starts",
    rule: Rules {
        measures: "slowdown = mean latency with two clients / with one, each mean by Little's law (the clients ÷ the rate they completed).",
        marks: &[&DOUBLES, &FLAT],
        besides: "",
    },
    history: &[
        RuleChange {
            date: "2026-12-03",
            change: "the emulation is measured by the pair's method (short windows after a warm-up, one client then two, the slowdown the median of per-repeat pairs; a 30 ms `fib` sized on each side) instead of the profile's 2 s windows repeated three times per count; thresholds unchanged",
            reason: "one method per quantity, CPython and the emulation alike",
        },
        RuleChange {
            date: "2026-12-04",
            change: "each load's latency is the clients' mean by Little's law (clients ÷ the completed rate) instead of the completed requests' median, on every server and on CPython alike; the marks unchanged",
            reason: "the event loop's two-client median came out 20.6 ms in one pair of loads and 41.1 ms in the other (×1.50, inconclusive, where the runs before gave ×2.00): in the first, the loop answered one client back to back while the other's request waited, and the median was the favoured client's alone. The loop computes one request at a time either way; the mean by Little's law counts the waiting client's time, so it measures that and not which client the loop happened to favour",
        },
        RuleChange {
            date: "2026-12-04",
            change: "each load runs 2 s after its warm-up (1 s quick, 3 s thorough) instead of the short window's 0.8 s, on every server and on CPython alike; the marks unchanged",
            reason: "by Little's law the mean latency rests on the requests completed in the window: about 26 of 30 ms in 0.8 s, so a slowdown was a ratio of small counts (21/11 = 1.91, 24/11 = 2.18) and one request more or less moved it by 5 %. The emulation standing for CPython 3.11 measured 1.91 in two runs and 2.18 in another, and CPython 3.11 2.00–2.26, against a ±15 % band",
        },
    ],
    era: Some(&ERA),
    pair: Some(Pair::TwoClients),
    run: Method::Measure(run),
};

/// In each era: a threads server of one Python process — with a GIL per interpreter, one
/// whose work runs in subinterpreters.
static ERA: EraClaim = EraClaim {
    claim: "a second client sending CPU-bound requests to one Python process doubles each request's latency",
    metric: "mean latency (Little's law) with two clients ÷ with one",
    rule: DOUBLES.rule,
    unit: Unit::Times,
    measured_by: EraMetric::Pair(metrics::TWO_CLIENTS_THREADS),
    except: &[(
        Era::PerInterpreter,
        EraMetric::Pair(metrics::TWO_CLIENTS_INTERPRETERS),
    )],
};

const DOUBLES: Mark = Mark {
    what: "doubles (threads under a GIL, the event loop), the slowdown",
    rule: Rule::AtLeast {
        holds: 1.6,
        fails: 1.3,
    },
    unit: Unit::Times,
};
const FLAT: Mark = Mark {
    what: "flat (threads without a GIL, processes, prefork), the slowdown",
    rule: Rule::AtMost {
        holds: 1.3,
        fails: 1.6,
    },
    unit: Unit::Times,
};

/// One server's latencies and what the rule expects of them (doubling, or flat).
struct Row {
    run: ClientsRun,
    doubles: bool,
}

impl Row {
    fn slowdown(&self) -> f64 {
        Sample::new(self.run.slowdowns.clone()).median
    }

    fn check(&self, doubles: bool) -> Check {
        let slowdown = self.slowdown();
        let (verdict, expected) = if doubles {
            (DOUBLES.judge(slowdown), "doubles")
        } else {
            (FLAT.judge(slowdown), "flat")
        };
        Check::new(
            format!("{}: latency {expected}", self.run.label),
            verdict,
            format!(
                "{:.1} ms → {:.1} ms: ×{slowdown:.2} (the median of {} pairs of loads)",
                self.run.latencies[0].1.median,
                self.run.latencies[1].1.median,
                self.run.slowdowns.len()
            ),
        )
    }
}

/// The emulation's verdicts: the pair's method — one client, then two, then more, sending a
/// 30 ms `fib` to a server on every CPU — on clab's own configuration of the new GIL (threads,
/// a process pool, pre-forked children) and of no GIL (threads, the event loop).
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let counts: Vec<usize> = lab
        .profile
        .pick(vec![1, 2], vec![1, 2, 4], vec![1, 2, 3, 4]);
    let new = Emulated::era(Era::New);
    let free = Emulated::era(Era::FreeThreaded);
    let mut report = Report::default();
    let mut rows = Vec::new();
    for (subject, model, doubles) in [
        (&new, Model::Threads, true),
        (&free, Model::Eventloop, true),
        (&free, Model::Threads, false),
        (&new, Model::Procpool, false),
        (&new, Model::Prefork, false),
    ] {
        let on = On::Emulation(subject);
        let run = method::clients_run(lab, on, model, &counts)?;
        if model == Model::Threads {
            method::record(&mut report, Pair::TwoClients, subject, [&run.number(on)]);
        }
        rows.push(Row { run, doubles });
    }
    let slowdown = |index: usize| rows[index].slowdown();
    report.checks = rows.iter().map(|row| row.check(row.doubles)).collect();
    report.contrast = Some(Contrast {
        with_gil: rows[0].check(true),
        without_gil: rows[2].check(true),
    });
    report.summary = format!(
        "a second client slows requests ×{:.2} under --gil new and ×{:.2} on the event loop; ×{:.2} without a GIL, ×{:.2} procpool, ×{:.2} prefork",
        slowdown(0),
        slowdown(1),
        slowdown(2),
        slowdown(3),
        slowdown(4),
    );
    let request = rows[0].run.request.clone();
    report.setup = vec![
        format!(
            "closed-loop clients sending `{request}` (about 30 ms here, the time scale of CPython's fib(30) in the essay), {} clients, {} each after a warm-up, the sequence repeated {} times",
            crate::lab::words::list(&counts),
            crate::lab::words::seconds(crate::lab::running::measure::short_window(lab)),
            rows[0].run.slowdowns.len()
        ),
        "servers may use both CPUs — the claim is about using two cores; the load generator, waiting for 30 ms replies, uses next to none of its CPU, and measures latency, not a rate; procpool, prefork and interpreters have 4 workers, so no client waits for one".into(),
        "each era is measured on CPython by the claim's pair with the same method, in the eras table: threads of one Python process (subinterpreters with a GIL each, 3.12+) on each interpreter found, beside the emulation standing for it".into(),
        "beyond two clients the two cores are busy whatever the model: only 1 → 2 is judged".into(),
    ];
    report.tables = vec![table(&rows)];
    report.figures = vec![Figure::new(
        "latency",
        format!("Mean latency of `{request}` against concurrent clients"),
        ("clients", "mean latency (ms), clients ÷ rate"),
        Chart::lines(
            rows.iter()
                .map(|row| {
                    let points = row
                        .run
                        .latencies
                        .iter()
                        .map(|(clients, sample)| (*clients as f64, sample.median))
                        .collect();
                    Series::new(row.run.label.clone(), points)
                })
                .collect(),
        ),
    )];
    report.explanation = "Two clients, two cores. Under the GIL the two handler threads take \
        turns holding the one lock, so each request progresses at half speed; on the event loop \
        one thread computes one request at a time, so the second client waits for the first. \
        Without a GIL the two threads run on the two cores at once; process pools and \
        pre-forked servers have a lock (or an interpreter) per process."
        .into();
    Ok(report)
}

fn table(rows: &[Row]) -> Table {
    let mut table = Table::new(
        "Mean latency (ms, clients ÷ rate) by number of concurrent clients",
        &["server", "1 client", "2 clients", "slowdown", "expected"],
    );
    for row in rows {
        table.row(vec![
            row.run.label.clone(),
            row.run.latencies[0].1.show(1),
            row.run.latencies[1].1.show(1),
            format!("×{:.2}", row.slowdown()),
            if row.doubles { "doubles" } else { "flat" }.into(),
        ]);
    }
    table
}
