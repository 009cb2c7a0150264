//! The `clab top` dashboard: the request rate as a sparkline, and under a GIL its summary, a
//! row per thread and a lane strip of who held it over the last half second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, Wrap};

use crate::top::TopError;
use crate::top::live::{Cell, LockHistory, ROW_WINDOW, ThreadState, View, Watch};
use crate::tui::{Key, Screen, ms, rate, style};

/// The time the lane strip covers.
pub const LANE_SPAN: Duration = Duration::from_millis(500);

/// The widest a thread's name is shown.
const NAME_WIDTH: u16 = 16;

/// Watches the server at `addr` on the terminal, refreshing every `every`, until `q` (or a
/// signal), or `duration` if given.
pub fn run(addr: SocketAddr, every: Duration, duration: Option<Duration>) -> Result<(), TopError> {
    let mut watch = Watch::connect(addr)?;
    let mut screen = Screen::open().map_err(TopError::Terminal)?;
    let started = Instant::now();
    let mut next = started + every;
    loop {
        screen
            .draw(|frame| draw(frame, frame.area(), &watch.view, "q quits"))
            .map_err(TopError::Terminal)?;
        if let Some(Key::Quit) = screen.key_before(next).map_err(TopError::Terminal)? {
            return Ok(());
        }
        if Instant::now() >= next {
            watch.poll()?;
            next += every;
        }
        if duration.is_some_and(|duration| started.elapsed() >= duration) {
            return Ok(());
        }
    }
}

/// Draws `view` into `area`, with `keys` (what the keys do) at the end of its title.
pub fn draw(frame: &mut Frame, area: Rect, view: &View, keys: &str) {
    let rows = view.gil.as_ref().map_or(Vec::new(), LockHistory::rows);
    let shown = rows.len().clamp(1, 8) as u16;
    // The sparkline takes what the GIL's panels leave, up to a dozen lines.
    let gil_height = if view.gil.is_some() {
        1 + (shown + 3) + (shown + 2)
    } else {
        3
    };
    // A narrow pane (half of `clab demo`) wraps the title onto a second line.
    let title_height = if area.width < 100 { 2 } else { 1 };
    let [header, rate_area, gil_area, _] = Layout::vertical([
        Constraint::Length(title_height),
        Constraint::Max(12),
        Constraint::Length(gil_height),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(header_line(view, keys)).wrap(Wrap { trim: true }),
        header,
    );
    draw_rate(frame, rate_area, view);
    let Some(gil) = &view.gil else {
        let text = match view.latest.as_ref().and_then(|latest| latest.gil.as_ref()) {
            Some(_) => "this server does not answer `events`: only its figures above are live",
            None => "no GIL: every thread runs at once (serve with --gil new to watch the lock)",
        };
        frame.render_widget(
            Paragraph::new(text).block(Block::bordered().title("GIL")),
            gil_area,
        );
        return;
    };
    let [summary, table, lanes] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(shown + 3),
        Constraint::Length(shown + 2),
    ])
    .areas(gil_area);
    frame.render_widget(Paragraph::new(summary_line(view, gil)), summary);
    draw_threads(frame, table, &rows);
    draw_lanes(frame, lanes, gil, &rows);
}

fn header_line(view: &View, keys: &str) -> Line<'static> {
    let mut spans = vec![Span::styled("clab top", style::title())];
    if let Some(addr) = view.addr {
        spans.push(Span::raw(format!(" · {addr}")));
    }
    spans.push(Span::raw(format!(" · {}", view.model)));
    if let Some(gil) = &view.gil {
        spans.push(Span::raw(format!(
            " · GIL {} ({} interval)",
            gil.variant,
            ms(Some(gil.switch_interval.as_secs_f64() * 1e3))
        )));
    }
    if let Some(latest) = &view.latest {
        spans.push(Span::raw(format!(" · up {:.1} s", latest.uptime_s)));
    }
    if !keys.is_empty() {
        spans.push(Span::styled(format!("   {keys}"), style::dim()));
    }
    Line::from(spans)
}

fn draw_rate(frame: &mut Frame, area: Rect, view: &View) {
    let title = match &view.latest {
        Some(latest) => {
            let mut title = format!(
                "requests/s {} · {} connections",
                rate(latest.requests_per_s),
                latest.open_connections
            );
            if latest.errors > 0 {
                title.push_str(&format!(" · {} errors", latest.errors));
            }
            title
        }
        None => "requests/s".into(),
    };
    // The newest refreshes that fit, scaled to the highest of them.
    let width = area.width.saturating_sub(2) as usize;
    let data: Vec<u64> = view
        .rates
        .iter()
        .skip(view.rates.len().saturating_sub(width))
        .map(|rate| rate.round() as u64)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(title))
            .data(&data)
            .style(Style::new().fg(Color::Cyan)),
        area,
    );
}

fn summary_line(view: &View, gil: &LockHistory) -> Line<'static> {
    let mut spans = Vec::new();
    if let Some(interval) = view.latest.as_ref().and_then(|latest| latest.gil.as_ref()) {
        spans.push(Span::styled(
            format!("held {:.0} %", interval.held * 100.0),
            style::title(),
        ));
        spans.push(Span::raw(format!(
            " · {} switches/s · releases {} forced, {} voluntary · {} drop requests (last refresh)",
            rate(interval.switches_per_s),
            interval.forced_releases,
            interval.voluntary_releases,
            interval.drop_requests
        )));
    }
    if gil.has_gaps() {
        spans.push(Span::styled(
            " · too busy to fetch every event",
            style::dim(),
        ));
    }
    Line::from(spans)
}

fn state_style(state: ThreadState) -> Style {
    match state {
        ThreadState::Holding => Style::new().fg(Color::Green),
        ThreadState::Waiting => Style::new().fg(Color::Yellow),
        ThreadState::Released => style::dim(),
    }
}

fn draw_threads(frame: &mut Frame, area: Rect, rows: &[crate::top::live::ThreadRow]) {
    let visible = area.height.saturating_sub(3) as usize;
    let body: Vec<Row> = rows
        .iter()
        .take(visible)
        .map(|row| {
            Row::new(vec![
                Span::raw(row.name.clone()),
                Span::styled(row.now.name(), state_style(row.now)),
                Span::raw(format!("{:.0} %", row.held * 100.0)),
                Span::raw(ms(row.wait_p50_ms)),
                Span::raw(ms(row.wait_p99_ms)),
                Span::raw(row.drop_requests.to_string()),
            ])
        })
        .collect();
    let hidden = rows.len().saturating_sub(visible);
    let mut title = format!(
        "threads, last {} s",
        ROW_WINDOW.as_secs_f64().to_string().trim_end_matches(".0")
    );
    if hidden > 0 {
        title.push_str(&format!(" ({hidden} more not shown)"));
    }
    let table = Table::new(
        body,
        [
            Constraint::Length(NAME_WIDTH),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new(["thread", "now", "held", "wait p50", "wait p99", "drop req"])
            .style(style::title()),
    )
    .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

fn draw_lanes(
    frame: &mut Frame,
    area: Rect,
    gil: &LockHistory,
    rows: &[crate::top::live::ThreadRow],
) {
    let inner_width = area.width.saturating_sub(2);
    let cells = inner_width.saturating_sub(NAME_WIDTH + 1).max(1) as usize;
    let visible = area.height.saturating_sub(2) as usize;
    let lanes = gil.lanes(LANE_SPAN, cells, &rows[..rows.len().min(visible)]);
    let cell = LANE_SPAN.as_secs_f64() * 1e3 / cells as f64;
    let lines: Vec<Line> = lanes
        .iter()
        .map(|lane| {
            let mut spans = vec![Span::raw(format!(
                "{:<width$} ",
                truncate(&lane.name, NAME_WIDTH as usize),
                width = NAME_WIDTH as usize
            ))];
            spans.extend(lane.cells.iter().map(|cell| match cell {
                Cell::Held => Span::styled("█", Style::new().fg(Color::Green)),
                Cell::Brief => Span::styled("▎", Style::new().fg(Color::Green)),
                Cell::Waiting => Span::styled("░", Style::new().fg(Color::Yellow)),
                Cell::DropRequest => Span::styled("!", style::alarm()),
                Cell::Idle => Span::raw(" "),
                Cell::Unseen => Span::styled("·", style::dim()),
            }));
            Line::from(spans)
        })
        .collect();
    let title = format!(
        "who held the GIL, last {} ms ({} a cell, now at the right)",
        LANE_SPAN.as_millis(),
        ms(Some(cell))
    );
    let mut legend = String::from(" █ held  ▎ briefly  ░ waiting  ! asked the holder to drop ");
    if gil.has_gaps() {
        legend.push_str(" · not fetched ");
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title(title)
                .title_bottom(Line::styled(legend, style::dim())),
        ),
        area,
    );
}

fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::live::tests::convoy;

    fn screen(view: &View, width: u16, height: u16) -> String {
        crate::tui::drawn(width, height, |frame| {
            draw(frame, frame.area(), view, "q quits")
        })
    }

    #[test]
    fn a_convoy_shows_the_hog_holding_and_the_rapid_thread_waiting_an_interval() {
        let mut view = View {
            model: "threads".into(),
            ..View::default()
        };
        for rate in [18_000.0, 19_000.0, 200.0] {
            view.push_rate(rate);
        }
        view.gil = Some(convoy());
        let text = screen(&view, 120, 40);
        assert!(text.contains("GIL new (5.0 ms interval)"), "{text}");
        let hog = text.lines().find(|l| l.contains("│hog ")).expect(&text);
        assert!(hog.contains("holding") && hog.contains("99 %"), "{hog}");
        let rapid = text.lines().find(|l| l.contains("│rapid ")).expect(&text);
        assert!(
            rapid.contains("waiting") && rapid.contains("5.0 ms"),
            "{rapid}"
        );
        // The hog's lane is solid; the rapid thread's has a brief hold each interval.
        let lanes: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("█") || l.contains("▎"))
            .collect();
        assert!(lanes.iter().any(|l| l.matches('█').count() > 80), "{text}");
        assert!(lanes.iter().any(|l| l.matches('▎').count() > 50), "{text}");
        assert!(text.contains("! asked the holder to drop"), "{text}");
    }

    #[test]
    fn no_gil_says_so_and_a_narrow_terminal_still_draws() {
        let view = View {
            model: "eventloop".into(),
            rates: [5.0, 6.0].into(),
            ..View::default()
        };
        let text = screen(&view, 120, 40);
        assert!(text.contains("no GIL: every thread runs at once"), "{text}");
        let mut convoy_view = view.clone();
        convoy_view.gil = Some(convoy());
        // Smaller than anything sensible: drawn cut short, never a panic.
        for (width, height) in [(40, 12), (10, 3), (1, 1)] {
            screen(&convoy_view, width, height);
        }
    }
}
