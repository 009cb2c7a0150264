//! Whether a run can be trusted. Every server, load and pinned thread an experiment uses
//! leaves a [`Health`] record: where it was meant to run and where the kernel says it ran
//! (`Cpus_allowed_list`, read back from `/proc`), the load's errors, aborted requests and
//! saturation, and how the server exited. A record with a problem turns the experiment's
//! verdict into `inconclusive` (or `error` for a server that died) — a verdict is only worth
//! the run behind it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

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
    fn absorb(&mut self, other: Health) {
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

    fn problem(&mut self, problem: String) {
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

/// The records of the experiment being run, shared with its servers and threads.
#[derive(Debug, Clone, Default)]
pub struct HealthLog(Arc<Mutex<Vec<Health>>>);

impl HealthLog {
    /// Starts a record; the index updates it later.
    pub fn open(&self, record: Health) -> usize {
        let mut records = self.lock();
        records.push(record);
        records.len() - 1
    }

    pub fn update(&self, index: usize, change: impl FnOnce(&mut Health)) {
        if let Some(record) = self.lock().get_mut(index) {
            change(record);
        }
    }

    /// Adds `record`, merged into an earlier one about the same thing and CPUs (a thread
    /// started once per repeat, or the loads against one server, are one record).
    pub fn add(&self, record: Health) {
        let mut records = self.lock();
        match records
            .iter_mut()
            .find(|r| r.what == record.what && r.intended_cpus == record.intended_cpus)
        {
            Some(existing) => existing.absorb(record),
            None => records.push(record),
        }
    }

    /// Pins the calling thread to `cpus`, reads its placement back and records it as `what`.
    pub fn pin_thread(&self, what: &str, cpus: &[usize]) {
        let mut record = Health::new(format!("thread {what}"), cpus);
        if let Err(error) = crate::system::cpus::pin(cpus) {
            record.problem(format!("cannot pin: {error}"));
        }
        record.observe(what, this_thread_cpus().as_deref());
        self.add(record);
    }

    /// Every record so far, leaving the log empty for the next experiment.
    pub fn take(&self) -> Vec<Health> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Health>> {
        // A panic elsewhere cannot leave a Vec of records half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The calling thread's CPUs as the kernel reports them.
pub fn this_thread_cpus() -> Option<Vec<usize>> {
    let tid = nix::unistd::gettid().as_raw();
    let process = procfs::process::Process::myself().ok()?;
    cpus_allowed(process.task_from_tid(tid).ok()?.status().ok()?)
}

/// A process's CPUs as the kernel reports them.
pub fn process_cpus(pid: i32) -> Option<Vec<usize>> {
    cpus_allowed(procfs::process::Process::new(pid).ok()?.status().ok()?)
}

/// The CPUs of a task's `Cpus_allowed_list`.
pub fn cpus_allowed(status: procfs::process::Status) -> Option<Vec<usize>> {
    let ranges = status.cpus_allowed_list?;
    Some(
        ranges
            .into_iter()
            .flat_map(|(first, last)| first as usize..=last as usize)
            .collect(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_its_own_cpus() {
        let pid = std::process::id() as i32;
        assert_eq!(
            process_cpus(pid),
            Some(crate::system::cpus::allowed_cpus()),
            "the main thread's set, unpinned"
        );
    }

    #[test]
    fn a_pinned_thread_reads_its_placement_back() {
        let log = HealthLog::default();
        let allowed = crate::system::cpus::allowed_cpus();
        let first = allowed[0];
        std::thread::spawn({
            let log = log.clone();
            move || log.pin_thread("probe", &[first])
        })
        .join()
        .unwrap();
        let records = log.take();
        assert_eq!(records[0].actual_cpus, vec![first]);
        assert!(judge(&records).is_none(), "{records:?}");
    }

    #[test]
    fn a_mismatch_a_dead_server_and_errors_are_problems() {
        let mut placed = Health::new("server x", &[0]);
        placed.observe("task 12", Some(&[0, 1]));
        let mut unread = Health::new("thread y", &[0]);
        unread.observe("thread y", None);
        assert!(unread.problems[0].contains("cannot be read back"));
        assert_eq!(placed.actual_cpus, vec![0, 1]);
        let mut died = Health::new("server y", &[0]);
        died.exited("exited by itself: signal 9".into(), true);
        let (fatal, why) = judge(&[placed.clone(), died]).unwrap();
        assert!(fatal);
        assert!(
            why.contains("not the intended") && why.contains("signal 9"),
            "{why}"
        );
        assert!(!judge(&[placed]).unwrap().0);
    }
}
