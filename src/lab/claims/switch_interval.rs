//! Under a CPU hog, an I/O-bound thread gets the GIL back about once per switch interval,
//! so its request rate should follow 1 / interval: a slope of −1 on log–log axes.

use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::claims::method::{self, Emulated, On};
use crate::lab::claims::metrics::{self, Pair};
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::Check;
use crate::lab::model::outcome::RuleChange;
use crate::lab::model::outcome::{Chart, Figure, Series, Table};
use crate::lab::running::measure::short_window;
use crate::lab::running::{Lab, LabError};

pub static EXPERIMENT: Experiment = Experiment {
    id: "switch-interval",
    claim: "under a hog, the tiny-request rate scales with 1 / switch interval",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1) (the GIL's switching behind perf2's collapse); CPython's sys.setswitchinterval",
    rule: Rules {
        measures: "fit log(rate) against log(interval) by least squares.",
        marks: &[&SLOPE],
        besides: "",
    },
    history: &[RuleChange {
        date: "2026-12-03",
        change: "the emulation is measured by the pair's method (a hog sized to 60 ms on each side, short windows, one load per interval; the default profile's intervals 0.5, 1, 5 and 20 ms) instead of the setups' hog and the profile's windows repeated; the slope's marks unchanged",
        reason: "one method per quantity, CPython and the emulation alike",
    }],
    era: Some(&ERA),
    pair: Some(Pair::SwitchInterval),
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
    measured_by: EraMetric::Pair(metrics::SWITCH_SLOPE),
    except: &[
        (
            Era::Legacy,
            EraMetric::NotMeaningful(
                "2.x has no switch interval: its lock changes hands every 100 ticks (sys.setcheckinterval)",
            ),
        ),
        (
            Era::PerInterpreter,
            EraMetric::NotMeaningful(
                "each interpreter's GIL switches as the new GIL does; the claim is about the threads of one",
            ),
        ),
        (
            Era::FreeThreaded,
            EraMetric::NotMeaningful(
                "no GIL, no switch interval: the hog and the tiny requests share the CPU by the scheduler's time slices",
            ),
        ),
    ],
};

/// The emulation's verdict: the pair's method — a `fib 1` client beside a hog, the switch
/// interval set to each of the profile's — on clab's own configuration of the new GIL.
fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let new = Emulated::era(Era::New);
    let on = On::Emulation(&new);
    let switch = method::switch_rates(lab, on)?;
    let number = switch.number(on);
    let (first, last) = (switch.rates[0], switch.rates[switch.rates.len() - 1]);
    let mut table = Table::new(
        format!(
            "Tiny-request rate beside a `{}` hog, {}",
            switch.hog, new.subject.label
        ),
        &["switch interval", "requests/s", "requests per interval"],
    );
    for (ms, rate) in &switch.rates {
        table.row(vec![
            format!("{ms} ms"),
            format!("{rate:.0}"),
            format!("{:.2}", rate * ms / 1e3),
        ]);
    }
    let mut report = Report {
        checks: vec![Check::new(
            format!("{}: rate ∝ 1 / switch interval", new.subject.label),
            SLOPE.judge(number.value),
            format!(
                "slope {:.2} on log–log axes over {}–{} ms",
                number.value, first.0, last.0
            ),
        )],
        summary: format!(
            "the tiny-request rate beside a hog falls with slope {:.2} against the switch interval on log–log axes (−1 is 1 / interval): {:.0}/s at {} ms, {:.0}/s at {} ms",
            number.value, first.1, first.0, last.1, last.0
        ),
        tables: vec![table],
        figures: vec![figure(&switch.rates)],
        setup: vec![
            format!(
                "{}; threads on one CPU, `--switch-interval I`; each load {} after a warm-up",
                number.note,
                crate::lab::words::seconds(short_window(lab))
            ),
            "the hog is sized on each side to about 60 ms by its own calibrated cost, so it spans many switch intervals".into(),
            "the new GIL's era is measured on CPython by the claim's pair with the same method, in the eras table".into(),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    method::record(&mut report, Pair::SwitchInterval, &new, [&number]);
    report.raw("points_ms_rate", &switch.rates);
    report.raw("slope", number.value);
    Ok(report)
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
            Series::new("threads, emulation of the new GIL", points.to_vec()),
            ideal,
        ]),
    )
}

const EXPLANATION: &str = "Every tiny request releases the GIL to read its socket and must \
    take it back from the hog, which only lets go after the waiter has waited a full interval \
    and asked. So the requests come through at about one burst per interval: halve the \
    interval and the rate doubles, until the cost of the switch itself (a cross-thread wake-up, \
    tens of microseconds here) takes over at the shortest intervals.";
