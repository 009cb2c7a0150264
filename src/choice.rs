//! Settings chosen by name — a model, a GIL variant, a checkpoint policy, an offload target.
//! One trait, so each is parsed, listed and described the same way wherever it is read (the
//! command line, the lab's server specs, the tests).

/// A setting whose values are a fixed set of names.
pub trait Choice: Copy + Send + Sync + 'static {
    /// What the setting is called, for errors: "model", "GIL variant".
    const SETTING: &'static str;
    /// Every value, in the order they are listed.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;

    /// What the value means, in a line.
    fn describe(self) -> &'static str;

    /// The value called `name`.
    fn from_name(name: &str) -> Result<Self, UnknownChoice> {
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.name() == name)
            .ok_or_else(|| UnknownChoice {
                setting: Self::SETTING,
                name: name.to_owned(),
                choices: Self::ALL
                    .iter()
                    .map(|value| value.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A name that is none of a setting's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {setting} {name:?}: expected one of {choices}")]
pub struct UnknownChoice {
    setting: &'static str,
    name: String,
    choices: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Pace {
        Slow,
        Fast,
    }

    impl Choice for Pace {
        const SETTING: &'static str = "pace";
        const ALL: &'static [Pace] = &[Pace::Slow, Pace::Fast];

        fn name(self) -> &'static str {
            match self {
                Pace::Slow => "slow",
                Pace::Fast => "fast",
            }
        }

        fn describe(self) -> &'static str {
            "a pace"
        }
    }

    #[test]
    fn a_value_is_found_by_its_name_and_an_unknown_name_lists_the_choices() {
        assert_eq!(Pace::from_name("fast"), Ok(Pace::Fast));
        assert_eq!(
            Pace::from_name("brisk").unwrap_err().to_string(),
            "unknown pace \"brisk\": expected one of slow, fast"
        );
    }
}
