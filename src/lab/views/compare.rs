//! `clab lab compare OLD NEW`: two runs' tables side by side, as `pyperformance compare` sets
//! two benchmark runs: per measurement the change and whether it is beyond the two runs' own
//! repeat spread, and per claim every verdict that changed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lab::model::outcome::Verdict;
use crate::lab::model::{Era, Measurement, Measurements, SubjectKind};
use crate::lab::views::verdicts::VerdictRow;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{} is not a lab report", .0.display())]
    Parse(PathBuf, #[source] serde_json::Error),
    #[error("{} is a {found:?} report; compare reads {wanted:?} (run the lab again to get one)", .path.display())]
    Schema {
        path: PathBuf,
        found: String,
        wanted: &'static str,
    },
}

/// What compare reads of a `report.json`.
#[derive(Debug, Deserialize)]
pub struct Run {
    pub schema: String,
    pub measurements: Measurements,
    pub verdicts: Vec<VerdictRow>,
}

impl Run {
    /// Reads `path`, a `report.json` of schema `schema`.
    pub fn read(path: &Path, schema: &'static str) -> Result<Run, CompareError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| CompareError::Read(path.to_owned(), e))?;
        // The schema first, so an older report gets the error that names it.
        #[derive(Deserialize)]
        struct Schema {
            schema: String,
        }
        let found: Schema =
            serde_json::from_str(&text).map_err(|e| CompareError::Parse(path.to_owned(), e))?;
        if found.schema != schema {
            return Err(CompareError::Schema {
                path: path.to_owned(),
                found: found.schema,
                wanted: schema,
            });
        }
        serde_json::from_str(&text).map_err(|e| CompareError::Parse(path.to_owned(), e))
    }
}

/// Whether a change is beyond what repeating the measurement moved it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beyond {
    /// Both runs repeated it, and their ranges do not overlap.
    Yes,
    /// Both runs repeated it, and their ranges overlap.
    No,
    /// A run measured it once: its spread is unknown.
    Unknown,
}

/// One measurement in both runs, or in one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub claim: String,
    pub metric: String,
    pub subject: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    pub beyond: Beyond,
}

impl Change {
    /// New ÷ old − 1, where both exist and old is not zero.
    pub fn relative(&self) -> Option<f64> {
        match (self.old, self.new) {
            (Some(old), Some(new)) if old != 0.0 => Some(new / old - 1.0),
            _ => None,
        }
    }
}

/// Every measurement of either run, in the new run's order, then those only the old has.
pub fn changes(old: &Measurements, new: &Measurements) -> Vec<Change> {
    let change = |old: Option<&Measurement>, new: Option<&Measurement>| {
        let any = new.or(old).expect("one side exists");
        Change {
            claim: any.claim.clone(),
            metric: any.metric.clone(),
            subject: any.subject.clone(),
            old: old.map(|m| m.value),
            new: new.map(|m| m.value),
            beyond: match (old, new) {
                (Some(old), Some(new)) if old.repeats.len() > 1 && new.repeats.len() > 1 => {
                    let ([old_low, old_high], [new_low, new_high]) = (old.spread(), new.spread());
                    if new_low > old_high || new_high < old_low {
                        Beyond::Yes
                    } else {
                        Beyond::No
                    }
                }
                _ => Beyond::Unknown,
            },
        }
    };
    let mut out: Vec<Change> = new
        .rows()
        .iter()
        .map(|row| change(old.get(row.key()), Some(row)))
        .collect();
    out.extend(
        old.rows()
            .iter()
            .filter(|row| new.get(row.key()).is_none())
            .map(|row| change(Some(row), None)),
    );
    out
}

/// A verdict that differs between the runs (or exists in one only).
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictChange {
    pub claim: String,
    pub era: Option<Era>,
    pub on: SubjectKind,
    pub python: Option<String>,
    pub old: Option<Verdict>,
    pub new: Option<Verdict>,
}

pub fn verdict_changes(old: &[VerdictRow], new: &[VerdictRow]) -> Vec<VerdictChange> {
    let key = |row: &VerdictRow| (row.claim.clone(), row.era, row.on, row.python.clone());
    let find = |rows: &[VerdictRow], wanted: &VerdictRow| {
        rows.iter()
            .find(|row| key(row) == key(wanted))
            .map(|row| row.verdict)
    };
    let mut out = Vec::new();
    for row in new {
        let before = find(old, row);
        if before != Some(row.verdict) {
            out.push(VerdictChange {
                claim: row.claim.clone(),
                era: row.era,
                on: row.on,
                python: row.python.clone(),
                old: before,
                new: Some(row.verdict),
            });
        }
    }
    for row in old.iter().filter(|row| find(new, row).is_none()) {
        out.push(VerdictChange {
            claim: row.claim.clone(),
            era: row.era,
            on: row.on,
            python: row.python.clone(),
            old: Some(row.verdict),
            new: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::Subject;

    fn table(rows: &[(&str, &[f64])]) -> Measurements {
        let mut table = Measurements::default();
        for (subject, repeats) in rows {
            let subject = Subject::emulation(subject, None);
            table
                .insert(Measurement::new(
                    ("c", "m"),
                    &subject,
                    repeats.to_vec(),
                    "e",
                ))
                .unwrap();
        }
        table
    }

    #[test]
    fn a_change_is_beyond_the_spread_only_where_both_ranges_are_known_and_apart() {
        let old = table(&[
            ("a", &[1.0, 1.1, 0.9]),
            ("b", &[1.0, 1.1, 0.9]),
            ("c", &[1.0]),
            ("gone", &[2.0]),
        ]);
        let new = table(&[
            ("a", &[1.5, 1.6, 1.4]),
            ("b", &[1.05, 1.2, 1.0]),
            ("c", &[3.0]),
            ("added", &[1.0]),
        ]);
        let changes = changes(&old, &new);
        let by = |subject: &str| changes.iter().find(|c| c.subject == subject).unwrap();
        assert_eq!(by("a").beyond, Beyond::Yes);
        assert!((by("a").relative().unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(by("b").beyond, Beyond::No);
        assert_eq!(by("c").beyond, Beyond::Unknown);
        assert_eq!((by("added").old, by("gone").new), (None, None));
        assert_eq!(changes.len(), 5);
    }

    #[test]
    fn only_changed_verdicts_are_listed() {
        let row = |python: &str, verdict| VerdictRow {
            claim: "convoy".into(),
            era: Some(Era::New),
            on: SubjectKind::Cpython,
            python: Some(python.into()),
            verdict,
            reason: String::new(),
        };
        let old = [row("3.11.7", Verdict::Holds), row("3.13.0", Verdict::Holds)];
        let new = [
            row("3.11.7", Verdict::Holds),
            row("3.13.0", Verdict::Inconclusive),
        ];
        let changed = verdict_changes(&old, &new);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].python.as_deref(), changed[0].old, changed[0].new),
            (
                Some("3.13.0"),
                Some(Verdict::Holds),
                Some(Verdict::Inconclusive)
            )
        );
    }
}
