//! One flat row per interpreter and model, and each interpreter's profile of the function:
//! pure functions of the timings.
//!
//! Each model's repeats were timed interleaved with the others', so a ratio is taken within
//! a repeat and the median of those ratios is kept: a slow spell of the machine weighs on
//! both sides of it alike.

use std::time::Duration;

use serde::Serialize;

use crate::lab::model::Era;
use crate::protocol::WorkProfile;
use crate::workload::measure::Measured;

/// How the calls are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// In a row, on one thread.
    Serial,
    /// One thread per worker, in one interpreter.
    Threads,
    /// A process pool: the call and its result pickled across.
    Processes,
    /// A subinterpreter per worker, each with a GIL of its own (3.12+).
    Interpreters,
    /// An event loop calling it inline (as a server only).
    Asyncio,
}

impl Model {
    pub const ALL: [Model; 4] = [
        Model::Serial,
        Model::Threads,
        Model::Processes,
        Model::Interpreters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Serial => "serial",
            Model::Threads => "threads",
            Model::Processes => "processes",
            Model::Interpreters => "interpreters",
            Model::Asyncio => "asyncio",
        }
    }

    /// The names of its timings with every worker and with one.
    fn timings(self) -> (&'static str, &'static str) {
        match self {
            Model::Serial => ("serial", "serial"),
            Model::Threads => ("threads", "serial"),
            Model::Processes => ("processes", "processes-1"),
            Model::Interpreters => ("interpreters", "interpreters-1"),
            Model::Asyncio => ("asyncio", "asyncio"),
        }
    }
}

/// One model on one interpreter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The version as CPython names its build: "3.13.5t" for a free-threaded one.
    pub python: String,
    pub era: Era,
    pub model: Model,
    pub workers: usize,
    /// Calls per second with every worker.
    pub calls_per_s: f64,
    /// Throughput with every worker ÷ with one (the median of the repeats' ratios).
    pub scaling: f64,
    /// One call with one worker of this model, from handing it over to its result.
    pub call_ms: f64,
    /// What a call costs beyond itself made in a row: handing it over, pickling, waking.
    pub overhead_us: f64,
    /// The spread of the repeats with every worker: (slowest − fastest) ÷ median.
    pub spread: f64,
}

/// What the function does on one interpreter, as far as the timings tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub python: String,
    pub era: Era,
    /// One call alone.
    pub call_ms: f64,
    /// The share of a call spent computing (CPU ÷ wall time, in a row); the rest waits.
    pub cpu_share: f64,
    /// The share of a call that runs one at a time on threads, by the Karp–Flatt metric of
    /// their scaling: under a GIL, about the share that holds it. `None` with one worker.
    pub serial_share: Option<f64>,
    /// The arguments and the result pickled, as they cross to a process.
    pub args_bytes: Option<u64>,
    pub result_bytes: Option<u64>,
    /// The call as `clab serve --workload` does it: CPU time holding the GIL (the share
    /// that runs one at a time, at most the CPU share), CPU time with it released, the wait.
    pub work: String,
}

/// The median of `values`, if there are any (the lab's median, whose empty case is NaN).
fn median(values: &[f64]) -> Option<f64> {
    Some(crate::lab::model::table::median(values)).filter(|median| !median.is_nan())
}

/// The rows and the profile of one interpreter's measurements.
pub fn of(measured: &Measured) -> (Vec<Row>, Profile) {
    let timings = &measured.timings;
    let calls = f64::from(timings.calls.max(1));
    let seconds = |name: &str| timings.seconds.get(name).filter(|times| !times.is_empty());
    let serial = seconds("serial").and_then(|times| median(times));
    let rows: Vec<Row> = Model::ALL
        .into_iter()
        .filter_map(|model| {
            let (all, one) = model.timings();
            let (all, one) = (seconds(all)?, seconds(one)?);
            let typical = median(all)?;
            let alone = median(one)?;
            let ratios: Vec<f64> = one.iter().zip(all).map(|(one, all)| one / all).collect();
            let slowest = all.iter().copied().fold(f64::MIN, f64::max);
            let fastest = all.iter().copied().fold(f64::MAX, f64::min);
            Some(Row {
                python: measured.python.name(),
                era: measured.python.era,
                model,
                workers: if model == Model::Serial {
                    1
                } else {
                    timings.workers
                },
                calls_per_s: calls / typical,
                scaling: median(&ratios)?,
                call_ms: alone / calls * 1e3,
                overhead_us: serial.map_or(0.0, |serial| (alone - serial).max(0.0) / calls * 1e6),
                spread: (slowest - fastest) / typical,
            })
        })
        .collect();
    let cpu_share = serial
        .zip(median(&timings.serial_cpu_seconds))
        .map_or(1.0, |(wall, cpu)| (cpu / wall).clamp(0.0, 1.0));
    let threads = rows.iter().find(|row| row.model == Model::Threads);
    let call_ms = serial.map_or(measured.checked.seconds, |serial| serial / calls) * 1e3;
    let serial_share = threads.and_then(|row| karp_flatt(row.scaling, row.workers));
    let profile = Profile {
        python: measured.python.name(),
        era: measured.python.era,
        call_ms,
        cpu_share,
        serial_share,
        args_bytes: measured.checked.args_bytes,
        result_bytes: measured.checked.result_bytes,
        work: work_profile(
            call_ms,
            cpu_share,
            serial_share,
            crossing_bytes(&measured.checked),
        )
        .to_string(),
    };
    (rows, profile)
}

/// The bytes a call's arguments and result take pickled, as they cross to another process.
fn crossing_bytes(checked: &crate::workload::measure::Checked) -> u32 {
    let bytes = checked.args_bytes.unwrap_or(0) + checked.result_bytes.unwrap_or(0);
    u32::try_from(bytes)
        .unwrap_or(u32::MAX)
        .min(crate::protocol::MAX_WORK_BYTES)
}

/// A call of `call_ms` computing `cpu_share` of it, `serial_share` of it one at a time, with
/// `bytes` crossing to a process: the GIL is held for the serial share (never more than the
/// computing), released for the rest of the computing, and the remainder is a wait. Without
/// a measured serial share, all of the computing holds it.
pub fn work_profile(
    call_ms: f64,
    cpu_share: f64,
    serial_share: Option<f64>,
    bytes: u32,
) -> WorkProfile {
    let micros = |ms: f64| Duration::from_secs_f64((ms / 1e3).max(0.0));
    let computing = call_ms * cpu_share;
    let held = (call_ms * serial_share.unwrap_or(1.0)).min(computing);
    WorkProfile {
        held: micros(held),
        released: micros(computing - held),
        waiting: micros(call_ms - computing),
        bytes,
    }
}

/// The experimentally determined serial fraction of a speed-up `speedup` on `workers`
/// (Karp and Flatt, 1990): `(1/S − 1/p) ÷ (1 − 1/p)`, within 0 and 1.
pub fn karp_flatt(speedup: f64, workers: usize) -> Option<f64> {
    if workers < 2 || speedup.is_nan() || speedup <= 0.0 {
        return None;
    }
    let p = workers as f64;
    Some(((1.0 / speedup - 1.0 / p) / (1.0 - 1.0 / p)).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::lab::running::pythons::Identity;
    use crate::workload::measure::{Checked, Timings};

    fn measured(seconds: &[(&str, [f64; 3])], cpu: [f64; 3]) -> Measured {
        Measured {
            python: Identity {
                path: PathBuf::from("/x/python"),
                version: "3.11.7".into(),
                major: 3,
                minor: 11,
                era: Era::New,
            },
            checked: Checked {
                version: "3.11.7".into(),
                gil: "new".into(),
                seconds: 0.002,
                result: "1".into(),
                args_bytes: Some(16),
                result_bytes: Some(5),
                pickle_error: None,
            },
            timings: Timings {
                workers: 2,
                calls: 100,
                serial_cpu_seconds: cpu.to_vec(),
                seconds: seconds
                    .iter()
                    .map(|(name, times)| (name.to_string(), times.to_vec()))
                    .collect(),
                errors: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn rows_take_each_repeats_ratio_and_the_profile_follows_from_them() {
        let measured = measured(
            &[
                ("serial", [0.20, 0.40, 0.20]),
                // A slow spell in the second repeat slows both sides: the ratio stays 1.
                ("threads", [0.20, 0.40, 0.21]),
                ("processes-1", [0.22, 0.44, 0.22]),
                ("processes", [0.11, 0.22, 0.12]),
            ],
            [0.2, 0.4, 0.2],
        );
        let (rows, profile) = of(&measured);
        let models: Vec<Model> = rows.iter().map(|row| row.model).collect();
        assert_eq!(models, [Model::Serial, Model::Threads, Model::Processes]);
        let threads = &rows[1];
        assert!((threads.scaling - 1.0).abs() < 1e-9, "{threads:?}");
        assert!((threads.calls_per_s - 100.0 / 0.21).abs() < 1e-6);
        let processes = &rows[2];
        assert!((processes.scaling - 2.0).abs() < 1e-9, "{processes:?}");
        assert!(
            (processes.overhead_us - 200.0).abs() < 1e-6,
            "{processes:?}"
        );
        assert!((processes.call_ms - 2.2).abs() < 1e-9);
        assert_eq!(profile.serial_share, Some(1.0));
        assert!((profile.cpu_share - 1.0).abs() < 1e-9);
        assert!((profile.call_ms - 2.0).abs() < 1e-9);
        assert_eq!(profile.work, "2000us+0us+0us+21B");
    }

    #[test]
    fn a_waiting_call_has_a_small_cpu_share_and_a_failed_model_no_row() {
        let measured = measured(
            &[("serial", [0.5, 0.5, 0.5]), ("threads", [0.25, 0.26, 0.25])],
            [0.01, 0.01, 0.01],
        );
        let (rows, profile) = of(&measured);
        assert_eq!(rows.len(), 2);
        assert!(profile.cpu_share < 0.05);
        assert_eq!(profile.serial_share, Some(0.0));
        assert_eq!(profile.work, "0us+100us+4900us+21B");
    }

    #[test]
    fn karp_flatt_reads_the_serial_share_off_a_speedup() {
        assert_eq!(karp_flatt(1.0, 2), Some(1.0));
        assert_eq!(karp_flatt(2.0, 2), Some(0.0));
        assert!((karp_flatt(4.0 / 3.0, 2).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(
            karp_flatt(0.8, 2),
            Some(1.0),
            "slower than serial: all of it"
        );
        assert_eq!(karp_flatt(1.5, 1), None);
    }
}
