//! How the run's CPUs behaved for work that keeps a core's units busy, as CPython's eval loop
//! does: samples taken between measurements, and what they add up to.
//!
//! CPython's numbers on two CPUs follow two things about a virtual machine's CPUs that the
//! emulation's own work does not feel (docs/architecture.md, "Hosts whose cores are shared"): a
//! tenant on a CPU's other hyperthread slows interpreter code on it, in spells, and the two CPUs
//! may for a while be hyperthreads of one core, each then running such code at about half
//! speed while both are busy. Each sample times a fixed piece of such work on each CPU alone
//! and on all of them at once; the summary says how slow either got, against the best seen.

use serde::Serialize;

/// Both at once this much slower than alone: the CPUs then shared a core (two hyperthreads of
/// one core give about 2, separate cores about 1).
pub const SHARED_CORE: f64 = 1.5;

/// A look at which a CPU ran the work this much slower than its best, or all at once this much
/// slower than alone, found the CPUs busy elsewhere: a quiet CPU times it within a few per
/// cent of its best, one whose core another tenant shares 1.25–1.6× (an Intel Xeon host).
pub const BUSY: f64 = 1.15;

/// One look at the CPUs, before a measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreSample {
    /// What came next: "countdown", "countdown: CPython 3.11.7", …
    pub before: String,
    /// µs the work took on each CPU alone, in the order of the run's CPUs.
    pub alone_us: Vec<f64>,
    /// µs it took on each while every CPU ran it at once; empty with one CPU.
    pub together_us: Vec<f64>,
}

impl CoreSample {
    /// How much slower the work ran on any CPU with every CPU busy than alone on it.
    pub fn together_ratio(&self) -> Option<f64> {
        self.together_us
            .iter()
            .zip(&self.alone_us)
            .map(|(together, alone)| together / alone)
            .max_by(f64::total_cmp)
    }
}

/// The run's samples of its CPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cores {
    pub cpus: Vec<usize>,
    pub samples: Vec<CoreSample>,
}

/// What the samples add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoresSummary {
    pub samples: usize,
    /// The slowest a CPU ran the work alone, against its own best in the run.
    pub slowest_alone: f64,
    /// The median of every CPU's alone time against its best.
    pub median_alone: f64,
    /// The slowest the work ran with every CPU busy, against alone in the same sample.
    pub slowest_together: Option<f64>,
    /// Samples in which the CPUs shared a core ([`SHARED_CORE`]).
    pub shared_core: usize,
}

impl CoreSample {
    /// Each CPU's time alone against its `best`, in the order of the run's CPUs.
    fn against<'a>(&'a self, best: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
        self.alone_us.iter().zip(best).map(|(us, best)| us / best)
    }
}

impl Cores {
    /// Each CPU's best time alone in the run.
    fn best(&self) -> Vec<f64> {
        (0..self.cpus.len())
            .map(|cpu| {
                self.samples
                    .iter()
                    .filter_map(|sample| sample.alone_us.get(cpu).copied())
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    /// How busy elsewhere the CPUs were around the measurement that came after the last look
    /// before `before`: the larger of the slowest CPU alone against its best and all at once
    /// against alone, in that look and the next; `None` where no look was taken before it.
    pub fn busy_around(&self, before: &str) -> Option<f64> {
        let at = self
            .samples
            .iter()
            .rposition(|sample| sample.before == before)?;
        let best = self.best();
        let busy = |sample: &CoreSample| {
            let alone = sample.against(&best).fold(1.0, f64::max);
            alone.max(sample.together_ratio().unwrap_or(1.0))
        };
        self.samples[at..]
            .iter()
            .take(2)
            .map(busy)
            .max_by(f64::total_cmp)
    }

    pub fn summary(&self) -> Option<CoresSummary> {
        let best = self.best();
        let mut alone: Vec<f64> = self
            .samples
            .iter()
            .flat_map(|sample| sample.against(&best))
            .filter(|ratio| ratio.is_finite())
            .collect();
        if alone.is_empty() {
            return None;
        }
        let together: Vec<f64> = self
            .samples
            .iter()
            .filter_map(CoreSample::together_ratio)
            .collect();
        alone.sort_by(f64::total_cmp);
        Some(CoresSummary {
            samples: self.samples.len(),
            slowest_alone: alone[alone.len() - 1],
            // The lower middle: a plain reading of "median" with an even count.
            median_alone: alone[(alone.len() - 1) / 2],
            slowest_together: together.iter().copied().max_by(f64::total_cmp),
            shared_core: together
                .iter()
                .filter(|ratio| **ratio > SHARED_CORE)
                .count(),
        })
    }

    /// The report's line: "CPUs 0, 1 in 31 samples between measurements: alone at up to 1.62× their best (median 1.05×); all at once at up to 1.97× alone, over 1.5× in 4 (sharing a core)".
    pub fn describe(&self) -> Option<String> {
        let summary = self.summary()?;
        let mut line = format!(
            "CPUs {} in {} samples between measurements, running work that keeps a core busy: alone at up to {:.2}× their best (median {:.2}×)",
            crate::lab::words::list(&self.cpus),
            summary.samples,
            summary.slowest_alone,
            summary.median_alone,
        );
        if let Some(together) = summary.slowest_together {
            line += &format!("; all at once at up to {together:.2}× alone");
            if summary.shared_core > 0 {
                line += &format!(
                    ", over {SHARED_CORE}× in {} (the CPUs then shared a core)",
                    summary.shared_core
                );
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(alone: &[f64], together: &[f64]) -> CoreSample {
        CoreSample {
            before: "x".into(),
            alone_us: alone.to_vec(),
            together_us: together.to_vec(),
        }
    }

    #[test]
    fn the_summary_measures_each_cpu_against_its_own_best() {
        let cores = Cores {
            cpus: vec![0, 1],
            samples: vec![
                sample(&[100.0, 200.0], &[100.0, 210.0]),
                sample(&[150.0, 200.0], &[300.0, 200.0]),
                sample(&[100.0, 400.0], &[100.0, 400.0]),
            ],
        };
        let summary = cores.summary().expect("samples");
        assert_eq!(summary.samples, 3);
        // CPU 1's best is 200: its 400 is 2×, though CPU 0's best is 100.
        assert_eq!(summary.slowest_alone, 2.0);
        assert_eq!(summary.median_alone, 1.0);
        assert_eq!(summary.slowest_together, Some(2.0));
        assert_eq!(summary.shared_core, 1);
        let line = cores.describe().expect("a line");
        assert!(line.contains("up to 2.00× their best"), "{line}");
        assert!(line.contains("over 1.5× in 1"), "{line}");
    }

    #[test]
    fn a_measurement_is_judged_by_the_looks_on_either_side() {
        let look = |before: &str, alone: &[f64], together: &[f64]| CoreSample {
            before: before.into(),
            ..sample(alone, together)
        };
        let cores = Cores {
            cpus: vec![0, 1],
            samples: vec![
                look("quiet", &[100.0, 200.0], &[100.0, 200.0]),
                look("busy after", &[100.0, 200.0], &[100.0, 210.0]),
                look("next", &[130.0, 200.0], &[130.0, 200.0]),
                look("shared", &[100.0, 200.0], &[190.0, 200.0]),
            ],
        };
        assert_eq!(cores.busy_around("quiet"), Some(1.05));
        assert_eq!(cores.busy_around("busy after"), Some(1.3));
        assert_eq!(cores.busy_around("shared"), Some(1.9));
        assert_eq!(cores.busy_around("never looked"), None);
    }

    #[test]
    fn one_cpu_has_no_together_and_no_samples_no_summary() {
        let one = Cores {
            cpus: vec![0],
            samples: vec![sample(&[100.0], &[]), sample(&[120.0], &[])],
        };
        let summary = one.summary().expect("samples");
        assert_eq!(summary.slowest_together, None);
        assert!(!one.describe().expect("a line").contains("at once"));
        assert_eq!(Cores::default().summary(), None);
    }
}
