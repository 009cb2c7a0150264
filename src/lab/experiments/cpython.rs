//! The emulation beside the real thing: the same loads against CPython's own threaded
//! server (`python/clab_server.py`) and against `clab serve --gil new`, and the ratios that
//! define the GIL's effects compared side by side.

use std::process::Command;
use std::time::Duration;

use crate::lab::outcome::{Chart, Figure, Table};
use crate::lab::process::{ChildServer, run_to_completion};
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict};

use super::convoy::{self, ConvoyRun};
use super::{percent, two_clients};

pub static EXPERIMENT: Experiment = Experiment {
    id: "cpython",
    claim: "the same experiments against real CPython (a reference server in `python/`), side by side with the emulation: how faithful is the model",
    essay: "all five essays' claims about CPython's GIL; here CPython 3 itself is the reference",
    rule: "faithful when, for the convoy (rate kept beside a hog) and for two clients (latency \
           slowdown), CPython and `--gil new` land on the same side of the claim's thresholds \
           (kept < 20 %; slowdown > 1.6) and the emulation's ratio is within a factor of 3 (convoy) \
           or ±30 % (two clients) of CPython's. Skipped when python3 is missing.",
    run,
};

/// The reference servers, embedded so the lab needs no checkout to find them.
const SERVER_PY: &str = include_str!("../../../python/clab_server.py");
/// CPython takes ~30 ms for fib(28) and ~55 ms for fib(29) here; Rust takes about as long
/// for fib 37 and fib 38. Each side gets the n that gives it the same time scale.
const PY_REQUEST: &str = "fib 28";
const PY_HOG: &str = "fib 29";

pub(crate) fn python_version() -> Option<String> {
    let mut command = Command::new("python3");
    command.arg("--version");
    run_to_completion(command, Duration::from_secs(10))
        .ok()
        .map(|v| v.trim().to_owned())
}

fn python_server(lab: &mut Lab, cpus: &[usize]) -> Result<ChildServer, LabError> {
    let script = lab.scratch_file("clab_server.py");
    std::fs::write(&script, SERVER_PY).map_err(|e| LabError::Io(script.clone(), e))?;
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .args(["--model", "threads", "--addr", "127.0.0.1:0"]);
    lab.start(command, "CPython threads", cpus)
}

/// Faithful: on the same side of the claim's threshold and close; inconclusive: on the same
/// side only; unfaithful: on different sides.
fn agreement(same_side: bool, close: bool) -> Verdict {
    match (same_side, close) {
        (true, true) => Verdict::Holds,
        (true, false) => Verdict::Inconclusive,
        (false, _) => Verdict::DoesNotHold,
    }
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let Some(version) = lab.python.clone() else {
        return Ok(Report {
            verdict: Some(Verdict::Skipped),
            summary: "python3 is not installed here: nothing to compare with".into(),
            checks: vec![Check::new(
                "CPython available",
                Verdict::Skipped,
                "`python3 --version` did not run",
            )],
            ..Report::default()
        });
    };
    let (one, all) = (
        lab.placement.server_one.clone(),
        lab.placement.server_all.clone(),
    );
    let emulation = ["--model", "threads", "--gil", "new"];

    lab.step("cpython: convoy on CPython");
    let server = python_server(lab, &one)?;
    let (python_convoy, _) = lab.median_run(
        |run: &ConvoyRun| run.kept,
        |lab| convoy::measure(lab, &server, PY_HOG),
    )?;
    server.stop();
    lab.step("cpython: convoy on --gil new");
    let server = lab.serve(&emulation, &one)?;
    let (emulated_convoy, _) = lab.median_run(
        |run: &ConvoyRun| run.kept,
        |lab| convoy::measure(lab, &server, convoy::HOG),
    )?;
    server.stop();

    lab.step("cpython: two clients on CPython");
    let server = python_server(lab, &all)?;
    let python_latency = [
        two_clients::latency(lab, &server, PY_REQUEST, 1)?.median,
        two_clients::latency(lab, &server, PY_REQUEST, 2)?.median,
    ];
    server.stop();
    lab.step("cpython: two clients on --gil new");
    let server = lab.serve(&emulation, &all)?;
    let emulated_latency = [
        two_clients::latency(lab, &server, two_clients::REQUEST, 1)?.median,
        two_clients::latency(lab, &server, two_clients::REQUEST, 2)?.median,
    ];
    server.stop();

    let python_slowdown = python_latency[1] / python_latency[0];
    let emulated_slowdown = emulated_latency[1] / emulated_latency[0];
    let mut report = Report::default();
    let convoy_verdict = agreement(
        (python_convoy.kept < 0.2) == (emulated_convoy.kept < 0.2),
        (1.0 / 3.0..=3.0).contains(&(emulated_convoy.kept / python_convoy.kept)),
    );
    report.checks.push(Check::new(
        "convoy: the emulation collapses like CPython",
        convoy_verdict,
        format!(
            "rate kept beside a hog: CPython {} ({:.0} → {:.0}/s), --gil new {} ({:.0} → {:.0}/s)",
            percent(python_convoy.kept),
            python_convoy.before_per_s,
            python_convoy.after_per_s,
            percent(emulated_convoy.kept),
            emulated_convoy.before_per_s,
            emulated_convoy.after_per_s
        ),
    ));
    let latency_verdict = agreement(
        (python_slowdown > 1.6) == (emulated_slowdown > 1.6),
        (0.7..=1.3).contains(&(emulated_slowdown / python_slowdown)),
    );
    report.checks.push(Check::new(
        "two clients: the emulation slows down like CPython",
        latency_verdict,
        format!(
            "latency with two clients / one: CPython ×{python_slowdown:.2}, --gil new ×{emulated_slowdown:.2}"
        ),
    ));
    report.summary = format!(
        "{version}: a hog leaves {} of the tiny-request rate (--gil new: {}); a second client slows requests ×{python_slowdown:.2} (--gil new: ×{emulated_slowdown:.2})",
        percent(python_convoy.kept),
        percent(emulated_convoy.kept)
    );
    let mut table = Table::new(
        "CPython and the emulation, same loads",
        &[
            "measure",
            &version,
            "clab threads --gil new",
            "emulation / CPython",
        ],
    );
    table.row(vec![
        "tiny requests/s alone".into(),
        format!("{:.0}", python_convoy.before_per_s),
        format!("{:.0}", emulated_convoy.before_per_s),
        format!(
            "{:.1}×",
            emulated_convoy.before_per_s / python_convoy.before_per_s
        ),
    ]);
    table.row(vec![
        "convoy: rate kept beside a hog".into(),
        percent(python_convoy.kept),
        percent(emulated_convoy.kept),
        format!("{:.2}", emulated_convoy.kept / python_convoy.kept),
    ]);
    table.row(vec![
        format!(
            "one client: median latency (`{PY_REQUEST}` / `{}`)",
            two_clients::REQUEST
        ),
        format!("{:.1} ms", python_latency[0]),
        format!("{:.1} ms", emulated_latency[0]),
        format!("{:.2}", emulated_latency[0] / python_latency[0]),
    ]);
    table.row(vec![
        "two clients: slowdown".into(),
        format!("×{python_slowdown:.2}"),
        format!("×{emulated_slowdown:.2}"),
        format!("{:.2}", emulated_slowdown / python_slowdown),
    ]);
    report.tables.push(table);
    let relabel = |run: &ConvoyRun, label: &str| {
        crate::lab::outcome::Series::new(label, run.timeline.clone())
    };
    report.figures.push(Figure {
        name: "convoy".into(),
        title: "Tiny requests per second, a hog joining half-way: CPython and the emulation".into(),
        x_label: "time (s)".into(),
        y_label: "requests/s".into(),
        chart: Chart::Lines {
            series: vec![
                relabel(&python_convoy, &version),
                relabel(&emulated_convoy, "clab threads --gil new"),
            ],
            markers: vec![crate::lab::outcome::Marker {
                x: python_convoy.hog_at_s,
                label: "hog joins".into(),
            }],
            log_x: false,
            log_y: true,
        },
    });
    report.setup = vec![
        format!("CPython: `python/clab_server.py --model threads` ({version}), a thread per connection, the essay's server"),
        "emulation: `clab serve --model threads --gil new` (5 ms switch interval, CPython's default)".into(),
        format!(
            "convoy: `fib 1` client, hog from half-way (CPython `{PY_HOG}`, Rust `{}`, both ≈50–90 ms), server on one CPU",
            convoy::HOG
        ),
        format!(
            "two clients: CPython `{PY_REQUEST}`, Rust `{}` (both ≈30 ms), one then two clients, server on both CPUs",
            two_clients::REQUEST
        ),
    ];
    report.explanation = "The ratios, not the absolute rates, are what the GIL explains: CPython's \
        server parses and dispatches in bytecode, so it is slower per request than Rust, but a hog \
        collapses both the same way, because both wait a switch interval for the lock after every \
        socket read; and two CPU-bound clients share one lock in both. Where the ratios differ, the \
        difference is in what the emulation leaves out — CPython's per-request interpreter work also \
        holds the GIL, so its I/O thread needs the lock for longer at each turn."
        .into();
    report.raw("python_version", &version);
    report.raw("python_convoy", &python_convoy);
    report.raw("emulated_convoy", &emulated_convoy);
    report.raw("python_latency_ms", python_latency);
    report.raw("emulated_latency_ms", emulated_latency);
    Ok(report)
}
