//! The command line of `clab`: clap's types live here only, and each subcommand's options
//! are turned once into the library's validated configurations (`ServerConfig`, `Plan`,
//! `lab::Options`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ColorChoice, Parser, Subcommand};

mod broker;
pub use broker::BrokerAccessArgs;

use clab::choice::Choice;
use clab::demo::Scenario;
use clab::gil::{GilConfig, SwitchPoints, Variant};
use clab::lab::Options;
use clab::lab::running::pythons::Selection;
use clab::lab::running::{LabError, Profile};
use clab::load::{ClassPlan, Mode, Pacing, Plan, PlanError, Window};
use clab::pool::broker::Broker;
use clab::pool::{HopCost, HopCosts};
use clab::protocol::{HARD_MAX_N, WorkProfile};
use clab::server::offload::{Destination, Policy, Target};
use clab::server::{ConfigError, Model, ServerConfig, Serving};
use clab::system::limits::MAX_CONNECTIONS;

/// A parser for a setting chosen by name, listing each value with what it means.
fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        T::ALL
            .iter()
            .map(|value| PossibleValue::new(value.name()).help(value.describe())),
    )
    .map(|name| T::from_name(&name).expect("clap admits only the listed names"))
}

#[derive(Debug, Parser)]
#[command(
    name = "clab",
    version = clab::system::machine::VERSION_LINE,
    about = "A workbench for concurrency models: one Fibonacci \
    service under every model, measured",
    propagate_version = true,
    after_help = EXIT_STATUS
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Colour in the terminal views and the log: auto leaves it out where NO_COLOR is set
    /// (the log also off a terminal)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// What `clab` exits with, for scripts and CI jobs.
pub const EXIT_STATUS: &str = "\
Exit status:
  0         done
  1         an error, said in one line starting `clab:` (a server that cannot start, a
            lab experiment that could not measure, a load whose every request failed)
  2         a usage error: an unknown option or a bad value
  3         clab lab --fail-on: a claim ended as --fail-on names
  130, 143  clab lab interrupted by SIGINT or SIGTERM (the partial report is written)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Fibonacci protocol under one concurrency model
    #[command(after_long_help = SERVE_EXAMPLES)]
    Serve(Box<ServeArgs>),
    /// Put load on a server and measure it: latency, rate, mixed classes, open loop, idle
    #[command(after_long_help = LOAD_EXAMPLES)]
    Load(LoadArgs),
    /// Watch a running server: requests/s, connections, errors, and its GIL — how much of
    /// each moment it is held, switches, forced and voluntary releases, the longest waits
    #[command(after_long_help = TOP_EXAMPLES)]
    Top(TopArgs),
    /// A story told live on the terminal: server, load and `top` side by side
    #[command(after_long_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Run the essays' claims as experiments and write a report with verdicts and plots
    #[command(after_long_help = LAB_EXAMPLES)]
    Lab(LabArgs),
    /// Measure your own Python function under every model on every CPython found, and say
    /// which model fits it
    #[command(after_long_help = WORKLOAD_EXAMPLES)]
    Workload(WorkloadArgs),
    /// A worker: with --nats, pulls jobs from a broker's work queue (run any number, on any
    /// machine); without, a process-pool worker reading stdin (started by the pool)
    #[command(after_long_help = WORKER_EXAMPLES)]
    Worker(WorkerArgs),
    /// Print a completion script for a shell
    #[command(after_long_help = COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print clab's manual page (roff), generated from the same definitions as --help
    #[command(after_long_help = "Example:\n  clab man | man -l -")]
    Man,
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  source <(clab completions bash)                      # this shell
  clab completions bash > ~/.local/share/bash-completion/completions/clab
  clab completions zsh > \"${fpath[1]}/_clab\"
  clab completions fish > ~/.config/fish/completions/clab.fish";

const LAB_EXAMPLES: &str = "\
Each experiment starts real servers (`clab serve`, and CPython's python/clab_server.py) as
child processes pinned to chosen CPUs, puts load on them from another CPU, and judges the
claim by a rule fixed before the run: holds, does not hold, or inconclusive, with the numbers.
Each claim CPython can run is also measured on every interpreter found and on the emulation
calibrated to each (GIL kind, switch points, measured tick), by one method, and judged era by
era on both; the `cpython` experiment reads those pairs: the fidelity matrix.

Examples:
  clab lab                          the whole catalogue, default profile (about 13½ minutes)
  clab lab --quick                  the whole catalogue in about 4 minutes
  clab lab --fail-on does-not-hold  as a CI gate: exit 3 if a claim does not hold
  clab lab list                     the experiments and their claims
  clab lab run convoy cpython       two experiments: convoy, and its fidelity on CPython
  clab lab --python all                                     every CPython found (pyenv, PATH)
  clab lab run race cpython --python /usr/bin/python2.7     one interpreter
  clab lab all --thorough --out /tmp/report
  clab lab compare old-report report  two runs: each measurement's change, changed verdicts

The report: <out>/index.html (one self-contained page), <out>/README.md, <out>/plots/
(SVG and PNG), <out>/data/<experiment>.json, <out>/measurements.csv (every number measured,
one row each) and <out>/report.json (schema clab-lab/3). The report files of a previous run
in <out> are replaced; nothing else there is touched.";

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub action: Option<LabAction>,

    /// The whole catalogue in about four minutes: short runs, fewest points
    #[arg(long, global = true, conflicts_with = "thorough")]
    pub quick: bool,

    /// Each experiment's key measurements three times; medians with their spread
    #[arg(long, global = true)]
    pub thorough: bool,

    /// Where the report goes
    #[arg(long, global = true, default_value = "report", value_name = "DIR")]
    pub out: PathBuf,

    /// Exit with status 3 when a claim ends this way (repeatable), so a CI job can use the
    /// lab as a gate; an experiment that could not measure exits 1 regardless
    #[arg(long, global = true, value_enum, value_name = "VERDICT")]
    pub fail_on: Vec<FailOn>,

    /// A CPython to measure beside the emulation (repeatable), `all` for every one found
    /// through pyenv and PATH, or `none` for the emulation alone [default: one per era — the
    /// newest 2.x, python3, the newest 3.x, and a free-threaded build where there is one]
    #[arg(long, global = true, value_name = "PATH|all|none", value_parser = parse_python)]
    pub python: Vec<PythonArg>,
}

/// The verdicts `clab lab --fail-on` fails on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    DoesNotHold,
    Inconclusive,
}

impl FailOn {
    pub fn verdict(self) -> clab::lab::model::outcome::Verdict {
        match self {
            FailOn::DoesNotHold => clab::lab::Verdict::DoesNotHold,
            FailOn::Inconclusive => clab::lab::Verdict::Inconclusive,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// List the experiments: each claim, its essay, its rule and the rule's history
    List {
        /// As one JSON array
        #[arg(long)]
        json: bool,
    },
    /// Run the named experiments
    Run {
        /// Experiment ids, as `clab lab list` shows them
        #[arg(required = true, value_name = "EXPERIMENT")]
        ids: Vec<String>,
    },
    /// Run every experiment (the default)
    All,
    /// Set two runs side by side: per measurement the change and whether it is beyond the
    /// runs' own repeat spread, then every verdict that changed
    Compare {
        /// The earlier run: its report directory or its report.json
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The later run: its report directory or its report.json
        #[arg(value_name = "NEW")]
        new: PathBuf,
    },
}

impl LabArgs {
    /// The lab's options, or `None` for `clab lab list` and `clab lab compare`, which run
    /// nothing.
    pub fn options(&self) -> Result<Option<Options>, LabError> {
        let ids: &[String] = match &self.action {
            Some(LabAction::List { .. } | LabAction::Compare { .. }) => return Ok(None),
            Some(LabAction::Run { ids }) => ids,
            Some(LabAction::All) | None => &[],
        };
        Options::new(ids, self.profile(), self.out.clone(), self.pythons()).map(Some)
    }

    /// The interpreters `--python` asks for.
    fn pythons(&self) -> Selection {
        selection(&self.python)
    }

    fn profile(&self) -> Profile {
        match (self.quick, self.thorough) {
            (true, _) => Profile::Quick,
            (_, true) => Profile::Thorough,
            _ => Profile::Default,
        }
    }
}

const WORKLOAD_EXAMPLES: &str = "\
On each interpreter the function is imported and called once (a one-line note and a skip
where it cannot be), then timed: calls in a row, the same calls spread over threads, a process
pool and, on 3.12+ with a GIL, subinterpreters (each also with one worker), as many workers as
CPUs, each model's timings interleaved with the others'. The table shows each model's calls
per second, its scaling (every worker ÷ one) and what a call costs it beyond the call; the
answer per interpreter comes from rules fixed before the run, printed with it.

An --arg is a Python literal (1048576, \"'text'\", \"{'a': [1, 2]}\"); anything else is passed
as a string.

Examples:
  clab workload examples/workloads/json_roundtrip.py:roundtrip --arg 200
  clab workload examples/workloads/sha256.py:digest --arg 1048576
  clab workload examples/workloads/waiting.py:wait --arg 5 --python all
  clab workload handler.py:handle --arg \"{'user': 7}\" --json answer.json";

#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// The function to measure: a Python file and a function in it, which must be importable
    /// by its file's name (and picklable, for a process pool)
    #[arg(value_name = "PATH.py:FUNCTION")]
    pub target: String,

    /// An argument of one typical call (repeatable, in order), a Python literal
    #[arg(long = "arg", value_name = "LITERAL", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// A CPython to measure on (repeatable), `all` for every one found through pyenv and PATH
    /// [default: one per era — the newest 2.x, python3, the newest 3.x, and a free-threaded
    /// build where there is one]
    #[arg(long, value_name = "PATH|all", value_parser = parse_python_to_measure)]
    pub python: Vec<PythonArg>,

    /// Each model's timing this many times, interleaved with the others'; medians are kept
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeats: u32,

    /// Measure calls only: do not also serve the function under each model (CPython's
    /// reference server and the emulation of its profile, about 4 s per model)
    #[arg(long)]
    pub no_serve: bool,

    /// Also write the report as JSON (`rows`, `profiles`, `served`, `recommendations`,
    /// `rules`, `notes`) to FILE, or to standard output with `-`
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl WorkloadArgs {
    pub fn target(&self) -> Result<clab::workload::Target, clab::workload::TargetError> {
        clab::workload::Target::parse(&self.target, self.args.clone())
    }

    pub fn pythons(&self) -> Selection {
        selection(&self.python)
    }

    pub fn settings(&self) -> clab::workload::Settings {
        clab::workload::Settings {
            repeats: self.repeats as usize,
            serve: !self.no_serve,
            ..clab::workload::Settings::on_this_machine()
        }
    }
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Largest n accepted by `fib`
    #[arg(long, default_value_t = 45, value_parser = clap::value_parser!(u32).range(0..=HARD_MAX_N as i64))]
    pub max_n: u32,

    /// Pull jobs from the NATS JetStream broker at this URL (tls:// for TLS) instead of
    /// reading stdin; out of its reach, or refused by it, say so and try again, waiting longer
    /// each time
    #[arg(long, value_name = "nats://HOST:PORT")]
    pub nats: Option<Broker>,

    /// --nats: jobs computed at once, on threads of this worker's one interpreter
    #[arg(long, default_value_t = 1, requires = "nats", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// --nats: the worker's emulated GIL, which its threads share
    #[arg(long, value_parser = choice::<Variant>(), default_value = "none", requires = "nats")]
    pub gil: Variant,

    #[command(flatten)]
    pub broker: BrokerAccessArgs,
}

const WORKER_EXAMPLES: &str = "\
Examples:
  nats-server -js -a 127.0.0.1                      # a broker with JetStream, on loopback
  clab serve --model procpool --offload-to nats://127.0.0.1:4222
  clab worker --nats nats://127.0.0.1:4222 --concurrency 2

  # Other machines: TLS and a user each (README, \"Workers on other machines\")
  CLAB_NATS_PASSWORD=... clab worker --nats tls://broker.example:4222 --nats-user worker \\
      --nats-ca ca.pem

Credentials come from the URL (nats://USER:PASSWORD@HOST:PORT, nats://TOKEN@HOST:PORT), an
option, or else $CLAB_NATS_TOKEN, or $CLAB_NATS_USER with $CLAB_NATS_PASSWORD; a URL is
seen by `ps` and kept in shell history, a file or the environment is not.

Jobs are delivered at least once: a worker that dies mid-job leaves it to another after
5 s, and the server keeps the first reply to each job. A job the worker refuses (malformed,
over --max-n, not fib or spin) is answered ERR and acknowledged; `stats` through the queue
answers the worker's counts.";

const SERVE_EXAMPLES: &str = "\
Protocol: one request per line; a bare request without a newline works too.
  <n> | fib <n>   naive Fibonacci (CPU-bound)       spin <ms>   busy CPU work
  sleep <ms>      wait without CPU (I/O stand-in)   echo <text> echo
  stats           counters as one JSON line
  work <held_us> <released_us> <waiting_us> [<bytes>]   a profiled function's call
  call            the --workload's call
Errors come back as `ERR <reason>` and the connection stays open.

Examples:
  clab serve --model threads
  clab serve --model threads --gil new --switch-interval 5ms --trace gil.json
  clab serve --model hybrid --offload threshold:15 --offload-to procpool
  clab serve --model pool --workers 4 --addr 127.0.0.1:0
  printf '30\\n' | nc -q1 127.0.0.1 25000

SIGINT or SIGTERM stops accepting, answers the requests in flight (for at most
--drain-timeout, closing connections still open just before it) and exits 0; a second
signal exits at once.";

const LOAD_EXAMPLES: &str = "\
Modes:
  latency  N clients, each sending `fib <n>`, waiting, repeating (the essays' perf1)
  rate     rapid-fire tiny requests, reporting requests per second (perf2)
  mix      several classes at once, each with its own histogram and timeline
  open     a fixed total --rate on a schedule; latency counts from when each request was
           due, so a slow server cannot hide its queue (no coordinated omission)
  idle     hold --connections open, optionally with a request on each every --interval

A mix class is NAME=CLIENTS*REQUEST[@START]: CLIENTS closed-loop clients sending REQUEST,
starting START into the measured window. Without --class, mix runs `rapid` (--clients x
`fib 1`) plus `hog` (one client sending `fib <--hog>` from --hog-after on).

Examples:
  clab load latency --addr 127.0.0.1:25000 --clients 2 --n 30
  clab load rate --duration 10s
  clab load mix --hog 40 --hog-after 3s
  clab load mix --class 'rapid=2*fib 1' --class 'hog=1*fib 40@3s' --json mix.json
  clab load open --rate 2000 --connections 8 --request 'fib 20'
  clab load idle --connections 10000 --interval 1s

Closed-loop latency is each client's own service time: a client waits for its reply before
it sends again, so a slow server slows the clients too. It is not what an open stream of
users would see; the open mode measures that.

On a terminal the run is shown live: each class's rate over the run (log scale) with the
moment a late class joined marked, and its rate and latency percentiles now; q stops the run
and keeps no result. Off a terminal, or with --no-tui, a line per second on stderr. Either
way the summary table follows on stdout.

The run lasts --warmup plus --duration; only the duration is measured. Requests still in
flight at the end are abandoned and reported as such. --json writes every number shown
plus the configuration and environment (schema: schema/load-result.v1.json).";

/// What `clab load` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadMode {
    /// Closed-loop clients timing `fib <n>` (perf1)
    Latency,
    /// Rapid-fire tiny requests (perf2)
    Rate,
    /// Several tagged classes at once
    Mix,
    /// A fixed total rate on a schedule
    Open,
    /// Many open connections
    Idle,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The server
    #[arg(long, default_value = "127.0.0.1:25000")]
    pub addr: SocketAddr,

    /// How often to ask the server for its `stats` (and under a GIL its `events`)
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// Stop after this long [default: at Ctrl-C]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// One line per refresh, for logs and pipes (the view whenever stdout is not a terminal)
    #[arg(long)]
    pub plain: bool,

    /// With --plain (implied): one JSON object per refresh, one per line
    #[arg(long)]
    pub json: bool,
}

const TOP_EXAMPLES: &str = "\
Examples:
  clab serve --model threads --gil new &
  clab load mix --hog 40 --hog-after 3s --duration 20s --no-tui &
  clab top                           # watch the GIL go to the hog when it joins; q quits
  clab top --plain --duration 8s     # the same as lines, for a log
  clab top --json --duration 8s      # one JSON object a line, for a program

On a terminal: requests per second (a sparkline), connections and errors; under a GIL, the
share of the last refresh it was held, switches per second, forced and voluntary releases,
drop requests; a row per thread over the last second (holding, waiting or released now, its
share of the hold, its waits' median and 99th percentile, its drop requests); and a strip of
who held the GIL over the last half second. The dashboard polls `stats` and `events` on one
connection, which takes no GIL switches of its own (docs/protocol.md).

With --plain, each line covers one interval: requests answered per second, open connections,
errors, and under a GIL its share held, switches, releases, drop requests and the thread
with the longest 99th-percentile wait.";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The story: convoy, two-clients or threshold
    #[arg(value_parser = choice::<Scenario>())]
    pub scenario: Scenario,

    /// The first run's model [default: the story's own: threads, or hybrid for threshold]
    #[arg(long, value_parser = choice::<Model>())]
    pub model: Option<Model>,

    /// The first run's GIL
    #[arg(long, value_parser = choice::<Variant>(), default_value = "new")]
    pub gil: Variant,

    /// When the hog (or the second client) joins, after the one-second warm-up
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub joins_after: Duration,

    /// How long a run measures
    #[arg(long = "run", default_value = "12s", value_parser = humantime::parse_duration)]
    pub length: Duration,
}

const DEMO_EXAMPLES: &str = "\
Stories:
  convoy       one client of tiny requests (fib 1), then a hog (fib 38 again and again):
               under a GIL the tiny requests fall from thousands a second to a few hundred,
               each waiting a switch interval for the GIL the hog holds
  two-clients  one client computing fib 36, then a second: under a GIL each takes twice as
               long; in processes, or without a GIL, they compute at once
  threshold    rapid fib 1, then two hogs of fib 34, against the hybrid server, which sends
               fib n > 15 to two worker processes: how much of the tiny requests' rate it
               keeps when everything shares one CPU (m switches to threads, for contrast)

Examples:
  clab demo convoy
  clab demo convoy --gil none
  clab demo two-clients --model procpool

On screen: `clab top` of the server on the left, the live load on the right, and a caption
of what the numbers measured right then say. Keys: g steps the GIL (new, priority, legacy,
none) and m the model for the next run; r runs again; q stops the server and quits. The
server runs on one CPU and the load on another, as the header says. Needs a terminal of at
least 100×30; 120×40 shows everything.";

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// What to run
    #[arg(value_enum)]
    pub mode: LoadMode,

    /// The server
    #[arg(long, default_value = "127.0.0.1:25000")]
    pub addr: SocketAddr,

    /// Closed-loop clients (latency, rate, and mix's rapid class)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,

    /// latency: the n of `fib <n>`
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=HARD_MAX_N as i64))]
    pub n: u32,

    /// The request line to send [default: `fib <n>` for latency, `fib 1` otherwise]
    #[arg(long)]
    pub request: Option<String>,

    /// How long to measure
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// How long to run before measuring
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    /// A request with no reply after this long counts as a timeout
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// mix: a class NAME=CLIENTS*REQUEST[@START] (repeatable)
    #[arg(long = "class", value_name = "SPEC")]
    pub classes: Vec<ClassPlan>,

    /// mix without --class: the hog's n
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(0..=HARD_MAX_N as i64))]
    pub hog: u32,

    /// mix without --class: when the hog joins
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub hog_after: Duration,

    /// open: requests per second in total, over all connections
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// open and idle: connections [default: open 4, idle 100]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub connections: Option<u64>,

    /// idle: send the request on each connection this often (default: never)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,

    /// Write the full result as JSON to this file, or to standard output with `-` (the
    /// summary then goes to standard error)
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<PathBuf>,

    /// Run the generator on these CPUs only, e.g. 1 or 0,1 or 0-1
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,

    /// No per-second lines (and no live view)
    #[arg(long)]
    pub quiet: bool,

    /// Per-second lines even on a terminal, instead of the live view
    #[arg(long)]
    pub no_tui: bool,
}

/// A byte size: a number with an optional k, m or g suffix (powers of 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(digits) => (digits, &lower[digits.len()..]),
        None => (lower.as_str(), ""),
    };
    let shift = match unit {
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => 0,
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text:?} is not a size like 65536, 64k or 2m"))
}

/// A list of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// A CPU list in the kernel's format (`1`, `0,1`, `0-1`); spaces are ignored.
fn parse_cpu_list(text: &str) -> Result<CpuList, String> {
    let compact: String = text.split_whitespace().collect();
    clab::system::cpus::parse_list(&compact)
        .filter(|cpus| !cpus.is_empty())
        .map(CpuList)
        .ok_or_else(|| format!("{text:?} is not a CPU list like 1, 0,1 or 0-1"))
}

impl LoadArgs {
    /// The plan these options describe.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let class = |name: &str, connections: u64, request: &str, pacing| {
            ClassPlan::new(name, connections as usize, request, pacing)
        };
        let tiny = self.request.clone().unwrap_or_else(|| "fib 1".into());
        let classes = match self.mode {
            LoadMode::Latency => {
                let request = self
                    .request
                    .clone()
                    .unwrap_or_else(|| format!("fib {}", self.n));
                vec![class("latency", self.clients, &request, Pacing::Closed)?]
            }
            LoadMode::Rate => vec![class("rate", self.clients, &tiny, Pacing::Closed)?],
            LoadMode::Mix if !self.classes.is_empty() => self.classes.clone(),
            LoadMode::Mix => {
                let hog = class("hog", 1, &format!("fib {}", self.hog), Pacing::Closed)?;
                vec![
                    class("rapid", self.clients, &tiny, Pacing::Closed)?,
                    hog.starting_after(self.hog_after),
                ]
            }
            LoadMode::Open => {
                vec![class(
                    "open",
                    self.connections.unwrap_or(4),
                    &tiny,
                    Pacing::Open { rate: self.rate },
                )?]
            }
            LoadMode::Idle => {
                let pacing = Pacing::Idle {
                    interval: self.interval,
                };
                vec![class(
                    "idle",
                    self.connections.unwrap_or(100),
                    &tiny,
                    pacing,
                )?]
            }
        };
        if !self.classes.is_empty() && self.mode != LoadMode::Mix {
            return Err(PlanError::Invalid("--class is for the mix mode".into()));
        }
        let mode = match self.mode {
            LoadMode::Latency => Mode::Latency,
            LoadMode::Rate => Mode::Rate,
            LoadMode::Mix => Mode::Mix,
            LoadMode::Open => Mode::Open,
            LoadMode::Idle => Mode::Idle,
        };
        let window = Window {
            warmup: self.warmup,
            duration: self.duration,
            timeout: self.timeout,
        };
        Plan::new(mode, self.addr, window, classes)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The concurrency model
    #[arg(long, value_parser = choice::<Model>(), default_value = "threads")]
    pub model: Model,

    /// Address to listen on; port 0 picks a free port (the address is printed)
    #[arg(long, default_value = "127.0.0.1:25000")]
    pub addr: SocketAddr,

    /// Workers: `pool` threads, `async` runtime threads, `procpool` and `hybrid` worker
    /// processes, `prefork` children [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub workers: Option<u64>,

    /// Largest n accepted by `fib` (fib(93) overflows 64 bits)
    #[arg(long, default_value_t = 45, value_parser = clap::value_parser!(u32).range(0..=HARD_MAX_N as i64))]
    pub max_n: u32,

    /// Connections open at once; one more gets `ERR server busy` and is closed. [default:
    /// eventloop, async and hybrid hold as many as the descriptor limit allows, less a
    /// twentieth kept for the server's own files (19000 under a limit of 20000): an idle
    /// connection costs an event loop about a kilobyte. The other models keep 1024: each
    /// connection is a thread (or a prefork child's turn) with its own stack, so the cap
    /// bounds memory and the thread count]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS))]
    pub max_connections: Option<u64>,

    /// Close a connection that sends nothing for this long (0 = never)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Close a connection whose client takes none of a reply for this long — it stopped
    /// reading — and log it; the other connections are served meanwhile (0 = never)
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Run handler code under an emulated CPython GIL (every model; each process of procpool
    /// and prefork has its own, as in Python)
    #[arg(long, value_parser = choice::<Variant>(), default_value = "none")]
    pub gil: Variant,

    /// new/priority: how long a waiting thread waits before it asks the holder to drop the
    /// GIL (CPython's sys.setswitchinterval)
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub switch_interval: Duration,

    /// legacy: checkpoints ("ticks") between forced release-and-reacquire
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub check_interval: u32,

    /// The work between two checkpoints in `spin`: CPython's time between two looks at its
    /// eval breaker in its countdown loop (`clab lab` measures it per interpreter; the
    /// default is CPython 3.11's here, ~22 ns)
    #[arg(long, default_value = "22ns", value_parser = parse_tick)]
    pub tick: Duration,

    /// The work between two checkpoints in `fib`: CPython's recursive fib looks at its
    /// breaker at other instructions than its loop (`clab lab` measures it per interpreter as
    /// a fib call's time over its checks; the default is CPython 3.11's here, one check a
    /// call, ~27 ns)
    #[arg(long, default_value = "27ns", value_parser = parse_tick)]
    pub fib_tick: Duration,

    /// Where a holder may be made to drop the GIL: every-instruction (CPython ≤ 3.9) or
    /// calls-and-jumps (3.10+) [default: every-instruction for legacy, else calls-and-jumps]
    #[arg(long, value_parser = choice::<SwitchPoints>())]
    pub switch_points: Option<SwitchPoints>,

    /// Write the GIL's lock events (the newest million) to this JSON file when the server
    /// stops, for a timeline of which thread held the GIL when
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// hybrid: which requests go to the pool. `threshold:N` offloads fib n with n > N (and
    /// spin above --offload-budget); `adaptive` learns each request kind's cost as it runs
    /// and offloads what is predicted to exceed the budget [default: adaptive]
    #[arg(long, value_name = "threshold:N|adaptive")]
    pub offload: Option<Policy>,

    /// hybrid: where offloaded requests go [default: procpool]: `pool` (threads of the server
    /// process), `procpool` (`clab worker` processes), `interpreters` (subinterpreters, a GIL
    /// each), or `nats://HOST:PORT` (`tls://` for TLS) — a NATS JetStream broker, whose
    /// `clab worker --nats` processes compute them (procpool takes a broker too)
    #[arg(long, value_name = "TARGET")]
    pub offload_to: Option<Destination>,

    /// How long a request offloaded through a broker may go unanswered before its client gets
    /// `ERR job timed out`
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub job_timeout: Duration,

    /// hybrid: the cost above which a request is expensive
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    pub offload_budget: Duration,

    /// The interpreter work each job handed to a pool costs, as CPU time on the thread that
    /// submits it and on the pool's own thread (holding the GIL where there is one), e.g.
    /// `procpool=10us+50us`; `none` for none at all. Repeatable. CPython's executors run Python
    /// code per job (futures, pickling, their own threads); the emulated pools only move the
    /// job. `clab lab` measures it per interpreter [default: pool=9us+6us,
    /// procpool=14us+71us, interpreters=6us+48us: CPython 3.11's here (3.13's for
    /// subinterpreters), less the emulated pools' own]
    #[arg(long, value_name = "TARGET=SUBMITTER+POOL|none", value_parser = parse_hop)]
    pub hop_cost: Vec<HopSetting>,

    /// The interpreter work each request that reaches the interpreter costs beyond the emulated
    /// server's own request path, as CPU time holding the GIL where there is one, by how the
    /// model serves: `thread` (a thread per connection) or `loop` (an event loop), e.g.
    /// `loop=38us`; `none` for none. Repeatable. CPython's server reads, parses and replies in
    /// Python; `clab lab` measures what that costs per interpreter [default: none]
    #[arg(long, value_name = "thread|loop=COST|none", value_parser = parse_request_cost)]
    pub request_cost: Vec<RequestCostSetting>,

    /// What a `call` request does: a function's profile, as `clab workload` measures and
    /// prints it — CPU time holding the GIL, CPU time with it released (a C call that lets
    /// go), then a wait, and the bytes that cross to a worker process with it, e.g.
    /// `1.8ms+0us+0us+120B`
    #[arg(long, value_name = "HELD+RELEASED+WAITING[+BYTES]", value_parser = WorkProfile::parse)]
    pub workload: Option<WorkProfile>,

    /// Stack size of connection and pool threads, e.g. 64k (threads, pool, procpool) [default:
    /// 2 MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub thread_stack: Option<usize>,

    /// On SIGINT/SIGTERM, how long in-flight requests may take. Shortly before it (a tenth,
    /// at most 1s) connections still open are closed, so clients that do not read cannot
    /// hold the server; a request still computing at the deadline makes it exit 1
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub broker: BrokerAccessArgs,
}

/// A timeout given as `0` means "never".
fn never_if_zero(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// One `--python`: an interpreter's path, `all`, or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonArg {
    All,
    None,
    Path(PathBuf),
}

fn parse_python(text: &str) -> Result<PythonArg, String> {
    Ok(match text {
        "all" => PythonArg::All,
        "none" => PythonArg::None,
        "" => return Err("expected a path, `all` or `none`".into()),
        path => PythonArg::Path(path.into()),
    })
}

/// As [`parse_python`], for a command that measures only on CPython.
fn parse_python_to_measure(text: &str) -> Result<PythonArg, String> {
    match parse_python(text)? {
        PythonArg::None => Err(
            "`none` leaves nothing to measure: give a path or `all`, or leave --python out".into(),
        ),
        chosen => Ok(chosen),
    }
}

/// The interpreters `--python` selects: one per era without it; `all` over any path; then
/// `none`; else the paths given.
fn selection(chosen: &[PythonArg]) -> Selection {
    if chosen.is_empty() {
        Selection::PerEra
    } else if chosen.contains(&PythonArg::All) {
        Selection::All
    } else if chosen.contains(&PythonArg::None) {
        Selection::Nothing
    } else {
        let paths = chosen.iter().filter_map(|arg| match arg {
            PythonArg::Path(path) => Some(path.clone()),
            PythonArg::All | PythonArg::None => None,
        });
        Selection::Paths(paths.collect())
    }
}

/// One `--hop-cost`: none for every pool, or one pool's two parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopSetting {
    None,
    Of(Target, HopCost),
}

/// The longest hop cost taken: a tenth of a second of interpreter work per job.
const MAX_HOP: Duration = Duration::from_millis(100);

fn parse_hop(text: &str) -> Result<HopSetting, String> {
    if text == "none" {
        return Ok(HopSetting::None);
    }
    let shape = "expected TARGET=SUBMITTER+POOL (e.g. procpool=10us+50us) or none";
    let (target, parts) = text.split_once('=').ok_or(shape)?;
    let target = Target::from_name(target).map_err(|e| e.to_string())?;
    let (submitter, pool) = parts.split_once('+').ok_or(shape)?;
    let duration =
        |part: &str| humantime::parse_duration(part.trim()).map_err(|e| format!("{part:?}: {e}"));
    let cost = HopCost {
        submitter: duration(submitter)?,
        pool: duration(pool)?,
    };
    if cost.total() > MAX_HOP {
        return Err(format!(
            "a hop cost is at most {} in all",
            humantime::format_duration(MAX_HOP)
        ));
    }
    Ok(HopSetting::Of(target, cost))
}

/// One `--request-cost`: none for either way of serving, or one way's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCostSetting {
    None,
    Of(Serving, Duration),
}

/// The longest request cost taken: a hundredth of a second of interpreter work per request.
const MAX_REQUEST_COST: Duration = Duration::from_millis(10);

fn parse_request_cost(text: &str) -> Result<RequestCostSetting, String> {
    if text == "none" {
        return Ok(RequestCostSetting::None);
    }
    let (serving, cost) = text
        .split_once('=')
        .ok_or("expected thread=COST or loop=COST (e.g. loop=38us) or none")?;
    let serving = Serving::from_name(serving)?;
    let cost = humantime::parse_duration(cost.trim()).map_err(|e| format!("{cost:?}: {e}"))?;
    if cost > MAX_REQUEST_COST {
        return Err(format!(
            "a request cost is at most {}",
            humantime::format_duration(MAX_REQUEST_COST)
        ));
    }
    Ok(RequestCostSetting::Of(serving, cost))
}

/// A tick: a duration from 1 ns to 1 ms.
fn parse_tick(text: &str) -> Result<Duration, String> {
    let tick = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if tick.is_zero() || tick > Duration::from_millis(1) {
        return Err("a tick is between 1ns and 1ms".into());
    }
    Ok(tick)
}

impl ServeArgs {
    /// The server configuration these options describe.
    pub fn config(&self) -> Result<ServerConfig, ConfigError> {
        let gil = GilConfig {
            switch_interval: self.switch_interval,
            check_interval: self.check_interval,
            tick: self.tick,
            fib_tick: self.fib_tick,
            switch_points: self.switch_points.unwrap_or(SwitchPoints::of_era(self.gil)),
            ..GilConfig::new(self.gil)
        };
        let mut builder = ServerConfig::builder(self.model)
            .max_n(self.max_n)
            .idle_timeout(never_if_zero(self.idle_timeout))
            .write_timeout(never_if_zero(self.write_timeout))
            .gil(gil)
            .offload_budget(self.offload_budget)
            .job_timeout(self.job_timeout);
        if let Some(workers) = self.workers {
            builder = builder.workers(workers as usize);
        }
        if let Some(connections) = self.max_connections {
            builder = builder.max_connections(connections as usize);
        }
        if let Some(path) = &self.trace {
            builder = builder.trace(path.clone());
        }
        if let Some(policy) = self.offload {
            builder = builder.offload_policy(policy);
        }
        match self.offload_to.clone() {
            Some(Destination::Broker(broker)) => {
                builder = builder.offload_to(Destination::Broker(self.broker.apply(broker)?));
            }
            _ if self.broker.given() => return Err(ConfigError::AccessNeedsBroker),
            Some(local) => builder = builder.offload_to(local),
            None => {}
        }
        if let Some(bytes) = self.thread_stack {
            builder = builder.thread_stack(bytes);
        }
        if let Some(profile) = self.workload {
            builder = builder.workload(profile);
        }
        for setting in &self.hop_cost {
            builder = match *setting {
                HopSetting::None => builder.hop_costs(HopCosts::NONE),
                HopSetting::Of(target, cost) => builder.hop_cost(target, cost),
            };
        }
        for setting in &self.request_cost {
            builder = match *setting {
                RequestCostSetting::None => builder
                    .request_cost(Serving::Thread, Duration::ZERO)
                    .request_cost(Serving::Loop, Duration::ZERO),
                RequestCostSetting::Of(serving, cost) => builder.request_cost(serving, cost),
            };
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clab::server::offload::Target;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `--python` means the same to the lab and to `clab workload`, which alone refuses `none`.
    #[test]
    fn python_choices_become_one_selection() {
        let args = |values: &[&str]| -> Vec<PythonArg> {
            values.iter().map(|v| parse_python(v).unwrap()).collect()
        };
        assert_eq!(selection(&[]), Selection::PerEra);
        assert_eq!(selection(&args(&["/p/python", "all"])), Selection::All);
        assert_eq!(selection(&args(&["none"])), Selection::Nothing);
        assert_eq!(
            selection(&args(&["/a/python", "/b/python"])),
            Selection::Paths(vec!["/a/python".into(), "/b/python".into()])
        );
        let workload = |python: &str| {
            Cli::try_parse_from(["clab", "workload", "f.py:g", "--python", python])
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(workload("all").is_ok());
        let refused = workload("none").unwrap_err();
        assert!(refused.contains("leaves nothing to measure"), "{refused}");
    }

    #[test]
    fn serve_options_become_a_config() {
        let cli = Cli::try_parse_from([
            "clab",
            "serve",
            "--model",
            "pool",
            "--workers",
            "3",
            "--idle-timeout",
            "0",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let config = args.config().unwrap();
        assert_eq!(
            (config.model(), config.workers(), config.idle_timeout()),
            (Model::Pool, 3, None)
        );
    }

    #[test]
    fn hop_costs_are_set_per_pool_or_turned_off() {
        let config = |argv: &[&str]| {
            let cli = Cli::try_parse_from(["clab", "serve"].iter().chain(argv))?;
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            Ok::<_, clap::Error>(args.config().unwrap())
        };
        let us = Duration::from_micros;
        let set = config(&["--hop-cost", "procpool=10us+50us"]).unwrap();
        assert_eq!(
            set.hop(Target::Procpool),
            HopCost {
                submitter: us(10),
                pool: us(50)
            }
        );
        assert_eq!(set.hop(Target::Pool), HopCosts::default().threads);
        let none = config(&["--hop-cost", "none", "--hop-cost", "pool=0s+1ms"]).unwrap();
        assert_eq!(none.hop(Target::Procpool), HopCost::NONE);
        assert_eq!(none.hop(Target::Pool).pool, Duration::from_millis(1));
        for bad in [
            "procpool=10us",
            "workers=1us+1us",
            "pool=1us+fast",
            "pool=1s+0s",
        ] {
            let error = config(&["--hop-cost", bad]).unwrap_err().to_string();
            assert!(error.contains("--hop-cost"), "{bad}: {error}");
        }
    }

    #[test]
    fn request_costs_are_set_per_way_of_serving() {
        let config = |argv: &[&str]| {
            let cli = Cli::try_parse_from(["clab", "serve"].iter().chain(argv))?;
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            Ok::<_, clap::Error>(args.config().unwrap())
        };
        let us = Duration::from_micros;
        let costs = [
            "--request-cost",
            "loop=38us",
            "--request-cost",
            "thread=5us",
        ];
        let threads = config(&[&["--model", "threads"][..], &costs].concat()).unwrap();
        let hybrid = config(&[&["--model", "hybrid"][..], &costs].concat()).unwrap();
        assert_eq!(
            (threads.request_cost(), hybrid.request_cost()),
            (us(5), us(38))
        );
        assert_eq!(config(&[]).unwrap().request_cost(), Duration::ZERO);
        let none = config(&["--request-cost", "thread=5us", "--request-cost", "none"]).unwrap();
        assert_eq!(none.request_cost(), Duration::ZERO);
        for bad in ["loop", "fork=1us", "thread=fast", "thread=1s"] {
            let error = config(&["--request-cost", bad]).unwrap_err().to_string();
            assert!(error.contains("--request-cost"), "{bad}: {error}");
        }
    }

    #[test]
    fn gil_options_are_checked_against_the_model() {
        let parse = |argv: &[&str]| {
            let cli = Cli::try_parse_from(["clab", "serve"].iter().chain(argv)).unwrap();
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            args.config()
        };
        let config = parse(&["--gil", "new", "--switch-interval", "1ms"]).unwrap();
        assert_eq!(
            (config.gil().variant, config.gil().switch_interval),
            (Variant::New, Duration::from_millis(1))
        );
        let hybrid = parse(&["--model", "hybrid", "--gil", "priority"]).unwrap();
        assert_eq!(hybrid.gil().variant, Variant::Priority);
        assert_eq!(
            parse(&["--offload-to", "pool"]),
            Err(ConfigError::OffloadNeedsHybrid(Model::Threads))
        );
        assert_eq!(
            parse(&["--trace", "t.json"]),
            Err(ConfigError::TraceNeedsGil)
        );
    }

    #[test]
    fn load_options_become_a_plan() {
        let plan = |argv: &[&str]| {
            let cli = Cli::try_parse_from(["clab", "load"].iter().chain(argv)).unwrap();
            let Command::Load(args) = cli.command else {
                panic!("not load")
            };
            args.plan()
        };
        let mix = plan(&["mix", "--hog", "38", "--hog-after", "2s"]).unwrap();
        let names: Vec<_> = mix
            .classes()
            .iter()
            .map(|c| (c.name.as_str(), c.request.as_str()))
            .collect();
        assert_eq!(names, [("rapid", "fib 1"), ("hog", "fib 38")]);
        assert_eq!(mix.classes()[1].start_after, Duration::from_secs(2));
        assert_eq!(mix.mode(), Mode::Mix);
        let latency = plan(&["latency", "--n", "25", "--clients", "2"]).unwrap();
        assert_eq!(
            (
                latency.classes()[0].request.as_str(),
                latency.classes()[0].connections
            ),
            ("fib 25", 2)
        );
        assert!(plan(&["rate", "--request", "bogus"]).is_err());
        assert!(plan(&["rate", "--class", "a=1*1"]).is_err());
        assert!(plan(&["mix", "--hog-after", "20s", "--duration", "5s"]).is_err());
        assert_eq!(parse_cpu_list("0,2-3"), Ok(CpuList(vec![0, 2, 3])));
        assert_eq!(
            (parse_size("64k"), parse_size("2M"), parse_size("100")),
            (Ok(65536), Ok(2 << 20), Ok(100))
        );
        assert!(parse_size("lots").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn every_named_setting_is_accepted_by_its_name() {
        fn names<T: Choice>() -> Vec<&'static str> {
            T::ALL.iter().map(|value| value.name()).collect()
        }
        for model in names::<Model>() {
            let cli = Cli::try_parse_from(["clab", "serve", "--model", model]).unwrap();
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            assert_eq!(args.model.name(), model);
        }
        for variant in names::<Variant>() {
            assert!(Cli::try_parse_from(["clab", "serve", "--gil", variant]).is_ok());
        }
        for points in names::<SwitchPoints>() {
            assert!(Cli::try_parse_from(["clab", "serve", "--switch-points", points]).is_ok());
        }
        for target in names::<Target>() {
            let argv = ["clab", "serve", "--model", "hybrid", "--offload-to", target];
            assert!(Cli::try_parse_from(argv).is_ok());
        }
    }

    #[test]
    fn out_of_range_options_are_refused() {
        for args in [
            ["--max-n", "93"],
            ["--workers", "0"],
            ["--max-connections", "0"],
            ["--model", "forks"],
        ] {
            let argv = ["clab", "serve"].into_iter().chain(args);
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }
}
