//! The lab's terminal output: the catalogue and the verdicts as tables.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::lab::claims::experiment::Experiment;
use crate::lab::model::outcome::{Contrast, Verdict, significant};
use crate::lab::views::compare::{self, Beyond, Run};
use crate::report::LabReport;

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

/// `clab lab list`: each experiment's claim, the essay it comes from, its rule, and every
/// change of that rule since it was first run.
pub fn catalogue(experiments: &[&Experiment]) -> String {
    let mut out = String::new();
    for experiment in experiments {
        out += &format!("{}: {}\n", experiment.id, experiment.claim);
        out += &format!("  essay: {}\n", experiment.essay);
        out += &format!("  rule:  {}\n", one_line(&experiment.rule.words()));
        for change in experiment.history {
            out += &format!(
                "  rule changed {}: {} ({})\n",
                change.date, change.change, change.reason
            );
        }
        out += "\n";
    }
    out
}

/// `clab lab list --json`: the same, as one JSON array.
pub fn catalogue_json(experiments: &[&Experiment]) -> String {
    let entries: Vec<_> = experiments
        .iter()
        .map(|experiment| {
            serde_json::json!({
                "id": experiment.id,
                "claim": experiment.claim,
                "essay": experiment.essay,
                "rule": one_line(&experiment.rule.words()),
                "history": experiment.history,
            })
        })
        .collect();
    serde_json::to_string_pretty(&entries).expect("the catalogue serialises") + "\n"
}

/// A rule written over several source lines, as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The terminal's summary after a run, in 100 columns: each claim's verdicts on real CPython
/// era by era with the emulation's beside, then each experiment's verdict on the emulation
/// (the numbers are in the report).
pub fn verdicts(report: &LabReport) -> String {
    let mut out = String::from("Claims on real CPython, era by era, with the emulation beside:\n");
    let paired: Vec<&str> = report
        .outcomes
        .iter()
        .filter(|outcome| !outcome.fidelity.is_empty())
        .map(|outcome| outcome.id)
        .collect();
    for line in crate::lab::views::verdicts::lines(&report.verdicts, &paired, WIDTH) {
        out += &line;
        out.push('\n');
    }
    let mut table = table(&["experiment", "verdict on the emulation", "without the GIL"]);
    table.set_width(WIDTH as u16);
    for outcome in &report.outcomes {
        table.add_row(vec![
            outcome.id.to_string(),
            outcome.verdict.to_string(),
            outcome
                .contrast
                .as_ref()
                .map_or_else(|| "—".into(), contrast_words),
        ]);
    }
    format!("{out}{table}\n")
}

/// How the no-GIL side of a contrast reads: failing there is the evidence the GIL is the
/// cause, so it says so rather than reading as a failure.
pub fn contrast_words(contrast: &Contrast) -> String {
    if contrast.as_expected() {
        "does not hold, as expected: the GIL is the cause".into()
    } else {
        contrast.without_gil.verdict.to_string()
    }
}

/// The terminal's width for the summary.
const WIDTH: usize = 100;

/// `clab lab compare`: each measurement's change, then the verdicts that changed.
pub fn compare(old: &Run, new: &Run) -> String {
    let changes = compare::changes(&old.measurements, &new.measurements);
    let mut measured = table(&[
        "claim",
        "metric",
        "subject",
        "old",
        "new",
        "change",
        "beyond spread",
    ]);
    measured.set_width(WIDTH as u16);
    let value = |value: Option<f64>| value.map_or_else(|| "—".into(), significant);
    for change in &changes {
        measured.add_row(vec![
            change.claim.clone(),
            change.metric.clone(),
            change.subject.clone(),
            value(change.old),
            value(change.new),
            change
                .relative()
                .map_or_else(|| "—".into(), |r| format!("{:+.1} %", r * 100.0)),
            match change.beyond {
                Beyond::Yes => "yes",
                Beyond::No => "no",
                Beyond::Unknown => "unknown",
            }
            .into(),
        ]);
    }
    let mut out = format!("{measured}\n");
    if changes
        .iter()
        .any(|change| change.beyond == Beyond::Unknown)
    {
        out += "unknown: a run measured it once, so its spread is not known (--thorough repeats the experiments' key measurements)\n";
    }
    let verdicts = compare::verdict_changes(&old.verdicts, &new.verdicts);
    if verdicts.is_empty() {
        out += "no verdict changed\n";
        return out;
    }
    let mut changed = table(&["claim", "era", "on", "python", "old", "new"]);
    changed.set_width(WIDTH as u16);
    let verdict = |verdict: Option<Verdict>| verdict.map_or_else(|| "—".into(), |v| v.to_string());
    for change in verdicts {
        changed.add_row(vec![
            change.claim,
            change
                .era
                .map_or_else(|| "—".into(), |era| era.name().to_owned()),
            change.on.name().to_owned(),
            change.python.unwrap_or_else(|| "—".into()),
            verdict(change.old),
            verdict(change.new),
        ]);
    }
    out + &format!("verdicts that changed:\n{changed}\n")
}
