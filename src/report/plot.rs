//! Figures drawn with plotters, as SVG (inlined in the HTML report) and PNG (linked from the
//! Markdown). Text is set in DejaVu Sans, shipped in `assets/fonts`, so every machine draws
//! the same glyphs and no system font lookup can fail.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::combinators::{BindKeyPoints, WithKeyPoints};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::lab::model::outcome::{Chart, Figure, LaneState, Marker, Series};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (960, 480);
/// Colour-blind-safe (Okabe–Ito), one per series.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(100, 100, 100),
];
/// The colour a configuration keeps in every figure, by the start of its label (the longest
/// match wins); other series take the palette's colours this figure leaves unused.
const KNOWN: [(&str, RGBColor); 12] = [
    ("threads --gil new", RGBColor(0, 114, 178)),
    ("threads --gil none", RGBColor(213, 94, 0)),
    ("threads --gil priority", RGBColor(0, 158, 115)),
    ("threads --gil legacy", RGBColor(86, 180, 233)),
    ("procpool", RGBColor(204, 121, 167)),
    ("hybrid", RGBColor(230, 159, 0)),
    ("interpreters", RGBColor(100, 100, 100)),
    ("eventloop", RGBColor(140, 86, 75)),
    ("prefork", RGBColor(0, 0, 0)),
    ("async", RGBColor(128, 128, 0)),
    ("pool", RGBColor(148, 103, 189)),
    ("serial", RGBColor(188, 189, 34)),
];

/// A colour per series: a configuration's own where it has one and no other series of this
/// figure took it first; otherwise the palette's next unused colour.
fn series_colours<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<RGBColor> {
    let mut used: Vec<RGBColor> = Vec::new();
    let mut pick = |name: &str| {
        let known = KNOWN
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, colour)| *colour)
            .filter(|colour| !used.contains(colour));
        let colour = known
            .or_else(|| COLOURS.iter().copied().find(|c| !used.contains(c)))
            .unwrap_or(COLOURS[used.len() % COLOURS.len()]);
        used.push(colour);
        colour
    };
    names.into_iter().map(&mut pick).collect()
}

const HOLDING: RGBColor = RGBColor(0, 114, 178);
const WAITING: RGBColor = RGBColor(230, 159, 0);
const REQUEST: RGBColor = RGBColor(213, 94, 0);

type DrawResult = Result<(), String>;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known good; a failure here is a build defect.
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the shipped DejaVu Sans does not parse"));
    });
}

/// The figure as an SVG document.
pub fn svg(figure: &Figure) -> Result<String, String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, figure)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The figure as a PNG file.
pub fn png(figure: &Figure, path: &Path) -> DrawResult {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(&root, figure)?;
    root.present().map_err(|e| e.to_string())
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figure: &Figure) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    match &figure.chart {
        Chart::Lines {
            series,
            markers,
            log_x,
            log_y,
        } => {
            let (x, y) = bounds(series, *log_x, *log_y);
            match (*log_x, *log_y) {
                (false, false) => lines(root, figure, series, markers, linear(x), linear(y)),
                (false, true) => lines(root, figure, series, markers, linear(x), log(y)),
                (true, false) => lines(root, figure, series, markers, log(x), linear(y)),
                (true, true) => lines(root, figure, series, markers, log(x), log(y)),
            }
        }
        Chart::Bars { categories, series } => bars(root, figure, categories, series),
        Chart::Lanes { lanes, start, end } => lanes_chart(root, figure, lanes, *start, *end),
        Chart::Scatter { series } => scatter(root, figure, series),
    }
}

/// Points against the identity line, on log–log axes spanning both coordinates alike.
fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &Figure,
    series: &[Series],
) -> DrawResult {
    let (x, y) = bounds(series, true, true);
    let span = x.start.min(y.start)..x.end.max(y.end);
    let mut chart = axes(root, figure, log(span.clone()), log(span.clone()))?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(span.start, span.start), (span.end, span.end)],
            6,
            4,
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(drawing_error)?
        .label("emulation = CPython")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
    let colours = series_colours(series.iter().map(|one| one.name.as_str()));
    for (one, colour) in series.iter().zip(colours) {
        chart
            .draw_series(
                one.points
                    .iter()
                    .map(|point| Circle::new(*point, 4, colour.filled())),
            )
            .map_err(drawing_error)?
            .label(one.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(drawing_error)
}

/// A chart with the figure's title, its axes labelled and a light grid.
fn axes<'a, DB, X, Y>(
    root: &'a DrawingArea<DB, Shift>,
    figure: &Figure,
    x: X,
    y: Y,
) -> Result<ChartContext<'a, DB, Cartesian2d<X, Y>>, String>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc(figure.x_label.as_str())
        .y_desc(figure.y_label.as_str())
        .x_label_formatter(&|value| tick(*value))
        .y_label_formatter(&|value| tick(*value))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(drawing_error)?;
    Ok(chart)
}

fn drawing_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> String {
    error.to_string()
}

fn linear(range: Range<f64>) -> RangedCoordf64 {
    range.into()
}

/// A log axis labelled at 1, 2 and 5 times the powers of ten it spans — or at every digit
/// when it spans less than that gives three labels — never crowded past ten.
fn log(range: Range<f64>) -> WithKeyPoints<LogCoord<f64>> {
    let ticks = log_ticks(range.start, range.end);
    let axis: LogCoord<f64> = range.log_scale().into();
    axis.with_key_points(ticks)
}

fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let within = |steps: &[f64]| -> Vec<f64> {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(low.log10().floor());
        while decade <= high {
            for step in steps {
                let tick = decade * step;
                if tick >= low && tick <= high {
                    ticks.push(tick);
                }
            }
            decade *= 10.0;
        }
        ticks
    };
    let mut ticks = within(&[1.0, 2.0, 5.0]);
    if ticks.len() < 3 {
        ticks = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    if ticks.len() > 10 {
        ticks = within(&[1.0]);
    }
    // Even at one per decade: a wide span keeps every n-th so labels never touch.
    let every = ticks.len().div_ceil(10).max(1);
    ticks.into_iter().step_by(every).collect()
}

/// A tick label as a reader writes it: "1k", "20k", "1.5M", "250", "0.5", "0.002" — at most
/// three significant digits, no trailing zeros, no "10000.0".
pub(crate) fn tick(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return "0".into();
    }
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let decimals = (2 - scaled.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{scaled:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{suffix}")
}

/// The data's extent with a margin; positive for log axes.
fn bounds(series: &[Series], log_x: bool, log_y: bool) -> (Range<f64>, Range<f64>) {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let extent = |values: Vec<f64>, log: bool| {
        let values: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        if !min.is_finite() {
            return if log { 1.0..10.0 } else { 0.0..1.0 };
        }
        if log {
            (min / 1.5)..(max * 1.5)
        } else {
            let low = if min >= 0.0 { 0.0 } else { min * 1.1 };
            low..(max * 1.1).max(low + 1e-9)
        }
    };
    (
        extent(points().map(|p| p.0).collect(), log_x),
        extent(points().map(|p| p.1).collect(), log_y),
    )
}

fn lines<DB, X, Y>(
    root: &DrawingArea<DB, Shift>,
    figure: &Figure,
    series: &[Series],
    markers: &[Marker],
    x: X,
    y: Y,
) -> DrawResult
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (y_low, y_high) = {
        let range = y.range();
        (range.start, range.end)
    };
    let mut chart = axes(root, figure, x, y)?;
    for marker in markers {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(marker.x, y_low), (marker.x, y_high)],
                BLACK.stroke_width(1),
            )))
            .map_err(drawing_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {}", marker.label),
                (marker.x, y_high),
                ("sans-serif", 13).into_font().color(&BLACK),
            )))
            .map_err(drawing_error)?;
    }
    let colours = series_colours(series.iter().map(|one| one.name.as_str()));
    for (one, colour) in series.iter().zip(colours) {
        let points: Vec<(f64, f64)> = one
            .points
            .iter()
            .copied()
            // Within the axis: a log axis leaves out an empty bucket rather than draw log 0.
            .filter(|(x, y)| x.is_finite() && *y >= y_low && *y <= y_high)
            .collect();
        let style = colour.stroke_width(2);
        let drawn = if one.reference {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        }
        .map_err(drawing_error)?;
        drawn.label(one.name.as_str()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
        });
        if !one.reference {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|point| Circle::new(*point, 3, colour.filled())),
                )
                .map_err(drawing_error)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(legend_corner(series))
        .draw()
        .map_err(drawing_error)
}

/// The corner the data leaves free: rates that collapse or fall leave the lower left free
/// on log axes; latencies and gaps that grow leave the upper left.
fn legend_corner(series: &[Series]) -> SeriesLabelPosition {
    let falls = series.iter().any(|one| {
        let first = one.points.first().map_or(0.0, |p| p.1);
        let last = one.points.last().map_or(0.0, |p| p.1);
        last < first / 2.0
    });
    if falls {
        SeriesLabelPosition::LowerLeft
    } else {
        SeriesLabelPosition::UpperLeft
    }
}

fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &Figure,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> DrawResult {
    let max = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..categories.len() as f64, 0.0..(max * 1.15).max(1e-9))
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(figure.x_label.as_str())
        .y_desc(figure.y_label.as_str())
        .y_label_formatter(&|value| tick(*value))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(drawing_error)?;
    let width = 0.7 / series.len().max(1) as f64;
    let colours = series_colours(series.iter().map(|(name, _)| name.as_str()));
    for (index, ((name, values), colour)) in series.iter().zip(colours).enumerate() {
        chart
            .draw_series(values.iter().enumerate().map(|(category, value)| {
                let left = category as f64 + 0.15 + index as f64 * width;
                Rectangle::new([(left, 0.0), (left + width, *value)], colour.filled())
            }))
            .map_err(drawing_error)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        chart
            .draw_series(values.iter().enumerate().map(|(category, value)| {
                let left = category as f64 + 0.15 + index as f64 * width;
                Text::new(
                    format_value(*value),
                    (left, *value + max * 0.05),
                    ("sans-serif", 12).into_font(),
                )
            }))
            .map_err(drawing_error)?;
    }
    // Category names under their bars, inside the plot so they are never clipped.
    chart
        .draw_series(categories.iter().enumerate().map(|(index, name)| {
            Text::new(
                name.clone(),
                (index as f64 + 0.05, max * 1.1),
                ("sans-serif", 12).into_font().color(&BLACK),
            )
        }))
        .map_err(drawing_error)?;
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(drawing_error)?;
    }
    Ok(())
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn lanes_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &Figure,
    lanes: &[crate::lab::model::outcome::Lane],
    start: f64,
    end: f64,
) -> DrawResult {
    let count = lanes.len().max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(20)
        .build_cartesian_2d(start..end, 0.0..count + 0.6)
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(figure.x_label.as_str())
        .x_label_formatter(&|value| tick(*value))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(drawing_error)?;
    for (index, lane) in lanes.iter().enumerate() {
        // The first lane at the top.
        let base = count - 1.0 - index as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start, base + 0.15), (end, base + 0.6)],
                RGBColor(235, 235, 235).filled(),
            )))
            .map_err(drawing_error)?;
        // A hold of a few microseconds would vanish; a pixel is the least that shows.
        let pixel = (end - start) / f64::from(SIZE.0);
        chart
            .draw_series(lane.spans.iter().map(|(from, to, state)| {
                let to = to.max(from + pixel);
                let colour = match state {
                    LaneState::Holding => HOLDING,
                    LaneState::Waiting => WAITING,
                };
                Rectangle::new([(*from, base + 0.15), (to, base + 0.6)], colour.filled())
            }))
            .map_err(drawing_error)?;
        // A drop request: a mark above the lane, where the waiter asked.
        chart
            .draw_series(lane.requests.iter().map(|at| {
                PathElement::new(
                    vec![(*at, base + 0.6), (*at, base + 0.75)],
                    REQUEST.stroke_width(3),
                )
            }))
            .map_err(drawing_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                lane.name.clone(),
                (start, base + 0.9),
                ("sans-serif", 13).into_font().color(&BLACK),
            )))
            .map_err(drawing_error)?;
    }
    // The legend, drawn as two empty series so it sits with the others' style.
    for (name, colour) in [
        ("holding the GIL", HOLDING),
        ("waiting for it", WAITING),
        ("asks the holder to drop it", REQUEST),
    ] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(drawing_error)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(drawing_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_keeps_its_colour_and_no_two_series_share_one() {
        let convoy = series_colours([
            "threads --gil new",
            "threads --gil none",
            "procpool --gil new, 2 workers",
        ]);
        let other = series_colours([
            "procpool --gil new, 4 workers",
            "threads --gil new --switch-interval 1ms",
        ]);
        assert_eq!(
            convoy[0], other[1],
            "threads --gil new is one colour everywhere"
        );
        assert_eq!(convoy[2], other[0], "so is procpool");
        let same = series_colours([
            "CPython 3.11.7",
            "CPython 3.13.0",
            "threads --gil new",
            "threads --gil new",
        ]);
        for (index, colour) in same.iter().enumerate() {
            assert!(!same[..index].contains(colour), "{same:?}");
        }
    }

    #[test]
    fn tick_labels_read_as_people_write_them() {
        let labels: Vec<String> = [10000.0, 1500.0, 250.0, 20.0, 1.5, 0.5, 0.002, 2.5e6, 0.0]
            .into_iter()
            .map(tick)
            .collect();
        assert_eq!(
            labels,
            [
                "10k", "1.5k", "250", "20", "1.5", "0.5", "0.002", "2.5M", "0"
            ]
        );
    }

    #[test]
    fn log_axes_are_labelled_at_round_numbers_and_never_crowded() {
        assert_eq!(
            log_ticks(60.0, 30_000.0),
            [100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4]
        );
        // A narrow span: every digit, not "9.0 10.0" squeezed together.
        assert_eq!(log_ticks(7.0, 30.0), [7.0, 8.0, 9.0, 10.0, 20.0, 30.0]);
        let wide = log_ticks(0.01, 1e9);
        assert!(wide.len() <= 10, "{wide:?}");
        assert!(
            wide.windows(2).all(|pair| pair[1] >= pair[0] * 10.0),
            "{wide:?}"
        );
    }

    #[test]
    fn every_chart_kind_draws_to_svg_with_text() {
        let figures = [
            Chart::Lines {
                series: vec![Series::new("a", vec![(1.0, 10.0), (10.0, 1.0)])],
                markers: vec![Marker {
                    x: 2.0,
                    label: "now".into(),
                }],
                log_x: true,
                log_y: true,
            },
            Chart::Bars {
                categories: vec!["one".into(), "two".into()],
                series: vec![("v".into(), vec![1.0, 2.0])],
            },
            Chart::Lanes {
                lanes: vec![crate::lab::model::outcome::Lane {
                    name: "thread 1".into(),
                    spans: vec![
                        (0.0, 1.0, LaneState::Holding),
                        (1.0, 2.0, LaneState::Waiting),
                    ],
                    requests: vec![1.5],
                }],
                start: 0.0,
                end: 3.0,
            },
            Chart::Scatter {
                series: vec![Series::new("a", vec![(1.0, 1.1), (300.0, 250.0)])],
            },
        ];
        for chart in figures {
            let figure = Figure {
                name: "f".into(),
                title: "A title".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                chart,
            };
            let svg = svg(&figure).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("A title"),
                "{svg:.200}"
            );
        }
    }
}
