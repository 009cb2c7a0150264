//! `clab demo`: one command for a room. It starts a server, the load of one of the essays'
//! stories — the tiny-request client, then a few seconds later the hog — and shows `top` and
//! the load live side by side, with a caption that says what is happening in the numbers
//! measured right then. A key switches the GIL or the model for the next run.
//!
//! What each story runs is plain data here ([`Scenario`], [`Setup`]); how its caption reads
//! the numbers is [`caption`]'s; [`run`] starts, shows and stops everything; the screen is
//! [`crate::tui::demo`].

mod caption;
mod run;

pub use caption::{Sighting, caption};
pub use run::{DemoError, DemoOptions, run};

use std::net::SocketAddr;
use std::time::Duration;

use crate::choice::Choice;
use crate::gil::Variant;
use crate::lab::running::spec::ServerSpec;
use crate::load::plan::{ClassPlan, Mode, Plan, PlanError, Window};
use crate::server::Model;
use crate::server::offload::Target;

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
    pub(crate) fn classes(self) -> (&'static str, &'static str) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
