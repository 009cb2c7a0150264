//! The result of a load run as plain data: what `--json` writes (schema
//! `schema/load-result.v1.json`) and what the text summary renders.

use std::time::Duration;

use serde::Serialize;

use crate::system::machine::Machine;

use crate::histogram::Percentiles;
use crate::load::plan::{ClassPlan, Pacing, Plan};
use crate::load::record::{ErrorCounts, Recorder, TimelineSecond};

/// The value of the document's `schema` field; bumped on any incompatible change.
pub const SCHEMA: &str = "clab-load/1";

/// What happens to requests still in flight when the run ends.
pub const DEADLINE_POLICY: &str = "requests in flight at the deadline are abandoned: they count as \
    aborted_at_deadline, never in latency, rate or errors";

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub schema: &'static str,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    pub plan: Plan,
    pub environment: LoadEnvironment,
    pub generator: Generator,
    pub deadline_policy: &'static str,
    pub classes: Vec<ClassResult>,
    /// Anything that makes the numbers less trustworthy, in words.
    pub warnings: Vec<String>,
}

impl LoadResult {
    /// Failed requests over every class, in the measured window.
    pub fn errors(&self) -> u64 {
        self.classes.iter().map(|class| class.errors.total()).sum()
    }

    /// Requests were sent and not one was answered — in the warm-up or the measured window.
    pub fn every_request_failed(&self) -> bool {
        let answered: u64 = self
            .classes
            .iter()
            .map(|class| class.completed + class.warmup_completed)
            .sum();
        answered == 0 && self.errors() > 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadEnvironment {
    #[serde(flatten)]
    pub machine: Machine,
    /// The CPUs the generator was allowed to run on.
    pub generator_cpus: Vec<usize>,
    pub target: String,
}

/// The generator's own cost, to tell when it, not the server, is the bottleneck.
#[derive(Debug, Clone, Serialize)]
pub struct Generator {
    /// User plus system CPU time of the generator process during the run.
    pub cpu_time_s: f64,
    pub wall_time_s: f64,
    /// `cpu_time_s` over what its allowed CPUs could have given it in the wall time.
    pub cpu_utilisation: f64,
}

impl Generator {
    /// Busy enough that it, not the server, may be what limits the numbers.
    pub fn saturated(&self) -> bool {
        self.cpu_utilisation > super::BUSY_GENERATOR
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassResult {
    pub name: String,
    pub connections: usize,
    pub request: String,
    pub pacing: Pacing,
    pub start_after_s: f64,
    /// Requests answered within the measured window.
    pub completed: u64,
    /// `completed` over the part of the window in which the class ran.
    pub rate_per_s: f64,
    /// Closed loop: send to reply. Open loop: due time to reply.
    pub latency_ms: Percentiles,
    /// Open loop only: send to reply.
    pub service_time_ms: Option<Percentiles>,
    pub errors: ErrorCounts,
    /// Open loop: sends more than 1 ms behind their due time.
    pub late_sends: u64,
    pub warmup_completed: u64,
    pub aborted_at_deadline: u64,
    pub connections_opened: u64,
    pub timeline: Vec<TimelineSecond>,
    /// Replies completed in each 100 ms of the window.
    pub completed_per_100ms: Vec<u64>,
}

impl ClassResult {
    pub fn new(class: &ClassPlan, recorder: &Recorder, duration: Duration) -> ClassResult {
        let active = duration.saturating_sub(class.start_after).as_secs_f64();
        let completed = recorder.completed();
        ClassResult {
            name: class.name.clone(),
            connections: class.connections,
            request: class.request.clone(),
            pacing: class.pacing,
            start_after_s: class.start_after.as_secs_f64(),
            completed,
            rate_per_s: if active > 0.0 {
                completed as f64 / active
            } else {
                0.0
            },
            latency_ms: recorder.latency(),
            service_time_ms: recorder.service_time(),
            errors: recorder.errors(),
            late_sends: recorder.late_sends,
            warmup_completed: recorder.warmup_completed,
            aborted_at_deadline: recorder.aborted_at_deadline,
            connections_opened: recorder.connected,
            timeline: recorder.timeline(duration.as_secs_f64().ceil() as usize),
            completed_per_100ms: recorder
                .per_100ms((duration.as_secs_f64() * 10.0).ceil() as usize),
        }
    }
}
