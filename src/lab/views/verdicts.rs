//! Each claim judged per era: on every real interpreter that ran it, on the emulation standing
//! for that interpreter (the same method), and on the emulation's own configuration of an era
//! no interpreter stood for. A claim with no era (the broker) is judged on the emulation alone.

use serde::{Deserialize, Serialize};

use crate::lab::model::eras::EraRow;
use crate::lab::model::outcome::{Outcome, Verdict};
use crate::lab::model::{Era, SubjectKind};

/// One judgement: `report.json`'s `"verdicts"` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub claim: String,
    /// The era judged in, or null for a claim about no era of CPython's lock.
    pub era: Option<Era>,
    /// `cpython` or `emulation`.
    pub on: SubjectKind,
    /// The interpreter judged, or that the emulation stood for; null for the emulation's own
    /// setup.
    pub python: Option<String>,
    pub verdict: Verdict,
    /// The number and what was run, in words.
    pub reason: String,
}

/// Every judgement of a run, claim by claim in the catalogue's order.
pub fn verdicts(outcomes: &[Outcome], eras: &[EraRow]) -> Vec<VerdictRow> {
    let mut rows = Vec::new();
    for outcome in outcomes {
        let Some(era_row) = eras.iter().find(|row| row.experiment == outcome.id) else {
            rows.push(VerdictRow {
                claim: outcome.id.to_owned(),
                era: None,
                on: SubjectKind::Emulation,
                python: None,
                verdict: outcome.verdict,
                reason: outcome.summary.clone(),
            });
            continue;
        };
        for era in Era::ALL {
            let cell = era_row.verdicts.get(era);
            for number in &cell.cpython {
                if let Some(verdict) = number.verdict {
                    rows.push(VerdictRow {
                        claim: outcome.id.to_owned(),
                        era: Some(era),
                        on: SubjectKind::Cpython,
                        python: Some(number.python.clone()),
                        verdict,
                        reason: format!("{} ({}): {}", number.shown, era_row.metric, era_row.rule),
                    });
                }
                if let Some((emulated, verdict)) = number
                    .emulation
                    .as_ref()
                    .and_then(|emulated| Some((emulated, emulated.verdict?)))
                {
                    rows.push(VerdictRow {
                        claim: outcome.id.to_owned(),
                        era: Some(era),
                        on: SubjectKind::Emulation,
                        python: Some(number.python.clone()),
                        verdict,
                        reason: format!(
                            "{} ({}), configured as CPython {}",
                            emulated.shown, era_row.metric, number.python
                        ),
                    });
                }
            }
            // The emulation's own configuration of the era, where it ran (no interpreter
            // stood for the era, or the experiment measured the era itself).
            if cell.own_setup() {
                rows.push(VerdictRow {
                    claim: outcome.id.to_owned(),
                    era: Some(era),
                    on: SubjectKind::Emulation,
                    python: None,
                    verdict: cell.verdict,
                    reason: format!("{} ({})", cell.shown, cell.setup),
                });
            }
        }
    }
    rows
}

/// The terminal's lead: per claim, its verdicts on real CPython grouped by verdict and era,
/// then the emulation's, wrapped to `width` columns. A claim with no verdict on CPython is
/// judged on the emulation, and says whether CPython was measured beside it (`paired`: the
/// claims whose fidelity pairs ran, judged in the fidelity table rather than by the claim's
/// rule).
pub fn lines(rows: &[VerdictRow], paired: &[&str], width: usize) -> Vec<String> {
    const INDENT: usize = 19;
    let mut claims: Vec<&str> = Vec::new();
    for row in rows {
        if !claims.contains(&row.claim.as_str()) {
            claims.push(&row.claim);
        }
    }
    let mut out = Vec::new();
    for claim in claims {
        let of_claim: Vec<&VerdictRow> = rows.iter().filter(|row| row.claim == claim).collect();
        let cpython: Vec<&VerdictRow> = of_claim
            .iter()
            .copied()
            .filter(|row| row.on == SubjectKind::Cpython)
            .collect();
        let emulation: Vec<&VerdictRow> = of_claim
            .iter()
            .copied()
            .filter(|row| row.on == SubjectKind::Emulation)
            .collect();
        let mut parts = Vec::new();
        if cpython.is_empty() {
            let beside = if paired.contains(&claim) {
                "; CPython measured beside it, in the fidelity table"
            } else {
                ""
            };
            parts.push(format!(
                "judged on the emulation: {}{beside}",
                emulation_words(&emulation)
            ));
        } else {
            parts.push(format!("CPython: {}", cpython_words(&cpython)));
            parts.push(format!("emulation: {}", emulation_words(&emulation)));
        }
        let mut first = true;
        for part in parts {
            let lead = if first {
                format!("{claim:<width$}", width = INDENT - 1)
            } else {
                " ".repeat(INDENT - 1)
            };
            first = false;
            out.extend(wrap(&part, &lead, INDENT, width));
        }
    }
    out
}

/// "holds on 3.11.7, 3.13.0 (new GIL); does not hold on 2.7.18 (legacy GIL)".
fn cpython_words(rows: &[&VerdictRow]) -> String {
    let mut groups: Vec<(Verdict, Option<Era>, Vec<&str>)> = Vec::new();
    for row in rows {
        let python = row.python.as_deref().unwrap_or("?");
        match groups
            .iter_mut()
            .find(|(verdict, era, _)| *verdict == row.verdict && *era == row.era)
        {
            Some((_, _, pythons)) => pythons.push(python),
            None => groups.push((row.verdict, row.era, vec![python])),
        }
    }
    groups
        .iter()
        .map(|(verdict, era, pythons)| {
            let era = era.map_or("no era", |era| era.short());
            format!("{verdict} on {} ({era})", pythons.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// "holds (new GIL); does not hold (legacy GIL, free-threaded)", or one verdict for no era.
fn emulation_words(rows: &[&VerdictRow]) -> String {
    let mut groups: Vec<(Verdict, Vec<&str>)> = Vec::new();
    for row in rows {
        let era = row.era.map(Era::short);
        match groups
            .iter_mut()
            .find(|(verdict, _)| *verdict == row.verdict)
        {
            Some((_, eras)) => eras.extend(era.filter(|era| !eras.contains(era))),
            None => groups.push((row.verdict, era.into_iter().collect())),
        }
    }
    groups
        .iter()
        .map(|(verdict, eras)| {
            if eras.is_empty() {
                verdict.to_string()
            } else {
                format!("{verdict} ({})", eras.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `text` after `lead`, wrapped at `width` with continuation lines indented by `indent`.
fn wrap(text: &str, lead: &str, indent: usize, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = format!("{lead} ");
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(line);
            line = " ".repeat(indent + 2);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(on: SubjectKind, era: Era, python: Option<&str>, verdict: Verdict) -> VerdictRow {
        VerdictRow {
            claim: "convoy".into(),
            era: Some(era),
            on,
            python: python.map(str::to_owned),
            verdict,
            reason: String::new(),
        }
    }

    #[test]
    fn the_lead_says_per_era_where_cpython_holds_and_fits_a_narrow_terminal() {
        use SubjectKind::*;
        use Verdict::*;
        let rows = vec![
            row(Cpython, Era::Legacy, Some("2.7.18"), DoesNotHold),
            row(Emulation, Era::Legacy, Some("2.7.18"), DoesNotHold),
            row(Emulation, Era::Legacy, None, DoesNotHold),
            row(Cpython, Era::New, Some("3.11.7"), Holds),
            row(Cpython, Era::New, Some("3.13.0"), Holds),
            row(Emulation, Era::New, None, Holds),
            row(Emulation, Era::FreeThreaded, None, DoesNotHold),
            VerdictRow {
                claim: "broker".into(),
                era: None,
                on: Emulation,
                python: None,
                verdict: Inconclusive,
                reason: String::new(),
            },
        ];
        let lines = lines(&rows, &["broker"], 60);
        assert_eq!(
            lines,
            [
                "convoy             CPython: does not hold on 2.7.18 (legacy",
                "                     GIL); holds on 3.11.7, 3.13.0 (new GIL)",
                "                   emulation: does not hold (legacy GIL,",
                "                     free-threaded); holds (new GIL)",
                "broker             judged on the emulation: inconclusive;",
                "                     CPython measured beside it, in the",
                "                     fidelity table",
            ]
        );
        assert!(lines.iter().all(|line| line.chars().count() <= 60));
    }
}
