//! The live view of queued work, for `claude-worker run --watch`, `orchestrate --wait` and
//! `claude-worker-inspect watch`: one line per task with its state, what it is doing now (or, for
//! a task whose start is delayed, `starts in 1m 20s`), its elapsed time and cost. An
//! orchestration's tasks come in the order of its dependency tree, each line after the tree's
//! branch drawing ([`crate::tree`], as `orchestration-status` draws it, each task once). On a
//! terminal the lines are redrawn in place (`screen.rs`), again at once when the terminal is
//! resized, and coloured when the caller says so; otherwise a plain line (or, with `--json`, a
//! JSON object) is printed each time a task changes. At the end comes a summary per target, and
//! under it the first lines of a lone task's result, or the errors of what failed. It reads
//! through the [`Service`] (it runs nothing) and wakes when the database changes.
//!
//! Ctrl-C stops watching and leaves the work running. The exit code says how the work ended: 0
//! when every task completed, 1 when any failed, was cancelled or skipped, 130 when the watch
//! was stopped first.

mod screen;

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use console::Style;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::model::{Millis, OrchestrationId, TaskError, TaskId, TaskStatus};
use crate::service::{Service, Status, Target};
use crate::time::now_ms;
use crate::tree::{Repeats, layout};
use crate::watch::{DbWatcher, changed};
use screen::Screen;

/// How often the view is redrawn on a terminal (elapsed times and countdowns move) or checked
/// when piped.
const TICK: Duration = Duration::from_millis(500);

/// How many lines of a task's result `run --watch` shows when it ends.
const RESULT_LINES: usize = 5;

/// One task as the view shows it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    task_id: TaskId,
    identifier: String,
    /// The dependency tree's branch drawing before the task; empty for a task watched alone.
    prefix: String,
    status: TaskStatus,
    started_at: Option<Millis>,
    ended_at: Option<Millis>,
    /// While pending: the earliest time it may start (a delay after its dependencies, or a
    /// retry's backoff), for the countdown.
    ready_at: Option<Millis>,
    cost_usd: f64,
    last_action: Option<String>,
    error: Option<TaskError>,
    /// A completed task's answer (read only for a task watched alone, shown at the end).
    result: Option<String>,
    /// The task that queued this one from inside its run, if any.
    created_by: Option<TaskId>,
}

/// A watched target: its title and its tasks, in dependency-tree order.
#[derive(Default)]
struct Group {
    title: String,
    /// One task watched on its own (`run --watch`): no tree, and its result is shown at the end.
    single: bool,
    rows: Vec<Row>,
    /// An orchestration's budget, when it has one: the summary shows the spend of it.
    budget_usd: Option<f64>,
    /// Why its budget stopped tasks and how to raise it (in the inspect CLI's words).
    budget_message: Option<String>,
    /// With isolated tasks: their results are still being merged onto the integration branch
    /// (the work is not over until they are).
    integrating: bool,
    /// With isolated tasks, once over: where their results are, and what else happened.
    integration_lines: Vec<String>,
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
pub fn interrupts() -> anyhow::Result<Signal> {
    Ok(signal(SignalKind::interrupt())?)
}

/// Watches `targets` until every task in them has finished or Ctrl-C (`interrupted`, from
/// [`interrupts`]); returns the exit code.
pub async fn watch(
    service: &Service,
    db_path: &Path,
    targets: &[Target],
    output: Output,
    mut interrupted: Signal,
) -> anyhow::Result<ExitCode> {
    console::set_colors_enabled(output.color && !output.json);
    let mut watcher = DbWatcher::new(db_path).ok();
    let mut view = if output.json {
        View::Json { seen: HashMap::new(), pause: None }
    } else if std::io::stdout().is_terminal() {
        View::Live { screen: Screen::new() }
    } else {
        View::Plain { seen: HashMap::new(), started: false, pause: None }
    };
    // Only a frame redrawn in place cares about the terminal's size.
    let mut resizes = match view {
        View::Live { .. } => Some(signal(SignalKind::window_change())?),
        _ => None,
    };
    loop {
        let groups = gather(service, targets).await?;
        let paused = paused(service).await;
        view.draw(&groups, paused.as_ref())?;
        let rows = || groups.iter().flat_map(|g| g.rows.iter());
        if rows().all(|r| r.status.is_terminal()) && !groups.iter().any(|g| g.integrating) {
            view.finish(&groups)?;
            let all_completed = rows().all(|r| r.status == TaskStatus::Completed);
            return Ok(if all_completed { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        tokio::select! {
            _ = interrupted.recv() => {
                // Once more, over the `^C` the terminal echoed below the frame.
                view.draw(&groups, paused.as_ref())?;
                eprintln!("stopped watching; the tasks go on (claude-worker-inspect watch to look again)");
                return Ok(ExitCode::from(130));
            }
            // Redrawn at once at the new size.
            () = window_changed(&mut resizes) => {}
            () = changed(&mut watcher) => {
                // The writer updates the WAL index just after the file: read a moment later.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// The next SIGWINCH; never, when not listening.
async fn window_changed(resizes: &mut Option<Signal>) {
    match resizes {
        Some(signal) => {
            if signal.recv().await.is_none() {
                *resizes = None;
            }
        }
        None => std::future::pending().await,
    }
}

/// The account's usage-limit pause, while work waits for it: its end and its line.
async fn paused(service: &Service) -> Option<(Millis, String)> {
    let now = now_ms();
    let limits = service.usage_limits().await.ok()?;
    limits.paused_at(now).map(|p| (p.until, crate::usage_limit::pause_line(p, now)))
}

/// Reads the current state of every target.
async fn gather(service: &Service, targets: &[Target]) -> anyhow::Result<Vec<Group>> {
    let mut groups = Vec::with_capacity(targets.len());
    for target in targets {
        let status = service.status(target).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        groups.push(match status {
            Status::Task(view) => {
                let t = view.detail.task;
                Group {
                    title: format!("task #{} {}", t.task_id, t.task_identifier),
                    single: true,
                    budget_usd: None,
                    budget_message: None,
                    integrating: false,
                    integration_lines: Vec::new(),
                    rows: vec![Row {
                        task_id: t.task_id,
                        identifier: t.task_identifier,
                        prefix: String::new(),
                        status: t.status,
                        started_at: t.started_at,
                        ended_at: t.ended_at,
                        ready_at: t.ready_at,
                        cost_usd: t.cost_usd,
                        last_action: t.last_action,
                        error: t.error,
                        result: t.result,
                        created_by: t.created_by,
                    }],
                }
            }
            Status::Orchestration(detail) => {
                let deps: Vec<(TaskId, &[TaskId])> =
                    detail.tasks.iter().map(|t| (t.task_id, t.depends_on.as_slice())).collect();
                let rows = layout(&deps, Repeats::Omit)
                    .into_iter()
                    .map(|line| {
                        let t = &detail.tasks[line.index];
                        Row {
                            task_id: t.task_id,
                            identifier: t.task_identifier.clone(),
                            prefix: line.prefix,
                            status: t.status,
                            started_at: t.started_at,
                            ended_at: t.ended_at,
                            ready_at: t.ready_at,
                            cost_usd: t.cost_usd,
                            last_action: t.last_action.clone(),
                            error: t.error.clone(),
                            result: None,
                            created_by: t.created_by,
                        }
                    })
                    .collect();
                Group {
                    title: orchestration_title(detail.summary.orchestration_id, detail.summary.name.as_deref()),
                    single: false,
                    rows,
                    budget_usd: detail.summary.budget_usd,
                    budget_message: crate::budget::exhausted_message(&detail.summary)
                        .map(|m| crate::text::in_cli_words(&m)),
                    integrating: detail
                        .isolation
                        .as_ref()
                        .is_some_and(|i| i.integration == crate::isolation::IntegrationState::Pending),
                    integration_lines: detail.isolation.as_deref().map(integration_lines).unwrap_or_default(),
                }
            }
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

/// The last column: the action while running, the reason when it ended badly, and for a task
/// waiting out a retry's backoff, what failed.
fn note(row: &Row) -> Option<String> {
    let text = match row.status {
        TaskStatus::Running => row.last_action.clone()?,
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Skipped => row.error.as_ref()?.message.clone(),
        TaskStatus::Pending => format!("retry after: {}", row.error.as_ref()?.message),
        TaskStatus::Waiting | TaskStatus::Completed => return None,
    };
    let line = text.lines().next().unwrap_or("");
    Some(if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_owned()
    })
}

/// `starts in 1m 20s` for a pending task whose start is delayed.
fn countdown(row: &Row, now: Millis) -> Option<String> {
    let at = row.ready_at.filter(|at| row.status == TaskStatus::Pending && *at > now)?;
    Some(format!("starts in {}", remaining(at - now)))
}

/// A time left, rounded up to the second: `45s`, `1m 20s`, `2h 05m`.
fn remaining(ms: Millis) -> String {
    let s = (ms.max(0) + 999) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
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

fn elapsed(row: &Row, now: Millis) -> String {
    match (row.started_at, row.ended_at) {
        (Some(start), Some(end)) if row.status.is_terminal() => seconds(end - start),
        (Some(start), _) if row.status == TaskStatus::Running => seconds(now - start),
        _ => "-".to_owned(),
    }
}

fn seconds(ms: Millis) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 60.0 { format!("{s:.1}s") } else { format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64) }
}

/// The columns the tree prefix and the name take, for the widest row of a group.
fn name_width(rows: &[Row]) -> usize {
    rows.iter().map(|r| r.prefix.chars().count() + r.identifier.chars().count()).max().unwrap_or(0)
}

/// One task's line: its place in the tree, then columns padded to line up within its group
/// (`width` from [`name_width`]).
fn line(row: &Row, width: usize, now: Millis) -> String {
    let (mark, style) = symbol(row.status);
    let dim = Style::new().dim();
    let prefix = if row.prefix.is_empty() { String::new() } else { dim.apply_to(&row.prefix).to_string() };
    let pad = width.saturating_sub(row.prefix.chars().count());
    let status = format!("{:<9}", row.status.as_str());
    let mut text = format!(
        "{prefix}{} {:<pad$}  {}  {:>7}  ${:.4}",
        style.apply_to(mark),
        row.identifier,
        style.apply_to(status),
        elapsed(row, now),
        row.cost_usd
    );
    let queued_by = row.created_by.map(|by| format!("queued by #{by}"));
    for extra in [queued_by, countdown(row, now), note(row)].into_iter().flatten() {
        text.push_str("  ");
        text.push_str(&dim.apply_to(extra).to_string());
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
    let cost = match group.budget_usd {
        Some(budget) => crate::budget::spend_of(cost, budget),
        None => format!("${cost:.4}"),
    };
    format!("{}: {}, cost {cost}", group.title, parts.join(", "))
}

/// What the work came to, under the summary: a task watched alone shows the first lines of its
/// result (or its error); an orchestration, the errors of its failed tasks in full.
fn outcome(group: &Group) -> Vec<String> {
    let mut lines = Vec::new();
    if group.single {
        let Some(row) = group.rows.first() else { return lines };
        match (&row.result, &row.error) {
            (Some(result), _) if row.status == TaskStatus::Completed && !result.trim().is_empty() => {
                lines.push("result:".to_owned());
                let all: Vec<&str> = result.trim_end().lines().collect();
                lines.extend(all.iter().take(RESULT_LINES).map(|l| format!("  {l}")));
                if all.len() > RESULT_LINES {
                    let more = crate::text::count((all.len() - RESULT_LINES) as u64, "more line");
                    lines.push(format!("  … {more} (claude-worker-inspect status #{})", row.task_id));
                }
            }
            (_, Some(error)) if row.status != TaskStatus::Completed => {
                lines.extend(error_lines(&format!("error: {}: ", error.kind), &error.message));
            }
            _ => {}
        }
    } else {
        for row in group.rows.iter().filter(|r| r.status == TaskStatus::Failed) {
            if let Some(error) = &row.error {
                let head = format!("✗ {} #{} failed: {}: ", row.identifier, row.task_id, error.kind);
                lines.extend(error_lines(&head, &error.message));
            }
        }
        lines.extend(group.budget_message.clone());
        lines.extend(group.integration_lines.iter().cloned());
    }
    lines
}

/// What an ended orchestration's isolated tasks left: the integration branch and commit, or
/// why there is none, and the merge into the checkout when it was asked for.
fn integration_lines(i: &crate::isolation::OrchestrationIsolation) -> Vec<String> {
    use crate::isolation::IntegrationState;
    let mut lines = Vec::new();
    match (i.integration, &i.integration_commit) {
        (IntegrationState::Done, Some(commit)) => lines.push(format!(
            "results on {} at {}{}",
            i.branch,
            crate::git::short_commit(commit),
            if i.base.merge_when_done { "" } else { " (claude-worker-inspect merge brings them into your checkout)" }
        )),
        (IntegrationState::Abandoned, _) => lines.push("results not integrated: it did not complete".to_owned()),
        _ => {}
    }
    lines.extend(i.note.clone());
    lines
}

/// An error message after `head`, its further lines indented, at most [`RESULT_LINES`] of them.
fn error_lines(head: &str, message: &str) -> Vec<String> {
    let mut message = message.trim_end().lines();
    let mut lines = vec![format!("{head}{}", message.next().unwrap_or(""))];
    lines.extend(message.take(RESULT_LINES - 1).map(|l| format!("  {l}")));
    lines
}

/// What a plain or JSON view prints a line for when it changes (not the moving countdown).
type Seen = HashMap<TaskId, (TaskStatus, Option<String>, Option<Millis>)>;

fn seen_key(row: &Row) -> (TaskStatus, Option<String>, Option<Millis>) {
    (row.status, note(row), row.ready_at)
}

enum View {
    /// Redrawn in place on a terminal.
    Live { screen: Screen },
    /// A line per change, for pipes and files.
    Plain { seen: Seen, started: bool, pause: Option<Millis> },
    /// A JSON object per change.
    Json { seen: Seen, pause: Option<Millis> },
}

impl View {
    /// Shows the current state, and the usage-limit pause while there is one.
    fn draw(&mut self, groups: &[Group], paused: Option<&(Millis, String)>) -> std::io::Result<()> {
        let now = now_ms();
        match self {
            View::Live { screen } => {
                let mut lines = Vec::new();
                if let Some((_, line)) = paused {
                    lines.push(Style::new().yellow().apply_to(line).to_string());
                }
                for group in groups {
                    lines.push(Style::new().bold().apply_to(summary(group)).to_string());
                    let width = name_width(&group.rows);
                    lines.extend(group.rows.iter().map(|row| line(row, width, now)));
                }
                let (rows, columns) = console::Term::stdout().size_checked().unwrap_or((24, 80));
                let bytes = screen.frame(&lines, (usize::from(rows), usize::from(columns)));
                let mut out = std::io::stdout().lock();
                out.write_all(bytes.as_bytes())?;
                out.flush()
            }
            View::Plain { seen, started, pause } => {
                let mut out = std::io::stdout().lock();
                if paused.map(|p| p.0) != *pause {
                    *pause = paused.map(|p| p.0);
                    let clock = chrono::Local::now().format("%H:%M:%S");
                    match paused {
                        Some((_, line)) => writeln!(out, "{clock} {line}")?,
                        None if *started => writeln!(out, "{clock} resumed: the usage-limit pause is over")?,
                        None => {}
                    }
                }
                if !*started {
                    *started = true;
                    for group in groups {
                        writeln!(
                            out,
                            "watching {}: {}",
                            group.title,
                            crate::text::count(group.rows.len() as u64, "task")
                        )?;
                    }
                }
                for group in groups {
                    let width = name_width(&group.rows);
                    for row in &group.rows {
                        let key = seen_key(row);
                        if seen.get(&row.task_id) != Some(&key) {
                            let clock = chrono::Local::now().format("%H:%M:%S");
                            writeln!(out, "{clock} {}", line(row, width, now))?;
                            seen.insert(row.task_id, key);
                        }
                    }
                }
                out.flush()
            }
            View::Json { seen, pause } => {
                let mut out = std::io::stdout().lock();
                if paused.map(|p| p.0) != *pause {
                    *pause = paused.map(|p| p.0);
                    let value = serde_json::json!({
                        "at": crate::time::rfc3339(now),
                        "paused_until": paused.map(|p| crate::time::rfc3339(p.0)),
                        "paused_reason": paused.map(|p| p.1.as_str()),
                    });
                    writeln!(out, "{value}")?;
                }
                for row in groups.iter().flat_map(|g| g.rows.iter()) {
                    let key = seen_key(row);
                    if seen.get(&row.task_id) != Some(&key) {
                        let elapsed_ms = row.started_at.map(|s| row.ended_at.unwrap_or(now) - s);
                        let starts_at = row.ready_at.filter(|_| row.status == TaskStatus::Pending);
                        let value = serde_json::json!({
                            "at": crate::time::rfc3339(now),
                            "task_id": row.task_id,
                            "task_identifier": row.identifier,
                            "status": row.status.as_str(),
                            "elapsed_ms": elapsed_ms,
                            "cost_usd": crate::model::round_usd(row.cost_usd),
                            "note": note(row),
                            "starts_at": starts_at.map(crate::time::rfc3339),
                            "created_by": row.created_by,
                        });
                        writeln!(out, "{value}")?;
                        seen.insert(row.task_id, key);
                    }
                }
                out.flush()
            }
        }
    }

    /// Everything finished: below the final lines, the summary (unless the frame's headers already
    /// show it) and what the work came to.
    fn finish(&mut self, groups: &[Group]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for group in groups {
            if matches!(self, View::Json { .. }) {
                let cost: f64 = group.rows.iter().map(|r| r.cost_usd).sum();
                let completed = group.rows.iter().filter(|r| r.status == TaskStatus::Completed).count();
                let value = serde_json::json!({
                    "finished": group.title,
                    "tasks": group.rows.len(),
                    "completed": completed,
                    "cost_usd": crate::model::round_usd(cost),
                    "max_budget_usd": group.budget_usd,
                    "message": group.budget_message,
                });
                writeln!(out, "{value}")?;
            } else {
                // On a terminal the frame's header already is the summary.
                if !matches!(self, View::Live { .. }) {
                    writeln!(out, "{}", summary(group))?;
                }
                for line in outcome(group) {
                    writeln!(out, "{line}")?;
                }
            }
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: TaskStatus) -> Row {
        Row {
            task_id: 1,
            identifier: "backend".to_owned(),
            prefix: String::new(),
            status,
            started_at: Some(1_000),
            ended_at: Some(43_100),
            ready_at: None,
            cost_usd: 0.1234,
            last_action: None,
            error: None,
            result: None,
            created_by: None,
        }
    }

    fn error(message: &str) -> Option<TaskError> {
        Some(TaskError { kind: crate::model::ErrorKind::Auth, message: message.to_owned() })
    }

    #[test]
    fn a_line_shows_state_time_cost_and_note() {
        console::set_colors_enabled(false);
        let text = line(&row(TaskStatus::Completed), 10, 0);
        assert_eq!(text, "✓ backend     completed    42.1s  $0.1234");
        let failed = Row { error: error("bad key"), ..row(TaskStatus::Failed) };
        let text = line(&failed, 7, 0);
        assert!(text.starts_with("✗ backend  failed") && text.ends_with("$0.1234  bad key"), "{text}");
    }

    #[test]
    fn the_tree_prefix_comes_first_and_the_columns_still_line_up() {
        console::set_colors_enabled(false);
        let root = Row { prefix: "└─ ".to_owned(), identifier: "design".to_owned(), ..row(TaskStatus::Completed) };
        let leaf = Row { prefix: "   ├─ ".to_owned(), ..row(TaskStatus::Completed) };
        let rows = [root, leaf];
        let width = name_width(&rows);
        assert_eq!(width, 13);
        let lines: Vec<String> = rows.iter().map(|r| line(r, width, 0)).collect();
        assert_eq!(lines[0], "└─ ✓ design      completed    42.1s  $0.1234");
        assert_eq!(lines[1], "   ├─ ✓ backend  completed    42.1s  $0.1234");
    }

    #[test]
    fn a_delayed_task_counts_down_to_its_start() {
        console::set_colors_enabled(false);
        let waiting = Row { ready_at: Some(100_000), started_at: None, ended_at: None, ..row(TaskStatus::Pending) };
        assert!(line(&waiting, 7, 20_000).ends_with("  starts in 1m 20s"), "{}", line(&waiting, 7, 20_000));
        assert_eq!(countdown(&waiting, 99_001), Some("starts in 1s".to_owned()));
        assert_eq!(countdown(&waiting, 100_000), None, "due: it waits for a slot, not for a time");
        assert_eq!(countdown(&Row { ready_at: Some(100_000), ..row(TaskStatus::Running) }, 0), None);
        // A retry's backoff says what failed.
        let retry = Row { error: error("overloaded"), ..waiting };
        assert!(
            line(&retry, 7, 95_500).ends_with("starts in 5s  retry after: overloaded"),
            "{}",
            line(&retry, 7, 95_500)
        );
        assert_eq!(remaining(45_000), "45s");
        assert_eq!(remaining(7_500_000), "2h 05m");
    }

    #[test]
    fn notes_are_one_short_line() {
        let long = "x".repeat(200);
        let running = Row { last_action: Some(format!("{long}\nmore")), ..row(TaskStatus::Running) };
        assert_eq!(note(&running).expect("note").chars().count(), 80);
        assert_eq!(note(&Row { last_action: Some("done".to_owned()), ..row(TaskStatus::Completed) }), None);
        assert_eq!(note(&Row { error: error("why\ndetails"), ..row(TaskStatus::Failed) }), Some("why".to_owned()));
    }

    #[test]
    fn the_summary_counts_by_state_and_adds_cost() {
        let group = Group {
            title: "orchestration 3 (demo)".to_owned(),
            single: false,
            rows: vec![row(TaskStatus::Completed), row(TaskStatus::Completed), row(TaskStatus::Failed)],
            ..Group::default()
        };
        assert_eq!(summary(&group), "orchestration 3 (demo): 2 completed, 1 failed, cost $0.3702");
        let budgeted = Group { budget_usd: Some(5.0), ..group };
        assert_eq!(summary(&budgeted), "orchestration 3 (demo): 2 completed, 1 failed, cost $0.37 of $5.00");
    }

    #[test]
    fn a_lone_task_ends_with_the_head_of_its_result_or_its_error() {
        let answer: String = (1..=8).map(|n| format!("line {n}\n")).collect();
        let done = Row { result: Some(answer), ..row(TaskStatus::Completed) };
        let group = Group { title: "task #1 backend".to_owned(), single: true, rows: vec![done], ..Group::default() };
        assert_eq!(
            outcome(&group),
            [
                "result:",
                "  line 1",
                "  line 2",
                "  line 3",
                "  line 4",
                "  line 5",
                "  … 3 more lines (claude-worker-inspect status #1)"
            ]
        );
        let short = Row { result: Some("all good".to_owned()), ..row(TaskStatus::Completed) };
        assert_eq!(outcome(&Group { rows: vec![short], ..group }), ["result:", "  all good"]);
        let failed = Row { error: error("Invalid API key\nFix it"), ..row(TaskStatus::Failed) };
        let group = Group { title: "task #1 backend".to_owned(), single: true, rows: vec![failed], ..Group::default() };
        assert_eq!(outcome(&group), ["error: auth: Invalid API key", "  Fix it"]);
    }

    #[test]
    fn an_orchestration_ends_with_the_errors_of_its_failed_tasks() {
        let failed = Row { error: error("Invalid API key"), ..row(TaskStatus::Failed) };
        let skipped = Row { task_id: 2, error: error("dependency backend failed"), ..row(TaskStatus::Skipped) };
        let group = Group {
            title: "orchestration 1".to_owned(),
            single: false,
            rows: vec![row(TaskStatus::Completed), failed, skipped],
            ..Group::default()
        };
        assert_eq!(outcome(&group), ["✗ backend #1 failed: auth: Invalid API key"]);
        let spent = Group { budget_message: Some("Budget exhausted: ...".to_owned()), ..group };
        assert_eq!(outcome(&spent), ["✗ backend #1 failed: auth: Invalid API key", "Budget exhausted: ..."]);
    }
}
