//! The text of a workload report: the table of rows, each interpreter's profile, the rules,
//! the recommendations and the notes.

use std::fmt::Write;

use comfy_table::{Table, presets};

use crate::workload::serving::agreements;
use crate::workload::{Model, Report, Served, Side};

pub fn text(report: &Report) -> String {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "python",
        "model",
        "workers",
        "calls/s",
        "scaling",
        "one call ms",
        "overhead µs",
        "spread",
    ]);
    for row in &report.rows {
        table.add_row([
            row.python.clone(),
            row.model.name().to_owned(),
            row.workers.to_string(),
            format!("{:.0}", row.calls_per_s),
            format!("{:.2}×", row.scaling),
            format!("{:.3}", row.call_ms),
            format!("{:.0}", row.overhead_us),
            format!("{:.0} %", row.spread * 100.0),
        ]);
    }
    let cpus: Vec<String> = report.cpus.iter().map(usize::to_string).collect();
    let mut text = format!(
        "{} on CPUs {} (as many workers), each model's timings interleaved with the others'\n{table}\n",
        report.target,
        cpus.join(",")
    );
    if !report.served.is_empty() {
        text.push_str(&served(report));
    }
    text.push_str("\nWhat a call does:\n");
    for profile in &report.profiles {
        let share = profile
            .serial_share
            .map_or_else(|| "-".into(), |share| format!("{:.0} %", share * 100.0));
        let bytes = |b: Option<u64>| b.map_or_else(|| "-".into(), |b| b.to_string());
        let _ = writeln!(
            text,
            "  {:<8} {:.3} ms alone, computing {:.0} % of it; one at a time on threads: {share}; pickled: {} B in, {} B out; emulated as --workload {}",
            profile.python,
            profile.call_ms,
            profile.cpu_share * 100.0,
            bytes(profile.args_bytes),
            bytes(profile.result_bytes),
            profile.work,
        );
    }
    text.push_str("\nRules (the first that applies answers):\n");
    for (number, rule) in report.rules.iter().enumerate() {
        let _ = writeln!(text, "  {}. {}: {}", number + 1, rule.name, rule.says);
    }
    text.push_str("\nRecommendations:\n");
    for advice in &report.recommendations {
        let _ = writeln!(
            text,
            "  {:<8} {} ({}): {}",
            advice.python,
            advice.model.name(),
            advice.rule,
            advice.why
        );
    }
    if !report.notes.is_empty() {
        text.push_str("\nNotes:\n");
        for note in &report.notes {
            let _ = writeln!(text, "  {note}");
        }
    }
    text
}

/// The function as a server's request: per interpreter and model, CPython's server beside the
/// emulation of the function's profile under the same load.
fn served(report: &Report) -> String {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "python",
        "model",
        "call ms (CPython)",
        "emulated",
        "fib 1 kept (CPython)",
        "emulated",
        "faithful",
    ]);
    let agreements = agreements(&report.served);
    let mut pairs: Vec<(&str, Model)> = report
        .served
        .iter()
        .map(|served| (served.python.as_str(), served.model))
        .collect();
    pairs.dedup();
    for (python, model) in pairs {
        let side = |side: Side| {
            report
                .served
                .iter()
                .find(|s| s.python == python && s.model == model && s.side == side)
        };
        let (real, emulated) = (side(Side::Cpython), side(Side::Emulation));
        let call =
            |s: Option<&Served>| s.map_or_else(|| "-".into(), |s| format!("{:.2}", s.call_ms));
        let kept = |s: Option<&Served>| {
            s.map_or_else(|| "-".into(), |s| format!("{:.0} %", s.kept * 100.0))
        };
        let faithful = agreements
            .iter()
            .find(|a| a.python == python && a.model == model)
            .map_or("-", |a| if a.faithful { "yes" } else { "no" });
        table.add_row([
            python.to_owned(),
            model.name().to_owned(),
            call(real),
            call(emulated),
            kept(real),
            kept(emulated),
            faithful.to_owned(),
        ]);
    }
    let faithful = agreements.iter().filter(|a| a.faithful).count();
    format!(
        "\nAs a server (on one CPU, the load on another): a client calling it back to back beside a rapid `fib 1` client — the call's median, and the share of its rate the rapid client keeps; the emulation is faithful where its share lies within the lab's convoy band ({}) of CPython's: {faithful} of {}\n{table}\n",
        crate::lab::claims::metrics::bands::CONVOY.describe(),
        agreements.len()
    )
}
