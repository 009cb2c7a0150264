//! `clab`: parse the command line, run the library, map errors to exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use clab::cli::{Cli, Command, ServeArgs};
use clab::server::{self, Shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Worker(args) => {
            let stdin = std::io::stdin().lock();
            clab::pool::worker::serve(stdin, std::io::stdout().lock(), args.max_n)
                .context("worker: the pipe to the pool broke")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("clab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    if args.workers.is_some() && !config.model.uses_workers() {
        tracing::warn!(model = %config.model, "--workers has no effect on this model");
    }
    let listener =
        server::bind(args.addr).with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let shutdown = Shutdown::new().context("cannot create the shutdown signal")?;
    watch_signals(shutdown.clone(), args.drain_timeout)?;
    tracing::info!(model = %config.model, workers = config.workers, max_n = config.max_n, "serving");
    // Printed on stdout, so scripts and tests can read the port chosen for `--addr ...:0`.
    println!("listening on {addr}");
    server::serve(listener, config, shutdown)?;
    tracing::info!("stopped");
    Ok(())
}

/// On the first SIGINT/SIGTERM, triggers `shutdown` and gives in-flight requests
/// `drain_timeout` to finish before exiting anyway; a second signal exits at once.
fn watch_signals(shutdown: Shutdown, drain_timeout: Duration) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    thread::Builder::new()
        .name("clab-signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                tracing::info!(
                    signal,
                    ?drain_timeout,
                    "stopping: answering requests in flight"
                );
                shutdown.trigger();
                thread::spawn(move || {
                    thread::sleep(drain_timeout);
                    eprintln!(
                        "clab: requests still in flight after {drain_timeout:?}; exiting anyway"
                    );
                    std::process::exit(1);
                });
            }
            if signals.next().is_some() {
                eprintln!("clab: second signal; exiting at once");
                std::process::exit(130);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
