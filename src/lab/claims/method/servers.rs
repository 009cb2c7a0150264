//! The pairs' methods that measure a server: `python/clab_server.py` on CPython, `clab serve`
//! configured as the subject on the emulation, the same load against each.

use std::time::Duration;

use super::{Number, On};
use crate::lab::claims::metrics::{self, bands};
use crate::lab::model::Era;
use crate::lab::running::measure::{self, RateKept};
use crate::lab::running::process::ChildServer;
use crate::lab::running::{Lab, LabError, Sample, class_result, mean_latency_ms};
use crate::lab::words::{list, seconds as seconds_words};
use crate::server::Model;
use crate::server::offload::Target;

/// The two-client slowdown on a `model` server: `threads` (one interpreter), or
/// `interpreters` (the work in subinterpreters with a GIL each, 3.12+).
pub(super) fn two_clients(lab: &mut Lab, on: On, model: Model) -> Result<Number, LabError> {
    let run = clients_run(lab, on, model, &[1, 2])?;
    Ok(run.number(on))
}

/// A server's mean latency (by Little's law) by number of clients, and the two-client
/// slowdown of each repeat.
#[derive(Debug, Clone)]
pub(crate) struct ClientsRun {
    pub label: String,
    pub model: Model,
    pub request: String,
    /// (clients, the mean latency of each repeat, ms), one per count.
    pub latencies: Vec<(usize, Sample)>,
    /// Latency with two clients ÷ with one, each repeat's pair of loads.
    pub slowdowns: Vec<f64>,
}

impl ClientsRun {
    /// The pair's number: the median slowdown, on threads or on subinterpreters.
    pub fn number(&self, on: On) -> Number {
        let number = Number::new(
            on,
            match self.model {
                Model::Interpreters => metrics::TWO_CLIENTS_INTERPRETERS,
                _ => metrics::TWO_CLIENTS_THREADS,
            },
            bands::TWO_CLIENTS,
            self.slowdowns.clone(),
            format!(
                "`{}`: {:.1} ms with one client, {:.1} ms with two, the median of {} pairs of loads; {}",
                self.request,
                self.latencies[0].1.median,
                self.latencies[1].1.median,
                self.slowdowns.len(),
                self.label
            ),
        );
        if self.model == Model::Interpreters {
            number.per_interpreter()
        } else {
            number
        }
    }
}

/// Closed-loop clients sending a `fib` request of about 30 ms on this side to a `model` server
/// on every server CPU, `counts[0]` clients, then `counts[1]`, … for a window of about seventy
/// requests each, the whole sequence repeated as the profile asks so a slow spell weighs on
/// both sides of a slowdown; pools have four workers, so no client waits for one.
pub(crate) fn clients_run(
    lab: &mut Lab,
    on: On,
    model: Model,
    counts: &[usize],
) -> Result<ClientsRun, LabError> {
    lab.step(&format!("{}: clients, {model}", on.label()))?;
    let request = on.fib_request(Duration::from_millis(30));
    let all = lab.placement.server_all.clone();
    let server = on.serve_workers(lab, model, 4, &all)?;
    let repeats = lab.profile.pick(1, 2, 3);
    // The mean latency is the clients over the rate of requests completed in the window: in
    // the short window, 800 ms, 26 of them, so each slowdown was a ratio of small counts
    // (21/11 = 1.91, 24/11 = 2.18) and moved by ±5 % with one request more or less.
    let (warmup, window) = (
        measure::short_warmup(lab),
        Duration::from_millis(lab.profile.pick(1000, 2000, 3000)),
    );
    let mut by_count = vec![Vec::new(); counts.len()];
    for _ in 0..repeats {
        for (index, &clients) in counts.iter().enumerate() {
            let plan = lab.plan_warmed(
                &server,
                warmup,
                window,
                vec![Lab::class("clients", clients, &request, Duration::ZERO)],
            )?;
            by_count[index].push(mean_latency_ms(&lab.load(&server, plan)?, "clients")?);
        }
    }
    let label = server.label.clone();
    server.stop();
    let slowdowns = by_count[1]
        .iter()
        .zip(&by_count[0])
        .map(|(two, one)| two / one)
        .collect();
    Ok(ClientsRun {
        label,
        model,
        request,
        latencies: counts
            .iter()
            .zip(by_count)
            .map(|(&clients, latencies)| (clients, Sample::new(latencies)))
            .collect(),
        slowdowns,
    })
}

/// One convoy server's run beside a hog, and its number.
pub(crate) struct ConvoyRun {
    pub number: Number,
    pub run: RateKept,
}

pub(super) fn convoy(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    Ok(convoy_runs(lab, on)?
        .into_iter()
        .map(|convoy| convoy.number)
        .collect())
}

/// The tiny-request rate kept when a hog joins, on each server this side has: threads, the
/// essays' threshold server offloading to a thread pool and to a process pool, a process
/// pool, and subinterpreters with a GIL each.
pub(crate) fn convoy_runs(lab: &mut Lab, on: On) -> Result<Vec<ConvoyRun>, LabError> {
    let hog = on.fib_request(Duration::from_millis(60));
    let one = lab.placement.server_one.clone();
    let seconds = lab.profile.pick(2, 2, 4);
    let (window, hog_at) = (
        Duration::from_secs(seconds),
        Duration::from_secs(seconds / 2),
    );
    // The essays' threshold server on each side: fib n > 15 goes to a pool of two.
    let servers = [
        (metrics::CONVOY_THREADS, Model::Threads, None),
        (
            metrics::CONVOY_HYBRID_THREADS,
            Model::Hybrid,
            Some(Target::Pool),
        ),
        (
            metrics::CONVOY_HYBRID_PROCESSES,
            Model::Hybrid,
            Some(Target::Procpool),
        ),
        (metrics::CONVOY_PROCPOOL, Model::Procpool, None),
        (metrics::CONVOY_INTERPRETERS, Model::Interpreters, None),
    ];
    let mut runs = Vec::new();
    for (metric, model, offload) in servers {
        if !on.wants(metric) || (model == Model::Interpreters && !on.own_gil_subinterpreters()) {
            continue;
        }
        lab.step(&format!("{}: convoy, {metric}", on.label()))?;
        let server = match (model, offload) {
            (_, Some(to)) => on.serve_hybrid(lab, 15, to, &one)?,
            (Model::Threads, None) => on.serve(lab, (model, &[]), |spec| on.traced(spec), &one)?,
            (_, None) => on.serve_workers(lab, model, 2, &one)?,
        };
        let run = measure::rate_kept(lab, &server, &hog, window, hog_at)?;
        server.stop();
        let number = Number::new(
            on,
            metric,
            bands::CONVOY,
            vec![run.kept],
            format!(
                "`fib 1` per second {:.0} → {:.0} when a `{hog}` hog joins at {} of {}; server on CPU {}",
                run.before_per_s,
                run.after_per_s,
                seconds_words(hog_at),
                seconds_words(window),
                list(&one)
            ),
        );
        let number = if model == Model::Interpreters {
            number.per_interpreter()
        } else {
            number
        };
        runs.push(ConvoyRun { number, run });
    }
    Ok(runs)
}

pub(super) fn switch_interval(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    Ok(switch_rates(lab, on)?.number(on))
}

/// The slope of a least-squares line through the points on log–log axes.
pub(crate) fn slope(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let (mean_x, mean_y) = (
        logs.iter().map(|p| p.0).sum::<f64>() / n,
        logs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = logs.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = logs.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    covariance / variance
}

/// The tiny-request rate beside a hog at each switch interval.
#[derive(Debug, Clone)]
pub(crate) struct SwitchRates {
    pub hog: String,
    /// (switch interval in ms, tiny requests per second).
    pub rates: Vec<(f64, f64)>,
}

impl SwitchRates {
    /// The pair's number: the slope of the rates on log–log axes.
    pub fn number(&self, on: On) -> Number {
        let words = self
            .rates
            .iter()
            .map(|(ms, rate)| format!("{ms} ms: {rate:.0}/s"))
            .collect::<Vec<_>>()
            .join(", ");
        Number::new(
            on,
            metrics::SWITCH_SLOPE,
            bands::SWITCH_SLOPE,
            vec![slope(&self.rates)],
            format!("`fib 1` beside a `{}` hog: {words}", self.hog),
        )
    }
}

/// A `fib 1` client and a hog of about 60 ms on this side together against a threads server on
/// one CPU, its switch interval set to each of the profile's; a run in which no tiny request
/// got through is an error, not a point.
pub(crate) fn switch_rates(lab: &mut Lab, on: On) -> Result<SwitchRates, LabError> {
    let intervals_ms: Vec<f64> = lab.profile.pick(
        vec![1.0, 5.0, 20.0],
        vec![0.5, 1.0, 5.0, 20.0],
        vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0],
    );
    let hog = on.fib_request(Duration::from_millis(60));
    let one = lab.placement.server_one.clone();
    let mut rates = Vec::new();
    for &ms in &intervals_ms {
        lab.step(&format!("{}: switch interval {ms} ms", on.label()))?;
        let seconds = format!("{}", ms / 1e3);
        let server = on.serve(
            lab,
            (Model::Threads, &["--switch-interval", &seconds]),
            |spec| spec.option("--switch-interval", format!("{}us", (ms * 1e3) as u64)),
            &one,
        )?;
        let plan = measure::short_plan(
            lab,
            &server,
            vec![measure::rapid(), Lab::class("hog", 1, &hog, Duration::ZERO)],
        )?;
        let rate = class_result(&lab.load(&server, plan)?, "rapid")?.rate_per_s;
        server.stop();
        if rate <= 0.0 {
            return Err(LabError::Measurement(format!(
                "{}: no tiny request got through beside the hog at a {ms} ms switch interval",
                on.label()
            )));
        }
        rates.push((ms, rate));
    }
    Ok(SwitchRates { hog, rates })
}

pub(super) fn procpool_overhead(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    Ok(pool_costs(lab, on)?
        .iter()
        .flat_map(|cost| [cost.number(on), cost.added_number(on)])
        .collect())
}

/// A `fib 1` client's rate without a hop and with each request handed to a worker.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PoolCost {
    pub metric: &'static str,
    /// The metric of the time the hop adds.
    pub added_metric: &'static str,
    /// Computed where the request arrives (the connection's thread, or the event loop): the
    /// median of the pairs'.
    pub inline_per_s: f64,
    /// Handed to the worker: the median of the pairs'.
    pub pooled_per_s: f64,
    /// Each interleaved pair's rates, inline and handed to the worker.
    pub pairs: Vec<(f64, f64)>,
    /// What the hop costs on this side, in words.
    pub why: String,
}

impl PoolCost {
    fn new(
        (metric, added_metric): (&'static str, &'static str),
        pairs: Vec<(f64, f64)>,
        why: &str,
    ) -> PoolCost {
        let median =
            |side: fn(&(f64, f64)) -> f64| Sample::new(pairs.iter().map(side).collect()).median;
        PoolCost {
            metric,
            added_metric,
            inline_per_s: median(|pair| pair.0),
            pooled_per_s: median(|pair| pair.1),
            pairs,
            why: why.into(),
        }
    }

    /// Each pair's share of the rate the hop costs.
    fn costs(&self) -> Vec<f64> {
        let share = |(inline, pooled): &(f64, f64)| 1.0 - pooled / inline;
        self.pairs.iter().map(share).collect()
    }

    /// Each pair's µs the hop adds to a request.
    fn added_us(&self) -> Vec<f64> {
        let added = |(inline, pooled): &(f64, f64)| 1e6 / pooled - 1e6 / inline;
        self.pairs.iter().map(added).collect()
    }

    /// The share of the rate the hop costs: the median of the pairs'.
    pub fn cost(&self) -> f64 {
        Sample::new(self.costs()).median
    }

    pub fn number(&self, on: On) -> Number {
        let number = Number::new(
            on,
            self.metric,
            bands::PROCPOOL_COST,
            self.costs(),
            format!(
                "`fib 1` per second {:.0} inline → {:.0} handed to the worker (adds {:.0} µs a request: {}); the median of {} interleaved pairs",
                self.inline_per_s,
                self.pooled_per_s,
                1e6 / self.pooled_per_s - 1e6 / self.inline_per_s,
                self.why,
                self.pairs.len()
            ),
        );
        self.in_its_era(number)
    }

    /// The µs the hop adds to a request: the median of the pairs'.
    pub fn added_number(&self, on: On) -> Number {
        let number = Number::new(
            on,
            self.added_metric,
            bands::HOP_ADDED,
            self.added_us(),
            format!(
                "1 ÷ rate handed to the worker − 1 ÷ rate inline ({:.0} and {:.0} `fib 1` per second); the median of {} interleaved pairs",
                self.pooled_per_s,
                self.inline_per_s,
                self.pairs.len()
            ),
        );
        self.in_its_era(number)
    }

    fn in_its_era(&self, number: Number) -> Number {
        if self.metric == metrics::INTERPRETER_HOP_COST {
            number.per_interpreter()
        } else {
            number
        }
    }
}

/// What handing each tiny request to the side's parallel worker costs: a process pool of two
/// against threads; with a GIL per interpreter, two subinterpreters; without a GIL, the
/// threshold server (an event loop) handing every request to a pool of two threads against
/// the same server computing each itself. Every server, and the client, on one CPU.
pub(crate) fn pool_costs(lab: &mut Lab, on: On) -> Result<Vec<PoolCost>, LabError> {
    lab.step(&format!("{}: process-pool overhead", on.label()))?;
    let beside;
    let on = match on {
        On::Emulation(emulated) => {
            beside = emulated.clients_beside();
            On::Emulation(&beside)
        }
        cpython => cpython,
    };
    let workers =
        |model| move |lab: &mut Lab, cpus: &[usize]| on.serve_workers(lab, model, 2, cpus);
    let mut costs = Vec::new();
    if on.wants(metrics::PROCESS_POOL_COST) {
        let why = match on {
            On::CPython(_) => "pickling and the executor's own threads, all under the GIL",
            On::Emulation(_) => "a pipe round trip and the interpreter's measured hop",
        };
        let pair = interleaved_rates(lab, workers(Model::Threads), workers(Model::Procpool))?;
        costs.push(PoolCost::new(
            (metrics::PROCESS_POOL_COST, metrics::PROCESS_POOL_HOP),
            pair,
            why,
        ));
    }
    if on.own_gil_subinterpreters() && on.wants(metrics::INTERPRETER_HOP_COST) {
        lab.step(&format!("{}: subinterpreter hop", on.label()))?;
        let why = match on {
            On::CPython(_) => "entering a subinterpreter and copying the request and the reply",
            On::Emulation(_) => "a hand-off to an interpreter's thread and the copies",
        };
        let pair = interleaved_rates(lab, workers(Model::Threads), workers(Model::Interpreters))?;
        costs.push(PoolCost::new(
            (metrics::INTERPRETER_HOP_COST, metrics::INTERPRETER_HOP),
            pair,
            why,
        ));
    }
    if on.era() == Era::FreeThreaded && on.wants(metrics::THREAD_POOL_COST) {
        lab.step(&format!("{}: thread-pool hop", on.label()))?;
        let hybrid = |threshold: u32| {
            move |lab: &mut Lab, cpus: &[usize]| on.serve_hybrid(lab, threshold, Target::Pool, cpus)
        };
        let pair = interleaved_rates(lab, hybrid(1_000), hybrid(0))?;
        let why = "a hand-off to a pool thread and back to the event loop";
        costs.push(PoolCost::new(
            (metrics::THREAD_POOL_COST, metrics::THREAD_POOL_HOP),
            pair,
            why,
        ));
    }
    Ok(costs)
}

/// A `fib 1` client's rate against two servers on the servers' CPU, started together and
/// loaded in turn — inline, pooled, inline, pooled, … as many pairs as the profile repeats —
/// so a slow spell of the machine weighs on both sides of a pair.
///
/// The client shares the servers' CPU: the round trip is then CPU work (the client's and
/// the server's), not a wake-up across cores. Across cores, the hop's share is hop ÷ (wake-up
/// latency + hop), and that latency is the host's (about 70 µs on one host, 190 µs on
/// another), so the same pools cost the rate differently from host to host.
fn interleaved_rates(
    lab: &mut Lab,
    inline: impl FnOnce(&mut Lab, &[usize]) -> Result<ChildServer, LabError>,
    pooled: impl FnOnce(&mut Lab, &[usize]) -> Result<ChildServer, LabError>,
) -> Result<Vec<(f64, f64)>, LabError> {
    let one = lab.placement.server_one.clone();
    let inline = inline(lab, &one)?;
    let pooled = pooled(lab, &one)?;
    let pairs = (0..lab.profile.pick(1, 3, 5))
        .map(|_| {
            Ok((
                measure::short_rate_on(lab, &inline, one.clone(), 1, "fib 1")?,
                measure::short_rate_on(lab, &pooled, one.clone(), 1, "fib 1")?,
            ))
        })
        .collect::<Result<Vec<_>, LabError>>()?;
    inline.stop();
    pooled.stop();
    Ok(pairs)
}

pub(super) fn c10k(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    Ok(idle_run(lab, on, Model::Eventloop)?.number(on))
}

/// One server: a busy client's rate alone and beside thousands of idle connections, and
/// what those cost.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct IdleRun {
    pub label: String,
    pub alone_per_s: f64,
    pub beside_per_s: f64,
    /// Resident memory per idle connection, KiB.
    pub resident_kib: f64,
    /// The kernel stacks per idle connection that resident memory leaves out, KiB.
    pub kernel_stack_kib: f64,
    pub threads: u64,
    /// Idle connections the client opened.
    pub opened: u64,
    /// Of those, the ones the server held when its memory was sampled.
    pub held: u64,
    /// Idle connections asked for.
    pub connections: usize,
}

impl IdleRun {
    pub fn kept(&self) -> f64 {
        self.beside_per_s / self.alone_per_s
    }

    /// Memory per connection: resident plus the kernel stacks resident memory leaves out.
    pub fn cost_kib(&self) -> f64 {
        self.resident_kib + self.kernel_stack_kib
    }

    /// The pair's number: an event loop's resident memory per idle connection.
    pub fn number(&self, on: On) -> Number {
        Number::new(
            on,
            metrics::C10K_PER_CONNECTION,
            bands::C10K,
            vec![self.resident_kib],
            format!(
                "{} of {} idle connections held beside a `fib 1` client; {}; the band is a cost: the event loop may cost up to twice asyncio's",
                self.held, self.connections, self.label
            ),
        )
    }
}

/// A `fib 1` client alone for the window, then beside the profile's idle connections for the
/// window, against a `model` server on one CPU: an event loop (asyncio on CPython), threads
/// (with 256 KiB stacks, so ten thousand fit any machine) or the async runtime.
pub(crate) fn idle_run(lab: &mut Lab, on: On, model: Model) -> Result<IdleRun, LabError> {
    lab.step(&format!("{}: idle connections, {model}", on.label()))?;
    let connections = lab.profile.pick(2_000, 10_000, 10_000);
    let window = Duration::from_millis(lab.profile.pick(1_500, 2_000, 3_000));
    let one = lab.placement.server_one.clone();
    let server = match on {
        On::CPython(python) if model == Model::Eventloop => {
            lab.serve_cpython(python, &["--model", "asyncio"], &one)?
        }
        On::CPython(python) => {
            return Err(LabError::Measurement(format!(
                "{}: idle connections are measured on asyncio only, not {model}",
                python.label()
            )));
        }
        On::Emulation(emulated) => {
            // Room for every idle connection and the busy client, whatever the default cap.
            let spec = emulated
                .spec(model)
                .quiet_option("--max-connections", connections + 100);
            let spec = match model {
                Model::Threads => spec.option("--thread-stack", "256k"),
                _ => spec,
            };
            lab.serve(&spec, &one)?
        }
    };
    let alone = measure::rate(lab, &server, window, vec![measure::rapid()], "rapid")?;
    let held = measure::hold(lab, &server, connections, vec![measure::rapid()], window)?;
    let label = server.label.clone();
    server.stop();
    Ok(IdleRun {
        label,
        alone_per_s: alone,
        beside_per_s: class_result(&held.load, "rapid")?.rate_per_s,
        resident_kib: held.resident_per_connection(),
        kernel_stack_kib: held.kernel_stack_per_connection(),
        threads: held.during.threads,
        opened: held.opened,
        held: held.held(),
        connections,
    })
}

/// The I/O-bound load: sixteen clients, each request a 20 ms wait without CPU.
pub(crate) const CLIENTS: usize = 16;
pub(crate) const REQUEST: &str = "sleep 20";
/// Every client's request answered as soon as its wait is over: 16 × 50 requests/s.
pub(crate) const IDEAL_RATE: f64 = CLIENTS as f64 * 50.0;

pub(super) fn io_bound(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    let run = io_run(lab, on, Model::Threads)?;
    Ok(io_bound_share(on, &run))
}

/// One server overlapping [`CLIENTS`] waiting clients: its rate, the CPU it used
/// and its memory at the peak of the load.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct IoRun {
    pub label: String,
    pub rate_per_s: f64,
    pub cpu_ms: f64,
    /// The highest PSS sampled once a second while the clients were waiting.
    pub peak_pss_kib: u64,
    pub processes: usize,
}

/// The clients sending [`REQUEST`] for the profile's window to a `model` server on
/// one CPU, its memory sampled each second of the load; a pool has one worker per client.
pub(crate) fn io_run(lab: &mut Lab, on: On, model: Model) -> Result<IoRun, LabError> {
    lab.step(&format!("{}: I/O-bound clients, {model}", on.label()))?;
    let one = lab.placement.server_one.clone();
    let server = on.serve_workers(lab, model, CLIENTS, &one)?;
    // Workers start lazily on some models: one request each way first.
    server.ask(REQUEST)?;
    let before = server.usage();
    let mut peak = before;
    let plan = lab.plan(
        &server,
        lab.profile.window(),
        vec![Lab::class("clients", CLIENTS, REQUEST, Duration::ZERO)],
    )?;
    let result = lab.load_sampling(&server, plan, |_| {
        let now = server.usage();
        if now.pss_kib > peak.pss_kib {
            peak = now;
        }
    })?;
    let after = server.usage();
    let label = server.label.clone();
    server.stop();
    Ok(IoRun {
        label,
        rate_per_s: class_result(&result, "clients")?.rate_per_s,
        cpu_ms: (after.cpu_s - before.cpu_s) * 1e3,
        peak_pss_kib: peak.pss_kib,
        processes: peak.processes,
    })
}

/// A threads server's run as the pair's number: its share of the ideal rate.
pub(crate) fn io_bound_share(on: On, run: &IoRun) -> Number {
    Number::new(
        on,
        metrics::IO_BOUND_SHARE,
        bands::IO_BOUND,
        vec![run.rate_per_s / IDEAL_RATE],
        format!(
            "{:.0} requests/s of an ideal {:.0}/s; {} clients sending `{}`",
            run.rate_per_s, IDEAL_RATE, CLIENTS, REQUEST
        ),
    )
}

/// A `fib 1` client's rate against the server `start` starts on the servers' CPU.
pub(crate) fn pool_rate(
    lab: &mut Lab,
    start: impl FnOnce(&mut Lab, &[usize]) -> Result<ChildServer, LabError>,
) -> Result<f64, LabError> {
    let one = lab.placement.server_one.clone();
    let server = start(lab, &one)?;
    let rate = measure::short_rate_on(lab, &server, one, 1, "fib 1")?;
    server.stop();
    Ok(rate)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slope_of_a_power_law_is_its_exponent() {
        let points: Vec<(f64, f64)> = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|x: &f64| (*x, 100.0 / x))
            .collect();
        assert!((super::slope(&points) + 1.0).abs() < 1e-9);
    }
}
