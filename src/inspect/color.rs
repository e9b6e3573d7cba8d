//! Colour for the inspect CLI: on when stdout is a terminal, off when it is piped, when
//! `NO_COLOR` is set (to anything but the empty string, as no-color.org asks), when `TERM=dumb`,
//! and for `--json`; `--color always|never` overrides. Decided once at start-up.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use anstyle::{AnsiColor, Style};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM=dumb.
    #[default]
    Auto,
    Always,
    Never,
}

/// Decides once whether this run colours its output.
pub fn init(choice: ColorChoice, json: bool) {
    let on = !json
        && match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => auto(),
        };
    ENABLED.store(on, Ordering::Relaxed);
}

/// What `auto` means: stdout is a terminal, `NO_COLOR` is unset (or empty) and `TERM` is not
/// `dumb`. The terminal commands' live view decides the same way.
pub fn auto() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `text` in `style` when colour is on.
pub fn paint(text: &str, style: Style) -> String {
    if enabled() { format!("{style}{text}{style:#}") } else { text.to_owned() }
}

pub fn bold(text: &str) -> String {
    paint(text, Style::new().bold())
}

fn fg(color: AnsiColor) -> Style {
    Style::new().fg_color(Some(color.into()))
}

/// The colour of a task or orchestration state, by its name.
pub fn status_color(status: &str) -> Option<AnsiColor> {
    match status {
        "completed" | "ok" => Some(AnsiColor::Green),
        "failed" | "fail" => Some(AnsiColor::Red),
        "running" | "warn" => Some(AnsiColor::Yellow),
        "cancelled" | "skipped" => Some(AnsiColor::Magenta),
        "pending" | "waiting" => Some(AnsiColor::Cyan),
        _ => None,
    }
}

/// A state's name, coloured by what it means.
pub fn status(text: &str) -> String {
    match status_color(text) {
        Some(color) => paint(text, fg(color)),
        None => text.to_owned(),
    }
}

/// A table cell holding a state's name, coloured when colour is on.
pub fn status_cell(text: &str) -> comfy_table::Cell {
    let cell = comfy_table::Cell::new(text);
    match status_color(text).filter(|_| enabled()) {
        Some(color) => cell.fg(table_color(color)),
        None => cell,
    }
}

fn table_color(color: AnsiColor) -> comfy_table::Color {
    use comfy_table::Color;
    match color {
        AnsiColor::Green => Color::Green,
        AnsiColor::Red => Color::Red,
        AnsiColor::Yellow => Color::Yellow,
        AnsiColor::Magenta => Color::Magenta,
        AnsiColor::Cyan => Color::Cyan,
        _ => Color::Reset,
    }
}

/// Makes a table print its cells' styles when colour is on, even when stdout is not a terminal
/// (`--color always`). When it is off, cells get no style at all (see [`status_cell`]), so
/// nothing is printed whatever comfy-table thinks of the terminal.
pub fn style_table(table: &mut comfy_table::Table) {
    if enabled() {
        table.enforce_styling();
    }
}
