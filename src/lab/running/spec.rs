//! A server as an experiment describes it: model, GIL, workers, offload and options, typed,
//! rendering its own `clab serve` arguments and its label — so tables, health records and
//! argument lists cannot disagree about what ran.

use crate::choice::Choice;
use crate::gil::Variant;
use crate::server::Model;
use crate::server::offload::Target;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    pub model: Model,
    pub gil: Variant,
    pub workers: Option<usize>,
    /// A hybrid's fixed threshold (`fib n` with n above it is offloaded) and target.
    pub offload: Option<(u32, Target)>,
    /// Further `clab serve` options, shown in the label when they change the model's
    /// behaviour (`--switch-interval`, `--tick`) and not when they only record (`--trace`).
    options: Vec<(String, String, bool)>,
}

impl ServerSpec {
    pub fn new(model: Model, gil: Variant) -> ServerSpec {
        ServerSpec {
            model,
            gil,
            workers: None,
            offload: None,
            options: Vec::new(),
        }
    }

    pub fn workers(mut self, workers: usize) -> ServerSpec {
        self.workers = Some(workers);
        self
    }

    /// A hybrid's fixed threshold: `fib n` with n above it goes to `to`.
    pub fn offload(mut self, threshold: u32, to: Target) -> ServerSpec {
        self.offload = Some((threshold, to));
        self
    }

    /// The essays' threshold server: an event loop under the GIL that sends `fib n > 15`
    /// to two worker processes.
    pub fn threshold_hybrid() -> ServerSpec {
        ServerSpec::new(Model::Hybrid, Variant::New)
            .workers(2)
            .offload(15, Target::Procpool)
    }

    /// An option that changes behaviour, shown in the label.
    pub fn option(mut self, flag: &str, value: impl ToString) -> ServerSpec {
        self.options.push((flag.into(), value.to_string(), true));
        self
    }

    /// An option that only records (a trace file), left out of the label.
    pub fn quiet_option(mut self, flag: &str, value: impl ToString) -> ServerSpec {
        self.options.push((flag.into(), value.to_string(), false));
        self
    }

    /// The arguments after `clab serve`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "--model".into(),
            self.model.name().into(),
            "--gil".into(),
            self.gil.name().into(),
        ];
        if let Some(workers) = self.workers {
            argv.extend(["--workers".into(), workers.to_string()]);
        }
        if let Some((threshold, to)) = self.offload {
            argv.extend([
                "--offload".into(),
                format!("threshold:{threshold}"),
                "--offload-to".into(),
                to.name().into(),
            ]);
        }
        for (flag, value, _) in &self.options {
            argv.extend([flag.clone(), value.clone()]);
        }
        argv
    }

    /// "threads --gil new", "procpool --gil new, 2 workers", "hybrid --gil new, fib n > 15
    /// to 2 processes".
    pub fn label(&self) -> String {
        let mut label = format!("{} --gil {}", self.model.name(), self.gil.name());
        match (self.offload, self.workers) {
            (Some((threshold, to)), workers) => {
                let to = match to {
                    Target::Pool => "threads",
                    Target::Procpool => "processes",
                    Target::Interpreters => "interpreters",
                };
                label += &format!(", fib n > {threshold} to {} {to}", workers.unwrap_or(1));
            }
            (None, Some(workers)) => label += &format!(", {workers} workers"),
            (None, None) => {}
        }
        for (flag, value, shown) in &self.options {
            if *shown {
                label += &format!(" {flag} {value}");
            }
        }
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_renders_its_arguments_and_label() {
        let hybrid = ServerSpec::threshold_hybrid();
        assert_eq!(
            hybrid.argv().join(" "),
            "--model hybrid --gil new --workers 2 --offload threshold:15 --offload-to procpool"
        );
        assert_eq!(
            hybrid.label(),
            "hybrid --gil new, fib n > 15 to 2 processes"
        );
        let traced = ServerSpec::new(Model::Threads, Variant::Legacy)
            .option("--switch-interval", "1ms")
            .quiet_option("--trace", "/tmp/t.json");
        assert_eq!(traced.label(), "threads --gil legacy --switch-interval 1ms");
        assert!(
            traced
                .argv()
                .ends_with(&["--trace".into(), "/tmp/t.json".into()])
        );
        assert_eq!(
            ServerSpec::new(Model::Procpool, Variant::None)
                .workers(2)
                .label(),
            "procpool --gil none, 2 workers"
        );
    }
}
