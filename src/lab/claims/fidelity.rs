//! The fidelity pairs: each claim CPython can run, measured by one method on every real
//! interpreter found and on the emulation configured to stand for it (the same GIL kind, its
//! switch points, its measured tick), in the same placement, and paired under a band fixed
//! before the run. The method is written once per claim, for one [`On`] — an interpreter or
//! an emulated configuration — so the eras table's cells for an era no interpreter stands for
//! are measured by it too ([`on_eras_without_python`]), on the emulation's own configuration
//! of that era. The `cpython` claim judges the pairs all the claims of a run measured.
//!
//! Servers are `python/clab_server.py` and `clab serve`; in-process programs are
//! `python/clab_bench.py` and the emulated GIL on threads of the lab's own process.

use std::time::{Duration, Instant};

use crate::gil::{GilConfig, PythonThread, Variant};
use crate::lab::claims::experiment::Report;
use crate::lab::claims::metrics::{self, Pair, bands};
use crate::lab::claims::procpool_overhead::pool_rate;
use crate::lab::claims::{io_bound, long_instruction, race, switch_interval};
use crate::lab::model::eras::EraClaim;
use crate::lab::model::outcome::{Band, Check, Fidelity, Verdict};
use crate::lab::model::{Era, Measurement, Subject};
use crate::lab::running::health::HealthLog;
use crate::lab::running::measure::{self, RateKept};
use crate::lab::running::process::ChildServer;
use crate::lab::running::pythons::{Python, bench};
use crate::lab::running::setups::fib_n_for;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, Sample, class_result, p50_ms};
use crate::lab::words::{list, seconds as seconds_words};
use crate::server::Model;
use crate::server::offload::Target;
use crate::work::spin;

/// `pair`'s metrics on every interpreter the lab found, each beside its emulation; an
/// interpreter that could not be measured is an error check naming it, and the others go on.
pub fn on_every_python(lab: &mut Lab, pair: Pair) -> (Vec<Fidelity>, Vec<Check>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for python in lab.pythons.clone() {
        let emulated = Emulated::of(&python);
        let measured = measure(lab, On::CPython(&python), pair).and_then(|cpython| {
            let emulation = measure(lab, On::Emulation(&emulated), pair)?;
            paired(&python, pair, cpython, emulation)
        });
        match measured {
            Ok(measured) => rows.extend(measured),
            Err(error) => failures.push(Check::new(
                format!("{} beside its emulation: measured", python.label()),
                Verdict::Error,
                format!("{:#}", anyhow::Error::from(error)),
            )),
        }
    }
    (rows, failures)
}

/// The eras table's cells that no interpreter found here stands for (a free-threaded build,
/// say), measured by `pair`'s method on the emulation's own configuration of the era: the
/// same code path as CPython's numbers in the other eras. A cell that could not be measured is
/// an error check naming it.
/// Cells the claim's experiment measured itself, on the same configuration by the same
/// method (`measured`), are not measured again.
pub fn on_eras_without_python(
    lab: &mut Lab,
    pair: Pair,
    era_claim: &EraClaim,
    measured: &[Measurement],
) -> (Vec<Measurement>, Vec<Check>) {
    let mut measurements = Vec::new();
    let mut failures = Vec::new();
    for (era, metric) in Era::ALL.into_iter().zip(era_claim.metrics) {
        let Some(metric) = metric.measured() else {
            continue;
        };
        let emulated = Emulated::era(era).only(metric);
        let already = measured
            .iter()
            .any(|row| row.metric == metric && row.subject == emulated.subject.label);
        if already || lab.pythons.iter().any(|python| stands_for(python, era)) {
            continue;
        }
        match measure(lab, On::Emulation(&emulated), pair) {
            Ok(numbers) => measurements.extend(
                numbers
                    .into_iter()
                    .filter(|number| number.metric == metric && number.era == era)
                    .map(|number| number.measurement(pair, &emulated)),
            ),
            Err(error) => failures.push(Check::new(
                format!("{}: measured", emulated.subject.label),
                Verdict::Error,
                format!("{:#}", anyhow::Error::from(error)),
            )),
        }
    }
    (measurements, failures)
}

/// Whether `python` measures the era's cells.
fn stands_for(python: &Python, era: Era) -> bool {
    match era {
        Era::PerInterpreter => python.has_own_gil_subinterpreters(),
        era => python.era == era,
    }
}

/// An experiment's own emulated configuration measured by `pair`'s method, its numbers put
/// in the run's table (`report`'s measurements) and returned for the experiment's checks.
pub(crate) fn on_emulation(
    lab: &mut Lab,
    emulated: &Emulated,
    pair: Pair,
    report: &mut Report,
) -> Result<Vec<Number>, LabError> {
    let numbers = measure(lab, On::Emulation(emulated), pair)?;
    record(report, pair, emulated, &numbers);
    Ok(numbers)
}

/// Puts `numbers`, measured by `pair`'s method on `emulated`, in the run's table.
pub(crate) fn record<'a>(
    report: &mut Report,
    pair: Pair,
    emulated: &Emulated,
    numbers: impl IntoIterator<Item = &'a Number>,
) {
    report.measurements.extend(
        numbers
            .into_iter()
            .map(|number| number.clone().measurement(pair, emulated)),
    );
}

/// `pair`'s numbers on one subject (none where it has no such thing: a switch interval before
/// 3.2, subinterpreters with a GIL each before 3.12, asyncio on 2.x).
fn measure(lab: &mut Lab, on: On, pair: Pair) -> Result<Vec<Number>, LabError> {
    Ok(match pair {
        Pair::Countdown => countdown(lab, on)?,
        Pair::TwoClients => {
            let mut numbers = Vec::new();
            if on.wants(metrics::TWO_CLIENTS_THREADS) {
                numbers.push(two_clients(lab, on, Model::Threads)?);
            }
            if on.own_gil_subinterpreters() && on.wants(metrics::TWO_CLIENTS_INTERPRETERS) {
                numbers.push(two_clients(lab, on, Model::Interpreters)?);
            }
            numbers
        }
        Pair::Convoy => convoy(lab, on)?,
        Pair::SwitchInterval if on.switch_interval() => vec![switch_interval(lab, on)?],
        Pair::ProcpoolOverhead => procpool_overhead(lab, on)?,
        Pair::LongInstruction => long_instruction(lab, on)?,
        Pair::Race => vec![race(lab, on)?],
        Pair::C10k if on.asyncio() => vec![c10k(lab, on)?],
        Pair::IoBound => vec![io_bound(lab, on)?],
        Pair::SwitchInterval | Pair::C10k => Vec::new(),
    })
}

/// CPython's numbers and its emulation's, metric by metric, as fidelity rows.
fn paired(
    python: &Python,
    pair: Pair,
    cpython: Vec<Number>,
    emulation: Vec<Number>,
) -> Result<Vec<Fidelity>, LabError> {
    let names = |numbers: &[Number]| numbers.iter().map(|n| n.metric).collect::<Vec<_>>();
    if names(&cpython) != names(&emulation) {
        return Err(LabError::Measurement(format!(
            "{} and its emulation measured different metrics: {:?} against {:?}",
            python.label(),
            names(&cpython),
            names(&emulation)
        )));
    }
    Ok(cpython
        .into_iter()
        .zip(emulation)
        .map(|(cpython, emulation)| {
            Fidelity::new(
                pair.claim(),
                cpython.metric,
                (&python.version, cpython.era),
                cpython.band,
                cpython.value,
                emulation.value,
                format!("CPython: {}; emulation: {}", cpython.note, emulation.note),
            )
        })
        .collect())
}

/// The emulation's GIL for `python`, as `clab serve` builds it from `emulation_args`.
pub fn gil_config(python: &Python) -> GilConfig {
    GilConfig {
        tick: python.tick(),
        switch_points: python.switch_points(),
        ..GilConfig::new(python.variant())
    }
}

/// One number of one subject: a metric's value (the median of its repeats), in the era it
/// was measured in, under the band its pair is judged by, and what was run.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub metric: &'static str,
    pub era: Era,
    band: Band,
    pub value: f64,
    pub repeats: Vec<f64>,
    pub note: String,
}

impl Number {
    fn new(on: On, metric: &'static str, band: Band, repeats: Vec<f64>, note: String) -> Number {
        Number {
            metric,
            era: on.era(),
            band,
            value: crate::lab::running::Sample::new(repeats.clone()).median,
            repeats,
            note,
        }
    }

    /// Measured on subinterpreters with a GIL each, whatever the interpreter's own era.
    fn per_interpreter(mut self) -> Number {
        self.era = Era::PerInterpreter;
        self
    }

    /// As a row of the run's table: `pair`'s claim, measured on `emulated`.
    fn measurement(self, pair: Pair, emulated: &Emulated) -> Measurement {
        Measurement::new(
            (pair.claim(), self.metric),
            &emulated.subject,
            self.repeats,
            format!("{}: {}", emulated.describe(), self.note),
        )
    }

    /// The number of `metric` among `numbers`, or an error naming what is missing.
    pub fn of<'a>(numbers: &'a [Number], metric: &str) -> Result<&'a Number, LabError> {
        numbers
            .iter()
            .find(|number| number.metric == metric)
            .ok_or_else(|| LabError::Measurement(format!("{metric:?} was not measured")))
    }
}

/// The emulation configured as a subject: as one interpreter, or as an era with clab's own
/// defaults.
pub struct Emulated {
    pub subject: Subject,
    gil: GilConfig,
    /// The `clab serve` options after the model (`--tick`, `--switch-points`).
    options: Vec<(&'static str, String)>,
    own_gil_subinterpreters: bool,
    switch_interval: bool,
    asyncio: bool,
    /// The one metric wanted (an era's cell), or every one.
    only: Option<&'static str>,
    /// Where a threads server records its GIL's trace, if anywhere.
    trace: Option<String>,
}

impl Emulated {
    /// Standing for `python`: its lock, tick and switch points, what it has and lacks.
    pub fn of(python: &Python) -> Emulated {
        Emulated {
            subject: Subject::emulating(&python.version, python.era),
            gil: gil_config(python),
            options: vec![
                ("--tick", format!("{}ns", python.tick().as_nanos())),
                ("--switch-points", python.switch_points().name().to_owned()),
            ],
            own_gil_subinterpreters: python.has_own_gil_subinterpreters(),
            switch_interval: python.has_switch_interval(),
            asyncio: python.has_asyncio(),
            only: None,
            trace: None,
        }
    }

    /// Standing for `era` with clab's defaults (tick, switch points).
    pub fn era(era: Era) -> Emulated {
        Emulated {
            subject: Subject::emulation(&format!("emulation, {}", era.short()), Some(era)),
            gil: GilConfig::new(era.variant()),
            options: Vec::new(),
            own_gil_subinterpreters: era == Era::PerInterpreter,
            switch_interval: era != Era::Legacy,
            asyncio: true,
            only: None,
            trace: None,
        }
    }

    /// The priority GIL with clab's defaults: a lock no CPython ever had, so no era.
    pub fn priority() -> Emulated {
        Emulated {
            subject: Subject::emulation("emulation, priority GIL", None),
            gil: GilConfig::new(Variant::Priority),
            ..Emulated::era(Era::New)
        }
    }

    /// Its threads servers recording their GIL's trace at `path`.
    pub fn traced(self, path: String) -> Emulated {
        Emulated {
            trace: Some(path),
            ..self
        }
    }

    /// Measuring `metric` alone.
    pub fn only(self, metric: &'static str) -> Emulated {
        Emulated {
            only: Some(metric),
            ..self
        }
    }

    /// `clab serve`'s server of `model` configured as this subject.
    fn spec(&self, model: Model) -> ServerSpec {
        self.options.iter().fold(
            ServerSpec::new(model, self.gil.variant),
            |spec, (option, value)| spec.option(option, value.clone()),
        )
    }

    fn describe(&self) -> String {
        match &self.subject.python {
            Some(version) => format!(
                "clab configured as CPython {version}: --gil {} {}",
                self.gil.variant.name(),
                self.options
                    .iter()
                    .map(|(option, value)| format!("{option} {value}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!(
                "clab serve --gil {} with its default tick and switch points",
                self.gil.variant.name()
            ),
        }
    }
}

/// What one side of a measurement runs on.
#[derive(Clone, Copy)]
pub(crate) enum On<'a> {
    CPython(&'a Python),
    Emulation(&'a Emulated),
}

impl On<'_> {
    fn label(self) -> String {
        match self {
            On::CPython(python) => python.label(),
            On::Emulation(emulated) => emulated.subject.label.clone(),
        }
    }

    fn era(self) -> Era {
        match self {
            On::CPython(python) => python.era,
            On::Emulation(emulated) => emulated.subject.era.unwrap_or(Era::New),
        }
    }

    fn wants(self, metric: &str) -> bool {
        match self {
            On::CPython(_) => true,
            On::Emulation(emulated) => emulated.only.is_none_or(|only| only == metric),
        }
    }

    fn own_gil_subinterpreters(self) -> bool {
        match self {
            On::CPython(python) => python.has_own_gil_subinterpreters(),
            On::Emulation(emulated) => emulated.own_gil_subinterpreters,
        }
    }

    fn switch_interval(self) -> bool {
        match self {
            On::CPython(python) => python.has_switch_interval(),
            On::Emulation(emulated) => emulated.switch_interval,
        }
    }

    fn asyncio(self) -> bool {
        match self {
            On::CPython(python) => python.has_asyncio(),
            On::Emulation(emulated) => emulated.asyncio,
        }
    }

    /// `spec` recording the GIL's trace where this side asks for one.
    fn traced(self, spec: ServerSpec) -> ServerSpec {
        match self {
            On::Emulation(Emulated {
                trace: Some(path), ..
            }) => spec.quiet_option("--trace", path),
            _ => spec,
        }
    }

    /// The cost of one `fib` call on this side, ns.
    fn fib_call_ns(self) -> f64 {
        match self {
            On::CPython(python) => python.calibration.fib_call_ns,
            On::Emulation(_) => crate::work::work_costs().fib_call_ns,
        }
    }

    /// A `fib n` request of about `target` on this side.
    fn fib_request(self, target: Duration) -> String {
        format!("fib {}", fib_n_for(self.fib_call_ns(), target))
    }

    /// Starts this side's server: `python/clab_server.py <cpython_args>` for CPython, `clab
    /// serve` as `emulation` configures [`Emulated::spec`]`(model)` for the emulation.
    fn serve(
        self,
        lab: &mut Lab,
        (model, cpython_args): (Model, &[&str]),
        emulation: impl FnOnce(ServerSpec) -> ServerSpec,
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        match self {
            On::CPython(python) => {
                let args: Vec<&str> = ["--model", model.name()]
                    .into_iter()
                    .chain(cpython_args.iter().copied())
                    .collect();
                lab.serve_cpython(python, &args, cpus)
            }
            On::Emulation(emulated) => lab.serve(&emulation(emulated.spec(model)), cpus),
        }
    }
}

// ---- countdown ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Countdown {
    Serial,
    Threads,
    Processes,
    /// Two subinterpreters with a GIL each (CPython 3.12+); emulated as two locks.
    Interpreters,
}

impl Countdown {
    fn name(self) -> &'static str {
        match self {
            Countdown::Serial => "serial",
            Countdown::Threads => "threads",
            Countdown::Processes => "processes",
            Countdown::Interpreters => "interpreters",
        }
    }

    /// Whether each of the two workers has a GIL of its own.
    fn own_gils(self) -> bool {
        matches!(self, Countdown::Processes | Countdown::Interpreters)
    }
}

/// Seconds for two jobs of `job_ms` run as `how`, pinned to `cpus`: on CPython two
/// `countdown(n)` of that length (`python/clab_bench.py`), on the emulation two `spin job_ms`
/// on the emulated GIL in this process — one after the other on one thread, on two threads of
/// one interpreter, or on two interpreters (a GIL each).
fn countdown_seconds(
    lab: &Lab,
    on: On,
    job_ms: u64,
    how: Countdown,
    cpus: &[usize],
) -> Result<f64, LabError> {
    match on {
        On::CPython(python) => {
            #[derive(serde::Deserialize)]
            struct Took {
                seconds: f64,
            }
            let n = (job_ms as f64 * 1e6 / python.calibration.iteration_ns) as u64;
            let took: Took = bench(
                &python.path,
                &lab.scripts,
                &["countdown", "--n", &n.to_string(), "--mode", how.name()],
                Some((cpus, &lab.health)),
                Duration::from_secs(120),
            )
            .map_err(|why| LabError::Measurement(format!("{} countdown: {why}", python.label())))?;
            Ok(took.seconds)
        }
        On::Emulation(emulated) => Ok(emulated_countdown(
            &emulated.gil,
            job_ms,
            how,
            (cpus, &lab.health),
        )),
    }
}

fn emulated_countdown(
    config: &GilConfig,
    job_ms: u64,
    how: Countdown,
    (cpus, log): (&[usize], &HealthLog),
) -> f64 {
    let shared = config.lock();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let jobs: &[u64] = match how {
            Countdown::Serial => &[2],
            _ => &[1, 1],
        };
        for (index, &count) in jobs.iter().enumerate() {
            let own = how.own_gils().then(|| config.lock()).flatten();
            let shared = shared.as_ref();
            scope.spawn(move || {
                log.pin_thread(&format!("countdown {} {index}", how.name()), cpus);
                let gil = if how.own_gils() { own.as_ref() } else { shared };
                let mut thread = PythonThread::attach(gil, &format!("countdown {index}"));
                for _ in 0..count {
                    spin(job_ms, &mut thread);
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

fn countdown(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    let job_ms: u64 = lab.profile.pick(60, 100, 100);
    let repeats = lab.profile.pick(1, 3, 5);
    let (one, all) = (
        lab.placement.server_one.clone(),
        lab.placement.server_all.clone(),
    );
    let two_cores = if on.era() == Era::Legacy {
        bands::COUNTDOWN_TWO_CORES_LEGACY
    } else {
        bands::COUNTDOWN_TWO_CORES
    };
    let mut numbers = Vec::new();
    for (how, cpus, band, metric) in [
        (
            Countdown::Threads,
            &one,
            bands::COUNTDOWN_ONE_CORE,
            metrics::COUNTDOWN_ONE_CORE,
        ),
        (
            Countdown::Threads,
            &all,
            two_cores,
            metrics::COUNTDOWN_THREADS,
        ),
        (
            Countdown::Processes,
            &all,
            bands::COUNTDOWN_PROCESSES,
            metrics::COUNTDOWN_PROCESSES,
        ),
        (
            Countdown::Interpreters,
            &all,
            bands::COUNTDOWN_INTERPRETERS,
            metrics::COUNTDOWN_INTERPRETERS,
        ),
    ] {
        if !on.wants(metric) || (how == Countdown::Interpreters && !on.own_gil_subinterpreters()) {
            continue;
        }
        lab.step(&format!("{}: countdown {metric}", on.label()));
        // Each repeat times the pair back to back, so a slow spell of the machine weighs on
        // both sides of its ratio.
        let mut ratios = Vec::new();
        for _ in 0..repeats {
            ratios.push(
                countdown_seconds(lab, on, job_ms, how, cpus)?
                    / countdown_seconds(lab, on, job_ms, Countdown::Serial, cpus)?,
            );
        }
        let what = match on {
            On::CPython(_) => "countdown(n)",
            On::Emulation(_) => "`spin`",
        };
        let number = Number::new(
            on,
            metric,
            band,
            ratios,
            format!(
                "two {what} jobs of {job_ms} ms as {} ÷ one after the other, on CPUs {}, timed from when both workers run; median of {repeats}",
                how.name(),
                list(cpus)
            ),
        );
        numbers.push(if how == Countdown::Interpreters {
            number.per_interpreter()
        } else {
            number
        });
    }
    Ok(numbers)
}

// ---- servers --------------------------------------------------------------------------

/// The two-client slowdown on a `model` server: `threads` (one interpreter), or
/// `interpreters` (the work in subinterpreters with a GIL each, 3.12+).
fn two_clients(lab: &mut Lab, on: On, model: Model) -> Result<Number, LabError> {
    let run = clients_run(lab, on, model, &[1, 2])?;
    Ok(run.number(on))
}

/// A server's median latency by number of clients, and the two-client slowdown of each
/// repeat.
#[derive(Debug, Clone)]
pub(crate) struct ClientsRun {
    pub label: String,
    pub model: Model,
    pub request: String,
    /// (clients, the median latency of each repeat, ms), one per count.
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
/// on every server CPU, `counts[0]` clients, then `counts[1]`, … for a short window each, the
/// whole sequence repeated as the profile asks so a slow spell weighs on both sides of a
/// slowdown; pools have four workers, so no client waits for one.
pub(crate) fn clients_run(
    lab: &mut Lab,
    on: On,
    model: Model,
    counts: &[usize],
) -> Result<ClientsRun, LabError> {
    lab.step(&format!("{}: clients, {model}", on.label()));
    let request = on.fib_request(Duration::from_millis(30));
    let all = lab.placement.server_all.clone();
    let server = match model {
        Model::Threads | Model::Eventloop => on.serve(lab, (model, &[]), |spec| spec, &all)?,
        _ => on.serve(
            lab,
            (model, &["--workers", "4"]),
            |spec| spec.workers(4),
            &all,
        )?,
    };
    let repeats = lab.profile.pick(1, 2, 3);
    let mut by_count = vec![Vec::new(); counts.len()];
    for _ in 0..repeats {
        for (index, &clients) in counts.iter().enumerate() {
            let plan = measure::short_plan(
                lab,
                &server,
                vec![Lab::class("clients", clients, &request, Duration::ZERO)],
            )?;
            by_count[index].push(p50_ms(&lab.load(&server, plan)?, "clients")?);
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

fn convoy(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
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
    let hybrid: &[&str] = &["--workers", "2", "--threshold", "15", "--pool"];
    let two: &[&str] = &["--workers", "2"];
    let servers: [(&str, Model, Vec<&str>, Option<Target>); 5] = [
        (metrics::CONVOY_THREADS, Model::Threads, vec![], None),
        (
            metrics::CONVOY_HYBRID_THREADS,
            Model::Hybrid,
            [hybrid, &["threads"]].concat(),
            Some(Target::Pool),
        ),
        (
            metrics::CONVOY_HYBRID_PROCESSES,
            Model::Hybrid,
            [hybrid, &["processes"]].concat(),
            Some(Target::Procpool),
        ),
        (
            metrics::CONVOY_PROCPOOL,
            Model::Procpool,
            two.to_vec(),
            None,
        ),
        (
            metrics::CONVOY_INTERPRETERS,
            Model::Interpreters,
            two.to_vec(),
            None,
        ),
    ];
    let mut runs = Vec::new();
    for (metric, model, cpython_args, offload) in servers {
        if !on.wants(metric) || (model == Model::Interpreters && !on.own_gil_subinterpreters()) {
            continue;
        }
        lab.step(&format!("{}: convoy, {metric}", on.label()));
        let server = on.serve(
            lab,
            (model, &cpython_args),
            |spec| match (model, offload) {
                (Model::Hybrid, Some(to)) => spec.workers(2).offload(15, to),
                (Model::Threads, _) => on.traced(spec),
                _ => spec.workers(2),
            },
            &one,
        )?;
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

fn switch_interval(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    let intervals_ms: Vec<f64> = lab.profile.pick(
        vec![1.0, 20.0],
        vec![1.0, 5.0, 20.0],
        vec![1.0, 2.0, 5.0, 10.0, 20.0],
    );
    let hog = on.fib_request(Duration::from_millis(60));
    let one = lab.placement.server_one.clone();
    let mut rates = Vec::new();
    for &ms in &intervals_ms {
        lab.step(&format!("{}: switch interval {ms} ms", on.label()));
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
        rates.push((ms, rate.max(f64::MIN_POSITIVE)));
    }
    let words = rates
        .iter()
        .map(|(ms, rate)| format!("{ms} ms: {rate:.0}/s"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Number::new(
        on,
        metrics::SWITCH_SLOPE,
        bands::SWITCH_SLOPE,
        vec![switch_interval::slope(&rates)],
        format!("`fib 1` beside a `{hog}` hog: {words}"),
    ))
}

fn procpool_overhead(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    lab.step(&format!("{}: process-pool overhead", on.label()));
    let rate = |lab: &mut Lab, model, cpython_args: &[&str]| {
        pool_rate(lab, |lab, cpus| {
            on.serve(lab, (model, cpython_args), |spec| spec.workers(2), cpus)
        })
    };
    let threads = pool_rate(lab, |lab, cpus| {
        on.serve(lab, (Model::Threads, &[]), |spec| spec, cpus)
    })?;
    let hop = match on {
        On::CPython(_) => "pickling and the executor's own threads, all under the GIL",
        On::Emulation(_) => "a pipe round trip, no interpreter work",
    };
    let mut numbers = Vec::new();
    let cost = |pooled: f64, why: &str| {
        (
            vec![1.0 - pooled / threads],
            format!(
                "`fib 1` per second {threads:.0} on threads → {pooled:.0} (adds {:.0} µs a request: {why})",
                1e6 / pooled - 1e6 / threads
            ),
        )
    };
    if on.wants(metrics::PROCESS_POOL_COST) {
        let pooled = rate(lab, Model::Procpool, &["--workers", "2"])?;
        let (repeats, note) = cost(pooled, hop);
        numbers.push(Number::new(
            on,
            metrics::PROCESS_POOL_COST,
            bands::PROCPOOL_COST,
            repeats,
            note,
        ));
    }
    if on.own_gil_subinterpreters() && on.wants(metrics::INTERPRETER_HOP_COST) {
        lab.step(&format!("{}: subinterpreter hop", on.label()));
        let pooled = rate(lab, Model::Interpreters, &["--workers", "2"])?;
        let why = match on {
            On::CPython(_) => "entering a subinterpreter and copying the request and the reply",
            On::Emulation(_) => "a hand-off to an interpreter's thread and the copies",
        };
        let (repeats, note) = cost(pooled, why);
        numbers.push(
            Number::new(
                on,
                metrics::INTERPRETER_HOP_COST,
                bands::PROCPOOL_COST,
                repeats,
                note,
            )
            .per_interpreter(),
        );
    }
    // Without a GIL the worker that computes in parallel is a thread: the threshold server
    // (an event loop) handing every request to a pool of two, against the same server
    // computing every request itself.
    if on.era() == Era::FreeThreaded && on.wants(metrics::THREAD_POOL_COST) {
        lab.step(&format!("{}: thread-pool hop", on.label()));
        let hybrid = |lab: &mut Lab, threshold: u32| {
            let threshold_arg = threshold.to_string();
            pool_rate(lab, |lab, cpus| {
                on.serve(
                    lab,
                    (
                        Model::Hybrid,
                        &[
                            "--workers",
                            "2",
                            "--threshold",
                            &threshold_arg,
                            "--pool",
                            "threads",
                        ],
                    ),
                    |spec| spec.workers(2).offload(threshold, Target::Pool),
                    cpus,
                )
            })
        };
        let inline = hybrid(lab, 1_000)?;
        let pooled = hybrid(lab, 0)?;
        numbers.push(Number::new(
            on,
            metrics::THREAD_POOL_COST,
            bands::PROCPOOL_COST,
            vec![1.0 - pooled / inline],
            format!(
                "`fib 1` per second {inline:.0} computed on the event loop → {pooled:.0} handed to a pool thread (adds {:.0} µs a request)",
                1e6 / pooled - 1e6 / inline
            ),
        ));
    }
    Ok(numbers)
}

fn c10k(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    lab.step(&format!("{}: idle connections", on.label()));
    let connections = lab.profile.pick(1_000, 2_000, 2_000);
    let one = lab.placement.server_one.clone();
    let window = Duration::from_millis(lab.profile.pick(800, 1000, 1500));
    // asyncio on CPython; the emulation's event loop (which has no GIL to configure).
    let server = match on {
        On::CPython(python) => lab.serve_cpython(python, &["--model", "asyncio"], &one)?,
        On::Emulation(emulated) => lab.serve(
            &emulated
                .spec(Model::Eventloop)
                .quiet_option("--max-connections", connections + 100),
            &one,
        )?,
    };
    let held = measure::hold(lab, &server, connections, Vec::new(), window)?;
    server.stop();
    Ok(Number::new(
        on,
        metrics::C10K_PER_CONNECTION,
        bands::C10K,
        vec![held.resident_per_connection()],
        format!(
            "{} idle connections held; the band is a cost: the event loop may cost up to twice asyncio's",
            held.opened
        ),
    ))
}

fn io_bound(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    let run = io_run(lab, on, Model::Threads)?;
    Ok(io_bound_share(on, &run))
}

/// One server overlapping [`io_bound::CLIENTS`] waiting clients: its rate, the CPU it used
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

/// The clients sending [`io_bound::REQUEST`] for the profile's window to a `model` server on
/// one CPU, its memory sampled each second of the load; a pool has one worker per client.
pub(crate) fn io_run(lab: &mut Lab, on: On, model: Model) -> Result<IoRun, LabError> {
    lab.step(&format!("{}: I/O-bound clients, {model}", on.label()));
    let one = lab.placement.server_one.clone();
    let workers = io_bound::CLIENTS.to_string();
    let server = match model {
        Model::Threads | Model::Eventloop => on.serve(lab, (model, &[]), |spec| spec, &one)?,
        _ => on.serve(
            lab,
            (model, &["--workers", &workers]),
            |spec| spec.workers(io_bound::CLIENTS),
            &one,
        )?,
    };
    // Workers start lazily on some models: one request each way first.
    server.ask(io_bound::REQUEST)?;
    let before = server.usage();
    let mut peak = before;
    let plan = lab.plan(
        &server,
        lab.profile.window(),
        vec![Lab::class(
            "clients",
            io_bound::CLIENTS,
            io_bound::REQUEST,
            Duration::ZERO,
        )],
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
        vec![run.rate_per_s / io_bound::IDEAL_RATE],
        format!(
            "{:.0} requests/s of an ideal {:.0}/s; {} clients sending `{}`",
            run.rate_per_s,
            io_bound::IDEAL_RATE,
            io_bound::CLIENTS,
            io_bound::REQUEST
        ),
    )
}

// ---- in-process ------------------------------------------------------------------------

fn long_instruction(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    lab.step(&format!("{}: long instruction", on.label()));
    let length_ms: u64 = lab.profile.pick(150, 300, 300);
    let all = lab.placement.server_all.clone();
    let (gap_ms, delay_ms, section_ms, note) = match on {
        On::CPython(python) => {
            #[derive(serde::Deserialize)]
            struct PythonLong {
                section_ms: f64,
                longest_gap_ms: Option<f64>,
                signal_delay_ms: Option<f64>,
            }
            let measured: PythonLong = bench(
                &python.path,
                &lab.scripts,
                &["long", "--ms", &length_ms.to_string()],
                Some((&all, &lab.health)),
                Duration::from_secs(60),
            )
            .map_err(|why| LabError::Measurement(format!("{} long: {why}", python.label())))?;
            let missing = |what: &str| {
                LabError::Measurement(format!("{}: no {what} was measured", python.label()))
            };
            (
                measured
                    .longest_gap_ms
                    .ok_or_else(|| missing("ticker gap"))?,
                measured
                    .signal_delay_ms
                    .ok_or_else(|| missing("signal delay"))?,
                measured.section_ms,
                format!(
                    "one C-level call of {:.0} ms (a sum over a range, {length_ms} ms calibrated)",
                    measured.section_ms
                ),
            )
        }
        On::Emulation(emulated) => {
            let measured = long_instruction::measure(
                emulated.gil.clone(),
                long_instruction::Operation::Uninterruptible,
                Duration::from_millis(length_ms),
                (&all, &lab.health),
            )?;
            (
                measured.longest_gap_ms,
                measured.signal_delay_ms(),
                measured.length_ms(),
                format!("{length_ms} ms uninterruptible"),
            )
        }
    };
    let note = format!("{note}; a 10 ms ticker thread; a signal due a quarter of the way in");
    Ok(vec![
        Number::new(
            on,
            "ticker thread's longest gap (ms)",
            bands::LONG_INSTRUCTION,
            vec![gap_ms],
            note.clone(),
        ),
        Number::new(
            on,
            "signal handler's delay (ms)",
            bands::LONG_INSTRUCTION,
            vec![delay_ms],
            note.clone(),
        ),
        // Each side's stall against its own operation's measured length.
        Number::new(
            on,
            metrics::LONG_STALL,
            bands::LONG_INSTRUCTION,
            vec![long_instruction::stall(gap_ms, section_ms)],
            note,
        ),
    ])
}

fn race(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    lab.step(&format!("{}: race", on.label()));
    let each = lab.profile.pick(1_000_000, 2_000_000, 2_000_000);
    let all = lab.placement.server_all.clone();
    let (lost, how) = match on {
        On::CPython(python) => (
            race::python_race(lab, python, each, &all)?.lost,
            "`counter[0] += 1`".to_owned(),
        ),
        On::Emulation(emulated) => (
            race::lost_under_gil(emulated.gil.clone(), each, (&all, &lab.health)),
            format!(
                "a read and a write {} switch points apart",
                emulated.gil.switch_points.name()
            ),
        ),
    };
    Ok(Number::new(
        on,
        metrics::RACE_LOST,
        bands::RACE,
        vec![lost as f64 / (2 * each) as f64],
        format!("{lost} of {} increments lost ({how})", 2 * each),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_n_is_chosen_by_time() {
        // fib(30) makes 1,664,079 calls: at 18 ns each, about 30 ms.
        assert_eq!(fib_n_for(18.0, Duration::from_millis(30)), 30);
        assert_eq!(fib_n_for(1.5, Duration::from_millis(30)), 35);
    }

    #[test]
    fn an_era_is_emulated_with_what_it_has() {
        let free = Emulated::era(Era::FreeThreaded).only(metrics::RACE_LOST);
        assert_eq!(free.subject.label, "emulation, free-threaded");
        assert_eq!(free.spec(Model::Threads).label(), "threads --gil none");
        assert!(!free.own_gil_subinterpreters);
        let on = On::Emulation(&free);
        assert!(on.wants(metrics::RACE_LOST) && !on.wants(metrics::CONVOY_THREADS));
        assert!(Emulated::era(Era::PerInterpreter).own_gil_subinterpreters);
        assert!(!Emulated::era(Era::Legacy).switch_interval);
    }
}
