//! The live `clab load` view (oha-style): each class's rate over the run on a log scale, with
//! the moment a late class (the hog) joined marked, and a table of rates and latency
//! percentiles over the last tick.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Row, Table, Wrap};

use crate::load::live::LiveLoad;
use crate::tui::{ms, rate, style};

/// A colour per class, in plan order; the hog, when there is one, always red.
fn colour(name: &str, index: usize) -> Color {
    const PALETTE: [Color; 5] = [
        Color::Cyan,
        Color::Magenta,
        Color::Blue,
        Color::Green,
        Color::Yellow,
    ];
    if name == "hog" {
        Color::Red
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

/// Draws `live` into `area`, with `keys` (what the keys do) at the end of its title.
pub fn draw(frame: &mut Frame, area: Rect, live: &LiveLoad, keys: &str) {
    let rows = live.classes.len() as u16;
    // A narrow pane (half of `clab demo`) wraps the title onto a second line.
    let title_height = if area.width < 100 { 2 } else { 1 };
    let [header, chart, table] = Layout::vertical([
        Constraint::Length(title_height),
        Constraint::Min(6),
        Constraint::Length(rows + 3),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(header_line(live, keys)).wrap(Wrap { trim: true }),
        header,
    );
    draw_chart(frame, chart, live);
    draw_table(frame, table, live);
}

fn header_line(live: &LiveLoad, keys: &str) -> Line<'static> {
    let mut spans = vec![
        Span::styled(format!("clab load {}", live.mode), style::title()),
        Span::raw(format!(" → {} · {}", live.target, live.phase())),
    ];
    for (name, at) in live.arrivals() {
        spans.push(Span::styled(
            format!(" · {name} joined at {:.1} s", at.as_secs_f64()),
            style::alarm(),
        ));
    }
    if !keys.is_empty() {
        spans.push(Span::styled(format!("   {keys}"), style::dim()));
    }
    Line::from(spans)
}

/// Requests per second on a log axis: a fall from thousands to tens must show as the
/// collapse it is, and a rate of a few must not vanish against one of thousands.
fn draw_chart(frame: &mut Frame, area: Rect, live: &LiveLoad) {
    let log = |rate: f64| rate.max(1.0).log10();
    let points: Vec<Vec<(f64, f64)>> = live
        .classes
        .iter()
        .map(|class| class.rates.iter().map(|&(t, r)| (t, log(r))).collect())
        .collect();
    let highest = points
        .iter()
        .flatten()
        .map(|&(_, y)| y)
        .fold(1.0_f64, f64::max)
        .ceil();
    // One decade a label: 1, 10, 100, 1k, 10k.
    let y_labels: Vec<Span> = (0..=highest as u32)
        .map(|decade| Span::raw(decade_label(decade)))
        .collect();
    let total = live.total.as_secs_f64().max(1.0);
    let x_labels: Vec<Span> = [0.0, total / 2.0, total]
        .iter()
        .map(|t| Span::raw(format!("{t:.0} s")))
        .collect();
    let arrivals: Vec<Vec<(f64, f64)>> = live
        .arrivals()
        .map(|(_, at)| {
            let x = at.as_secs_f64();
            (0..=20)
                .map(|step| (x, highest * step as f64 / 20.0))
                .collect()
        })
        .collect();
    let mut datasets: Vec<Dataset> = arrivals
        .iter()
        .map(|line| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Scatter)
                .style(style::dim())
                .data(line)
        })
        .collect();
    datasets.extend(live.classes.iter().zip(&points).enumerate().map(
        |(index, (class, points))| {
            Dataset::default()
                .name(class.name.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(colour(&class.name, index)))
                .data(points)
        },
    ));
    let chart = Chart::new(datasets)
        .block(Block::bordered().title("requests/s, log scale (dotted: a class joined)"))
        .x_axis(Axis::default().bounds([0.0, total]).labels(x_labels))
        .y_axis(Axis::default().bounds([0.0, highest]).labels(y_labels));
    frame.render_widget(chart, area);
}

/// 1, 10, 100, 1k, 10k, 100k, 1M: a decade's label as the report's plots write it.
fn decade_label(decade: u32) -> String {
    crate::report::plot::tick(10f64.powi(decade as i32))
}

fn draw_table(frame: &mut Frame, area: Rect, live: &LiveLoad) {
    let rows: Vec<Row> = live
        .classes
        .iter()
        .enumerate()
        .map(|(index, class)| {
            let now = class.rates.last().map_or(0.0, |&(_, r)| r);
            let waiting = class.joins_at.is_some_and(|at| at > live.elapsed);
            let latest = class.latest.as_ref();
            Row::new(vec![
                Span::styled(
                    class.name.clone(),
                    Style::new().fg(colour(&class.name, index)),
                ),
                Span::raw(format!("{}×{}", class.connections, class.request)),
                Span::raw(if waiting { "later".into() } else { rate(now) }),
                Span::raw(ms(latest.and_then(|p| p.p50))),
                Span::raw(ms(latest.and_then(|p| p.p99))),
                Span::raw(ms(latest.and_then(|p| p.max))),
                if class.errors > 0 {
                    Span::styled(class.errors.to_string(), style::alarm())
                } else {
                    Span::raw("0")
                },
            ])
        })
        .collect();
    // Narrow enough for half of a 120-column terminal (`clab demo`).
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(11),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(6),
        ],
    )
    .header(
        Row::new(["class", "clients", "req/s", "p50", "p99", "max", "errors"])
            .style(style::title()),
    )
    .block(Block::bordered().title("now (latencies of the last refresh)"));
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::live::tests::convoy;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn the_rapid_rate_and_the_hogs_arrival_are_on_screen() {
        let (mut live, counts) = convoy();
        let mut completed = 0;
        for tick in 1..=20 {
            let elapsed = Duration::from_millis(250 * tick);
            // 20k requests/s until the hog joins at 4 s (1 s warm-up + 3 s), then 200.
            completed += if tick <= 16 { 5000 } else { 50 };
            counts[0].completed.store(completed, Ordering::Relaxed);
            live.update(elapsed, &counts);
        }
        let text = crate::tui::drawn(120, 30, |frame| draw(frame, frame.area(), &live, "q stops"));
        assert!(text.contains("hog joined at 4.0 s"), "{text}");
        let rapid = text.lines().find(|l| l.contains("│rapid ")).expect(&text);
        assert!(rapid.contains("200"), "{rapid}");
        // The log axis labels decades: 1, 10, 100, 1k, 10k.
        for label in ["│10k", "│1k ", "│100 "] {
            assert!(text.contains(label), "{label}: {text}");
        }
        assert_eq!(
            (0..8).map(decade_label).collect::<Vec<_>>(),
            ["1", "10", "100", "1k", "10k", "100k", "1M", "10M"]
        );
    }
}
