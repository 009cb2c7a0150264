//! The lab's catalogue, one file per claim. Each file starts with its
//! [`Experiment`](crate::lab::Experiment): the claim, the essay, the rule with its
//! thresholds; then the setup and the measurement that apply it.

use std::time::Duration;

use crate::lab::Experiment;

pub(crate) mod broker;
pub(crate) mod c10k;
pub(crate) mod convoy;
pub(crate) mod countdown;
pub(crate) mod cpython;
pub(crate) mod io_bound;
pub(crate) mod long_instruction;
pub(crate) mod prefork_limit;
pub(crate) mod procpool_overhead;
pub(crate) mod race;
pub(crate) mod switch_interval;
pub(crate) mod thread_memory;
pub(crate) mod threshold;
pub(crate) mod two_clients;

/// Every experiment, in the report's order.
pub static ALL: &[&Experiment] = &[
    &countdown::EXPERIMENT,
    &two_clients::EXPERIMENT,
    &convoy::EXPERIMENT,
    &procpool_overhead::EXPERIMENT,
    &threshold::EXPERIMENT,
    &prefork_limit::EXPERIMENT,
    &long_instruction::EXPERIMENT,
    &switch_interval::EXPERIMENT,
    &thread_memory::EXPERIMENT,
    &c10k::EXPERIMENT,
    &race::EXPERIMENT,
    &io_bound::EXPERIMENT,
    &broker::EXPERIMENT,
    &cpython::EXPERIMENT,
];

/// "1, 2, 4".
pub fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A ratio as a percentage with no decimals.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:.0} %", ratio * 100.0)
}

pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_rules_are_stated() {
        let mut ids: Vec<_> = ALL.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
        assert_eq!(ALL.len(), 14);
        // The eras table covers at least seven claims.
        let eras: Vec<_> = ALL.iter().filter_map(|e| e.era.map(|_| e.id)).collect();
        assert!(eras.len() >= 7, "{eras:?}");
        for experiment in ALL {
            assert!(!experiment.claim.is_empty() && !experiment.rule.is_empty());
            assert!(!experiment.essay.is_empty(), "{}", experiment.id);
        }
    }
}
