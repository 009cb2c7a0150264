//! GIL statistics: per-thread counters and histograms, updated at lock transitions (never
//! per checkpoint), and the report the server's `stats` request embeds.

use std::time::Duration;

use serde::Serialize;

use crate::histogram::{DurationHistogram, Percentiles};

/// Two significant digits: about 20 KB a histogram, and a thread keeps two.
fn histogram() -> DurationHistogram {
    DurationHistogram::new(2)
}

/// One thread's record, kept under the GIL's state mutex.
#[derive(Debug, Clone)]
pub(crate) struct ThreadStats {
    pub name: String,
    pub acquisitions: u64,
    pub hold: Duration,
    pub wait: DurationHistogram,
    pub voluntary_releases: u64,
    pub forced_releases: u64,
    pub drop_requests: u64,
    pub drop_request_latency: DurationHistogram,
    pub retries: u64,
    pub handoff_wait: Duration,
}

impl ThreadStats {
    pub fn new(name: String) -> ThreadStats {
        ThreadStats {
            name,
            acquisitions: 0,
            hold: Duration::ZERO,
            wait: histogram(),
            voluntary_releases: 0,
            forced_releases: 0,
            drop_requests: 0,
            drop_request_latency: histogram(),
            retries: 0,
            handoff_wait: Duration::ZERO,
        }
    }

    pub fn record_wait(&mut self, wait: Duration) {
        self.wait.record(wait);
    }

    pub fn record_drop_request_latency(&mut self, latency: Duration) {
        self.drop_request_latency.record(latency);
    }

    /// Adds `other`'s record into this one (for threads that have ended).
    pub fn absorb(&mut self, other: &ThreadStats) {
        self.acquisitions += other.acquisitions;
        self.hold += other.hold;
        self.wait.add(&other.wait);
        self.voluntary_releases += other.voluntary_releases;
        self.forced_releases += other.forced_releases;
        self.drop_requests += other.drop_requests;
        self.drop_request_latency.add(&other.drop_request_latency);
        self.retries += other.retries;
        self.handoff_wait += other.handoff_wait;
    }

    pub fn report(&self) -> ThreadReport {
        ThreadReport {
            name: self.name.clone(),
            acquisitions: self.acquisitions,
            hold_ms: self.hold.as_secs_f64() * 1e3,
            wait_ms: self.wait.percentiles(),
            voluntary_releases: self.voluntary_releases,
            forced_releases: self.forced_releases,
            drop_requests: self.drop_requests,
            drop_request_latency_ms: self.drop_request_latency.percentiles(),
            retries: self.retries,
            handoff_wait_ms: self.handoff_wait.as_secs_f64() * 1e3,
        }
    }
}

/// One thread's GIL figures, as `stats` reports them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ThreadReport {
    pub name: String,
    pub acquisitions: u64,
    /// Total time holding the GIL.
    pub hold_ms: f64,
    /// Time from asking for the GIL to getting it.
    pub wait_ms: Percentiles,
    /// Releases around blocking calls (`allow_threads`) and at thread exit.
    pub voluntary_releases: u64,
    /// Releases at a checkpoint because another thread asked (or, legacy, every N ticks).
    pub forced_releases: u64,
    /// Drop requests this thread set while waiting.
    pub drop_requests: u64,
    /// How long this thread took, holding the GIL, to honour a drop request.
    pub drop_request_latency_ms: Percentiles,
    /// Wake-ups that found the GIL taken again (Beazley's RETRY).
    pub retries: u64,
    /// Time spent after a forced drop waiting for another thread to take the GIL.
    pub handoff_wait_ms: f64,
}

/// The GIL section of a `stats` reply.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GilReport {
    pub variant: String,
    pub switch_interval_us: u64,
    /// Acquisitions by a thread other than the previous holder.
    pub switches: u64,
    /// Fraction of the GIL's lifetime during which some thread held it.
    pub utilisation: f64,
    /// Threads attached now.
    pub threads: Vec<ThreadReport>,
    /// All threads that have detached for good, added together.
    pub ended_threads: ThreadReport,
}
