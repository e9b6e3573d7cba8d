//! Redrawing a block of lines in place on a terminal: the live view's frame.
//!
//! Each line is cut to one column less than the terminal's width and ends with a real newline,
//! so the cursor rests at the start of the row below the frame and no line ever wraps. That is
//! what keeps a redraw exact when the terminal writes something of its own: the `^C` it echoes
//! for Ctrl-C lands on that empty row (and is wiped by the last redraw) instead of pushing the
//! frame down a row, which is how indicatif's full-width lines, redrawn from the wrong row, left
//! the header on screen twice. A terminal narrower than a line already drawn re-wraps it (or cuts
//! it) and no count of rows can be trusted any more: after such a resize the screen is cleared
//! and the frame drawn again from its top. A frame taller than the terminal is cut, with a line
//! saying how many lines are not shown, since rows scrolled out of sight cannot be redrawn.
//!
//! [`Screen::frame`] is pure: it returns the bytes to write.

use std::fmt::Write as _;

/// What the last frame left on the terminal.
#[derive(Debug, Default)]
pub struct Screen {
    /// Rows the last frame took; the cursor is at the start of the row below it.
    rows: usize,
    /// The widest line of the last frame, in columns.
    widest: usize,
    /// The terminal's rows and columns when the last frame was drawn.
    size: Option<(usize, usize)>,
}

/// Clears the screen and puts the cursor at its top left.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";
/// Clears from the cursor to the end of the line.
const CLEAR_LINE_END: &str = "\x1b[K";
/// Clears from the cursor to the end of the screen.
const CLEAR_BELOW: &str = "\x1b[J";

impl Screen {
    pub fn new() -> Screen {
        Screen::default()
    }

    /// The bytes that replace the last frame with `lines` on a terminal of `rows` x `columns`.
    /// The size is compared with the last frame's (not told by the caller's SIGWINCH, which may
    /// come after a redraw at the new size).
    pub fn frame(&mut self, lines: &[String], (rows, columns): (usize, usize)) -> String {
        let (rows, columns) = (rows.max(2), columns.max(2));
        let fit = fit(lines, rows - 1, columns - 1);
        let mut out = String::new();
        let resized = self.size.is_some_and(|size| size != (rows, columns));
        // Narrower than a line drawn (it was re-wrapped or cut), or shorter than the frame (its
        // top rows scrolled away): the rows on screen are no longer the frame's.
        if resized && (self.widest >= columns || self.rows >= rows) {
            out.push_str(CLEAR_SCREEN);
        } else if self.rows > 0 {
            let _ = write!(out, "\r\x1b[{}A", self.rows);
        } else {
            out.push('\r');
        }
        for line in &fit {
            out.push_str(line);
            out.push_str(CLEAR_LINE_END);
            out.push('\n');
        }
        out.push_str(CLEAR_BELOW);
        self.rows = fit.len();
        self.size = Some((rows, columns));
        self.widest = fit.iter().map(|l| console::measure_text_width(l)).max().unwrap_or(0);
        out
    }
}

/// At most `rows` lines of at most `width` columns: the first ones, and the count of the rest.
fn fit(lines: &[String], rows: usize, width: usize) -> Vec<String> {
    let cut = |line: &str| console::truncate_str(line, width, "…").into_owned();
    if lines.len() <= rows {
        return lines.iter().map(|l| cut(l)).collect();
    }
    let shown = rows.saturating_sub(1);
    let hidden = lines.len() - shown;
    let mut fitted: Vec<String> = lines[..shown].iter().map(|l| cut(l)).collect();
    let noun = if hidden == 1 { "line" } else { "lines" };
    fitted.push(cut(&format!("… {hidden} more {noun} (the terminal is too short to show them)")));
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_redraw_goes_back_up_the_rows_it_drew_and_clears_what_is_left() {
        let mut screen = Screen::new();
        let first = screen.frame(&lines(&["header", "a", "b"]), (24, 80));
        assert_eq!(first, "\rheader\x1b[K\na\x1b[K\nb\x1b[K\n\x1b[J");
        let second = screen.frame(&lines(&["header", "a"]), (24, 80));
        assert_eq!(second, "\r\x1b[3Aheader\x1b[K\na\x1b[K\n\x1b[J");
        let third = screen.frame(&lines(&["header"]), (24, 80));
        assert!(third.starts_with("\r\x1b[2A"), "{third:?}");
    }

    #[test]
    fn lines_never_reach_the_last_column() {
        let mut screen = Screen::new();
        let long = "x".repeat(100);
        let out = screen.frame(&[long], (24, 40));
        let drawn = out.trim_start_matches('\r').split("\x1b[K").next().expect("a line");
        assert_eq!(console::measure_text_width(drawn), 39, "{drawn}");
        assert!(drawn.ends_with('…'));
        // Colours do not count as columns.
        let styled = format!("\x1b[1m{}\x1b[0m", "y".repeat(30));
        let out = Screen::new().frame(std::slice::from_ref(&styled), (24, 40));
        assert!(out.contains(&styled), "{out:?}");
    }

    #[test]
    fn narrowing_below_a_drawn_line_clears_the_screen_and_widening_does_not() {
        let mut screen = Screen::new();
        screen.frame(&lines(&[&"x".repeat(60), "short"]), (24, 100));
        let wider = screen.frame(&lines(&[&"x".repeat(60), "short"]), (24, 120));
        assert!(wider.starts_with("\r\x1b[2A"), "nothing wrapped: a plain redraw: {wider:?}");
        let still_fits = screen.frame(&lines(&[&"x".repeat(60), "short"]), (24, 70));
        assert!(still_fits.starts_with("\r\x1b[2A"), "{still_fits:?}");
        let narrower = screen.frame(&lines(&[&"x".repeat(60), "short"]), (24, 50));
        assert!(narrower.starts_with(CLEAR_SCREEN), "the old lines wrapped: {narrower:?}");
        // Not resized since: the next frame is drawn in place.
        let again = screen.frame(&lines(&["a"]), (24, 50));
        assert!(again.starts_with("\r\x1b[2A"), "{again:?}");
        // Shorter than the frame: its top rows scrolled away.
        let mut screen = Screen::new();
        screen.frame(&lines(&["a", "b", "c", "d"]), (24, 50));
        assert!(screen.frame(&lines(&["a", "b", "c", "d"]), (4, 50)).starts_with(CLEAR_SCREEN));
    }

    #[test]
    fn a_frame_taller_than_the_terminal_says_how_much_is_not_shown() {
        let many: Vec<String> = (0..30).map(|n| format!("task {n}")).collect();
        let out = Screen::new().frame(&many, (10, 80));
        assert_eq!(out.matches('\n').count(), 9, "one row stays free for the cursor: {out:?}");
        assert!(out.contains("task 7\x1b[K\n… 22 more lines (the terminal is too short to show them)"), "{out:?}");
        let one_more: Vec<String> = (0..10).map(|n| format!("task {n}")).collect();
        assert!(Screen::new().frame(&one_more, (10, 80)).contains("… 2 more lines"));
        let exactly: Vec<String> = (0..9).map(|n| format!("task {n}")).collect();
        assert!(!Screen::new().frame(&exactly, (10, 80)).contains("more line"));
    }
}
