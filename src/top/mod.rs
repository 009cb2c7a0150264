//! `clab top`: a running server watched through its own `stats` line, asked for on one
//! connection at every refresh. What changed between two answers — requests per second,
//! errors, connections, and under a GIL how much of the interval it was held, switches and
//! releases — is an [`Interval`], plain data; rendering it is the caller's. Under a GIL the
//! watcher also asks for the lock's `events` since its last poll, which [`live`] turns into
//! per-thread figures and a lane strip for the terminal dashboard.

pub mod live;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::gil::RecentEvents;
use crate::gil::stats::{GilReport, ThreadReport};
use crate::server::stats::StatsReport;

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("cannot reach a server at {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    #[error("the server at {0} went away")]
    Gone(SocketAddr, #[source] std::io::Error),
    #[error("the server at {0} answered `stats` with {1:?}, not a clab server's statistics")]
    NotStats(SocketAddr, String),
    #[error("cannot draw on this terminal")]
    Terminal(#[source] std::io::Error),
}

/// One connection to a server, asking it for `stats`.
pub struct Watcher {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Watcher {
    pub fn connect(addr: SocketAddr) -> Result<Watcher, TopError> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| TopError::Connect(addr, e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| TopError::Connect(addr, e))?;
        Ok(Watcher {
            addr,
            reader: BufReader::new(stream),
        })
    }

    pub fn stats(&mut self) -> Result<StatsReport, TopError> {
        let line = self.ask("stats")?;
        serde_json::from_str(&line)
            .map_err(|_| TopError::NotStats(self.addr, line.chars().take(60).collect()))
    }

    /// The GIL's events after `since_ns`; `None` where the server keeps none (no GIL, or a
    /// server that does not know the request, such as CPython's).
    pub fn events(&mut self, since_ns: u64) -> Result<Option<RecentEvents>, TopError> {
        let line = self.ask(&format!("events {since_ns}"))?;
        Ok(serde_json::from_str(&line).ok())
    }

    /// One request line out, its reply line back (without the newline).
    fn ask(&mut self, request: &str) -> Result<String, TopError> {
        let gone = |e| TopError::Gone(self.addr, e);
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{request}\n").as_bytes())
            .map_err(gone)?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(gone(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(error) => Err(gone(error)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// What happened between two `stats` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interval {
    /// The server's uptime at the end of the interval.
    pub uptime_s: f64,
    /// Requests answered per second, this watcher's own `stats` left out.
    pub requests_per_s: f64,
    /// Connections open, this watcher's left out.
    pub open_connections: usize,
    pub errors: u64,
    pub gil: Option<GilInterval>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GilInterval {
    pub variant: String,
    /// The share of the interval some thread held the GIL.
    pub held: f64,
    pub switches_per_s: f64,
    pub forced_releases: u64,
    pub voluntary_releases: u64,
    pub drop_requests: u64,
    /// The thread with the longest 99th-percentile wait since the server started, and it.
    pub slowest_waiter: Option<(String, f64)>,
}

impl Interval {
    /// From `before` to `after`, two answers on one connection, between which the watcher
    /// itself sent `own_requests` (its `stats`, and its `events` if it asks for them).
    pub fn between(before: &StatsReport, after: &StatsReport, own_requests: u64) -> Interval {
        let seconds = (after.uptime_s - before.uptime_s).max(1e-9);
        let requests = after
            .requests
            .saturating_sub(before.requests + own_requests);
        Interval {
            uptime_s: after.uptime_s,
            requests_per_s: requests as f64 / seconds,
            open_connections: after.open_connections.saturating_sub(1),
            errors: after.errors.saturating_sub(before.errors),
            gil: after
                .gil
                .as_ref()
                .map(|gil| GilInterval::between(before.gil.as_ref(), gil, seconds)),
        }
    }
}

impl GilInterval {
    fn between(before: Option<&GilReport>, after: &GilReport, seconds: f64) -> GilInterval {
        let total = |report: Option<&GilReport>, figure: fn(&ThreadReport) -> f64| {
            report.map_or(0.0, |gil| {
                gil.threads
                    .iter()
                    .chain(std::iter::once(&gil.ended_threads))
                    .map(figure)
                    .sum::<f64>()
            })
        };
        let change = |figure: fn(&ThreadReport) -> f64| {
            (total(Some(after), figure) - total(before, figure)).max(0.0)
        };
        let slowest_waiter = after
            .threads
            .iter()
            .filter_map(|thread| Some((thread.name.clone(), thread.wait_ms.p99?)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        GilInterval {
            variant: after.variant.clone(),
            held: (change(|t| t.hold_ms) / (seconds * 1e3)).min(1.0),
            switches_per_s: after
                .switches
                .saturating_sub(before.map_or(0, |gil| gil.switches))
                as f64
                / seconds,
            forced_releases: change(|t| t.forced_releases as f64) as u64,
            voluntary_releases: change(|t| t.voluntary_releases as f64) as u64,
            drop_requests: change(|t| t.drop_requests as f64) as u64,
            slowest_waiter,
        }
    }
}

impl std::fmt::Display for Interval {
    /// One line: "  12.3 s   1834 req/s  2 conns  0 errors | GIL new: held 98 %, …".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:7.1} s {:8.0} req/s {:5} conns {:4} errors",
            self.uptime_s, self.requests_per_s, self.open_connections, self.errors
        )?;
        if let Some(gil) = &self.gil {
            write!(
                f,
                " | GIL {}: held {:3.0} %, {:5.0} switches/s, {} forced, {} voluntary, {} drop requests",
                gil.variant,
                gil.held * 100.0,
                gil.switches_per_s,
                gil.forced_releases,
                gil.voluntary_releases,
                gil.drop_requests
            )?;
            if let Some((name, p99)) = &gil.slowest_waiter {
                write!(f, ", waits p99 {p99:.1} ms ({name})")?;
            }
        }
        Ok(())
    }
}

/// How `plain` writes each refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// One line for a person.
    Text,
    /// One JSON object per line, an [`Interval`], for a program.
    Json,
}

/// Prints one line per `every` to `out` until `duration` has passed (or for ever).
pub fn plain(
    addr: SocketAddr,
    every: Duration,
    duration: Option<Duration>,
    format: LineFormat,
    mut out: impl Write,
) -> Result<(), TopError> {
    let started = Instant::now();
    let mut watcher = Watcher::connect(addr)?;
    let mut before = watcher.stats()?;
    loop {
        std::thread::sleep(every);
        let after = watcher.stats()?;
        // A closed pipe (`| head`) ends the watch quietly.
        let interval = Interval::between(&before, &after, 1);
        let line = match format {
            LineFormat::Text => interval.to_string(),
            LineFormat::Json => serde_json::to_string(&interval).expect("an interval serialises"),
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
        before = after;
        if duration.is_some_and(|duration| started.elapsed() >= duration) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(uptime_s: f64, requests: u64, hold_ms: f64, switches: u64) -> StatsReport {
        // `busy`: the live thread carries the counts; the ended threads carry none.
        let thread = |name: &str, hold_ms, busy: bool| {
            let (requests, switches) = if busy { (requests, switches) } else { (0, 0) };
            serde_json::from_value::<ThreadReport>(serde_json::json!({
                "name": name, "acquisitions": 1, "hold_ms": hold_ms,
                "wait_ms": {"count": 1, "p50": 1.0, "p90": 4.0, "p99": 5.0, "p99_9": 5.0, "max": 5.0, "mean": 2.0, "stdev": 1.0},
                "voluntary_releases": requests, "forced_releases": switches, "drop_requests": switches,
                "drop_request_latency_ms": {"count": 0, "p50": null, "p90": null, "p99": null, "p99_9": null, "max": null, "mean": null, "stdev": null},
                "retries": 0, "handoff_wait_ms": 0.0
            }))
            .unwrap()
        };
        StatsReport {
            model: "threads".into(),
            open_connections: 3,
            accepted: 3,
            refused: 0,
            requests,
            errors: 0,
            offloaded: 0,
            write_timeouts: 0,
            uptime_s,
            gil: Some(GilReport {
                variant: "new".into(),
                switch_interval_us: 5000,
                switches,
                utilisation: 0.9,
                threads: vec![thread("connection 0", hold_ms, true)],
                ended_threads: thread("ended threads", 0.0, false),
            }),
            interpreters: Vec::new(),
        }
    }

    #[test]
    fn an_interval_is_what_changed_less_the_watcher_itself() {
        let interval = Interval::between(
            &report(1.0, 100, 100.0, 10),
            &report(1.5, 601, 550.0, 110),
            1,
        );
        let line = interval.to_string();
        assert_eq!(interval.requests_per_s, 1000.0);
        assert_eq!(interval.open_connections, 2);
        let gil = interval.gil.unwrap();
        assert!((gil.held - 0.9).abs() < 1e-9, "{gil:?}");
        assert_eq!((gil.switches_per_s, gil.forced_releases), (200.0, 100));
        assert_eq!(gil.slowest_waiter, Some(("connection 0".into(), 5.0)));
        assert!(
            line.contains("1000 req/s") && line.contains("GIL new: held  90 %"),
            "{line}"
        );
    }
}
