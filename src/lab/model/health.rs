//! Whether a run can be trusted. Every server, load and pinned thread a claim uses leaves a
//! [`Health`] record: where it was meant to run and where the kernel says it ran, the load's
//! errors, aborted requests and saturation, and how the server exited. A record with a problem
//! turns the claim's verdict into `inconclusive` (or `error` for a server that died) — a
//! verdict is only worth the run behind it.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::load::LoadResult;
use crate::load::record::ErrorCounts;

/// Errors above this share of a load's requests make its numbers untrustworthy.
pub const ERROR_FRACTION: f64 = 0.01;

/// One server, load or pinned thread of one experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    /// "server threads --gil new", "load on threads --gil new", "thread countdown 0", …
    pub what: String,
    pub intended_cpus: Vec<usize>,
    /// The union of the CPU sets the kernel reports for every task observed (each thread of
    /// the server, its workers and children; the load thread).
    pub actual_cpus: Vec<usize>,
    /// Load errors by kind (zero for servers and threads).
    pub errors: ErrorCounts,
    /// Requests the loads completed, to judge `errors` against.
    pub requests: u64,
    /// Requests in flight at a load's deadline, abandoned by design (at most one per
    /// connection); recorded, not judged.
    pub aborted: u64,
    pub generator_saturated: bool,
    /// How the server ended: "exit 0 after SIGTERM", "signal 9 (SIGKILL) before it was
    /// stopped", …; `None` for loads and threads.
    pub server_exit: Option<String>,
    /// What is wrong with this run, in words; empty when it is clean.
    pub problems: Vec<String>,
    /// A server that died or could not be stopped: the experiment is an error, not merely
    /// inconclusive.
    #[serde(skip)]
    pub fatal: bool,
}

impl Health {
    pub fn new(what: impl Into<String>, intended_cpus: &[usize]) -> Health {
        Health {
            what: what.into(),
            intended_cpus: intended_cpus.to_vec(),
            ..Health::default()
        }
    }

    /// Adds the CPU set read back for a task; a set other than the intended one is a
    /// placement mismatch, and one that could not be read is a problem too.
    pub fn observe(&mut self, task: &str, cpus: Option<&[usize]>) {
        let Some(cpus) = cpus else {
            self.problem(format!("{task}: its placement cannot be read back"));
            return;
        };
        self.add_actual(cpus);
        if cpus != self.intended_cpus.as_slice() {
            self.problem(format!(
                "{task} runs on CPUs [{}], not the intended [{}]",
                crate::lab::words::list(cpus),
                crate::lab::words::list(&self.intended_cpus)
            ));
        }
    }

    fn add_actual(&mut self, cpus: &[usize]) {
        let union: BTreeSet<usize> = self.actual_cpus.iter().chain(cpus).copied().collect();
        self.actual_cpus = union.into_iter().collect();
    }

    /// Takes in a later record about the same thing: CPUs, counts and problems together.
    pub(crate) fn absorb(&mut self, other: Health) {
        self.add_actual(&other.actual_cpus);
        self.errors.add(&other.errors);
        self.requests += other.requests;
        self.aborted += other.aborted;
        self.generator_saturated |= other.generator_saturated;
        self.fatal |= other.fatal;
        for problem in other.problems {
            self.problem(problem);
        }
        self.judge_errors();
    }

    /// Adds a load's errors, aborted requests and saturation.
    pub fn add_load(&mut self, result: &LoadResult) {
        for class in &result.classes {
            self.errors.add(&class.errors);
            self.requests += class.completed + class.warmup_completed;
            self.aborted += class.aborted_at_deadline;
        }
        self.judge_errors();
        if result.generator.saturated() {
            self.generator_saturated = true;
            self.problem(format!(
                "the load generator was saturated ({:.0} % of its CPU): it, not the server, may have set the rate",
                result.generator.cpu_utilisation * 100.0
            ));
        }
    }

    /// Errors are judged on the totals, so a record merged from several loads says it once.
    fn judge_errors(&mut self) {
        let errors = self.errors.total();
        self.problems.retain(|p| !p.starts_with("load errors"));
        if errors as f64 > ERROR_FRACTION * (errors + self.requests) as f64 {
            let e = &self.errors;
            self.problems.push(format!(
                "load errors: {errors} of {} requests (refused {}, reset {}, timeout {}, ERR reply {}, malformed {})",
                errors + self.requests,
                e.refused,
                e.reset,
                e.timeout,
                e.err_reply,
                e.malformed
            ));
        }
    }

    pub fn exited(&mut self, how: String, abnormal: bool) {
        if abnormal {
            self.problem(format!("the server {how}"));
            self.fatal = true;
        }
        self.server_exit = Some(how);
    }

    pub(crate) fn problem(&mut self, problem: String) {
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }
}

impl Health {
    /// The record as the report's health table shows it, in [`Health::COLUMNS`]' order.
    pub fn cells(&self) -> Vec<String> {
        let cpus = |cpus: &[usize]| crate::lab::words::list(cpus);
        vec![
            self.what.clone(),
            cpus(&self.intended_cpus),
            cpus(&self.actual_cpus),
            format!(
                "{} of {}",
                self.errors.total(),
                self.errors.total() + self.requests
            ),
            self.aborted.to_string(),
            if self.generator_saturated {
                "yes"
            } else {
                "no"
            }
            .into(),
            self.server_exit.clone().unwrap_or_else(|| "—".into()),
            if self.problems.is_empty() {
                "clean".into()
            } else {
                self.problems.join("; ")
            },
        ]
    }

    pub const COLUMNS: [&'static str; 8] = [
        "server, load or thread",
        "intended CPUs",
        "actual CPUs",
        "errors",
        "aborted at the deadline",
        "generator saturated",
        "server exit",
        "health",
    ];
}

/// What the records say about the run: `None` when every one is clean, else whether a
/// server died (an error) and the problems in one line.
pub fn judge(records: &[Health]) -> Option<(bool, String)> {
    let problems: Vec<String> = records
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.what)))
        .collect();
    if problems.is_empty() {
        return None;
    }
    Some((records.iter().any(|r| r.fatal), problems.join("; ")))
}
