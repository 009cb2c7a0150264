//! Measurement records: each client thread keeps its own [`Recorder`] (no sharing on the
//! hot path); a class's recorders are merged at the end into plain-data results.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::histogram::{DurationHistogram, Percentiles};

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection was refused.
    Refused,
    /// The connection broke: reset, or closed by the server mid-run.
    Reset,
    /// No reply within the timeout.
    Timeout,
    /// The server answered `ERR …`.
    ErrReply,
    /// The reply did not fit the request.
    Malformed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorCounts {
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub err_reply: u64,
    pub malformed: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.err_reply + self.malformed
    }

    fn count(&mut self, kind: FailureKind) {
        match kind {
            FailureKind::Refused => self.refused += 1,
            FailureKind::Reset => self.reset += 1,
            FailureKind::Timeout => self.timeout += 1,
            FailureKind::ErrReply => self.err_reply += 1,
            FailureKind::Malformed => self.malformed += 1,
        }
    }

    pub fn add(&mut self, other: &ErrorCounts) {
        self.refused += other.refused;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.err_reply += other.err_reply;
        self.malformed += other.malformed;
    }
}

#[derive(Debug, Clone)]
struct Second {
    completed: u64,
    errors: u64,
    latency: DurationHistogram,
}

impl Second {
    fn new() -> Second {
        // Two digits suffice for per-second p50/p99 and keep each second small.
        Second {
            completed: 0,
            errors: 0,
            latency: DurationHistogram::new(2),
        }
    }
}

/// One client's (or, merged, one class's) measurements over the measured window.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Start of measurement: what completes earlier is warm-up.
    measure_from: Instant,
    latency: DurationHistogram,
    service_time: Option<DurationHistogram>,
    seconds: Vec<Second>,
    /// Replies completed in each 100 ms of the window: the timeline a hog's arrival shows in.
    tenths: Vec<u64>,
    errors: ErrorCounts,
    pub late_sends: u64,
    pub warmup_completed: u64,
    pub aborted_at_deadline: u64,
    /// Connections opened (reconnections included).
    pub connected: u64,
}

impl Recorder {
    /// `open`: also record service time (send to reply) beside latency (due to reply).
    pub fn new(measure_from: Instant, open: bool) -> Recorder {
        Recorder {
            measure_from,
            latency: DurationHistogram::new(3),
            service_time: open.then(|| DurationHistogram::new(3)),
            seconds: Vec::new(),
            tenths: Vec::new(),
            errors: ErrorCounts::default(),
            late_sends: 0,
            warmup_completed: 0,
            aborted_at_deadline: 0,
            connected: 0,
        }
    }

    /// The per-second bucket for `at`, or `None` during warm-up.
    fn second(&mut self, at: Instant) -> Option<&mut Second> {
        let offset = at.checked_duration_since(self.measure_from)?;
        let index = offset.as_secs() as usize;
        while self.seconds.len() <= index {
            self.seconds.push(Second::new());
        }
        Some(&mut self.seconds[index])
    }

    /// A reply that arrived at `at`, `latency` after it was due (closed loop: sent).
    pub fn success(&mut self, at: Instant, latency: Duration, service_time: Option<Duration>) {
        let Some(second) = self.second(at) else {
            self.warmup_completed += 1;
            return;
        };
        second.completed += 1;
        second.latency.record(latency);
        self.latency.record(latency);
        let tenth = (at.saturating_duration_since(self.measure_from).as_millis() / 100) as usize;
        if self.tenths.len() <= tenth {
            self.tenths.resize(tenth + 1, 0);
        }
        self.tenths[tenth] += 1;
        if let (Some(histogram), Some(service_time)) = (self.service_time.as_mut(), service_time) {
            histogram.record(service_time);
        }
    }

    pub fn failure(&mut self, at: Instant, kind: FailureKind) {
        let Some(second) = self.second(at) else {
            return;
        };
        second.errors += 1;
        self.errors.count(kind);
    }

    /// Adds `other`'s measurements (same window) into this one.
    pub fn merge(&mut self, other: &Recorder) {
        self.latency.add(&other.latency);
        if let (Some(mine), Some(theirs)) =
            (self.service_time.as_mut(), other.service_time.as_ref())
        {
            mine.add(theirs);
        }
        while self.seconds.len() < other.seconds.len() {
            self.seconds.push(Second::new());
        }
        if self.tenths.len() < other.tenths.len() {
            self.tenths.resize(other.tenths.len(), 0);
        }
        for (mine, theirs) in self.tenths.iter_mut().zip(&other.tenths) {
            *mine += theirs;
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.completed += theirs.completed;
            mine.errors += theirs.errors;
            mine.latency.add(&theirs.latency);
        }
        self.errors.add(&other.errors);
        self.late_sends += other.late_sends;
        self.warmup_completed += other.warmup_completed;
        self.aborted_at_deadline += other.aborted_at_deadline;
        self.connected += other.connected;
    }

    pub fn completed(&self) -> u64 {
        self.latency.len()
    }

    pub fn errors(&self) -> ErrorCounts {
        self.errors
    }

    pub fn latency(&self) -> Percentiles {
        self.latency.percentiles()
    }

    pub fn service_time(&self) -> Option<Percentiles> {
        self.service_time
            .as_ref()
            .map(DurationHistogram::percentiles)
    }

    /// Replies completed in each 100 ms of the window (`tenths` entries at least, trailing
    /// empty ones included).
    pub fn per_100ms(&self, tenths: usize) -> Vec<u64> {
        let mut counts = self.tenths.clone();
        if counts.len() < tenths {
            counts.resize(tenths, 0);
        }
        counts
    }

    /// One entry per second of the window (`seconds` of them, trailing empty ones included).
    pub fn timeline(&self, seconds: usize) -> Vec<TimelineSecond> {
        (0..seconds.max(self.seconds.len()))
            .map(|index| match self.seconds.get(index) {
                Some(second) => {
                    let latency = second.latency.percentiles();
                    TimelineSecond {
                        second: index as u64,
                        completed: second.completed,
                        errors: second.errors,
                        p50_ms: latency.p50,
                        p99_ms: latency.p99,
                    }
                }
                None => TimelineSecond {
                    second: index as u64,
                    completed: 0,
                    errors: 0,
                    p50_ms: None,
                    p99_ms: None,
                },
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct TimelineSecond {
    pub second: u64,
    pub completed: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_left_out_and_seconds_add_up() {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(1);
        let mut first = Recorder::new(measure_from, false);
        first.success(start, Duration::from_millis(1), None);
        first.success(
            measure_from + Duration::from_millis(10),
            Duration::from_millis(2),
            None,
        );
        first.failure(
            measure_from + Duration::from_millis(1500),
            FailureKind::Timeout,
        );
        let mut second = Recorder::new(measure_from, false);
        second.success(
            measure_from + Duration::from_millis(2500),
            Duration::from_millis(4),
            None,
        );
        first.merge(&second);
        assert_eq!((first.warmup_completed, first.completed()), (1, 2));
        let timeline = first.timeline(4);
        assert_eq!(
            timeline.iter().map(|s| s.completed).collect::<Vec<_>>(),
            [1, 0, 1, 0]
        );
        assert_eq!(
            timeline.iter().map(|s| s.errors).sum::<u64>(),
            first.errors().total()
        );
        assert_eq!(timeline[3].p50_ms, None);
        // The same replies in 100 ms buckets: at 10 ms and at 2,500 ms into the window.
        let tenths = first.per_100ms(30);
        assert_eq!(tenths.len(), 30);
        assert_eq!(
            (tenths[0], tenths[25], tenths.iter().sum::<u64>()),
            (1, 1, 2)
        );
        let latency = first.latency();
        assert!((1.99..=2.01).contains(&latency.p50.unwrap()), "{latency:?}");
        assert!((3.99..=4.01).contains(&latency.max.unwrap()), "{latency:?}");
    }
}
