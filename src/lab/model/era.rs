//! The eras of CPython's lock, the one vocabulary for what an interpreter is, what the
//! emulation stands for, and the columns of the eras table.

use serde::{Deserialize, Serialize};

use crate::gil::Variant;

/// An era of CPython's lock. An interpreter's build is legacy, new or free-threaded; a
/// measurement taken on subinterpreters with a GIL each (3.12+) belongs to the
/// per-interpreter era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Era {
    /// 2.x: release and re-acquire every 100 ticks.
    Legacy,
    /// 3.2+: the switch interval and the forced handoff.
    New,
    /// 3.12+: a GIL per subinterpreter, so interpreters of one process run at once.
    PerInterpreter,
    /// 3.13t+: a build running without its GIL.
    FreeThreaded,
}

impl Era {
    pub const ALL: [Era; 4] = [
        Era::Legacy,
        Era::New,
        Era::PerInterpreter,
        Era::FreeThreaded,
    ];

    /// As `report.json`, `measurements.csv` and `clab_bench.py probe` name it.
    pub fn name(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::New => "new",
            Era::PerInterpreter => "per-interpreter",
            Era::FreeThreaded => "free-threaded",
        }
    }

    /// The era named `name`, as [`Era::name`] spells it.
    pub fn parse(name: &str) -> Option<Era> {
        Era::ALL.into_iter().find(|era| era.name() == name)
    }

    /// The eras table's heading.
    pub fn title(self) -> &'static str {
        match self {
            Era::Legacy => "legacy GIL (2.x)",
            Era::New => "new GIL (3.2–3.12)",
            Era::PerInterpreter => "a GIL per interpreter (3.12+)",
            Era::FreeThreaded => "free-threaded (3.13t+)",
        }
    }

    /// A short heading, for the terminal.
    pub fn short(self) -> &'static str {
        match self {
            Era::Legacy => "legacy GIL",
            Era::New => "new GIL",
            Era::PerInterpreter => "GIL per interp.",
            Era::FreeThreaded => "free-threaded",
        }
    }

    /// The emulated GIL that stands for one interpreter of this era: a per-interpreter
    /// era's interpreter has the new GIL, each.
    pub fn variant(self) -> Variant {
        match self {
            Era::Legacy => Variant::Legacy,
            Era::New | Era::PerInterpreter => Variant::New,
            Era::FreeThreaded => Variant::None,
        }
    }
}

impl std::fmt::Display for Era {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialise_as_spelled() {
        for era in Era::ALL {
            assert_eq!(Era::parse(era.name()), Some(era));
            assert_eq!(serde_json::to_value(era).unwrap(), era.name());
        }
        assert_eq!(Era::parse("none"), None);
    }
}
