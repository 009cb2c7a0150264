//! The terminal views (`clab top`, the live `clab load`, `clab demo`): a [`Screen`] that
//! takes the terminal and always gives it back — on return, on a panic (ratatui's hook), on
//! SIGTERM, SIGINT or SIGHUP (watched here, acted on at the next key poll) and when the
//! terminal itself hangs up — and the widgets that draw each view's plain data.

pub mod demo;
pub mod load;
pub mod top;

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::style::{Color, Modifier, Style};

/// Whether the views draw in colour; `clab` turns it off for `NO_COLOR` or `--color never`.
static COLOUR: AtomicBool = AtomicBool::new(true);

/// Turns colour in every terminal view on or off, for the whole process.
pub fn use_colour(on: bool) {
    COLOUR.store(on, Ordering::Relaxed);
}

/// Drops every colour from a drawn frame, keeping bold, dim and the like: the widgets stay
/// as they are, and a view without colour is still a view.
fn without_colour(buffer: &mut ratatui::buffer::Buffer) {
    for cell in &mut buffer.content {
        cell.set_fg(Color::Reset);
        cell.set_bg(Color::Reset);
    }
}

/// The terminal, in raw mode on the alternate screen until dropped.
pub struct Screen {
    terminal: DefaultTerminal,
    signalled: Arc<AtomicBool>,
    /// The terminal keys come from, as crossterm reads it: standard input if it is one,
    /// else `/dev/tty`.
    keys: std::fs::File,
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
        let keys = if io::stdin().is_terminal() {
            std::fs::File::from(io::stdin().as_fd().try_clone_to_owned()?)
        } else {
            std::fs::File::open("/dev/tty")?
        };
        let terminal = ratatui::try_init()?;
        Ok(Screen {
            terminal,
            signalled,
            keys,
        })
    }

    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        let colour = COLOUR.load(Ordering::Relaxed);
        self.terminal
            .draw(|frame| {
                render(frame);
                if !colour {
                    without_colour(frame.buffer_mut());
                }
            })
            .map(|_| ())
    }

    /// Waits until `deadline` for a key; `None` if none came. A terminal that hangs up (its
    /// window closed) is a `Quit`, as a signal is.
    pub fn key_before(&mut self, deadline: Instant) -> io::Result<Option<Key>> {
        loop {
            if self.signalled.load(Ordering::Relaxed) {
                return Ok(Some(Key::Quit));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Our own poll first, in short slices so a signal is noticed promptly: crossterm
            // reads a hung-up terminal in an endless loop, so it is asked only once there is
            // a key to read.
            match self.wait_for_input(left.min(Duration::from_millis(50)))? {
                Input::HungUp => return Ok(Some(Key::Quit)),
                Input::None if left.is_zero() => return Ok(None),
                Input::None => continue,
                Input::Ready => {}
            }
            if !event::poll(Duration::ZERO)? {
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

    /// Gives the terminal back now, for a caller about to exit without unwinding.
    pub fn give_back() {
        ratatui::restore();
    }

    fn wait_for_input(&self, timeout: Duration) -> io::Result<Input> {
        let mut fds = [PollFd::new(self.keys.as_fd(), PollFlags::POLLIN)];
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => Ok(Input::None),
            Ok(_) => {
                let events = fds[0].revents().unwrap_or(PollFlags::empty());
                if events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                {
                    Ok(Input::HungUp)
                } else {
                    Ok(Input::Ready)
                }
            }
            Err(errno) => Err(errno.into()),
        }
    }
}

enum Input {
    None,
    Ready,
    HungUp,
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

/// What `draw` puts on a `width`×`height` terminal, as text: a line per row.
#[cfg(test)]
pub(crate) fn drawn(width: u16, height: u16, draw: impl FnOnce(&mut ratatui::Frame)) -> String {
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)).unwrap();
    terminal.draw(draw).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                + "\n"
        })
        .collect()
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
