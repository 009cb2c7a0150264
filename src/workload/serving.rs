//! The function as a server's request: CPython's reference server calling it for each `call`
//! under each model, and the emulated server doing its profile for each `call` under the
//! same model, calibrated to the interpreter as the lab's emulation is (its kind of GIL,
//! tick, switch points and executors' hops). Against each, from the other CPU, a rapid
//! `fib 1` client alone for a second, then a client sending `call` back to back beside it:
//! what a call takes when it shares the server, and what the cheap requests keep — the
//! convoy the function causes. The two sides run the same load, so the emulation's numbers
//! stand beside CPython's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::lab::model::Era;
use crate::lab::model::health::judge;
use crate::lab::running::measure::rate_kept;
use crate::lab::running::pythons::{Found, Identity, Python, Scripts};
use crate::lab::running::{Lab, Profile as LabProfile, p50_ms};
use crate::workload::Target;
use crate::workload::rows::{Model, Profile};

/// The rapid client runs alone for this long, then the caller joins it for as long again.
const ALONE: Duration = Duration::from_secs(1);

/// Which server ran the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// CPython's reference server calling the function.
    Cpython,
    /// `clab serve --workload`: the function's profile, under the interpreter's kind of GIL.
    Emulation,
}

/// One server under the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Served {
    pub python: String,
    pub era: Era,
    pub model: Model,
    pub side: Side,
    /// The median `call`, beside the rapid client.
    pub call_ms: f64,
    /// The rapid client's rate before the caller joined, requests/s.
    pub rapid_per_s: f64,
    /// Its rate beside the caller ÷ before.
    pub kept: f64,
}

/// The models a server of `python` can run, as the reference server names them and as
/// `clab serve` does.
fn models(python: &Identity) -> Vec<(Model, &'static str, crate::server::Model)> {
    use crate::server::Model as Serve;
    let mut models = vec![
        (Model::Threads, "threads", Serve::Threads),
        (Model::Processes, "procpool", Serve::Procpool),
    ];
    let version = (python.major, python.minor);
    if version >= (3, 12) && python.era == Era::New {
        models.push((Model::Interpreters, "interpreters", Serve::Interpreters));
    }
    if version >= (3, 6) {
        models.push((Model::Asyncio, "asyncio", Serve::Eventloop));
    }
    models
}

/// Serves `target` on each of `measured`'s interpreters under each model, CPython's server
/// and the emulation calibrated to that interpreter, as the lab's is; a note for each server
/// that could not be measured cleanly.
pub fn serve(
    measured: &[(Python, Profile)],
    target: &Target,
    scripts: &Scripts,
    clab: &Path,
    progress: &mut dyn FnMut(&str),
) -> (Vec<Served>, Vec<String>) {
    let scratch = match tempfile::Builder::new()
        .prefix("clab-workload-serve-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return (Vec::new(), vec![format!("no server was measured: {e}")]),
    };
    let mut lab = Lab::new(
        LabProfile::Quick,
        clab.into(),
        scratch.path().into(),
        Found::default(),
        scripts.clone(),
        Box::new(|_| {}),
    );
    let workers = lab.placement.server_all.len().max(2);
    let (mut served, mut notes) = (Vec::new(), Vec::new());
    for (calibrated, profile) in measured {
        let python = &calibrated.identity();
        progress(&format!("CPython {}: serving each model", python.name()));
        for (model, reference, emulated) in models(python) {
            for side in [Side::Cpython, Side::Emulation] {
                let started = match side {
                    Side::Cpython => {
                        let mut command = Command::new(&python.path);
                        command
                            .arg(scripts.server())
                            .args(["--addr", "127.0.0.1:0", "--model", reference])
                            .args(["--workers", &workers.to_string()]);
                        command.arg("--workload").arg(target.to_string());
                        for arg in &target.args {
                            command.arg("--workload-arg").arg(arg);
                        }
                        let label = format!("CPython {} {reference}", python.name());
                        let cpus = lab.placement.server_one.clone();
                        lab.start(command, &label, &cpus)
                    }
                    Side::Emulation => {
                        let spec = calibrated
                            .emulation(emulated)
                            .workers(workers)
                            .option("--workload", &profile.work);
                        let cpus = lab.placement.server_one.clone();
                        lab.serve(&spec, &cpus)
                    }
                };
                let measured = started.and_then(|server| {
                    let result = rate_kept(&lab, &server, "call", 2 * ALONE, ALONE);
                    server.stop();
                    result
                });
                let health = judge(&lab.health.take());
                match (measured, health) {
                    (Ok(kept), None) => match p50_ms(&kept.load, "hog") {
                        Ok(call_ms) => served.push(Served {
                            python: python.name(),
                            era: python.era,
                            model,
                            side,
                            call_ms,
                            rapid_per_s: kept.before_per_s,
                            kept: kept.kept,
                        }),
                        Err(e) => notes.push(not_a_result(python, model, side, &e.to_string())),
                    },
                    (Ok(_), Some((_, problems))) => {
                        notes.push(not_a_result(python, model, side, &problems))
                    }
                    (Err(e), _) => notes.push(not_a_result(python, model, side, &e.to_string())),
                }
            }
        }
    }
    (served, notes)
}

fn not_a_result(python: &Identity, model: Model, side: Side, why: &str) -> String {
    let side = match side {
        Side::Cpython => "CPython's server",
        Side::Emulation => "the emulation",
    };
    format!(
        "CPython {}, {} as a server ({side}): not a result: {why}",
        python.name(),
        model.name()
    )
}

/// Whether the emulation's convoy agrees with CPython's, for one interpreter and model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub python: String,
    pub model: Model,
    pub cpython_kept: f64,
    pub emulated_kept: f64,
    /// The lab's band for a convoy's kept share, fixed there before these were measured.
    pub band: String,
    pub faithful: bool,
}

/// Each interpreter and model served on both sides, the emulation's kept share judged
/// against CPython's by the lab's convoy band.
pub fn agreements(served: &[Served]) -> Vec<Agreement> {
    let band = crate::lab::claims::metrics::bands::CONVOY;
    served
        .iter()
        .filter(|real| real.side == Side::Cpython)
        .filter_map(|real| {
            let emulated = served.iter().find(|other| {
                other.side == Side::Emulation
                    && other.python == real.python
                    && other.model == real.model
            })?;
            let [low, high] = band.around(real.kept);
            Some(Agreement {
                python: real.python.clone(),
                model: real.model,
                cpython_kept: real.kept,
                emulated_kept: emulated.kept,
                band: band.describe(),
                faithful: (low..=high).contains(&emulated.kept),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(model: Model, side: Side, kept: f64) -> Served {
        Served {
            python: "3.11.7".into(),
            era: Era::New,
            model,
            side,
            call_ms: 2.0,
            rapid_per_s: 10_000.0,
            kept,
        }
    }

    #[test]
    fn the_emulations_kept_share_is_judged_by_the_convoy_band() {
        let all = [
            served(Model::Threads, Side::Cpython, 0.07),
            served(Model::Threads, Side::Emulation, 0.09),
            served(Model::Processes, Side::Cpython, 0.21),
            served(Model::Processes, Side::Emulation, 0.53),
            served(Model::Asyncio, Side::Cpython, 0.05),
        ];
        let judged: Vec<(Model, bool)> = agreements(&all)
            .iter()
            .map(|agreement| (agreement.model, agreement.faithful))
            .collect();
        assert_eq!(
            judged,
            [(Model::Threads, true), (Model::Processes, false)],
            "a model served on one side only is not judged"
        );
    }
}
