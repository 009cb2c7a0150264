//! The lab's report, rendered from the outcomes' plain data: `index.html` (one file, plots
//! inline as SVG), `README.md` (Markdown with PNG links), `plots/` (every figure as SVG and
//! PNG), `data/` (each experiment's outcome as JSON) and `report.json` (everything).
//! The page templates live in `templates/` as text.

pub(crate) mod plot;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::lab::model::eras::{self, Era};
use crate::lab::model::outcome::Fidelity;
use crate::lab::views::verdicts::VerdictRow;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    #[error("cannot draw {0}: {1}")]
    Plot(String, String),
    #[error("cannot render {0}")]
    Template(&'static str, #[source] minijinja::Error),
}

pub use crate::lab::pipeline::{LabEnvironment, LabReport, SCHEMA};

/// One fidelity row as the pages show it: the interpreter, then the row's own cells.
fn fidelity_cells(row: &Fidelity) -> Vec<String> {
    let mut cells = vec![format!("CPython {} ({})", row.python, row.gil.short())];
    cells.extend(row.cells());
    cells
}

/// One row of the eras table as the pages show it.
#[derive(Debug, Clone, Serialize)]
struct EraCells {
    experiment: &'static str,
    claim: &'static str,
    rule: String,
    /// Each era's verdict (as `report.json` spells it, for the CSS class) and words.
    cells: Vec<(crate::lab::model::outcome::Verdict, String)>,
}

fn era_cells(report: &LabReport) -> Vec<EraCells> {
    report
        .eras
        .iter()
        .map(|row| EraCells {
            experiment: row.experiment,
            claim: row.claim,
            rule: format!("{}: {}", row.metric, row.rule),
            cells: Era::ALL
                .iter()
                .map(|era| {
                    let cell = row.verdicts.get(*era);
                    (cell.verdict, cell.words())
                })
                .collect(),
        })
        .collect()
}

/// One claim in the pages' lead table: per era, each verdict on CPython and the emulation's.
#[derive(Debug, Clone, Serialize)]
struct LeadRow {
    claim: String,
    /// Per era, (verdict, words) for each interpreter, then the emulation's own setup.
    eras: Vec<Vec<(crate::lab::model::outcome::Verdict, String)>>,
    /// The verdict of a claim with no era: it is judged on the emulation.
    emulation_only: Option<crate::lab::model::outcome::Verdict>,
}

fn lead_rows(report: &LabReport) -> Vec<LeadRow> {
    use crate::lab::model::SubjectKind;
    report
        .outcomes
        .iter()
        .map(|outcome| {
            let rows: Vec<&VerdictRow> = report
                .verdicts
                .iter()
                .filter(|row| row.claim == outcome.id)
                .collect();
            let emulation_only = match rows.as_slice() {
                [only] if only.era.is_none() => Some(only.verdict),
                _ => None,
            };
            let eras = Era::ALL
                .iter()
                .map(|era| {
                    rows.iter()
                        .filter(|row| row.era == Some(*era))
                        .map(|row| {
                            let who = match (row.on, &row.python) {
                                (SubjectKind::Cpython, Some(python)) => format!("CPython {python}"),
                                (SubjectKind::Emulation, Some(python)) => {
                                    format!("emulating {python}")
                                }
                                _ => "emulation".into(),
                            };
                            (row.verdict, who)
                        })
                        .collect()
                })
                .collect();
            LeadRow {
                claim: outcome.id.to_owned(),
                eras,
                emulation_only,
            }
        })
        .collect()
}

/// Each outcome's no-GIL contrast as the pages show it: (CSS class, words).
fn contrasts(report: &LabReport) -> BTreeMap<&'static str, (String, String)> {
    report
        .outcomes
        .iter()
        .filter_map(|outcome| {
            let contrast = outcome.contrast.as_ref()?;
            let words = text::contrast_words(contrast);
            let class = if contrast.as_expected() {
                "expected".to_owned()
            } else {
                serde_json::to_value(contrast.without_gil.verdict)
                    .ok()?
                    .as_str()?
                    .to_owned()
            };
            Some((outcome.id, (class, words)))
        })
        .collect()
}

/// Writes the report under `out`, returning the path of `index.html`.
pub fn write(report: &LabReport, out: &Path) -> Result<PathBuf, ReportError> {
    let (plots, data) = (out.join("plots"), out.join("data"));
    clear(out)?;
    for dir in [out, &plots, &data] {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::Io(dir.to_owned(), e))?;
    }
    let mut svgs = BTreeMap::new();
    for outcome in &report.outcomes {
        for figure in &outcome.figures {
            let stem = format!("{}-{}", outcome.id, figure.name);
            let svg = plot::svg(figure).map_err(|e| ReportError::Plot(stem.clone(), e))?;
            write_file(&plots.join(format!("{stem}.svg")), svg.as_bytes())?;
            plot::png(figure, &plots.join(format!("{stem}.png")))
                .map_err(|e| ReportError::Plot(stem.clone(), e))?;
            svgs.insert(
                format!("{}/{}", outcome.id, figure.name),
                minijinja::Value::from_safe_string(svg),
            );
        }
        write_file(&data.join(format!("{}.json", outcome.id)), &json(outcome))?;
    }
    write_file(&out.join("report.json"), &json(report))?;
    let csv = report
        .measurements
        .to_csv()
        .map_err(|e| ReportError::Io(out.join(MEASUREMENTS_CSV), e.into()))?;
    write_file(&out.join(MEASUREMENTS_CSV), &csv)?;
    let svgs = minijinja::Value::from(svgs);
    let templates = templates();
    let render = |name: &'static str| {
        templates
            .get_template(name)
            .and_then(|template| {
                template.render(minijinja::context! {
                    svgs => svgs.clone(),
                    fidelity_rows => report.fidelity.iter().map(fidelity_cells).collect::<Vec<_>>(),
                    era_titles => Era::ALL.iter().map(|era| era.title()).collect::<Vec<_>>(),
                    era_rows => minijinja::value::Serde(era_cells(report)),
                    era_interpreters => eras::interpreters_by_era(&report.measurements),
                    lead_rows => minijinja::value::Serde(lead_rows(report)),
                    contrasts => minijinja::value::Serde(contrasts(report)),
                    setup_lines => report.setups.describe(),
                    cores_line => report.cores.describe(),
                    health_columns => crate::lab::running::health::Health::COLUMNS,
                    health_rows => report.outcomes.iter().map(|o| {
                        (o.id, o.health.iter().map(|h| h.cells()).collect::<Vec<_>>())
                    }).collect::<BTreeMap<_, _>>(),
                    ..minijinja::value::Serde(report)
                })
            })
            .map_err(|e| ReportError::Template(name, e))
    };
    write_file(&out.join("README.md"), render("README.md")?.as_bytes())?;
    let index = out.join("index.html");
    write_file(&index, render("index.html")?.as_bytes())?;
    Ok(index)
}

/// The table as CSV, beside `report.json`.
pub const MEASUREMENTS_CSV: &str = "measurements.csv";

/// What a report writes: the previous run's are removed before a run writes its own, so no
/// plot or data file of another run is left to be read as this one's. Nothing else in the
/// directory is touched.
const WRITTEN: [&str; 6] = [
    "plots",
    "data",
    "report.json",
    MEASUREMENTS_CSV,
    "README.md",
    "index.html",
];

fn clear(out: &Path) -> Result<(), ReportError> {
    for name in WRITTEN {
        let path = out.join(name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ReportError::Io(path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.add_template("README.md", include_str!("templates/README.md.j2"))
        .expect("the Markdown template parses");
    env.add_template("index.html", include_str!("templates/index.html.j2"))
        .expect("the HTML template parses");
    // A Markdown table cell: no pipes, no line breaks.
    env.add_filter("cell", |text: String| {
        text.replace('|', "\\|").replace('\n', " ")
    });
    // `does_not_hold` → `does not hold`.
    env.add_filter("label", |verdict: String| verdict.replace('_', " "));
    env
}

fn json(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("plain data serialises");
    bytes.push(b'\n');
    bytes
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|e| ReportError::Io(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::eras::{EraClaim, EraMetric, Measured, Rule, Unit};
    use crate::lab::model::outcome::{Chart, Check, Figure, Outcome, Series, Table, Verdict};
    use crate::lab::running::{Placement, Profile};

    const ERA: EraClaim = EraClaim {
        claim: "two jobs at once are no faster",
        metric: "at once ÷ in a row",
        rule: Rule::AtLeast {
            holds: 0.85,
            fails: 0.7,
        },
        unit: Unit::Times,
        measured_by: EraMetric::Pair("a ratio"),
        except: &[],
    };

    fn outcome() -> Outcome {
        let mut table = Table::new("numbers", &["a", "b|c"]);
        table.row(vec!["1".into(), "x|y".into()]);
        let fidelity = Fidelity::new(
            "demo",
            "a ratio",
            ("3.11.7", crate::lab::model::Era::New),
            crate::lab::model::outcome::Band::Relative(0.1),
            2.0,
            2.1,
            "measured".into(),
        );
        let mut pair = crate::lab::model::Measurements::default();
        crate::lab::views::insert_fidelity(&mut pair, &fidelity).unwrap();
        Outcome {
            id: "demo",
            claim: "a claim with <html> & pipes |",
            essay: "an essay",
            rule: "a rule".into(),
            rule_history: &[crate::lab::model::outcome::RuleChange {
                date: "2026-11-25",
                change: "a threshold moved",
                reason: "it could not fail",
            }],
            verdict: Verdict::DoesNotHold,
            summary: "it did not".into(),
            checks: vec![Check::new("part", Verdict::DoesNotHold, "1 < 2")],
            contrast: None,
            setup: vec!["setup".into()],
            placement: vec!["CPU 0".into()],
            explanation: "because".into(),
            tables: vec![table],
            figures: vec![Figure {
                name: "line".into(),
                title: "A line".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                chart: Chart::Lines {
                    series: vec![Series::new("s", vec![(0.0, 1.0), (1.0, 2.0)])],
                    markers: Vec::new(),
                    log_x: false,
                    log_y: false,
                },
            }],
            fidelity: vec![fidelity.clone()],
            measurements: pair.rows().to_vec(),
            era: Some(
                ERA.judge(
                    "demo",
                    &Era::ALL
                        .into_iter()
                        .zip([1.1, 1.0, 0.5, 0.52])
                        .map(|(era, ratio)| (era, Measured::new("threads", ratio)))
                        .collect::<Vec<_>>(),
                ),
            ),
            health: vec![crate::lab::running::health::Health::new(
                "server demo",
                &[0],
            )],
            raw: serde_json::json!({"k": 1}),
            elapsed_s: 1.5,
        }
    }

    #[test]
    fn a_report_has_every_part_escaped_where_it_must_be() {
        let dir = tempfile::tempdir().unwrap();
        // A previous run's plot that this run does not draw is not left behind.
        std::fs::create_dir_all(dir.path().join("plots")).unwrap();
        std::fs::write(dir.path().join("plots/old-run.svg"), "<svg/>").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "the user's").unwrap();
        let views = crate::lab::views::Views::of(&[outcome()]).unwrap();
        let report = LabReport {
            schema: SCHEMA,
            started_at: "now".into(),
            profile: Profile::Quick,
            elapsed_s: 2.0,
            environment: LabEnvironment::detect(Vec::new()),
            placement: Placement::from_allowed(&[0, 1]),
            setups: crate::lab::running::setups::Setups::default(),
            cores: crate::lab::model::cores::Cores {
                cpus: vec![0, 1],
                samples: vec![crate::lab::model::cores::CoreSample {
                    before: "countdown".into(),
                    alone_us: vec![200.0, 210.0],
                    together_us: vec![400.0, 220.0],
                }],
            },
            outcomes: vec![outcome()],
            verdicts: views.verdicts,
            measurements: views.measurements,
            fidelity: views.fidelity,
            eras: views.eras,
            partial: true,
            interrupted_by: Some("SIGINT".into()),
            command_line: vec!["clab".into(), "lab".into(), "--quick".into()],
        };
        let index = write(&report, dir.path()).unwrap();
        let html = std::fs::read_to_string(index).unwrap();
        assert!(html.contains("<svg") && html.contains("&lt;html&gt;"));
        assert!(html.contains("does not hold"));
        assert!(html.contains("Partial: interrupted by SIGINT"));
        assert!(
            html.contains("the CPUs then shared a core"),
            "the host's CPUs are shown"
        );
        let build = format!("commit {}", crate::system::machine::COMMIT);
        assert!(html.contains(&build) && html.contains("clab lab --quick"));
        let markdown = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        assert!(markdown.contains("Partial: interrupted by SIGINT"));
        assert!(markdown.contains("| [demo](#demo) | a claim with <html> & pipes \\| |"));
        assert!(markdown.contains("![A line](plots/demo-line.png)"));
        assert!(markdown.contains("| CPython 3.11.7 (new GIL) | demo | a ratio | 2.00 | 2.10 | 1.05 | 1.80 – 2.20 | yes |"), "{markdown}");
        assert!(html.contains("<td>CPython 3.11.7 (new GIL)</td>"));
        // The eras table: a column per era, CPython's number in the era it was measured in.
        assert!(markdown.contains("| [demo](#demo) | two jobs at once are no faster (*at once ÷ in a row: holds at 0.85× or more, does not hold at 0.70× or less*) | **holds**: 1.10× (threads) | **holds**: 1.00× (threads); CPython 3.11.7: 2.00×, holds (its emulation 2.10×, holds) | **does not hold**: 0.50× (threads) |"), "{markdown}");
        assert!(markdown.contains("free-threaded (3.13t+) — none: no free-threaded build"));
        assert!(html.contains("<th>a GIL per interpreter (3.12+)</th>"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["fidelity"][0]["band"], serde_json::json!([1.8, 2.2]));
        assert_eq!(json["fidelity"][0]["faithful"], true);
        assert_eq!(json["eras"][0]["experiment"], "demo");
        assert_eq!(
            json["eras"][0]["verdicts"]["new"]["cpython"][0]["python"],
            "3.11.7"
        );
        assert_eq!(
            json["eras"][0]["verdicts"]["free-threaded"]["verdict"],
            "does_not_hold"
        );
        assert!(
            json["outcomes"][0].get("era").is_none(),
            "kept once, in eras"
        );
        assert_eq!(json["schema"], "clab-lab/3");
        assert!(!dir.path().join("plots/old-run.svg").exists());
        assert!(
            dir.path().join("notes.txt").exists(),
            "only the report's own files go"
        );
        // The lead: the claim on CPython in its era, beside the emulation standing for it.
        assert!(
            markdown.contains(
                "CPython 3.11.7: **holds**<br>emulating 3.11.7: **holds**<br>emulation: **holds**"
            ),
            "{markdown}"
        );
        let verdict = json["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["on"] == "cpython")
            .unwrap();
        assert_eq!(
            (&verdict["era"], &verdict["python"], &verdict["verdict"]),
            (
                &serde_json::json!("new"),
                &serde_json::json!("3.11.7"),
                &serde_json::json!("holds")
            )
        );
        let csv = std::fs::read_to_string(dir.path().join("measurements.csv")).unwrap();
        assert_eq!(
            csv.lines().count(),
            1 + json["measurements"].as_array().unwrap().len()
        );
        assert_eq!(json["outcomes"][0]["health"][0]["what"], "server demo");
        assert!(markdown.contains("2026-11-25: a threshold moved (why: it could not fail)"));
        assert!(html.contains("<td>server demo</td><td>0</td>"), "{html}");
        for file in [
            "plots/demo-line.svg",
            "plots/demo-line.png",
            "data/demo.json",
            "report.json",
        ] {
            assert!(
                dir.path().join(file).metadata().unwrap().len() > 0,
                "{file}"
            );
        }
    }
}
