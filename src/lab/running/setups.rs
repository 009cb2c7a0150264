//! The sizes the experiments' setups state — the broker's job of about 30 ms, the threshold's
//! hog of about 13 ms — chosen on this machine at the start of the lab and measured there, so
//! a setup says what ran, not what was hoped. `fib n` is chosen from the measured cost of a
//! call under a lock, then timed over a real socket against a one-CPU server under the
//! emulated GIL, as the experiments will run it. (The claims CPython can run size their
//! requests per side instead, by each side's own calibrated cost: `method::On::fib_request`.)

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::gil::Variant;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, Sample};
use crate::server::Model;

/// A request sized for a time scale, and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Sized {
    pub n: u32,
    pub target_ms: f64,
    /// The median of a few timed requests; `None` until measured.
    pub measured_ms: Option<f64>,
}

impl Sized {
    fn aimed_at(target: Duration) -> Sized {
        Sized {
            n: fib_n_for(crate::work::work_costs().fib_call_ns, target),
            target_ms: target.as_secs_f64() * 1e3,
            measured_ms: None,
        }
    }

    /// `fib n`.
    pub fn request(&self) -> String {
        format!("fib {}", self.n)
    }

    /// "52 ms (`fib 38`, aimed at 50 ms)".
    pub fn show(&self) -> String {
        match self.measured_ms {
            Some(ms) => format!(
                "{ms:.0} ms (`fib {}`, aimed at {:.0} ms)",
                self.n, self.target_ms
            ),
            None => format!(
                "about {:.0} ms (`fib {}`, not measured)",
                self.target_ms, self.n
            ),
        }
    }
}

/// Every measured size, shown at the top of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Setups {
    /// The broker's job, at the time scale of the essays' perf1 timing fib(30).
    pub job: Sized,
    /// The threshold's hog: expensive against n > 15, short enough for many per window.
    pub threshold_hog: Sized,
    /// Where they were measured.
    pub server: String,
}

impl Default for Setups {
    fn default() -> Setups {
        Setups {
            job: Sized::aimed_at(Duration::from_millis(30)),
            threshold_hog: Sized::aimed_at(Duration::from_millis(13)),
            server: String::new(),
        }
    }
}

impl Setups {
    /// The lines the report shows.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!("broker's job: {}", self.job.show()),
            format!("threshold's hog: {}", self.threshold_hog.show()),
            format!("measured against {}", self.server),
        ]
    }
}

/// Times each size (the median of five requests) against `clab serve --model serial --gil
/// new` on the servers' one CPU.
pub fn measure(lab: &mut Lab) -> Result<Setups, LabError> {
    let mut setups = Setups::default();
    let spec = ServerSpec::new(Model::Serial, Variant::New);
    let one = lab.placement.server_one.clone();
    let server = lab.serve(&spec, &one)?;
    let time = |request: &str| -> Result<f64, LabError> {
        let took = (0..5)
            .map(|_| {
                let started = Instant::now();
                let reply = server.ask(request)?;
                if reply.starts_with("ERR") {
                    return Err(LabError::Measurement(format!("{request:?}: {reply}")));
                }
                Ok(started.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sample::new(took).median)
    };
    for sized in [&mut setups.job, &mut setups.threshold_hog] {
        // The cost model lands within an n or two; each n is φ ≈ 1.6 times the last, so the
        // nearest n is within ×0.79–×1.27 of the target.
        for _ in 0..4 {
            let took = time(&sized.request())?;
            sized.measured_ms = Some(took);
            match took / sized.target_ms {
                ratio if ratio > 1.27 && sized.n > 20 => sized.n -= 1,
                ratio if ratio < 0.79 && sized.n < 45 => sized.n += 1,
                _ => break,
            }
        }
    }
    setups.server = format!("{} on CPU {}", spec.label(), crate::lab::words::list(&one));
    server.stop();
    if let Some((_, problems)) = crate::lab::running::health::judge(&lab.health.take()) {
        return Err(LabError::Measurement(format!(
            "measuring the setups' sizes: {problems}"
        )));
    }
    Ok(setups)
}

/// The n whose naive fib takes closest to `target` at `call_ns` per call (2·fib(n) − 1 calls).
pub fn fib_n_for(call_ns: f64, target: Duration) -> u32 {
    let mut calls = (1.0_f64, 1.0_f64); // fib(1), fib(2)
    let mut best = (f64::INFINITY, 2);
    for n in 2..=45 {
        let took = (2.0 * calls.1 - 1.0) * call_ns;
        let miss = (took / target.as_nanos() as f64).ln().abs();
        if miss < best.0 {
            best = (miss, n);
        }
        calls = (calls.1, calls.0 + calls.1);
    }
    best.1
}
