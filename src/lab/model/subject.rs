//! What a claim is measured on: a real interpreter running the reference programs of
//! `python/`, or an emulated configuration (`clab serve`, or the in-process GIL) that may
//! stand for one interpreter (its era, its measured tick, its switch points).

use serde::{Deserialize, Serialize};

use crate::lab::model::Era;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A real CPython interpreter.
    Cpython,
    /// The emulation: clab's own servers and GIL.
    Emulation,
}

impl SubjectKind {
    pub fn name(self) -> &'static str {
        match self {
            SubjectKind::Cpython => "cpython",
            SubjectKind::Emulation => "emulation",
        }
    }
}

/// One thing measured: its label is unique within a run and names it in every table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Subject {
    /// "CPython 3.11.7", "emulation of CPython 3.11.7", "threads --gil new".
    pub label: String,
    pub kind: SubjectKind,
    /// The era it is, or stands for; `None` for what belongs to no era of CPython's lock (a
    /// process pool, the broker).
    pub era: Option<Era>,
    /// The interpreter's version: the one it is, or the one the emulation stands for.
    pub python: Option<String>,
}

impl Subject {
    /// A real interpreter `version`, measured in `era` (its build's, or per-interpreter).
    pub fn cpython(version: &str, era: Era) -> Subject {
        Subject {
            label: format!("CPython {version}{}", per_interpreter(era)),
            kind: SubjectKind::Cpython,
            era: Some(era),
            python: Some(version.to_owned()),
        }
    }

    /// The emulation configured to stand for CPython `version` in `era`: the same method,
    /// the same placement, its lock, tick and switch points.
    pub fn emulating(version: &str, era: Era) -> Subject {
        Subject {
            label: format!("emulation of CPython {version}{}", per_interpreter(era)),
            kind: SubjectKind::Emulation,
            era: Some(era),
            python: Some(version.to_owned()),
        }
    }

    /// An emulated configuration standing for no interpreter in particular, e.g. "threads
    /// --gil new" for the new GIL's era.
    pub fn emulation(setup: &str, era: Option<Era>) -> Subject {
        Subject {
            label: setup.to_owned(),
            kind: SubjectKind::Emulation,
            era,
            python: None,
        }
    }
}

fn per_interpreter(era: Era) -> &'static str {
    if era == Era::PerInterpreter {
        ", subinterpreters"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_and_its_emulation_are_two_subjects_of_one_era() {
        let cpython = Subject::cpython("3.13.0", Era::PerInterpreter);
        let emulation = Subject::emulating("3.13.0", Era::PerInterpreter);
        assert_eq!(cpython.label, "CPython 3.13.0, subinterpreters");
        assert_ne!(cpython.label, emulation.label);
        assert_eq!((cpython.era, emulation.era), (emulation.era, cpython.era));
        assert_eq!(
            Subject::cpython("2.7.18", Era::Legacy).label,
            "CPython 2.7.18"
        );
    }
}
