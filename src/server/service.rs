//! The request path every model shares: one request line in, one reply out.
//!
//! A `Service` is the state of one running server (configuration, counters, open
//! connections, the shutdown signal). Models differ only in which thread or task calls
//! [`Service::respond`] and when; what a request means is decided here alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gil::{Gil, GilConfig};
use crate::pool::{
    AnyPool, BrokerPool, Executor, HopCost, InterpreterPool, JobFuture, JobOutcome, ProcessPool,
    ThreadPool, WorkerCommand,
};
use crate::protocol::{Reply, Request};
use crate::server::offload::{Destination, Kind, OffloadConfig, Offloader, Policy, Target};
use crate::server::shutdown::Shutdown;
use crate::server::stats::Stats;
use crate::server::{Model, ServerConfig};
use crate::system::connections::{Connections, Refusal};
use crate::work::{self, Interpreter};

/// Lock events a server keeps for `--trace`: the newest million (about 24 MB).
const TRACE_EVENTS: usize = 1_000_000;

/// Lock events every server under a GIL keeps for the `events` request (about 1.5 MB): a
/// second or more of the busiest convoy, for a watcher polling several times a second.
const LIVE_EVENTS: usize = 1 << 16;

#[derive(Debug)]
pub struct Service {
    pub config: ServerConfig,
    /// The emulated interpreter lock, one per server process as in CPython.
    pub gil: Option<Gil>,
    /// `procpool` and `hybrid`: the pool that computes offloaded requests, and the policy
    /// that picks them. Dropping the service stops the pool and reaps its processes.
    pub offload: Option<Offload>,
    pub stats: Stats,
    pub connections: Arc<Connections>,
    pub shutdown: Shutdown,
}

/// How a request is answered: now; after a wait (an I/O-bound request), where *how* to wait
/// (block the thread, or yield to the event loop) is the model's business; or by a pool job
/// the model waits for in the same way.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Now(Reply),
    /// A reply about the server itself (`stats`, `events`), given without the interpreter.
    Observed(Reply),
    After(Duration, Reply),
    /// Computing on a pool: the reply is this job's outcome.
    Offloaded(JobFuture),
}

#[derive(Debug)]
pub struct Offload {
    pub pool: AnyPool,
    pub offloader: Arc<Offloader>,
    /// The interpreter work a submitting thread does per job, before it submits.
    submitter_hop: Duration,
}

impl Offload {
    /// The pool for `config`'s model, if it has one. Pool threads are Python threads of
    /// this process (attached to its `gil`); pool processes and subinterpreters have GILs of
    /// their own.
    fn start(config: &ServerConfig, gil: Option<&Gil>) -> std::io::Result<Option<Offload>> {
        let always = |destination| OffloadConfig {
            policy: Policy::Always,
            destination,
            ..config.offload.clone()
        };
        let settings = match config.model {
            // Its own worker processes, or a broker's (checked when the config was built).
            Model::Procpool => always(config.offload.destination.clone()),
            Model::Interpreters => always(Destination::Local(Target::Interpreters)),
            Model::Hybrid => config.offload.clone(),
            _ => return Ok(None),
        };
        let hop = match &settings.destination {
            Destination::Local(target) => config.hop(*target),
            Destination::Broker(_) => HopCost::NONE,
        };
        let pool = match &settings.destination {
            Destination::Local(Target::Pool) => AnyPool::Threads(ThreadPool::spending(
                config.workers,
                gil.cloned(),
                hop.pool,
            )?),
            Destination::Local(Target::Procpool) => AnyPool::Processes(ProcessPool::spending(
                config.workers,
                WorkerCommand::current_exe(config.max_n)?,
                (gil.cloned(), hop.pool),
            )?),
            // Each subinterpreter has a GIL of its own, like the main one's.
            Destination::Local(Target::Interpreters) => {
                AnyPool::Interpreters(InterpreterPool::spending(
                    config.workers,
                    config.gil.clone(),
                    config.max_n,
                    hop.pool,
                )?)
            }
            Destination::Broker(broker) => AnyPool::Broker(
                BrokerPool::connect(broker, settings.job_timeout).map_err(std::io::Error::other)?,
            ),
        };
        Ok(Some(Offload {
            pool,
            offloader: Arc::new(Offloader::new(settings.policy, settings.budget)),
            submitter_hop: hop.submitter,
        }))
    }
}

impl Service {
    /// A service for `config`; a trigger of `shutdown` ends the reads of its connections,
    /// its cut ends them whole. Fails only if the model's worker processes cannot be started.
    pub fn new(config: ServerConfig, shutdown: Shutdown) -> std::io::Result<Arc<Service>> {
        let connections = Connections::new(config.max_connections);
        let (sweep, cut) = (Arc::clone(&connections), Arc::clone(&connections));
        shutdown.on_trigger(move || sweep.close_reads());
        shutdown.on_cut(move || cut.close_all());
        let trace_capacity = Some(if config.trace.is_some() {
            TRACE_EVENTS
        } else {
            LIVE_EVENTS
        });
        let gil = GilConfig {
            trace_capacity,
            ..config.gil.clone()
        }
        .lock();
        let offload = Offload::start(&config, gil.as_ref())?;
        Ok(Arc::new(Service {
            config,
            gil,
            offload,
            stats: Stats::new(),
            connections,
            shutdown,
        }))
    }

    /// Parses and executes one request line. CPU work runs right here, on the caller's
    /// thread, checkpointing through `interpreter`, which it takes back first if the
    /// connection had let it go, and after the interpreter's own request path (the config's
    /// request cost); a question about the server itself needs no interpreter.
    pub fn respond(&self, line: &[u8], interpreter: &mut impl Interpreter) -> Answer {
        self.stats.request();
        let request = match Request::parse(line, self.config.max_n) {
            Ok(request) => request,
            Err(error) => return Answer::Now(self.error(error.to_string())),
        };
        match request {
            Request::Stats => Answer::Observed(Reply::Json(self.stats_json())),
            Request::Events(since_ns) => match self
                .gil
                .as_ref()
                .and_then(|gil| gil.recent_events(since_ns))
            {
                // A struct of plain numbers and strings always serialises.
                Some(events) => Answer::Observed(Reply::Json(
                    serde_json::to_string(&events).expect("events serialise"),
                )),
                None => Answer::Now(
                    self.error("events are the GIL's: serve with --gil new, legacy or priority"),
                ),
            },
            // How to wait is the model's business (block a thread, or yield to the loop).
            Request::Sleep(ms) => Answer::After(Duration::from_millis(ms), Reply::Slept(ms)),
            Request::Call => match self.config.workload() {
                Some(profile) => {
                    interpreter.reattach();
                    crate::pool::hop::spend(self.config.request_cost(), interpreter);
                    self.compute(Request::Work(profile), interpreter)
                }
                None => Answer::Now(self.error(
                    "no workload: serve with --workload HELD+RELEASED+WAITING+BYTES (clab workload prints it)",
                )),
            },
            request => {
                interpreter.reattach();
                crate::pool::hop::spend(self.config.request_cost(), interpreter);
                self.compute(request, interpreter)
            }
        }
    }

    /// The `stats` reply's JSON object.
    fn stats_json(&self) -> String {
        let mut report = self
            .stats
            .report(self.config.model.name(), self.connections.open());
        report.gil = self.gil.as_ref().map(Gil::report);
        if let Some(Offload {
            pool: AnyPool::Interpreters(pool),
            ..
        }) = &self.offload
        {
            report.interpreters = pool.gil_reports();
        }
        // A struct of plain numbers and a string always serialises.
        serde_json::to_string(&report).expect("stats serialise")
    }

    /// Computes `request` here, or hands it to the pool when the offload policy says so,
    /// measuring what the adaptive policy learns from.
    fn compute(&self, request: Request, interpreter: &mut impl Interpreter) -> Answer {
        let kind = Kind::of(&request);
        let Some(offload) = &self.offload else {
            return Answer::Now(work::run(&request, interpreter));
        };
        let Some(kind) = kind.filter(|kind| offload.offloader.should_offload(*kind)) else {
            let started = Instant::now();
            let reply = work::run(&request, interpreter);
            if let Some(kind) = kind {
                offload.offloader.record(kind, started.elapsed());
            }
            return Answer::Now(reply);
        };
        crate::pool::hop::spend(offload.submitter_hop, interpreter);
        match offload.pool.submit(request) {
            Ok(job) => {
                self.stats.offloaded();
                let (offloader, measured) = (Arc::clone(&offload.offloader), job.clone());
                job.add_done_callback(move |outcome| {
                    // Only a job that computed its answer says what the kind costs; one cut
                    // short (a dead worker, a cancellation) says nothing.
                    let computed =
                        matches!(outcome, Ok(reply) if !matches!(reply, Reply::Error(_)));
                    if let Some(run_time) = measured.run_time().filter(|_| computed) {
                        offloader.record(kind, run_time);
                    }
                });
                Answer::Offloaded(job)
            }
            Err(error) => Answer::Now(self.error(error.to_string())),
        }
    }

    /// The reply to send for an offloaded job's outcome (errors counted).
    pub fn offloaded_reply(&self, outcome: JobOutcome) -> Reply {
        match outcome {
            Ok(Reply::Error(reason)) => self.error(reason),
            Ok(reply) => reply,
            Err(error) => self.error(error.to_string()),
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

    /// A connection's client took nothing of a reply for the write timeout: it is closed,
    /// and the log says so (nobody reading could be told).
    pub fn write_timed_out(&self, connection: u64) {
        self.stats.write_timeout();
        tracing::warn!(
            connection,
            timeout = ?self.config.write_timeout(),
            "closing a connection whose client is not reading its replies"
        );
    }

    /// An `ERR` reply, counted.
    pub fn error(&self, reason: impl Into<String>) -> Reply {
        self.stats.error();
        Reply::Error(reason.into())
    }
}
