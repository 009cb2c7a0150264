//! What an experiment found, as plain data: verdicts with the numbers they rest on, tables
//! and figures described as data. The report renders it (text, Markdown, HTML, plots); the
//! JSON beside the report is this, serialised.

use serde::Serialize;

pub use crate::lab::model::verdict::Verdict;
pub use crate::lab::words::significant;

/// One part of a claim, judged on one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is judged, e.g. "threads --gil new: no faster than serial".
    pub subject: String,
    pub verdict: Verdict,
    /// The numbers the verdict rests on, in words.
    pub evidence: String,
    /// Why a number is past what the mechanism allows (e.g. more than 110 % of a rate kept),
    /// when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artefact: Option<String>,
}

impl Check {
    pub fn new(subject: impl Into<String>, verdict: Verdict, evidence: impl Into<String>) -> Check {
        Check {
            subject: subject.into(),
            verdict,
            evidence: evidence.into(),
            artefact: None,
        }
    }

    /// Flags a number past what the mechanism allows, with why.
    pub fn artefact(mut self, why: impl Into<String>) -> Check {
        self.artefact = Some(why.into());
        self
    }
}

/// The claim's own rule applied with the emulated GIL and without it: a faithful model makes
/// the GIL's claims hold under `--gil new` and fail under `--gil none`.
#[derive(Debug, Clone, Serialize)]
pub struct Contrast {
    pub with_gil: Check,
    pub without_gil: Check,
}

impl Contrast {
    /// The claim holds with the GIL and fails without it: the evidence that the GIL is the
    /// cause, not a failure.
    pub fn as_expected(&self) -> bool {
        self.with_gil.verdict == Verdict::Holds && self.without_gil.verdict == Verdict::DoesNotHold
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }
}

/// A change of an experiment's rule after it had been run, shown in the report with its
/// reason: the rule a verdict rests on is fixed before the run, and any later change is on
/// the record.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleChange {
    /// YYYY-MM-DD.
    pub date: &'static str,
    pub change: &'static str,
    pub reason: &'static str,
}

/// A named series of (x, y) points.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed: a reference, not a measurement.
    pub reference: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            reference: false,
        }
    }
}

/// A vertical marker on a line chart (the hog's arrival).
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// What a thread was doing with the GIL over a span of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneState {
    Holding,
    Waiting,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    pub name: String,
    /// (start, end, state) in the chart's x unit; gaps are "released".
    pub spans: Vec<(f64, f64, LaneState)>,
    /// When this thread asked the holder to drop the lock (the GIL's drop requests).
    pub requests: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chart {
    Lines {
        series: Vec<Series>,
        markers: Vec<Marker>,
        log_x: bool,
        log_y: bool,
    },
    /// One group of bars per category, one bar per series.
    Bars {
        categories: Vec<String>,
        series: Vec<(String, Vec<f64>)>,
    },
    Lanes {
        lanes: Vec<Lane>,
        start: f64,
        end: f64,
    },
    /// Points only, on log–log axes, with the identity line y = x dashed: a measured value
    /// (y) against the reference it should equal (x).
    Scatter { series: Vec<Series> },
}

impl Chart {
    /// Lines on linear axes, no markers.
    pub fn lines(series: Vec<Series>) -> Chart {
        Chart::Lines {
            series,
            markers: Vec::new(),
            log_x: false,
            log_y: false,
        }
    }

    /// Lines on log–log axes, no markers.
    pub fn log_log(series: Vec<Series>) -> Chart {
        Chart::Lines {
            series,
            markers: Vec::new(),
            log_x: true,
            log_y: true,
        }
    }

    /// One bar per category: a single named series.
    pub fn bars(name: &str, bars: impl IntoIterator<Item = (String, f64)>) -> Chart {
        let (categories, values) = bars.into_iter().unzip();
        Chart::Bars {
            categories,
            series: vec![(name.into(), values)],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// File stem, unique within the experiment.
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub chart: Chart,
}

impl Figure {
    pub fn new(
        name: impl Into<String>,
        title: impl Into<String>,
        (x_label, y_label): (&str, &str),
        chart: Chart,
    ) -> Figure {
        Figure {
            name: name.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            chart,
        }
    }
}

/// How close the emulation must come to CPython on one metric, fixed before the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// Within ± this fraction of CPython's value.
    Relative(f64),
    /// Within this factor of CPython's value, either way.
    Factor(f64),
    /// Within ± this much, in the metric's own unit.
    Absolute(f64),
    /// Anywhere from zero to this multiple of CPython's value (a cost).
    AtMost(f64),
    /// Zero where CPython's value is zero, else within this factor of it.
    ZeroOrFactor(f64),
}

impl Band {
    /// The interval the emulation's value must fall in, given CPython's.
    pub fn around(self, cpython: f64) -> [f64; 2] {
        let ordered = |a: f64, b: f64| [a.min(b), a.max(b)];
        match self {
            Band::Relative(fraction) => {
                ordered(cpython * (1.0 - fraction), cpython * (1.0 + fraction))
            }
            Band::Factor(factor) | Band::ZeroOrFactor(factor) if cpython != 0.0 => {
                ordered(cpython / factor, cpython * factor)
            }
            Band::Factor(_) | Band::ZeroOrFactor(_) => [0.0, 0.0],
            Band::Absolute(delta) => [cpython - delta, cpython + delta],
            Band::AtMost(factor) => ordered(0.0, cpython * factor),
        }
    }

    /// The band in words, for the rule and the tables.
    pub fn describe(self) -> String {
        match self {
            Band::Relative(fraction) => format!("±{:.0} %", fraction * 100.0),
            Band::Factor(factor) => format!("×1/{factor}–×{factor}"),
            Band::Absolute(delta) => format!("±{delta}"),
            Band::AtMost(factor) => format!("≤ ×{factor}"),
            Band::ZeroOrFactor(factor) => {
                format!("0 if CPython's is 0, else ×1/{factor}–×{factor}")
            }
        }
    }
}

/// One metric measured on one CPython and on the emulation configured to match it.
#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    pub experiment: String,
    pub metric: String,
    /// The interpreter's version, e.g. "3.11.7".
    pub python: String,
    /// Its era: the build's, or per-interpreter for a metric measured on subinterpreters with
    /// a GIL each.
    pub gil: crate::lab::model::Era,
    pub cpython: f64,
    pub emulation: f64,
    pub band: [f64; 2],
    pub faithful: bool,
    /// The numbers behind the two values, and for an unfaithful metric what differed.
    pub note: String,
}

impl Fidelity {
    pub fn new(
        experiment: &str,
        metric: &str,
        (python, gil): (&str, crate::lab::model::Era),
        band: Band,
        cpython: f64,
        emulation: f64,
        note: String,
    ) -> Fidelity {
        let band = band.around(cpython);
        // A hair of tolerance, so a band of [0, 0] accepts an exact zero after arithmetic.
        let slack = 1e-9 * (band[0].abs() + band[1].abs()).max(1.0);
        Fidelity {
            experiment: experiment.into(),
            metric: metric.into(),
            python: python.into(),
            gil,
            cpython,
            emulation,
            band,
            faithful: emulation.is_finite()
                && emulation >= band[0] - slack
                && emulation <= band[1] + slack,
            note,
        }
    }

    /// The row as tables show it: experiment, metric, CPython, emulation, emulation ÷
    /// CPython, band, faithful.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.experiment.clone(),
            self.metric.clone(),
            significant(self.cpython),
            significant(self.emulation),
            if self.cpython == 0.0 {
                "—".into()
            } else {
                format!("{:.2}", self.emulation / self.cpython)
            },
            format!(
                "{} – {}",
                significant(self.band[0]),
                significant(self.band[1])
            ),
            if self.faithful { "yes" } else { "no" }.into(),
        ]
    }
}

/// Everything an experiment reports.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub claim: &'static str,
    pub essay: &'static str,
    pub rule: String,
    /// Changes of the rule after runs, with their reasons.
    pub rule_history: &'static [RuleChange],
    pub verdict: Verdict,
    /// The verdict's numbers in one sentence, for the claims table.
    pub summary: String,
    pub checks: Vec<Check>,
    pub contrast: Option<Contrast>,
    /// The setup as run: servers, loads, sizes, and why those sizes.
    pub setup: Vec<String>,
    /// Where the servers and the load ran.
    pub placement: Vec<String>,
    /// The mechanism in plain words.
    pub explanation: String,
    pub tables: Vec<Table>,
    pub figures: Vec<Figure>,
    /// Metrics measured on real CPython and on the emulation side by side.
    pub fidelity: Vec<Fidelity>,
    /// The eras' cells measured on the emulation's own configuration of an era (in the run's
    /// table, not repeated here).
    #[serde(skip)]
    pub measurements: Vec<crate::lab::model::Measurement>,
    /// The claim in each era of CPython's lock; the report gathers these into its eras table
    /// with CPython's numbers beside them, so the outcome leaves it out of its own JSON.
    #[serde(skip)]
    pub era: Option<crate::lab::model::eras::EraRow>,
    /// Every server, load and pinned thread of the run: placement read back, errors, exits.
    pub health: Vec<crate::lab::model::health::Health>,
    /// Raw measurements (load results, traces' summaries, samples).
    pub raw: serde_json::Value,
    pub elapsed_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_fixed_around_cpythons_value() {
        assert_eq!(Band::Relative(0.1).around(2.0), [1.8, 2.2]);
        assert_eq!(Band::Factor(2.0).around(-4.0), [-8.0, -2.0]);
        assert_eq!(Band::Absolute(0.15).around(-1.0), [-1.15, -0.85]);
        assert_eq!(Band::AtMost(2.0).around(5.0), [0.0, 10.0]);
        assert_eq!(Band::ZeroOrFactor(4.0).around(0.0), [0.0, 0.0]);
        let row = |band, emulation| {
            Fidelity::new(
                "e",
                "m",
                ("3.11.7", crate::lab::model::Era::New),
                band,
                0.0,
                emulation,
                String::new(),
            )
            .faithful
        };
        assert!(row(Band::ZeroOrFactor(4.0), 0.0));
        assert!(!row(Band::ZeroOrFactor(4.0), 0.001));
        assert!(!row(Band::Relative(0.1), f64::NAN));
    }
}
