//! `clab load`: the load generator (the README's *Load*). The essays' two clients — one timing
//! `fib(30)` again and again (`latency`), one counting tiny requests per second (`rate`) —
//! and what serious generators add: mixed classes with their own histograms and timelines,
//! an open loop on a fixed schedule without coordinated omission, thousands of idle
//! connections, HdrHistogram percentiles, per-second timelines, errors by kind, the
//! generator's own CPU use, and a versioned JSON document.
//!
//! Layers: [`plan`] (what to run), `driver` (running it), `record` (measurements),
//! [`result`] (plain-data results), [`live`] (the run as it goes), [`render`] (text).

pub(crate) mod driver;
pub mod live;
pub mod plan;
pub(crate) mod record;
pub mod render;
pub mod result;

use std::time::{Instant, SystemTime};

pub use plan::{ClassPlan, Mode, Pacing, Plan, PlanError, Window};
pub use result::{ClassResult, LoadResult};

pub use crate::load::driver::LiveCounts;
use crate::load::result::{DEADLINE_POLICY, Generator, LoadEnvironment, SCHEMA};
use crate::system::cpus::{PinError, allowed_cpus};
use crate::system::limits::{DescriptorLimit, ensure_descriptors};
use crate::system::machine::Machine;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Descriptors(#[from] DescriptorLimit),
    #[error("cannot pin the generator")]
    Pin(#[from] PinError),
}

/// A generator that used more than this share of its CPUs may itself be the bottleneck.
pub const BUSY_GENERATOR: f64 = 0.8;

/// The descriptors a run needs: closed- and open-loop connections hold two (one for the
/// deadline sweep), idle ones one, plus a margin for everything else.
fn descriptors_needed(plan: &Plan) -> u64 {
    let per_connection = |class: &ClassPlan| {
        if matches!(class.pacing, Pacing::Idle { .. }) {
            1
        } else {
            2
        }
    };
    plan.classes()
        .iter()
        .map(|class| class.connections as u64 * per_connection(class))
        .sum::<u64>()
        + 64
}

fn cpu_seconds() -> f64 {
    crate::system::cpu_time::process().as_secs_f64()
}

/// Runs `plan`, calling `each_tick` with the live counts every `tick`, and gathers the
/// result.
pub fn run(
    plan: Plan,
    tick: std::time::Duration,
    each_tick: impl FnMut(std::time::Duration, &[std::sync::Arc<LiveCounts>]),
) -> Result<LoadResult, LoadError> {
    ensure_descriptors(descriptors_needed(&plan))?;
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let (cpu_before, wall_before) = (cpu_seconds(), Instant::now());
    let recorders = driver::execute(&plan, tick, each_tick);
    let (cpu_time_s, wall_time_s) = (
        cpu_seconds() - cpu_before,
        wall_before.elapsed().as_secs_f64(),
    );
    let generator_cpus = allowed_cpus();
    let capacity = wall_time_s * generator_cpus.len().max(1) as f64;
    let generator = Generator {
        cpu_time_s,
        wall_time_s,
        cpu_utilisation: cpu_time_s / capacity,
    };
    let mut warnings = Vec::new();
    if generator.saturated() {
        warnings.push(format!(
            "the generator used {:.0} % of its {} CPU(s): it, not the server, may be what limits these numbers; \
             give it its own CPU (--cpus) or fewer clients",
            generator.cpu_utilisation * 100.0,
            generator_cpus.len()
        ));
    }
    let classes: Vec<ClassResult> = plan
        .classes()
        .iter()
        .zip(&recorders)
        .map(|(class, recorder)| ClassResult::new(class, recorder, plan.duration()))
        .collect();
    for class in &classes {
        if class.completed == 0 && !matches!(class.pacing, Pacing::Idle { interval: None }) {
            warnings.push(format!(
                "class {:?} completed no request in the measured window",
                class.name
            ));
        }
    }
    let environment = LoadEnvironment {
        machine: Machine::detect(),
        generator_cpus,
        target: plan.target().to_string(),
    };
    Ok(LoadResult {
        schema: SCHEMA,
        started_at,
        plan,
        environment,
        generator,
        deadline_policy: DEADLINE_POLICY,
        classes,
        warnings,
    })
}
