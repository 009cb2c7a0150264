//! The pairs' methods that measure one process: `python/clab_bench.py` on CPython, the emulated
//! GIL on threads of the lab's own process on the emulation.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::shared_objects::{self, Operation, PythonTimed, Timed, timed};
use super::{Interleaved, Number, On};
use super::{increments, long_operation};
use crate::gil::{GilConfig, PythonThread};
use crate::lab::claims::metrics::{self, bands};
use crate::lab::model::Era;
use crate::lab::model::outcome::Band;
use crate::lab::running::health::HealthLog;
use crate::lab::running::pythons::{LoopIteration, bench};
use crate::lab::running::{Lab, LabError, Sample};
use crate::lab::words::list;
use crate::work::spin;

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

/// Seconds for two jobs of `job_ms` run as `how` on `cpus`, each worker on one of them in
/// turn (one after the other, on either): on CPython two
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
                // A CPU each, as the bench's workers.
                let cpu = cpus[index % cpus.len()];
                log.pin_thread(&format!("countdown {} {index}", how.name()), &[cpu]);
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

pub(super) fn countdown(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    // Many short pairs rather than a few long ones: a host's speed may shift by half for
    // seconds at a time, on one CPU and not the other; seven short tries of each side are
    // likelier to find a quiet stretch than three long ones.
    let job_ms: u64 = lab.profile.pick(60, 60, 100);
    let repeats = lab.profile.pick(3, 7, 9);
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
        lab.step(&format!("{}: countdown {metric}", on.label()))?;
        // On two CPUs each side's fastest run is judged, which a noisy round does not move.
        let rounds = if cpus.len() > 1 { 1 } else { ROUNDS };
        let mut measured: Vec<Round> = Vec::new();
        while measured.len() < rounds {
            // The two interleaved, so both sides come from the same stretch of the host's time.
            let (mut at_once, mut in_a_row) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                at_once.push(countdown_seconds(lab, on, job_ms, how, cpus)?);
                in_a_row.push(countdown_seconds(lab, on, job_ms, Countdown::Serial, cpus)?);
            }
            let round = Round::new(at_once, in_a_row);
            let quiet = !round.too_spread_for(band);
            measured.push(round);
            if quiet {
                break;
            }
        }
        let rounds_words = Round::describe(&measured);
        let Round {
            at_once, in_a_row, ..
        } = Round::quietest(measured);
        let what = match on {
            On::CPython(_) => "countdown(n)",
            On::Emulation(_) => "`spin`",
        };
        let runs = format!(
            "two {what} jobs of {job_ms} ms as {}, a worker on each of CPUs {} in turn, ÷ one after the other, timed from when both workers run",
            how.name(),
            list(cpus)
        );
        // On two CPUs the run at once waits for the slower one; on one, both runs feel the
        // host alike and the pairs' median is the steadier.
        let (judged, statistic) = if cpus.len() > 1 {
            let words = format!("the fastest of {repeats} of each, interleaved");
            (Interleaved::Fastest, words)
        } else {
            let words = format!("the median of {repeats} interleaved pairs{rounds_words}");
            (Interleaved::MedianOfPairs, words)
        };
        let number = Number::interleaved(
            on,
            metric,
            band,
            (&at_once, &in_a_row),
            judged,
            format!("{runs}; {statistic}"),
        );
        numbers.push(if how == Countdown::Interpreters {
            number.per_interpreter()
        } else {
            number
        });
    }
    Ok(numbers)
}

/// How many rounds of pairs a countdown on one CPU may take: a round whose pairs spread too
/// widely to judge is measured again, up to this many, and the quietest round is judged.
const ROUNDS: usize = 3;

/// One round of a countdown's interleaved pairs: the times at once and in a row, and the
/// pairs' ratios.
struct Round {
    at_once: Vec<f64>,
    in_a_row: Vec<f64>,
    ratios: Sample,
}

impl Round {
    fn new(at_once: Vec<f64>, in_a_row: Vec<f64>) -> Round {
        let ratios = at_once.iter().zip(&in_a_row).map(|(a, b)| a / b).collect();
        Round {
            at_once,
            in_a_row,
            ratios: Sample::new(ratios),
        }
    }

    /// How far apart the middle half of the pairs' ratios lie.
    fn spread(&self) -> f64 {
        self.ratios.middle_half()
    }

    /// Whether the pairs spread more than half as wide as `band` around their ratio: a spell
    /// of the host caught some pairs and not others, and the median would sit inside the
    /// measurement's own noise.
    fn too_spread_for(&self, band: Band) -> bool {
        let [low, high] = band.around(self.ratios.median);
        self.spread() > (high - low) / 2.0
    }

    /// The round whose pairs spread least.
    fn quietest(rounds: Vec<Round>) -> Round {
        rounds
            .into_iter()
            .min_by(|a, b| a.spread().total_cmp(&b.spread()))
            .expect("at least one round")
    }

    /// Nothing for one round; for more, which was judged and how each spread.
    fn describe(rounds: &[Round]) -> String {
        if rounds.len() < 2 {
            return String::new();
        }
        let spreads: Vec<String> = rounds
            .iter()
            .map(|r| format!("{:.2}", r.spread()))
            .collect();
        format!(
            ", the quietest of {} rounds (a round whose pairs' middle half spans more than half the band is measured again; theirs spanned {})",
            rounds.len(),
            spreads.join(", ")
        )
    }
}

/// The long operation's length on both sides.
pub(crate) fn long_length(lab: &Lab) -> Duration {
    Duration::from_millis(lab.profile.pick(150, 300, 300))
}

pub(super) fn long_instruction(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    lab.step(&format!("{}: long instruction", on.label()))?;
    let length = long_length(lab);
    let all = lab.placement.server_all.clone();
    match on {
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
                &["long", "--ms", &length.as_millis().to_string()],
                Some((&all, &lab.health)),
                Duration::from_secs(60),
            )
            .map_err(|why| LabError::Measurement(format!("{} long: {why}", python.label())))?;
            let missing = |what: &str| {
                LabError::Measurement(format!("{}: no {what} was measured", python.label()))
            };
            Ok(long_numbers(
                on,
                measured
                    .longest_gap_ms
                    .ok_or_else(|| missing("ticker gap"))?,
                measured
                    .signal_delay_ms
                    .ok_or_else(|| missing("signal delay"))?,
                measured.section_ms,
                format!(
                    "one C-level call of {:.0} ms (a sum over a range, {} ms calibrated)",
                    measured.section_ms,
                    length.as_millis()
                ),
            ))
        }
        On::Emulation(emulated) => {
            let measured = long_operation::measure(
                emulated.gil.clone(),
                long_operation::Operation::Uninterruptible,
                length,
                (&all, &lab.health),
            )?;
            Ok(long_measured(on, &measured))
        }
    }
}

/// The pair's numbers of one emulated long operation.
pub(crate) fn long_measured(on: On, measured: &long_operation::Measured) -> Vec<Number> {
    long_numbers(
        on,
        measured.longest_gap_ms,
        measured.signal_delay_ms(),
        measured.length_ms(),
        format!("{:.0} ms uninterruptible", measured.length_ms()),
    )
}

fn long_numbers(on: On, gap_ms: f64, delay_ms: f64, section_ms: f64, what: String) -> Vec<Number> {
    let note = format!(
        "{what}; a 10 ms ticker thread, its longest gap {gap_ms:.0} ms; a signal due a quarter of the way in, handled {delay_ms:.0} ms later"
    );
    // Each side against its own operation's measured length: how long a sum over a range
    // runs is the host's and the moment's, and the claim is that the operation, however
    // long, holds the ticker and the signal for its whole length.
    vec![
        Number::new(
            on,
            metrics::LONG_DELAY,
            bands::LONG_INSTRUCTION,
            vec![delay_ms / section_ms.max(f64::MIN_POSITIVE)],
            note.clone(),
        ),
        Number::new(
            on,
            metrics::LONG_STALL,
            bands::LONG_STALL,
            vec![long_operation::stall(gap_ms, section_ms)],
            note,
        ),
    ]
}

pub(super) fn race(lab: &mut Lab, on: On) -> Result<Number, LabError> {
    lab.step(&format!("{}: race", on.label()))?;
    let each = lab.profile.pick(1_000_000, 2_000_000, 2_000_000);
    let all = lab.placement.server_all.clone();
    let (lost, how) = match on {
        On::CPython(python) => (
            increments::python_race(lab, python, each, &all)?.lost,
            "`counter[0] += 1`".to_owned(),
        ),
        On::Emulation(emulated) => (
            increments::lost_under_gil(emulated.gil.clone(), each, (&all, &lab.health)),
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

/// Two threads running each operation's loop on objects of their own and on one shared
/// object, each ÷ one thread running both loops in a row on the same kind of objects: the
/// four timed back to back in every repeat, the fastest at once over the fastest in a row.
pub(super) fn shared_objects(lab: &mut Lab, on: On) -> Result<Vec<Number>, LabError> {
    let length = Duration::from_millis(lab.profile.pick(20, 40, 40));
    let repeats = lab.profile.pick(3, 9, 9);
    let all = lab.placement.server_all.clone();
    let mut numbers = Vec::new();
    for operation in Operation::ALL {
        let (own, one) = operation.metrics();
        if !on.wants(own) && !on.wants(one) {
            continue;
        }
        lab.step(&format!(
            "{}: shared objects, {}",
            on.label(),
            operation.name()
        ))?;
        let iteration = on.loop_iteration(operation);
        let iterations = shared_objects::iterations(iteration, length);
        let mut emulation_note = String::new();
        let timings: Vec<Timed> = match on {
            On::CPython(python) => {
                let (each, times) = (iterations.to_string(), repeats.to_string());
                let timed: PythonTimed = bench(
                    &python.path,
                    &lab.scripts,
                    &[
                        "shared",
                        "--op",
                        operation.name(),
                        "--each",
                        &each,
                        "--repeats",
                        &times,
                    ],
                    Some((&all, &lab.health)),
                    Duration::from_secs(120),
                )
                .map_err(|why| {
                    LabError::Measurement(format!("{} shared objects: {why}", python.label()))
                })?;
                timed.repeats()
            }
            On::Emulation(emulated) => {
                // Every repeat's serial loops run on the bench's one main thread.
                let main_heap = Mutex::default();
                // The interpreter's loop as it ran in a row in this pair, fastest of the
                // repeats spread over the bench's seconds; or as calibrated, five loops in
                // one moment of the host (its iteration there moved 65–74 ns with the host
                // between runs, and the emulated ratio with it).
                let (target, whence) = match &emulated.loops_in_a_row {
                    Some(loops) => (
                        operation.of(loops),
                        "its fastest loops in a row in this pair",
                    ),
                    None => (iteration, "calibrated"),
                };
                let fitted = shared_objects::fitted(
                    &emulated.gil,
                    (operation, target, iterations),
                    &main_heap,
                    (&all, &lab.health),
                );
                let eval_loop = fitted.eval_loop;
                emulation_note = format!(
                    "; fitted to the interpreter's {:.0} ns an iteration ({whence}), an emulated loop alone took {} ns an iteration (each of 5 loops), spending {:.0} ns of eval-loop work in each beside the emulated objects' own",
                    target.iteration_ns,
                    Sample::new(fitted.alone_ns).show_with(|ns| format!("{ns:.0}")),
                    eval_loop.iteration_ns,
                );
                (0..repeats)
                    .map(|_| {
                        let run = (operation, eval_loop, iterations);
                        timed(&emulated.gil, run, &main_heap, (&all, &lab.health))
                    })
                    .collect()
            }
        };
        if timings.len() != repeats || !timings.iter().all(Timed::measured) {
            return Err(LabError::Measurement(format!(
                "{} shared objects, {}: {repeats} repeats of four positive times expected, got {timings:?}",
                on.label(),
                operation.name()
            )));
        }
        if let On::CPython(python) = on {
            // Its fastest loops in a row, for the emulation's half to fit its loops to.
            let fastest = Sample::new(timings.iter().map(|t| t.own_in_a_row).collect()).min;
            let loops = lab
                .loops_in_a_row
                .entry(python.path.clone())
                .or_insert(python.calibration.operations);
            *operation.of_mut(loops) = LoopIteration {
                iteration_ns: fastest * 1e9 / (2 * iterations) as f64,
                ..iteration
            };
        }
        let note = |objects: &str| {
            format!(
                "two threads × {iterations} iterations of `{}` on {objects}, a CPU each of {}, ÷ one thread doing both loops on the same kind of objects; the fastest of {repeats} repeats each, the four timed back to back in each{emulation_note}",
                operation.code(),
                list(&all)
            )
        };
        let times = |side: fn(&Timed) -> f64| timings.iter().map(side).collect::<Vec<_>>();
        for (metric, (at_once, in_a_row), objects) in [
            (
                own,
                (times(|t| t.own_at_once), times(|t| t.own_in_a_row)),
                operation.own_objects(),
            ),
            (
                one,
                (times(|t| t.shared_at_once), times(|t| t.shared_in_a_row)),
                operation.shared_object(),
            ),
        ] {
            numbers.push(Number::interleaved(
                on,
                metric,
                bands::SHARED_OBJECTS,
                (&at_once, &in_a_row),
                Interleaved::Fastest,
                note(objects),
            ));
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R2's pairs on CPython 3.11 (a spell caught four of seven) against a quiet round.
    #[test]
    fn a_round_caught_by_a_spell_is_measured_again_and_the_quietest_judged() {
        let round = |ratios: &[f64]| Round::new(ratios.to_vec(), vec![1.0; ratios.len()]);
        let band = bands::COUNTDOWN_ONE_CORE;
        let noisy = round(&[1.02, 0.79, 1.63, 1.04, 0.80, 0.67, 0.90]);
        let quiet = round(&[1.03, 1.01, 0.96, 0.96, 1.00, 0.91, 1.09]);
        assert!((noisy.spread() - 0.25).abs() < 1e-9, "{}", noisy.spread());
        assert!(noisy.too_spread_for(band));
        assert!(!quiet.too_spread_for(band), "{}", quiet.spread());
        let words = Round::describe(&[round(&[1.0]), round(&[1.0])]);
        assert!(words.contains("the quietest of 2 rounds"), "{words}");
        assert_eq!(Round::describe(&[round(&[1.0])]), "");
        let judged = Round::quietest(vec![noisy, quiet]);
        assert_eq!(judged.at_once[0], 1.03);
    }
}
