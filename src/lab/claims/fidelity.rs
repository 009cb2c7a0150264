//! The fidelity pairs: each claim CPython can run, measured on every real interpreter found and
//! on the emulation configured to stand for it (the same GIL kind, its switch points, its
//! measured tick), in the same placement, by one method, and paired under a band fixed before
//! the run. Each claim runs its own [`Pair`] ([`on_every_python`]); the `cpython` claim judges
//! the pairs all the claims of a run measured.
//!
//! Servers are `python/clab_server.py` and `clab serve`; in-process programs are
//! `python/clab_bench.py` and the emulated GIL on threads of the lab's own process.

use std::time::{Duration, Instant};

use crate::gil::{GilConfig, PythonThread};
use crate::lab::claims::metrics::{self, Pair, bands};
use crate::lab::claims::procpool_overhead::{PoolRates, pool_rate};
use crate::lab::claims::{io_bound, long_instruction, race, switch_interval};
use crate::lab::model::Era;
use crate::lab::model::outcome::{Band, Check, Fidelity, Verdict};
use crate::lab::running::health::HealthLog;
use crate::lab::running::measure;
use crate::lab::running::process::ChildServer;
use crate::lab::running::pythons::{Python, bench};
use crate::lab::running::setups::fib_n_for;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, class_result, p50_ms};
use crate::server::Model;
use crate::server::offload::Target;
use crate::work::spin;

/// `pair`'s metrics on every interpreter the lab found, each beside its emulation; an
/// interpreter that could not be measured is an error check naming it, and the others go on.
pub fn on_every_python(lab: &mut Lab, pair: Pair) -> (Vec<Fidelity>, Vec<Check>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for python in lab.pythons.clone() {
        match measure(lab, &python, pair) {
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

/// `pair`'s metrics of `python` and its emulation (none where the interpreter has no such
/// thing: a switch interval before 3.2, subinterpreters with a GIL each before 3.12, asyncio
/// on 2.x).
fn measure(lab: &mut Lab, python: &Python, pair: Pair) -> Result<Vec<Fidelity>, LabError> {
    Ok(match pair {
        Pair::Countdown => countdown(lab, python)?,
        Pair::TwoClients => {
            let mut rows = vec![two_clients(lab, python, Model::Threads)?];
            if python.has_own_gil_subinterpreters() {
                rows.push(two_clients(lab, python, Model::Interpreters)?);
            }
            rows
        }
        Pair::Convoy => convoy(lab, python)?,
        Pair::SwitchInterval if python.has_switch_interval() => {
            vec![switch_interval(lab, python)?]
        }
        Pair::ProcpoolOverhead => procpool_overhead(lab, python)?,
        Pair::LongInstruction => long_instruction(lab, python)?,
        Pair::Race => vec![race(lab, python)?],
        Pair::C10k if python.has_asyncio() => vec![c10k(lab, python)?],
        Pair::IoBound => vec![io_bound(lab, python)?],
        Pair::SwitchInterval | Pair::C10k => Vec::new(),
    })
}

/// The emulation's GIL for `python`, as `clab serve` builds it from `emulation_args`.
pub fn gil_config(python: &Python) -> GilConfig {
    GilConfig {
        tick: python.tick(),
        switch_points: python.switch_points(),
        ..GilConfig::new(python.variant())
    }
}

fn row(
    python: &Python,
    experiment: &str,
    metric: &str,
    band: Band,
    (cpython, emulation): (f64, f64),
    note: String,
) -> Fidelity {
    Fidelity::new(
        experiment,
        metric,
        (&python.version, python.era),
        band,
        cpython,
        emulation,
        note,
    )
}

/// `fib n` requests of about `target` for CPython and for the emulation.
fn fib_requests(python: &Python, target: Duration) -> (String, String) {
    let rust_call_ns = crate::work::work_costs().fib_call_ns;
    (
        format!("fib {}", fib_n_for(python.calibration.fib_call_ns, target)),
        format!("fib {}", fib_n_for(rust_call_ns, target)),
    )
}

/// Measures the same thing on the CPython server (`python/clab_server.py <cpython_args>`)
/// and on the emulation's, one at a time.
fn on_both<T>(
    lab: &mut Lab,
    python: &Python,
    (cpython_args, emulation): (&[&str], &ServerSpec),
    cpus: &[usize],
    mut measure: impl FnMut(&mut Lab, &ChildServer, Side) -> Result<T, LabError>,
) -> Result<(T, T), LabError> {
    let server = lab.serve_cpython(python, cpython_args, cpus)?;
    let cpython = measure(lab, &server, Side::CPython)?;
    server.stop();
    let server = lab.serve(emulation, cpus)?;
    let emulated = measure(lab, &server, Side::Emulation)?;
    server.stop();
    Ok((cpython, emulated))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    CPython,
    Emulation,
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

/// Seconds for two countdowns of `n` on CPython, run as `how`, pinned to `cpus`.
fn cpython_countdown(
    lab: &Lab,
    python: &Python,
    n: u64,
    how: Countdown,
    cpus: &[usize],
) -> Result<f64, LabError> {
    #[derive(serde::Deserialize)]
    struct Took {
        seconds: f64,
    }
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

/// Seconds for two `spin job_ms` on the emulated GIL `config`, in this process, on threads
/// pinned to `cpus`: one after the other on one thread, on two threads of one interpreter,
/// or on two interpreters (two processes: a GIL each).
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

fn countdown(lab: &mut Lab, python: &Python) -> Result<Vec<Fidelity>, LabError> {
    let job_ms: u64 = lab.profile.pick(60, 100, 100);
    let repeats = lab.profile.pick(1, 3, 5);
    let n = (job_ms as f64 * 1e6 / python.calibration.iteration_ns) as u64;
    let config = gil_config(python);
    let (one, all) = (
        lab.placement.server_one.clone(),
        lab.placement.server_all.clone(),
    );
    let mut rows = Vec::new();
    let two_cores = if python.era == Era::Legacy {
        bands::COUNTDOWN_TWO_CORES_LEGACY
    } else {
        bands::COUNTDOWN_TWO_CORES
    };
    for (how, cpus, band, metric) in [
        (
            Countdown::Threads,
            &one,
            bands::COUNTDOWN_ONE_CORE,
            "threads ÷ serial, one core",
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
            "processes ÷ serial, two cores",
        ),
        (
            Countdown::Interpreters,
            &all,
            bands::COUNTDOWN_INTERPRETERS,
            metrics::COUNTDOWN_INTERPRETERS,
        ),
    ] {
        if how == Countdown::Interpreters && !python.has_own_gil_subinterpreters() {
            continue;
        }
        lab.step(&format!("cpython: {} countdown {metric}", python.label()));
        let mut cpython = Vec::new();
        let mut emulated = Vec::new();
        for _ in 0..repeats {
            cpython.push(
                cpython_countdown(lab, python, n, how, cpus)?
                    / cpython_countdown(lab, python, n, Countdown::Serial, cpus)?,
            );
            emulated.push(
                emulated_countdown(&config, job_ms, how, (cpus, &lab.health))
                    / emulated_countdown(&config, job_ms, Countdown::Serial, (cpus, &lab.health)),
            );
        }
        let (cpython, emulated) = (median(cpython), median(emulated));
        let mut row = row(
            python,
            "countdown",
            metric,
            band,
            (cpython, emulated),
            format!(
                "two jobs of {job_ms} ms (CPython countdown({n}), emulation `spin {job_ms}`) on CPUs {}, timed from when both workers run; median of {repeats}",
                crate::lab::words::list(cpus)
            ),
        );
        if how == Countdown::Interpreters {
            // Not the interpreter's main GIL: each subinterpreter's own.
            row.gil = Era::PerInterpreter;
        }
        rows.push(row);
    }
    Ok(rows)
}

fn median(values: Vec<f64>) -> f64 {
    crate::lab::running::Sample::new(values).median
}

// ---- servers --------------------------------------------------------------------------

/// One client's median latency, and how much slower each request is with two.
struct Slowdown {
    one_ms: f64,
    slowdown: f64,
}

/// The two-client slowdown on a `model` server: `threads` (one interpreter), or
/// `interpreters` (the work in subinterpreters with a GIL each, 3.12+).
fn two_clients(lab: &mut Lab, python: &Python, model: Model) -> Result<Fidelity, LabError> {
    lab.step(&format!("cpython: {} two clients, {model}", python.label()));
    let (py_request, rust_request) = fib_requests(python, Duration::from_millis(30));
    let all = lab.placement.server_all.clone();
    let slowdown = |lab: &mut Lab, server: &ChildServer, side: Side| {
        let request = if side == Side::CPython {
            &py_request
        } else {
            &rust_request
        };
        let latency = |lab: &mut Lab, clients| {
            let plan = measure::short_plan(
                lab,
                server,
                vec![Lab::class("clients", clients, request, Duration::ZERO)],
            )?;
            p50_ms(&lab.load(server, plan)?, "clients")
        };
        let one_ms = latency(lab, 1)?;
        Ok(Slowdown {
            one_ms,
            slowdown: latency(lab, 2)? / one_ms,
        })
    };
    let (cpython, emulated) = on_both(
        lab,
        python,
        (&["--model", model.name()], &python.emulation(model)),
        &all,
        slowdown,
    )?;
    let metric = match model {
        Model::Interpreters => metrics::TWO_CLIENTS_INTERPRETERS,
        _ => metrics::TWO_CLIENTS_THREADS,
    };
    let mut row = row(
        python,
        "two-clients",
        metric,
        bands::TWO_CLIENTS,
        (cpython.slowdown, emulated.slowdown),
        format!(
            "one client: CPython `{py_request}` {:.1} ms, emulation `{rust_request}` {:.1} ms; {model} servers on CPUs {}",
            cpython.one_ms,
            emulated.one_ms,
            crate::lab::words::list(&all)
        ),
    );
    if model == Model::Interpreters {
        row.gil = Era::PerInterpreter;
    }
    Ok(row)
}

fn convoy(lab: &mut Lab, python: &Python) -> Result<Vec<Fidelity>, LabError> {
    let (py_hog, rust_hog) = fib_requests(python, Duration::from_millis(60));
    let one = lab.placement.server_one.clone();
    let seconds = lab.profile.pick(2, 2, 4);
    let (window, hog_at) = (
        Duration::from_secs(seconds),
        Duration::from_secs(seconds / 2),
    );
    let mut rows = Vec::new();
    // The essays' threshold server on each side: fib n > 15 goes to a pool of two.
    let hybrid = |cpython_pool: &'static str, to: Target| {
        (
            vec!["--model", "hybrid", "--workers", "2", "--threshold", "15"]
                .into_iter()
                .chain(["--pool", cpython_pool])
                .collect::<Vec<_>>(),
            python.emulation(Model::Hybrid).workers(2).offload(15, to),
        )
    };
    let threads = (vec!["--model", "threads"], python.emulation(Model::Threads));
    let mut servers = vec![
        (metrics::CONVOY_THREADS, threads),
        (
            "rate kept beside a hog: hybrid offloading to a thread pool",
            hybrid("threads", Target::Pool),
        ),
        (
            "rate kept beside a hog: hybrid offloading to a process pool",
            hybrid("processes", Target::Procpool),
        ),
    ];
    if python.has_own_gil_subinterpreters() {
        servers.push((
            metrics::CONVOY_INTERPRETERS,
            (
                vec!["--model", "interpreters", "--workers", "2"],
                python.emulation(Model::Interpreters).workers(2),
            ),
        ));
    }
    for (metric, (cpython_args, emulation)) in servers {
        lab.step(&format!("cpython: {} convoy, {metric}", python.label()));
        let (cpython, emulated) = on_both(
            lab,
            python,
            (&cpython_args, &emulation),
            &one,
            |lab, server, side| {
                let hog = if side == Side::CPython {
                    &py_hog
                } else {
                    &rust_hog
                };
                measure::rate_kept(lab, server, hog, window, hog_at)
            },
        )?;
        let mut row = row(
            python,
            "convoy",
            metric,
            bands::CONVOY,
            (cpython.kept, emulated.kept),
            format!(
                "`fib 1` per second before → after the hog: CPython {:.0} → {:.0} (hog `{py_hog}`), emulation {:.0} → {:.0} (hog `{rust_hog}`); server on CPU {}",
                cpython.before_per_s,
                cpython.after_per_s,
                emulated.before_per_s,
                emulated.after_per_s,
                crate::lab::words::list(&one)
            ),
        );
        if metric == metrics::CONVOY_INTERPRETERS {
            row.gil = Era::PerInterpreter;
        }
        rows.push(row);
    }
    Ok(rows)
}

fn switch_interval(lab: &mut Lab, python: &Python) -> Result<Fidelity, LabError> {
    let intervals_ms: Vec<f64> = lab.profile.pick(
        vec![1.0, 20.0],
        vec![1.0, 5.0, 20.0],
        vec![1.0, 2.0, 5.0, 10.0, 20.0],
    );
    let (py_hog, rust_hog) = fib_requests(python, Duration::from_millis(60));
    let one = lab.placement.server_one.clone();
    let mut cpython = Vec::new();
    let mut emulated = Vec::new();
    for &ms in &intervals_ms {
        lab.step(&format!(
            "cpython: {} switch interval {ms} ms",
            python.label()
        ));
        let seconds = format!("{}", ms / 1e3);
        let emulation = python
            .emulation(Model::Threads)
            .option("--switch-interval", format!("{}us", (ms * 1e3) as u64));
        let (py_rate, rust_rate) = on_both(
            lab,
            python,
            (
                &["--model", "threads", "--switch-interval", &seconds],
                &emulation,
            ),
            &one,
            |lab, server, side| {
                let hog = if side == Side::CPython {
                    &py_hog
                } else {
                    &rust_hog
                };
                let plan = measure::short_plan(
                    lab,
                    server,
                    vec![measure::rapid(), Lab::class("hog", 1, hog, Duration::ZERO)],
                )?;
                Ok(class_result(&lab.load(server, plan)?, "rapid")?.rate_per_s)
            },
        )?;
        cpython.push((ms, py_rate.max(f64::MIN_POSITIVE)));
        emulated.push((ms, rust_rate.max(f64::MIN_POSITIVE)));
    }
    let rates = |points: &[(f64, f64)]| {
        points
            .iter()
            .map(|(ms, rate)| format!("{ms} ms: {rate:.0}/s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(row(
        python,
        "switch-interval",
        "slope of tiny-request rate against switch interval (log–log)",
        bands::SWITCH_SLOPE,
        (
            switch_interval::slope(&cpython),
            switch_interval::slope(&emulated),
        ),
        format!(
            "CPython {}; emulation {}",
            rates(&cpython),
            rates(&emulated)
        ),
    ))
}

fn procpool_overhead(lab: &mut Lab, python: &Python) -> Result<Vec<Fidelity>, LabError> {
    lab.step(&format!(
        "cpython: {} process-pool overhead",
        python.label()
    ));
    let cpython = PoolRates::cpython(lab, python)?;
    let emulated = PoolRates::emulation(lab, python)?;
    let mut rows = vec![row(
        python,
        "procpool-overhead",
        metrics::PROCESS_POOL_COST,
        bands::PROCPOOL_COST,
        (cpython.cost(), emulated.cost()),
        format!(
            "`fib 1` per second, threads → procpool: CPython {}, emulation {}",
            cpython.words("pickling and the executor's own threads, all under the GIL"),
            emulated.words("a pipe round trip, no interpreter work")
        ),
    )];
    if python.has_own_gil_subinterpreters() {
        lab.step(&format!("cpython: {} subinterpreter hop", python.label()));
        let interpreters = ["--model", "interpreters", "--workers", "2"];
        let cpython = PoolRates {
            pooled: pool_rate(lab, |lab, cpus| {
                lab.serve_cpython(python, &interpreters, cpus)
            })?,
            ..cpython
        };
        let spec = python.emulation(Model::Interpreters).workers(2);
        let emulated = PoolRates {
            pooled: pool_rate(lab, |lab, cpus| lab.serve(&spec, cpus))?,
            ..emulated
        };
        let mut row = row(
            python,
            "procpool-overhead",
            metrics::INTERPRETER_HOP_COST,
            bands::PROCPOOL_COST,
            (cpython.cost(), emulated.cost()),
            format!(
                "`fib 1` per second, threads → interpreters: CPython {}, emulation {}",
                cpython.words("entering a subinterpreter and copying the request and the reply"),
                emulated.words("a hand-off to an interpreter's thread and the copies")
            ),
        );
        row.gil = Era::PerInterpreter;
        rows.push(row);
    }
    Ok(rows)
}

fn c10k(lab: &mut Lab, python: &Python) -> Result<Fidelity, LabError> {
    lab.step(&format!("cpython: {} idle connections", python.label()));
    let connections = lab.profile.pick(1_000, 2_000, 2_000);
    let one = lab.placement.server_one.clone();
    let window = Duration::from_millis(lab.profile.pick(800, 1000, 1500));
    let emulation = python
        .emulation(Model::Eventloop)
        .quiet_option("--max-connections", connections + 100);
    let (cpython, emulated) = on_both(
        lab,
        python,
        (&["--model", "asyncio"], &emulation),
        &one,
        |lab, server, _| measure::hold(lab, server, connections, Vec::new(), window),
    )?;
    Ok(row(
        python,
        "c10k",
        "resident KiB per idle connection (asyncio vs eventloop)",
        bands::C10K,
        (
            cpython.resident_per_connection(),
            emulated.resident_per_connection(),
        ),
        format!(
            "{} and {} idle connections held; the band is a cost: the event loop may cost up to twice asyncio's",
            cpython.opened, emulated.opened
        ),
    ))
}

fn io_bound(lab: &mut Lab, python: &Python) -> Result<Fidelity, LabError> {
    lab.step(&format!("cpython: {} I/O-bound clients", python.label()));
    let one = lab.placement.server_one.clone();
    let (cpython, emulated) = on_both(
        lab,
        python,
        (&["--model", "threads"], &python.emulation(Model::Threads)),
        &one,
        |lab, server, _| measure::short_rate(lab, server, io_bound::CLIENTS, io_bound::REQUEST),
    )?;
    Ok(row(
        python,
        "io-bound",
        metrics::IO_BOUND_SHARE,
        bands::IO_BOUND,
        (
            cpython / io_bound::IDEAL_RATE,
            emulated / io_bound::IDEAL_RATE,
        ),
        format!(
            "CPython {cpython:.0}/s, emulation {emulated:.0}/s (ideal {:.0}/s)",
            io_bound::IDEAL_RATE
        ),
    ))
}

// ---- in-process ------------------------------------------------------------------------

fn long_instruction(lab: &mut Lab, python: &Python) -> Result<Vec<Fidelity>, LabError> {
    lab.step(&format!("cpython: {} long instruction", python.label()));
    #[derive(serde::Deserialize)]
    struct PythonLong {
        section_ms: f64,
        longest_gap_ms: Option<f64>,
        signal_delay_ms: Option<f64>,
    }
    let length_ms: u64 = lab.profile.pick(150, 300, 300);
    let all = lab.placement.server_all.clone();
    let cpython: PythonLong = bench(
        &python.path,
        &lab.scripts,
        &["long", "--ms", &length_ms.to_string()],
        Some((&all, &lab.health)),
        Duration::from_secs(60),
    )
    .map_err(|why| LabError::Measurement(format!("{} long: {why}", python.label())))?;
    let emulated = long_instruction::measure(
        gil_config(python),
        long_instruction::Operation::Uninterruptible,
        Duration::from_millis(length_ms),
        (&all, &lab.health),
    )?;
    let missing =
        |what: &str| LabError::Measurement(format!("{}: no {what} was measured", python.label()));
    let note = format!(
        "one C-level call of {:.0} ms in CPython (sum over a range), {length_ms} ms uninterruptible in the emulation; a 10 ms ticker thread; a signal due a quarter of the way in",
        cpython.section_ms
    );
    Ok(vec![
        row(
            python,
            "long-instruction",
            "ticker thread's longest gap (ms)",
            bands::LONG_INSTRUCTION,
            (
                cpython
                    .longest_gap_ms
                    .ok_or_else(|| missing("ticker gap"))?,
                emulated.longest_gap_ms,
            ),
            note.clone(),
        ),
        row(
            python,
            "long-instruction",
            "signal handler's delay (ms)",
            bands::LONG_INSTRUCTION,
            (
                cpython
                    .signal_delay_ms
                    .ok_or_else(|| missing("signal delay"))?,
                emulated.signal_delay_ms(),
            ),
            note,
        ),
    ])
}

fn race(lab: &mut Lab, python: &Python) -> Result<Fidelity, LabError> {
    lab.step(&format!("cpython: {} race", python.label()));
    let each = lab.profile.pick(1_000_000, 2_000_000, 2_000_000);
    let all = lab.placement.server_all.clone();
    let cpython = race::python_race(lab, python, each, &all)?;
    let emulated = race::lost_under_gil(gil_config(python), each, (&all, &lab.health));
    let share = |lost: u64| lost as f64 / (2 * each) as f64;
    Ok(row(
        python,
        "race",
        metrics::RACE_LOST,
        bands::RACE,
        (share(cpython.lost), share(emulated)),
        format!(
            "lost of {}: CPython {}, emulation {} ({} switch points)",
            2 * each,
            cpython.lost,
            emulated,
            python.switch_points().name()
        ),
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
}
