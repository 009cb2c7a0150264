//! `clab demo`: one command for a room. It starts a server, the load of one of the essays'
//! stories — the tiny-request client, then a few seconds later the hog — and shows `top` and
//! the load live side by side, with a caption that says what is happening in the numbers
//! measured right then. A key switches the GIL or the model for the next run. Everything it
//! starts is stopped and reaped: the server by [`ChildServer`], the load by running out.
//!
//! What each story runs and how its caption reads the numbers is plain data here
//! ([`Scenario`], [`Setup`], [`Sighting`], [`caption`]); the screen is [`crate::tui::demo`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::choice::Choice;
use crate::gil::Variant;
use crate::lab::spec::ServerSpec;
use crate::load::live::LiveLoad;
use crate::load::plan::{ClassPlan, Mode, Plan, PlanError, Window};
use crate::server::Model;
use crate::server::offload::Target;
use crate::top::live::LockHistory;

/// The story told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One client of tiny requests, then a CPU-bound hog: under a GIL the tiny requests
    /// queue behind it, each waiting a switch interval.
    Convoy,
    /// One client computing `fib 36`, then a second one: under a GIL each takes twice as
    /// long, the two threads taking turns.
    TwoClients,
    /// The convoy against a server that sends only expensive requests to worker processes.
    Threshold,
}

impl Choice for Scenario {
    const SETTING: &'static str = "demo";
    const ALL: &'static [Scenario] = &[Scenario::Convoy, Scenario::TwoClients, Scenario::Threshold];

    fn name(self) -> &'static str {
        match self {
            Scenario::Convoy => "convoy",
            Scenario::TwoClients => "two-clients",
            Scenario::Threshold => "threshold",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::Convoy => {
                "tiny requests, then a CPU-bound hog: watch their rate collapse under a GIL"
            }
            Scenario::TwoClients => {
                "one fib(36) client, then a second: under a GIL each takes twice as long"
            }
            Scenario::Threshold => {
                "the convoy against a server that sends fib n > 15 to worker processes"
            }
        }
    }
}

/// The server a run is against: what the keys switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub model: Model,
    pub gil: Variant,
}

/// The GIL variants `g` steps through.
const VARIANTS: [Variant; 4] = [
    Variant::New,
    Variant::Priority,
    Variant::Legacy,
    Variant::None,
];

/// The hybrid's threshold, as in the essay: fib n > 15 goes to the pool.
const THRESHOLD: u32 = 15;

impl Scenario {
    /// The setup a demo starts with.
    pub fn first_setup(self) -> Setup {
        let model = self.models()[0];
        Setup {
            model,
            gil: Variant::New,
        }
    }

    /// The models `m` steps through: the story's own first, then its contrasts.
    pub fn models(self) -> &'static [Model] {
        match self {
            Scenario::Convoy => &[
                Model::Threads,
                Model::Eventloop,
                Model::Procpool,
                Model::Hybrid,
            ],
            Scenario::TwoClients => &[Model::Threads, Model::Procpool, Model::Eventloop],
            Scenario::Threshold => &[Model::Hybrid, Model::Threads],
        }
    }

    /// The class that arrives late, and the class watched when it does.
    fn classes(self) -> (&'static str, &'static str) {
        match self {
            Scenario::Convoy | Scenario::Threshold => ("hog", "rapid"),
            Scenario::TwoClients => ("second", "first"),
        }
    }

    /// The server for `setup`, as `clab serve` arguments.
    pub fn server(self, setup: Setup) -> ServerSpec {
        let spec = ServerSpec::new(setup.model, setup.gil);
        match setup.model {
            Model::Hybrid => spec.offload(THRESHOLD, Target::Procpool).workers(2),
            Model::Procpool => spec.workers(2),
            _ => spec,
        }
    }

    /// The load of one run against `target`: `late` joins `joins_after` into the measured
    /// window, which lasts `length`.
    pub fn plan(
        self,
        target: SocketAddr,
        joins_after: Duration,
        length: Duration,
    ) -> Result<Plan, PlanError> {
        let at = humantime::format_duration(joins_after);
        let specs = match self {
            // Sizes as the lab finds them here: a hog of about 100 ms, the two clients'
            // jobs about 25 ms, the threshold's hogs about 12 ms.
            Scenario::Convoy => ["rapid=1*fib 1".to_owned(), format!("hog=1*fib 38@{at}")],
            Scenario::Threshold => ["rapid=1*fib 1".to_owned(), format!("hog=2*fib 34@{at}")],
            Scenario::TwoClients => ["first=1*fib 36".to_owned(), format!("second=1*fib 36@{at}")],
        };
        let classes = specs
            .iter()
            .map(|spec| spec.parse::<ClassPlan>())
            .collect::<Result<Vec<_>, _>>()?;
        let window = Window {
            warmup: Duration::from_secs(1),
            duration: length,
            timeout: Duration::from_secs(10),
        };
        Plan::new(Mode::Mix, target, window, classes)
    }
}

impl Setup {
    /// The next GIL variant, for `g`.
    pub fn next_gil(self) -> Setup {
        let at = VARIANTS.iter().position(|v| *v == self.gil).unwrap_or(0);
        Setup {
            gil: VARIANTS[(at + 1) % VARIANTS.len()],
            ..self
        }
    }

    /// The scenario's next model, for `m`.
    pub fn next_model(self, scenario: Scenario) -> Setup {
        let models = scenario.models();
        let at = models.iter().position(|m| *m == self.model).unwrap_or(0);
        Setup {
            model: models[(at + 1) % models.len()],
            ..self
        }
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} --gil {}", self.model.name(), self.gil.name())
    }
}

/// When, after the late class joined, one thread was first seen holding the GIL for most of
/// a refresh — the hog taking the lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sighting {
    pub holder: Option<(String, Duration)>,
}

/// The share of a refresh a thread must hold the lock to count as having taken it.
const TAKEN: f64 = 0.8;

impl Sighting {
    /// Looks at the lock after each refresh (`every`) of a run.
    pub fn look(
        &mut self,
        scenario: Scenario,
        live: &LiveLoad,
        gil: Option<&LockHistory>,
        every: Duration,
    ) {
        let (late, _) = scenario.classes();
        let (Some(joined), None, Some(gil)) = (joined_at(live, late), &self.holder, gil) else {
            return;
        };
        // The load's clock and the lock's are not one: the hold seen covers the last
        // refresh, so it began at most one refresh before this look.
        if let Some((name, share)) = gil.holder_over(every)
            && share >= TAKEN
        {
            self.holder = Some((name, live.elapsed.saturating_sub(joined) + every));
        }
    }
}

fn joined_at(live: &LiveLoad, late: &str) -> Option<Duration> {
    live.arrivals()
        .find(|(name, _)| *name == late)
        .map(|(_, at)| at)
}

/// What is happening, in a sentence or two of numbers measured in this run.
pub fn caption(scenario: Scenario, setup: Setup, live: &LiveLoad, sighting: &Sighting) -> String {
    let (late, watched) = scenario.classes();
    let (Some(watched_class), Some(late_class)) = (live.class(watched), live.class(late)) else {
        return String::new();
    };
    let joins = late_class.joins_at.unwrap_or_default().as_secs_f64();
    let now = live.elapsed.as_secs_f64();
    let Some(joined) = joined_at(live, late) else {
        return match scenario {
            Scenario::TwoClients => format!(
                "One client sends `{}` again and again: {} each. A second joins at {joins:.0} s.",
                watched_class.request,
                ms(watched_class.latency_between(0.0, joins))
            ),
            _ => format!(
                "One client sends tiny requests back to back: {} requests/s. The {late} (`{}` again and again) joins at {joins:.0} s.",
                crate::tui::rate(watched_class.rate_between(0.0, joins).unwrap_or(0.0)),
                late_class.request,
            ),
        };
    };
    let joined = joined.as_secs_f64();
    // Settled: a quarter of a second after the arrival, when the first tick with it is in.
    let after = (joined + 0.25, now + 1.0);
    match scenario {
        Scenario::TwoClients => {
            let (Some(alone), Some(beside)) = (
                watched_class.latency_between(joined - 2.0, joined),
                watched_class.latency_between(after.0, after.1),
            ) else {
                return format!("A second client joined at {joins:.0} s.");
            };
            let why = match (setup.gil, setup.model) {
                (_, Model::Procpool) => "each in its own process, with a GIL of its own",
                (Variant::None, _) => "no GIL: both compute at once, one core each",
                (_, Model::Eventloop) => {
                    "one event loop: one computes while the other waits its turn"
                }
                _ => "the GIL lets one thread compute at a time, so they take turns",
            };
            format!(
                "A second client joined: `{}` now takes {} against {} alone (×{:.1}): {why}.",
                watched_class.request,
                ms(Some(beside)),
                ms(Some(alone)),
                beside / alone
            )
        }
        Scenario::Convoy | Scenario::Threshold => {
            let (Some(before), Some(beside)) = (
                watched_class.rate_between(joined - 2.0, joined),
                watched_class.rate_between(after.0, after.1),
            ) else {
                return format!("The {late} joined at {joins:.0} s.");
            };
            let fall = (1.0 - beside / before.max(1e-9)) * 100.0;
            let mut text = format!(
                "The {late} joined {:.1} s ago: tiny requests went from {} to {} per second ({}).",
                now - joined,
                crate::tui::rate(before),
                crate::tui::rate(beside),
                change(fall)
            );
            match &sighting.holder {
                _ if matches!(setup.model, Model::Eventloop | Model::Async) => text.push_str(
                    " One event loop: while it computes a hog's request, it answers nothing else.",
                ),
                Some((name, within)) if setup.gil != Variant::None && !offloads(setup.model) => {
                    text.push_str(&format!(
                        " The hog's thread ({name}) held the GIL within {:.2} s of joining and keeps it: each tiny request waits a switch interval for it.",
                        within.as_secs_f64()
                    ))
                }
                _ if setup.gil == Variant::None => {
                    text.push_str(" No GIL: the hog computes on its own core.")
                }
                _ if offloads(setup.model) => text.push_str(
                    " fib(n > 15) is computed by worker processes, each with its own GIL; fib(1) is answered inline.",
                ),
                _ => {}
            }
            text
        }
    }
}

fn offloads(model: Model) -> bool {
    matches!(model, Model::Procpool | Model::Hybrid)
}

fn change(fall_percent: f64) -> String {
    if fall_percent >= 0.0 {
        format!("−{fall_percent:.0} %")
    } else {
        format!("+{:.0} %", -fall_percent)
    }
}

fn ms(value: Option<f64>) -> String {
    crate::tui::ms(value)
}

/// How often the screen, `top` and the load's figures refresh.
const REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the server")]
    Server(#[source] crate::lab::LabError),
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

/// Where the server and the demo (its load and its screen) run.
struct Placement {
    server: Vec<usize>,
    load: Vec<usize>,
}

impl Placement {
    /// The server on the first allowed CPU, the demo on the second (both on the one there
    /// is, where there is one).
    fn choose() -> Placement {
        let cpus = crate::system::cpus::allowed_cpus();
        let first = cpus.first().copied().unwrap_or(0);
        let second = cpus.get(1).copied().unwrap_or(first);
        Placement {
            server: vec![first],
            load: vec![second],
        }
    }

    fn describe(&self) -> String {
        format!(
            "server on CPU {}, load on CPU {}",
            self.server[0], self.load[0]
        )
    }
}

/// What the person at the terminal asked for during a run.
enum Next {
    Quit,
    Run(Setup),
}

/// Runs `scenario` on the terminal until `q`: a run, then another whenever a key asks.
pub fn run(scenario: Scenario, options: DemoOptions) -> Result<(), DemoError> {
    let placement = Placement::choose();
    // This thread's CPU is inherited by the load's threads, started from it.
    crate::system::cpus::pin(&placement.load)?;
    let logs = tempfile::tempdir()?;
    let mut screen = crate::tui::Screen::open()?;
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
    log: &std::path::Path,
    screen: &mut crate::tui::Screen,
) -> Result<Next, DemoError> {
    let spec = scenario.server(setup);
    let mut command = std::process::Command::new(&options.clab);
    command
        .arg("serve")
        .args(spec.argv())
        .args(["--addr", "127.0.0.1:0"]);
    let server = crate::lab::process::ChildServer::start(
        command,
        (spec.label(), crate::lab::process::ChildKind::Server),
        &placement.server,
        log,
        None,
    )
    .map_err(DemoError::Server)?;
    let plan = scenario.plan(server.addr, options.joins_after, options.length)?;
    let live = std::sync::Arc::new(std::sync::Mutex::new(LiveLoad::new(&plan)));
    let mut load = Some({
        let live = std::sync::Arc::clone(&live);
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
    let mut tick = std::time::Instant::now() + REFRESH;
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
                placement.describe()
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
            Some(crate::tui::Key::Quit) => {
                server.stop();
                return Ok(Next::Quit);
            }
            Some(crate::tui::Key::Char('g')) => next = Some(next.unwrap_or(setup).next_gil()),
            Some(crate::tui::Key::Char('m')) => {
                next = Some(next.unwrap_or(setup).next_model(scenario))
            }
            Some(crate::tui::Key::Char('r')) => next = Some(next.unwrap_or(setup)),
            _ => {}
        }
        if std::time::Instant::now() >= tick {
            watch.poll()?;
            tick += REFRESH;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LiveCounts;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn keys_step_through_the_variants_and_the_storys_models() {
        let setup = Scenario::Convoy.first_setup();
        assert_eq!(setup.to_string(), "threads --gil new");
        let gils: Vec<Variant> = std::iter::successors(Some(setup), |s| Some(s.next_gil()))
            .take(5)
            .map(|s| s.gil)
            .collect();
        assert_eq!(
            gils,
            [
                Variant::New,
                Variant::Priority,
                Variant::Legacy,
                Variant::None,
                Variant::New
            ]
        );
        assert_eq!(setup.next_model(Scenario::Convoy).model, Model::Eventloop);
        assert_eq!(Scenario::Threshold.first_setup().model, Model::Hybrid);
        let hybrid = Scenario::Threshold.server(Scenario::Threshold.first_setup());
        assert!(
            hybrid
                .argv()
                .join(" ")
                .contains("--offload threshold:15 --offload-to procpool")
        );
    }

    #[test]
    fn the_caption_reads_the_fall_and_who_took_the_gil() {
        let target = "127.0.0.1:1".parse().unwrap();
        let plan = Scenario::Convoy
            .plan(target, Duration::from_secs(2), Duration::from_secs(8))
            .unwrap();
        let mut live = LiveLoad::new(&plan);
        let counts: Vec<Arc<LiveCounts>> = plan.classes().iter().map(|_| Arc::default()).collect();
        let setup = Scenario::Convoy.first_setup();
        let mut completed = 0;
        // 20k requests/s until the hog joins at 3 s, then 200.
        for tick in 1..=11 {
            completed += 5000;
            counts[0].completed.store(completed, Ordering::Relaxed);
            live.update(Duration::from_millis(250 * tick), &counts);
        }
        let before = caption(Scenario::Convoy, setup, &live, &Sighting::default());
        assert!(
            before.contains("20k requests/s") && before.contains("joins at 3 s"),
            "{before}"
        );
        for tick in 12..=20 {
            completed += 50;
            counts[0].completed.store(completed, Ordering::Relaxed);
            live.update(Duration::from_millis(250 * tick), &counts);
        }
        let sighting = Sighting {
            holder: Some(("connection 2".into(), Duration::from_millis(250))),
        };
        let after = caption(Scenario::Convoy, setup, &live, &sighting);
        assert!(
            after.contains("from 20k to 200 per second (−99 %)"),
            "{after}"
        );
        assert!(
            after.contains("(connection 2) held the GIL within 0.25 s"),
            "{after}"
        );
        let free = Setup {
            gil: Variant::None,
            ..setup
        };
        assert!(caption(Scenario::Convoy, free, &live, &sighting).contains("No GIL"));
    }
}
