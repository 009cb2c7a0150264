//! Each claim CPython can run has one measuring method here, written once for one subject
//! ([`On`]): a real interpreter, or the emulation configured as one ([`Emulated::of`]: the same
//! GIL kind, its switch points, its measured tick) or as clab's own configuration of an era
//! ([`Emulated::era`]). The claim's experiment runs it on clab's configurations for the
//! emulation's verdicts; [`on_every_python`] runs it on every interpreter found and on the
//! emulation standing for each, in the same placement, and pairs them under a band fixed before
//! the run (the fidelity pairs, which the `cpython` claim judges); [`on_eras_without_python`]
//! fills the eras no interpreter stood for. Every number goes into the run's table once.
//!
//! Servers are `python/clab_server.py` and `clab serve`; in-process programs are
//! `python/clab_bench.py` and the emulated GIL on threads of the lab's own process.

mod in_process;
pub(crate) mod increments;
pub(crate) mod long_operation;
mod servers;
pub(crate) mod shared_objects;

pub(crate) use in_process::{long_length, long_measured};
pub(crate) use servers::{
    CLIENTS, ClientsRun, IDEAL_RATE, IdleRun, IoRun, REQUEST, clients_run, convoy_runs, idle_run,
    io_bound_share, io_run, pool_costs, pool_rate, switch_rates,
};

use std::time::Duration;

use crate::gil::{GilConfig, Variant};
use crate::lab::claims::experiment::Report;
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::eras::EraClaim;
use crate::lab::model::outcome::{Band, Check, Fidelity, Verdict};
use crate::lab::model::{Era, Measurement, Subject};
use crate::lab::running::process::ChildServer;
use crate::lab::running::pythons::{Clients, LoopIteration, LoopIterations, Python};
use crate::lab::running::setups::fib_n_for;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, Sample};
use crate::server::Model;
use crate::server::offload::Target;
use shared_objects::Operation;

/// What a claim's pair measured on every interpreter: the fidelity rows, and the numbers they
/// pair as rows of the run's table (each with every repeat).
#[derive(Debug, Default)]
pub struct PairMeasured {
    pub fidelity: Vec<Fidelity>,
    pub measurements: Vec<Measurement>,
    /// An error check for each interpreter that could not be measured.
    pub failures: Vec<Check>,
}

/// `pair`'s metrics on every interpreter the lab found, each beside its emulation; an
/// interpreter that could not be measured is an error check naming it, and the others go on.
pub fn on_every_python(lab: &mut Lab, pair: Pair) -> PairMeasured {
    let mut measured = PairMeasured::default();
    for python in lab.pythons.clone() {
        let mut emulated = Emulated::of(&python);
        lab.look_at_cores(&before_cpython(pair.claim(), &python));
        let numbers = measure(lab, On::CPython(&python), pair).and_then(|cpython| {
            emulated.loops_in_a_row = lab.loops_in_a_row.remove(&python.path);
            lab.look_at_cores(&format!("{}: {}", pair.claim(), emulated.subject.label));
            let emulation = measure(lab, On::Emulation(&emulated), pair)?;
            paired(&python, cpython, emulation)
        });
        match numbers {
            Ok(numbers) => {
                for (cpython, emulation) in numbers {
                    measured.add(&python, pair, cpython, emulation);
                }
            }
            Err(error) => measured.failures.push(Check::new(
                format!("{} beside its emulation: measured", python.label()),
                Verdict::Error,
                format!("{:#}", anyhow::Error::from(error)),
            )),
        }
    }
    measured
}

/// What the look at the CPUs just before CPython's half of `claim`'s pair is named; the
/// `cpython` claim finds it by this name.
pub(crate) fn before_cpython(claim: &str, python: &Python) -> String {
    format!("{claim}: {}", python.label())
}

impl PairMeasured {
    /// One metric on `python` and on the emulation standing for it: a fidelity row, and two
    /// measurements of one method.
    fn add(&mut self, python: &Python, pair: Pair, cpython: Number, emulation: Number) {
        let note = format!("CPython: {}; emulation: {}", cpython.note, emulation.note);
        let evidence = format!(
            "the same program and placement on CPython {} and on clab configured as it ({}); {note}",
            python.version,
            cpython.era.name()
        );
        self.fidelity.push(Fidelity::new(
            pair.claim(),
            cpython.metric,
            (&python.version, cpython.era),
            cpython.band,
            cpython.value,
            emulation.value,
            note,
        ));
        for (subject, number) in [
            (Subject::cpython(&python.version, cpython.era), cpython),
            (
                Subject::emulating(&python.version, emulation.era),
                emulation,
            ),
        ] {
            self.measurements
                .push(number.into_measurement(pair, &subject, evidence.clone()));
        }
    }
}

/// The eras table's cells that no interpreter found here stands for (a free-threaded build,
/// say), measured by `pair`'s method on the emulation's own configuration of the era: the
/// same code path as CPython's numbers in the other eras. A cell that could not be measured is
/// an error check naming it.
///
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
    for era in Era::ALL {
        let Some(metric) = era_claim.metric_in(era).measured() else {
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
    use in_process::{countdown, long_instruction, race, shared_objects};
    use servers::{c10k, convoy, io_bound, procpool_overhead, switch_interval, two_clients};
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
        Pair::SharedObjects => shared_objects(lab, on)?,
        Pair::SwitchInterval | Pair::C10k => Vec::new(),
    })
}

/// CPython's numbers and its emulation's, metric by metric.
fn paired(
    python: &Python,
    cpython: Vec<Number>,
    emulation: Vec<Number>,
) -> Result<Vec<(Number, Number)>, LabError> {
    let names = |numbers: &[Number]| numbers.iter().map(|n| n.metric).collect::<Vec<_>>();
    if names(&cpython) != names(&emulation) {
        return Err(LabError::Measurement(format!(
            "{} and its emulation measured different metrics: {:?} against {:?}",
            python.label(),
            names(&cpython),
            names(&emulation)
        )));
    }
    Ok(cpython.into_iter().zip(emulation).collect())
}

/// The emulation's GIL for `python`, as `clab serve` builds it from `emulation_args`.
pub fn gil_config(python: &Python) -> GilConfig {
    GilConfig {
        tick: python.tick(),
        fib_tick: python.fib_tick(),
        switch_points: python.switch_points(),
        ..GilConfig::new(python.variant())
    }
}

/// One number of one subject: a metric's value (the median of its repeats, or for a ratio of
/// interleaved timings as [`Interleaved`] says), in the era it was measured in, under the band
/// its pair is judged by, and what was run.
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
            value: Sample::new(repeats.clone()).median,
            repeats,
            note,
        }
    }

    /// `at_once ÷ in_a_row`, timed in interleaved repeats (the i-th of each back to back),
    /// judged as `judged` says; each pair's ratio is a repeat either way, to show the spread.
    fn interleaved(
        on: On,
        metric: &'static str,
        band: Band,
        (at_once, in_a_row): (&[f64], &[f64]),
        judged: Interleaved,
        note: String,
    ) -> Number {
        let ratios = at_once.iter().zip(in_a_row).map(|(a, b)| a / b).collect();
        let number = Number::new(on, metric, band, ratios, note);
        let fastest = |times: &[f64]| Sample::new(times.to_vec()).min;
        match judged {
            Interleaved::MedianOfPairs => number,
            Interleaved::Fastest => Number {
                value: fastest(at_once) / fastest(in_a_row),
                ..number
            },
        }
    }

    /// Measured on subinterpreters with a GIL each, whatever the interpreter's own era.
    fn per_interpreter(mut self) -> Number {
        self.era = Era::PerInterpreter;
        self
    }

    /// As a row of the run's table: `pair`'s claim, measured on `emulated`.
    fn measurement(self, pair: Pair, emulated: &Emulated) -> Measurement {
        let evidence = format!("{}: {}", emulated.describe(), self.note);
        self.into_measurement(pair, &emulated.subject, evidence)
    }

    /// As a row of the run's table: `pair`'s claim, measured on `subject`, its value the one
    /// judged (not always the repeats' median).
    fn into_measurement(self, pair: Pair, subject: &Subject, evidence: String) -> Measurement {
        Measurement::new((pair.claim(), self.metric), subject, self.repeats, evidence)
            .judged_at(self.value)
    }

    /// The number of `metric` among `numbers`, or an error naming what is missing.
    pub fn of<'a>(numbers: &'a [Number], metric: &str) -> Result<&'a Number, LabError> {
        numbers
            .iter()
            .find(|number| number.metric == metric)
            .ok_or_else(|| LabError::Measurement(format!("{metric:?} was not measured")))
    }
}

/// How a ratio of interleaved timings is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interleaved {
    /// The median of the pairs' ratios: where both sides feel the host alike.
    MedianOfPairs,
    /// The fastest of one side over the fastest of the other. A shared host only ever adds
    /// time, and a tenant on one of two CPUs slows a run on both far more than a run on one
    /// (that CPU's half of the work is the last to finish), so a pair's ratio is off by as
    /// much as the spell at its moment; each side's fastest run is the host at its quietest
    /// for that side.
    Fastest,
}

/// The emulation configured as a subject: as one interpreter, or as an era with clab's own
/// defaults.
#[derive(Clone)]
pub struct Emulated {
    pub subject: Subject,
    gil: GilConfig,
    /// The `clab serve` options after the model (`--tick`, `--switch-points`, `--hop-cost`,
    /// `--request-cost`), for clients on another CPU; and for clients beside the server.
    options: Vec<(&'static str, String)>,
    options_beside: Vec<(&'static str, String)>,
    own_gil_subinterpreters: bool,
    switch_interval: bool,
    asyncio: bool,
    /// The shared-objects loops' iterations of the interpreter it stands for, if any: as
    /// calibrated, which sizes the loops, and as run in a row in the pair's CPython half,
    /// which an emulated loop alone is fitted to take.
    loops: Option<LoopIterations>,
    loops_in_a_row: Option<LoopIterations>,
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
            options: python.emulation_options(Clients::Across),
            options_beside: python.emulation_options(Clients::Beside),
            own_gil_subinterpreters: python.has_own_gil_subinterpreters(),
            switch_interval: python.has_switch_interval(),
            asyncio: python.has_asyncio(),
            loops: Some(python.calibration.operations),
            loops_in_a_row: None,
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
            options_beside: Vec::new(),
            own_gil_subinterpreters: era == Era::PerInterpreter,
            switch_interval: era != Era::Legacy,
            asyncio: true,
            loops: None,
            loops_in_a_row: None,
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

    /// For servers whose clients share their CPU: the request costs calibrated so.
    pub fn clients_beside(&self) -> Emulated {
        Emulated {
            options: self.options_beside.clone(),
            ..self.clone()
        }
    }

    /// Its threads servers recording their GIL's trace at `path`.
    pub fn traced(self, path: String) -> Emulated {
        Emulated {
            trace: Some(path),
            ..self
        }
    }

    /// The emulated GIL it runs under.
    pub fn gil(&self) -> &GilConfig {
        &self.gil
    }

    /// Measuring `metric` alone.
    pub fn only(self, metric: &'static str) -> Emulated {
        Emulated {
            only: Some(metric),
            ..self
        }
    }

    /// `clab serve`'s server of `model` configured as this subject.
    pub fn spec(&self, model: Model) -> ServerSpec {
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
                "clab serve --gil {} with its default tick, switch points and hop costs",
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

    /// The time between two of its eval loop's checks: CPython's measured tick, or the one
    /// the emulation is configured with.
    fn tick(self) -> Duration {
        match self {
            On::CPython(python) => python.tick(),
            On::Emulation(emulated) => emulated.gil.tick,
        }
    }

    /// One iteration of a shared-objects loop on this side: as the interpreter was timed
    /// running it, or by the operation's ticks where no interpreter stands behind it.
    fn loop_iteration(self, operation: Operation) -> LoopIteration {
        let loops = match self {
            On::CPython(python) => Some(&python.calibration.operations),
            On::Emulation(emulated) => emulated.loops.as_ref(),
        };
        loops.map_or(operation.at_tick(self.tick()), |loops| operation.of(loops))
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

    /// Starts this side's `model` server with `workers` workers on both sides; threads and an
    /// event loop have no workers to set.
    fn serve_workers(
        self,
        lab: &mut Lab,
        model: Model,
        workers: usize,
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        match model {
            Model::Threads | Model::Eventloop => self.serve(lab, (model, &[]), |spec| spec, cpus),
            _ => self.serve(
                lab,
                (model, &["--workers", &workers.to_string()]),
                |spec| spec.workers(workers),
                cpus,
            ),
        }
    }

    /// Starts this side's threshold server: `fib n` above `threshold` handed to a pool of two
    /// `to` workers, the rest answered on the event loop.
    fn serve_hybrid(
        self,
        lab: &mut Lab,
        threshold: u32,
        to: Target,
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        // clab_server.py's names for the pools.
        let pool = match to {
            Target::Pool => "threads",
            Target::Procpool => "processes",
            Target::Interpreters => "interpreters",
        };
        let threshold_arg = threshold.to_string();
        self.serve(
            lab,
            (
                Model::Hybrid,
                &[
                    "--workers",
                    "2",
                    "--threshold",
                    &threshold_arg,
                    "--pool",
                    pool,
                ],
            ),
            |spec| spec.workers(2).offload(threshold, to),
            cpus,
        )
    }
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

    #[test]
    fn interleaved_runs_are_judged_at_each_sides_fastest() {
        let new = Emulated::era(Era::New);
        // The second run at once fell in a tenant's spell, the first two in a row did too.
        let judged = |statistic| {
            Number::interleaved(
                On::Emulation(&new),
                metrics::COUNTDOWN_PROCESSES,
                metrics::bands::COUNTDOWN_PROCESSES,
                (&[1.0, 1.6, 1.05], &[2.9, 2.4, 2.0]),
                statistic,
                "runs".into(),
            )
        };
        let fastest = judged(Interleaved::Fastest);
        assert_eq!(fastest.value, 0.5);
        assert_eq!(fastest.repeats, [1.0 / 2.9, 1.6 / 2.4, 1.05 / 2.0]);
        let measurement = fastest.measurement(Pair::Countdown, &new);
        assert_eq!((measurement.value, measurement.repeats.len()), (0.5, 3));
        assert_eq!(judged(Interleaved::MedianOfPairs).value, 1.05 / 2.0);
    }
}
