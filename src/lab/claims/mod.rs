//! The lab's catalogue, one file per claim. Each file starts with its [`Experiment`]: the
//! claim, the essay, the rule with its thresholds; then the setup and the measurement that
//! apply it. [`fidelity`] runs each claim CPython can run on every interpreter found and on the
//! emulation standing for it; [`metrics`] names the numbers both share.

pub mod experiment;
pub(crate) mod fidelity;
pub(crate) mod metrics;

use crate::lab::claims::experiment::Experiment;

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
