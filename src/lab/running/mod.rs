//! Running the lab: where things run ([`Placement`]), for how long ([`Profile`]), and the
//! [`Lab`] a claim measures through — servers and brokers as pinned child processes
//! ([`process`]), loads on the lab's own CPU, health records of both ([`health`]), the CPython
//! interpreters found ([`pythons`]), the request sizes measured at the start ([`setups`]) and
//! looks at the CPUs between measurements ([`cores`]).

pub mod cores;
pub mod error;
pub mod health;
pub mod interrupt;
pub mod measure;
pub mod process;
pub mod pythons;
pub mod request_cost;
pub mod setups;
pub mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::lab::model::cores::Cores;
pub use crate::lab::running::error::LabError;
use crate::lab::running::health::{Health, HealthLog};
use crate::lab::running::interrupt::Interrupt;
use crate::lab::running::process::{ChildKind, ChildServer, SERVER_DRAIN};
use crate::lab::running::pythons::{Found, LoopIterations, Python, Scripts};
use crate::load::{ClassPlan, LoadResult, Mode, Pacing, Plan, Window};

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The whole catalogue in about four minutes: short windows, the fewest configurations
    Quick,
    /// About nine minutes on two cores with three interpreters: longer windows, more points
    /// per curve
    Default,
    /// Each measurement repeated three times; medians with their spread
    Thorough,
}

impl Profile {
    /// Chooses by profile.
    pub fn pick<T>(self, quick: T, default: T, thorough: T) -> T {
        match self {
            Profile::Quick => quick,
            Profile::Default => default,
            Profile::Thorough => thorough,
        }
    }

    pub fn repeats(self) -> usize {
        self.pick(1, 1, 3)
    }

    pub fn warmup(self) -> Duration {
        Duration::from_millis(self.pick(200, 500, 500))
    }

    /// The measured window of a plain run.
    pub fn window(self) -> Duration {
        Duration::from_millis(self.pick(800, 2000, 2000))
    }

    pub fn name(self) -> &'static str {
        self.pick("quick", "default", "thorough")
    }
}

/// Where things run. With two CPUs: servers get CPU 0 (or both, when the claim is about
/// using two cores), the load generator CPU 1, so ping-pongs always cross cores and never
/// flip between same-core and cross-core from run to run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Placement {
    pub server_one: Vec<usize>,
    pub server_all: Vec<usize>,
    pub load: Vec<usize>,
}

impl Placement {
    pub fn from_allowed(cpus: &[usize]) -> Placement {
        match cpus {
            [] => Placement {
                server_one: vec![0],
                server_all: vec![0],
                load: vec![0],
            },
            [only] => Placement {
                server_one: vec![*only],
                server_all: vec![*only],
                load: vec![*only],
            },
            [first, .., last] => Placement {
                server_one: vec![*first],
                // With more than two CPUs the load keeps one to itself.
                server_all: if cpus.len() > 2 {
                    cpus[..cpus.len() - 1].to_vec()
                } else {
                    cpus.to_vec()
                },
                load: vec![*last],
            },
        }
    }
}

/// The context an experiment runs in.
pub struct Lab {
    pub profile: Profile,
    pub placement: Placement,
    /// The `clab` executable that serves (this one).
    pub clab: PathBuf,
    /// Scratch space for logs and traces, removed afterwards.
    pub scratch: PathBuf,
    /// The CPython interpreters measured beside the emulation, found and calibrated before
    /// the run ([`pythons::select`]).
    pub pythons: Vec<Python>,
    /// One line per interpreter that was looked for and skipped, for the report.
    pub python_notes: Vec<String>,
    /// The reference programs of `python/`, written out for the interpreters.
    pub scripts: Scripts,
    /// The sizes of requests, measured at the start ([`setups::measure`]).
    pub setups: setups::Setups,
    /// The health records of the experiment being run ([`health`]).
    pub health: HealthLog,
    /// The looks at the CPUs taken so far ([`Lab::look_at_cores`]).
    pub cores: Cores,
    /// Set when a signal asks the run to stop; looked at before every server and load.
    pub interrupt: Interrupt,
    /// The shared-objects loops' iterations as each interpreter ran them in a row in its half
    /// of the pair, by its path, for the emulation's half to fit its loops to.
    pub loops_in_a_row: HashMap<PathBuf, LoopIterations>,
    /// Progress text for the current step.
    step: Box<dyn FnMut(&str)>,
    servers_started: usize,
}

impl Lab {
    pub fn new(
        profile: Profile,
        clab: PathBuf,
        scratch: PathBuf,
        pythons: Found,
        scripts: Scripts,
        step: Box<dyn FnMut(&str)>,
    ) -> Lab {
        let placement = Placement::from_allowed(&crate::system::cpus::allowed_cpus());
        Lab {
            profile,
            cores: Cores {
                cpus: placement.server_all.clone(),
                samples: Vec::new(),
            },
            placement,
            clab,
            scratch,
            pythons: pythons.pythons,
            python_notes: pythons.notes,
            scripts,
            setups: setups::Setups::default(),
            health: HealthLog::default(),
            interrupt: Interrupt::new(),
            loops_in_a_row: HashMap::new(),
            step,
            servers_started: 0,
        }
    }

    /// Reports what is being measured now (the progress bar's message). Every measurement
    /// begins with a step, so this is also where an interrupted run stops:
    /// `Err(Interrupted)` once a signal came.
    pub fn step(&mut self, what: &str) -> Result<(), LabError> {
        self.interrupt.check()?;
        (self.step)(what);
        Ok(())
    }

    /// Looks at the servers' CPUs before `before` is measured (a few milliseconds; nothing of
    /// the lab's may run meanwhile), for the report's account of the host.
    pub fn look_at_cores(&mut self, before: &str) {
        if let Some(look) = cores::sample(&self.cores.cpus, before) {
            self.cores.samples.push(look);
        }
    }

    /// Starts `clab serve --addr 127.0.0.1:0` as `spec` describes it, pinned to `cpus`.
    pub fn serve(
        &mut self,
        spec: &spec::ServerSpec,
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        let mut command = Command::new(&self.clab);
        command
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args([
                "--drain-timeout",
                &humantime::format_duration(SERVER_DRAIN).to_string(),
            ])
            .args(spec.argv());
        self.start(command, &spec.label(), cpus)
    }

    /// Starts CPython's reference server (`python/clab_server.py <args>`) under `python`,
    /// pinned to `cpus`.
    pub fn serve_cpython(
        &mut self,
        python: &Python,
        args: &[&str],
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        let mut command = Command::new(&python.path);
        command
            .arg(self.scripts.server())
            .args(["--addr", "127.0.0.1:0"])
            .args(args);
        let label = format!("{} {}", python.label(), args.join(" "));
        self.start(command, &label, cpus)
    }

    /// Starts any server that prints "listening on HOST:PORT" when ready.
    pub fn start(
        &mut self,
        command: Command,
        label: &str,
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        self.start_child(command, (label, ChildKind::Server), cpus)
    }

    /// Starts `nats-server` with JetStream on a free loopback port, its store in the scratch
    /// directory, pinned to `cpus`; `None` where no `nats-server` is installed.
    pub fn start_broker(&mut self, cpus: &[usize]) -> Result<Option<ChildServer>, LabError> {
        let Some(program) = crate::system::programs::find("nats-server") else {
            return Ok(None);
        };
        let store = self
            .scratch
            .join(format!("nats-{}", self.servers_started + 1));
        let mut command = Command::new(program);
        command
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(store);
        self.start_child(command, ("nats-server -js", ChildKind::Broker), cpus)
            .map(Some)
    }

    /// Starts a `clab worker --nats` for `broker`, computing `concurrency` jobs at once,
    /// pinned to `cpus`.
    pub fn start_worker(
        &mut self,
        broker: &ChildServer,
        concurrency: usize,
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        let mut command = Command::new(&self.clab);
        command
            .args(["worker", "--nats", &format!("nats://{}", broker.addr)])
            .args(["--concurrency", &concurrency.to_string()]);
        let label = format!("clab worker --concurrency {concurrency}");
        self.start_child(command, (&label, ChildKind::Worker), cpus)
    }

    fn start_child(
        &mut self,
        mut command: Command,
        (label, kind): (&str, ChildKind),
        cpus: &[usize],
    ) -> Result<ChildServer, LabError> {
        self.interrupt.check()?;
        // The lab's broker asks for no credentials; the user's own are not for it.
        for variable in crate::pool::broker::CREDENTIAL_VARIABLES {
            command.env_remove(variable);
        }
        self.servers_started += 1;
        let log = self
            .scratch
            .join(format!("server-{}.log", self.servers_started));
        let what = match kind {
            ChildKind::Server => "server",
            ChildKind::Broker => "broker",
            ChildKind::Worker => "worker",
        };
        let record = self
            .health
            .open(Health::new(format!("{what} {label}"), cpus));
        ChildServer::start(
            command,
            (label, kind),
            cpus,
            &log,
            Some((self.health.clone(), record)),
        )
    }

    /// A file in the scratch directory.
    pub fn scratch_file(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// A closed-loop class.
    pub fn class(name: &str, clients: usize, request: &str, start_after: Duration) -> ClassPlan {
        ClassPlan::new(name, clients, request, Pacing::Closed)
            .expect("a valid request")
            .starting_after(start_after)
    }

    /// A plan against `server` with the profile's warm-up and `window`.
    pub fn plan(
        &self,
        server: &ChildServer,
        window: Duration,
        classes: Vec<ClassPlan>,
    ) -> Result<Plan, LabError> {
        self.plan_warmed(server, self.profile.warmup(), window, classes)
    }

    /// A plan against `server` with `warmup` before `window`.
    pub fn plan_warmed(
        &self,
        server: &ChildServer,
        warmup: Duration,
        window: Duration,
        classes: Vec<ClassPlan>,
    ) -> Result<Plan, LabError> {
        let window = Window {
            warmup,
            duration: window,
            timeout: Duration::from_secs(30),
        };
        Plan::new(Mode::Lab, server.addr, window, classes)
            .map_err(|e| LabError::Load(server.label.clone(), e.into()))
    }

    /// Runs `plan` on the load CPU, calling `each_second` once a second (to sample the
    /// server while it is under load). The load's health (its thread's CPUs read back,
    /// errors, aborted requests, saturation) and the server's placement, read back while
    /// it is loaded, go to the experiment's health records.
    pub fn load_sampling(
        &self,
        server: &ChildServer,
        plan: Plan,
        each_second: impl FnMut(Duration) + Send,
    ) -> Result<LoadResult, LabError> {
        self.load_sampling_on(server, plan, self.placement.load.clone(), each_second)
    }

    /// [`Lab::load_sampling`] with the load on `cpus` instead of its own CPU.
    pub fn load_sampling_on(
        &self,
        server: &ChildServer,
        plan: Plan,
        cpus: Vec<usize>,
        mut each_second: impl FnMut(Duration) + Send,
    ) -> Result<LoadResult, LabError> {
        self.interrupt.check()?;
        let label = server.label.clone();
        let mut record = Health::new(format!("load on {label}"), &cpus);
        // A thread of its own, pinned: the threads the load starts inherit its CPU, and the
        // lab's main thread (which starts servers) keeps its own placement.
        let (result, actual) = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    crate::system::cpus::pin(&cpus)?;
                    let actual = health::this_thread_cpus();
                    let result = crate::load::run(plan, Duration::from_secs(1), |elapsed, _| {
                        if elapsed == Duration::from_secs(1) {
                            // Workers and children exist by now.
                            server.check_placement();
                        }
                        each_second(elapsed)
                    })?;
                    Ok((result, actual))
                })
                .join()
                .expect("the load thread does not panic")
        })
        .map_err(|e| LabError::Load(label, e))?;
        // The server's placement is read again when it is stopped, drained or not.
        record.observe("the load thread", actual.as_deref());
        record.add_load(&result);
        self.health.add(record);
        Ok(result)
    }

    pub fn load(&self, server: &ChildServer, plan: Plan) -> Result<LoadResult, LabError> {
        self.load_sampling(server, plan, |_| {})
    }

    /// Runs `measure` the profile's number of times; the median and the spread.
    pub fn repeat(
        &mut self,
        measure: impl FnMut(&mut Lab) -> Result<f64, LabError>,
    ) -> Result<Sample, LabError> {
        self.median_run(|value| *value, measure)
            .map(|(_, sample)| sample)
    }

    /// Runs `measure` the profile's number of times and keeps the run whose `key` is the
    /// median (the lower middle one of an even count), with the spread of the keys.
    pub fn median_run<T>(
        &mut self,
        key: impl Fn(&T) -> f64,
        mut measure: impl FnMut(&mut Lab) -> Result<T, LabError>,
    ) -> Result<(T, Sample), LabError> {
        let mut runs = (0..self.profile.repeats().max(1))
            .map(|_| measure(self))
            .collect::<Result<Vec<_>, _>>()?;
        let sample = Sample::new(runs.iter().map(&key).collect());
        runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let middle = (runs.len() - 1) / 2;
        Ok((runs.swap_remove(middle), sample))
    }

    /// Where servers and load run, in words, for the report.
    pub fn placement_words(&self) -> Vec<String> {
        let cpus = |set: &[usize]| crate::lab::words::list(set);
        vec![
            format!(
                "servers that compete for one core run on CPU {}; servers meant to use every core on CPUs {}",
                cpus(&self.placement.server_one),
                cpus(&self.placement.server_all)
            ),
            format!(
                "load generator: CPU {} (pinned with sched_setaffinity, so a ping-pong with a one-CPU server always crosses cores), except for the pool costs, whose one client shares the servers' CPU",
                cpus(&self.placement.load)
            ),
        ]
    }
}

/// Repeated measurements of one number.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Sample {
    pub fn new(mut values: Vec<f64>) -> Sample {
        values.sort_by(f64::total_cmp);
        let median = match values.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => values[n / 2],
            n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        };
        Sample {
            median,
            min: values.first().copied().unwrap_or(f64::NAN),
            max: values.last().copied().unwrap_or(f64::NAN),
            values,
        }
    }

    /// How far apart the middle half of the values lie (from the lower quartile's value to
    /// the upper's); zero for fewer than two.
    pub fn middle_half(&self) -> f64 {
        let n = self.values.len();
        if n < 2 {
            return 0.0;
        }
        self.values[3 * n / 4] - self.values[n / 4]
    }

    /// "12.3" or, with repeats, "12.3 (11.9–12.8)".
    pub fn show(&self, decimals: usize) -> String {
        self.show_with(|value| format!("{value:.decimals$}"))
    }

    /// The median, and with repeats the range, each formatted by `format`.
    pub fn show_with(&self, format: impl Fn(f64) -> String) -> String {
        if self.values.len() > 1 {
            format!(
                "{} ({}–{})",
                format(self.median),
                format(self.min),
                format(self.max)
            )
        } else {
            format(self.median)
        }
    }
}

/// The class named `name` in a result.
pub fn class_result<'a>(
    result: &'a LoadResult,
    name: &str,
) -> Result<&'a crate::load::ClassResult, LabError> {
    result
        .classes
        .iter()
        .find(|class| class.name == name)
        .ok_or_else(|| LabError::Measurement(format!("no class {name:?} in the load result")))
}

/// The median latency of a class, or an error when nothing completed.
pub fn p50_ms(result: &LoadResult, name: &str) -> Result<f64, LabError> {
    class_result(result, name)?.latency_ms.p50.ok_or_else(|| {
        LabError::Measurement(format!(
            "class {name:?} against {} completed no request",
            result.plan.target()
        ))
    })
}

/// The mean latency of a class's closed-loop clients by Little's law, ms: its clients ÷ the
/// rate it completed. Unlike a percentile of the completed requests, it counts the time of a
/// request left waiting while a server answers another client back to back.
pub fn mean_latency_ms(result: &LoadResult, name: &str) -> Result<f64, LabError> {
    let class = class_result(result, name)?;
    if class.completed == 0 || class.rate_per_s <= 0.0 {
        return Err(LabError::Measurement(format!(
            "class {name:?} against {} completed no request",
            result.plan.target()
        )));
    }
    Ok(class.connections as f64 / class.rate_per_s * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_keeps_a_cpu_of_its_own_where_there_are_two() {
        let two = Placement::from_allowed(&[0, 1]);
        assert_eq!((two.server_one, two.load.clone()), (vec![0], vec![1]));
        let four = Placement::from_allowed(&[0, 1, 2, 3]);
        assert_eq!((four.load, four.server_all), (vec![3], vec![0, 1, 2]));
        let one = Placement::from_allowed(&[5]);
        assert_eq!((one.server_one, one.load), (vec![5], vec![5]));
    }
}
