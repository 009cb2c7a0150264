//! What a claim is in the catalogue: its [`Experiment`] (the claim, the essay, the rule fixed
//! before the run) and the [`Report`] its `run` returns.

use crate::lab::model::Era;
use crate::lab::model::eras::{self, Rule, Unit};
use crate::lab::model::outcome::{self, Check, Contrast, Verdict};
use crate::lab::running::{Lab, LabError};

/// One claim, its source and its rule; `run` does the rest.
pub struct Experiment {
    pub id: &'static str,
    pub claim: &'static str,
    pub essay: &'static str,
    /// The verdict rule, fixed before the run: its marks are the data the code judges by, and
    /// the words the report shows are generated from them.
    pub rule: Rules,
    /// Every change of the rule after it had been run, with date and reason.
    pub history: &'static [outcome::RuleChange],
    /// The claim as judged in each era of CPython's lock, where it means something there.
    pub era: Option<&'static eras::EraClaim>,
    /// Where CPython can run the claim: its metrics measured on every interpreter found and on
    /// the emulation standing for each, by one method, after `run`.
    pub pair: Option<crate::lab::claims::metrics::Pair>,
    pub run: Method,
}

/// A claim's verdict rule: what is measured, each judged quantity with its marks, and what
/// no mark says (how the parts combine, a condition beside them).
pub struct Rules {
    pub measures: &'static str,
    pub marks: &'static [&'static Mark],
    pub besides: &'static str,
}

impl Rules {
    /// The rule in words, the marks' from their data.
    pub fn words(&self) -> String {
        let mut parts = vec![self.measures.to_owned()];
        for mark in self.marks {
            let mut what = mark.what.chars();
            let capital: String = what
                .next()
                .into_iter()
                .flat_map(char::to_uppercase)
                .collect();
            parts.push(format!(
                "{capital}{}: {}.",
                what.as_str(),
                mark.rule.describe(mark.unit)
            ));
        }
        parts.push(self.besides.to_owned());
        parts.retain(|part| !part.is_empty());
        parts.join(" ")
    }
}

/// One judged quantity and its marks.
pub struct Mark {
    /// What must hold of which number, e.g. "under the GIL, the rate kept".
    pub what: &'static str,
    pub rule: Rule,
    pub unit: Unit,
}

impl Mark {
    /// The verdict on `value`.
    pub fn judge(&self, value: f64) -> Verdict {
        self.rule.judge(value).unwrap_or(Verdict::Error)
    }
}

/// How a claim gets its numbers.
#[derive(Clone, Copy)]
pub enum Method {
    /// It measures: servers, loads, interpreters, in the emulation and on CPython.
    Measure(fn(&mut Lab) -> Result<Report, LabError>),
    /// It reads what the claims run before it measured: a pure function of their outcomes
    /// (the `cpython` claim judges every fidelity pair of the run).
    Read(fn(&Lab, &[outcome::Outcome]) -> Report),
}

/// What an experiment's `run` returns; the framework adds the claim, timing and errors.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Overrides the verdict computed from the checks (e.g. skipped).
    pub verdict: Option<Verdict>,
    pub summary: String,
    pub contrast: Option<Contrast>,
    pub setup: Vec<String>,
    pub explanation: String,
    pub tables: Vec<outcome::Table>,
    pub figures: Vec<outcome::Figure>,
    pub fidelity: Vec<outcome::Fidelity>,
    /// What the experiment measured in each era of CPython's lock, where its
    /// [`eras::EraClaim`] says the experiment measures them ([`eras::EraMetric::Experiment`];
    /// the pair measures the others).
    pub era: Option<Vec<(Era, eras::Measured)>>,
    /// The eras' cells the pair measured on the emulation's own configuration of an era no
    /// interpreter stood for.
    pub measurements: Vec<crate::lab::model::Measurement>,
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn raw(&mut self, key: &str, value: impl serde::Serialize) {
        self.raw.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
    }
}
