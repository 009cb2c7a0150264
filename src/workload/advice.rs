//! Which model fits the function on each interpreter, drawn from the rows by rules fixed as
//! data before anything is measured: the first rule that applies gives the answer, and every
//! answer says which rule and the numbers it read.

use serde::Serialize;

use crate::lab::model::Era;
use crate::workload::rows::{Model, Profile, Row};

/// Below this share of its time computing, a call mostly waits.
pub const WAITS_BELOW_CPU_SHARE: f64 = 0.25;

/// A model scales when its throughput with every worker is at least this share of the
/// workers' count (1.5× on two CPUs): far from the 1.0× of calls that run one at a time, and
/// reached by calls that run in parallel even on a noisy machine.
pub const SCALES_FROM_SHARE_OF_WORKERS: f64 = 0.75;

/// Subinterpreters are preferred to a process pool only when their throughput is more than
/// this many times the pool's: two models within their own repeats' spread of each other would
/// otherwise trade places from one run to the next.
pub const CLEARLY_FASTER: f64 = 1.1;

/// A rule: its name, what it says, and how it reads one interpreter's rows.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: &'static str,
    pub says: &'static str,
    #[serde(skip)]
    pick: fn(&Facts) -> Option<(Model, String)>,
}

/// The rules, in the order they are tried.
pub const RULES: [Rule; 4] = [
    Rule {
        name: "mostly waits",
        says: "a call that computes for under a quarter of its time (CPU ÷ wall, in a row): threads, which overlap the waits — or asyncio, where the code can await",
        pick: mostly_waits,
    },
    Rule {
        name: "threads scale",
        says: "threads that give at least 0.75× the workers' count (1.5× on two CPUs): threads, which copy nothing",
        pick: threads_scale,
    },
    Rule {
        name: "parallel elsewhere",
        says: "otherwise a process pool if it gives at least 0.75× the workers' count — or subinterpreters, if they do and are more than 1.1× as fast",
        pick: parallel_elsewhere,
    },
    Rule {
        name: "nothing scales",
        says: "otherwise one worker: no model runs these calls in parallel here for what it costs",
        pick: nothing_scales,
    },
];

/// The model to use on one interpreter, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub python: String,
    pub model: Model,
    pub rule: &'static str,
    pub why: String,
}

/// One interpreter's rows and profile, as the rules read them.
pub struct Facts<'a> {
    pub profile: &'a Profile,
    pub rows: Vec<&'a Row>,
}

impl Facts<'_> {
    fn row(&self, model: Model) -> Option<&Row> {
        self.rows.iter().copied().find(|row| row.model == model)
    }

    fn scales(&self, row: &Row) -> bool {
        row.workers >= 2 && row.scaling >= SCALES_FROM_SHARE_OF_WORKERS * row.workers as f64
    }
}

/// A recommendation for each profiled interpreter, by the first of [`RULES`] that applies.
pub fn recommend(rows: &[Row], profiles: &[Profile]) -> Vec<Recommendation> {
    profiles
        .iter()
        .filter_map(|profile| {
            let facts = Facts {
                profile,
                rows: rows
                    .iter()
                    .filter(|row| row.python == profile.python)
                    .collect(),
            };
            RULES.iter().find_map(|rule| {
                (rule.pick)(&facts).map(|(model, why)| Recommendation {
                    python: profile.python.clone(),
                    model,
                    rule: rule.name,
                    why,
                })
            })
        })
        .collect()
}

fn mostly_waits(facts: &Facts) -> Option<(Model, String)> {
    let profile = facts.profile;
    let threads = facts.row(Model::Threads)?;
    (profile.cpu_share < WAITS_BELOW_CPU_SHARE).then(|| {
        (
            Model::Threads,
            format!(
                "a call computes for {:.0} % of its {:.1} ms and waits the rest: {} threads give {:.1}×, and more threads would wait side by side too (asyncio overlaps the waits as well, where the code awaits)",
                profile.cpu_share * 100.0,
                profile.call_ms,
                threads.workers,
                threads.scaling
            ),
        )
    })
}

fn threads_scale(facts: &Facts) -> Option<(Model, String)> {
    let threads = facts.row(Model::Threads)?;
    facts.scales(threads).then(|| {
        (
            Model::Threads,
            format!(
                "threads give {:.1}× on {} CPUs: the call runs in parallel here (it releases the GIL, or there is none), and threads copy nothing",
                threads.scaling, threads.workers
            ),
        )
    })
}

fn parallel_elsewhere(facts: &Facts) -> Option<(Model, String)> {
    let scaling = |model| facts.row(model).filter(|row| facts.scales(row));
    let best = match (scaling(Model::Processes), scaling(Model::Interpreters)) {
        (Some(processes), Some(interpreters))
            if interpreters.calls_per_s > CLEARLY_FASTER * processes.calls_per_s =>
        {
            interpreters
        }
        (Some(processes), _) => processes,
        (None, interpreters) => interpreters?,
    };
    let what = match best.model {
        Model::Processes => "a process pool",
        _ => "subinterpreters",
    };
    Some((
        best.model,
        format!(
            "{}; {what} gives {:.1}× on {} CPUs, at {:.0} µs a call beyond the call itself ({})",
            threads_held(facts),
            best.scaling,
            best.workers,
            best.overhead_us,
            crossing(facts.profile)
        ),
    ))
}

fn nothing_scales(facts: &Facts) -> Option<(Model, String)> {
    let parts: Vec<String> = facts
        .rows
        .iter()
        .filter(|row| row.model != Model::Serial)
        .map(|row| {
            format!(
                "{} {:.1}× at {:.0} µs a call beyond it",
                row.model.name(),
                row.scaling,
                row.overhead_us
            )
        })
        .collect();
    let one_cpu = facts.rows.iter().all(|row| row.workers < 2);
    Some((
        Model::Serial,
        if one_cpu {
            "one CPU: nothing runs in parallel here; make the calls in a row".into()
        } else {
            format!(
                "no model pays here for a {:.2} ms call: {}; make the calls in a row, or hand a pool bigger batches",
                facts.profile.call_ms,
                parts.join(", ")
            )
        },
    ))
}

fn threads_held(facts: &Facts) -> String {
    match (facts.row(Model::Threads), facts.profile.serial_share) {
        (Some(threads), Some(share)) => format!(
            "threads give {:.1}× (about {:.0} % of a call runs one at a time{})",
            threads.scaling,
            share * 100.0,
            if facts.profile.era == Era::FreeThreaded {
                ""
            } else {
                ": it holds the GIL"
            }
        ),
        _ => "threads were not measured".into(),
    }
}

fn crossing(profile: &Profile) -> String {
    match (profile.args_bytes, profile.result_bytes) {
        (Some(args), Some(result)) => {
            format!("{args} bytes of arguments and {result} of result pickled")
        }
        _ => "what crosses cannot be pickled".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: Model, scaling: f64, calls_per_s: f64) -> Row {
        Row {
            python: "3.11.7".into(),
            era: Era::New,
            model,
            workers: if model == Model::Serial { 1 } else { 2 },
            calls_per_s,
            scaling,
            call_ms: 2.0,
            overhead_us: 80.0,
            spread: 0.02,
        }
    }

    fn profile(cpu_share: f64, serial_share: f64) -> Profile {
        Profile {
            python: "3.11.7".into(),
            era: Era::New,
            call_ms: 2.0,
            cpu_share,
            serial_share: Some(serial_share),
            args_bytes: Some(16),
            result_bytes: Some(5),
            work: String::new(),
        }
    }

    fn pick(rows: &[Row], profile: Profile) -> Recommendation {
        recommend(rows, &[profile]).remove(0)
    }

    #[test]
    fn the_first_rule_that_applies_answers() {
        let gil_bound = [
            row(Model::Serial, 1.0, 500.0),
            row(Model::Threads, 0.95, 475.0),
            row(Model::Processes, 1.8, 900.0),
            row(Model::Interpreters, 1.9, 950.0),
        ];
        let answer = pick(&gil_bound, profile(1.0, 1.0));
        assert_eq!(
            (answer.model, answer.rule),
            (Model::Processes, "parallel elsewhere")
        );
        let mut faster = gil_bound.clone();
        faster[3].calls_per_s = 1000.0;
        let answer = pick(&faster, profile(1.0, 1.0));
        assert_eq!(
            answer.model,
            Model::Interpreters,
            "more than a tenth faster"
        );
        assert!(answer.why.contains("threads give 0.9×"), "{}", answer.why);

        let releasing = [
            row(Model::Serial, 1.0, 500.0),
            row(Model::Threads, 1.9, 950.0),
        ];
        let answer = pick(&releasing, profile(1.0, 0.05));
        assert_eq!(
            (answer.model, answer.rule),
            (Model::Threads, "threads scale")
        );

        let waiting = [
            row(Model::Serial, 1.0, 200.0),
            row(Model::Threads, 2.0, 400.0),
        ];
        let answer = pick(&waiting, profile(0.02, 0.0));
        assert_eq!(
            (answer.model, answer.rule),
            (Model::Threads, "mostly waits")
        );

        let tiny = [
            row(Model::Serial, 1.0, 500.0),
            row(Model::Threads, 0.9, 450.0),
            row(Model::Processes, 0.3, 150.0),
        ];
        let answer = pick(&tiny, profile(1.0, 1.0));
        assert_eq!(
            (answer.model, answer.rule),
            (Model::Serial, "nothing scales")
        );
    }

    #[test]
    fn one_worker_never_counts_as_scaling() {
        let mut threads = row(Model::Threads, 1.0, 500.0);
        threads.workers = 1;
        let answer = pick(
            &[row(Model::Serial, 1.0, 500.0), threads],
            profile(1.0, 1.0),
        );
        assert_eq!(answer.model, Model::Serial);
        assert!(answer.why.starts_with("one CPU"), "{}", answer.why);
    }
}
