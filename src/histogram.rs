//! Durations in a histogram, and the percentiles read from it: one type for the GIL's wait
//! and hand-off statistics and for the load generator's latencies, so both report the same
//! fields the same way.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Durations from 1 µs to an hour, recorded in microseconds (shorter ones count as 1 µs,
/// longer ones as an hour).
#[derive(Debug, Clone)]
pub struct DurationHistogram(hdrhistogram::Histogram<u64>);

impl DurationHistogram {
    /// `significant_digits` of precision: 2 keeps a histogram near 20 KB, 3 near 200 KB.
    pub fn new(significant_digits: u8) -> DurationHistogram {
        DurationHistogram(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, significant_digits)
                .expect("valid histogram bounds"),
        )
    }

    pub fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// Adds `other`'s counts into this one.
    pub fn add(&mut self, other: &DurationHistogram) {
        // Every histogram here has the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn percentiles(&self) -> Percentiles {
        let count = self.0.len();
        let ms = |micros: f64| (count > 0).then_some(micros / 1e3);
        let at = |quantile| ms(self.0.value_at_quantile(quantile) as f64);
        Percentiles {
            count,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p99_9: at(0.999),
            max: ms(self.0.max() as f64),
            mean: ms(self.0.mean()),
            stdev: ms(self.0.stdev()),
        }
    }
}

/// Percentiles of a [`DurationHistogram`] in milliseconds; all `None` when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p99_9: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub stdev: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds_and_empty_ones_are_none() {
        let mut histogram = DurationHistogram::new(3);
        assert_eq!(histogram.percentiles().p50, None);
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        let mut other = DurationHistogram::new(3);
        other.record(Duration::from_secs(2));
        histogram.add(&other);
        let percentiles = histogram.percentiles();
        assert_eq!(percentiles.count, 101);
        assert!(
            (49.9..=51.1).contains(&percentiles.p50.unwrap()),
            "{percentiles:?}"
        );
        assert!(
            (1999.0..=2001.0).contains(&percentiles.max.unwrap()),
            "{percentiles:?}"
        );
        histogram.record(Duration::ZERO);
        assert_eq!(histogram.len(), 102);
    }
}
