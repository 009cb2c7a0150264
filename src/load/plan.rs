//! What a load run does, decided before it starts: the target, the time window, and one or
//! more classes of clients, each with its own request and pacing. Every mode of `clab load`
//! is mapped to a plan here, so one driver runs them all.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::protocol::{MAX_MILLIS, Request};

/// How a class's clients pace their requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pacing {
    /// Each client sends, waits for the reply, records, repeats.
    Closed,
    /// Requests are due on a fixed schedule, `rate` per second in total over the class's
    /// connections; latency counts from when a request was due.
    Open { rate: f64 },
    /// Connections are held open; each sends a request every `interval`, if given.
    Idle {
        #[serde(with = "seconds_option")]
        interval: Option<Duration>,
    },
}

/// One class of clients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassPlan {
    pub name: String,
    pub connections: usize,
    /// The request line exactly as sent (without its newline).
    pub request: String,
    #[serde(skip)]
    pub parsed: Request,
    pub pacing: Pacing,
    /// When the class starts, counted from the start of measurement.
    #[serde(rename = "start_after_s", with = "seconds")]
    pub start_after: Duration,
}

/// Which kind of run a plan is, as its result names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Closed-loop clients timing one request (the essays' perf1).
    Latency,
    /// Closed-loop rapid-fire tiny requests (perf2).
    Rate,
    /// Several classes at once.
    Mix,
    /// A fixed rate on a schedule.
    Open,
    /// Connections held open.
    Idle,
    /// A measurement of one of the lab's experiments.
    Lab,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Latency => "latency",
            Mode::Rate => "rate",
            Mode::Mix => "mix",
            Mode::Open => "open",
            Mode::Idle => "idle",
            Mode::Lab => "lab",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A run's time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Run this long before measuring; nothing completed then is counted.
    pub warmup: Duration,
    /// Measure for this long after the warm-up.
    pub duration: Duration,
    /// A request with no reply after this long is a timeout error.
    pub timeout: Duration,
}

impl Default for Window {
    /// One second of warm-up, ten measured, ten before a request times out.
    fn default() -> Window {
        Window {
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A whole run, validated once when it is made ([`Plan::new`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    mode: Mode,
    target: SocketAddr,
    #[serde(rename = "warmup_s", with = "seconds")]
    warmup: Duration,
    #[serde(rename = "duration_s", with = "seconds")]
    duration: Duration,
    #[serde(rename = "timeout_s", with = "seconds")]
    timeout: Duration,
    classes: Vec<ClassPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("bad request {0:?}: {1}")]
    Request(String, String),
    #[error("class {0:?}: expected NAME=CLIENTS*REQUEST[@START], e.g. \"hog=1*fib 40@3s\"")]
    ClassSyntax(String),
    #[error("class {0:?}: {1}")]
    ClassValue(String, String),
    #[error("{0}")]
    Invalid(String),
}

impl ClassPlan {
    pub fn new(
        name: &str,
        connections: usize,
        request: &str,
        pacing: Pacing,
    ) -> Result<ClassPlan, PlanError> {
        let parsed = Request::parse(request.as_bytes(), crate::protocol::HARD_MAX_N)
            .map_err(|error| PlanError::Request(request.to_owned(), error.to_string()))?;
        if let Request::Sleep(ms) | Request::Spin(ms) = parsed {
            debug_assert!(ms <= MAX_MILLIS);
        }
        Ok(ClassPlan {
            name: name.to_owned(),
            connections,
            request: request.to_owned(),
            parsed,
            pacing,
            start_after: Duration::ZERO,
        })
    }
}

impl ClassPlan {
    /// The class, starting `start_after` into the measured window.
    pub fn starting_after(mut self, start_after: Duration) -> ClassPlan {
        self.start_after = start_after;
        self
    }
}

/// `NAME=CLIENTS*REQUEST[@START]`: a closed-loop class for `mix`.
impl FromStr for ClassPlan {
    type Err = PlanError;

    fn from_str(spec: &str) -> Result<ClassPlan, PlanError> {
        let syntax = || PlanError::ClassSyntax(spec.to_owned());
        let (name, rest) = spec.split_once('=').ok_or_else(syntax)?;
        let (clients, rest) = rest.split_once('*').ok_or_else(syntax)?;
        let (request, start) = match rest.rsplit_once('@') {
            Some((request, start)) => (request, Some(start)),
            None => (rest, None),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(syntax());
        }
        let value = |message: String| PlanError::ClassValue(spec.to_owned(), message);
        let clients: usize = clients
            .trim()
            .parse()
            .map_err(|_| value(format!("{clients:?} is not a client count")))?;
        if clients == 0 {
            return Err(value("a class needs at least one client".into()));
        }
        let class = ClassPlan::new(name, clients, request.trim(), Pacing::Closed)?;
        match start {
            Some(start) => Ok(class.starting_after(
                humantime::parse_duration(start.trim())
                    .map_err(|e| value(format!("start {start:?}: {e}")))?,
            )),
            None => Ok(class),
        }
    }
}

impl Plan {
    /// A run of `classes` against `target`, if the classes fit the window: at least one,
    /// names unique, each starting inside the measured duration, open rates positive.
    pub fn new(
        mode: Mode,
        target: SocketAddr,
        window: Window,
        classes: Vec<ClassPlan>,
    ) -> Result<Plan, PlanError> {
        if classes.is_empty() {
            return Err(PlanError::Invalid(
                "nothing to run: no class of clients".into(),
            ));
        }
        if window.duration.is_zero() {
            return Err(PlanError::Invalid(
                "the measured duration must be more than 0".into(),
            ));
        }
        for (index, class) in classes.iter().enumerate() {
            if class.connections == 0 {
                return Err(PlanError::Invalid(format!(
                    "class {:?} has no connection",
                    class.name
                )));
            }
            if classes[..index]
                .iter()
                .any(|other| other.name == class.name)
            {
                return Err(PlanError::Invalid(format!(
                    "two classes are named {:?}",
                    class.name
                )));
            }
            if class.start_after >= window.duration {
                return Err(PlanError::Invalid(format!(
                    "class {:?} starts after {:?}, at or past the end of the {:?} run",
                    class.name, class.start_after, window.duration
                )));
            }
            if let Pacing::Open { rate } = class.pacing
                && !(rate > 0.0 && rate.is_finite())
            {
                return Err(PlanError::Invalid(format!(
                    "class {:?}: the rate must be a positive number of requests per second",
                    class.name
                )));
            }
        }
        Ok(Plan {
            mode,
            target,
            warmup: window.warmup,
            duration: window.duration,
            timeout: window.timeout,
            classes,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Run this long before measuring; nothing completed then is counted.
    pub fn warmup(&self) -> Duration {
        self.warmup
    }

    /// Measure for this long after the warm-up.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// A request with no reply after this long is a timeout error.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn classes(&self) -> &[ClassPlan] {
        &self.classes
    }
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        duration: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }
}

mod seconds_option {
    pub fn serialize<S: serde::Serializer>(
        duration: &Option<std::time::Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_f64(duration.as_secs_f64()),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_specs_parse() {
        let class: ClassPlan = "hog=1*fib 40@3s".parse().unwrap();
        assert_eq!(
            (
                class.name.as_str(),
                class.connections,
                class.request.as_str()
            ),
            ("hog", 1, "fib 40")
        );
        assert_eq!(class.start_after, Duration::from_secs(3));
        let class: ClassPlan = "rapid = 4 * 1".parse().unwrap();
        assert_eq!(
            (class.connections, class.parsed.clone()),
            (4, Request::Fib(1))
        );
        assert!(matches!(
            "rapid".parse::<ClassPlan>(),
            Err(PlanError::ClassSyntax(_))
        ));
        assert!(matches!(
            "r=0*1".parse::<ClassPlan>(),
            Err(PlanError::ClassValue(..))
        ));
        assert!(matches!(
            "r=1*bogus".parse::<ClassPlan>(),
            Err(PlanError::Request(..))
        ));
        assert!(matches!(
            "r=1*1@soon".parse::<ClassPlan>(),
            Err(PlanError::ClassValue(..))
        ));
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn closed(name: &str) -> ClassPlan {
        ClassPlan::new(name, 1, "fib 1", Pacing::Closed).unwrap()
    }

    #[test]
    fn a_plan_is_checked_when_it_is_made() {
        let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let window = Window::default();
        let plan = |classes| Plan::new(Mode::Mix, target, window, classes);
        assert!(plan(vec![closed("a"), closed("b")]).is_ok());
        assert!(plan(vec![]).is_err());
        assert!(plan(vec![closed("a"), closed("a")]).is_err());
        assert!(plan(vec![closed("a").starting_after(window.duration)]).is_err());
        let open = ClassPlan::new("o", 1, "fib 1", Pacing::Open { rate: 0.0 }).unwrap();
        assert!(plan(vec![open]).is_err());
        let zero = Window {
            duration: Duration::ZERO,
            ..window
        };
        assert!(Plan::new(Mode::Rate, target, zero, vec![closed("a")]).is_err());
    }
}
