//! Keeping the [`Health`] records of a run: the log its servers, loads and pinned threads write
//! to, and where the kernel says a thread or process runs (`Cpus_allowed_list`, read back from
//! `/proc`). The record itself is data, in the model.

use std::sync::{Arc, Mutex};

pub use crate::lab::model::health::{ERROR_FRACTION, Health, judge};

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
