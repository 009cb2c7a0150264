//! A whole `clab lab` run as one function: find and calibrate the interpreters, measure the
//! setups, run each claim, and gather the outcomes and their views into a [`LabReport`] —
//! plain data the report renders and `report.json` serialises. Whoever calls it sees the run
//! through an [`Observer`] (the binary's progress bar).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::lab::model::Measurements;
use crate::lab::model::eras::EraRow;
use crate::lab::model::outcome::{Fidelity, Outcome};
use crate::lab::running::interrupt::Interrupt;
use crate::lab::running::pythons::{self, Python, Scripts};
use crate::lab::running::{Lab, LabError, Placement, Profile, setups};
use crate::lab::views::Views;
use crate::lab::views::verdicts::VerdictRow;
use crate::lab::{Options, run};
use crate::system::machine::Machine;

/// The value of `report.json`'s `schema` field.
pub const SCHEMA: &str = "clab-lab/3";

#[derive(Debug, Clone, Serialize)]
pub struct LabEnvironment {
    #[serde(flatten)]
    pub machine: Machine,
    pub cpu_model: String,
    /// The CPython interpreters measured, e.g. "CPython 2.7.18 (legacy GIL)".
    pub pythons: Vec<String>,
}

impl LabEnvironment {
    pub fn detect(pythons: Vec<String>) -> LabEnvironment {
        let cpu_model = <procfs::CpuInfo as procfs::Current>::current()
            .ok()
            .and_then(|info| info.model_name(0).map(str::to_owned))
            .unwrap_or_else(|| "unknown CPU".into());
        LabEnvironment {
            machine: Machine::detect(),
            cpu_model,
            pythons,
        }
    }
}

/// A whole lab run.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub schema: &'static str,
    pub started_at: String,
    pub profile: Profile,
    pub elapsed_s: f64,
    pub environment: LabEnvironment,
    pub placement: Placement,
    /// The request sizes measured at the start.
    pub setups: crate::lab::running::setups::Setups,
    /// The looks at the CPUs between measurements.
    pub cores: crate::lab::model::cores::Cores,
    /// Each claim's verdicts: per era on every interpreter that ran it and on the emulation.
    pub verdicts: Vec<VerdictRow>,
    /// The run's one table: every number, measured once.
    pub measurements: Measurements,
    pub outcomes: Vec<Outcome>,
    /// Every metric measured on real CPython and on the emulation, from all outcomes.
    pub fidelity: Vec<Fidelity>,
    /// Each claim that means something beyond one GIL, judged in each era of CPython's lock,
    /// CPython's numbers beside the emulation's.
    pub eras: Vec<EraRow>,
    /// Whether the run stopped before its last experiment, and what stopped it ("SIGINT"):
    /// the report then holds only the experiments that finished.
    pub partial: bool,
    pub interrupted_by: Option<String>,
    /// The command line that produced the run, one argument an item.
    pub command_line: Vec<String>,
}

/// What a run tells whoever started it, as it goes.
pub trait Observer: Send + Sync {
    /// A line for the user: an interpreter found, a setup measured, a claim judged.
    fn say(&self, line: String);
    /// What is being measured now.
    fn step(&self, what: &str);
    /// A claim finished.
    fn finished(&self, outcome: &Outcome);
}

/// Runs `options`' claims with the `clab` executable at `clab` serving, until done or until
/// `interrupt` is signalled (the report then holds what finished), and gathers the report.
pub fn execute(
    options: &Options,
    clab: PathBuf,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> Result<LabReport, LabError> {
    let scratch = tempfile::Builder::new()
        .prefix("clab-lab-")
        .tempdir()
        .map_err(|e| LabError::Io(std::env::temp_dir(), e))?;
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let started = Instant::now();
    observer.step("finding and calibrating CPython interpreters");
    let scripts = Scripts::write(&scratch.path().join("python"))?;
    let found = pythons::select(options.pythons(), &scripts, &clab);
    for python in &found.pythons {
        observer.say(format!(
            "{} at {}: {}, tick {:.1} ns (best of 5; the slowest {:.1}), fib tick {} ns; {}; {}",
            python.label(),
            python.path.display(),
            python.era.short(),
            python.calibration.tick_ns,
            python.calibration.slowest_tick_ns,
            python.fib_tick().as_nanos(),
            python.hops.describe(),
            python.requests.describe()
        ));
    }
    for note in &found.notes {
        observer.say(format!("note: {note}"));
    }
    let python_labels = found.pythons.iter().map(Python::label_with_gil).collect();
    let stepper = observer.clone();
    let mut lab = Lab::new(
        options.profile(),
        clab,
        scratch.path().to_owned(),
        found,
        scripts,
        Box::new(move |step: &str| stepper.step(step)),
    );
    lab.interrupt = interrupt.clone();
    let measured = lab
        .step("measuring fib and spin on this machine")
        .and_then(|()| setups::measure(&mut lab));
    match measured {
        Ok(measured) => lab.setups = measured,
        // Nothing ran: the report says so, with no experiment in it.
        Err(_) if interrupt.signal().is_some() => {}
        Err(error) => return Err(error),
    }
    for line in lab.setups.describe() {
        observer.say(format!("setup: {line}"));
    }
    let outcomes = run(options.experiments(), &mut lab, |outcome| {
        observer.finished(outcome)
    });
    lab.look_at_cores("the end of the run");
    if let Some(line) = lab.cores.describe() {
        observer.say(format!("host: {line}"));
    }
    let views = Views::of(&outcomes).map_err(|e| LabError::Measurement(e.to_string()))?;
    Ok(LabReport {
        schema: SCHEMA,
        started_at,
        profile: options.profile(),
        elapsed_s: started.elapsed().as_secs_f64(),
        environment: LabEnvironment::detect(python_labels),
        placement: lab.placement.clone(),
        setups: lab.setups.clone(),
        cores: lab.cores.clone(),
        verdicts: views.verdicts,
        measurements: views.measurements,
        fidelity: views.fidelity,
        eras: views.eras,
        partial: interrupt.signal().is_some(),
        interrupted_by: interrupt.name(),
        command_line: std::env::args_os()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
        outcomes,
    })
}
