//! The request path every model shares: one request line in, one reply out.
//!
//! A `Service` is the state of one running server (configuration, counters, open
//! connections, the shutdown signal). Models differ only in which thread or task calls
//! [`Service::respond`] and when; what a request means is decided here alone.

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{Reply, Request};
use crate::server::ServerConfig;
use crate::server::connections::{Connections, Refusal};
use crate::server::shutdown::Shutdown;
use crate::server::stats::Stats;
use crate::work::{self, Checkpoint};

#[derive(Debug)]
pub struct Service {
    pub config: ServerConfig,
    pub stats: Stats,
    pub connections: Arc<Connections>,
    pub shutdown: Shutdown,
}

/// What answering a request takes besides computing: an I/O-bound request is only a
/// reply to send after a wait, and *how* to wait (block the thread, or yield to the event
/// loop) is the model's business.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Now(Reply),
    After(Duration, Reply),
}

impl Service {
    /// A service for `config`; a trigger of `shutdown` ends the reads of its connections.
    pub fn new(config: ServerConfig, shutdown: Shutdown) -> Arc<Service> {
        let connections = Connections::new(config.max_connections);
        let sweep = Arc::clone(&connections);
        shutdown.on_trigger(move || sweep.close_reads());
        Arc::new(Service {
            config,
            stats: Stats::new(),
            connections,
            shutdown,
        })
    }

    /// Parses and executes one request line. CPU work runs right here, on the caller's
    /// thread, checkpointing through `checkpoint`.
    pub fn respond(&self, line: &[u8], checkpoint: &mut impl Checkpoint) -> Answer {
        self.stats.request();
        let request = match Request::parse(line, self.config.max_n) {
            Ok(request) => request,
            Err(error) => return Answer::Now(self.error(error.to_string())),
        };
        Answer::Now(match request {
            Request::Fib(n) => Reply::Fib(work::fib(n, checkpoint)),
            Request::Spin(ms) => {
                work::spin(ms, checkpoint);
                Reply::Spun(ms)
            }
            Request::Sleep(ms) => {
                return Answer::After(Duration::from_millis(ms), Reply::Slept(ms));
            }
            Request::Echo(text) => Reply::Echo(text),
            Request::Stats => {
                let report = self
                    .stats
                    .report(self.config.model.name(), self.connections.open());
                // A struct of plain numbers and a string always serialises.
                Reply::Stats(serde_json::to_string(&report).expect("stats serialise"))
            }
        })
    }

    /// What to tell a connection that was not admitted (counted), if anything: a server
    /// that is closing just closes.
    pub fn refusal(&self, refusal: Refusal) -> Option<Reply> {
        match refusal {
            Refusal::Busy => {
                self.stats.refused();
                Some(self.error("server busy"))
            }
            Refusal::Closing => None,
        }
    }

    /// An `ERR` reply, counted.
    pub fn error(&self, reason: impl Into<String>) -> Reply {
        self.stats.error();
        Reply::Error(reason.into())
    }
}
