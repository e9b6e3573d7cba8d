//! Bookkeeping for the inspect CLI: what tasks spent (`cost`), the health of the database file
//! (`doctor`), and deleting old finished work (`prune`).
//!
//! Prune deletes whole orchestrations only: one whose every task finished (completed, failed,
//! cancelled or skipped) before the cutoff goes with its tasks, their events and dependency edges,
//! and the rows of orchestrations merged into it. Dependencies never cross orchestrations (a
//! dependency on another orchestration's task merges the two), so no kept task ever loses a
//! dependency or the history of one; an old finished task of an orchestration that still has
//! newer or unfinished tasks is kept with it, and counted as kept.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::query::resolve_orchestration;
use super::{BUSY_TIMEOUT, SCHEMA_VERSION, Store, StoreError};
use crate::model::{Millis, OrchestrationId, TaskId, TaskStatus, Usage};

/// What one task spent, with what the cost report groups it by.
#[derive(Clone, Debug)]
pub struct CostRow {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub orchestration_id: OrchestrationId,
    pub orchestration_name: Option<String>,
    pub model: String,
    pub status: TaskStatus,
    /// When it spent: its end, else its start.
    pub at: Millis,
    pub cost_usd: f64,
    pub usage: Usage,
}

/// A task that is running, and who claimed it.
#[derive(Clone, Debug)]
pub struct RunningClaim {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub owner: Option<String>,
    pub lease_expires_at: Option<Millis>,
}

/// What `doctor` learns from the database file, without changing it.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    pub journal_mode: String,
    /// `PRAGMA user_version`.
    pub schema_version: i64,
    /// The highest version this binary knows.
    pub supported_version: i64,
    /// Whether the check was `integrity_check` (else `quick_check`).
    pub full_check: bool,
    /// The check's lines: `["ok"]` for a sound file.
    pub check: Vec<String>,
    /// Tasks by status (none when the schema is not there yet).
    pub task_counts: Vec<(String, u64)>,
    pub orchestrations: u64,
    pub running: Vec<RunningClaim>,
}

/// A task that prune deleted (or would delete).
#[derive(Clone, Debug)]
pub struct PrunedTask {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub orchestration_id: OrchestrationId,
    pub status: TaskStatus,
    pub ended_at: Option<Millis>,
    /// With isolation: its orchestration's repository, its worktree while it exists, its branch.
    pub repository: Option<String>,
    pub worktree_path: Option<String>,
    pub branch: Option<String>,
}

/// What prune deleted (or, on a dry run, would delete) from the database.
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    /// Orchestrations deleted, including those merged into them.
    pub orchestrations: Vec<OrchestrationId>,
    pub tasks: Vec<PrunedTask>,
    pub events: u64,
    pub dependencies: u64,
    /// Finished tasks that ended before the cutoff but were kept: their orchestration still has
    /// newer or unfinished tasks.
    pub kept_finished: u64,
    /// The pruned orchestrations with isolated tasks: `(repository, label)`, whose branches go too.
    pub repositories: Vec<(String, String)>,
}

const FINISHED: &str = "('completed', 'failed', 'cancelled', 'skipped')";

impl Store {
    /// What every task that spent anything (or ever started) cost, ended or started at `since`
    /// or later, of one orchestration (following merges) or of all.
    pub fn cost_rows(
        &mut self,
        since: Option<Millis>,
        orchestration: Option<OrchestrationId>,
    ) -> Result<Vec<CostRow>, StoreError> {
        self.read(|tx| {
            let orchestration = orchestration.map(|id| resolve_orchestration(tx, id)).transpose()?;
            let mut stmt = tx.prepare_cached(
                "SELECT t.task_id, t.task_identifier, t.orchestration_id, o.name, t.model, t.status,
                        coalesce(t.ended_at, t.started_at, t.created_at) AS at, t.cost_usd, t.input_tokens,
                        t.output_tokens, t.cache_creation_input_tokens, t.cache_read_input_tokens
                 FROM tasks t JOIN orchestrations o ON o.orchestration_id = t.orchestration_id
                 WHERE (t.started_at IS NOT NULL OR t.cost_usd > 0 OR t.input_tokens > 0 OR t.output_tokens > 0)
                   AND (?1 IS NULL OR coalesce(t.ended_at, t.started_at, t.created_at) >= ?1)
                   AND (?2 IS NULL OR t.orchestration_id = ?2)
                 ORDER BY t.task_id",
            )?;
            let tokens = |row: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<u64> {
                Ok(row.get::<_, i64>(i)?.try_into().unwrap_or(0))
            };
            let rows = stmt.query_map(params![since, orchestration], |row| {
                let status: String = row.get(5)?;
                Ok(CostRow {
                    task_id: row.get(0)?,
                    task_identifier: row.get(1)?,
                    orchestration_id: row.get(2)?,
                    orchestration_name: row.get(3)?,
                    model: row.get(4)?,
                    status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
                    at: row.get(6)?,
                    cost_usd: row.get(7)?,
                    usage: Usage {
                        input_tokens: tokens(row, 8)?,
                        output_tokens: tokens(row, 9)?,
                        cache_creation_input_tokens: tokens(row, 10)?,
                        cache_read_input_tokens: tokens(row, 11)?,
                    },
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Deletes the orchestrations whose every task finished before `cutoff`, with their tasks,
    /// events and edges, in one transaction; with `dry_run`, only reports what it would delete.
    /// The caller removes the tasks' log files once this returned.
    pub fn prune(&mut self, cutoff: Millis, dry_run: bool) -> Result<PruneReport, StoreError> {
        if dry_run { self.read(|tx| prune_in(tx, cutoff, false)) } else { self.write(|tx| prune_in(tx, cutoff, true)) }
    }
}

fn prune_in(tx: &Connection, cutoff: Millis, delete: bool) -> Result<PruneReport, StoreError> {
    // Survivors (not merged) whose every task finished before the cutoff, and which no task of
    // another orchestration depends on (none can, as merges keep edges inside one; checked anyway),
    // except the one holding the newest ids, so that no id is ever given to another task.
    let survivors: Vec<OrchestrationId> = tx
        .prepare_cached(&format!(
            "SELECT o.orchestration_id FROM orchestrations o
             WHERE o.merged_into IS NULL
               AND (EXISTS (SELECT 1 FROM tasks t WHERE t.orchestration_id = o.orchestration_id) OR o.created_at < ?1)
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.orchestration_id = o.orchestration_id
                   AND (t.status NOT IN {FINISHED} OR t.ended_at IS NULL OR t.ended_at >= ?1))
               AND NOT EXISTS (SELECT 1 FROM task_dependencies d
                   JOIN tasks dep ON dep.task_id = d.depends_on JOIN tasks t ON t.task_id = d.task_id
                   WHERE dep.orchestration_id = o.orchestration_id AND t.orchestration_id <> o.orchestration_id)
               -- The newest task and orchestration stay: SQLite would hand their ids out again.
               AND o.orchestration_id IS NOT (SELECT orchestration_id FROM tasks ORDER BY task_id DESC LIMIT 1)
               AND NOT EXISTS (SELECT 1 FROM orchestrations m
                   WHERE m.orchestration_id = (SELECT max(orchestration_id) FROM orchestrations)
                     AND (m.orchestration_id = o.orchestration_id OR m.merged_into = o.orchestration_id))
             ORDER BY o.orchestration_id"
        ))?
        .query_map([cutoff], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    // With the orchestrations merged into them (whose rows only point at their survivor), in an
    // order where each comes after every orchestration merged into it.
    let mut order: Vec<OrchestrationId> = Vec::new();
    let mut merged = tx.prepare_cached("SELECT orchestration_id FROM orchestrations WHERE merged_into = ?1")?;
    let mut queue: std::collections::VecDeque<OrchestrationId> = survivors.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        order.push(id);
        for member in merged.query_map([id], |row| row.get::<_, OrchestrationId>(0))? {
            queue.push_back(member?);
        }
    }
    let mut report = PruneReport::default();
    let mut tasks_of = tx.prepare_cached(
        "SELECT t.task_id, t.task_identifier, t.orchestration_id, t.status, t.ended_at, o.repository, t.worktree_path,
                t.branch
         FROM tasks t JOIN orchestrations o ON o.orchestration_id = t.orchestration_id
         WHERE t.orchestration_id = ?1 ORDER BY t.task_id",
    )?;
    let mut isolated = tx.prepare_cached(
        "SELECT orchestration_id, name, repository, branch_label FROM orchestrations
         WHERE repository IS NOT NULL AND (orchestration_id = ?1 OR merged_into = ?1)",
    )?;
    for &id in &survivors {
        for row in isolated.query_map([id], |row| {
            Ok((
                row.get::<_, OrchestrationId>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })? {
            let (orchestration_id, name, repository, label) = row?;
            report
                .repositories
                .push((repository, crate::isolation::recorded_label(orchestration_id, name.as_deref(), label)));
        }
        let rows = tasks_of.query_map([id], |row| {
            let status: String = row.get(3)?;
            Ok(PrunedTask {
                task_id: row.get(0)?,
                task_identifier: row.get(1)?,
                orchestration_id: row.get(2)?,
                status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
                ended_at: row.get(4)?,
                repository: row.get(5)?,
                worktree_path: row.get(6)?,
                branch: row.get(7)?,
            })
        })?;
        for task in rows {
            report.tasks.push(task?);
        }
    }
    let mut events = tx.prepare_cached("SELECT count(*) FROM task_events WHERE task_id = ?1")?;
    let mut edges = tx.prepare_cached("SELECT count(*) FROM task_dependencies WHERE task_id = ?1")?;
    for task in &report.tasks {
        report.events += events.query_row([task.task_id], |row| row.get::<_, u64>(0))?;
        // Every edge has both ends in the orchestration: counting by the dependent counts each once.
        report.dependencies += edges.query_row([task.task_id], |row| row.get::<_, u64>(0))?;
    }
    let doomed: std::collections::HashSet<OrchestrationId> = order.iter().copied().collect();
    let mut kept = tx.prepare_cached(&format!(
        "SELECT orchestration_id, count(*) FROM tasks WHERE status IN {FINISHED} AND ended_at < ?1
         GROUP BY orchestration_id"
    ))?;
    for row in kept.query_map([cutoff], |row| Ok((row.get::<_, OrchestrationId>(0)?, row.get::<_, u64>(1)?)))? {
        let (id, n) = row?;
        if !doomed.contains(&id) {
            report.kept_finished += n;
        }
    }
    if delete {
        let mut delete_events = tx.prepare_cached("DELETE FROM task_events WHERE task_id = ?1")?;
        let mut delete_edges =
            tx.prepare_cached("DELETE FROM task_dependencies WHERE task_id = ?1 OR depends_on = ?1")?;
        let mut delete_task = tx.prepare_cached("DELETE FROM tasks WHERE task_id = ?1")?;
        for task in &report.tasks {
            delete_events.execute([task.task_id])?;
            delete_edges.execute([task.task_id])?;
            delete_task.execute([task.task_id])?;
        }
        let mut delete_orchestration = tx.prepare_cached("DELETE FROM orchestrations WHERE orchestration_id = ?1")?;
        for &id in order.iter().rev() {
            delete_orchestration.execute([id])?;
        }
    }
    order.sort_unstable();
    report.orchestrations = order;
    Ok(report)
}

impl Store {
    /// Looks at the database file without changing it: no migration, no change of journal mode.
    /// `full` runs `PRAGMA integrity_check` (reads every page) instead of `quick_check`.
    pub fn diagnose(path: &Path, full: bool) -> Result<Diagnosis, StoreError> {
        diagnose(path, full)
    }
}

fn diagnose(path: &Path, full: bool) -> Result<Diagnosis, StoreError> {
    let open_err = |error: rusqlite::Error| StoreError::Open { path: path.to_owned(), error };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // The first read is where a file that is not a database says so.
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(open_err)?;
    let journal_mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    let pragma = if full { "integrity_check" } else { "quick_check" };
    let check: Vec<String> =
        conn.prepare(&format!("PRAGMA {pragma}(20)"))?.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
    let has_tasks: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'tasks')",
        [],
        |row| row.get(0),
    )?;
    let mut diagnosis = Diagnosis {
        journal_mode,
        schema_version,
        supported_version: i64::try_from(SCHEMA_VERSION).unwrap_or(i64::MAX),
        full_check: full,
        check,
        task_counts: Vec::new(),
        orchestrations: 0,
        running: Vec::new(),
    };
    if has_tasks && schema_version >= 1 {
        diagnosis.task_counts = conn
            .prepare("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        diagnosis.orchestrations =
            conn.query_row("SELECT count(*) FROM orchestrations WHERE merged_into IS NULL", [], |row| row.get(0))?;
        diagnosis.running = conn
            .prepare(
                "SELECT task_id, task_identifier, owner, lease_expires_at FROM tasks WHERE status = 'running'
                 ORDER BY task_id",
            )?
            .query_map([], |row| {
                Ok(RunningClaim {
                    task_id: row.get(0)?,
                    task_identifier: row.get(1)?,
                    owner: row.get(2)?,
                    lease_expires_at: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(diagnosis)
}
