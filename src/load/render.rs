//! Text for people: a line per second while a run lasts (like the essays' clients), and a
//! summary table at the end. The numbers are the same as in the JSON document.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use comfy_table::{Table, presets};

use crate::load::LoadResult;
use crate::load::driver::LiveCounts;
use crate::load::plan::Plan;

/// Turns the live counters into one progress line per second: completions and errors of
/// each class in the last second.
pub struct Progress {
    names: Vec<String>,
    warmup: Duration,
    last: Vec<(u64, u64)>,
}

impl Progress {
    pub fn new(plan: &Plan) -> Progress {
        Progress {
            names: plan
                .classes()
                .iter()
                .map(|class| class.name.clone())
                .collect(),
            warmup: plan.warmup(),
            last: vec![(0, 0); plan.classes().len()],
        }
    }

    pub fn line(&mut self, elapsed: Duration, live: &[Arc<LiveCounts>]) -> String {
        let mut line = format!("{:>4}s", elapsed.as_secs());
        if elapsed <= self.warmup {
            line.push_str(" (warm-up)");
        }
        for ((name, counts), last) in self.names.iter().zip(live).zip(&mut self.last) {
            let now = (
                counts.completed.load(Ordering::Relaxed),
                counts.errors.load(Ordering::Relaxed),
            );
            let _ = write!(line, "  {name}: {} req/s", now.0 - last.0);
            if now.1 > last.1 {
                let _ = write!(line, ", {} errors", now.1 - last.1);
            }
            *last = now;
        }
        line
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |ms| format!("{ms:.3}"))
}

/// The end-of-run summary: one row per class, then warnings and the deadline policy.
pub fn summary(result: &LoadResult) -> String {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "class",
        "conns",
        "completed",
        "req/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "late",
    ]);
    for class in &result.classes {
        let latency = &class.latency_ms;
        table.add_row([
            class.name.clone(),
            class.connections.to_string(),
            class.completed.to_string(),
            format!("{:.1}", class.rate_per_s),
            class.errors.total().to_string(),
            ms(latency.p50),
            ms(latency.p90),
            ms(latency.p99),
            ms(latency.p99_9),
            ms(latency.max),
            class.late_sends.to_string(),
        ]);
    }
    let mut text = format!(
        "{} on {} for {:.1}s after {:.1}s warm-up\n{table}\n",
        result.plan.mode(),
        result.plan.target(),
        result.plan.duration().as_secs_f64(),
        result.plan.warmup().as_secs_f64()
    );
    for class in &result.classes {
        let errors = &class.errors;
        if errors.total() > 0 {
            let _ = writeln!(
                text,
                "{} errors: {} refused, {} reset, {} timeout, {} ERR replies, {} malformed",
                class.name,
                errors.refused,
                errors.reset,
                errors.timeout,
                errors.err_reply,
                errors.malformed
            );
        }
        if let Some(service) = &class.service_time_ms {
            let _ = writeln!(
                text,
                "{}: latency counts from when each request was due; service time alone p50 {} ms, p99 {} ms",
                class.name,
                ms(service.p50),
                ms(service.p99)
            );
        }
    }
    let aborted: u64 = result
        .classes
        .iter()
        .map(|class| class.aborted_at_deadline)
        .sum();
    let _ = writeln!(
        text,
        "{aborted} request(s) in flight at the deadline were abandoned; generator CPU {:.0} % of its {} CPU(s)",
        result.generator.cpu_utilisation * 100.0,
        result.environment.generator_cpus.len()
    );
    for warning in &result.warnings {
        let _ = writeln!(text, "warning: {warning}");
    }
    text
}
