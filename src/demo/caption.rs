//! The demo's caption: what the numbers of the moment say, in a sentence or two, and the
//! sighting of the hog taking the GIL it reports.

use std::time::Duration;

use crate::demo::{Scenario, Setup};
use crate::gil::Variant;
use crate::load::live::LiveLoad;
use crate::server::Model;
use crate::top::live::LockHistory;
use crate::tui::{ms, rate};

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
                rate(watched_class.rate_between(0.0, joins).unwrap_or(0.0)),
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
                rate(before),
                rate(beside),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LiveCounts;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

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
