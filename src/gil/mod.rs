//! The emulated CPython GIL on real OS threads (`docs/gil.md`).
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
pub use stats::{GilReport, ThreadReport};
pub use trace::{Event, EventKind, RecentEvents, Trace, TraceThread};

/// Which lock algorithm to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    None,
    New,
    Legacy,
    Priority,
}

impl Variant {
    /// Whether a wait with a timeout polls, as it did before CPython 3.2: with no timed lock
    /// to block on, `threading.Condition.wait(timeout)` tries the lock, sleeps 1 ms, tries,
    /// sleeps 2 ms, … up to 50 ms a sleep. `multiprocessing`'s `AsyncResult.get(timeout)`
    /// waits that way, so a pool's job back in 0.1 ms is seen after 1 ms.
    pub fn waits_poll(self) -> bool {
        self == Variant::Legacy
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::None => "none",
            Variant::New => "new",
            Variant::Legacy => "legacy",
            Variant::Priority => "priority",
        }
    }
}

impl crate::choice::Choice for Variant {
    const SETTING: &'static str = "GIL variant";
    const ALL: &'static [Variant] = &[
        Variant::None,
        Variant::New,
        Variant::Legacy,
        Variant::Priority,
    ];

    fn name(self) -> &'static str {
        Variant::name(self)
    }

    fn describe(self) -> &'static str {
        match self {
            Variant::None => "No GIL: threads run truly in parallel (free-threaded Python)",
            Variant::New => {
                "CPython 3.2+: timed wait of the switch interval, drop request, forced handoff"
            }
            Variant::Legacy => "CPython 2.x: release and re-acquire every N ticks, no handoff",
            Variant::Priority => {
                "New, plus Beazley's priority: I/O-bound threads preempt CPU-bound ones at once"
            }
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a holder may be made to give the GIL up: the checkpoint policy of an era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchPoints {
    /// At any instruction boundary (CPython ≤ 3.9): `x += 1` can be cut between its load
    /// and its store.
    EveryInstruction,
    /// Only at calls and backward jumps (CPython 3.10+): a bare `x += 1` is never cut.
    CallsAndJumps,
}

impl crate::choice::Choice for SwitchPoints {
    const SETTING: &'static str = "switch points";
    const ALL: &'static [SwitchPoints] =
        &[SwitchPoints::EveryInstruction, SwitchPoints::CallsAndJumps];

    fn name(self) -> &'static str {
        SwitchPoints::name(self)
    }

    fn describe(self) -> &'static str {
        match self {
            SwitchPoints::EveryInstruction => {
                "At any instruction boundary (CPython <= 3.9): x += 1 can be cut in two"
            }
            SwitchPoints::CallsAndJumps => {
                "Only at calls and backward jumps (CPython 3.10+): a bare x += 1 is never cut"
            }
        }
    }
}

impl SwitchPoints {
    /// The era's policy for a variant: legacy is 2.x, so every instruction; the others stand
    /// for a current CPython 3.
    pub fn of_era(variant: Variant) -> SwitchPoints {
        match variant {
            Variant::Legacy => SwitchPoints::EveryInstruction,
            _ => SwitchPoints::CallsAndJumps,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SwitchPoints::EveryInstruction => "every-instruction",
            SwitchPoints::CallsAndJumps => "calls-and-jumps",
        }
    }
}

/// The default tick: the time between two eval-breaker checks in CPython 3.11's countdown
/// loop on a current x86 server core (about 22 ns, one check per iteration). The lab
/// measures it per interpreter and passes `--tick`.
pub const DEFAULT_TICK: Duration = Duration::from_nanos(22);

/// The default fib tick: the time between two checks in CPython 3.11's recursive fib, which
/// checks once per call (about 27 ns here). The lab measures it per interpreter too.
pub const DEFAULT_FIB_TICK: Duration = Duration::from_nanos(27);

/// How a [`Gil`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GilConfig {
    pub variant: Variant,
    /// new/priority: how long a waiter waits before it asks the holder to drop (CPython's
    /// `sys.setswitchinterval`, default 5 ms; at least 1 µs, as CPython reads 0).
    pub switch_interval: Duration,
    /// legacy: checkpoints between forced release-and-reacquire (`sys.setcheckinterval`, 100).
    pub check_interval: u32,
    /// The work between two checkpoints, as CPython's time between two eval-breaker checks
    /// in its countdown loop: `spin`'s pace.
    pub tick: Duration,
    /// The same in CPython's recursive fib, which checks at other opcodes than the loop
    /// (2.7: every 10–11 ns against the loop's 7): `fib`'s pace.
    pub fib_tick: Duration,
    /// Which boundaries are checkpoints.
    pub switch_points: SwitchPoints,
    /// Keep the newest this many lock events for a trace (`None`: no trace).
    pub trace_capacity: Option<usize>,
}

impl GilConfig {
    pub fn new(variant: Variant) -> GilConfig {
        GilConfig {
            variant,
            switch_interval: Duration::from_millis(5),
            check_interval: 100,
            tick: DEFAULT_TICK,
            fib_tick: DEFAULT_FIB_TICK,
            switch_points: SwitchPoints::of_era(variant),
            trace_capacity: None,
        }
    }

    /// The lock this configuration describes; `None` for [`Variant::None`].
    pub fn lock(&self) -> Option<Gil> {
        (self.variant != Variant::None).then(|| Gil::new(self.clone()))
    }
}

/// One OS thread of an emulated interpreter: attached to its GIL, or free where there is
/// none (`--gil none`, a free-threaded build).
#[derive(Debug)]
pub enum PythonThread {
    Attached(GilThread),
    Free,
}

impl PythonThread {
    pub fn attach(gil: Option<&Gil>, name: &str) -> PythonThread {
        gil.map_or(PythonThread::Free, |gil| {
            PythonThread::Attached(gil.attach(name))
        })
    }

    /// Runs `f` as one long C-level call: holding the GIL, with no checkpoint inside.
    pub fn uninterruptible<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match self {
            PythonThread::Attached(thread) => thread.uninterruptible(f),
            PythonThread::Free => f(),
        }
    }
}

impl crate::work::Interpreter for PythonThread {
    fn checkpoint(&mut self) {
        if let PythonThread::Attached(thread) = self {
            thread.checkpoint();
        }
    }

    fn instruction(&mut self) {
        if let PythonThread::Attached(thread) = self {
            thread.instruction();
        }
    }

    fn pace(&self) -> Option<crate::work::Pace> {
        match self {
            PythonThread::Attached(thread) => thread.pace(),
            PythonThread::Free => None,
        }
    }

    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match self {
            PythonThread::Attached(thread) => thread.allow_threads(f),
            PythonThread::Free => f(),
        }
    }
}

impl Default for GilConfig {
    fn default() -> GilConfig {
        GilConfig::new(Variant::None)
    }
}
