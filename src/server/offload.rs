//! Where a request's work runs: on the serving thread, or offloaded to a pool — one of this
//! server's, or the workers behind a broker (`nats://HOST:PORT` or `tls://HOST:PORT`).
//!
//! `procpool` and `interpreters` offload every computing request. `hybrid` offloads only
//! expensive ones, by one of two policies:
//! - `threshold:N`, the essays' threshold server: `fib n` with n > N, and `spin` above the
//!   budget;
//! - `adaptive`: no hand-tuned number. The cost of each request kind (each fib n, each spin
//!   length) is learned online as an exponentially weighted moving average of its measured
//!   run time; a kind predicted to exceed the budget is offloaded. An unknown kind is
//!   predicted from a neighbour (fib(n) costs about φ times fib(n - 1)); with no neighbour it
//!   is probed on the pool, where a surprise cannot stall the event loop.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use crate::choice::Choice;
use crate::pool::broker::Broker;
use crate::protocol::{Request, WorkProfile};
use crate::sync::lock;

/// How `--offload` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Offload every computing request (`procpool`, `interpreters`).
    Always,
    /// Offload `fib n` with n above this, and spin above the budget.
    Threshold(u32),
    /// Offload what is predicted, from measured costs, to exceed the budget.
    Adaptive,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Policy, String> {
        match text.split_once(':') {
            None if text == "adaptive" => Ok(Policy::Adaptive),
            Some(("threshold", n)) => n
                .parse()
                .map(Policy::Threshold)
                .map_err(|_| format!("threshold:{n}: N must be a whole number")),
            _ => Err(format!("{text:?}: expected threshold:N or adaptive")),
        }
    }
}

/// Which pool takes offloaded work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Threads of the server process.
    Pool,
    /// `clab worker` processes.
    Procpool,
    /// Emulated subinterpreters: threads of the server process with a GIL each.
    Interpreters,
}

impl crate::choice::Choice for Target {
    const SETTING: &'static str = "offload target";
    const ALL: &'static [Target] = &[Target::Pool, Target::Procpool, Target::Interpreters];

    fn name(self) -> &'static str {
        match self {
            Target::Pool => "pool",
            Target::Procpool => "procpool",
            Target::Interpreters => "interpreters",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Target::Pool => "Threads of the server process",
            Target::Procpool => "`clab worker` processes",
            Target::Interpreters => {
                "Subinterpreters: threads of the server process, each with its own GIL"
            }
        }
    }
}

/// Where offloaded work goes: a pool of this server's, or the workers behind a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Local(Target),
    Broker(Broker),
}

impl FromStr for Destination {
    type Err = String;

    /// A target's name, or a broker's URL.
    fn from_str(text: &str) -> Result<Destination, String> {
        if text.contains("://") {
            return text
                .parse()
                .map(Destination::Broker)
                .map_err(|e: crate::pool::broker::BrokerError| e.to_string());
        }
        Target::from_name(text)
            .map(Destination::Local)
            .map_err(|_| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown offload target {text:?}: expected one of {}, or nats://HOST:PORT (tls://HOST:PORT)",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local(target) => f.write_str(target.name()),
            Destination::Broker(broker) => write!(f, "{broker}"),
        }
    }
}

/// `--offload`, `--offload-to`, `--offload-budget` and `--job-timeout` together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadConfig {
    pub policy: Policy,
    pub destination: Destination,
    /// What counts as expensive: spin above it (threshold), predicted cost above it (adaptive).
    pub budget: Duration,
    /// How long a job offloaded through a broker may go unanswered before it is answered
    /// `ERR job timed out`.
    pub job_timeout: Duration,
}

impl Default for OffloadConfig {
    /// Adaptive, to worker processes, with a 1 ms budget.
    fn default() -> OffloadConfig {
        OffloadConfig {
            policy: Policy::Adaptive,
            destination: Destination::Local(Target::Procpool),
            budget: Duration::from_millis(1),
            job_timeout: Duration::from_secs(30),
        }
    }
}

/// A request kind whose cost is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Fib(u32),
    Spin(u64),
    Work(WorkProfile),
}

impl Kind {
    /// The kind of a computing request; `None` for requests never worth offloading.
    pub fn of(request: &Request) -> Option<Kind> {
        match request {
            Request::Fib(n) => Some(Kind::Fib(*n)),
            Request::Spin(ms) => Some(Kind::Spin(*ms)),
            Request::Work(profile) => Some(Kind::Work(*profile)),
            Request::Sleep(_)
            | Request::Echo(_)
            | Request::Stats
            | Request::Events(_)
            | Request::Call => None,
        }
    }
}

/// Weight of the newest measurement in the moving average.
const EWMA_WEIGHT: f64 = 0.3;

/// Decides, per request, whether to offload, and learns costs for the adaptive policy.
#[derive(Debug)]
pub struct Offloader {
    policy: Policy,
    budget: Duration,
    /// Learned cost per kind, in seconds.
    costs: Mutex<HashMap<Kind, f64>>,
}

impl Offloader {
    pub fn new(policy: Policy, budget: Duration) -> Offloader {
        Offloader {
            policy,
            budget,
            costs: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to offload a request of `kind`.
    pub fn should_offload(&self, kind: Kind) -> bool {
        match (self.policy, kind) {
            (Policy::Always, _) => true,
            (Policy::Threshold(limit), Kind::Fib(n)) => n > limit,
            (Policy::Threshold(_), Kind::Spin(ms)) => Duration::from_millis(ms) > self.budget,
            (Policy::Threshold(_), Kind::Work(profile)) => profile.computing() > self.budget,
            (Policy::Adaptive, kind) => self
                .predict(kind)
                .is_none_or(|cost| cost > self.budget.as_secs_f64()),
        }
    }

    /// The predicted cost of `kind` in seconds, if anything is known to predict it from.
    fn predict(&self, kind: Kind) -> Option<f64> {
        let costs = lock(&self.costs);
        if let Some(cost) = costs.get(&kind) {
            return Some(*cost);
        }
        const GOLDEN: f64 = 1.618_033_988_75;
        match kind {
            Kind::Fib(n) => {
                let smaller = n
                    .checked_sub(1)
                    .and_then(|m| costs.get(&Kind::Fib(m)))
                    .map(|c| c * GOLDEN);
                smaller.or_else(|| costs.get(&Kind::Fib(n + 1)).map(|c| c / GOLDEN))
            }
            // Spin is calibrated to take about its length, a profiled call about its own.
            Kind::Spin(ms) => Some(Duration::from_millis(ms).as_secs_f64()),
            Kind::Work(profile) => Some((profile.computing() + profile.waiting).as_secs_f64()),
        }
    }

    /// Records that a request of `kind` took `run_time` to compute.
    pub fn record(&self, kind: Kind, run_time: Duration) {
        if self.policy != Policy::Adaptive {
            return;
        }
        let seconds = run_time.as_secs_f64();
        let mut costs = lock(&self.costs);
        costs
            .entry(kind)
            .and_modify(|cost| *cost = EWMA_WEIGHT * seconds + (1.0 - EWMA_WEIGHT) * *cost)
            .or_insert(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_destinations() {
        assert_eq!("pool".parse(), Ok(Destination::Local(Target::Pool)));
        assert_eq!(
            "nats://127.0.0.1:4222"
                .parse::<Destination>()
                .unwrap()
                .to_string(),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            "bogus".parse::<Destination>(),
            Err("unknown offload target \"bogus\": expected one of pool, procpool, interpreters, or nats://HOST:PORT (tls://HOST:PORT)".into())
        );
        assert!(
            "nats://nowhere"
                .parse::<Destination>()
                .unwrap_err()
                .contains("not a broker URL")
        );
    }

    #[test]
    fn parses_the_policies() {
        assert_eq!("threshold:15".parse(), Ok(Policy::Threshold(15)));
        assert_eq!("adaptive".parse(), Ok(Policy::Adaptive));
        assert!("threshold:x".parse::<Policy>().is_err());
        assert!("sometimes".parse::<Policy>().is_err());
    }

    #[test]
    fn threshold_offloads_above_n_and_long_spins() {
        let offloader = Offloader::new(Policy::Threshold(15), Duration::from_millis(1));
        assert!(!offloader.should_offload(Kind::Fib(15)));
        assert!(offloader.should_offload(Kind::Fib(16)));
        assert!(!offloader.should_offload(Kind::Spin(1)));
        assert!(offloader.should_offload(Kind::Spin(2)));
    }

    #[test]
    fn adaptive_probes_the_unknown_then_follows_what_it_measured() {
        let offloader = Offloader::new(Policy::Adaptive, Duration::from_millis(1));
        assert!(
            offloader.should_offload(Kind::Fib(20)),
            "an unknown kind is probed off the loop"
        );
        offloader.record(Kind::Fib(20), Duration::from_micros(100));
        assert!(!offloader.should_offload(Kind::Fib(20)));
        assert!(
            !offloader.should_offload(Kind::Fib(21)),
            "predicted from fib 20: about 160 µs"
        );
        assert!(
            offloader.should_offload(Kind::Fib(26)),
            "still unknown, no neighbour"
        );
        offloader.record(Kind::Fib(25), Duration::from_micros(1200));
        assert!(
            offloader.should_offload(Kind::Fib(26)),
            "predicted from fib 25: about 1.9 ms"
        );
        // A kind that turns out cheap after all is brought back.
        for _ in 0..10 {
            offloader.record(Kind::Fib(25), Duration::from_micros(300));
        }
        assert!(!offloader.should_offload(Kind::Fib(25)));
        assert!(!offloader.should_offload(Kind::Spin(0)));
        assert!(offloader.should_offload(Kind::Spin(5)));
    }
}
