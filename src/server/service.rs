//! The request path every model shares: one request line in, one reply out.
//!
//! A `Service` is the state of one running server (configuration, counters, open
//! connections, the shutdown signal). Models differ only in which thread or task calls
//! [`Service::respond`] and when; what a request means is decided here alone.

use std::sync::Arc;
use std::time::Duration;

use crate::gil::{Gil, GilConfig};
use crate::pool::{Executor, ProcessPool, WorkerCommand};
use crate::protocol::{Reply, Request};
use crate::server::connections::{Connections, Refusal};
use crate::server::shutdown::Shutdown;
use crate::server::stats::Stats;
use crate::server::{Model, ServerConfig};
use crate::work::{self, Interpreter};

/// Lock events a server keeps for `--trace`: the newest million (about 24 MB).
const TRACE_EVENTS: usize = 1_000_000;

#[derive(Debug)]
pub struct Service {
    pub config: ServerConfig,
    /// The emulated interpreter lock, one per server process as in CPython.
    pub gil: Option<Gil>,
    /// `procpool`: the worker processes that compute every request. Dropping the service
    /// stops and reaps them.
    pub processes: Option<ProcessPool>,
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
    /// Fails only if the model's worker processes cannot be started.
    pub fn new(config: ServerConfig, shutdown: Shutdown) -> std::io::Result<Arc<Service>> {
        let processes = match config.model {
            Model::Procpool => Some(ProcessPool::new(
                config.workers,
                WorkerCommand::current_exe(config.max_n)?,
            )?),
            _ => None,
        };
        let connections = Connections::new(config.max_connections);
        let sweep = Arc::clone(&connections);
        shutdown.on_trigger(move || sweep.close_reads());
        let trace_capacity = config.trace.as_ref().map(|_| TRACE_EVENTS);
        let gil = GilConfig {
            trace_capacity,
            ..config.gil.clone()
        }
        .lock();
        Ok(Arc::new(Service {
            config,
            gil,
            processes,
            stats: Stats::new(),
            connections,
            shutdown,
        }))
    }

    /// Parses and executes one request line. CPU work runs right here, on the caller's
    /// thread, checkpointing through `interpreter`.
    pub fn respond(&self, line: &[u8], interpreter: &mut impl Interpreter) -> Answer {
        self.stats.request();
        let request = match Request::parse(line, self.config.max_n) {
            Ok(request) => request,
            Err(error) => return Answer::Now(self.error(error.to_string())),
        };
        match request {
            // How to wait is the model's business (block a thread, or yield to the loop).
            Request::Sleep(ms) => Answer::After(Duration::from_millis(ms), Reply::Slept(ms)),
            Request::Stats => {
                let mut report = self
                    .stats
                    .report(self.config.model.name(), self.connections.open());
                report.gil = self.gil.as_ref().map(Gil::report);
                // A struct of plain numbers and a string always serialises.
                Answer::Now(Reply::Stats(
                    serde_json::to_string(&report).expect("stats serialise"),
                ))
            }
            request => Answer::Now(match &self.processes {
                None => work::run(&request, interpreter),
                // Waiting for a worker is blocking, so the GIL is released meanwhile.
                Some(pool) => {
                    let reply = interpreter.allow_threads(|| run_in(pool, request));
                    if let Reply::Error(_) = reply {
                        self.stats.error();
                    }
                    reply
                }
            }),
        }
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

/// Runs `request` on a worker of `pool` and waits for the reply.
fn run_in(pool: &impl Executor, request: Request) -> Reply {
    match pool.submit(request).map(|job| job.wait()) {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => Reply::Error(error.to_string()),
        Err(error) => Reply::Error(error.to_string()),
    }
}
