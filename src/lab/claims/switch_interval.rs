//! Under a CPU hog, an I/O-bound thread gets the GIL back about once per switch interval,
//! so its request rate should follow 1 / interval: a slope of −1 on log–log axes.

use std::time::Duration;

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::metrics;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::Check;
use crate::lab::model::outcome::{Chart, Figure, Series, Table};
use crate::lab::running::measure::{self, rapid};
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError, Sample};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "switch-interval",
    claim: "under a hog, the tiny-request rate scales with 1 / switch interval",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1) (the GIL's switching behind perf2's collapse); CPython's sys.setswitchinterval",
    rule: Rules {
        measures: "fit log(rate) against log(interval) by least squares.",
        marks: &[&SLOPE],
        besides: "",
    },
    history: &[],
    era: Some(&ERA),
    pair: Some(crate::lab::claims::metrics::Pair::SwitchInterval),
    run: Method::Measure(run),
};

/// The slope's rule, for the experiment and each era alike.
const SLOPE: Mark = Mark {
    what: "the rate follows 1 / interval, the slope",
    rule: Rule::Within {
        holds: [-1.35, -0.65],
        fails: [-1.6, -0.4],
    },
    unit: Unit::Plain,
};

/// Only the new GIL has a switch interval to vary.
static ERA: EraClaim = EraClaim {
    claim: "beside a CPU-bound hog in one Python process, the tiny-request rate follows 1 / the switch interval",
    metric: "slope of the tiny-request rate against the switch interval, log–log",
    rule: SLOPE.rule,
    unit: Unit::Plain,
    metrics: [
        EraMetric::NotMeaningful(
            "2.x has no switch interval: its lock changes hands every 100 ticks (sys.setcheckinterval)",
        ),
        EraMetric::Pair(metrics::SWITCH_SLOPE),
        EraMetric::NotMeaningful(
            "each interpreter's GIL switches as the new GIL does; the claim is about the threads of one",
        ),
        EraMetric::NotMeaningful(
            "no GIL, no switch interval: the hog and the tiny requests share the CPU by the scheduler's time slices",
        ),
    ],
};

/// The slope of a least-squares line through the points on log–log axes.
pub(crate) fn slope(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let (mean_x, mean_y) = (
        logs.iter().map(|p| p.0).sum::<f64>() / n,
        logs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = logs.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = logs.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    covariance / variance
}

/// The tiny-request rate at one switch interval.
#[derive(Debug, Clone, serde::Serialize)]
struct Point {
    interval_ms: f64,
    rate: Sample,
}

/// A `fib 1` client and a `hog` client together against threads under the GIL switching
/// every `interval_us`, on the server CPU.
fn measure(lab: &mut Lab, interval_us: u64, hog: &str) -> Result<Point, LabError> {
    lab.step(&format!("switch-interval: {interval_us} µs"));
    let spec = ServerSpec::new(Model::Threads, Variant::New)
        .option("--switch-interval", format!("{interval_us}us"));
    let one = lab.placement.server_one.clone();
    let server = lab.serve(&spec, &one)?;
    let window = window(lab);
    let rate = lab.repeat(|lab| {
        let classes = vec![rapid(), Lab::class("hog", 1, hog, Duration::ZERO)];
        measure::rate(lab, &server, window, classes, "rapid")
    })?;
    server.stop();
    Ok(Point {
        interval_ms: interval_us as f64 / 1e3,
        rate,
    })
}

fn window(lab: &Lab) -> Duration {
    lab.profile.window().max(Duration::from_secs(1))
}

/// The rule applied to the fitted slope.
fn check(fitted: f64, first: &Point, last: &Point) -> Check {
    let verdict = SLOPE.judge(fitted);
    Check::new(
        "threads --gil new: rate ∝ 1 / switch interval",
        verdict,
        format!(
            "slope {fitted:.2} on log–log axes over {}–{} ms",
            first.interval_ms, last.interval_ms
        ),
    )
}

/// The measured rates on log–log axes, with 1 / interval dashed through the 5 ms point.
fn figure(points: &[(f64, f64)]) -> Figure {
    let anchor = points
        .iter()
        .find(|(ms, _)| (*ms - 5.0).abs() < 1e-9)
        .copied()
        .unwrap_or(points[0]);
    let ideal = points.iter().map(|(ms, _)| (*ms, anchor.1 * anchor.0 / ms));
    let mut ideal = Series::new("1 / interval (through the 5 ms point)", ideal.collect());
    ideal.reference = true;
    Figure::new(
        "rate",
        "Tiny-request rate beside a hog against the switch interval",
        ("switch interval (ms)", "requests/s"),
        Chart::log_log(vec![
            Series::new("threads --gil new", points.to_vec()),
            ideal,
        ]),
    )
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let intervals_us: Vec<u64> = lab.profile.pick(
        vec![1_000, 5_000, 20_000],
        vec![500, 1_000, 2_000, 5_000, 10_000, 20_000],
        vec![500, 1_000, 2_000, 5_000, 10_000, 20_000],
    );
    let hog = lab.setups.hog.request();
    let measured = intervals_us
        .iter()
        .map(|&interval| measure(lab, interval, &hog))
        .collect::<Result<Vec<_>, _>>()?;
    if measured.iter().any(|point| point.rate.median <= 0.0) {
        return Err(LabError::Measurement(
            "a run completed no tiny request: no slope to fit".into(),
        ));
    }
    let points: Vec<(f64, f64)> = measured
        .iter()
        .map(|point| (point.interval_ms, point.rate.median))
        .collect();
    let fitted = slope(&points);
    let (first, last) = (&measured[0], &measured[measured.len() - 1]);
    let mut table = Table::new(
        format!("Tiny-request rate beside a `{hog}` hog, threads --gil new"),
        &["switch interval", "requests/s", "requests per interval"],
    );
    for point in &measured {
        table.row(vec![
            format!("{} ms", point.interval_ms),
            point.rate.show(0),
            format!("{:.2}", point.rate.median * point.interval_ms / 1e3),
        ]);
    }
    let mut report = Report {
        checks: vec![check(fitted, first, last)],
        summary: format!(
            "the tiny-request rate beside a hog falls with slope {fitted:.2} against the switch interval on log–log axes (−1 is 1 / interval): {:.0}/s at {} ms, {:.0}/s at {} ms",
            first.rate.median, first.interval_ms, last.rate.median, last.interval_ms
        ),
        tables: vec![table],
        figures: vec![figure(&points)],
        setup: vec![
            format!(
                "threads --gil new --switch-interval I, one CPU; a `fib 1` client and a `{hog}` client together for {} per interval; `{hog}` took {}",
                crate::lab::words::seconds(window(lab)),
                lab.setups.hog.show()
            ),
            format!(
                "I = {} ms",
                crate::lab::words::list(&points.iter().map(|p| p.0).collect::<Vec<_>>())
            ),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    report.raw("points_ms_rate", &points);
    report.raw("slope", fitted);
    Ok(report)
}

const EXPLANATION: &str = "Every tiny request releases the GIL to read its socket and must \
    take it back from the hog, which only lets go after the waiter has waited a full interval \
    and asked. So the requests come through at about one burst per interval: halve the \
    interval and the rate doubles, until the cost of the switch itself (a cross-thread wake-up, \
    tens of microseconds here) takes over at the shortest intervals.";

#[cfg(test)]
mod tests {
    #[test]
    fn the_slope_of_a_power_law_is_its_exponent() {
        let points: Vec<(f64, f64)> = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|x: &f64| (*x, 100.0 / x))
            .collect();
        assert!((super::slope(&points) + 1.0).abs() < 1e-9);
    }
}
