//! The eras table: the essays' claims about one Python process, judged again in each era of
//! CPython's lock — the legacy GIL of 2.x, the new GIL of 3.2–3.12, a GIL per interpreter
//! (3.12+) and free threading (3.13t+). An experiment whose claim means something in these
//! eras runs the era's version of its setup and returns one [`EraRow`]; the report puts
//! CPython's own number beside the emulation's wherever the fidelity matrix measured the
//! same metric on an interpreter of that era, judged by the same rule.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::lab::model::Era;
use crate::lab::model::verdict::Verdict;
use crate::lab::model::{Measurements, Subject};
use crate::lab::words::significant;

/// How a row's numbers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A ratio: "0.98×".
    Times,
    /// A share: "45 %", or "0.012 %" when small.
    Percent,
    /// A plain number, e.g. a slope: "-0.86".
    Plain,
    /// Memory: "5.4 KiB".
    KiB,
    /// Time: "2.5 ms".
    Ms,
    /// Memory: "6.0 MiB".
    MiB,
}

impl Unit {
    /// A rule's mark: as [`show`](Unit::show), but a share keeps its fraction ("12.5 %").
    pub fn show_mark(self, value: f64) -> String {
        let percent = value * 100.0;
        match self {
            Unit::Percent if (percent - percent.round()).abs() >= 0.05 => {
                format!("{percent:.1} %")
            }
            _ => self.show(value),
        }
    }

    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Times => format!("{value:.2}×"),
            Unit::Percent if value != 0.0 && value.abs() < 0.01 => {
                format!("{} %", significant(value * 100.0))
            }
            Unit::Percent => format!("{:.0} %", value * 100.0),
            Unit::Plain => format!("{value:.2}"),
            Unit::KiB => format!("{value:.1} KiB"),
            Unit::Ms => format!("{value:.1} ms"),
            Unit::MiB => format!("{value:.1} MiB"),
        }
    }
}

/// An era row's verdict rule, fixed before the run and kept as data, so that CPython's
/// number is judged by the rule the emulation's was.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Holds at or above `holds`, does not hold at or below `fails`.
    AtLeast { holds: f64, fails: f64 },
    /// Holds at or below `holds`, does not hold at or above `fails`.
    AtMost { holds: f64, fails: f64 },
    /// Holds inside `holds` (both ends included), does not hold outside `fails`.
    Within { holds: [f64; 2], fails: [f64; 2] },
    /// Holds when any is measured at all (a lost update), does not hold at zero.
    AboveZero,
    /// The experiment's own parts, combined as its verdict is; said in words.
    Parts(&'static str),
}

impl Rule {
    /// The verdict on `value`; `None` for a rule of several parts, which its experiment judges.
    pub fn judge(self, value: f64) -> Option<Verdict> {
        match self {
            Rule::AtLeast { holds, fails } => Some(Verdict::at_least(value, holds, fails)),
            Rule::AtMost { holds, fails } => Some(Verdict::at_most(value, holds, fails)),
            Rule::Within { holds, fails } => Some(if (holds[0]..=holds[1]).contains(&value) {
                Verdict::Holds
            } else if !(fails[0]..=fails[1]).contains(&value) {
                Verdict::DoesNotHold
            } else {
                Verdict::Inconclusive
            }),
            Rule::AboveZero => Some(if value > 0.0 {
                Verdict::Holds
            } else {
                Verdict::DoesNotHold
            }),
            Rule::Parts(_) => None,
        }
    }

    pub fn describe(self, unit: Unit) -> String {
        match self {
            Rule::AtLeast { holds, fails } => format!(
                "holds at {} or more, does not hold at {} or less",
                unit.show_mark(holds),
                unit.show_mark(fails)
            ),
            Rule::AtMost { holds, fails } => format!(
                "holds at {} or less, does not hold at {} or more",
                unit.show_mark(holds),
                unit.show_mark(fails)
            ),
            Rule::Within { holds, fails } => format!(
                "holds from {} to {}, does not hold below {} or above {}",
                unit.show_mark(holds[0]),
                unit.show_mark(holds[1]),
                unit.show_mark(fails[0]),
                unit.show_mark(fails[1])
            ),
            Rule::AboveZero => "holds when any is measured, does not hold at none".into(),
            Rule::Parts(words) => words.into(),
        }
    }
}

/// What measures a claim's cell in one era.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraMetric {
    /// The claim's fidelity pair, by one method on CPython and on the emulation: this metric,
    /// on every interpreter of the era and the emulation standing for each — or, where no
    /// interpreter stands for the era, on the emulation's own configuration of it.
    Pair(&'static str),
    /// The experiment itself, on the emulation (a claim CPython cannot run).
    Experiment,
    /// Nothing: the claim means nothing in this era, for this reason.
    NotMeaningful(&'static str),
}

impl EraMetric {
    /// The pair's metric, where the pair measures the cell.
    pub fn measured(self) -> Option<&'static str> {
        match self {
            EraMetric::Pair(metric) => Some(metric),
            _ => None,
        }
    }
}

/// A claim as the eras table judges it: fixed, like an experiment's rule, before anything runs.
pub struct EraClaim {
    /// The claim about one Python process, worded so that it can hold in one era and not
    /// in the next.
    pub claim: &'static str,
    /// What the number is ("two jobs at once ÷ one after the other").
    pub metric: &'static str,
    pub rule: Rule,
    pub unit: Unit,
    /// What measures the claim in every era `except` does not name: one Python process's
    /// threads, by the pair's metric (or the experiment itself, for a claim CPython cannot run).
    /// A new era is measured this way unless a claim says otherwise.
    pub measured_by: EraMetric,
    /// The eras where another metric measures the claim (subinterpreters, say), or where it
    /// means nothing, saying why.
    pub except: &'static [(Era, EraMetric)],
}

impl EraClaim {
    /// What measures the claim's cell in `era`.
    pub fn metric_in(&self, era: Era) -> EraMetric {
        self.except
            .iter()
            .find(|(excepted, _)| *excepted == era)
            .map_or(self.measured_by, |(_, metric)| *metric)
    }
}

/// What an experiment measured for one era.
#[derive(Debug, Clone)]
pub struct Measured {
    /// What ran, e.g. "threads --gil legacy".
    pub setup: String,
    pub value: f64,
    /// The verdict the experiment gives instead of the rule's: a [`Rule::Parts`] rule's, from
    /// its own checks (CPython's numbers beside it are then shown without one).
    pub verdict: Option<Verdict>,
    /// What a reader needs to read the number right (a measurement shared with another era).
    pub note: Option<String>,
}

impl Measured {
    pub fn new(setup: impl Into<String>, value: f64) -> Measured {
        Measured {
            setup: setup.into(),
            value,
            verdict: None,
            note: None,
        }
    }

    /// A number judged by its experiment's parts ([`Rule::Parts`]).
    pub fn judged(mut self, verdict: Verdict) -> Measured {
        self.verdict = Some(verdict);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Measured {
        self.note = Some(note.into());
        self
    }
}

/// CPython's own number for an era's cell, judged by the row's rule, and beside it the number
/// of the emulation standing for that interpreter, measured by the same code path.
#[derive(Debug, Clone, Serialize)]
pub struct CPythonNumber {
    pub python: String,
    pub value: f64,
    pub shown: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The emulation configured as this interpreter (its lock, tick and switch points).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emulation: Option<EmulatedNumber>,
    /// What was run, for both numbers.
    pub evidence: String,
}

/// The emulation's number beside an interpreter's, judged by the same rule.
#[derive(Debug, Clone, Serialize)]
pub struct EmulatedNumber {
    pub value: f64,
    pub shown: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// One claim in one era.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub verdict: Verdict,
    /// What the emulation ran.
    pub setup: String,
    pub emulation: f64,
    pub shown: String,
    /// CPython's numbers for the same metric on interpreters of this era, where measured.
    pub cpython: Vec<CPythonNumber>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The fidelity metric to take CPython's numbers from.
    #[serde(skip)]
    cpython_metric: Option<&'static str>,
    /// Whether the cell's own number is the emulation's own configuration of the era (not
    /// the emulation standing for one of the era's interpreters, nor nothing at all).
    #[serde(skip)]
    own_setup: bool,
    /// Whether the rule judges CPython's numbers: not where the experiment gave the verdict.
    #[serde(skip)]
    judges_cpython: bool,
}

impl Cell {
    /// Whether the cell's own number is the emulation's own configuration of the era: a
    /// measurement of its own, and a verdict on the emulation standing for no interpreter.
    pub fn own_setup(&self) -> bool {
        self.own_setup
    }

    /// Whether the claim's pair measured the cell (its numbers are in the table already).
    pub fn measured_by_pair(&self) -> bool {
        self.cpython_metric.is_some()
    }

    /// The cell as the pages show it: the emulation's own number where it ran, then CPython's
    /// beside the emulation standing for each, then the note.
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        if self.own_setup && self.emulation.is_finite() {
            parts.push(format!("{} ({})", self.shown, self.setup));
        }
        for number in &self.cpython {
            let mut words = format!("CPython {}: {}", number.python, number.shown);
            if let Some(verdict) = number.verdict {
                words += &format!(", {verdict}");
            }
            if let Some(emulated) = &number.emulation {
                words += &format!(" (its emulation {}", emulated.shown);
                if let Some(verdict) = emulated.verdict {
                    words += &format!(", {verdict}");
                }
                words += ")";
            }
            parts.push(words);
        }
        let mut words = parts.join("; ");
        if let Some(note) = &self.note {
            if !words.is_empty() {
                words += " — ";
            }
            words += note;
        }
        words
    }
}

/// Every era's cell of one row, keyed as `report.json` names the eras.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Verdicts(BTreeMap<Era, Cell>);

impl Verdicts {
    /// Every era of [`Era::ALL`] has a cell: a row is built with one for each.
    pub fn get(&self, era: Era) -> &Cell {
        &self.0[&era]
    }

    fn cells_mut(&mut self) -> impl Iterator<Item = (Era, &mut Cell)> {
        self.0.iter_mut().map(|(era, cell)| (*era, cell))
    }
}

/// One claim across the four eras.
#[derive(Debug, Clone, Serialize)]
pub struct EraRow {
    pub experiment: &'static str,
    pub claim: &'static str,
    pub metric: &'static str,
    /// The rule in words.
    pub rule: String,
    pub verdicts: Verdicts,
    #[serde(skip)]
    judge: Rule,
    #[serde(skip)]
    unit: Unit,
}

impl EraClaim {
    /// Judges the four eras' measurements, given in [`Era::ALL`]'s order.
    pub fn judge(&self, experiment: &'static str, measured: &[(Era, Measured)]) -> EraRow {
        self.row(experiment, |era| {
            match measured.iter().find(|(of, _)| *of == era) {
                Some((_, measured)) => self.cell(measured, self.metric_in(era).measured()),
                None => self.unmeasured(
                    Verdict::Error,
                    "the experiment did not measure this era",
                    None,
                ),
            }
        })
    }

    /// Judges the four eras from `table`, where the claim's pair measured them: each cell's
    /// own number is the emulation's own configuration of the era where one was measured,
    /// else the emulation standing for the era's first interpreter.
    pub fn judge_table(&self, experiment: &'static str, table: &Measurements) -> EraRow {
        self.row(experiment, |era| match self.metric_in(era) {
            EraMetric::Pair(metric) => {
                let of_era: Vec<_> = table
                    .of(experiment, metric)
                    .filter(|row| !row.is_cpython() && row.era() == Some(era))
                    .collect();
                let own = of_era.iter().find(|row| row.python.is_none());
                match own.or(of_era.first()) {
                    Some(row) => {
                        let mut cell =
                            self.cell(&Measured::new(&row.subject, row.value), Some(metric));
                        cell.own_setup = row.python.is_none();
                        cell
                    }
                    None => self.unmeasured(
                        Verdict::Error,
                        "not measured: see the claim's checks",
                        Some(metric),
                    ),
                }
            }
            EraMetric::NotMeaningful(why) => self.unmeasured(Verdict::Skipped, why, None),
            EraMetric::Experiment => {
                self.unmeasured(Verdict::Error, "the experiment measures this era", None)
            }
        })
    }

    fn unmeasured(
        &self,
        verdict: Verdict,
        why: &str,
        cpython_metric: Option<&'static str>,
    ) -> Cell {
        Cell {
            verdict,
            setup: "—".into(),
            emulation: f64::NAN,
            shown: "—".into(),
            cpython: Vec::new(),
            note: Some(why.into()),
            cpython_metric,
            own_setup: verdict == Verdict::Error,
            judges_cpython: true,
        }
    }

    /// The row of every era's cell, each made by `cell`.
    fn row(&self, experiment: &'static str, cell: impl Fn(Era) -> Cell) -> EraRow {
        EraRow {
            experiment,
            claim: self.claim,
            metric: self.metric,
            rule: self.rule.describe(self.unit),
            verdicts: Verdicts(Era::ALL.into_iter().map(|era| (era, cell(era))).collect()),
            judge: self.rule,
            unit: self.unit,
        }
    }

    fn cell(&self, measured: &Measured, cpython_metric: Option<&'static str>) -> Cell {
        let verdict = measured
            .verdict
            .or_else(|| self.rule.judge(measured.value))
            .unwrap_or(Verdict::Error);
        Cell {
            verdict: if measured.value.is_finite() {
                verdict
            } else {
                Verdict::Error
            },
            setup: measured.setup.clone(),
            emulation: measured.value,
            shown: self.unit.show(measured.value),
            cpython: Vec::new(),
            note: measured.note.clone(),
            cpython_metric,
            own_setup: true,
            judges_cpython: measured.verdict.is_none(),
        }
    }
}

impl EraRow {
    /// A run that was not clean gives no verdict in any era: `unclean` replaces each one.
    pub fn unclean(&mut self, unclean: Verdict) {
        for (_, cell) in self.verdicts.cells_mut() {
            if matches!(cell.verdict, Verdict::Holds | Verdict::DoesNotHold) {
                cell.verdict = unclean;
            }
        }
    }

    /// Puts CPython's numbers beside the emulation's: every measurement of the cell's metric
    /// on an interpreter of the cell's era, with the emulation standing for that interpreter,
    /// both judged by the row's rule.
    pub fn add_cpython(&mut self, table: &Measurements) {
        let (judge, unit, experiment) = (self.judge, self.unit, self.experiment);
        for (era, cell) in self.verdicts.cells_mut() {
            let Some(metric) = cell.cpython_metric else {
                continue;
            };
            let judges = cell.judges_cpython;
            cell.cpython = table
                .of(experiment, metric)
                .filter(|row| row.is_cpython() && row.era() == Some(era))
                .map(|row| {
                    let python = row.python.clone().unwrap_or_default();
                    let standing_for = Subject::emulating(&python, era);
                    let emulation =
                        table
                            .get((experiment, metric, &standing_for.label))
                            .map(|emulated| EmulatedNumber {
                                value: emulated.value,
                                shown: unit.show(emulated.value),
                                verdict: judge.judge(emulated.value).filter(|_| judges),
                            });
                    CPythonNumber {
                        value: row.value,
                        shown: unit.show(row.value),
                        verdict: judge.judge(row.value).filter(|_| judges),
                        emulation,
                        evidence: row.evidence.clone(),
                        python,
                    }
                })
                .collect();
        }
    }

    /// A run that measured CPython's numbers uncleanly gives no verdict on them.
    pub fn unclean_cpython(&mut self, unclean: Verdict) {
        for (_, cell) in self.verdicts.cells_mut() {
            for number in &mut cell.cpython {
                for verdict in [
                    number.verdict.as_mut(),
                    number.emulation.as_mut().and_then(|e| e.verdict.as_mut()),
                ]
                .into_iter()
                .flatten()
                {
                    if matches!(verdict, Verdict::Holds | Verdict::DoesNotHold) {
                        *verdict = unclean;
                    }
                }
            }
        }
    }
}

/// The report's eras table: each outcome's row, with CPython's numbers and their emulation's
/// from the table beside the experiment's own.
pub fn collect<'a>(
    rows: impl IntoIterator<Item = &'a EraRow>,
    table: &Measurements,
) -> Vec<EraRow> {
    rows.into_iter()
        .map(|row| {
            let mut row = row.clone();
            row.add_cpython(table);
            row
        })
        .collect()
}

/// Which CPython interpreters stood for each era, in words, for the line under the table.
pub fn interpreters_by_era(table: &Measurements) -> Vec<(String, String)> {
    Era::ALL
        .into_iter()
        .map(|era| {
            let mut pythons: Vec<&str> = Vec::new();
            for row in table.rows().iter().filter(|row| row.is_cpython() && row.era() == Some(era)) {
                let python = row.python.as_deref().unwrap_or_default();
                if !pythons.contains(&python) {
                    pythons.push(python);
                }
            }
            let words = if pythons.is_empty() {
                match era {
                    Era::FreeThreaded => "none: no free-threaded build (python3.13t, python3.14t, or a GIL disabled at start) was found here".into(),
                    Era::PerInterpreter => "none: no CPython 3.12+ was measured".into(),
                    _ => "none measured".into(),
                }
            } else {
                format!("CPython {}", pythons.join(", "))
            };
            (era.title().to_owned(), words)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::outcome::{Band, Fidelity};

    const CLAIM: EraClaim = EraClaim {
        claim: "two jobs at once are no faster than serial",
        metric: "at once ÷ in a row",
        rule: Rule::AtLeast {
            holds: 0.85,
            fails: 0.7,
        },
        unit: Unit::Times,
        measured_by: EraMetric::Pair("m"),
        except: &[(Era::PerInterpreter, EraMetric::Pair("sub"))],
    };

    fn measured() -> Vec<(Era, Measured)> {
        vec![
            (Era::Legacy, Measured::new("threads --gil legacy", 1.3)),
            (Era::New, Measured::new("threads --gil new", 0.99)),
            (
                Era::PerInterpreter,
                Measured::new("interpreters --gil new, 2 workers", 0.5),
            ),
            (Era::FreeThreaded, Measured::new("threads --gil none", 0.52)),
        ]
    }

    fn fidelity(metric: &str, (python, gil): (&str, Era), cpython: f64) -> Fidelity {
        Fidelity::new(
            "countdown",
            metric,
            (python, gil),
            Band::Relative(0.2),
            cpython,
            cpython * 0.5,
            String::new(),
        )
    }

    fn table(rows: &[Fidelity]) -> Measurements {
        let mut table = Measurements::default();
        for row in rows {
            crate::lab::views::insert_fidelity(&mut table, row).unwrap();
        }
        table
    }

    #[test]
    fn each_era_is_judged_by_the_one_rule() {
        let row = CLAIM.judge("countdown", &measured());
        let verdicts: Vec<Verdict> = Era::ALL
            .iter()
            .map(|era| row.verdicts.get(*era).verdict)
            .collect();
        use Verdict::*;
        assert_eq!(verdicts, [Holds, Holds, DoesNotHold, DoesNotHold]);
        assert_eq!(
            row.rule,
            "holds at 0.85× or more, does not hold at 0.70× or less"
        );
        assert_eq!(row.verdicts.get(Era::New).shown, "0.99×");
    }

    #[test]
    fn cpython_numbers_join_the_cells_of_their_era_and_metric() {
        let mut row = CLAIM.judge("countdown", &measured());
        row.add_cpython(&table(&[
            fidelity("m", ("2.7.18", Era::Legacy), 1.1),
            fidelity("m", ("3.11.7", Era::New), 0.8),
            fidelity("m", ("3.13.0", Era::New), 0.95),
            fidelity("sub", ("3.13.0", Era::PerInterpreter), 0.66),
            fidelity("other", ("3.13.0", Era::New), 9.0),
        ]));
        let pythons = |era| {
            row.verdicts
                .get(era)
                .cpython
                .iter()
                .map(|n| (n.python.clone(), n.verdict))
                .collect::<Vec<_>>()
        };
        use Verdict::*;
        assert_eq!(pythons(Era::Legacy), [("2.7.18".into(), Some(Holds))]);
        assert_eq!(
            pythons(Era::New),
            [
                ("3.11.7".into(), Some(Inconclusive)),
                ("3.13.0".into(), Some(Holds))
            ]
        );
        assert_eq!(
            pythons(Era::PerInterpreter),
            [("3.13.0".into(), Some(DoesNotHold))]
        );
        assert!(pythons(Era::FreeThreaded).is_empty());
        assert!(
            row.verdicts.get(Era::PerInterpreter).words().contains(
                "CPython 3.13.0: 0.66×, does not hold (its emulation 0.33×, does not hold)"
            )
        );
    }

    /// Where the pair measured every era: each cell's own number is the emulation's own
    /// configuration where it ran, else the emulation standing for the era's interpreter.
    #[test]
    fn a_paired_claim_is_judged_from_the_table() {
        let mut table = table(&[
            fidelity("m", ("2.7.18", Era::Legacy), 1.1),
            fidelity("m", ("3.11.7", Era::New), 0.95),
        ]);
        let free = Subject::emulation("emulation, free-threaded", Some(Era::FreeThreaded));
        table
            .insert(crate::lab::model::Measurement::new(
                ("countdown", "m"),
                &free,
                vec![0.5, 0.52, 0.51],
                "clab serve --gil none",
            ))
            .unwrap();
        let claim = EraClaim {
            measured_by: EraMetric::Pair("m"),
            except: &[(
                Era::PerInterpreter,
                EraMetric::NotMeaningful("nothing to share"),
            )],
            ..CLAIM
        };
        let mut row = claim.judge_table("countdown", &table);
        row.add_cpython(&table);
        let legacy = row.verdicts.get(Era::Legacy);
        assert!(!legacy.own_setup() && legacy.measured_by_pair());
        assert_eq!(legacy.setup, "emulation of CPython 2.7.18");
        assert_eq!(
            legacy.verdict,
            Verdict::DoesNotHold,
            "0.55×, its emulation's"
        );
        assert_eq!(
            legacy.words(),
            "CPython 2.7.18: 1.10×, holds (its emulation 0.55×, does not hold)"
        );
        let free = row.verdicts.get(Era::FreeThreaded);
        assert!(free.own_setup());
        assert_eq!(free.verdict, Verdict::DoesNotHold);
        assert_eq!(free.words(), "0.51× (emulation, free-threaded)");
        let none = row.verdicts.get(Era::PerInterpreter);
        assert_eq!(none.verdict, Verdict::Skipped);
        assert_eq!(none.words(), "nothing to share");
        // A pair metric nobody measured is an error, not a silent gap.
        let unmeasured = EraClaim {
            measured_by: EraMetric::Pair("absent"),
            except: &[],
            ..CLAIM
        };
        assert_eq!(
            unmeasured
                .judge_table("countdown", &table)
                .verdicts
                .get(Era::New)
                .verdict,
            Verdict::Error
        );
    }

    #[test]
    fn report_json_names_the_four_eras() {
        let row = CLAIM.judge("countdown", &measured());
        let json = serde_json::to_value(&row).unwrap();
        for era in Era::ALL {
            assert!(
                json["verdicts"][era.name()]["verdict"].is_string(),
                "{json}"
            );
        }
        assert_eq!(json["experiment"], "countdown");
        assert_eq!(
            json["verdicts"]["free-threaded"]["verdict"],
            "does_not_hold"
        );
    }

    #[test]
    fn an_unclean_run_or_a_missing_number_gives_no_verdict() {
        let mut measured = measured();
        measured[1].1.value = f64::NAN;
        let mut row = CLAIM.judge("countdown", &measured);
        assert_eq!(row.verdicts.get(Era::New).verdict, Verdict::Error);
        row.unclean(Verdict::Inconclusive);
        assert!(
            Era::ALL
                .iter()
                .all(|era| row.verdicts.get(*era).verdict != Verdict::Holds)
        );
        assert_eq!(row.verdicts.get(Era::New).verdict, Verdict::Error);
    }

    #[test]
    fn rules_of_parts_and_of_any_loss() {
        let parts = EraClaim {
            rule: Rule::Parts("three checks"),
            measured_by: EraMetric::Experiment,
            except: &[],
            ..CLAIM
        };
        let mut measured = measured();
        measured[0].1 = measured[0].1.clone().judged(Verdict::Inconclusive);
        let row = parts.judge("threshold", &measured);
        assert_eq!(row.verdicts.get(Era::Legacy).verdict, Verdict::Inconclusive);
        assert_eq!(
            row.verdicts.get(Era::New).verdict,
            Verdict::Error,
            "no verdict given"
        );
        let mut measured = super::tests::measured();
        measured[2].1 = measured[2]
            .1
            .clone()
            .judged(Verdict::Inconclusive)
            .note("needs a core apart");
        let mut row = CLAIM.judge("countdown", &measured);
        row.add_cpython(&table(&[fidelity(
            "sub",
            ("3.13.0", Era::PerInterpreter),
            0.66,
        )]));
        let cell = row.verdicts.get(Era::PerInterpreter);
        assert_eq!(cell.verdict, Verdict::Inconclusive);
        assert_eq!(
            cell.cpython[0].verdict, None,
            "not judged where the cell is not"
        );
        assert!(
            cell.words()
                .ends_with("CPython 3.13.0: 0.66× (its emulation 0.33×) — needs a core apart")
        );
        assert_eq!(Rule::AboveZero.judge(1e-7), Some(Verdict::Holds));
        assert_eq!(Rule::AboveZero.judge(0.0), Some(Verdict::DoesNotHold));
        assert_eq!(Unit::Percent.show(0.0001), "0.0100 %");
        assert_eq!(Unit::Percent.show(0.45), "45 %");
    }
}
