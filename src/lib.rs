//! concurrency-lab: one Fibonacci service under every classic concurrency model, built to
//! see and measure why each model behaves as it does (`docs/architecture.md` describes the
//! layers and how a request and a load flow through them).
//!
//! - [`protocol`]: the line protocol, parsing and framing, without I/O;
//! - [`work`]: the workloads (fib, spin, sleep, echo) with interpreter-lock checkpoints;
//! - [`histogram`]: durations in a histogram and their percentiles, for the GIL and the load;
//! - [`gil`]: the emulated CPython GIL (new, legacy, priority) on real threads;
//! - [`pool`]: executors with futures over threads, `clab worker` processes, emulated
//!   subinterpreters and a NATS broker;
//! - [`server`]: the service under each model, `serve(listener, config, shutdown)`;
//! - [`load`]: the load generator (`clab load`);
//! - [`top`]: a running server watched through its `stats` (`clab top`);
//! - [`lab`]: the essays' claims as experiments with verdicts (`clab lab`);
//! - [`report`]: the lab's report: tables, plots, Markdown and HTML;
//! - [`system`]: what the layers share with the OS: CPU sets, limits, the machine, the socket registry;
//! - [`choice`]: settings chosen by name (a model, a GIL variant), parsed and listed one way.

pub mod choice;
pub mod demo;
pub mod gil;
pub mod histogram;
pub mod lab;
pub mod load;
pub mod pool;
pub mod protocol;
pub mod report;
pub mod server;
mod sync;
pub mod system;
pub mod top;
pub mod tui;
pub mod work;
pub mod workload;
