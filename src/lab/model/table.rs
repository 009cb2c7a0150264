//! The one table of a run: each row one number, measured once, on one subject, for one metric
//! of one claim, with its repeats and what was run to get it. `report.json`'s
//! `"measurements"` and `measurements.csv` are this table.

use serde::{Deserialize, Serialize};

use crate::lab::model::{Era, Subject, SubjectKind};

/// One number the lab measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The claim's experiment id, e.g. "convoy".
    pub claim: String,
    /// What the number is, e.g. "rate kept beside a hog: threads".
    pub metric: String,
    /// The subject's label, e.g. "CPython 3.11.7".
    pub subject: String,
    /// `cpython` or `emulation`.
    pub subject_kind: String,
    /// `legacy`, `new`, `per-interpreter`, `free-threaded`, or null.
    pub era: Option<String>,
    /// The interpreter's version: the one measured, or the one the emulation stands for.
    pub python: Option<String>,
    /// The number judged: the median of the repeats, or for a ratio of interleaved timings
    /// the fastest of one side over the fastest of the other, each pair's ratio a repeat (the
    /// evidence says which). NaN, written as null, where nothing could be measured.
    #[serde(deserialize_with = "null_as_nan")]
    pub value: f64,
    /// Every repeat's value, in the order measured (one where the profile repeats nothing).
    #[serde(deserialize_with = "nulls_as_nan")]
    pub repeats: Vec<f64>,
    /// What was run to get the number: its method and setup, in words.
    pub evidence: String,
}

impl Measurement {
    pub fn new(
        (claim, metric): (&str, &str),
        subject: &Subject,
        repeats: Vec<f64>,
        evidence: impl Into<String>,
    ) -> Measurement {
        Measurement {
            claim: claim.to_owned(),
            metric: metric.to_owned(),
            subject: subject.label.clone(),
            subject_kind: subject.kind.name().to_owned(),
            era: subject.era.map(|era| era.name().to_owned()),
            python: subject.python.clone(),
            value: median(&repeats),
            repeats,
            evidence: evidence.into(),
        }
    }

    /// With `value` as the number judged, where it is not the repeats' median.
    pub fn judged_at(self, value: f64) -> Measurement {
        Measurement { value, ..self }
    }

    pub fn is_cpython(&self) -> bool {
        self.subject_kind == SubjectKind::Cpython.name()
    }

    pub fn era(&self) -> Option<Era> {
        self.era.as_deref().and_then(Era::parse)
    }

    /// What identifies it in a run and across runs.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.claim, &self.metric, &self.subject)
    }

    /// The smallest and largest repeat.
    pub fn spread(&self) -> [f64; 2] {
        let finite = self
            .repeats
            .iter()
            .copied()
            .filter(|value| value.is_finite());
        finite.fold([f64::INFINITY, f64::NEG_INFINITY], |[low, high], value| {
            [low.min(value), high.max(value)]
        })
    }
}

/// JSON has no NaN: serde_json writes it as null, and reading it back gives NaN again.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

fn nulls_as_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    let values = Vec::<Option<f64>>::deserialize(deserializer)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// The median of `values` (NaN for none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableError {
    #[error("{metric:?} of {claim} on {subject} was measured twice")]
    Twice {
        claim: String,
        metric: String,
        subject: String,
    },
}

/// Every measurement of a run, each (claim, metric, subject) once, in the order measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Measurements(Vec<Measurement>);

impl Measurements {
    /// Adds `row`; a second row for a (claim, metric, subject) already here is refused.
    pub fn insert(&mut self, row: Measurement) -> Result<(), TableError> {
        if self.get(row.key()).is_some() {
            return Err(TableError::Twice {
                claim: row.claim,
                metric: row.metric,
                subject: row.subject,
            });
        }
        self.0.push(row);
        Ok(())
    }

    pub fn get(&self, (claim, metric, subject): (&str, &str, &str)) -> Option<&Measurement> {
        self.0
            .iter()
            .find(|row| row.key() == (claim, metric, subject))
    }

    pub fn rows(&self) -> &[Measurement] {
        &self.0
    }

    /// The rows of `claim`'s `metric`, on every subject.
    pub fn of<'a>(
        &'a self,
        claim: &'a str,
        metric: &'a str,
    ) -> impl Iterator<Item = &'a Measurement> + 'a {
        self.0
            .iter()
            .filter(move |row| row.claim == claim && row.metric == metric)
    }

    /// The table as CSV, one row per measurement, repeats joined by spaces.
    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record([
            "claim",
            "metric",
            "subject",
            "subject_kind",
            "era",
            "python",
            "value",
            "repeats",
            "evidence",
        ])?;
        for row in &self.0 {
            let repeats: Vec<String> = row.repeats.iter().map(f64::to_string).collect();
            writer.write_record([
                row.claim.as_str(),
                &row.metric,
                &row.subject,
                &row.subject_kind,
                row.era.as_deref().unwrap_or(""),
                row.python.as_deref().unwrap_or(""),
                &row.value.to_string(),
                &repeats.join(" "),
                &row.evidence,
            ])?;
        }
        writer
            .into_inner()
            .map_err(|error| csv::Error::from(error.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &Subject, value: f64) -> Measurement {
        Measurement::new(
            ("convoy", "rate kept"),
            subject,
            vec![value, value * 1.1, value * 0.9],
            "a 1 s window",
        )
    }

    #[test]
    fn no_metric_of_a_claim_is_measured_twice_on_one_subject() {
        let cpython = Subject::cpython("3.11.7", Era::New);
        let emulation = Subject::emulating("3.11.7", Era::New);
        let mut table = Measurements::default();
        table.insert(row(&cpython, 0.01)).unwrap();
        table.insert(row(&emulation, 0.02)).unwrap();
        assert_eq!(
            table.insert(row(&cpython, 0.5)).unwrap_err().to_string(),
            "\"rate kept\" of convoy on CPython 3.11.7 was measured twice"
        );
        assert_eq!(table.rows().len(), 2);
        assert_eq!(table.of("convoy", "rate kept").count(), 2);
        let kept = table
            .get(("convoy", "rate kept", "CPython 3.11.7"))
            .unwrap();
        assert_eq!(kept.value, 0.01);
        assert!(kept.is_cpython() && kept.era() == Some(Era::New));
        assert_eq!(kept.spread(), [0.01 * 0.9, 0.01 * 1.1]);
    }

    #[test]
    fn a_number_that_could_not_be_measured_survives_json() {
        let mut table = Measurements::default();
        table
            .insert(row(&Subject::emulation("threads", None), f64::NAN))
            .unwrap();
        let json = serde_json::to_string(&table).unwrap();
        assert!(json.contains("\"value\":null"), "{json}");
        let back: Measurements = serde_json::from_str(&json).unwrap();
        assert!(back.rows()[0].value.is_nan());
    }

    #[test]
    fn the_csv_has_a_header_and_one_row_per_measurement() {
        let mut table = Measurements::default();
        table
            .insert(row(&Subject::emulation("threads --gil none", None), 0.5))
            .unwrap();
        let csv = String::from_utf8(table.to_csv().unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("claim,metric,subject,subject_kind,era,python,value"));
        assert!(lines[1].starts_with("convoy,rate kept,threads --gil none,emulation,,,0.5,"));
    }
}
