//! concurrency-lab: one Fibonacci service under every classic concurrency model, built to
//! see and measure why each model behaves as it does (see `shared/DESIGN.md`).
//!
//! - [`protocol`]: the line protocol, parsing and framing, without I/O;
//! - [`work`]: the workloads (fib, spin, sleep, echo) with interpreter-lock checkpoints;
//! - [`server`]: the service under each model, `serve(listener, config, shutdown)`;
//! - [`cli`]: the command-line definitions of the `clab` binary.

pub mod cli;
pub mod protocol;
pub mod server;
pub mod work;
