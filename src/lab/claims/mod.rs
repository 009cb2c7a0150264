//! The lab's catalogue, one file per claim. Each file starts with its [`Experiment`]: the
//! claim, the essay, the rule with its thresholds; then the setup and the measurement that
//! apply it. [`method`] holds each claim's one measuring method, written for one subject — a
//! CPython interpreter or an emulated configuration — and runs it on every interpreter found
//! and on the emulation standing for each (the fidelity pairs); [`metrics`] names the numbers
//! and bands they share.

pub mod experiment;
pub(crate) mod method;
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
pub(crate) mod shared_objects;
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
    &shared_objects::EXPERIMENT,
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
        assert_eq!(ALL.len(), 15);
        // The eras table covers at least seven claims.
        let eras: Vec<_> = ALL.iter().filter_map(|e| e.era.map(|_| e.id)).collect();
        assert!(eras.len() >= 7, "{eras:?}");
        for experiment in ALL {
            assert!(!experiment.claim.is_empty() && !experiment.rule.words().is_empty());
            assert!(!experiment.essay.is_empty(), "{}", experiment.id);
        }
    }

    /// The words a report shows for a rule are made from the marks its checks judge by.
    #[test]
    fn a_rule_is_said_from_its_marks() {
        let words = convoy::EXPERIMENT.rule.words();
        assert!(
            words.contains(
                "Under the GIL, the rate collapses: holds at 20 % or less, does not hold at 40 % or more."
            ),
            "{words}"
        );
        assert!(words.starts_with("rate kept = "), "{words}");
        assert!(
            words.ends_with("flagged as an artefact with its cause."),
            "{words}"
        );
        let slope = switch_interval::EXPERIMENT.rule.marks[0];
        assert_eq!(slope.judge(-0.9), crate::lab::Verdict::Holds);
        assert_eq!(slope.judge(-0.5), crate::lab::Verdict::Inconclusive);
        assert_eq!(slope.judge(-0.2), crate::lab::Verdict::DoesNotHold);
        assert!(
            switch_interval::EXPERIMENT
                .rule
                .words()
                .contains("holds from -1.35 to -0.65, does not hold below -1.60 or above -0.40")
        );
    }
}
