//! `clab workload PATH.py:FUNCTION`: a user's own Python function measured under every
//! model on every interpreter found, and the model that fits it.
//!
//! The layers point one way: [`target`] says what to call; [`measure`] runs
//! `python/clab_workload.py` on each interpreter and returns its plain timings; [`rows`] turns
//! them into one flat record per interpreter and model, and the function's profile; [`advice`]
//! draws a recommendation per interpreter from the rows by rules fixed as data; [`serving`]
//! serves the function under each model, CPython's server beside the emulation of its
//! profile; [`render`] writes the tables. Everything after the measuring is a pure function of
//! its results.

pub mod advice;
pub mod measure;
pub mod render;
pub mod rows;
pub mod serving;
pub mod target;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::lab::running::pythons::{self, Python, Scripts, Selection};
pub use advice::{Recommendation, Rule};
pub use measure::{Measured, Settings};
pub use rows::{Model, Profile, Row};
pub use serving::{Agreement, Served, Side};
pub use target::{Target, TargetError};

/// The schema of `clab workload --json`.
pub const SCHEMA: &str = "clab-workload/1";

/// What a run found: every row, each interpreter's profile and recommendation, the rules
/// they were drawn by, and a note for each interpreter or model that could not be measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub target: String,
    pub args: Vec<String>,
    /// The CPUs the measurements ran on; the workers are as many.
    pub cpus: Vec<usize>,
    pub rows: Vec<Row>,
    pub profiles: Vec<Profile>,
    /// The function as a server's request, on CPython and on the emulation of its profile.
    pub served: Vec<Served>,
    /// The emulation's convoy judged against CPython's, per interpreter and model.
    pub agreements: Vec<Agreement>,
    pub recommendations: Vec<Recommendation>,
    pub rules: Vec<Rule>,
    pub notes: Vec<String>,
}

/// Why a workload could not be measured at all.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot write the measuring scripts: {0}")]
    Scripts(String),
    #[error("no interpreter could run {target}: {}", notes.join("; "))]
    NothingMeasured { target: String, notes: Vec<String> },
}

/// Measures `target` on each interpreter `selection` finds, in turn, then (unless
/// `settings` say not to) serves it, with `clab` as the emulated server; says what it does
/// through `progress`.
pub fn run(
    target: &Target,
    selection: &Selection,
    (settings, clab): (&Settings, &Path),
    progress: &mut dyn FnMut(&str),
) -> Result<Report, WorkloadError> {
    let dir = tempfile::Builder::new()
        .prefix("clab-workload-")
        .tempdir()
        .map_err(|e| WorkloadError::Scripts(e.to_string()))?;
    let scripts = Scripts::write(dir.path()).map_err(|e| WorkloadError::Scripts(e.to_string()))?;
    // Serving emulates each interpreter as the lab does (its tick, switch points and
    // executors' hops), so it is calibrated first; the calls alone need only its identity.
    let (calibrated, found, mut notes) = if settings.serve {
        progress("finding and calibrating interpreters (the tick, the executors' hops)");
        let found = pythons::select(selection, &scripts, clab);
        let identities = found.pythons.iter().map(Python::identity).collect();
        (found.pythons, identities, found.notes)
    } else {
        progress("finding interpreters");
        let (identities, notes) = pythons::find(selection, &scripts);
        (Vec::new(), identities, notes)
    };
    let mut measured = Vec::new();
    for python in &found {
        progress(&format!("CPython {}: measuring", python.name()));
        let started = std::time::Instant::now();
        match measure::measure(python, target, &scripts, settings) {
            Ok(one) => {
                notes.extend(one.notes());
                progress(&format!(
                    "CPython {}: done in {}",
                    python.name(),
                    seconds(started.elapsed())
                ));
                measured.push(one);
            }
            Err(why) => notes.push(format!("CPython {} skipped: {why}", python.name())),
        }
    }
    if measured.is_empty() {
        return Err(WorkloadError::NothingMeasured {
            target: target.to_string(),
            notes,
        });
    }
    let (rows, profiles): (Vec<Vec<Row>>, Vec<Profile>) = measured.iter().map(rows::of).unzip();
    let rows: Vec<Row> = rows.into_iter().flatten().collect();
    let recommendations = advice::recommend(&rows, &profiles);
    let served = if settings.serve {
        let pairs: Vec<(Python, Profile)> = measured
            .iter()
            .zip(&profiles)
            .filter_map(|(one, profile)| {
                let python = calibrated.iter().find(|p| p.path == one.python.path)?;
                Some((python.clone(), profile.clone()))
            })
            .collect();
        let (served, server_notes) = serving::serve(&pairs, target, &scripts, clab, progress);
        notes.extend(server_notes);
        served
    } else {
        Vec::new()
    };
    Ok(Report {
        schema: SCHEMA,
        target: target.to_string(),
        args: target.args.clone(),
        cpus: settings.cpus.clone(),
        rows,
        profiles,
        agreements: serving::agreements(&served),
        served,
        recommendations,
        rules: advice::RULES.to_vec(),
        notes,
    })
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}
