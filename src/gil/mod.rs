//! The emulated CPython GIL on real OS threads (DESIGN §4, `shared/reference/gil-model.md`).
//!
//! One [`Gil`] plays one interpreter's lock. Each OS thread that runs "Python" attaches and
//! gets a [`GilThread`] handle, which implements [`Interpreter`](crate::work::Interpreter):
//! CPU work calls `checkpoint()` at bytecode boundaries, blocking calls run inside
//! `allow_threads()`. The variants:
//!
//! - **new** (CPython 3.2+): a waiter waits one switch interval, then — if no switch happened
//!   meanwhile — sets a drop request; the holder honours it at its next checkpoint and, forced
//!   to drop, waits until another thread has taken the lock. No queue: a thread asking for a
//!   free lock takes it at once (barging).
//! - **legacy** (2.x): every `check_interval` ticks the holder releases and at once re-acquires;
//!   no handoff, so on several cores it mostly wins its own lock back (the thrash).
//! - **priority** (Beazley's 2010 proposal): new, but a thread forced to drop is CPU-bound, and
//!   a thread that released voluntarily preempts a CPU-bound holder at once.
//! - **none**: no lock at all. The server then runs with [`Free`](crate::work::Free), whose
//!   checkpoints compile to nothing; [`GilConfig::lock`] returns `None` for it.

mod lock;
pub mod stats;
mod sync;
pub mod trace;

use std::time::Duration;

pub use lock::{Gil, GilThread};
pub use stats::{GilReport, Percentiles, ThreadReport};
pub use trace::{Event, EventKind, Trace, TraceThread};

/// Which lock algorithm to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// No GIL: threads run truly in parallel (free-threaded Python)
    None,
    /// CPython 3.2+: timed wait of the switch interval, drop request, forced handoff
    New,
    /// CPython 2.x: release and re-acquire every N ticks, no handoff
    Legacy,
    /// New, plus Beazley's priority: I/O-bound threads preempt CPU-bound ones at once
    Priority,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::None => "none",
            Variant::New => "new",
            Variant::Legacy => "legacy",
            Variant::Priority => "priority",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a [`Gil`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GilConfig {
    pub variant: Variant,
    /// new/priority: how long a waiter waits before it asks the holder to drop (CPython's
    /// `sys.setswitchinterval`, default 5 ms; at least 1 µs, as CPython reads 0).
    pub switch_interval: Duration,
    /// legacy: checkpoints between forced release-and-reacquire (`sys.setcheckinterval`, 100).
    pub check_interval: u32,
    /// Keep the newest this many lock events for a trace (`None`: no trace).
    pub trace_capacity: Option<usize>,
}

impl GilConfig {
    pub fn new(variant: Variant) -> GilConfig {
        GilConfig {
            variant,
            switch_interval: Duration::from_millis(5),
            check_interval: 100,
            trace_capacity: None,
        }
    }

    /// The lock this configuration describes; `None` for [`Variant::None`].
    pub fn lock(&self) -> Option<Gil> {
        (self.variant != Variant::None).then(|| Gil::new(self.clone()))
    }
}

impl Default for GilConfig {
    fn default() -> GilConfig {
        GilConfig::new(Variant::None)
    }
}
