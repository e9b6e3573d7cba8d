//! How the inspect CLI shows things: tables (comfy-table), a task's details, an orchestration as
//! a dependency tree, and the JSON forms of the same data.

use std::fmt::Write as _;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::color;
use crate::model::{OrchestrationDetail, OrchestrationSummary, TaskListItem, round_usd};
use crate::service::TaskStatusView;
use crate::time::rfc3339;

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    super::color::style_table(&mut table);
    table
}

/// The tasks as a table; with `project`, a column says which project each is in (a listing of
/// one project's tasks leaves it out: it would repeat the same path on every line).
pub fn tasks_table(tasks: &[TaskListItem], project: bool) -> String {
    if tasks.is_empty() {
        return "no tasks".to_owned();
    }
    let mut header = vec!["id", "task", "orch", "status", "cost", "created", "last action"];
    if project {
        header.insert(3, "project");
    }
    let mut t = table(&header);
    for task in tasks {
        let mut row = vec![
            Cell::new(format!("#{}", task.task_id)),
            Cell::new(&task.task_identifier),
            Cell::new(task.orchestration_id),
            color::status_cell(task.status.as_str()),
            Cell::new(format!("${:.4}", task.cost_usd)),
            Cell::new(rfc3339(task.created_at)),
            Cell::new(task.last_action.clone().unwrap_or_default()),
        ];
        if project {
            row.insert(3, Cell::new(task.project.as_str()));
        }
        t.add_row(row);
    }
    t.to_string()
}

pub fn tasks_json(tasks: &[TaskListItem]) -> Value {
    let items: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "task_id": t.task_id,
                "task_identifier": t.task_identifier,
                "orchestration_id": t.orchestration_id,
                "project": t.project.as_str(),
                "status": t.status.as_str(),
                "created_at": rfc3339(t.created_at),
                "last_action": t.last_action,
                "cost_usd": round_usd(t.cost_usd),
            })
        })
        .collect();
    json!({ "tasks": items, "count": tasks.len() })
}

pub fn task_json(view: &TaskStatusView) -> Value {
    let t = &view.detail.task;
    let links = |links: &[crate::model::TaskLink]| -> Vec<Value> {
        links
            .iter()
            .map(|l| json!({ "task_id": l.task_id, "task_identifier": l.task_identifier, "status": l.status.as_str() }))
            .collect()
    };
    json!({
        "task_id": t.task_id,
        "task_identifier": t.task_identifier,
        "orchestration_id": t.orchestration_id,
        "project": t.project.as_str(),
        "status": t.status.as_str(),
        "attempt": t.attempt,
        "max_attempts": t.settings.max_attempts,
        "model": t.settings.model,
        "working_directory": t.settings.working_directory,
        "depends_on": links(&view.detail.depends_on),
        "dependents": links(&view.detail.dependents),
        "created_at": rfc3339(t.created_at),
        "started_at": t.started_at.map(rfc3339),
        "ended_at": t.ended_at.map(rfc3339),
        "next_attempt_at": t.ready_at.map(rfc3339),
        "result": t.result,
        "structured_result": t.structured_result,
        "error": t.error.as_ref().map(|e| json!({ "kind": e.kind.as_str(), "message": e.message })),
        "session_id": t.session_id,
        "cost_usd": round_usd(t.cost_usd),
        "usage": {
            "input_tokens": t.usage.input_tokens,
            "output_tokens": t.usage.output_tokens,
            "cache_creation_input_tokens": t.usage.cache_creation_input_tokens,
            "cache_read_input_tokens": t.usage.cache_read_input_tokens,
        },
        "num_turns": t.num_turns,
        "duration_ms": t.duration_ms,
        "last_action": t.last_action,
        "created_by": t.created_by,
        "depth": t.depth,
        "summary_log": view.logs.summary.display().to_string(),
        "detailed_log": view.logs.detailed.display().to_string(),
        "isolation": task_isolation_json(&t.worktree),
        "verify": t.settings.verify.as_ref().map(|command| json!({
            "command": command,
            "timeout_seconds": t.settings.verify_timeout_seconds,
            "attempts": t.settings.verify_attempts,
        })),
    })
}

fn task_isolation_json(w: &crate::model::TaskWorktree) -> Value {
    match &w.branch {
        None => Value::Null,
        Some(branch) => json!({
            "branch": branch,
            "worktree": w.path,
            "start_commit": w.start_commit,
            "conflicts": w.conflicts,
            "commit": w.result_commit,
            "diffstat": w.diffstat,
        }),
    }
}

fn orchestration_isolation_json(i: Option<&crate::isolation::OrchestrationIsolation>) -> Value {
    match i {
        None => Value::Null,
        Some(i) => json!({
            "branch": i.branch,
            "commit": i.integration_commit,
            "repository": i.base.repository,
            "base_ref": i.base.base_ref,
            "base_commit": i.base.base_commit,
            "integration": i.integration.as_str(),
            "merge_when_done": i.base.merge_when_done,
            "note": i.note,
        }),
    }
}

/// The isolation lines of a task: its branch, result commit and diffstat, and its worktree
/// while it exists.
fn task_isolation_text(s: &mut String, t: &crate::model::TaskRecord) {
    let w = &t.worktree;
    let Some(branch) = &w.branch else {
        if t.settings.isolation == crate::model::Isolation::Worktree {
            let _ = writeln!(s, "  isolation:   worktree (made when it starts)");
        }
        return;
    };
    let _ = writeln!(s, "  branch:      {branch}");
    if let Some(commit) = &w.result_commit {
        let _ = writeln!(
            s,
            "  commit:      {} ({})",
            crate::git::short_commit(commit),
            w.diffstat.as_deref().unwrap_or("no changes")
        );
    } else if let Some(start) = &w.start_commit {
        let _ = writeln!(s, "  started at:  {}", crate::git::short_commit(start));
    }
    if !w.conflicts.is_empty() {
        let _ = writeln!(s, "  conflicts:   {} (left by its dependencies' merge)", w.conflicts.join(", "));
    }
    if let Some(path) = &w.path {
        let _ = writeln!(s, "  worktree:    {path}");
    }
}

pub fn task_text(view: &TaskStatusView) -> String {
    let t = &view.detail.task;
    let mut s = String::new();
    let _ = writeln!(s, "task #{} {} (orchestration {})", t.task_id, t.task_identifier, t.orchestration_id);
    let _ = writeln!(
        s,
        "  status:      {} (attempt {}/{})",
        color::status(t.status.as_str()),
        t.attempt,
        t.settings.max_attempts
    );
    let _ = writeln!(s, "  model:       {}", t.settings.model);
    let _ = writeln!(s, "  directory:   {}", t.settings.working_directory);
    let _ = writeln!(s, "  project:     {}", t.project);
    if let Some(command) = &t.settings.verify {
        let _ = writeln!(
            s,
            "  verify:      {command} (timeout {} s, up to {} fixes)",
            t.settings.verify_timeout_seconds, t.settings.verify_attempts
        );
    }
    let deps: Vec<String> =
        view.detail.depends_on.iter().map(|l| format!("{} #{} ({})", l.task_identifier, l.task_id, l.status)).collect();
    if !deps.is_empty() {
        let _ = writeln!(s, "  depends on:  {}", deps.join(", "));
    }
    let _ = writeln!(s, "  created:     {}", rfc3339(t.created_at));
    if let Some(by) = t.created_by {
        let _ = writeln!(s, "  queued by:   task #{by} (from inside its run; depth {})", t.depth);
    }
    if let Some(at) = t.started_at {
        let _ = writeln!(s, "  started:     {}", rfc3339(at));
    }
    if let Some(at) = t.ended_at {
        let _ = writeln!(s, "  ended:       {}", rfc3339(at));
    }
    if let Some(at) = t.ready_at {
        let _ = writeln!(s, "  next start:  {}", rfc3339(at));
    }
    let _ = writeln!(
        s,
        "  cost:        ${:.4} ({} in / {} out tokens)",
        t.cost_usd, t.usage.input_tokens, t.usage.output_tokens
    );
    if let Some(session) = &t.session_id {
        let _ = writeln!(s, "  session:     {session}");
    }
    if let Some(action) = &t.last_action {
        let _ = writeln!(s, "  last action: {action}");
    }
    task_isolation_text(&mut s, t);
    if let Some(error) = &t.error {
        let _ = writeln!(s, "  error:       {}: {}", error.kind, error.message);
    }
    if let Some(result) = &t.result {
        let _ = writeln!(s, "  result:\n{}", indent(result, "    "));
    }
    if let Some(structured) = &t.structured_result {
        let pretty = serde_json::to_string_pretty(structured).unwrap_or_else(|_| structured.to_string());
        let _ = writeln!(s, "  structured result:\n{}", indent(&pretty, "    "));
    }
    let _ =
        writeln!(s, "  logs:        {}\n               {}", view.logs.summary.display(), view.logs.detailed.display());
    s
}

/// A task's history, one line per event.
pub fn events_text(events: &[crate::model::TaskEvent]) -> String {
    let mut s = String::from("  history:\n");
    for e in events {
        let _ = write!(s, "    {} {}", rfc3339(e.at), e.kind);
        if e.attempt > 0 {
            let _ = write!(s, " (attempt {})", e.attempt);
        }
        if let Some(detail) = &e.detail {
            let _ = write!(s, ": {detail}");
        }
        s.push('\n');
    }
    s
}

pub fn events_json(events: &[crate::model::TaskEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| json!({ "at": rfc3339(e.at), "kind": e.kind.as_str(), "attempt": e.attempt, "detail": e.detail }))
            .collect(),
    )
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}")).collect::<Vec<_>>().join("\n")
}

pub fn summary_json(s: &OrchestrationSummary) -> Value {
    let c = s.counters;
    json!({
        "orchestration_id": s.orchestration_id,
        "name": s.name,
        "project": s.project.as_str(),
        "status": s.status.as_str(),
        "created_at": rfc3339(s.created_at),
        "started_at": s.started_at.map(rfc3339),
        "ended_at": s.ended_at.map(rfc3339),
        "total_tasks": c.total,
        "completed_tasks": c.completed,
        "failed_tasks": c.failed,
        "skipped_tasks": c.skipped,
        "cancelled_tasks": c.cancelled,
        "running_tasks": c.running,
        "pending_tasks": c.pending,
        "waiting_tasks": c.waiting,
        "cost_usd": round_usd(s.cost_usd),
        "max_budget_usd": s.budget_usd,
        "budget": s.budget_usd.map(|budget| crate::budget::spend_of(s.cost_usd, budget)),
        "message": budget_message(s),
    })
}

/// An orchestration's cost, and the budget it is a spend of when it has one.
fn cost_text(s: &OrchestrationSummary) -> String {
    match s.budget_usd {
        Some(budget) => crate::budget::spend_of(s.cost_usd, budget),
        None => format!("${:.4}", s.cost_usd),
    }
}

/// Why an orchestration's budget stopped tasks, and how to raise it with this CLI.
fn budget_message(s: &OrchestrationSummary) -> Option<String> {
    crate::budget::exhausted_message(s).map(|m| crate::text::in_cli_words(&m))
}

pub fn orchestration_json(d: &OrchestrationDetail) -> Value {
    let mut value = summary_json(&d.summary);
    let tasks: Vec<Value> = d
        .tasks
        .iter()
        .map(|t| {
            json!({
                "task_id": t.task_id,
                "task_identifier": t.task_identifier,
                "status": t.status.as_str(),
                "depends_on": t.depends_on,
                "started_at": t.started_at.map(rfc3339),
                "ended_at": t.ended_at.map(rfc3339),
                "error": t.error.as_ref().map(|e| json!({ "kind": e.kind.as_str(), "message": e.message })),
                "cost_usd": round_usd(t.cost_usd),
                "last_action": t.last_action,
                "created_by": t.created_by,
            })
        })
        .collect();
    value["tasks"] = Value::Array(tasks);
    value["isolation"] = orchestration_isolation_json(d.isolation.as_deref());
    value
}

/// The orchestrations as a table; with `project`, a column says which project each is in.
pub fn orchestrations_table(list: &[OrchestrationSummary], project: bool) -> String {
    if list.is_empty() {
        return "no orchestrations".to_owned();
    }
    let mut header =
        vec!["id", "name", "status", "done", "running", "failed", "cancelled", "skipped", "cost", "created"];
    if project {
        header.insert(2, "project");
    }
    let mut t = table(&header);
    for s in list {
        let c = s.counters;
        let mut row = vec![
            Cell::new(s.orchestration_id),
            Cell::new(s.name.clone().unwrap_or_default()),
            color::status_cell(s.status.as_str()),
            Cell::new(format!("{}/{}", c.completed, c.total)),
            Cell::new(c.running),
            Cell::new(c.failed),
            Cell::new(c.cancelled),
            Cell::new(c.skipped),
            Cell::new(cost_text(s)),
            Cell::new(rfc3339(s.created_at)),
        ];
        if project {
            row.insert(2, Cell::new(s.project.as_str()));
        }
        t.add_row(row);
    }
    t.to_string()
}

/// The orchestration's tasks as a tree ([`crate::tree`]): roots first, each task under each task
/// it depends on (a task with several dependencies is drawn in full once, then referred to).
pub fn orchestration_tree(d: &OrchestrationDetail) -> String {
    let s = &d.summary;
    let c = s.counters;
    let mut out = String::new();
    let name = s.name.as_deref().map(|n| format!(" {n:?}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "orchestration {}{name}: {} — {}/{} completed, {} running, {} waiting/pending, {} failed, {} skipped, {} cancelled, {}",
        s.orchestration_id,
        color::status(s.status.as_str()),
        c.completed,
        c.total,
        c.running,
        c.waiting + c.pending,
        c.failed,
        c.skipped,
        c.cancelled,
        cost_text(s)
    );
    let _ = writeln!(out, "project {}", s.project);
    if let Some(i) = &d.isolation {
        let _ = write!(
            out,
            "isolated in worktrees of {}, from {} ({})",
            i.base.repository,
            crate::git::short_commit(&i.base.base_commit),
            i.base.base_ref
        );
        match (i.integration, &i.integration_commit) {
            (crate::isolation::IntegrationState::Done, Some(commit)) => {
                let _ = writeln!(out, "; integrated on {} at {}", i.branch, crate::git::short_commit(commit));
            }
            (crate::isolation::IntegrationState::Abandoned, _) => {
                let _ = writeln!(out, "; not integrated");
            }
            _ => {
                let _ = writeln!(out, "; integrated on {} when it completes", i.branch);
            }
        }
        if let Some(note) = &i.note {
            let _ = writeln!(out, "{note}");
        }
    }
    if let Some(message) = budget_message(s) {
        let _ = writeln!(out, "{message}");
    }
    let deps: Vec<(i64, &[i64])> = d.tasks.iter().map(|t| (t.task_id, t.depends_on.as_slice())).collect();
    for tree_line in crate::tree::layout(&deps, crate::tree::Repeats::Refer) {
        let t = &d.tasks[tree_line.index];
        let prefix = tree_line.prefix;
        if tree_line.repeat {
            let _ = writeln!(out, "{prefix}{} #{} (shown above)", t.task_identifier, t.task_id);
            continue;
        }
        let mut line = format!("{prefix}{} #{} {}", t.task_identifier, t.task_id, color::status(t.status.as_str()));
        if let Some(by) = t.created_by {
            let _ = write!(line, " (queued by #{by})");
        }
        if let (Some(start), Some(end)) = (t.started_at, t.ended_at) {
            let _ = write!(line, " in {:.1} s", (end - start) as f64 / 1000.0);
        }
        if t.cost_usd > 0.0 {
            let _ = write!(line, " ${:.4}", t.cost_usd);
        }
        if let Some(error) = &t.error {
            let _ = write!(line, " — {}: {}", error.kind, error.message);
        } else if t.status == crate::model::TaskStatus::Running
            && let Some(action) = &t.last_action
        {
            let _ = write!(line, " — {action}");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}
