//! Two CPU-bound jobs at once against one after the other: under a GIL the threads take
//! turns, so running them "in parallel" saves nothing; processes, and threads without a
//! GIL, use both cores.

use crate::lab::outcome::{Chart, Figure, Table};
use crate::lab::pythons::PythonGil;
use crate::lab::{Check, Contrast, Experiment, Lab, LabError, Report, Verdict};

use super::two_clients::latency;

pub static EXPERIMENT: Experiment = Experiment {
    id: "countdown",
    claim: "two CPU-bound jobs: threads under a GIL are no faster than serial (often slower); processes — and threads without a GIL — use both cores",
    essay: "Melvin, Concurrent Programming in Python is not what you think it is: two countdown() threads are slower than two calls in a row",
    rule: "parallel/serial = time for two jobs at once / time for two in a row (2 × one job). \
           No faster than serial: holds when > 0.85, does not hold when < 0.7. Uses both cores: \
           holds when < 0.7, does not hold when > 0.85.",
    history: &[],
    run,
};

const NO_FASTER: f64 = 0.85;
const BOTH_CORES: f64 = 0.7;

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let job_ms = lab.profile.pick(100, 250, 250);
    let job = format!("spin {job_ms}");
    let all = lab.placement.server_all.clone();
    // The legacy GIL stands for CPython 2: with 2.x's measured tick where the lab found one,
    // so its 100-tick check interval releases as often as 2.7's does.
    let legacy_tick = lab
        .pythons
        .iter()
        .find(|python| python.gil == PythonGil::Legacy)
        .map(|python| format!("{}ns", python.tick().as_nanos()));
    let mut legacy: Vec<&str> = vec!["--model", "threads", "--gil", "legacy"];
    if let Some(tick) = &legacy_tick {
        legacy.extend(["--tick", tick]);
    }
    let configurations: [(&[&str], &str); 4] = [
        (&["--model", "threads", "--gil", "new"], "threads --gil new"),
        (&legacy, "threads --gil legacy"),
        (
            &["--model", "threads", "--gil", "none"],
            "threads --gil none",
        ),
        (
            &["--model", "procpool", "--gil", "new", "--workers", "2"],
            "procpool --gil new",
        ),
    ];
    let mut ratios = Vec::new();
    let mut table = Table::new(
        "Two CPU-bound jobs: one after the other against both at once",
        &[
            "server",
            "one job (ms)",
            "two in a row (ms)",
            "two at once (ms)",
            "at once / in a row",
        ],
    );
    for (args, label) in configurations {
        lab.step(&format!("countdown: {label}"));
        let server = lab.serve(args, &all)?;
        let one = latency(lab, &server, &job, 1)?.median;
        let both = latency(lab, &server, &job, 2)?.median;
        server.stop();
        let ratio = both / (2.0 * one);
        table.row(vec![
            label.into(),
            format!("{one:.0}"),
            format!("{:.0}", 2.0 * one),
            format!("{both:.0}"),
            format!("{ratio:.2}"),
        ]);
        ratios.push((label, one, both, ratio));
    }
    let evidence = |index: usize| {
        let (_, one, both, ratio) = ratios[index];
        format!(
            "two at once {both:.0} ms against {:.0} ms in a row: {ratio:.2}",
            2.0 * one
        )
    };
    let no_faster = |index: usize| Verdict::at_least(ratios[index].3, NO_FASTER, BOTH_CORES);
    let both_cores = |index: usize| Verdict::at_most(ratios[index].3, BOTH_CORES, NO_FASTER);
    let mut report = Report::default();
    report.checks = vec![
        Check::new(
            "threads --gil new: no faster than serial",
            no_faster(0),
            evidence(0),
        ),
        Check::new(
            "procpool --gil new: uses both cores",
            both_cores(3),
            evidence(3),
        ),
        Check::new(
            "threads --gil none: uses both cores",
            both_cores(2),
            evidence(2),
        ),
    ];
    report.contrast = Some(Contrast {
        with_gil: report.checks[0].clone(),
        without_gil: Check::new(
            "threads --gil none: no faster than serial",
            no_faster(2),
            evidence(2),
        ),
    });
    report.summary = format!(
        "both jobs at once take {:.2}× the serial time under --gil new ({:.2}× legacy), {:.2}× without a GIL, {:.2}× in a process pool",
        ratios[0].3, ratios[1].3, ratios[2].3, ratios[3].3
    );
    report.setup = vec![
        format!(
            "the job is `{job}`: calibrated CPU work reaching a GIL checkpoint once per tick, like a Python countdown loop; {} ms keeps the catalogue short while spanning {} switch intervals",
            job_ms,
            job_ms / 5
        ),
        format!(
            "one client sending the job back to back, then two, {} each; the median latency is the time per job",
            super::seconds(lab.profile.window())
        ),
        "servers may use both CPUs".into(),
        match &legacy_tick {
            Some(tick) => {
                format!("the legacy GIL ticks every {tick}, CPython 2's tick as measured here")
            }
            None => "the legacy GIL ticks at the default 22 ns: no CPython 2 was found to measure"
                .into(),
        },
    ];
    report.tables.push(table);
    report.figures.push(Figure {
        name: "ratio".into(),
        title: "Two jobs at once, as a share of the time one after the other".into(),
        x_label: "server".into(),
        y_label: "at once / in a row".into(),
        chart: Chart::Bars {
            categories: ratios.iter().map(|r| r.0.to_string()).collect(),
            series: vec![("measured".into(), ratios.iter().map(|r| r.3).collect())],
        },
    });
    report.explanation = "Each job is pure computation. Under the GIL only the thread holding the \
        lock computes; the other waits, asks for a switch after 5 ms, and the two alternate, so two \
        jobs finish no sooner than one after the other. The legacy GIL is worse on two cores: its \
        holder releases and immediately re-takes the lock every 100 ticks while the waiter is still \
        waking up — time is lost to the thrash. Processes each have their own lock, and threads \
        without one run on both cores."
        .into();
    Ok(report)
}
