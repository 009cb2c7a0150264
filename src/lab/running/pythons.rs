//! The real CPython interpreters the lab measures beside the emulation: found through pyenv
//! and `PATH`, probed (version, GIL kind) and calibrated (the tick) once per run, and the
//! reference programs of `python/` written out for them.
//!
//! A missing or broken interpreter is never a failure: it becomes a one-line note, and the
//! lab goes on with the others.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::gil::{SwitchPoints, Variant};
use crate::lab::model::Era;
use crate::lab::running::error::LabError;
use crate::lab::running::process::run_to_completion;
use crate::lab::running::request_cost::{self, MeasuredRequest};
use crate::lab::running::spec::ServerSpec;
use crate::pool::{HopCost, HopCosts, hop};
use crate::server::{Model, RequestCosts, Serving};
use crate::system::programs::on_path;

/// The reference servers and in-process programs, embedded so the lab needs no checkout.
const SCRIPTS: [(&str, &str); 4] = [
    (
        "clab_server.py",
        include_str!("../../../python/clab_server.py"),
    ),
    ("clab_aio.py", include_str!("../../../python/clab_aio.py")),
    (
        "clab_bench.py",
        include_str!("../../../python/clab_bench.py"),
    ),
    (
        "clab_workload.py",
        include_str!("../../../python/clab_workload.py"),
    ),
];

/// How long probing or calibrating one interpreter may take.
const PROBE_PATIENCE: Duration = Duration::from_secs(30);

/// How long one pool's hop calibration may take (2.7's `multiprocessing` waits poll, so
/// each job takes at least half a millisecond there).
const HOP_PATIENCE: Duration = Duration::from_secs(60);

/// Which interpreters to measure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// One per era: the newest 2.x, `python3`, the newest 3.x, and a free-threaded build.
    #[default]
    PerEra,
    /// Every interpreter found.
    All,
    /// These executables, in this order.
    Paths(Vec<PathBuf>),
    /// None: the claims are measured on the emulation alone.
    Nothing,
}

/// What CPython's eval loop costs here, from `clab_bench.py tick`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// One iteration of `while n > 0: n -= 1`.
    pub iteration_ns: f64,
    /// Eval-breaker checks in that iteration (2 up to 3.9, 1 from 3.10).
    pub checks_per_iteration: u32,
    /// The time between two checks: the emulation's `--tick`.
    pub tick_ns: f64,
    /// The tick from the slowest of the timings `tick_ns` is the best of: its spread.
    #[serde(skip_deserializing)]
    pub slowest_tick_ns: f64,
    /// One call of the recursive fib.
    pub fib_call_ns: f64,
    /// Eval-breaker checks per fib call, on average (4.5 up to 3.9, 1 from 3.10).
    pub fib_checks_per_call: f64,
    /// Each shared-objects loop's iteration alone.
    pub operations: LoopIterations,
}

/// One iteration of a shared-objects loop as an interpreter runs it alone: its time (the best
/// of five loops) and how often its eval loop looks at its breaker in it, read from the
/// interpreter's source (`clab_bench.py operation_checks`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopIteration {
    pub iteration_ns: f64,
    pub checks: u32,
}

/// The three loops' iterations, by `clab_bench.py shared --op` name.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopIterations {
    pub attribute: LoopIteration,
    pub append: LoopIteration,
    pub call: LoopIteration,
}

impl LoopIterations {
    /// All three, for what holds of each.
    pub fn each(&self) -> [LoopIteration; 3] {
        [self.attribute, self.append, self.call]
    }
}

/// What `clab_bench.py tick` prints beside the calibration: every timing it took.
#[derive(serde::Deserialize)]
struct TickTimes {
    #[serde(flatten)]
    calibration: Calibration,
    iteration_ns_repeats: Vec<f64>,
}

/// What handing a tiny job to one kind of pool costs an interpreter, from `clab_bench.py
/// hop`: the median of its repeats, part by part, and the lowest and highest total — of the
/// quieter of two calibrations (see [`MeasuredHop::quieter`]), the other's median beside it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeasuredHop {
    pub median: HopCost,
    pub lowest: Duration,
    pub highest: Duration,
    /// The median total of the calibration not taken, once there were two.
    pub other: Option<Duration>,
}

impl MeasuredHop {
    /// Of two calibrations of the same hop, the one with the lower median: a slow spell of
    /// the host can outlast every repeat of one calibration (3.11's process-pool hop once
    /// measured 198–252 µs where other runs measured 128–146), and only adds time.
    pub fn quieter(self, other: MeasuredHop) -> MeasuredHop {
        let (taken, left) = if other.median.total() < self.median.total() {
            (other, self)
        } else {
            (self, other)
        };
        MeasuredHop {
            other: Some(left.median.total()),
            ..taken
        }
    }

    /// "62 µs (9 µs submitting; 60–64 µs; the other calibration 70 µs)".
    pub fn describe(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let other = self.other.map_or(String::new(), |other| {
            format!("; the other calibration {:.0} µs", us(other))
        });
        format!(
            "{:.0} µs ({:.0} µs submitting; {:.0}–{:.0} µs{other})",
            us(self.median.total()),
            us(self.median.submitter),
            us(self.lowest),
            us(self.highest)
        )
    }
}

/// An interpreter's executors per job (a process pool; a thread pool; subinterpreters,
/// where it has them with a GIL each), and what the emulation standing for it spends per job
/// beyond its own pools' work.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hops {
    pub processes: MeasuredHop,
    pub threads: MeasuredHop,
    pub interpreters: Option<MeasuredHop>,
    pub emulation: HopCosts,
    /// The CPU both sides were measured on.
    pub cpu: usize,
}

impl Hops {
    /// "a job to a process pool 62 µs (…), to a thread pool 10 µs (…)", and to a
    /// subinterpreter where measured.
    pub fn describe(&self) -> String {
        let mut words = format!(
            "a job to a process pool {}, to a thread pool {}",
            self.processes.describe(),
            self.threads.describe()
        );
        if let Some(hop) = self.interpreters {
            words.push_str(&format!(", to a subinterpreter {}", hop.describe()));
        }
        words.push_str(&format!(", on CPU {}", self.cpu));
        words
    }
}

/// One interpreter, probed and calibrated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Python {
    pub path: PathBuf,
    /// "3.11.7".
    pub version: String,
    pub major: u32,
    pub minor: u32,
    pub era: Era,
    pub calibration: Calibration,
    pub hops: Hops,
    pub requests: Requests,
}

impl Python {
    /// What it said it was, before it was calibrated.
    pub fn identity(&self) -> Identity {
        Identity {
            path: self.path.clone(),
            version: self.version.clone(),
            major: self.major,
            minor: self.minor,
            era: self.era,
        }
    }

    /// "CPython 3.11.7".
    pub fn label(&self) -> String {
        format!("CPython {}", self.version)
    }

    /// "CPython 3.11.7 (new GIL)", "CPython 3.13.5 (free-threaded)".
    pub fn label_with_gil(&self) -> String {
        format!("{} ({})", self.label(), self.era.short())
    }

    /// The emulation's matching GIL: legacy for 2.x, new for 3.2+, none for free threading.
    pub fn variant(&self) -> Variant {
        self.era.variant()
    }

    /// Where its eval loop may switch threads: every instruction up to 3.9, calls and
    /// backward jumps from 3.10.
    pub fn switch_points(&self) -> SwitchPoints {
        if (self.major, self.minor) >= (3, 10) {
            SwitchPoints::CallsAndJumps
        } else {
            SwitchPoints::EveryInstruction
        }
    }

    /// The tick, rounded to whole nanoseconds (at least one).
    pub fn tick(&self) -> Duration {
        whole_ns(self.calibration.tick_ns)
    }

    /// The time between two checks in fib: a call's time over its checks.
    pub fn fib_tick(&self) -> Duration {
        whole_ns(self.calibration.fib_call_ns / self.calibration.fib_checks_per_call)
    }

    /// A `clab serve` of `model` emulating this interpreter: its GIL, tick, switch points,
    /// hop and request costs, for clients on another CPU.
    pub fn emulation(&self, model: Model) -> ServerSpec {
        self.emulation_options(Clients::Across).into_iter().fold(
            ServerSpec::new(model, self.variant()),
            |spec, (name, value)| spec.option(name, value),
        )
    }

    /// The `clab serve` options, after the GIL's, that make the emulation stand for it, for a
    /// server whose clients run where `clients` says.
    pub fn emulation_options(&self, clients: Clients) -> Vec<(&'static str, String)> {
        let hop = |target: &str, cost: HopCost| {
            let ns = |d: Duration| d.as_nanos();
            format!("{target}={}ns+{}ns", ns(cost.submitter), ns(cost.pool))
        };
        let spent = &self.hops.emulation;
        let request = |serving: Serving| {
            let cost = self.requests.emulation(clients).of(serving);
            format!("{}={}ns", serving.name(), cost.as_nanos())
        };
        vec![
            ("--tick", format!("{}ns", self.tick().as_nanos())),
            ("--fib-tick", format!("{}ns", self.fib_tick().as_nanos())),
            ("--switch-points", self.switch_points().name().to_owned()),
            ("--hop-cost", hop("pool", spent.threads)),
            ("--hop-cost", hop("procpool", spent.processes)),
            ("--hop-cost", hop("interpreters", spent.interpreters)),
            ("--request-cost", request(Serving::Thread)),
            ("--request-cost", request(Serving::Loop)),
        ]
    }

    /// The `clab serve` options, after the model, that emulate this interpreter.
    pub fn emulation_args(&self) -> Vec<String> {
        self.emulation(Model::Threads).argv().split_off(2)
    }

    /// Has `sys.setswitchinterval` (3.2+).
    pub fn has_switch_interval(&self) -> bool {
        self.major >= 3
    }

    /// Has subinterpreters with a GIL each (3.12+, PEP 684; 3.11's share one GIL). A
    /// free-threaded build has no GIL to give them.
    pub fn has_own_gil_subinterpreters(&self) -> bool {
        own_gil_subinterpreters((self.major, self.minor), self.era)
    }

    /// Has asyncio (3.4+; the reference server needs 3.6).
    pub fn has_asyncio(&self) -> bool {
        (self.major, self.minor) >= (3, 6)
    }
}

/// Where a server's client runs: on the server's own CPU, as in the pool-cost pairs, or on
/// another, as the lab's load runs everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    Beside,
    Across,
}

/// What a tiny request costs an interpreter's reference server with its client on the same
/// CPU and on another. Across CPUs every request wakes a server that slept, and CPython's
/// request path then runs about twice as long as beside its client (3.13.5t's asyncio
/// server: 24 µs of user time a request beside, 49 across), where the emulated request path
/// and its calibrated spin slow by a fifth: so each placement has its own calibration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Requests {
    pub beside: ServedRequests,
    /// Where this process may use a second CPU.
    pub across: Option<ServedRequests>,
}

impl Requests {
    /// What the emulation spends per request for clients placed as `clients` says (as
    /// beside, where there is no second CPU).
    pub fn emulation(&self, clients: Clients) -> RequestCosts {
        match (clients, &self.across) {
            (Clients::Across, Some(across)) => across.emulation,
            _ => self.beside.emulation,
        }
    }

    /// "a request on a thread 12 µs (…), on an event loop 45 µs (…); with the client on
    /// another CPU, a request on a thread 20 µs (…), …".
    pub fn describe(&self) -> String {
        let mut words = self.beside.describe();
        if let Some(across) = &self.across {
            words.push_str("; with the client on another CPU, ");
            words.push_str(&across.describe());
        }
        words
    }
}

/// One placement's: a tiny request served by a thread per connection and by the event loop
/// (asyncio; 2.7's select loop; none before 3.6), and what the emulation standing for the
/// interpreter spends per request beyond its own request path.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ServedRequests {
    pub thread: MeasuredRequest,
    pub event_loop: Option<MeasuredRequest>,
    pub emulation: RequestCosts,
}

impl ServedRequests {
    /// "a request on a thread 12 µs (…), on an event loop 45 µs (…)".
    pub fn describe(&self) -> String {
        let mut words = format!("a request on a thread {}", self.thread.describe());
        if let Some(event_loop) = self.event_loop {
            words.push_str(&format!(", on an event loop {}", event_loop.describe()));
        }
        words
    }

    /// CPython's costs per way of serving (nothing for a way it lacks).
    fn measured(&self) -> RequestCosts {
        RequestCosts {
            thread: self.thread.median,
            event_loop: self
                .event_loop
                .map_or(Duration::ZERO, |measured| measured.median),
        }
    }
}

/// The reference programs, written into a directory for the interpreters to run.
#[derive(Debug, Clone)]
pub struct Scripts {
    dir: PathBuf,
}

impl Scripts {
    pub fn write(dir: &Path) -> Result<Scripts, LabError> {
        std::fs::create_dir_all(dir).map_err(|e| LabError::Io(dir.into(), e))?;
        for (name, text) in SCRIPTS {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| LabError::Io(path, e))?;
        }
        Ok(Scripts { dir: dir.into() })
    }

    pub fn server(&self) -> PathBuf {
        self.dir.join("clab_server.py")
    }

    pub fn bench(&self) -> PathBuf {
        self.dir.join("clab_bench.py")
    }

    pub fn workload(&self) -> PathBuf {
        self.dir.join("clab_workload.py")
    }

    /// Where a calibration's server writes its standard error.
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }
}

/// Executables that may be CPython: pyenv's versions, then `python2.7`, `python3.N` and
/// free-threaded `python3.Nt` on `PATH`, then `python3` itself.
pub fn candidates() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = pyenv_root();
    if let Some(root) = &root
        && let Ok(versions) = std::fs::read_dir(root.join("versions"))
    {
        let mut paths: Vec<PathBuf> = versions
            .flatten()
            .map(|version| version.path().join("bin/python"))
            .filter(|path| path.is_file())
            .collect();
        paths.sort();
        found.extend(paths);
    }
    let mut names = vec!["python2.7".to_owned()];
    for minor in 0..=20 {
        names.push(format!("python3.{minor}"));
        names.push(format!("python3.{minor}t"));
    }
    // pyenv's shims stand for the versions already listed (and fail for those not selected);
    // only `python3` is asked even there, to learn which version the machine calls python3.
    let shims = root.map(|root| root.join("shims"));
    found.extend(
        names
            .iter()
            .filter_map(|name| on_path(name))
            .filter(|path| !shims.as_ref().is_some_and(|shims| path.starts_with(shims))),
    );
    found.extend(on_path("python3"));
    found
}

fn pyenv_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("PYENV_ROOT") {
        return Some(root.into());
    }
    let mut command = Command::new("pyenv");
    command.arg("root");
    if let Ok(out) = run_to_completion(command, Duration::from_secs(10)) {
        return Some(PathBuf::from(out.trim()));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv"))
}

/// Runs `clab_bench.py <args>` on `python` and parses the JSON it prints.
pub fn bench<T: serde::de::DeserializeOwned>(
    python: &Path,
    scripts: &Scripts,
    args: &[&str],
    pinned: Option<(&[usize], &crate::lab::running::health::HealthLog)>,
    limit: Duration,
) -> Result<T, String> {
    run_script(python, &scripts.bench(), args, pinned, limit)
}

/// Runs `script <args>` on `python` and parses the one JSON value it prints; an error is
/// the program's last line on stderr, or why it did not finish.
pub fn run_script<T: serde::de::DeserializeOwned>(
    python: &Path,
    script: &Path,
    args: &[&str],
    pinned: Option<(&[usize], &crate::lab::running::health::HealthLog)>,
    limit: Duration,
) -> Result<T, String> {
    let mut command = Command::new(python);
    command.arg(script).args(args);
    let name = script.file_name().unwrap_or_default().to_string_lossy();
    let what = format!("{} {name} {}", python.display(), args.join(" "));
    let out = match pinned {
        Some((cpus, log)) => {
            crate::lab::running::process::run_pinned(command, cpus, limit, (log, &what))
        }
        None => run_to_completion(command, limit),
    }
    .map_err(|e| e.to_string())?;
    serde_json::from_str(out.trim()).map_err(|_| format!("it printed {:?}", out.trim()))
}

#[derive(serde::Deserialize)]
struct Probe {
    version: String,
    gil: String,
}

/// What an interpreter says it is, before it is calibrated.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub path: PathBuf,
    /// "3.13.5".
    pub version: String,
    pub major: u32,
    pub minor: u32,
    pub era: Era,
}

impl Identity {
    /// The version as CPython's builds name it: "3.13.5t" for a free-threaded one.
    pub fn name(&self) -> String {
        let suffix = if self.era == Era::FreeThreaded {
            "t"
        } else {
            ""
        };
        format!("{}{suffix}", self.version)
    }
}

/// `ns` rounded to a whole number of nanoseconds, at least one.
fn whole_ns(ns: f64) -> Duration {
    Duration::from_nanos((ns.round() as u64).max(1))
}

/// Asks `path` what it is; an error says why it cannot be used.
fn identify(path: &Path, scripts: &Scripts) -> Result<Identity, String> {
    let probe: Probe = bench(path, scripts, &["probe"], None, PROBE_PATIENCE)?;
    let mut parts = probe.version.split('.').map(|part| part.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(format!("unexpected version {:?}", probe.version));
    };
    // A build is of the legacy, new or free-threaded era; "per-interpreter" describes a
    // measurement, never a build.
    let era = match Era::parse(&probe.gil) {
        Some(era) if era != Era::PerInterpreter => era,
        _ => return Err(format!("unknown GIL kind {:?}", probe.gil)),
    };
    Ok(Identity {
        path: path.into(),
        version: probe.version,
        major,
        minor,
        era,
    })
}

/// Whether CPython `version` of `era` gives each subinterpreter a GIL of its own.
fn own_gil_subinterpreters(version: (u32, u32), era: Era) -> bool {
    version >= (3, 12) && era == Era::New
}

/// Measures the interpreter's tick (about a second), its executors' hops (a second or two)
/// and its server's requests (two seconds): the hops on one CPU as the pool-cost servers run,
/// the requests with the client on that CPU and on another.
fn calibrate(identity: Identity, scripts: &Scripts, own: &Own) -> Result<Python, String> {
    let times: TickTimes = bench(&identity.path, scripts, &["tick"], None, PROBE_PATIENCE)?;
    let slowest = times
        .iteration_ns_repeats
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let calibration = Calibration {
        slowest_tick_ns: slowest / f64::from(times.calibration.checks_per_iteration.max(1)),
        ..times.calibration
    };
    let loops_plausible = calibration
        .operations
        .each()
        .iter()
        .all(|one| one.iteration_ns > 0.0 && one.checks > 0);
    let fib_plausible = calibration.fib_call_ns > 0.0 && calibration.fib_checks_per_call > 0.0;
    if !(calibration.tick_ns > 0.0 && fib_plausible && loops_plausible) {
        return Err(format!("implausible calibration {calibration:?}"));
    }
    let hops = measure_hops(&identity, scripts, own)?;
    let requests = measure_requests(&identity, scripts, own)?;
    Ok(Python {
        path: identity.path,
        version: identity.version,
        major: identity.major,
        minor: identity.minor,
        era: identity.era,
        calibration,
        hops,
        requests,
    })
}

/// The interpreter's executors' hops, each on `own`'s CPU, and what the emulation standing
/// for it spends beyond its own pools.
fn measure_hops(identity: &Identity, scripts: &Scripts, own: &Own) -> Result<Hops, String> {
    let hop = |to: &str| measure_hop(&identity.path, scripts, to, own);
    let (processes, threads) = (hop("processes")?, hop("threads")?);
    let interpreters = own_gil_subinterpreters((identity.major, identity.minor), identity.era)
        .then(|| hop("interpreters"))
        .transpose()?;
    Ok(Hops::beyond(processes, threads, interpreters, own))
}

impl Hops {
    fn beyond(
        processes: MeasuredHop,
        threads: MeasuredHop,
        interpreters: Option<MeasuredHop>,
        own: &Own,
    ) -> Hops {
        let emulation = HopCosts {
            processes: HopCost::beyond(processes.median, own.hops.processes),
            threads: HopCost::beyond(threads.median, own.hops.threads),
            interpreters: interpreters.map_or(HopCost::NONE, |measured| {
                HopCost::beyond(measured.median, own.hops.interpreters)
            }),
        };
        Hops {
            processes,
            threads,
            interpreters,
            emulation,
            cpu: own.cpu,
        }
    }

    /// Each hop the quieter of its calibration here and in `again`.
    fn quieter(self, again: Hops, own: &Own) -> Hops {
        Hops::beyond(
            self.processes.quieter(again.processes),
            self.threads.quieter(again.threads),
            self.interpreters
                .zip(again.interpreters)
                .map(|(first, second)| first.quieter(second)),
            own,
        )
    }
}

/// CPython's reference server per tiny request, on a thread and on its event loop, against
/// the emulated server's own: with the client beside the server, and across CPUs.
fn measure_requests(identity: &Identity, scripts: &Scripts, own: &Own) -> Result<Requests, String> {
    let name = identity.name();
    // The reference server's event loop: asyncio from 3.6, the hybrid's select loop on 2.x.
    let event_loop = match (identity.major, identity.minor) {
        (2, _) => Some("hybrid"),
        version if version >= (3, 6) => Some("asyncio"),
        _ => None,
    };
    let served = |client: usize| -> Result<(MeasuredRequest, Option<MeasuredRequest>), String> {
        let served = |model: &str| {
            let mut command = Command::new(&identity.path);
            command.arg(scripts.server()).args([
                "--addr",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--model",
                model,
            ]);
            served_beside_busy(
                command,
                &format!("CPython {name} {model}"),
                scripts,
                (&own.clab, own.cpu, client),
            )
        };
        Ok((served("threads")?, event_loop.map(served).transpose()?))
    };
    let (thread, event_loop) = served(own.cpu)?;
    let mut beside = ServedRequests {
        thread,
        event_loop,
        emulation: RequestCosts::NONE,
    };
    // Without an event loop measured, nothing is spent beyond the emulated loop's own.
    beside.emulation = RequestCosts::beyond(beside.measured(), own.requests);
    let across = own
        .across
        .map(|client| {
            let (thread, event_loop) = served(client)?;
            let mut across = ServedRequests {
                thread,
                event_loop,
                emulation: RequestCosts::NONE,
            };
            // The emulation as calibrated beside, served across: its spin slows there too,
            // so what it still lacks (or has too much) is added, rather than the difference
            // from its bare request path.
            let emulated = own.served(scripts, beside.emulation, client)?;
            across.emulation = beside.emulation.corrected(across.measured(), emulated);
            Ok::<_, String>(across)
        })
        .transpose()?;
    Ok(Requests { beside, across })
}

/// [`request_cost::measure`] of the server `command` on `cpu`, beside a busy process of the
/// idle class there, from a client thread pinned to `client` (`cpu` itself, or another).
fn served_beside_busy(
    command: Command,
    label: &str,
    scripts: &Scripts,
    (clab, cpu, client): (&Path, usize, usize),
) -> Result<MeasuredRequest, String> {
    kept_busy(clab, cpu, || {
        on_cpu(client, || {
            request_cost::measure(command, label, cpu, &scripts.log(label))
        })
    })
}

/// Runs `measure` on a thread of its own pinned to `cpu`.
fn on_cpu<T>(cpu: usize, measure: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String>
where
    T: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                crate::system::cpus::pin(&[cpu]).map_err(|e| e.to_string())?;
                measure()
            })
            .join()
            .unwrap_or_else(|_| Err("a calibration panicked".into()))
    })
}

/// The jobs and repeats of a hop's calibration, on either side.
const HOP_JOBS: u32 = 300;
const HOP_REPEATS: usize = 5;

/// What the emulated pools spend per job and the emulated servers per tiny request by
/// themselves (under the new GIL, uncontended, the client beside them), measured once per
/// run on `cpu`.
#[derive(Debug, Clone)]
struct Own {
    hops: HopCosts,
    requests: RequestCosts,
    cpu: usize,
    /// The CPU a client across CPUs runs on, where this process may use a second.
    across: Option<usize>,
    /// This program, the busy process beside each hop's calibration.
    clab: PathBuf,
}

impl Own {
    /// Measured on the first CPU this process may use, with `clab` as the process pool's
    /// worker and the server.
    fn measure(clab: &Path, scripts: &Scripts) -> Result<Own, String> {
        let cpus = crate::system::cpus::allowed_cpus();
        let cpu = cpus.first().copied().unwrap_or(0);
        let worker = crate::pool::WorkerCommand::clab(clab, 45);
        let hops = kept_busy(clab, cpu, || {
            on_cpu(cpu, || {
                crate::pool::hop::own_costs(worker, HOP_JOBS, HOP_REPEATS)
                    .map_err(|e| format!("the emulated pools: {e}"))
            })
        })?;
        let mut own = Own {
            hops,
            requests: RequestCosts::NONE,
            cpu,
            across: cpus.last().copied().filter(|&last| last != cpu),
            clab: clab.into(),
        };
        own.requests = own.served(scripts, RequestCosts::NONE, cpu)?;
        Ok(own)
    }

    /// The emulated servers' CPU per tiny request, on a thread and on the event loop, each
    /// spending `spent` beyond its own request path, with the client on `client`.
    fn served(
        &self,
        scripts: &Scripts,
        spent: RequestCosts,
        client: usize,
    ) -> Result<RequestCosts, String> {
        let served = |model: Model| {
            let mut command = Command::new(&self.clab);
            command.args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--gil",
                "new",
            ]);
            command.args(["--model", model.name()]);
            let serving = Serving::of(model);
            let cost = format!("{}={}ns", serving.name(), spent.of(serving).as_nanos());
            command.args(["--request-cost", &cost]);
            let label = format!("the emulated {model} server");
            served_beside_busy(command, &label, scripts, (&self.clab, self.cpu, client))
                .map(|measured| measured.median)
        };
        Ok(RequestCosts {
            thread: served(Model::Threads)?,
            event_loop: served(Model::Eventloop)?,
        })
    }
}

/// What `clab_bench.py hop` prints: seconds per job of each repeat.
#[derive(serde::Deserialize)]
struct HopTimes {
    cpu_s: Vec<f64>,
    submitter_s: Vec<f64>,
}

/// Runs `measure` beside a busy process of the idle class on `cpu`, so the CPU never idles:
/// a hop's jobs come after pauses in which its threads sleep (and 2.7's pool polls in short
/// sleeps), and on a host where bringing an idle virtual CPU back is dear (here once, 3.11's
/// process-pool job measured 283 µs with the CPU left idle and 142 µs kept busy, against
/// 145 µs added to a request served on one busy CPU) that cost would be counted as the
/// interpreter's.
fn kept_busy<T>(
    clab: &Path,
    cpu: usize,
    measure: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let log = crate::lab::running::health::HealthLog::default();
    let busy = crate::lab::running::process::BusyProcess::start_idle(clab, &[cpu], &log)
        .map_err(|e| e.to_string())?;
    let measured = measure();
    drop(busy);
    measured
}

fn measure_hop(
    python: &Path,
    scripts: &Scripts,
    to: &str,
    own: &Own,
) -> Result<MeasuredHop, String> {
    let cpu = own.cpu;
    let (jobs, repeats) = (HOP_JOBS.to_string(), HOP_REPEATS.to_string());
    let gap = hop::GAP.as_secs_f64().to_string();
    let args = [
        "hop",
        "--to",
        to,
        "--jobs",
        &jobs,
        "--repeats",
        &repeats,
        "--gap",
        &gap,
    ];
    let log = crate::lab::running::health::HealthLog::default();
    let times: HopTimes = kept_busy(&own.clab, cpu, || {
        bench(python, scripts, &args, Some((&[cpu], &log)), HOP_PATIENCE)
    })?;
    let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let repeats: Vec<HopCost> = times
        .cpu_s
        .iter()
        .zip(&times.submitter_s)
        .filter(|(total, submitter)| total.is_finite() && submitter.is_finite())
        .map(|(&total, &submitter)| HopCost {
            submitter: seconds(submitter),
            pool: seconds(total - submitter),
        })
        .collect();
    if repeats.is_empty() || repeats.iter().all(HopCost::is_none) {
        return Err(format!("implausible hop to {to}: {repeats:?}"));
    }
    let median = |part: fn(&HopCost) -> Duration| hop::median(repeats.iter().map(part).collect());
    let totals = repeats.iter().map(HopCost::total);
    Ok(MeasuredHop {
        median: HopCost {
            submitter: median(|cost| cost.submitter),
            pool: median(|cost| cost.pool),
        },
        lowest: totals.clone().min().unwrap_or_default(),
        highest: totals.max().unwrap_or_default(),
        other: None,
    })
}

/// What a selection found: the interpreters to measure, and a note for each one skipped.
#[derive(Debug, Default)]
pub struct Found {
    pub pythons: Vec<Python>,
    pub notes: Vec<String>,
}

/// Finds, identifies, picks and calibrates the interpreters `selection` asks for.
/// What the emulated pools cost by themselves is measured once, with `clab` as the process
/// pool's worker, and only when there is an interpreter to calibrate.
pub fn select(selection: &Selection, scripts: &Scripts, clab: &Path) -> Found {
    let (identities, mut notes) = find(selection, scripts);
    let mut pythons = Vec::new();
    if identities.is_empty() {
        return Found { pythons, notes };
    }
    let own = match Own::measure(clab, scripts) {
        Ok(own) => own,
        Err(why) => {
            notes.push(format!("no CPython is calibrated: {why}"));
            return Found { pythons, notes };
        }
    };
    let mut calibrated = Vec::new();
    for identity in identities {
        let path = identity.path.clone();
        match calibrate(identity.clone(), scripts, &own) {
            Ok(python) => calibrated.push((identity, python)),
            Err(why) => notes.push(format!("{} skipped: {why}", path.display())),
        }
    }
    // The hops once more, after every interpreter's first calibration: the two a minute or
    // so apart where there are several interpreters, so one slow spell rarely holds both.
    for (identity, mut python) in calibrated {
        match measure_hops(&identity, scripts, &own) {
            Ok(again) => python.hops = python.hops.quieter(again, &own),
            Err(why) => notes.push(format!(
                "{}: the hops' second calibration failed, the first kept: {why}",
                python.label()
            )),
        }
        pythons.push(python);
    }
    Found { pythons, notes }
}

/// Finds, identifies and picks the interpreters `selection` asks for, oldest first, without
/// calibrating them; a note says why each one left out was.
pub fn find(selection: &Selection, scripts: &Scripts) -> (Vec<Identity>, Vec<String>) {
    let mut notes = Vec::new();
    let paths = match selection {
        Selection::Paths(paths) => paths.clone(),
        Selection::PerEra | Selection::All => candidates(),
        Selection::Nothing => {
            notes.push(
                "--python none: no CPython is measured; every claim is judged on the emulation"
                    .into(),
            );
            Vec::new()
        }
    };
    let mut identities: Vec<Identity> = Vec::new();
    let mut python3 = None;
    for path in &paths {
        match identify(path, scripts) {
            Ok(identity) => {
                if path.file_name().is_some_and(|name| name == "python3") {
                    python3 = Some(identity.version.clone());
                }
                // Shims and symlinks lead to the same interpreter: keep the first.
                if !identities
                    .iter()
                    .any(|seen| seen.version == identity.version && seen.era == identity.era)
                {
                    identities.push(identity);
                }
            }
            Err(why) => notes.push(format!("{} skipped: {why}", path.display())),
        }
    }
    if *selection == Selection::All {
        identities.sort_by_key(|identity| (identity.major, identity.minor, identity.era));
    }
    if *selection == Selection::PerEra {
        identities = per_era(&identities, python3.as_deref());
        if !identities
            .iter()
            .any(|identity| identity.era == Era::FreeThreaded)
        {
            notes.push(
                "no free-threaded CPython (python3.13t, python3.14t) was found: free threading is not measured".into(),
            );
        }
    }
    (identities, notes)
}

/// The newest 2.x, `python3`, the newest 3.x with a GIL, and the newest free-threaded
/// build, without repeats, oldest first.
fn per_era(all: &[Identity], python3: Option<&str>) -> Vec<Identity> {
    let newest = |keep: &dyn Fn(&Identity) -> bool| {
        all.iter()
            .filter(|python| keep(python))
            .max_by_key(|python| (python.major, python.minor))
    };
    let mut chosen: Vec<&Identity> = Vec::new();
    for pick in [
        newest(&|python| python.major == 2),
        python3.and_then(|version| {
            all.iter()
                .find(|python| python.version == version && python.era == Era::New)
        }),
        newest(&|python| python.major == 3 && python.era == Era::New),
        newest(&|python| python.era == Era::FreeThreaded),
    ]
    .into_iter()
    .flatten()
    {
        if !chosen
            .iter()
            .any(|seen| seen.version == pick.version && seen.era == pick.era)
        {
            chosen.push(pick);
        }
    }
    chosen.sort_by_key(|python| (python.major, python.minor, python.era));
    chosen.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(version: &str, era: Era) -> Identity {
        let mut parts = version.split('.').map(|p| p.parse().unwrap());
        Identity {
            path: PathBuf::from(format!("/x/{version}")),
            version: version.into(),
            major: parts.next().unwrap(),
            minor: parts.next().unwrap(),
            era,
        }
    }

    /// A hop of `us` µs, all on the pool's side.
    fn hop(us: u64) -> MeasuredHop {
        let total = Duration::from_micros(us);
        MeasuredHop {
            median: HopCost {
                submitter: Duration::ZERO,
                pool: total,
            },
            lowest: total,
            highest: total,
            other: None,
        }
    }

    #[test]
    fn of_two_hop_calibrations_the_quieter_is_taken_and_the_other_shown() {
        let (quiet, slow) = (hop(136), hop(238));
        for taken in [slow.quieter(quiet), quiet.quieter(slow)] {
            assert_eq!(taken.median, quiet.median);
            assert_eq!(taken.other, Some(Duration::from_micros(238)));
            assert!(
                taken.describe().ends_with("the other calibration 238 µs)"),
                "{}",
                taken.describe()
            );
        }
        assert!(!quiet.describe().contains("other"));
    }

    fn python(version: &str, era: Era) -> Python {
        let identity = identity(version, era);
        Python {
            path: identity.path,
            version: identity.version,
            major: identity.major,
            minor: identity.minor,
            era,
            calibration: Calibration {
                iteration_ns: 20.0,
                checks_per_iteration: 1,
                tick_ns: 20.0,
                slowest_tick_ns: 21.0,
                fib_call_ns: 30.0,
                fib_checks_per_call: 1.0,
                operations: LoopIterations {
                    attribute: LoopIteration {
                        iteration_ns: 40.0,
                        checks: 1,
                    },
                    append: LoopIteration {
                        iteration_ns: 30.0,
                        checks: 1,
                    },
                    call: LoopIteration {
                        iteration_ns: 25.0,
                        checks: 1,
                    },
                },
            },
            hops: Hops {
                processes: hop(60),
                threads: hop(10),
                interpreters: None,
                emulation: HopCosts {
                    threads: HopCost {
                        submitter: Duration::from_micros(4),
                        pool: Duration::from_micros(5),
                    },
                    ..HopCosts::NONE
                },
                cpu: 0,
            },
            requests: Requests {
                beside: ServedRequests {
                    thread: request(12),
                    event_loop: Some(request(45)),
                    emulation: RequestCosts {
                        thread: Duration::from_micros(6),
                        event_loop: Duration::from_micros(38),
                    },
                },
                across: None,
            },
        }
    }

    fn request(us: u64) -> MeasuredRequest {
        let cost = Duration::from_micros(us);
        MeasuredRequest {
            median: cost,
            lowest: cost,
            highest: cost,
        }
    }

    #[test]
    fn one_interpreter_per_era() {
        let all = [
            identity("2.7.18", Era::Legacy),
            identity("3.6.15", Era::New),
            identity("3.11.7", Era::New),
            identity("3.13.0", Era::New),
            identity("3.13.0", Era::FreeThreaded),
        ];
        let chosen: Vec<_> = per_era(&all, Some("3.11.7"))
            .iter()
            .map(|p| (p.version.clone(), p.era))
            .collect();
        assert_eq!(
            chosen,
            [
                ("2.7.18".into(), Era::Legacy),
                ("3.11.7".into(), Era::New),
                ("3.13.0".into(), Era::New),
                ("3.13.0".into(), Era::FreeThreaded),
            ]
        );
        // python3 being the newest 3.x is measured once.
        assert_eq!(per_era(&all[..4], Some("3.13.0")).len(), 2);
    }

    #[test]
    fn each_era_is_emulated_with_its_own_lock_and_switch_points() {
        let legacy = python("2.7.18", Era::Legacy);
        assert_eq!(legacy.variant(), Variant::Legacy);
        assert_eq!(legacy.switch_points(), SwitchPoints::EveryInstruction);
        assert_eq!(
            python("3.9.18", Era::New).switch_points(),
            SwitchPoints::EveryInstruction
        );
        let modern = python("3.11.7", Era::New);
        assert_eq!(modern.switch_points(), SwitchPoints::CallsAndJumps);
        assert_eq!(
            modern.emulation_args(),
            [
                "--gil",
                "new",
                "--tick",
                "20ns",
                "--fib-tick",
                "30ns",
                "--switch-points",
                "calls-and-jumps",
                "--hop-cost",
                "pool=4000ns+5000ns",
                "--hop-cost",
                "procpool=0ns+0ns",
                "--hop-cost",
                "interpreters=0ns+0ns",
                "--request-cost",
                "thread=6000ns",
                "--request-cost",
                "loop=38000ns"
            ]
        );
        assert_eq!(python("3.13.0", Era::FreeThreaded).variant(), Variant::None);
    }

    #[test]
    fn a_bogus_interpreter_is_a_note_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let scripts = Scripts::write(dir.path()).unwrap();
        let found = select(
            &Selection::Paths(vec!["/nonexistent/python9".into()]),
            &scripts,
            Path::new("/nonexistent/clab"),
        );
        assert!(found.pythons.is_empty());
        assert_eq!(found.notes.len(), 1, "{:?}", found.notes);
        assert!(
            found.notes[0].starts_with("/nonexistent/python9 skipped: "),
            "{:?}",
            found.notes
        );
    }
}
