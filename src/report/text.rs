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

/// `clab lab list`.
pub fn catalogue(experiments: &[&Experiment]) -> String {
    let mut out = table(&["experiment", "claim"]);
    for experiment in experiments {
        out.add_row(vec![experiment.id, experiment.claim]);
    }
    format!("{out}\n")
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
