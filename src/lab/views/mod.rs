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
        // CPython's numbers are only as clean as the run that measured them.
        let unclean = outcomes
            .iter()
            .filter(|outcome| !outcome.fidelity.is_empty())
            .filter_map(|outcome| crate::lab::model::health::judge(&outcome.health))
            .map(|(fatal, _)| {
                if fatal {
                    Verdict::Error
                } else {
                    Verdict::Inconclusive
                }
            })
            .max_by_key(|verdict| *verdict == Verdict::Error);
        if let Some(unclean) = unclean {
            for row in &mut eras {
                row.unclean_cpython(unclean);
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
/// measurement of the emulation standing for it (one method, one placement), and each eras
/// cell's emulated number as its experiment measured it.
pub fn table(outcomes: &[Outcome]) -> Result<Measurements, TableError> {
    let mut table = Measurements::default();
    for outcome in outcomes {
        for row in &outcome.fidelity {
            insert_fidelity(&mut table, row)?;
        }
        let Some(era_row) = &outcome.era else {
            continue;
        };
        for era in crate::lab::model::Era::ALL {
            let cell = era_row.verdicts.get(era);
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

/// A fidelity pair as two measurements of one method: CPython's, and its emulation's.
pub fn insert_fidelity(table: &mut Measurements, row: &Fidelity) -> Result<(), TableError> {
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
