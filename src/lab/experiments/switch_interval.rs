//! Under a CPU hog, an I/O-bound thread gets the GIL back about once per switch interval,
//! so its request rate should follow 1 / interval: a slope of −1 on log–log axes.

use std::time::Duration;

use crate::gil::Variant;
use crate::lab::outcome::{Chart, Figure, Series, Table};
use crate::lab::spec::ServerSpec;
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict, class};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "switch-interval",
    claim: "under a hog, the tiny-request rate scales with 1 / switch interval",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1) (the GIL's switching behind perf2's collapse); CPython's sys.setswitchinterval",
    rule: "fit log(rate) against log(interval) by least squares. Holds when the slope is between \
           −1.35 and −0.65; does not hold when it is above −0.4 or below −1.6.",
    history: &[],
    run,
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

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let intervals_us: Vec<u64> = lab.profile.pick(
        vec![1_000, 5_000, 20_000],
        vec![500, 1_000, 2_000, 5_000, 10_000, 20_000],
        vec![500, 1_000, 2_000, 5_000, 10_000, 20_000],
    );
    let one = lab.placement.server_one.clone();
    let window = lab.profile.window().max(Duration::from_secs(1));
    let hog = lab.setups.hog.request();
    let mut points = Vec::new();
    let mut table = Table::new(
        format!("Tiny-request rate beside a `{hog}` hog, threads --gil new"),
        &["switch interval", "requests/s", "requests per interval"],
    );
    for &interval in &intervals_us {
        lab.step(&format!("switch-interval: {interval} µs"));
        let spec = ServerSpec::new(Model::Threads, Variant::New)
            .option("--switch-interval", format!("{interval}us"));
        let server = lab.serve_spec(&spec, &one)?;
        let rate = lab.repeat(|lab| {
            let plan = lab.plan(
                &server,
                window,
                vec![
                    Lab::class("rapid", 1, "fib 1", Duration::ZERO),
                    Lab::class("hog", 1, &hog, Duration::ZERO),
                ],
            );
            Ok(class(&lab.load(&server, plan)?, "rapid")?.rate_per_s)
        })?;
        server.stop();
        let ms = interval as f64 / 1e3;
        table.row(vec![
            format!("{ms} ms"),
            rate.show(0),
            format!("{:.2}", rate.median * ms / 1e3),
        ]);
        points.push((ms, rate.median));
    }
    if points.iter().any(|(_, rate)| *rate <= 0.0) {
        return Err(LabError::Measurement(
            "a run completed no tiny request: no slope to fit".into(),
        ));
    }
    let fitted = slope(&points);
    let verdict = if (-1.35..=-0.65).contains(&fitted) {
        Verdict::Holds
    } else if !(-1.6..=-0.4).contains(&fitted) {
        Verdict::DoesNotHold
    } else {
        Verdict::Inconclusive
    };
    let mut report = Report::default();
    report.checks.push(Check::new(
        "threads --gil new: rate ∝ 1 / switch interval",
        verdict,
        format!(
            "slope {fitted:.2} on log–log axes over {}–{} ms",
            points[0].0,
            points[points.len() - 1].0
        ),
    ));
    report.summary = format!(
        "the tiny-request rate beside a hog falls with slope {fitted:.2} against the switch interval on log–log axes (−1 is 1 / interval): {:.0}/s at {} ms, {:.0}/s at {} ms",
        points[0].1,
        points[0].0,
        points[points.len() - 1].1,
        points[points.len() - 1].0
    );
    let anchor = points
        .iter()
        .find(|(ms, _)| (*ms - 5.0).abs() < 1e-9)
        .copied()
        .unwrap_or(points[0]);
    let mut ideal = Series::new(
        "1 / interval (through the 5 ms point)",
        points
            .iter()
            .map(|(ms, _)| (*ms, anchor.1 * anchor.0 / ms))
            .collect(),
    );
    ideal.reference = true;
    report.tables.push(table);
    report.figures.push(Figure {
        name: "rate".into(),
        title: "Tiny-request rate beside a hog against the switch interval".into(),
        x_label: "switch interval (ms)".into(),
        y_label: "requests/s".into(),
        chart: Chart::Lines {
            series: vec![Series::new("threads --gil new", points.clone()), ideal],
            markers: Vec::new(),
            log_x: true,
            log_y: true,
        },
    });
    report.setup = vec![
        format!(
            "threads --gil new --switch-interval I, one CPU; a `fib 1` client and a `{hog}` client together for {} per interval; `{hog}` took {}",
            super::seconds(window),
            lab.setups.hog.show()
        ),
        format!(
            "I = {} ms",
            super::list(&points.iter().map(|p| p.0).collect::<Vec<_>>())
        ),
    ];
    report.explanation = "Every tiny request releases the GIL to read its socket and must take it \
        back from the hog, which only lets go after the waiter has waited a full interval and asked. \
        So the requests come through at about one burst per interval: halve the interval and the rate \
        doubles, until the cost of the switch itself (a cross-thread wake-up, tens of microseconds \
        here) takes over at the shortest intervals."
        .into();
    report.raw("points_ms_rate", &points);
    report.raw("slope", fitted);
    Ok(report)
}

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
