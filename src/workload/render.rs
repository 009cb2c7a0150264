//! The text of a workload report: the table of rows, each interpreter's profile, the rules,
//! the recommendations and the notes.

use std::fmt::Write;

use comfy_table::{Table, presets};

use crate::workload::Report;

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
    text.push_str("\nWhat a call does:\n");
    for profile in &report.profiles {
        let share = profile
            .serial_share
            .map_or_else(|| "-".into(), |share| format!("{:.0} %", share * 100.0));
        let bytes = |b: Option<u64>| b.map_or_else(|| "-".into(), |b| b.to_string());
        let _ = writeln!(
            text,
            "  {:<8} {:.3} ms alone, computing {:.0} % of it; one at a time on threads: {share}; pickled: {} B in, {} B out",
            profile.python,
            profile.call_ms,
            profile.cpu_share * 100.0,
            bytes(profile.args_bytes),
            bytes(profile.result_bytes),
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
