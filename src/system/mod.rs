//! What the layers share with the operating system, in one neutral place below all of them:
//! CPU sets and pinning, CPU time used, futexes, descriptor limits, the machine's description,
//! the registry of open sockets swept at shutdown, when a failed `accept` calls for a pause,
//! where a program is installed, and one timing-shaped measurement at a time. Nothing here
//! knows about servers, loads or experiments.

pub(crate) mod accept;
pub(crate) mod connections;
pub mod cpu_time;
pub mod cpus;
pub(crate) mod futex;
pub mod limits;
pub mod machine;
pub mod programs;
pub mod timing;
