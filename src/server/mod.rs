//! The service under each concurrency model (the README's *Models*).
//!
//! Every model is `serve(listener, config, shutdown)`: it takes a bound listener (so tests use
//! port 0) and a shutdown signal, and returns once shutdown has been triggered and in-flight
//! requests are answered. The layers, bottom up:
//!
//! - [`service`]: the one request path (parse, compute, reply) and the server's shared state;
//! - [`session`]: one connection's protocol state machine, without I/O;
//! - [`blocking`] / [`nonblocking`]: accept and connection loops on std / tokio sockets;
//! - one file per model, which only decides where connections and work are scheduled.

pub mod async_runtime;
pub mod blocking;
pub mod eventloop;
pub mod nonblocking;
pub mod offload;
pub mod pool;
pub mod prefork;
pub mod serial;
pub mod service;
pub mod session;
pub mod shutdown;
pub mod signals;
pub mod stats;
pub mod threads;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::gil::{GilConfig, Variant};
use crate::protocol::HARD_MAX_N;
use crate::server::offload::OffloadConfig;
pub use service::Service;
pub use shutdown::Shutdown;

/// The concurrency models; each line is what `clab serve --help` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Model {
    /// One client at a time, served to its end by the accept loop
    Serial,
    /// A new OS thread per connection, computing its own requests
    Threads,
    /// A fixed pool of --workers threads; other connections queue
    Pool,
    /// A thread per connection; the work done by --workers worker processes
    Procpool,
    /// --workers forked children on one socket, each serving one client at a time
    Prefork,
    /// One thread, one event loop; CPU work runs inline and stalls every client
    Eventloop,
    /// Tokio's multi-threaded work-stealing runtime with --workers threads
    Async,
    /// An event loop that offloads expensive requests to a pool (see --offload)
    Hybrid,
}

impl Model {
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
        }
    }

    /// Whether `--workers` means anything to this model.
    pub fn uses_workers(self) -> bool {
        matches!(
            self,
            Model::Pool | Model::Procpool | Model::Prefork | Model::Async | Model::Hybrid
        )
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

/// A validated server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub model: Model,
    /// Pool threads or runtime workers; at least 1.
    pub workers: usize,
    /// The largest `fib` argument accepted; at most [`HARD_MAX_N`].
    pub max_n: u32,
    /// Connections open at once; further ones get `ERR server busy`. At least 1.
    pub max_connections: usize,
    /// Close a connection that sends nothing for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// The emulated interpreter lock; `Variant::None` runs without one.
    pub gil: GilConfig,
    /// Write the GIL's event trace here when the server stops.
    pub trace: Option<PathBuf>,
    /// `hybrid`: which requests go to which pool.
    pub offload: OffloadConfig,
    /// Stack size of connection and pool threads (`None`: the platform default, 2 MiB for
    /// Rust threads). Small stacks let `threads` hold ten thousand connections.
    pub thread_stack: Option<usize>,
}

/// A configuration value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--workers must be at least 1")]
    NoWorkers,
    #[error("--max-n must be at most {HARD_MAX_N} (fib({}) overflows 64 bits)", HARD_MAX_N + 1)]
    MaxNTooLarge,
    #[error("--max-connections must be at least 1")]
    NoConnections,
    #[error("--trace records the GIL's events: it needs --gil new, legacy or priority")]
    TraceNeedsGil,
    #[error("--offload and --offload-to apply to the hybrid model, not {0}")]
    OffloadNeedsHybrid(Model),
    #[error("--thread-stack must be at least {MIN_THREAD_STACK} bytes")]
    ThreadStackTooSmall,
}

impl ServerConfig {
    /// The defaults for `model`: a worker per core, `max_n` 45, 1024 connections, a
    /// one-minute idle timeout.
    pub fn new(model: Model) -> ServerConfig {
        ServerConfig {
            model,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_n: 45,
            max_connections: 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            gil: GilConfig::default(),
            trace: None,
            offload: OffloadConfig::default(),
            thread_stack: None,
        }
    }

    pub fn validate(self) -> Result<ServerConfig, ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::NoWorkers);
        }
        if self.max_n > HARD_MAX_N {
            return Err(ConfigError::MaxNTooLarge);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if self
            .thread_stack
            .is_some_and(|bytes| bytes < MIN_THREAD_STACK)
        {
            return Err(ConfigError::ThreadStackTooSmall);
        }
        if self.trace.is_some() && self.gil.variant == Variant::None {
            return Err(ConfigError::TraceNeedsGil);
        }
        Ok(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    #[error("cannot prepare the listening socket")]
    Listener(#[source] io::Error),
    #[error("accepting connections failed")]
    Accept(#[source] io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    #[error("cannot start a worker thread")]
    Worker(#[source] io::Error),
    #[error("cannot start the worker processes")]
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

/// Everything a server needs before it takes connections: the validated configuration,
/// calibrated work, the GIL and the worker processes. Once it returns, the server is ready.
pub fn start(config: ServerConfig, shutdown: Shutdown) -> Result<Arc<Service>, ServeError> {
    let config = config.validate()?;
    // Measure the work costs now, so the first request does not pay for it.
    crate::work::work_costs();
    Service::new(config, shutdown).map_err(ServeError::Workers)
}

/// Serves on `listener` with a started `service`, then writes the GIL trace if asked.
pub fn run(listener: TcpListener, service: Arc<Service>) -> Result<(), ServeError> {
    match service.config.model {
        // A prefork child (see `prefork::supervise`) serves like the serial model.
        Model::Serial | Model::Prefork => serial::serve(listener, &service),
        // procpool schedules connections as threads does; its service sends the work to
        // worker processes.
        Model::Threads | Model::Procpool => threads::serve(listener, &service),
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
