//! Running a demo: a server started as a child process for each run, the story's load on a
//! thread, `top` polled, the screen drawn and the keys read, until `q`. Everything it starts
//! is stopped and reaped: the server by [`ChildServer`], the load by running out (or with the
//! process, when `q` comes first).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::choice::Choice;
use crate::demo::{Scenario, Setup, Sighting, caption};
use crate::lab::running::Placement;
use crate::lab::running::process::{ChildKind, ChildServer};
use crate::load::live::LiveLoad;
use crate::load::plan::PlanError;
use crate::tui::{Key, Screen};

/// How often the screen, `top` and the load's figures refresh.
const REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the server")]
    Server(#[source] crate::lab::running::LabError),
    #[error(transparent)]
    Top(#[from] crate::top::TopError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot pin the demo")]
    Pin(#[from] crate::system::cpus::PinError),
    #[error("cannot use the terminal")]
    Terminal(#[from] std::io::Error),
}

/// A demo's settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub setup: Setup,
    /// When the late class joins, into the measured window.
    pub joins_after: Duration,
    /// How long a run measures.
    pub length: Duration,
    /// The `clab` binary that serves.
    pub clab: std::path::PathBuf,
}

/// "server on CPU 0, load on CPU 1", for the title.
fn describe(placement: &Placement) -> String {
    format!(
        "server on CPU {}, load on CPU {}",
        placement.server_one[0], placement.load[0]
    )
}

/// What the person at the terminal asked for during a run.
enum Next {
    Quit,
    Run(Setup),
}

/// Runs `scenario` on the terminal until `q`: a run, then another whenever a key asks.
pub fn run(scenario: Scenario, options: DemoOptions) -> Result<(), DemoError> {
    // As the lab places its runs: the server on the first CPU, the load (and this screen)
    // on the last.
    let placement = Placement::from_allowed(&crate::system::cpus::allowed_cpus());
    // This thread's CPU is inherited by the load's threads, started from it.
    crate::system::cpus::pin(&placement.load)?;
    let logs = tempfile::tempdir()?;
    let mut screen = Screen::open()?;
    let mut setup = options.setup;
    for number in 1.. {
        let log = logs.path().join(format!("server-{number}.log"));
        match one_run(
            scenario,
            setup,
            &options,
            &placement,
            number,
            &log,
            &mut screen,
        )? {
            Next::Quit => return Ok(()),
            Next::Run(next) => setup = next,
        }
    }
    Ok(())
}

/// One run: a fresh server for `setup`, the scenario's load, the screen refreshed until the
/// load ends and a key asks for the next run, or `q`. The server is stopped and reaped on
/// the way out, whatever the way; a load still running when `q` comes is abandoned with the
/// process, which ends right after.
fn one_run(
    scenario: Scenario,
    setup: Setup,
    options: &DemoOptions,
    placement: &Placement,
    number: usize,
    log: &Path,
    screen: &mut Screen,
) -> Result<Next, DemoError> {
    let spec = scenario.server(setup);
    let mut command = std::process::Command::new(&options.clab);
    command
        .arg("serve")
        .args(spec.argv())
        .args(["--addr", "127.0.0.1:0"]);
    let server = ChildServer::start(
        command,
        (spec.label(), ChildKind::Server),
        &placement.server_one,
        log,
        None,
    )
    .map_err(DemoError::Server)?;
    let plan = scenario.plan(server.addr, options.joins_after, options.length)?;
    let live = Arc::new(Mutex::new(LiveLoad::new(&plan)));
    let mut load = Some({
        let live = Arc::clone(&live);
        std::thread::spawn(move || {
            crate::load::run(plan, REFRESH, |elapsed, counts| {
                live.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .update(elapsed, counts)
            })
        })
    });
    // What the load said when it ended, beyond its numbers: its warnings, or its error.
    let mut verdict = String::new();
    let mut watch = crate::top::live::Watch::connect(server.addr)?;
    let mut sighting = Sighting::default();
    let mut next: Option<Setup> = None;
    let mut tick = Instant::now() + REFRESH;
    loop {
        if let Some(handle) = load.take_if(|handle| handle.is_finished()) {
            verdict = match handle.join() {
                Ok(Ok(result)) if result.warnings.is_empty() => " Run over.".into(),
                Ok(Ok(result)) => {
                    format!(" Run over; the load warns: {}", result.warnings.join("; "))
                }
                Ok(Err(error)) => format!(" The load failed: {error}."),
                Err(_) => " The load failed.".into(),
            };
        }
        let finished = load.is_none();
        let live = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        sighting.look(scenario, &live, watch.view.gil.as_ref(), REFRESH);
        let mut caption = caption(scenario, setup, &live, &sighting);
        caption.push_str(&verdict);
        let keys = match (next, finished) {
            (Some(next), _) => format!("next run: {next} · q quits"),
            (None, false) => "g: GIL · m: model · r: again (after this run) · q quits".into(),
            (None, true) => "g: GIL · m: model · r: again · q quits".into(),
        };
        let view = crate::tui::demo::DemoView {
            title: format!(
                "clab demo {} · {setup} · run {number} · {}",
                scenario.name(),
                describe(placement)
            ),
            keys,
            top: &watch.view,
            load: &live,
            caption: &caption,
        };
        screen.draw(|frame| crate::tui::demo::draw(frame, frame.area(), &view))?;
        if finished && let Some(next) = next {
            server.stop();
            return Ok(Next::Run(next));
        }
        match screen.key_before(tick)? {
            Some(Key::Quit) => {
                server.stop();
                return Ok(Next::Quit);
            }
            Some(Key::Char('g')) => next = Some(next.unwrap_or(setup).next_gil()),
            Some(Key::Char('m')) => next = Some(next.unwrap_or(setup).next_model(scenario)),
            Some(Key::Char('r')) => next = Some(next.unwrap_or(setup)),
            _ => {}
        }
        if Instant::now() >= tick {
            watch.poll()?;
            tick += REFRESH;
        }
    }
}
