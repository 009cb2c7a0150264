//! The measurements more than one experiment takes — and the fidelity matrix repeats against
//! CPython's servers: a class's rate, the median latency of closed-loop clients, the
//! tiny-request rate a server keeps when a hog joins, and a server's memory while idle
//! connections are held open. Each is one load (or the profile's repeats of one) against a
//! running server; starting and stopping the server is the caller's.

use std::time::Duration;

use crate::lab::running::process::{ChildServer, Usage};
use crate::lab::running::{Lab, LabError, Sample, class_result, p50_ms};
use crate::load::{ClassPlan, LoadResult, Pacing};

/// One load of `classes` for `window`; the rate of the class `name`, requests/s.
pub fn rate(
    lab: &Lab,
    server: &ChildServer,
    window: Duration,
    classes: Vec<ClassPlan>,
    name: &str,
) -> Result<f64, LabError> {
    let load = lab.load(server, lab.plan(server, window, classes)?)?;
    Ok(class_result(&load, name)?.rate_per_s)
}

/// One closed-loop client sending `fib 1` back to back from the start: the essays' perf2.
pub fn rapid() -> ClassPlan {
    Lab::class("rapid", 1, "fib 1", Duration::ZERO)
}

/// The [`rapid`] client's rate against `server` over the profile's window, requests/s: the
/// median of the profile's repeats.
pub fn rapid_rate(lab: &mut Lab, server: &ChildServer) -> Result<f64, LabError> {
    let window = lab.profile.window();
    let sample = lab.repeat(|lab| rate(lab, server, window, vec![rapid()], "rapid"))?;
    Ok(sample.median)
}

/// Median latency of `request` with `clients` closed-loop clients, ms: the median of the
/// profile's repeats, with their spread.
pub fn latency(
    lab: &mut Lab,
    server: &ChildServer,
    request: &str,
    clients: usize,
) -> Result<Sample, LabError> {
    let window = lab.profile.window();
    lab.repeat(|lab| {
        let plan = lab.plan(
            server,
            window,
            vec![Lab::class("clients", clients, request, Duration::ZERO)],
        )?;
        p50_ms(&lab.load(server, plan)?, "clients")
    })
}

/// The tiny-request rate before and after a hog joins, from one load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RateKept {
    pub label: String,
    pub before_per_s: f64,
    pub after_per_s: f64,
    pub kept: f64,
    /// (time in s, the rate in the 100 ms around it, requests/s).
    pub timeline: Vec<(f64, f64)>,
    pub hog_at_s: f64,
    pub hog_completed: u64,
    pub load: LoadResult,
}

/// A [`rapid`] client for `window`, and one client sending `hog` back to back from `hog_at`
/// on (whole seconds, so the per-second timeline splits exactly there).
pub fn rate_kept(
    lab: &Lab,
    server: &ChildServer,
    hog: &str,
    window: Duration,
    hog_at: Duration,
) -> Result<RateKept, LabError> {
    let plan = lab.plan(
        server,
        window,
        vec![rapid(), Lab::class("hog", 1, hog, hog_at)],
    )?;
    let load = lab.load(server, plan)?;
    let per_second: Vec<f64> = class_result(&load, "rapid")?
        .timeline
        .iter()
        .map(|second| second.completed as f64)
        .collect();
    let split = (hog_at.as_secs() as usize).min(per_second.len());
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let (before, after) = (mean(&per_second[..split]), mean(&per_second[split..]));
    if before == 0.0 {
        return Err(LabError::Measurement(format!(
            "{}: the rapid client completed nothing before the hog joined",
            server.label
        )));
    }
    Ok(RateKept {
        label: server.label.clone(),
        before_per_s: before,
        after_per_s: after,
        kept: after / before,
        // Drawn in 100 ms buckets, so the hog's arrival shows within a tenth of a second.
        timeline: class_result(&load, "rapid")?
            .completed_per_100ms
            .iter()
            .enumerate()
            .map(|(tenth, count)| (tenth as f64 / 10.0 + 0.05, *count as f64 * 10.0))
            .collect(),
        hog_at_s: hog_at.as_secs_f64(),
        hog_completed: class_result(&load, "hog")?.completed,
        load,
    })
}

/// The memory of a server before and while `connections` idle connections are open.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldMemory {
    pub before: Usage,
    pub during: Usage,
    /// The machine's kernel stacks (`KernelStack` in `/proc/meminfo`), which a process's
    /// resident memory leaves out: each thread has one, 16 KiB on x86-64.
    pub kernel_stacks_before_kib: u64,
    pub kernel_stacks_during_kib: u64,
    pub opened: u64,
    pub load: LoadResult,
}

impl HeldMemory {
    /// Resident memory per connection, KiB.
    pub fn resident_per_connection(&self) -> f64 {
        self.per_connection(|usage| usage.rss_kib)
    }

    /// Growth of one `/proc` figure per connection the server held when it was sampled
    /// (its new sockets; the connections opened, if it could not be counted), KiB.
    pub fn per_connection(&self, figure: impl Fn(&Usage) -> u64) -> f64 {
        per_connection(figure(&self.before), figure(&self.during), self.held())
    }

    /// The connections the server held at the sample: the sockets it gained.
    pub fn held(&self) -> u64 {
        match self.during.sockets.saturating_sub(self.before.sockets) {
            0 => self.opened,
            held => held,
        }
    }

    /// Kernel stack memory per connection, KiB (machine-wide, so other processes' threads
    /// starting or ending meanwhile blur it).
    pub fn kernel_stack_per_connection(&self) -> f64 {
        per_connection(
            self.kernel_stacks_before_kib,
            self.kernel_stacks_during_kib,
            self.held(),
        )
    }
}

/// Opens `connections` idle connections (plus `extra` classes) for `window`, sampling the
/// server's `/proc` every second; keeps the sample with the most sockets held (then the
/// most resident memory), so costs are divided by connections the server really holds —
/// and fails if it held fewer than nineteen in twenty.
pub fn hold(
    lab: &Lab,
    server: &ChildServer,
    connections: usize,
    extra: Vec<ClassPlan>,
    window: Duration,
) -> Result<HeldMemory, LabError> {
    let before = server.usage();
    let kernel_stacks_before_kib = kernel_stacks_kib();
    let mut kernel_stacks_during_kib = kernel_stacks_before_kib;
    let idle = ClassPlan::new(
        "idle",
        connections,
        "fib 1",
        Pacing::Idle { interval: None },
    )
    .expect("a valid request");
    let mut classes = vec![idle];
    classes.extend(extra);
    let mut during = before;
    let load = lab.load_sampling(server, lab.plan(server, window, classes)?, |_| {
        let now = server.usage();
        if (now.sockets, now.rss_kib) >= (during.sockets, during.rss_kib) {
            during = now;
            kernel_stacks_during_kib = kernel_stacks_kib();
        }
    })?;
    let held = HeldMemory {
        before,
        during,
        kernel_stacks_before_kib,
        kernel_stacks_during_kib,
        opened: class_result(&load, "idle")?.connections_opened,
        load,
    };
    // A cost per connection from a few hundred held would claim what was not measured (an
    // accept queue too short for the burst once held asyncio to a tenth of ten thousand).
    if held.held() < connections as u64 * 19 / 20 {
        return Err(LabError::Measurement(format!(
            "{}: held {} of {connections} idle connections at the fullest sample",
            server.label,
            held.held()
        )));
    }
    Ok(held)
}

/// The whole machine's kernel stacks now, in KiB (0 when unreadable).
fn kernel_stacks_kib() -> u64 {
    use procfs::Current;
    procfs::Meminfo::current()
        .ok()
        .and_then(|info| info.kernel_stack)
        .map_or(0, |bytes| bytes / 1024)
}

/// KiB per connection between two samples.
pub fn per_connection(before: u64, during: u64, connections: u64) -> f64 {
    during.saturating_sub(before) as f64 / connections.max(1) as f64
}

/// A short closed-loop load's window, by profile: the fidelity matrix makes some sixty loads.
pub fn short_window(lab: &Lab) -> Duration {
    Duration::from_millis(lab.profile.pick(500, 800, 1000))
}

/// The warm-up before a short window (and before the two-client loads' longer ones).
pub fn short_warmup(lab: &Lab) -> Duration {
    Duration::from_millis(lab.profile.pick(200, 300, 500))
}

/// A plan with the short window and its warm-up.
pub fn short_plan(
    lab: &Lab,
    server: &ChildServer,
    classes: Vec<ClassPlan>,
) -> Result<crate::load::Plan, LabError> {
    lab.plan_warmed(server, short_warmup(lab), short_window(lab), classes)
}

/// `clients` closed-loop clients sending `request` for the short window: their rate.
pub fn short_rate(
    lab: &Lab,
    server: &ChildServer,
    clients: usize,
    request: &str,
) -> Result<f64, LabError> {
    short_rate_on(lab, server, lab.placement.load.clone(), clients, request)
}

/// [`short_rate`] with the clients on `cpus`.
pub fn short_rate_on(
    lab: &Lab,
    server: &ChildServer,
    cpus: Vec<usize>,
    clients: usize,
    request: &str,
) -> Result<f64, LabError> {
    let class = Lab::class("load", clients, request, Duration::ZERO);
    let plan = short_plan(lab, server, vec![class])?;
    let load = lab.load_sampling_on(server, plan, cpus, |_| {})?;
    Ok(class_result(&load, "load")?.rate_per_s)
}
