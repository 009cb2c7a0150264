//! `clab lab` (the README's *The lab*): every claim of the essays as an experiment with a verdict.
//!
//! The lab is four layers, each using only those below it:
//! - [`model`]: eras, subjects, the one table of measurements, outcomes and verdicts as plain data;
//! - [`running`]: the [`Lab`] a claim measures through — pinned servers and loads, health,
//!   interpreters, setups;
//! - [`claims`]: the catalogue, one file per claim, and the fidelity matrix that runs each on
//!   real CPython beside its emulation;
//! - [`views`]: the table, the verdicts per era, and comparisons, read from a run's outcomes.
//!
//! This file runs the claims: [`Options`] checked once, then [`run`] each claim into its
//! outcome; [`pipeline`] is a whole run, from finding the interpreters to the gathered report
//! ([`crate::report`] renders it).

pub mod claims;
pub mod model;
pub mod pipeline;
pub mod running;
pub mod views;
pub mod words;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use claims::experiment::{Experiment, Method, Report};
pub use model::outcome::{Check, Contrast, Outcome, Verdict};
pub use running::{Lab, LabError, Placement, Profile, Sample};

use crate::lab::running::health;
use crate::lab::running::pythons;

/// Runs the experiments in order, naming each as the current step before it runs and
/// calling `done` with its outcome after. An interrupt (see [`Lab::interrupt`]) ends the run:
/// the experiment it cut short is left out, its servers stopped, and the outcomes of those
/// that finished are returned.
pub fn run(
    experiments: &[&Experiment],
    lab: &mut Lab,
    mut done: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for experiment in experiments {
        if lab.step(experiment.id).is_err() {
            break; // interrupted
        }
        let started = Instant::now();
        lab.look_at_cores(experiment.id);
        let mut result = match experiment.run {
            Method::Measure(measure) => measure(lab),
            Method::Read(read) => Ok(read(lab, &outcomes)),
        };
        if let (Ok(report), Some(pair)) = (&mut result, experiment.pair) {
            let paired = claims::method::on_every_python(lab, pair);
            report.fidelity.extend(paired.fidelity);
            report.measurements.extend(paired.measurements);
            report.checks.extend(paired.failures);
            if let Some(era_claim) = experiment.era {
                let (measured, failures) = claims::method::on_eras_without_python(
                    lab,
                    pair,
                    era_claim,
                    &report.measurements,
                );
                report.measurements.extend(measured);
                report.checks.extend(failures);
            }
        }
        if lab.interrupt.signal().is_some() {
            lab.health.take();
            break;
        }
        let outcome = finish(experiment, lab, result, started.elapsed());
        done(&outcome);
        outcomes.push(outcome);
    }
    outcomes
}

fn finish(
    experiment: &Experiment,
    lab: &Lab,
    result: Result<Report, LabError>,
    elapsed: Duration,
) -> Outcome {
    let report = result.unwrap_or_else(|error| {
        let message = format!("{:#}", anyhow::Error::from(error));
        Report {
            verdict: Some(Verdict::Error),
            summary: format!("the experiment failed: {message}"),
            checks: vec![Check::new("the run", Verdict::Error, message)],
            ..Report::default()
        }
    });
    let mut verdict = report
        .verdict
        .unwrap_or_else(|| Verdict::all(report.checks.iter().map(|check| check.verdict)));
    let health = lab.health.take();
    let mut summary = report.summary;
    let mut checks = report.checks;
    let mut era = match (experiment.era, report.era) {
        (Some(claim), Some(measured)) => Some(claim.judge(experiment.id, &measured)),
        // The pair measured every era: judged from its measurements.
        (Some(claim), None) if experiment.pair.is_some() => {
            // A measurement given twice fails the run's table in the views, which report it.
            let mut table = model::Measurements::default();
            views::insert_measured(&mut table, &report.measurements).ok();
            Some(claim.judge_table(experiment.id, &table))
        }
        _ => None,
    };
    // A run that went wrong gives no verdict on the claim, whatever its numbers say.
    if let Some((fatal, problems)) = health::judge(&health) {
        let unclean = if fatal {
            Verdict::Error
        } else {
            Verdict::Inconclusive
        };
        if matches!(verdict, Verdict::Holds | Verdict::DoesNotHold) || fatal {
            // The verdict is shown beside the summary: the summary does not repeat it.
            summary = format!("the run was not clean: {problems}; its numbers: {summary}");
            verdict = unclean;
        }
        if let Some(era) = &mut era {
            era.unclean(unclean);
        }
        checks.push(Check::new("the run is clean", unclean, problems));
    }
    Outcome {
        id: experiment.id,
        claim: experiment.claim,
        essay: experiment.essay,
        rule: experiment.rule.words(),
        rule_history: experiment.history,
        verdict,
        summary,
        checks,
        health,
        contrast: report.contrast,
        setup: report.setup,
        placement: lab.placement_words(),
        explanation: report.explanation,
        tables: report.tables,
        figures: report.figures,
        fidelity: report.fidelity,
        measurements: report.measurements,
        era,
        raw: serde_json::Value::Object(report.raw),
        elapsed_s: elapsed.as_secs_f64(),
    }
}

/// The catalogue, in the order the report presents it.
pub fn catalogue() -> &'static [&'static Experiment] {
    claims::ALL
}

/// What one `clab lab` run measures and where its report goes, checked once when made.
#[derive(Clone)]
pub struct Options {
    experiments: Vec<&'static Experiment>,
    profile: Profile,
    out: PathBuf,
    pythons: pythons::Selection,
}

impl Options {
    /// The experiments named by `ids` (every one when empty; an unknown id is an error that
    /// lists the catalogue), run in `profile`, with the report in `out` (created here, so a
    /// directory that cannot be written is found before anything runs).
    pub fn new(
        ids: &[String],
        profile: Profile,
        out: PathBuf,
        pythons: pythons::Selection,
    ) -> Result<Options, LabError> {
        let experiments = if ids.is_empty() {
            catalogue().to_vec()
        } else {
            ids.iter().map(|id| find(id)).collect::<Result<_, _>>()?
        };
        std::fs::create_dir_all(&out).map_err(|e| LabError::Io(out.clone(), e))?;
        Ok(Options {
            experiments,
            profile,
            out,
            pythons,
        })
    }

    pub fn experiments(&self) -> &[&'static Experiment] {
        &self.experiments
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The report's directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Which CPython interpreters to measure beside the emulation.
    pub fn pythons(&self) -> &pythons::Selection {
        &self.pythons
    }
}

/// The experiment `id`.
fn find(id: &str) -> Result<&'static Experiment, LabError> {
    catalogue()
        .iter()
        .copied()
        .find(|experiment| experiment.id == id)
        .ok_or_else(|| {
            let known: Vec<_> = catalogue().iter().map(|e| e.id).collect();
            LabError::UnknownExperiment(id.to_owned(), known.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::claims::experiment::Rules;
    use crate::lab::running::health::Health;
    use crate::lab::running::pythons::{Found, Scripts};

    /// A run whose health has a problem gives no verdict on the claim, and its summary says
    /// why without repeating the verdict the report shows beside it.
    #[test]
    fn an_unclean_run_is_inconclusive_and_says_so_once() {
        static CLEAN_HOLDS: Experiment = Experiment {
            id: "probe",
            claim: "a claim",
            essay: "an essay",
            rule: Rules {
                measures: "a rule",
                marks: &[],
                besides: "",
            },
            history: &[],
            era: None,
            pair: None,
            run: Method::Measure(|_| unreachable!("finish() is handed the result")),
        };
        let scratch = tempfile::tempdir().unwrap();
        let found = Found {
            pythons: Vec::new(),
            notes: Vec::new(),
        };
        let scripts = Scripts::write(scratch.path()).unwrap();
        let lab = Lab::new(
            Profile::Quick,
            "clab".into(),
            scratch.path().to_owned(),
            found,
            scripts,
            Box::new(|_| {}),
        );
        let mut record = Health::new("load fib 1", &[0]);
        record.problems.push("3 load errors".into());
        lab.health.add(record);
        let report = Report {
            checks: vec![Check::new("part", Verdict::Holds, "fine")],
            summary: "the numbers".into(),
            ..Report::default()
        };
        let outcome = finish(&CLEAN_HOLDS, &lab, Ok(report), Duration::from_secs(1));
        assert_eq!(outcome.verdict, Verdict::Inconclusive);
        assert_eq!(
            outcome.summary,
            "the run was not clean: load fib 1: 3 load errors; its numbers: the numbers"
        );
    }
}
