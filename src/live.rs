//! The live view of queued work, for `claude-worker run --watch`, `orchestrate --wait` and
//! `claude-worker-inspect watch`: one line per task with its state, what it is doing now, its
//! elapsed time and cost. On a terminal the lines are redrawn in place (`indicatif`), coloured
//! when the caller says so; otherwise a plain line (or, with `--json`, a JSON object) is printed
//! each time a task changes. It reads through the [`Service`] (it runs nothing) and wakes when
//! the database changes.
//!
//! Ctrl-C stops watching and leaves the work running. The exit code says how the work ended: 0
//! when every task completed, 1 when any failed, was cancelled or skipped, 130 when the watch
//! was stopped first.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::model::{Millis, OrchestrationId, TaskId, TaskStatus};
use crate::service::{Service, Status, Target};
use crate::time::now_ms;
use crate::watch::{DbWatcher, changed};

/// How often the view is redrawn on a terminal (elapsed times move) or checked when piped.
const TICK: Duration = Duration::from_millis(500);

/// One task as the view shows it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    task_id: TaskId,
    identifier: String,
    status: TaskStatus,
    started_at: Option<Millis>,
    ended_at: Option<Millis>,
    cost_usd: f64,
    /// What it is doing now, or why it ended badly.
    note: Option<String>,
}

/// A watched target: its title and its tasks.
struct Group {
    title: String,
    rows: Vec<Row>,
}

/// How to show the view.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    pub color: bool,
    /// One JSON object per change instead of lines.
    pub json: bool,
}

impl Output {
    /// Colour on a terminal unless `NO_COLOR` is set or `TERM=dumb`.
    pub fn auto() -> Output {
        Output { color: crate::inspect::color::auto(), json: false }
    }
}

/// Ctrl-C, listened for from the start of a command: a Ctrl-C that comes before the view is up
/// (even before the work was queued) only ends the watching.
pub fn interrupts() -> anyhow::Result<tokio::signal::unix::Signal> {
    Ok(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?)
}

/// Watches `targets` until every task in them has finished or Ctrl-C (`interrupted`, from
/// [`interrupts`]); returns the exit code.
pub async fn watch(
    service: &Service,
    db_path: &Path,
    targets: &[Target],
    output: Output,
    mut interrupted: tokio::signal::unix::Signal,
) -> anyhow::Result<ExitCode> {
    console::set_colors_enabled(output.color && !output.json);
    let mut watcher = DbWatcher::new(db_path).ok();
    let mut view = if output.json {
        View::Json { seen: HashMap::new() }
    } else if std::io::stdout().is_terminal() {
        View::live()
    } else {
        View::plain()
    };
    loop {
        let groups = gather(service, targets).await?;
        view.draw(&groups)?;
        let rows = || groups.iter().flat_map(|g| g.rows.iter());
        if rows().all(|r| r.status.is_terminal()) {
            view.finish(&groups)?;
            let all_completed = rows().all(|r| r.status == TaskStatus::Completed);
            return Ok(if all_completed { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        tokio::select! {
            _ = interrupted.recv() => {
                view.stop()?;
                eprintln!("stopped watching; the tasks go on (claude-worker-inspect watch to look again)");
                return Ok(ExitCode::from(130));
            }
            () = changed(&mut watcher) => {
                // The writer updates the WAL index just after the file: read a moment later.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Reads the current state of every target.
async fn gather(service: &Service, targets: &[Target]) -> anyhow::Result<Vec<Group>> {
    let mut groups = Vec::with_capacity(targets.len());
    for target in targets {
        let status = service.status(target).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        groups.push(match status {
            Status::Task(view) => {
                let t = &view.detail.task;
                Group {
                    title: format!("task #{} {}", t.task_id, t.task_identifier),
                    rows: vec![Row {
                        task_id: t.task_id,
                        identifier: t.task_identifier.clone(),
                        status: t.status,
                        started_at: t.started_at,
                        ended_at: t.ended_at,
                        cost_usd: t.cost_usd,
                        note: note(t.status, t.last_action.as_deref(), t.error.as_ref().map(|e| e.message.as_str())),
                    }],
                }
            }
            Status::Orchestration(detail) => Group {
                title: orchestration_title(detail.summary.orchestration_id, detail.summary.name.as_deref()),
                rows: detail
                    .tasks
                    .iter()
                    .map(|t| Row {
                        task_id: t.task_id,
                        identifier: t.task_identifier.clone(),
                        status: t.status,
                        started_at: t.started_at,
                        ended_at: t.ended_at,
                        cost_usd: t.cost_usd,
                        note: note(t.status, t.last_action.as_deref(), t.error.as_ref().map(|e| e.message.as_str())),
                    })
                    .collect(),
            },
        });
    }
    Ok(groups)
}

fn orchestration_title(id: OrchestrationId, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("orchestration {id} ({name})"),
        None => format!("orchestration {id}"),
    }
}

/// The last column: the action while running, the reason when it ended badly.
fn note(status: TaskStatus, action: Option<&str>, error: Option<&str>) -> Option<String> {
    let text = match status {
        TaskStatus::Running => action,
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Skipped => error,
        _ => None,
    }?;
    let line = text.lines().next().unwrap_or("");
    Some(if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_owned()
    })
}

fn symbol(status: TaskStatus) -> (char, Style) {
    match status {
        TaskStatus::Completed => ('✓', Style::new().green()),
        TaskStatus::Failed => ('✗', Style::new().red()),
        TaskStatus::Cancelled | TaskStatus::Skipped => ('⊘', Style::new().yellow()),
        TaskStatus::Running => ('●', Style::new().cyan()),
        TaskStatus::Pending | TaskStatus::Waiting => ('○', Style::new().dim()),
    }
}

fn elapsed(row: &Row) -> String {
    match (row.started_at, row.ended_at) {
        (Some(start), Some(end)) if row.status.is_terminal() => seconds(end - start),
        (Some(start), _) if row.status == TaskStatus::Running => seconds(now_ms() - start),
        _ => "-".to_owned(),
    }
}

fn seconds(ms: Millis) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 60.0 { format!("{s:.1}s") } else { format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64) }
}

/// One task's line, padded so that the columns line up within its group.
fn line(row: &Row, width: usize) -> String {
    let (mark, style) = symbol(row.status);
    let status = format!("{:<9}", row.status.as_str());
    let mut text = format!(
        "{} {:<width$}  {}  {:>7}  ${:.4}",
        style.apply_to(mark),
        row.identifier,
        style.apply_to(status),
        elapsed(row),
        row.cost_usd
    );
    if let Some(note) = &row.note {
        text.push_str("  ");
        text.push_str(&Style::new().dim().apply_to(note).to_string());
    }
    text
}

fn summary(group: &Group) -> String {
    let mut counts: Vec<(TaskStatus, usize)> = Vec::new();
    for row in &group.rows {
        match counts.iter_mut().find(|(s, _)| *s == row.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((row.status, 1)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let cost: f64 = group.rows.iter().map(|r| r.cost_usd).sum();
    format!("{}: {}, cost ${cost:.4}", group.title, parts.join(", "))
}

enum View {
    /// Redrawn in place on a terminal.
    Live { multi: MultiProgress, headers: HashMap<String, ProgressBar>, bars: HashMap<TaskId, ProgressBar> },
    /// A line per change, for pipes and files.
    Plain { seen: HashMap<TaskId, (TaskStatus, Option<String>)>, started: bool },
    /// A JSON object per change.
    Json { seen: HashMap<TaskId, (TaskStatus, Option<String>)> },
}

impl View {
    fn live() -> View {
        View::Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            headers: HashMap::new(),
            bars: HashMap::new(),
        }
    }

    fn plain() -> View {
        View::Plain { seen: HashMap::new(), started: false }
    }

    fn draw(&mut self, groups: &[Group]) -> std::io::Result<()> {
        match self {
            View::Live { multi, headers, bars } => {
                let plain = ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
                for group in groups {
                    let header = headers.entry(group.title.clone()).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(plain.clone());
                        bar
                    });
                    header.set_message(Style::new().bold().apply_to(summary(group)).to_string());
                    let width = group.rows.iter().map(|r| r.identifier.chars().count()).max().unwrap_or(0);
                    for row in &group.rows {
                        let bar = bars.entry(row.task_id).or_insert_with(|| {
                            let bar = multi.add(ProgressBar::new_spinner());
                            bar.set_style(plain.clone());
                            bar
                        });
                        bar.set_message(line(row, width));
                    }
                }
                Ok(())
            }
            View::Plain { seen, started } => {
                let mut out = std::io::stdout().lock();
                if !*started {
                    *started = true;
                    for group in groups {
                        writeln!(out, "watching {}: {} tasks", group.title, group.rows.len())?;
                    }
                }
                for group in groups {
                    let width = group.rows.iter().map(|r| r.identifier.chars().count()).max().unwrap_or(0);
                    for row in &group.rows {
                        let now = (row.status, row.note.clone());
                        if seen.get(&row.task_id) != Some(&now) {
                            let clock = chrono::Local::now().format("%H:%M:%S");
                            writeln!(out, "{clock} {}", line(row, width))?;
                            seen.insert(row.task_id, now);
                        }
                    }
                }
                out.flush()
            }
            View::Json { seen } => {
                let mut out = std::io::stdout().lock();
                for row in groups.iter().flat_map(|g| g.rows.iter()) {
                    let now = (row.status, row.note.clone());
                    if seen.get(&row.task_id) != Some(&now) {
                        let elapsed_ms = row.started_at.map(|s| row.ended_at.unwrap_or_else(now_ms) - s);
                        let value = serde_json::json!({
                            "at": crate::time::rfc3339(now_ms()),
                            "task_id": row.task_id,
                            "task_identifier": row.identifier,
                            "status": row.status.as_str(),
                            "elapsed_ms": elapsed_ms,
                            "cost_usd": row.cost_usd,
                            "note": row.note,
                        });
                        writeln!(out, "{value}")?;
                        seen.insert(row.task_id, now);
                    }
                }
                out.flush()
            }
        }
    }

    /// Everything finished: leave the final lines and print the summary.
    fn finish(&mut self, groups: &[Group]) -> std::io::Result<()> {
        self.stop()?;
        let mut out = std::io::stdout().lock();
        for group in groups {
            if matches!(self, View::Json { .. }) {
                let cost: f64 = group.rows.iter().map(|r| r.cost_usd).sum();
                let completed = group.rows.iter().filter(|r| r.status == TaskStatus::Completed).count();
                let value = serde_json::json!({
                    "finished": group.title,
                    "tasks": group.rows.len(),
                    "completed": completed,
                    "cost_usd": cost,
                });
                writeln!(out, "{value}")?;
            } else {
                writeln!(out, "{}", summary(group))?;
            }
        }
        out.flush()
    }

    /// Stops redrawing, leaving what is on screen.
    fn stop(&mut self) -> std::io::Result<()> {
        if let View::Live { headers, bars, .. } = self {
            for bar in headers.values().chain(bars.values()) {
                bar.finish();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: TaskStatus, note: Option<&str>) -> Row {
        Row {
            task_id: 1,
            identifier: "backend".to_owned(),
            status,
            started_at: Some(1_000),
            ended_at: Some(43_100),
            cost_usd: 0.1234,
            note: note.map(str::to_owned),
        }
    }

    #[test]
    fn a_line_shows_state_time_cost_and_note() {
        console::set_colors_enabled(false);
        let text = line(&row(TaskStatus::Completed, None), 10);
        assert_eq!(text, "✓ backend     completed    42.1s  $0.1234");
        let text = line(&row(TaskStatus::Failed, Some("auth: bad key")), 7);
        assert!(text.starts_with("✗ backend  failed") && text.ends_with("$0.1234  auth: bad key"), "{text}");
    }

    #[test]
    fn notes_are_one_short_line() {
        let long = "x".repeat(200);
        let n = note(TaskStatus::Running, Some(&format!("{long}\nmore")), None).expect("note");
        assert_eq!(n.chars().count(), 80);
        assert_eq!(note(TaskStatus::Completed, Some("done"), None), None);
        assert_eq!(note(TaskStatus::Failed, None, Some("why\ndetails")), Some("why".to_owned()));
    }

    #[test]
    fn the_summary_counts_by_state_and_adds_cost() {
        let group = Group {
            title: "orchestration 3 (demo)".to_owned(),
            rows: vec![
                row(TaskStatus::Completed, None),
                row(TaskStatus::Completed, None),
                row(TaskStatus::Failed, None),
            ],
        };
        assert_eq!(summary(&group), "orchestration 3 (demo): 2 completed, 1 failed, cost $0.3702");
    }
}
