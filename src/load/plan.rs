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

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub mode: String,
    pub target: SocketAddr,
    /// Run this long before measuring; nothing completed then is counted.
    #[serde(rename = "warmup_s", with = "seconds")]
    pub warmup: Duration,
    /// Measure for this long after the warm-up.
    #[serde(rename = "duration_s", with = "seconds")]
    pub duration: Duration,
    /// A request with no reply after this long is a timeout error.
    #[serde(rename = "timeout_s", with = "seconds")]
    pub timeout: Duration,
    pub classes: Vec<ClassPlan>,
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
        let mut class = ClassPlan::new(name, clients, request.trim(), Pacing::Closed)?;
        if let Some(start) = start {
            class.start_after = humantime::parse_duration(start.trim())
                .map_err(|e| value(format!("start {start:?}: {e}")))?;
        }
        Ok(class)
    }
}

impl Plan {
    /// Checks what the command line cannot: names unique, offsets inside the window.
    pub fn validate(self) -> Result<Plan, PlanError> {
        if self.classes.is_empty() {
            return Err(PlanError::Invalid(
                "nothing to run: no class of clients".into(),
            ));
        }
        if self.duration.is_zero() {
            return Err(PlanError::Invalid("--duration must be more than 0".into()));
        }
        for (index, class) in self.classes.iter().enumerate() {
            if self.classes[..index]
                .iter()
                .any(|other| other.name == class.name)
            {
                return Err(PlanError::Invalid(format!(
                    "two classes are named {:?}",
                    class.name
                )));
            }
            if class.start_after >= self.duration {
                return Err(PlanError::Invalid(format!(
                    "class {:?} starts after {:?}, at or past the end of the {:?} run",
                    class.name, class.start_after, self.duration
                )));
            }
            if let Pacing::Open { rate } = class.pacing
                && !(rate > 0.0 && rate.is_finite())
            {
                return Err(PlanError::Invalid(
                    "--rate must be a positive number".into(),
                ));
            }
        }
        Ok(self)
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
