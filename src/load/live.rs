//! A load run as it goes, as plain data for the live view: per class, the rate and latency
//! percentiles of each tick, and when a class that starts late (the hog) joins. Built from
//! the driver's [`LiveCounts`] at each tick; drawing it is `crate::tui`'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::histogram::Percentiles;
use crate::load::driver::LiveCounts;
use crate::load::plan::Plan;

#[derive(Debug, Clone)]
pub struct LiveLoad {
    pub target: SocketAddr,
    pub mode: &'static str,
    pub warmup: Duration,
    /// Warm-up and measured time together.
    pub total: Duration,
    /// Since the run started, warm-up included.
    pub elapsed: Duration,
    pub classes: Vec<LiveClass>,
}

#[derive(Debug, Clone)]
pub struct LiveClass {
    pub name: String,
    pub request: String,
    pub connections: usize,
    /// When a late class joins, since the run started; `None` for one there from the start.
    pub joins_at: Option<Duration>,
    /// (seconds since the run started, requests per second) at each tick.
    pub rates: Vec<(f64, f64)>,
    /// The latencies of the replies in the last tick.
    pub latest: Option<Percentiles>,
    /// (seconds since the run started, median latency in ms) at each tick with replies.
    pub medians: Vec<(f64, f64)>,
    pub completed: u64,
    pub errors: u64,
}

impl LiveLoad {
    pub fn new(plan: &Plan) -> LiveLoad {
        LiveLoad {
            target: plan.target(),
            mode: plan.mode().name(),
            warmup: plan.warmup(),
            total: plan.warmup() + plan.duration(),
            elapsed: Duration::ZERO,
            classes: plan
                .classes()
                .iter()
                .map(|class| LiveClass {
                    name: class.name.clone(),
                    request: class.request.clone(),
                    connections: class.connections,
                    joins_at: (!class.start_after.is_zero())
                        .then(|| plan.warmup() + class.start_after),
                    rates: Vec::new(),
                    latest: None,
                    medians: Vec::new(),
                    completed: 0,
                    errors: 0,
                })
                .collect(),
        }
    }

    /// Takes in the counters at `elapsed` into the run.
    pub fn update(&mut self, elapsed: Duration, counts: &[Arc<LiveCounts>]) {
        let seconds = elapsed.saturating_sub(self.elapsed).as_secs_f64().max(1e-9);
        self.elapsed = elapsed;
        for (class, counts) in self.classes.iter_mut().zip(counts) {
            let completed = counts.completed.load(Ordering::Relaxed);
            let latencies = counts.take_latencies();
            // A class not there yet has no rate, rather than a rate of 0.
            if class.joins_at.is_some_and(|at| at > elapsed) {
                continue;
            }
            class.rates.push((
                elapsed.as_secs_f64(),
                completed.saturating_sub(class.completed) as f64 / seconds,
            ));
            class.latest = (!latencies.is_empty()).then(|| latencies.percentiles());
            if let Some(p50) = class.latest.and_then(|latest| latest.p50) {
                class.medians.push((elapsed.as_secs_f64(), p50));
            }
            class.completed = completed;
            class.errors = counts.errors.load(Ordering::Relaxed);
        }
    }

    pub fn class(&self, name: &str) -> Option<&LiveClass> {
        self.classes.iter().find(|class| class.name == name)
    }

    /// The late classes that have joined by now, and when.
    pub fn arrivals(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.classes.iter().filter_map(|class| {
            let at = class.joins_at?;
            (at <= self.elapsed).then_some((class.name.as_str(), at))
        })
    }

    /// The run's phase now, for the header: on the run's clock, warm-up included, as the
    /// plot's axis and the arrivals are.
    pub fn phase(&self) -> String {
        if self.elapsed >= self.total {
            "done".into()
        } else {
            let warming = if self.elapsed < self.warmup {
                " (warm-up)"
            } else {
                ""
            };
            format!(
                "{:.1} s of {:.0} s{warming}",
                self.elapsed.as_secs_f64(),
                self.total.as_secs_f64()
            )
        }
    }
}

impl LiveClass {
    /// The median of its per-tick rates with `from <= t < to` (seconds since the start).
    pub fn rate_between(&self, from: f64, to: f64) -> Option<f64> {
        median(&self.rates, from, to)
    }

    /// The median of its per-tick median latencies (ms) with `from <= t < to`.
    pub fn latency_between(&self, from: f64, to: f64) -> Option<f64> {
        median(&self.medians, from, to)
    }
}

fn median(points: &[(f64, f64)], from: f64, to: f64) -> Option<f64> {
    let mut values: Vec<f64> = points
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|&(_, value)| value)
        .collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::load::plan::{Mode, Window};

    /// The convoy's load — `rapid` from the start, `hog` 3 s into the measured window
    /// after 1 s of warm-up — as the live view starts it, with counters to fill in.
    pub(crate) fn convoy() -> (LiveLoad, Vec<Arc<LiveCounts>>) {
        let classes = ["rapid=1*fib 1", "hog=1*fib 40@3s"].map(|spec| spec.parse().unwrap());
        let (target, window) = ("127.0.0.1:1".parse().unwrap(), Window::default());
        let plan = Plan::new(Mode::Mix, target, window, classes.into()).unwrap();
        let counts = plan.classes().iter().map(|_| Arc::default()).collect();
        (LiveLoad::new(&plan), counts)
    }

    #[test]
    fn each_tick_adds_a_rate_and_the_hog_is_marked_once_it_joins() {
        let (mut live, counts) = convoy();
        counts[0].completed.store(500, Ordering::Relaxed);
        live.update(Duration::from_millis(250), &counts);
        assert_eq!(live.classes[0].rates, [(0.25, 2000.0)]);
        assert_eq!(live.arrivals().count(), 0);
        counts[0].completed.store(510, Ordering::Relaxed);
        let hog_joins = live.classes[1].joins_at.unwrap();
        live.update(hog_joins, &counts);
        assert_eq!(
            live.arrivals().map(|(name, _)| name).collect::<Vec<_>>(),
            ["hog"]
        );
        assert!(
            live.classes[0].rates[1].1 < 20.0,
            "{:?}",
            live.classes[0].rates
        );
    }

    #[test]
    fn the_phase_counts_on_the_clock_the_arrivals_use() {
        let (mut live, counts) = convoy();
        let total = live.total.as_secs_f64();
        live.update(Duration::from_millis(500), &counts);
        assert_eq!(live.phase(), format!("0.5 s of {total:.0} s (warm-up)"));
        let hog_joins = live.classes[1].joins_at.unwrap();
        live.update(hog_joins, &counts);
        let at = hog_joins.as_secs_f64();
        assert_eq!(live.phase(), format!("{at:.1} s of {total:.0} s"));
        live.update(live.total, &counts);
        assert_eq!(live.phase(), "done");
    }
}
