//! An orchestration's graph drawn, pure: the cards (a task's name, state, time, cost and current
//! action) and the three pictures `claude-worker-inspect graph` prints — Mermaid (pastes into a
//! pull request or an issue), Graphviz DOT, and SVG (opens anywhere) — from the one layout in
//! [`crate::layout`] that the dashboard draws too, with the colours and icons of each state
//! that the dashboard's stylesheet is made from ([`state_css`]).

use std::fmt::Write as _;

use crate::layout::{self, BOX_HEIGHT, BOX_WIDTH, Layout};
use crate::model::{Millis, OrchestrationDetail, TaskStatus};

/// How a state looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Look {
    pub fill: &'static str,
    pub stroke: &'static str,
    pub icon: &'static str,
    /// Drawn with a dashed border (work that will not run).
    pub dashed: bool,
}

/// The look of each state.
pub fn look(status: TaskStatus) -> Look {
    let (fill, stroke, icon, dashed) = match status {
        TaskStatus::Waiting => ("#f3f4f6", "#9ca3af", "◷", false),
        TaskStatus::Pending => ("#eef2ff", "#6366f1", "○", false),
        TaskStatus::Running => ("#e0f2fe", "#0284c7", "●", false),
        TaskStatus::Completed => ("#dcfce7", "#16a34a", "✓", false),
        TaskStatus::Failed => ("#fee2e2", "#dc2626", "✗", false),
        TaskStatus::Cancelled => ("#fef3c7", "#b45309", "⊘", true),
        TaskStatus::Skipped => ("#f9fafb", "#9ca3af", "↷", true),
    };
    Look { fill, stroke, icon, dashed }
}

/// The dashboard's colours of each state, as CSS (`.state-running { ... }`), so that the page
/// and the pictures cannot disagree.
pub fn state_css() -> String {
    let mut css = String::new();
    for status in TaskStatus::ALL {
        let look = look(status);
        let _ = writeln!(
            css,
            ".state-{s} {{ --fill: {}; --stroke: {}; }}\n.state-{s} .icon::before {{ content: \"{}\"; }}",
            look.fill,
            look.stroke,
            look.icon,
            s = status.as_str()
        );
    }
    css
}

/// One task as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Card {
    pub id: i64,
    pub identifier: String,
    pub status: TaskStatus,
    pub depends_on: Vec<i64>,
    /// Time, cost and what it is doing: `running · 12.0s · $0.0310 · Edit src/x.rs`.
    pub note: String,
}

/// A graph to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub title: String,
    pub cards: Vec<Card>,
}

impl Picture {
    /// An orchestration's tasks as cards, at `now` (for a running task's time).
    pub fn of(detail: &OrchestrationDetail, now: Millis) -> Picture {
        let summary = &detail.summary;
        let name = summary.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
        let title = format!(
            "orchestration {}{name}: {} · {}/{} completed · ${:.4}",
            summary.orchestration_id,
            summary.status,
            summary.counters.completed,
            summary.counters.total,
            summary.cost_usd
        );
        let cards = detail
            .tasks
            .iter()
            .map(|t| {
                let mut note = t.status.as_str().to_owned();
                if let Some(time) = elapsed(t.status, t.started_at, t.ended_at, now) {
                    note.push_str(&format!(" · {time}"));
                }
                if t.cost_usd > 0.0 {
                    note.push_str(&format!(" · ${:.4}", t.cost_usd));
                }
                if t.status == TaskStatus::Running
                    && let Some(action) = &t.last_action
                {
                    note.push_str(&format!(" · {action}"));
                }
                if let Some(error) = &t.error
                    && matches!(t.status, TaskStatus::Failed | TaskStatus::Skipped)
                {
                    note.push_str(&format!(" · {}", error.kind));
                }
                Card {
                    id: t.task_id,
                    identifier: t.task_identifier.clone(),
                    status: t.status,
                    depends_on: t.depends_on.clone(),
                    note,
                }
            })
            .collect();
        Picture { title, cards }
    }

    pub fn layout(&self) -> Layout {
        let tasks: Vec<(i64, Vec<i64>)> = self.cards.iter().map(|c| (c.id, c.depends_on.clone())).collect();
        layout::layout(&tasks)
    }
}

/// How long a task ran (or has been running).
pub fn elapsed(status: TaskStatus, started: Option<Millis>, ended: Option<Millis>, now: Millis) -> Option<String> {
    let ms = match (started, ended) {
        (Some(start), Some(end)) if status.is_terminal() => end - start,
        (Some(start), _) if status == TaskStatus::Running => now - start,
        _ => return None,
    };
    let s = ms.max(0) as f64 / 1000.0;
    Some(if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    })
}

/// Mermaid's flowchart, left to right, a class per state.
pub fn mermaid(picture: &Picture) -> String {
    let mut out = String::from("flowchart LR\n");
    let _ = writeln!(out, "  %% {}", picture.title.replace('\n', " "));
    for card in &picture.cards {
        let label = format!("{} {}<br/>{}", look(card.status).icon, card.identifier, card.note);
        let _ = writeln!(out, "  t{}[\"{}\"]:::{}", card.id, mermaid_text(&label), card.status.as_str());
    }
    let layout = picture.layout();
    for &(from, to) in &layout.edges {
        let _ = writeln!(out, "  t{} --> t{}", layout.nodes[from].id, layout.nodes[to].id);
    }
    for status in TaskStatus::ALL {
        let look = look(status);
        let dash = if look.dashed { ",stroke-dasharray: 5 3" } else { "" };
        let _ = writeln!(out, "  classDef {} fill:{},stroke:{}{dash}", status.as_str(), look.fill, look.stroke);
    }
    out
}

/// Text inside a Mermaid `["..."]` label: quotes and markup characters as entity codes
/// (`<br/>`, which it reads as a line break, is kept).
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split("<br/>").enumerate() {
        if i > 0 {
            out.push_str("<br/>");
        }
        for c in part.chars() {
            match c {
                '"' => out.push_str("#quot;"),
                '<' => out.push_str("#lt;"),
                '>' => out.push_str("#gt;"),
                '#' => out.push_str("#35;"),
                '\n' | '\r' => out.push(' '),
                c => out.push(c),
            }
        }
    }
    out
}

/// Graphviz DOT, left to right.
pub fn dot(picture: &Picture) -> String {
    let mut out = String::from("digraph orchestration {\n  rankdir=LR;\n");
    let _ = writeln!(out, "  label=\"{}\"; labelloc=t;", dot_text(&picture.title));
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
    for card in &picture.cards {
        let look = look(card.status);
        let style = if look.dashed { ", style=\"rounded,filled,dashed\"" } else { "" };
        let label = format!("{} {}\n{}", look.icon, card.identifier, card.note);
        let _ = writeln!(
            out,
            "  t{} [label=\"{}\", fillcolor=\"{}\", color=\"{}\"{style}];",
            card.id,
            dot_text(&label),
            look.fill,
            look.stroke
        );
    }
    let layout = picture.layout();
    for &(from, to) in &layout.edges {
        let _ = writeln!(out, "  t{} -> t{};", layout.nodes[from].id, layout.nodes[to].id);
    }
    out.push_str("}\n");
    out
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\r', "")
}

/// A standalone SVG document.
pub fn svg(picture: &Picture) -> String {
    const TITLE: f64 = 28.0;
    let layout = picture.layout();
    let (width, height) = (layout.width.max(320.0), layout.height + TITLE);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">"
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7280\"/></marker></defs>\n",
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    let _ = writeln!(out, "<text x=\"16\" y=\"19\" font-weight=\"bold\">{}</text>", xml_text(&picture.title));
    let _ = writeln!(out, "<g transform=\"translate(0,{TITLE})\">");
    for &edge in &layout.edges {
        let ((x1, y1), (x2, y2)) = layout.edge_ends(edge);
        let bend = (x2 - x1) / 2.0;
        let _ = writeln!(
            out,
            "<path d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#6b7280\" stroke-width=\"1.3\" \
             marker-end=\"url(#arrow)\"/>",
            x1 + bend,
            x2 - bend
        );
    }
    for (card, placed) in picture.cards.iter().zip(&layout.nodes) {
        let look = look(card.status);
        let dash = if look.dashed { " stroke-dasharray=\"5 3\"" } else { "" };
        let _ = writeln!(
            out,
            "<g class=\"task state-{}\" data-task-id=\"{}\"><title>{}</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{BOX_WIDTH}\" height=\"{BOX_HEIGHT}\" rx=\"8\" fill=\"{}\" stroke=\"{}\" \
             stroke-width=\"1.5\"{dash}/>\
             <text x=\"{}\" y=\"{}\" font-weight=\"bold\">{} {}</text>\
             <text x=\"{}\" y=\"{}\" fill=\"#374151\" font-size=\"11\">{}</text></g>",
            card.status.as_str(),
            card.id,
            xml_text(&format!("#{} {}: {}", card.id, card.identifier, card.note)),
            placed.x,
            placed.y,
            look.fill,
            look.stroke,
            placed.x + 10.0,
            placed.y + 24.0,
            look.icon,
            xml_text(&clip(&card.identifier, 24)),
            placed.x + 10.0,
            placed.y + 44.0,
            xml_text(&clip(&card.note, 32)),
        );
    }
    out.push_str("</g>\n</svg>\n");
    out
}

/// At most `chars` characters, the cut marked.
fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture() -> Picture {
        let card = |id: i64, identifier: &str, status, depends_on: Vec<i64>| Card {
            id,
            identifier: identifier.to_owned(),
            status,
            depends_on,
            note: status.as_str().to_owned(),
        };
        Picture {
            title: "orchestration 1 \"demo\" <x> & y".to_owned(),
            cards: vec![
                card(1, "extract", TaskStatus::Completed, vec![]),
                card(2, "transform", TaskStatus::Running, vec![1]),
                card(3, "report<script>", TaskStatus::Skipped, vec![2]),
            ],
        }
    }

    #[test]
    fn mermaid_has_each_task_edge_and_state_with_text_escaped() {
        let text = mermaid(&picture());
        assert!(text.starts_with("flowchart LR\n"));
        assert!(text.contains("  t1[\"✓ extract<br/>completed\"]:::completed\n"), "{text}");
        assert!(text.contains("  t1 --> t2\n  t2 --> t3\n"), "{text}");
        assert!(text.contains("report#lt;script#gt;"), "{text}");
        assert!(text.contains("classDef skipped fill:#f9fafb,stroke:#9ca3af,stroke-dasharray: 5 3"));
        assert!(!text.contains("<script>"));
    }

    #[test]
    fn dot_quotes_labels_and_draws_edges() {
        let text = dot(&picture());
        assert!(text.contains("rankdir=LR;"));
        assert!(text.contains("label=\"orchestration 1 \\\"demo\\\" <x> & y\""), "{text}");
        assert!(
            text.contains("t2 [label=\"● transform\\nrunning\", fillcolor=\"#e0f2fe\", color=\"#0284c7\"];"),
            "{text}"
        );
        assert!(text.contains("t1 -> t2;") && text.contains("t2 -> t3;"));
        assert!(text.trim_end().ends_with('}'));
    }

    #[test]
    fn svg_is_well_formed_with_a_box_per_task_and_a_path_per_edge() {
        let text = svg(&picture());
        assert_eq!(text.matches("<g class=\"task ").count(), 3);
        assert_eq!(text.matches("marker-end=").count(), 2);
        assert!(text.contains("&lt;x&gt; &amp; y"));
        assert!(!text.contains("<script>"));
        assert!(text.contains("data-task-id=\"2\""));
        // Every element opened is closed (a crude check that holds for this writer's output).
        assert_eq!(text.matches("<g").count(), text.matches("</g>").count());
        assert!(text.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn every_state_has_a_look_and_a_css_rule() {
        let css = state_css();
        for status in TaskStatus::ALL {
            assert!(css.contains(&format!(".state-{} {{", status.as_str())), "{status:?}");
        }
        assert_eq!(elapsed(TaskStatus::Running, Some(0), None, 61_000), Some("1m01s".to_owned()));
        assert_eq!(elapsed(TaskStatus::Completed, Some(0), Some(1500), 9_999_999), Some("1.5s".to_owned()));
        assert_eq!(elapsed(TaskStatus::Waiting, None, None, 5), None);
        assert_eq!(elapsed(TaskStatus::Completed, Some(0), Some(7_260_000), 0), Some("2h01m".to_owned()));
    }
}
