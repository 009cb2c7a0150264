//! Server counters, and the JSON object the `stats` request returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::gil::GilReport;

/// Counters shared by every connection of one server. Relaxed atomics: each counter is
/// read on its own, and a `stats` reply is a snapshot, not a transaction.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    accepted: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    offloaded: AtomicU64,
    write_timeouts: AtomicU64,
}

/// One `stats` reply.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StatsReport {
    pub model: String,
    pub open_connections: usize,
    /// Connections admitted since start.
    pub accepted: u64,
    /// Connections turned away with `ERR server busy`.
    pub refused: u64,
    /// Request lines answered, errors included.
    pub requests: u64,
    /// `ERR` replies sent.
    pub errors: u64,
    /// Requests computed on a pool rather than by the serving thread.
    pub offloaded: u64,
    /// Connections closed because their client read nothing for the write timeout.
    #[serde(default)]
    pub write_timeouts: u64,
    pub uptime_s: f64,
    /// The emulated GIL's figures, when the server runs under one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gil: Option<GilReport>,
    /// Each subinterpreter's own GIL (`interpreters`, or `hybrid --offload-to interpreters`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub interpreters: Vec<GilReport>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            offloaded: AtomicU64::new(0),
            write_timeouts: AtomicU64::new(0),
        }
    }

    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn offloaded(&self) {
        self.offloaded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn write_timeout(&self) {
        self.write_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self, model: &str, open_connections: usize) -> StatsReport {
        StatsReport {
            model: model.to_owned(),
            open_connections,
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            offloaded: self.offloaded.load(Ordering::Relaxed),
            write_timeouts: self.write_timeouts.load(Ordering::Relaxed),
            uptime_s: self.started.elapsed().as_secs_f64(),
            gil: None,
            interpreters: Vec::new(),
        }
    }
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}
