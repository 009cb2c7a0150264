//! The service under each concurrency model (the README's *Models*).
//!
//! Every model is `serve(listener, config, shutdown)`: it takes a bound listener (so tests use
//! port 0) and a shutdown signal, and returns once shutdown has been triggered and in-flight
//! requests are answered. The layers, bottom up:
//!
//! - [`service`]: the one request path (parse, compute, reply) and the server's shared state;
//! - [`session`]: one connection's protocol state machine, without I/O;
//! - `blocking` / `nonblocking`: accept and connection loops on std / tokio sockets;
//! - one file per model, which only decides where connections and work are scheduled.

pub(crate) mod async_runtime;
pub(crate) mod blocking;
pub(crate) mod eventloop;
pub(crate) mod nonblocking;
pub mod offload;
pub(crate) mod pool;
pub mod prefork;
pub mod request_cost;
pub(crate) mod serial;
pub mod service;
pub mod session;
pub mod shutdown;
pub mod signals;
pub mod stats;
pub(crate) mod threads;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::gil::{GilConfig, Variant};
use crate::pool::{HopCost, HopCosts};
use crate::protocol::{HARD_MAX_N, WorkProfile};
use crate::server::offload::{Destination, OffloadConfig, Policy, Target};
pub use request_cost::{RequestCosts, Serving};
pub use service::Service;
pub use shutdown::Shutdown;

/// The concurrency models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    Serial,
    Threads,
    Pool,
    Procpool,
    Prefork,
    Eventloop,
    Async,
    Hybrid,
    Interpreters,
}

impl Model {
    pub const ALL: [Model; 9] = [
        Model::Serial,
        Model::Threads,
        Model::Pool,
        Model::Procpool,
        Model::Prefork,
        Model::Eventloop,
        Model::Async,
        Model::Hybrid,
        Model::Interpreters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Serial => "serial",
            Model::Threads => "threads",
            Model::Pool => "pool",
            Model::Procpool => "procpool",
            Model::Prefork => "prefork",
            Model::Eventloop => "eventloop",
            Model::Async => "async",
            Model::Hybrid => "hybrid",
            Model::Interpreters => "interpreters",
        }
    }

    /// Whether connections are served by an event loop (tasks on a tokio runtime) rather
    /// than a thread each.
    pub fn is_event_loop(self) -> bool {
        matches!(self, Model::Eventloop | Model::Async | Model::Hybrid)
    }

    /// Whether `--workers` means anything to this model.
    pub fn uses_workers(self) -> bool {
        matches!(
            self,
            Model::Pool
                | Model::Procpool
                | Model::Prefork
                | Model::Async
                | Model::Hybrid
                | Model::Interpreters
        )
    }
}

impl crate::choice::Choice for Model {
    const SETTING: &'static str = "model";
    const ALL: &'static [Model] = &Model::ALL;

    fn name(self) -> &'static str {
        Model::name(self)
    }

    fn describe(self) -> &'static str {
        match self {
            Model::Serial => "One client at a time, served to its end by the accept loop",
            Model::Threads => "A new OS thread per connection, computing its own requests",
            Model::Pool => "A fixed pool of worker threads; other connections queue",
            Model::Procpool => "A thread per connection; the work done by worker processes",
            Model::Prefork => "Forked children on one socket, each serving one client at a time",
            Model::Eventloop => {
                "One thread, one event loop; CPU work runs inline and stalls every client"
            }
            Model::Async => "Tokio's multi-threaded work-stealing runtime",
            Model::Hybrid => "An event loop that offloads expensive requests to a pool",
            Model::Interpreters => "A thread per connection; the work done by subinterpreters",
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The smallest `--thread-stack` accepted: room for a connection's 8 KiB read buffer, the
/// deepest `fib` recursion (92 frames) and the runtime's own needs, with margin.
pub const MIN_THREAD_STACK: usize = 32 * 1024;

/// A thread builder for a server thread named `name`, with the configured stack size.
pub fn server_thread(config: &ServerConfig, name: String) -> std::thread::Builder {
    let builder = std::thread::Builder::new().name(name);
    match config.thread_stack {
        Some(bytes) => builder.stack_size(bytes),
        None => builder,
    }
}

/// A server configuration, validated once when it is built ([`ServerConfig::builder`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    model: Model,
    /// Pool threads, runtime workers, worker processes or prefork children; at least 1.
    workers: usize,
    /// The largest `fib` argument accepted; at most [`HARD_MAX_N`].
    max_n: u32,
    /// Connections open at once; further ones get `ERR server busy`. At least 1.
    max_connections: usize,
    /// Close a connection that sends nothing for this long (`None`: never).
    idle_timeout: Option<Duration>,
    /// Close a connection whose client takes none of a reply for this long (`None`: never).
    write_timeout: Option<Duration>,
    /// The emulated interpreter lock; `Variant::None` runs without one.
    gil: GilConfig,
    /// Write the GIL's event trace here when the server stops.
    trace: Option<PathBuf>,
    /// `hybrid`: which requests go to which pool.
    offload: OffloadConfig,
    /// Stack size of connection and pool threads (`None`: the platform default, 2 MiB for
    /// Rust threads). Small stacks let `threads` hold ten thousand connections.
    thread_stack: Option<usize>,
    /// The interpreter work each job handed to a local pool costs, by kind of pool.
    hop: HopCosts,
    /// The interpreter work each request costs beyond the emulated request path's own.
    request_cost: RequestCosts,
    /// What a `call` does: a user's function as `clab workload` profiled it.
    workload: Option<WorkProfile>,
}

/// A setting out of range, or two that do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("workers must be at least 1")]
    NoWorkers,
    #[error("max_n must be at most {HARD_MAX_N} (fib({}) overflows 64 bits)", HARD_MAX_N + 1)]
    MaxNTooLarge,
    #[error("max_connections must be at least 1")]
    NoConnections,
    #[error("a GIL trace records the lock's events: it needs a GIL (new, legacy or priority)")]
    TraceNeedsGil,
    #[error(
        "the offload policy and target apply to the hybrid model (and a broker target to procpool), not {0}"
    )]
    OffloadNeedsHybrid(Model),
    #[error("the job timeout must be more than 0")]
    NoJobTimeout,
    #[error("thread_stack must be at least {MIN_THREAD_STACK} bytes")]
    ThreadStackTooSmall,
    #[error(transparent)]
    Broker(#[from] crate::pool::broker::BrokerError),
    #[error(
        "credentials and a CA are for a broker: offload to nats://HOST:PORT or tls://HOST:PORT"
    )]
    AccessNeedsBroker,
}

impl ServerConfig {
    /// The defaults for `model` — a worker per core, `max_n` 45, the model's
    /// [`default_max_connections`], a one-minute idle timeout, a ten-second write timeout,
    /// no GIL — to change with the builder's setters.
    pub fn builder(model: Model) -> ServerConfigBuilder {
        ServerConfigBuilder {
            config: ServerConfig {
                model,
                workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
                max_n: 45,
                max_connections: default_max_connections(model),
                idle_timeout: Some(Duration::from_secs(60)),
                write_timeout: Some(Duration::from_secs(10)),
                gil: GilConfig::default(),
                trace: None,
                offload: OffloadConfig::default(),
                thread_stack: None,
                hop: HopCosts::default(),
                request_cost: RequestCosts::NONE,
                workload: None,
            },
            policy_chosen: false,
            destination_chosen: false,
        }
    }

    /// `model` with every default.
    pub fn new(model: Model) -> ServerConfig {
        ServerConfig::builder(model)
            .build()
            .expect("the defaults are valid")
    }

    pub fn model(&self) -> Model {
        self.model
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn max_n(&self) -> u32 {
        self.max_n
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    pub fn gil(&self) -> &GilConfig {
        &self.gil
    }

    /// What a `call` does, if the server was given a workload.
    pub fn workload(&self) -> Option<WorkProfile> {
        self.workload
    }

    /// The interpreter work a job handed to a pool of `target` costs.
    pub fn hop(&self, target: Target) -> HopCost {
        match target {
            Target::Pool => self.hop.threads,
            Target::Procpool => self.hop.processes,
            Target::Interpreters => self.hop.interpreters,
        }
    }

    /// The interpreter work each request costs this model's server, beyond its own.
    pub fn request_cost(&self) -> Duration {
        self.request_cost.of(Serving::of(self.model))
    }
}

/// The connections `model` holds at once unless told otherwise. An event loop (eventloop,
/// async, hybrid) holds as many as the descriptor limit allows: an idle connection costs it
/// about a kilobyte. A model with a thread per connection keeps [`THREAD_MODELS_CONNECTIONS`]:
/// each is a stack and a kernel task, and a burst of clients should not exhaust memory or
/// the system's thread limit before anyone decides it may.
pub fn default_max_connections(model: Model) -> usize {
    if model.is_event_loop() {
        crate::system::limits::DescriptorBudget::of_this_process().connections() as usize
    } else {
        THREAD_MODELS_CONNECTIONS
    }
}

/// The default connection cap of the models that give each connection a thread (or, for
/// prefork, a child that serves it).
pub const THREAD_MODELS_CONNECTIONS: usize = 1024;

/// Settings for a [`ServerConfig`], checked together by [`ServerConfigBuilder::build`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ServerConfigBuilder {
    config: ServerConfig,
    /// Whether an offload policy or destination was set, which only `hybrid` takes (and
    /// `procpool`, a broker destination).
    policy_chosen: bool,
    destination_chosen: bool,
}

impl ServerConfigBuilder {
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }

    pub fn max_n(mut self, max_n: u32) -> Self {
        self.config.max_n = max_n;
        self
    }

    pub fn max_connections(mut self, max_connections: usize) -> Self {
        self.config.max_connections = max_connections;
        self
    }

    /// `None`: never close an idle connection.
    pub fn idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = idle_timeout;
        self
    }

    /// `None`: never close a connection whose client stops reading.
    pub fn write_timeout(mut self, write_timeout: Option<Duration>) -> Self {
        self.config.write_timeout = write_timeout;
        self
    }

    pub fn gil(mut self, gil: GilConfig) -> Self {
        self.config.gil = gil;
        self
    }

    /// What a `call` does.
    pub fn workload(mut self, profile: WorkProfile) -> Self {
        self.config.workload = Some(profile);
        self
    }

    /// What handing a job to each kind of pool costs the interpreter.
    pub fn hop_costs(mut self, hop: HopCosts) -> Self {
        self.config.hop = hop;
        self
    }

    /// What handing a job to a pool of `target` costs the interpreter.
    pub fn hop_cost(mut self, target: Target, cost: HopCost) -> Self {
        let hop = &mut self.config.hop;
        match target {
            Target::Pool => hop.threads = cost,
            Target::Procpool => hop.processes = cost,
            Target::Interpreters => hop.interpreters = cost,
        }
        self
    }

    /// What each request costs the interpreter, served the `serving` way.
    pub fn request_cost(mut self, serving: Serving, cost: Duration) -> Self {
        self.config.request_cost.set(serving, cost);
        self
    }

    pub fn trace(mut self, path: PathBuf) -> Self {
        self.config.trace = Some(path);
        self
    }

    pub fn offload_policy(mut self, policy: Policy) -> Self {
        self.config.offload.policy = policy;
        self.policy_chosen = true;
        self
    }

    pub fn offload_to(mut self, destination: Destination) -> Self {
        self.config.offload.destination = destination;
        self.destination_chosen = true;
        self
    }

    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.config.offload.job_timeout = timeout;
        self
    }

    pub fn offload_budget(mut self, budget: Duration) -> Self {
        self.config.offload.budget = budget;
        self
    }

    pub fn thread_stack(mut self, bytes: usize) -> Self {
        self.config.thread_stack = Some(bytes);
        self
    }

    /// The configuration, if every setting is in range and they go together.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        let config = self.config;
        if config.workers == 0 {
            return Err(ConfigError::NoWorkers);
        }
        if config.max_n > HARD_MAX_N {
            return Err(ConfigError::MaxNTooLarge);
        }
        if config.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if config
            .thread_stack
            .is_some_and(|bytes| bytes < MIN_THREAD_STACK)
        {
            return Err(ConfigError::ThreadStackTooSmall);
        }
        if config.trace.is_some() && config.gil.variant == Variant::None {
            return Err(ConfigError::TraceNeedsGil);
        }
        let procpool_through_a_broker = config.model == Model::Procpool
            && !self.policy_chosen
            && matches!(config.offload.destination, Destination::Broker(_));
        if (self.policy_chosen || self.destination_chosen)
            && config.model != Model::Hybrid
            && !procpool_through_a_broker
        {
            return Err(ConfigError::OffloadNeedsHybrid(config.model));
        }
        if config.offload.job_timeout.is_zero() {
            return Err(ConfigError::NoJobTimeout);
        }
        Ok(config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot prepare the listening socket")]
    Listener(#[source] io::Error),
    #[error("accepting connections failed")]
    Accept(#[source] io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    #[error("cannot start a worker thread")]
    Worker(#[source] io::Error),
    #[error("cannot start the workers its requests go to")]
    Workers(#[source] io::Error),
    #[error("cannot supervise the prefork children")]
    Supervise(#[source] io::Error),
    #[error("{0} processes were still busy at the drain deadline and were killed")]
    DrainTimeout(usize),
    #[error("cannot write the GIL trace to {}", .0.display())]
    Trace(PathBuf, #[source] io::Error),
}

/// Binds a listening socket the way every model wants it: address reuse, so a restarted
/// server need not wait out TIME_WAIT, and a deep backlog for bursts of connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Serves on `listener` under `config.model` until `shutdown` is triggered and every
/// in-flight request is answered: [`start`], then [`run`].
pub fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    run(listener, start(config, shutdown)?)
}

/// Everything a server needs before it takes connections: calibrated work, the GIL and the worker processes. Once it returns, the server is ready.
pub fn start(config: ServerConfig, shutdown: Shutdown) -> Result<Arc<Service>, ServeError> {
    // Measure the work costs now, so the first request does not pay for it.
    crate::work::work_costs();
    // An interpreter without a GIL waits as free-threaded CPython's locks do.
    crate::sync::yield_before_sleeping(match config.gil.variant {
        Variant::None => crate::sync::FREE_THREADED_YIELDS,
        _ => 0,
    });
    Service::new(config, shutdown).map_err(ServeError::Workers)
}

/// Serves on `listener` with a started `service`, then writes the GIL trace if asked.
pub fn run(listener: TcpListener, service: Arc<Service>) -> Result<(), ServeError> {
    match service.config.model {
        // A prefork child (see `prefork::supervise`) serves like the serial model.
        Model::Serial | Model::Prefork => serial::serve(listener, &service),
        // procpool and interpreters schedule connections as threads does; their service
        // sends the work to worker processes or to subinterpreters.
        Model::Threads | Model::Procpool | Model::Interpreters => {
            threads::serve(listener, &service)
        }
        Model::Pool => pool::serve(listener, &service),
        // hybrid is an event loop whose service offloads expensive requests.
        Model::Eventloop | Model::Hybrid => eventloop::serve(listener, Arc::clone(&service)),
        Model::Async => async_runtime::serve(listener, Arc::clone(&service)),
    }?;
    write_trace(&service)
}

fn write_trace(service: &Service) -> Result<(), ServeError> {
    let (Some(path), Some(trace)) = (
        &service.config.trace,
        service.gil.as_ref().and_then(|gil| gil.trace()),
    ) else {
        return Ok(());
    };
    let error = |e| ServeError::Trace(path.clone(), e);
    let file = std::fs::File::create(path).map_err(error)?;
    trace.write_json(file).map_err(error)?;
    tracing::info!(path = %path.display(), events = trace.events.len(), "wrote the GIL trace");
    Ok(())
}
