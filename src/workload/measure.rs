//! Runs `python/clab_workload.py` on one interpreter: a check (does the function import and
//! run, how long is one call, what crosses to a process), then the models timed with a number
//! of calls sized from that one call. Plain data out; nothing here judges.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::running::health::HealthLog;
use crate::lab::running::pythons::{Identity, Scripts, run_script};
use crate::workload::Target;

/// How each interpreter is measured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The CPUs the measurements run on; as many workers as CPUs.
    pub cpus: Vec<usize>,
    /// Each model's timing, interleaved with the others', this many times.
    pub repeats: usize,
    /// About how long the calls of one timing take in a row.
    pub timing: Duration,
    /// At most this many calls per timing (tiny calls would otherwise take a pool minutes).
    pub max_calls: u32,
    /// How long the check (an import and three calls) may take, and a pool's call: a
    /// function that takes longer is taken to hang, and its interpreter or model is noted.
    pub patience: Duration,
    /// Whether to serve the function too, under each model, on CPython and the emulation.
    pub serve: bool,
}

impl Settings {
    /// Every CPU this process may use, three repeats of about a fifth of a second each.
    pub fn on_this_machine() -> Settings {
        Settings {
            cpus: crate::system::cpus::allowed_cpus(),
            repeats: 3,
            timing: Duration::from_millis(200),
            max_calls: 2000,
            patience: Duration::from_secs(60),
            serve: true,
        }
    }

    pub fn workers(&self) -> usize {
        self.cpus.len().max(1)
    }

    /// Calls per timing for a call of `call` seconds: about `timing` in a row, at least one
    /// per worker, a whole number per worker.
    pub fn calls(&self, call: f64) -> u32 {
        let workers = self.workers() as u32;
        let wanted = (self.timing.as_secs_f64() / call.max(1e-7)).ceil() as u32;
        wanted
            .clamp(workers, self.max_calls.max(workers))
            .div_ceil(workers)
            * workers
    }
}

/// What `clab_workload.py check` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    pub version: String,
    pub gil: String,
    /// One call, the median of three.
    pub seconds: f64,
    /// The result's `repr`, cut at 80 characters.
    pub result: String,
    /// The arguments and the result pickled, as a process pool sends them.
    pub args_bytes: Option<u64>,
    pub result_bytes: Option<u64>,
    /// Why they cannot cross to another process, if they cannot.
    pub pickle_error: Option<String>,
}

/// What `clab_workload.py measure` prints: seconds of each repeat per model, by the names
/// `serial`, `threads`, `processes-1`, `processes`, `interpreters-1`, `interpreters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub workers: usize,
    pub calls: u32,
    /// The process's CPU over each timing of the calls in a row.
    pub serial_cpu_seconds: Vec<f64>,
    pub seconds: BTreeMap<String, Vec<f64>>,
    /// One line for each model that failed.
    pub errors: BTreeMap<String, String>,
}

/// One interpreter's measurements.
#[derive(Debug, Clone)]
pub struct Measured {
    pub python: Identity,
    pub checked: Checked,
    pub timings: Timings,
}

impl Measured {
    /// A line for each model that could not be measured on this interpreter.
    pub fn notes(&self) -> Vec<String> {
        self.timings
            .errors
            .iter()
            .map(|(model, why)| format!("CPython {}, {model}: {why}", self.python.name()))
            .collect()
    }
}

/// Checks and measures `target` on `python`; an error is one line saying why it cannot.
pub fn measure(
    python: &Identity,
    target: &Target,
    scripts: &Scripts,
    settings: &Settings,
) -> Result<Measured, String> {
    let script = scripts.workload();
    let mut args = vec!["check".to_owned()];
    args.extend(target.script_args());
    // The check runs before any pool exists: a call that never returns is caught here, where
    // stopping the program stops everything it started.
    let checked: Checked = script_run(&python.path, &script, &args, settings, settings.patience)?;
    let calls = settings.calls(checked.seconds);
    let mut args = vec!["measure".to_owned()];
    args.extend(target.script_args());
    for (flag, value) in [
        ("--workers", settings.workers().to_string()),
        ("--calls", calls.to_string()),
        ("--repeats", settings.repeats.to_string()),
        ("--patience", settings.patience.as_secs_f64().to_string()),
    ] {
        args.extend([flag.to_owned(), value]);
    }
    // Six timings a repeat, none of which should take more than a few times the calls in a
    // row, pools to start, and a pool's wait for a call that hangs before it is stopped.
    let in_a_row = checked.seconds * f64::from(calls);
    let patience = 2 * settings.patience
        + Duration::from_secs_f64(10.0 + 10.0 * in_a_row * settings.repeats as f64);
    let mut timings: Timings = script_run(&python.path, &script, &args, settings, patience)?;
    if let Some(why) = &checked.pickle_error {
        for model in ["processes-1", "processes"] {
            timings.seconds.remove(model);
            timings.errors.insert(model.into(), why.clone());
        }
    }
    Ok(Measured {
        python: python.clone(),
        checked,
        timings,
    })
}

fn script_run<T: serde::de::DeserializeOwned>(
    python: &Path,
    script: &Path,
    args: &[String],
    settings: &Settings,
    patience: Duration,
) -> Result<T, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = HealthLog::default();
    run_script(
        python,
        script,
        &args,
        Some((&settings.cpus, &log)),
        patience,
    )
    .map_err(|why| {
        // The script's own one-line reason, without the exit status before it.
        match why.split_once("clab_workload: ") {
            Some((_, reason)) => reason.to_owned(),
            None if why.contains("still running after") => {
                format!("did not finish within {} s", patience.as_secs())
            }
            None => why,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_fill_the_timing_in_whole_rounds_of_workers() {
        let settings = Settings {
            cpus: vec![0, 1],
            repeats: 3,
            timing: Duration::from_millis(200),
            max_calls: 2000,
            patience: Duration::from_secs(60),
            serve: false,
        };
        assert_eq!(settings.calls(0.001), 200);
        assert_eq!(settings.calls(0.0015), 134);
        assert_eq!(settings.calls(1.0), 2, "at least one call per worker");
        assert_eq!(settings.calls(1e-9), 2000, "tiny calls stop at the cap");
    }
}
