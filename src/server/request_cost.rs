//! What an interpreter's own request path costs per request, beyond the emulated server's.
//!
//! CPython's reference server reads each request, splits its line, parses it and writes the
//! reply in Python, holding the GIL: a thread per connection in a few microseconds, asyncio
//! in some forty (its streams, futures and callbacks; about 45 µs of CPU for a `fib 1` on
//! 3.11 and 3.13 here, against the emulated event loop's 7). Beside a CPU hog on the same
//! CPU a server that needs more CPU per request keeps less of its rate, so the emulation
//! standing for an interpreter spends the difference as interpreter work on the request path
//! of every request that reaches the interpreter: a [`RequestCosts`] per way of serving,
//! which `clab lab` measures per interpreter from CPython's server and the emulated one.

use std::time::Duration;

use crate::server::Model;

/// How a model reads its requests, as CPython's reference server does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// A thread per connection, blocking on its socket (serial, threads, pool, procpool,
    /// prefork, interpreters; CPython's `serve_connection`).
    Thread,
    /// One event loop for every connection (eventloop, async, hybrid; CPython's asyncio, or
    /// 2.7's select loop).
    Loop,
}

impl Serving {
    pub fn of(model: Model) -> Serving {
        if model.is_event_loop() {
            Serving::Loop
        } else {
            Serving::Thread
        }
    }

    /// "thread", "loop": as `clab serve --request-cost` names them.
    pub fn name(self) -> &'static str {
        match self {
            Serving::Thread => "thread",
            Serving::Loop => "loop",
        }
    }

    pub fn from_name(name: &str) -> Result<Serving, String> {
        match name {
            "thread" => Ok(Serving::Thread),
            "loop" => Ok(Serving::Loop),
            other => Err(format!("unknown way of serving {other:?}: thread or loop")),
        }
    }
}

/// Interpreter work per request, in CPU time, by way of serving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCosts {
    pub thread: Duration,
    pub event_loop: Duration,
}

impl RequestCosts {
    /// The default: the emulated server's own request path and nothing more. Unlike a hop,
    /// which the emulated pools would otherwise make nearly free, this is the same for every
    /// model of one way of serving, so only the lab, standing for an interpreter, sets it.
    pub const NONE: RequestCosts = RequestCosts {
        thread: Duration::ZERO,
        event_loop: Duration::ZERO,
    };

    pub fn of(&self, serving: Serving) -> Duration {
        match serving {
            Serving::Thread => self.thread,
            Serving::Loop => self.event_loop,
        }
    }

    pub fn set(&mut self, serving: Serving, cost: Duration) {
        match serving {
            Serving::Thread => self.thread = cost,
            Serving::Loop => self.event_loop = cost,
        }
    }

    /// These costs, corrected way by way by what `measured` costs beyond `emulated` (the
    /// emulated server spending these), less where the emulation cost more; never below
    /// nothing.
    pub fn corrected(self, measured: RequestCosts, emulated: RequestCosts) -> RequestCosts {
        let corrected = |spent: Duration, measured: Duration, emulated: Duration| {
            (spent + measured).saturating_sub(emulated)
        };
        RequestCosts {
            thread: corrected(self.thread, measured.thread, emulated.thread),
            event_loop: corrected(self.event_loop, measured.event_loop, emulated.event_loop),
        }
    }

    /// What `measured` costs beyond `own`, way by way (never below nothing).
    pub fn beyond(measured: RequestCosts, own: RequestCosts) -> RequestCosts {
        RequestCosts {
            thread: measured.thread.saturating_sub(own.thread),
            event_loop: measured.event_loop.saturating_sub(own.event_loop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_serves_as_cpythons_server_does() {
        assert_eq!(Serving::of(Model::Threads), Serving::Thread);
        assert_eq!(Serving::of(Model::Procpool), Serving::Thread);
        assert_eq!(Serving::of(Model::Eventloop), Serving::Loop);
        assert_eq!(Serving::of(Model::Hybrid), Serving::Loop);
        for serving in [Serving::Thread, Serving::Loop] {
            assert_eq!(Serving::from_name(serving.name()), Ok(serving));
        }
        assert!(Serving::from_name("fork").is_err());
    }

    #[test]
    fn the_cost_beyond_is_never_negative() {
        let us = Duration::from_micros;
        let costs = |thread, event_loop| RequestCosts {
            thread: us(thread),
            event_loop: us(event_loop),
        };
        let beyond = RequestCosts::beyond(costs(10, 45), costs(12, 7));
        assert_eq!(beyond, costs(0, 38));
        // Spending 38 µs on the loop, the emulated server cost 50 where CPython's cost 60:
        // 10 more; on a thread it cost 4 more than CPython's 10, and spends nothing already.
        assert_eq!(beyond.corrected(costs(10, 60), costs(14, 50)), costs(0, 48));
        let mut set = RequestCosts::NONE;
        set.set(Serving::Loop, us(5));
        assert_eq!(
            (set.of(Serving::Loop), set.of(Serving::Thread)),
            (us(5), us(0))
        );
    }
}
