//! The `clab demo` screen: a title line, `top` on the left and the live load on the right,
//! and the caption under both.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::load::live::LiveLoad;
use crate::top::live::View;
use crate::tui::style;

/// What the demo screen shows.
pub struct DemoView<'a> {
    /// "clab demo convoy · threads --gil new · run 1 · server on CPU 0, load on CPU 1".
    pub title: String,
    /// What the keys do now.
    pub keys: String,
    pub top: &'a View,
    pub load: &'a LiveLoad,
    pub caption: &'a str,
}

pub fn draw(frame: &mut Frame, area: Rect, view: &DemoView) {
    let [title, panes, caption] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(10),
        Constraint::Length(4),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(Span::styled(view.title.clone(), style::title())),
        title,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(panes);
    crate::tui::top::draw(frame, left, view.top, "");
    crate::tui::load::draw(frame, right, view.load, "");
    frame.render_widget(
        Paragraph::new(view.caption)
            .wrap(Wrap { trim: true })
            .block(
                Block::bordered()
                    .title("what is happening")
                    .title_bottom(Line::styled(format!(" {} ", view.keys), style::dim())),
            ),
        caption,
    );
}
