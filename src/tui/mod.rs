//! The terminal views (`clab top`, the live `clab load`, `clab demo`): a [`Screen`] that
//! takes the terminal and always gives it back — on return, on a panic (ratatui's hook) and
//! on SIGTERM, SIGINT or SIGHUP (watched here, acted on at the next key poll) — and the
//! widgets that draw each view's plain data.

pub mod load;
pub mod top;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::style::{Color, Modifier, Style};

/// The terminal, in raw mode on the alternate screen until dropped.
pub struct Screen {
    terminal: DefaultTerminal,
    signalled: Arc<AtomicBool>,
}

/// What the person at the terminal asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `q`, Esc, Ctrl-C, or a signal.
    Quit,
    Char(char),
}

impl Screen {
    pub fn open() -> io::Result<Screen> {
        let signalled = Arc::new(AtomicBool::new(false));
        for signal in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ] {
            signal_hook::flag::register(signal, Arc::clone(&signalled))?;
        }
        let terminal = ratatui::try_init()?;
        Ok(Screen {
            terminal,
            signalled,
        })
    }

    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        self.terminal.draw(render).map(|_| ())
    }

    /// Waits until `deadline` for a key; `None` if none came.
    pub fn key_before(&mut self, deadline: Instant) -> io::Result<Option<Key>> {
        loop {
            if self.signalled.load(Ordering::Relaxed) {
                return Ok(Some(Key::Quit));
            }
            // Short polls, so a signal is noticed promptly.
            let left = deadline.saturating_duration_since(Instant::now());
            if !event::poll(left.min(Duration::from_millis(50)))? {
                if left.is_zero() {
                    return Ok(None);
                }
                continue;
            }
            if let Event::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                let ctrl_c =
                    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
                return Ok(Some(match key.code {
                    _ if ctrl_c => Key::Quit,
                    KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
                    KeyCode::Char(c) => Key::Char(c),
                    _ => continue,
                }));
            }
        }
    }
}

impl Screen {
    /// Gives the terminal back now, for a caller about to exit without unwinding.
    pub fn give_back() {
        ratatui::restore();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Styles shared by the views.
pub(crate) mod style {
    use super::*;

    pub fn title() -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn dim() -> Style {
        Style::new().fg(Color::DarkGray)
    }

    pub fn alarm() -> Style {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    }
}

/// A rate in the fewest honest digits: 12, 1.8k, 23k.
pub(crate) fn rate(value: f64) -> String {
    match value {
        v if v >= 10_000.0 => format!("{:.0}k", v / 1000.0),
        v if v >= 1_000.0 => format!("{:.1}k", v / 1000.0),
        v => format!("{v:.0}"),
    }
}

/// Milliseconds with a precision that suits their size.
pub(crate) fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 1.0 => format!("{v:.1} ms"),
        Some(v) => format!("{:.0} µs", v * 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_at_a_glance() {
        assert_eq!(rate(12.4), "12");
        assert_eq!(rate(1834.0), "1.8k");
        assert_eq!(rate(23_456.0), "23k");
        assert_eq!(ms(Some(0.042)), "42 µs");
        assert_eq!(ms(Some(5.25)), "5.2 ms");
        assert_eq!(ms(Some(250.0)), "250 ms");
        assert_eq!(ms(None), "-");
    }
}
