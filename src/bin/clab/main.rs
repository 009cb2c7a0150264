//! `clab`: parse the command line, run the library, and print any error as one line
//! (`clab: …` with its causes) with a failing exit status.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

mod cli;

use clab::lab::pipeline::Observer;
use clab::lab::running::interrupt::Interrupt;
use clab::load::render::{Progress, summary};
use clab::server::{self, Model, Shutdown, prefork, signals};
use clab::system::limits::DescriptorBudget;
use cli::{Cli, Command, LabArgs, LoadArgs, ServeArgs, WorkloadArgs};

/// Exit status when a claim ended as `clab lab --fail-on` names (`clab --help` lists all).
const CLAIM_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    clab::tui::use_colour(colour(cli.color, true));
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok()))
        .with_writer(std::io::stderr)
        .with_ansi(colour(cli.color, std::io::stderr().is_terminal()))
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Load(args) => load(&args),
        Command::Top(args) => top(&args),
        Command::Demo(args) => demo(&args),
        Command::Lab(args) => match lab(&args) {
            // Interrupted: the partial report is written; exit as the signal would (130/143).
            Ok(LabEnd::Interrupted(signal)) => return ExitCode::from(128 + signal as u8),
            Ok(LabEnd::ClaimFailed) => return ExitCode::from(CLAIM_FAILED),
            Ok(LabEnd::Done) => Ok(()),
            Err(error) => Err(error),
        },
        Command::Completions { shell } => {
            let mut script = Vec::new();
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "clab", &mut script);
            emit(&script)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut page)
                .context("cannot render the manual page")
                .and_then(|()| emit(&page))
        }
        Command::Workload(args) => workload(&args),
        Command::Worker(args) => match &args.nats {
            Some(broker) => broker_worker(broker, &args),
            None if args.broker.given() => Err(anyhow::anyhow!(
                "credentials and a CA are for a broker: give one with --nats URL"
            )),
            None => {
                let stdin = std::io::stdin().lock();
                clab::pool::worker::serve(stdin, std::io::stdout().lock(), args.max_n)
                    .context("worker: the pipe to the pool broke")
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("clab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `clab workload`: measures, then prints the table and the answer (on stderr when the JSON
/// goes to standard output), and writes the JSON.
fn workload(args: &WorkloadArgs) -> anyhow::Result<()> {
    // A target that is not a Python file's function is a bad value: a usage error (status 2).
    let target = args.target().unwrap_or_else(|error| {
        <Cli as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ValueValidation, error)
            .exit()
    });
    let started = std::time::Instant::now();
    let clab = std::env::current_exe().context("cannot find clab's own executable")?;
    let settings = args.settings();
    let report = clab::workload::run(&target, &args.pythons(), (&settings, &clab), &mut |step| {
        eprintln!("clab workload: {step}")
    })?;
    let text = clab::workload::render::text(&report);
    let json = serde_json::to_string_pretty(&report).context("cannot write the report as JSON")?;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            eprint!("{text}");
            emit(format!("{json}\n").as_bytes())?;
        }
        Some(path) => {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            emit(text.as_bytes())?;
        }
        None => emit(text.as_bytes())?,
    }
    eprintln!(
        "clab workload: measured in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes `bytes` to standard output; a reader that has gone (`| head`) is not an error.
fn emit(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// Whether to colour output: `--color always` and `never` decide; `auto` colours a terminal
/// unless `NO_COLOR` is set to anything (no-color.org).
fn colour(choice: clap::ColorChoice, terminal: bool) -> bool {
    match choice {
        clap::ColorChoice::Always => true,
        clap::ColorChoice::Never => false,
        clap::ColorChoice::Auto => {
            terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        }
    }
}

/// `RUST_LOG`'s filter (`info` without it), with the NATS client's own lines off unless it
/// names them: clab reports the broker in its own words, one line for a refusal.
fn log_filter(asked: Option<String>) -> tracing_subscriber::EnvFilter {
    let asked = asked.unwrap_or_else(|| "info".into());
    let filter = if asked.contains("async_nats") {
        asked
    } else {
        format!("{asked},async_nats=off")
    };
    tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=off"))
}

/// Catches SIGINT and SIGTERM for a lab run: the first asks the lab to stop at its next
/// checkpoint (stopping its servers, writing the report of what finished); a second exits at
/// once, its children killed by their parent-death signal.
fn interrupt_on_signals(say: impl Fn(String) + Send + 'static) -> anyhow::Result<Interrupt> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let interrupt = Interrupt::new();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot watch for signals")?;
    let raised = interrupt.clone();
    std::thread::Builder::new()
        .name("clab-lab-signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                raised.raise(signal);
                say(format!(
                    "clab lab: {} — stopping the servers and writing the report of what finished (again to quit at once)",
                    raised.name().unwrap_or_default()
                ));
            }
            if let Some(signal) = signals.next() {
                eprintln!("clab lab: second signal; exiting at once");
                std::process::exit(128 + signal);
            }
        })
        .context("cannot watch for signals")?;
    Ok(interrupt)
}

/// `clab lab compare OLD NEW`, as text.
fn compare(old: &std::path::Path, new: &std::path::Path) -> anyhow::Result<String> {
    let read = |path: &std::path::Path| {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_owned()
        };
        clab::lab::views::compare::Run::read(&file, clab::report::SCHEMA)
    };
    let (old, new) = (read(old)?, read(new)?);
    Ok(clab::report::text::compare(&old, &new))
}

/// The lab's progress bar, with the lines it prints above itself.
struct LabProgress(indicatif::ProgressBar);

impl clab::lab::pipeline::Observer for LabProgress {
    fn say(&self, line: String) {
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }

    fn step(&self, what: &str) {
        self.0.set_message(what.to_owned());
    }

    fn finished(&self, outcome: &clab::lab::Outcome) {
        self.0.inc(1);
        self.say(format!(
            "[{:>5.1} s] {}: {} — {}",
            outcome.elapsed_s, outcome.id, outcome.verdict, outcome.summary
        ));
    }
}

/// How a lab run ended, beside an error.
enum LabEnd {
    Done,
    /// A claim ended as `--fail-on` names.
    ClaimFailed,
    /// By this signal, the partial report written.
    Interrupted(i32),
}

/// Runs the lab (or lists it), writing the report, and says how the run ended.
fn lab(args: &LabArgs) -> anyhow::Result<LabEnd> {
    let Some(options) = args.options()? else {
        let catalogue = clab::lab::catalogue();
        let text = match &args.action {
            Some(cli::LabAction::Compare { old, new }) => compare(old, new)?,
            Some(cli::LabAction::List { json: true }) => {
                clab::report::text::catalogue_json(catalogue)
            }
            _ => clab::report::text::catalogue(catalogue),
        };
        emit(text.as_bytes())?;
        return Ok(LabEnd::Done);
    };
    let experiments = options.experiments();
    let bar = indicatif::ProgressBar::new(experiments.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    let progress = std::sync::Arc::new(LabProgress(bar.clone()));
    progress.say(format!(
        "clab lab: {} experiment(s), {} profile; report in {}",
        experiments.len(),
        options.profile().name(),
        options.out().display()
    ));
    let interrupt = {
        let progress = progress.clone();
        interrupt_on_signals(move |line| progress.say(line))?
    };
    let clab_path = std::env::current_exe().context("cannot find the clab executable")?;
    let report = clab::lab::pipeline::execute(&options, clab_path, interrupt.clone(), progress)
        .context("the lab could not run")?;
    bar.finish_and_clear();
    let index = clab::report::write(&report, options.out())?;
    print!("{}", clab::report::text::verdicts(&report));
    println!("report: {}", index.display());
    if let Some(signal) = interrupt.signal() {
        eprintln!(
            "clab lab: interrupted by {} after {} of {} experiment(s); the report is partial",
            interrupt.name().unwrap_or_default(),
            report.outcomes.len(),
            experiments.len()
        );
        return Ok(LabEnd::Interrupted(signal));
    }
    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|outcome| outcome.verdict == clab::lab::Verdict::Error)
        .map(|outcome| outcome.id)
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} experiment(s) could not measure: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    let failing: Vec<String> = report
        .outcomes
        .iter()
        .filter(|outcome| args.fail_on.iter().any(|f| f.verdict() == outcome.verdict))
        .map(|outcome| format!("{} ({})", outcome.id, outcome.verdict))
        .collect();
    if !failing.is_empty() {
        eprintln!(
            "clab lab: --fail-on: {} claim(s) ended so: {}",
            failing.len(),
            failing.join(", ")
        );
        return Ok(LabEnd::ClaimFailed);
    }
    Ok(LabEnd::Done)
}

fn load(args: &LoadArgs) -> anyhow::Result<()> {
    let plan = args.plan()?;
    if let Some(cpus) = &args.cpus {
        clab::system::cpus::pin(&cpus.0)?;
    }
    reachable(plan.target())?;
    // `--json -`: standard output is the JSON's alone; the summary goes to standard error.
    let json_to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    let result = if args.quiet {
        clab::load::run(plan, Duration::from_secs(1), |_, _| {})?
    } else if args.no_tui || json_to_stdout || !std::io::stdout().is_terminal() {
        let mut progress = Progress::new(&plan);
        clab::load::run(plan, Duration::from_secs(1), |elapsed, live| {
            eprintln!("{}", progress.line(elapsed, live));
        })?
    } else {
        load_live(plan)?
    };
    if json_to_stdout {
        eprint!("{}", summary(&result));
        write_json(&result, std::io::stdout().lock()).context("cannot write the JSON result")?;
    } else {
        print!("{}", summary(&result));
        if let Some(path) = &args.json {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            write_json(&result, file)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if result.every_request_failed() {
        anyhow::bail!(
            "every request failed ({} errors, none answered)",
            result.errors()
        );
    }
    Ok(())
}

/// A load's result as pretty JSON and a newline.
fn write_json(result: &clab::load::LoadResult, out: impl std::io::Write) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, result)?;
    std::io::Write::write_all(&mut out, b"\n")?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// A load run drawn live on the terminal, refreshed four times a second. `q` (or Ctrl-C, or
/// a signal) gives the terminal back and ends the process: the run is abandoned, as Ctrl-C
/// abandons it off a terminal.
fn load_live(plan: clab::load::Plan) -> anyhow::Result<clab::load::LoadResult> {
    let mut live = clab::load::live::LiveLoad::new(&plan);
    let mut screen = clab::tui::Screen::open().context("cannot take the terminal")?;
    let result = clab::load::run(plan, Duration::from_millis(250), |elapsed, counts| {
        live.update(elapsed, counts);
        let drawn =
            screen.draw(|frame| clab::tui::load::draw(frame, frame.area(), &live, "q stops"));
        let key = screen.key_before(std::time::Instant::now());
        if drawn.is_err() || matches!(key, Ok(Some(clab::tui::Key::Quit)) | Err(_)) {
            clab::tui::Screen::give_back();
            eprintln!(
                "clab load: stopped after {:.1} s; no result",
                elapsed.as_secs_f64()
            );
            std::process::exit(130);
        }
    })?;
    drop(screen);
    Ok(result)
}

/// Fails fast, in one line, where nothing listens: not an empty table after the whole run.
fn reachable(target: std::net::SocketAddr) -> anyhow::Result<()> {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);
    match std::net::TcpStream::connect_timeout(&target, PATIENCE) {
        Ok(_probe) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            anyhow::bail!("nothing is listening on {target} (connection refused)")
        }
        Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
            anyhow::bail!("{target} did not accept a connection within {PATIENCE:?}")
        }
        Err(error) => anyhow::bail!("cannot connect to {target}: {error}"),
    }
}

/// What caps the connections a server holds, for its start-up log.
fn connection_cap(model: Model, chosen: Option<u64>, budget: DescriptorBudget) -> String {
    match chosen {
        Some(connections) => format!("at most {connections} connections (--max-connections)"),
        None if model.is_event_loop() => format!(
            "at most {} connections: the descriptor limit is {}, less {} kept for the server's own files (--max-connections to change)",
            budget.connections(),
            budget.limit,
            budget.reserved
        ),
        None => format!(
            "at most {} connections: {model} gives each a thread (or a child's turn) of its own, so it keeps a bounded default (--max-connections to change)",
            server::THREAD_MODELS_CONNECTIONS
        ),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let model = config.model();
    if args.workers.is_some() && !model.uses_workers() {
        tracing::warn!(%model, "--workers has no effect on this model");
    }
    let max_connections = config.max_connections();
    let budget = DescriptorBudget::of_this_process();
    let needed = max_connections as u64 + budget.reserved;
    if let Err(limit) = clab::system::limits::ensure_descriptors(needed) {
        tracing::warn!(%limit, "--max-connections {max_connections} may not be reachable");
    }
    tracing::info!("{}", connection_cap(model, args.max_connections, budget));
    let listener =
        server::bind(args.addr).with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!(%model, workers = config.workers(), max_n = config.max_n(), "serving");
    // "listening on" goes to stdout once the server is ready to answer, so scripts and tests
    // can wait for it and read the port chosen for `--addr ...:0`.
    if model == Model::Prefork {
        println!("listening on {addr}");
        // Before any thread exists: the supervisor forks (see `prefork`); the children
        // accept on the listener, where connections wait until they do.
        prefork::supervise(listener, config, args.drain_timeout)?;
    } else {
        let shutdown = Shutdown::new().context("cannot create the shutdown signal")?;
        signals::watch(shutdown.clone(), args.drain_timeout).context("cannot watch for signals")?;
        let service = server::start(config, shutdown)?;
        println!("listening on {addr}");
        server::run(listener, service)?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `clab worker --nats`: pulls jobs until SIGINT or SIGTERM, then finishes those in hand.
fn broker_worker(
    broker: &clab::pool::broker::Broker,
    args: &cli::WorkerArgs,
) -> anyhow::Result<()> {
    let options = clab::pool::broker::WorkerOptions {
        broker: args.broker.apply(broker.clone())?,
        concurrency: args.concurrency as usize,
        gil: clab::gil::GilConfig::new(args.gil),
        max_n: args.max_n,
    };
    clab::pool::broker::run_worker(options, stop_signal()).context("clab worker")
}

/// Completes at the first SIGINT or SIGTERM (polled inside a tokio runtime).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot watch for signals: only SIGKILL stops this worker");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// `clab demo`: a story told live; it needs a terminal to tell it on.
fn demo(args: &cli::DemoArgs) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "clab demo draws on a terminal; to watch in a log, use clab serve, clab load --no-tui and clab top --plain"
        );
    }
    if args.joins_after >= args.length {
        anyhow::bail!(
            "--joins-after ({}) must come before the end of the --run ({})",
            humantime::format_duration(args.joins_after),
            humantime::format_duration(args.length)
        );
    }
    let scenario = args.scenario;
    let setup = clab::demo::Setup {
        model: args.model.unwrap_or(scenario.first_setup().model),
        gil: args.gil,
    };
    let options = clab::demo::DemoOptions {
        setup,
        joins_after: args.joins_after,
        length: args.length,
        clab: std::env::current_exe().context("cannot find the clab binary to serve with")?,
    };
    clab::demo::run(scenario, options).context("clab demo")
}

/// `clab top`: the dashboard on a terminal; one line per refresh with `--plain` or off one.
fn top(args: &cli::TopArgs) -> anyhow::Result<()> {
    if args.interval.is_zero() {
        anyhow::bail!("--interval must be more than 0");
    }
    if args.plain || args.json || !std::io::stdout().is_terminal() {
        let format = if args.json {
            clab::top::LineFormat::Json
        } else {
            clab::top::LineFormat::Text
        };
        clab::top::plain(
            args.addr,
            args.interval,
            args.duration,
            format,
            std::io::stdout().lock(),
        )?;
    } else {
        clab::tui::top::run(args.addr, args.interval, args.duration)?;
    }
    Ok(())
}
