//! The lab's terminal output: the catalogue and the verdicts as tables.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::lab::{Experiment, Outcome};

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
        out += &format!("  rule:  {}\n", one_line(experiment.rule));
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
                "rule": one_line(experiment.rule),
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

/// The verdicts after a run.
pub fn verdicts(outcomes: &[Outcome]) -> String {
    let mut out = table(&["experiment", "verdict", "numbers"]);
    for outcome in outcomes {
        out.add_row(vec![
            outcome.id.to_string(),
            outcome.verdict.to_string(),
            outcome.summary.clone(),
        ]);
    }
    format!("{out}\n")
}
