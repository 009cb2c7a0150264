//! Views of a run, each a pure function of its outcomes and its table of measurements:
//! nothing here measures. [`table`] gathers the measurements, [`verdicts`] judges each claim
//! per era on CPython and on the emulation, [`compare`] sets two runs side by side.

pub mod compare;
pub mod verdicts;

use crate::lab::model::eras::{self, EraRow};
use crate::lab::model::outcome::{Fidelity, Outcome, Verdict};
use crate::lab::model::{Measurement, Measurements, Subject, TableError};
use crate::lab::views::verdicts::VerdictRow;

/// Everything the report shows beyond the outcomes, read from them.
#[derive(Debug, Clone)]
pub struct Views {
    pub measurements: Measurements,
    /// Each metric on each interpreter beside its emulation, under the band fixed for it.
    pub fidelity: Vec<Fidelity>,
    /// Each claim with an era, per era, CPython's numbers and their emulation's beside the
    /// experiment's own.
    pub eras: Vec<EraRow>,
    pub verdicts: Vec<VerdictRow>,
}

impl Views {
    pub fn of(outcomes: &[Outcome]) -> Result<Views, TableError> {
        let measurements = table(outcomes)?;
        let fidelity: Vec<Fidelity> = outcomes
            .iter()
            .flat_map(|outcome| outcome.fidelity.iter().cloned())
            .collect();
        let mut eras = eras::collect(
            outcomes.iter().filter_map(|outcome| outcome.era.as_ref()),
            &measurements,
        );
        // CPython's numbers are only as clean as the claim's run that measured them (its pair
        // runs within it): an unclean claim gives no verdict on CPython either, and another
        // claim's trouble is not its own.
        for row in &mut eras {
            let health = outcomes
                .iter()
                .find(|outcome| outcome.id == row.experiment)
                .and_then(|outcome| crate::lab::model::health::judge(&outcome.health));
            if let Some((fatal, _)) = health {
                row.unclean_cpython(if fatal {
                    Verdict::Error
                } else {
                    Verdict::Inconclusive
                });
            }
        }
        let verdicts = verdicts::verdicts(outcomes, &eras);
        Ok(Views {
            measurements,
            fidelity,
            eras,
            verdicts,
        })
    }
}

/// Every number the run measured, once: each fidelity pair as CPython's measurement and the
/// measurement of the emulation standing for it (one method, one placement), the pair's
/// measurements of eras no interpreter stood for, and the eras cells an experiment measured
/// itself.
pub fn table(outcomes: &[Outcome]) -> Result<Measurements, TableError> {
    let mut table = Measurements::default();
    for outcome in outcomes {
        insert_measured(&mut table, &outcome.measurements)?;
        let Some(era_row) = &outcome.era else {
            continue;
        };
        for era in crate::lab::model::Era::ALL {
            let cell = era_row.verdicts.get(era);
            if cell.measured_by_pair() || !cell.own_setup() {
                continue;
            }
            let subject = Subject::emulation(&cell.setup, Some(era));
            // One setup may stand for two eras (the no-GIL run for free threading and for
            // interpreters that share nothing): it was measured once.
            if table
                .get((outcome.id, era_row.metric, &subject.label))
                .is_some()
            {
                continue;
            }
            let evidence = match &cell.note {
                Some(note) => format!("{}: {} — {note}", outcome.id, cell.setup),
                None => format!("{}: {}", outcome.id, cell.setup),
            };
            table.insert(Measurement::new(
                (outcome.id, era_row.metric),
                &subject,
                vec![cell.emulation],
                evidence,
            ))?;
        }
    }
    Ok(table)
}

/// What a claim measured: its experiment's numbers, its pair's on every interpreter and the
/// emulation standing for each, and those of eras no interpreter stood for.
pub fn insert_measured(
    table: &mut Measurements,
    measurements: &[Measurement],
) -> Result<(), TableError> {
    for measurement in measurements {
        table.insert(measurement.clone())?;
    }
    Ok(())
}

/// A fidelity pair as two measurements of one method, CPython's and its emulation's, for
/// tests that build a table from pairs.
#[cfg(test)]
pub(crate) fn insert_fidelity(table: &mut Measurements, row: &Fidelity) -> Result<(), TableError> {
    let evidence = format!(
        "the same program and placement on CPython {} and on clab configured as it ({}); {}",
        row.python, row.gil, row.note
    );
    let pair = [
        (Subject::cpython(&row.python, row.gil), row.cpython),
        (Subject::emulating(&row.python, row.gil), row.emulation),
    ];
    for (subject, value) in pair {
        table.insert(Measurement::new(
            (&row.experiment, &row.metric),
            &subject,
            vec![value],
            evidence.clone(),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::Era;
    use crate::lab::model::SubjectKind;
    use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
    use crate::lab::model::health::Health;
    use crate::lab::model::outcome::Band;

    const CLAIM: EraClaim = EraClaim {
        claim: "two jobs at once are no faster",
        metric: "at once ÷ in a row",
        rule: Rule::AtLeast {
            holds: 0.85,
            fails: 0.7,
        },
        unit: Unit::Times,
        measured_by: EraMetric::Pair("ratio"),
        except: &[],
    };

    fn outcome(id: &'static str, problem: Option<&str>) -> Outcome {
        let mut health = Health::new(format!("server {id}"), &[0]);
        if let Some(problem) = problem {
            health.problems.push(problem.into());
        }
        let fidelity = Fidelity::new(
            id,
            "ratio",
            ("3.11.7", Era::New),
            Band::Relative(0.2),
            1.0,
            1.0,
            String::new(),
        );
        let mut pair = Measurements::default();
        insert_fidelity(&mut pair, &fidelity).unwrap();
        Outcome {
            id,
            claim: "",
            essay: "",
            rule: String::new(),
            rule_history: &[],
            verdict: Verdict::Holds,
            summary: String::new(),
            checks: Vec::new(),
            contrast: None,
            setup: Vec::new(),
            placement: Vec::new(),
            explanation: String::new(),
            tables: Vec::new(),
            figures: Vec::new(),
            fidelity: vec![fidelity],
            measurements: pair.rows().to_vec(),
            era: Some(CLAIM.judge_table(id, &pair)),
            health: vec![health],
            raw: serde_json::Value::Null,
            elapsed_s: 1.0,
        }
    }

    /// A claim whose run was unclean gives no verdict on CPython; the others keep theirs.
    #[test]
    fn an_unclean_claim_spoils_only_its_own_cpython_verdicts() {
        let views = Views::of(&[
            outcome("clean", None),
            outcome("saturated", Some("saturated")),
        ])
        .unwrap();
        let on_cpython = |claim: &str| {
            views
                .verdicts
                .iter()
                .find(|row| row.claim == claim && row.on == SubjectKind::Cpython)
                .unwrap()
                .verdict
        };
        assert_eq!(on_cpython("clean"), Verdict::Holds);
        assert_eq!(on_cpython("saturated"), Verdict::Inconclusive);
        // Each pair is two measurements; the eras cells are the pair's, not measured again.
        assert_eq!(views.measurements.rows().len(), 2 * 2);
    }
}
