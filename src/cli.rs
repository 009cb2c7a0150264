//! Command-line definitions of `clab`, parsed once into validated library configurations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::gil::{GilConfig, Variant};
use crate::protocol::HARD_MAX_N;
use crate::server::offload::{OffloadConfig, Policy, Target};
use crate::server::{ConfigError, Model, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "clab",
    version,
    about = "A workbench for concurrency models: one Fibonacci \
    service under every model, measured",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Fibonacci protocol under one concurrency model
    #[command(after_long_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// A process-pool worker: requests on stdin, replies on stdout (started by the pool)
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Largest n accepted by `fib`
    #[arg(long, default_value_t = 45, value_parser = clap::value_parser!(u32).range(0..=HARD_MAX_N as i64))]
    pub max_n: u32,
}

const SERVE_EXAMPLES: &str = "\
Protocol: one request per line; a bare request without a newline works too.
  <n> | fib <n>   naive Fibonacci (CPU-bound)       spin <ms>   busy CPU work
  sleep <ms>      wait without CPU (I/O stand-in)   echo <text> echo
  stats           counters as one JSON line
Errors come back as `ERR <reason>` and the connection stays open.

Examples:
  clab serve --model threads
  clab serve --model threads --gil new --switch-interval 5ms --trace gil.json
  clab serve --model hybrid --offload threshold:15 --offload-to procpool
  clab serve --model pool --workers 4 --addr 127.0.0.1:0
  printf '30\\n' | nc -q1 127.0.0.1 25000

SIGINT or SIGTERM stops accepting, answers the requests in flight (for at most
--drain-timeout) and exits 0; a second signal exits at once.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The concurrency model
    #[arg(long, value_enum, default_value_t = Model::Threads)]
    pub model: Model,

    /// Address to listen on; port 0 picks a free port (the address is printed)
    #[arg(long, default_value = "127.0.0.1:25000")]
    pub addr: SocketAddr,

    /// Threads of the `pool` model or of the `async` runtime [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub workers: Option<u64>,

    /// Largest n accepted by `fib` (fib(93) overflows 64 bits)
    #[arg(long, default_value_t = 45, value_parser = clap::value_parser!(u32).range(0..=HARD_MAX_N as i64))]
    pub max_n: u32,

    /// Connections open at once; one more gets `ERR server busy` and is closed
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Close a connection that sends nothing for this long (0 = never)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Run handler code under an emulated CPython GIL (serial, threads and pool models)
    #[arg(long, value_enum, default_value_t = Variant::None)]
    pub gil: Variant,

    /// new/priority: how long a waiting thread waits before it asks the holder to drop the
    /// GIL (CPython's sys.setswitchinterval)
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub switch_interval: Duration,

    /// legacy: checkpoints ("ticks") between forced release-and-reacquire
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub check_interval: u32,

    /// Write the GIL's lock events (the newest million) to this JSON file when the server
    /// stops, for a timeline of which thread held the GIL when
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// hybrid: which requests go to the pool. `threshold:N` offloads fib n with n > N (and
    /// spin above --offload-budget); `adaptive` learns each request kind's cost as it runs
    /// and offloads what is predicted to exceed the budget [default: adaptive]
    #[arg(long, value_name = "threshold:N|adaptive")]
    pub offload: Option<Policy>,

    /// hybrid: the pool that takes offloaded requests [default: procpool]
    #[arg(long, value_enum)]
    pub offload_to: Option<Target>,

    /// hybrid: the cost above which a request is expensive
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    pub offload_budget: Duration,

    /// On SIGINT/SIGTERM, how long in-flight requests may take before the server gives up
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl ServeArgs {
    /// The server configuration these options describe.
    pub fn config(&self) -> Result<ServerConfig, ConfigError> {
        let defaults = ServerConfig::new(self.model);
        if (self.offload.is_some() || self.offload_to.is_some()) && self.model != Model::Hybrid {
            return Err(ConfigError::OffloadNeedsHybrid(self.model));
        }
        ServerConfig {
            workers: self.workers.map_or(defaults.workers, |n| n as usize),
            max_n: self.max_n,
            max_connections: self.max_connections as usize,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            gil: GilConfig {
                switch_interval: self.switch_interval,
                check_interval: self.check_interval,
                ..GilConfig::new(self.gil)
            },
            trace: self.trace.clone(),
            offload: OffloadConfig {
                policy: self.offload.unwrap_or(defaults.offload.policy),
                target: self.offload_to.unwrap_or(defaults.offload.target),
                budget: self.offload_budget,
            },
            ..defaults
        }
        .validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_options_become_a_config() {
        let cli = Cli::try_parse_from([
            "clab",
            "serve",
            "--model",
            "pool",
            "--workers",
            "3",
            "--idle-timeout",
            "0",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let config = args.config().unwrap();
        assert_eq!(
            (config.model, config.workers, config.idle_timeout),
            (Model::Pool, 3, None)
        );
    }

    #[test]
    fn gil_options_are_checked_against_the_model() {
        let parse = |argv: &[&str]| {
            let cli = Cli::try_parse_from(["clab", "serve"].iter().chain(argv)).unwrap();
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            args.config()
        };
        let config = parse(&["--gil", "new", "--switch-interval", "1ms"]).unwrap();
        assert_eq!(
            (config.gil.variant, config.gil.switch_interval),
            (Variant::New, Duration::from_millis(1))
        );
        assert_eq!(
            parse(&["--model", "eventloop", "--gil", "new"]),
            Err(ConfigError::GilNeedsThreads(Model::Eventloop))
        );
        assert_eq!(
            parse(&["--trace", "t.json"]),
            Err(ConfigError::TraceNeedsGil)
        );
    }

    #[test]
    fn out_of_range_options_are_refused() {
        for args in [
            ["--max-n", "93"],
            ["--workers", "0"],
            ["--max-connections", "0"],
            ["--model", "forks"],
        ] {
            let argv = ["clab", "serve"].into_iter().chain(args);
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }
}
