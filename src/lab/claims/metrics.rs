//! The numbers a claim and its fidelity pair share: which pair a claim runs ([`Pair`]), the
//! names the eras table looks CPython's measurements up by, and the bands within which the
//! emulation must come to CPython, fixed before any run.

/// A claim CPython can run: its metrics measured on an interpreter and on the emulation
/// standing for it, by one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    Countdown,
    TwoClients,
    Convoy,
    SwitchInterval,
    ProcpoolOverhead,
    LongInstruction,
    Race,
    C10k,
    IoBound,
    SharedObjects,
}

impl Pair {
    /// The claim whose metrics the pair measures.
    pub fn claim(self) -> &'static str {
        match self {
            Pair::Countdown => "countdown",
            Pair::TwoClients => "two-clients",
            Pair::Convoy => "convoy",
            Pair::SwitchInterval => "switch-interval",
            Pair::ProcpoolOverhead => "procpool-overhead",
            Pair::LongInstruction => "long-instruction",
            Pair::Race => "race",
            Pair::C10k => "c10k",
            Pair::IoBound => "io-bound",
            Pair::SharedObjects => "shared-objects",
        }
    }
}

/// The names of the metrics other parts of the lab look up (the eras table takes CPython's
/// numbers by them).
pub const COUNTDOWN_ONE_CORE: &str = "threads ÷ serial, one core";
pub const COUNTDOWN_THREADS: &str = "threads ÷ serial, two cores";
pub const COUNTDOWN_PROCESSES: &str = "processes ÷ serial, two cores";
pub const COUNTDOWN_INTERPRETERS: &str = "subinterpreters ÷ serial, two cores";
pub const TWO_CLIENTS_THREADS: &str = "latency slowdown, two clients ÷ one";
pub const TWO_CLIENTS_INTERPRETERS: &str =
    "latency slowdown, two clients ÷ one, on subinterpreters";
pub const CONVOY_THREADS: &str = "rate kept beside a hog: threads";
pub const CONVOY_HYBRID_THREADS: &str =
    "rate kept beside a hog: hybrid offloading to a thread pool";
pub const CONVOY_HYBRID_PROCESSES: &str =
    "rate kept beside a hog: hybrid offloading to a process pool";
pub const CONVOY_PROCPOOL: &str = "rate kept beside a hog: process pool";
pub const CONVOY_INTERPRETERS: &str = "rate kept beside a hog: subinterpreters";
pub const PROCESS_POOL_COST: &str = "share of the tiny-request rate a process pool costs";
pub const INTERPRETER_HOP_COST: &str =
    "share of the tiny-request rate computing in subinterpreters costs";
pub const THREAD_POOL_COST: &str =
    "share of the tiny-request rate a thread pool costs, without a GIL";
/// What the same hops add to a tiny request's time, µs: on one CPU the shares above lie near
/// 1, where a factor band cannot tell a modelled hop from none; the time added can.
pub const PROCESS_POOL_HOP: &str = "µs a process pool's hop adds to a tiny request";
pub const INTERPRETER_HOP: &str = "µs a subinterpreter's hop adds to a tiny request";
pub const THREAD_POOL_HOP: &str = "µs a thread pool's hop adds to a tiny request, without a GIL";
pub const SWITCH_SLOPE: &str = "slope of tiny-request rate against switch interval (log–log)";
pub const LONG_STALL: &str = "ticker's stall as a share of the operation's length";
pub const LONG_DELAY: &str = "signal handler's delay as a share of the operation's length";
pub const C10K_PER_CONNECTION: &str = "resident KiB per idle connection (asyncio vs eventloop)";
pub const RACE_LOST: &str = "share of increments lost, two threads";
pub const IO_BOUND_SHARE: &str =
    "share of the ideal 800 requests/s, 16 clients sending `sleep 20` to threads";
/// Shared objects: two threads ÷ one doing both loops, on objects of their own and on one
/// object they share, per operation.
pub const SHARED_ATTRIBUTE_OWN: &str = "attribute incremented: threads ÷ serial, own objects";
pub const SHARED_ATTRIBUTE_ONE: &str = "attribute incremented: threads ÷ serial, one shared object";
pub const SHARED_APPEND_OWN: &str = "list appended to: threads ÷ serial, own lists";
pub const SHARED_APPEND_ONE: &str = "list appended to: threads ÷ serial, one shared list";
pub const SHARED_CALL_OWN: &str = "function called: threads ÷ serial, a copy each";
pub const SHARED_CALL_ONE: &str = "function called: threads ÷ serial, one module-level function";

/// The bands, fixed before any run; the experiment's rule states them in words.
pub mod bands {
    use crate::lab::model::outcome::Band;

    /// Countdown threads ÷ serial, one core (every era).
    pub const COUNTDOWN_ONE_CORE: Band = Band::Relative(0.10);
    /// Countdown threads ÷ serial, two cores: the legacy thrash is noisier than the new GIL.
    pub const COUNTDOWN_TWO_CORES_LEGACY: Band = Band::Relative(0.20);
    pub const COUNTDOWN_TWO_CORES: Band = Band::Relative(0.15);
    pub const COUNTDOWN_PROCESSES: Band = Band::Relative(0.20);
    /// Two GILs in one process are expected to behave as two processes' do.
    pub const COUNTDOWN_INTERPRETERS: Band = Band::Relative(0.20);
    pub const TWO_CLIENTS: Band = Band::Relative(0.15);
    pub const CONVOY: Band = Band::Factor(2.0);
    pub const SWITCH_SLOPE: Band = Band::Absolute(0.15);
    pub const PROCPOOL_COST: Band = Band::Factor(2.0);
    /// The time a hop adds: as the share's band.
    pub const HOP_ADDED: Band = Band::Factor(2.0);
    pub const LONG_INSTRUCTION: Band = Band::Relative(0.25);
    /// The stall's share of the operation: about 1 under a GIL, about 0 without one, where
    /// no relative band can hold.
    pub const LONG_STALL: Band = Band::Absolute(0.25);
    pub const RACE: Band = Band::ZeroOrFactor(4.0);
    pub const C10K: Band = Band::AtMost(2.0);
    pub const IO_BOUND: Band = Band::Relative(0.20);
    /// Threads ÷ serial on own or shared objects: as two countdown processes' band.
    pub const SHARED_OBJECTS: Band = Band::Relative(0.20);
}
