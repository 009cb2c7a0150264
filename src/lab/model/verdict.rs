//! A verdict: the judgement of a claim, or of one part of it, on this machine, and the
//! shape every rule has.

use serde::{Deserialize, Serialize};

/// The judgement of a claim, or of one part of it, on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Holds,
    DoesNotHold,
    /// The numbers fell between the rule's two thresholds.
    Inconclusive,
    /// The experiment could not run here (e.g. no `python3`); says why in its evidence.
    Skipped,
    /// The experiment broke before it could measure (a server did not start, …).
    Error,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Skipped => "skipped",
            Verdict::Error => "error",
        }
    }

    /// `Holds` when `value` is at or past `holds`, `DoesNotHold` when at or past
    /// `fails` on the other side, `Inconclusive` between: the shape of every rule.
    pub fn at_least(value: f64, holds: f64, fails: f64) -> Verdict {
        debug_assert!(fails <= holds);
        if value >= holds {
            Verdict::Holds
        } else if value <= fails {
            Verdict::DoesNotHold
        } else {
            Verdict::Inconclusive
        }
    }

    /// The mirror of [`at_least`](Verdict::at_least): holds when `value` is small.
    pub fn at_most(value: f64, holds: f64, fails: f64) -> Verdict {
        debug_assert!(holds <= fails);
        if value <= holds {
            Verdict::Holds
        } else if value >= fails {
            Verdict::DoesNotHold
        } else {
            Verdict::Inconclusive
        }
    }

    /// Every part holds → holds; any part fails → does not hold; else inconclusive.
    pub fn all(parts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut result = Verdict::Holds;
        for part in parts {
            result = match (result, part) {
                (Verdict::Error, _) | (_, Verdict::Error) => Verdict::Error,
                (Verdict::DoesNotHold, _) | (_, Verdict::DoesNotHold) => Verdict::DoesNotHold,
                (Verdict::Holds, Verdict::Holds) => Verdict::Holds,
                _ => Verdict::Inconclusive,
            };
        }
        result
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_have_a_gap_between_holding_and_failing() {
        assert_eq!(Verdict::at_least(0.9, 0.85, 0.7), Verdict::Holds);
        assert_eq!(Verdict::at_least(0.8, 0.85, 0.7), Verdict::Inconclusive);
        assert_eq!(Verdict::at_least(0.5, 0.85, 0.7), Verdict::DoesNotHold);
        assert_eq!(Verdict::at_most(0.1, 0.2, 0.5), Verdict::Holds);
        assert_eq!(Verdict::at_most(0.3, 0.2, 0.5), Verdict::Inconclusive);
        assert_eq!(Verdict::at_most(0.6, 0.2, 0.5), Verdict::DoesNotHold);
    }

    #[test]
    fn a_claim_holds_only_when_every_part_does() {
        use Verdict::*;
        assert_eq!(Verdict::all([Holds, Holds]), Holds);
        assert_eq!(Verdict::all([Holds, Inconclusive]), Inconclusive);
        assert_eq!(Verdict::all([Inconclusive, DoesNotHold]), DoesNotHold);
        assert_eq!(Verdict::all([DoesNotHold, Error]), Error);
        assert_eq!(Verdict::all([]), Holds);
    }
}
