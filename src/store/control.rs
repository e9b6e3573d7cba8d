//! Cancelling tasks and orchestrations (by a caller or an orchestration's deadline), and retrying
//! a task that did not complete or every such task of an orchestration. Tasks not yet running change at once; a running task is marked
//! for its owner, which stops the process and writes the final state.

use rusqlite::{Connection, OptionalExtension, params};

use super::query::{resolve_orchestration, resolve_task};
use super::{Store, StoreError, load_graph, record_event, refresh_orchestration, skip_descendants, task_key};
use crate::graph;
use crate::model::{ErrorKind, Millis, OrchestrationId, TaskId, TaskRef, TaskStatus};
use crate::project::Project;

/// What to cancel.
#[derive(Clone, Debug)]
pub enum CancelTarget {
    /// A task; a bare identifier names the newest of that name in the project given.
    Task(TaskRef, Project),
    Orchestration(OrchestrationId),
}

/// What a cancel changed.
#[derive(Clone, Debug, Default)]
pub struct CancelOutcome {
    pub orchestration_id: OrchestrationId,
    /// Tasks that are now `cancelled`.
    pub cancelled: Vec<TaskId>,
    /// Dependents that are now `skipped`.
    pub skipped: Vec<TaskId>,
    /// Running tasks whose owners were asked to stop them; each ends `cancelled`.
    pub stopping: Vec<(TaskId, String)>,
    /// The unfinished dependents of `stopping` tasks: skipped once those have stopped.
    pub skipped_when_stopped: Vec<TaskId>,
    /// Tasks that had already finished, left as they were.
    pub already_finished: Vec<(TaskId, TaskStatus)>,
    /// Set when this cancel finished the orchestration (nothing of it was left running).
    pub orchestration_finished: Option<super::OrchestrationEnd>,
}

/// What a retry changed.
#[derive(Clone, Debug)]
pub struct RetryOutcome {
    pub task_id: TaskId,
    pub status: TaskStatus,
    /// Skipped dependents that went back to `waiting`.
    pub reopened: Vec<TaskId>,
    pub orchestration_id: OrchestrationId,
    /// Every task put back in line, the retried one first, then `reopened`, with identifiers.
    pub tasks: Vec<RetriedTask>,
}

/// What a retry of a whole orchestration changed.
#[derive(Clone, Debug)]
pub struct OrchestrationRetryOutcome {
    pub orchestration_id: OrchestrationId,
    /// Every task put back in line (each failed, cancelled or skipped one), in id order, which is
    /// dependency order.
    pub tasks: Vec<RetriedTask>,
}

/// One task a retry put back in line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetriedTask {
    pub task_id: TaskId,
    pub task_identifier: String,
    /// `failed`, `cancelled` or `skipped`.
    pub was: TaskStatus,
    /// `pending` (it may start now) or `waiting` (for a dependency).
    pub status: TaskStatus,
}

impl Store {
    /// Cancels a task (and skips its dependents) or a whole orchestration.
    pub fn cancel(&mut self, target: &CancelTarget, reason: &str, now: Millis) -> Result<CancelOutcome, StoreError> {
        self.write(|tx| match target {
            CancelTarget::Task(task, scope) => {
                let task_id = resolve_task(tx, task, scope)?;
                let orchestration_id = task_key(tx, task_id)?.orchestration_id;
                let mut outcome = CancelOutcome { orchestration_id, ..CancelOutcome::default() };
                cancel_one(tx, task_id, &ErrorKind::Cancelled, reason, now, true, &mut outcome)?;
                outcome.orchestration_finished = refresh_orchestration(tx, orchestration_id, now)?;
                Ok(outcome)
            }
            CancelTarget::Orchestration(id) => {
                let id = resolve_orchestration(tx, *id)?;
                cancel_orchestration(tx, id, &ErrorKind::Cancelled, reason, now)
            }
        })
    }

    /// Cancels the unfinished tasks of every orchestration past its deadline.
    pub fn expire_orchestrations(&mut self, now: Millis) -> Result<Vec<CancelOutcome>, StoreError> {
        self.write(|tx| {
            let expired: Vec<OrchestrationId> = tx
                .prepare_cached(
                    "SELECT orchestration_id FROM orchestrations
                     WHERE merged_into IS NULL AND status IN ('pending', 'running') AND cancel_requested = 0 AND deadline_at <= ?1
                       AND NOT EXISTS (SELECT 1 FROM usage_limit WHERE paused_until IS NOT NULL)",
                )?
                .query_map([now], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            expired
                .into_iter()
                .map(|id| {
                    cancel_orchestration(
                        tx,
                        id,
                        &ErrorKind::OrchestrationTimeout,
                        "the orchestration ran past ORCHESTRATION_TIMEOUT",
                        now,
                    )
                })
                .collect()
        })
    }

    /// Puts a failed or cancelled task back in line with fresh attempts, and reopens the
    /// dependents that were skipped because of it.
    pub fn retry(&mut self, task: &TaskRef, scope: &Project, now: Millis) -> Result<RetryOutcome, StoreError> {
        self.write(|tx| {
            let task_id = resolve_task(tx, task, scope)?;
            let key = task_key(tx, task_id)?;
            let graph = load_graph(tx, key.orchestration_id)?;
            let status = graph.status(task_id).unwrap_or(TaskStatus::Failed);
            match status {
                TaskStatus::Failed | TaskStatus::Cancelled => {}
                TaskStatus::Skipped => {
                    return Err(StoreError::Refused(format!(
                        "task {} (#{task_id}) was skipped because a dependency did not complete: retry that \
                         dependency instead (get_status shows which), and this task reopens with it",
                        key.identifier
                    )));
                }
                other => {
                    return Err(StoreError::Refused(format!(
                        "task {} (#{task_id}) is {other}: only a failed or cancelled task can be retried",
                        key.identifier
                    )));
                }
            }
            let deps: Vec<(String, TaskStatus)> = tx
                .prepare_cached(
                    "SELECT t.task_identifier, t.status FROM task_dependencies d JOIN tasks t ON t.task_id = d.depends_on
                     WHERE d.task_id = ?1",
                )?
                .query_map([task_id], |row| {
                    let status: String = row.get(1)?;
                    Ok((row.get(0)?, TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed)))
                })?
                .collect::<Result<_, _>>()?;
            let new_status = match graph::initial_state(deps.iter().map(|(i, s)| (i.as_str(), *s))) {
                graph::InitialState::Pending => TaskStatus::Pending,
                graph::InitialState::Waiting => TaskStatus::Waiting,
                graph::InitialState::Skipped { dependency, dependency_status } => {
                    return Err(StoreError::Refused(format!(
                        "task {} cannot run: its dependency {dependency} is {dependency_status}; retry that first",
                        key.identifier
                    )));
                }
            };
            super::budgets::refuse_retry_if_spent(tx, key.orchestration_id)?;
            reopen(tx, task_id, new_status)?;
            record_event(tx, &key, now, "retried", 0, None, Some(&format!("by request; now {new_status}")))?;
            let reopened = graph.reopened_by_retry(task_id);
            let mut tasks = vec![RetriedTask {
                task_id,
                task_identifier: key.identifier.clone(),
                was: status,
                status: new_status,
            }];
            for &dependent in &reopened {
                reopen(tx, dependent, TaskStatus::Waiting)?;
                let dependent_key = task_key(tx, dependent)?;
                tasks.push(RetriedTask {
                    task_id: dependent,
                    task_identifier: dependent_key.identifier.clone(),
                    was: TaskStatus::Skipped,
                    status: TaskStatus::Waiting,
                });
                record_event(
                    tx,
                    &dependent_key,
                    now,
                    "reopened",
                    0,
                    None,
                    Some(&format!("dependency {} (#{task_id}) was retried", key.identifier)),
                )?;
            }
            restart_orchestration(tx, key.orchestration_id, now)?;
            Ok(RetryOutcome { task_id, status: new_status, reopened, orchestration_id: key.orchestration_id, tasks })
        })
    }

    /// Puts every failed, cancelled and skipped task of an orchestration back in line with fresh
    /// attempts, each `pending` or `waiting` as its dependencies say ([`graph::Graph::retry_all`]),
    /// and gives the orchestration a fresh deadline. Completed tasks, and those not finished yet,
    /// are left alone. Refused when there is nothing to retry.
    pub fn retry_orchestration(
        &mut self,
        id: OrchestrationId,
        now: Millis,
    ) -> Result<OrchestrationRetryOutcome, StoreError> {
        self.write(|tx| {
            let orchestration_id = resolve_orchestration(tx, id)?;
            let plan = load_graph(tx, orchestration_id)?.retry_all();
            if plan.is_empty() {
                let status: String = tx
                    .prepare_cached("SELECT status FROM orchestrations WHERE orchestration_id = ?1")?
                    .query_row([orchestration_id], |row| row.get(0))?;
                return Err(StoreError::Refused(format!(
                    "orchestration {orchestration_id} has nothing to retry: none of its tasks failed, was cancelled \
                     or was skipped (it is {status})"
                )));
            }
            super::budgets::refuse_retry_if_spent(tx, orchestration_id)?;
            let mut tasks = Vec::with_capacity(plan.len());
            for step in plan {
                let why = if step.was == TaskStatus::Skipped {
                    format!("orchestration {orchestration_id} was retried")
                } else {
                    format!("by request, with orchestration {orchestration_id}")
                };
                tasks.push(reopen_step(tx, &step, &why, now)?);
            }
            restart_orchestration(tx, orchestration_id, now)?;
            Ok(OrchestrationRetryOutcome { orchestration_id, tasks })
        })
    }
}

/// Clears an orchestration's cancel and deadline after a retry put tasks back in line: the
/// refresh starts a fresh deadline (ORCHESTRATION_TIMEOUT) from now.
pub(super) fn restart_orchestration(
    tx: &Connection,
    orchestration_id: OrchestrationId,
    now: Millis,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE orchestrations SET cancel_requested = 0, deadline_at = NULL WHERE orchestration_id = ?1",
    )?
    .execute([orchestration_id])?;
    refresh_orchestration(tx, orchestration_id, now)?;
    Ok(())
}

/// Reopens one task of a plan (a retry or a raised budget) and records why in its history:
/// `reopened` for a skipped task, `retried` for one that failed or was cancelled.
pub(super) fn reopen_step(
    tx: &Connection,
    step: &crate::graph::Reopening,
    why: &str,
    now: Millis,
) -> Result<RetriedTask, StoreError> {
    reopen(tx, step.task_id, step.status)?;
    let key = task_key(tx, step.task_id)?;
    let kind = if step.was == TaskStatus::Skipped { "reopened" } else { "retried" };
    record_event(tx, &key, now, kind, 0, None, Some(&format!("{why}; now {}", step.status)))?;
    Ok(RetriedTask { task_id: step.task_id, task_identifier: key.identifier, was: step.was, status: step.status })
}

/// Resets a finished task to `status` with all its attempts available again.
pub(super) fn reopen(tx: &Connection, task_id: TaskId, status: TaskStatus) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE tasks SET status = ?2, attempt = 0, ended_at = NULL, ready_at = NULL, error_kind = NULL,
             error_message = NULL, result = NULL, cancel_requested = 0, cancel_kind = NULL, cancel_reason = NULL
         WHERE task_id = ?1",
    )?
    .execute(params![task_id, status.as_str()])?;
    Ok(())
}

fn cancel_orchestration(
    tx: &Connection,
    id: OrchestrationId,
    kind: &ErrorKind,
    reason: &str,
    now: Millis,
) -> Result<CancelOutcome, StoreError> {
    let mut outcome = CancelOutcome { orchestration_id: id, ..CancelOutcome::default() };
    let unfinished: Vec<TaskId> = tx
        .prepare_cached(
            "SELECT task_id FROM tasks WHERE orchestration_id = ?1 AND status IN ('waiting', 'pending', 'running')
             ORDER BY task_id",
        )?
        .query_map([id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if !unfinished.is_empty() {
        tx.prepare_cached("UPDATE orchestrations SET cancel_requested = 1 WHERE orchestration_id = ?1")?
            .execute([id])?;
    }
    for task_id in unfinished {
        // Every unfinished task is cancelled, so none needs skipping.
        cancel_one(tx, task_id, kind, reason, now, false, &mut outcome)?;
    }
    outcome.orchestration_finished = refresh_orchestration(tx, id, now)?;
    Ok(outcome)
}

fn cancel_one(
    tx: &Connection,
    task_id: TaskId,
    kind: &ErrorKind,
    reason: &str,
    now: Millis,
    skip_dependents: bool,
    outcome: &mut CancelOutcome,
) -> Result<(), StoreError> {
    let key = task_key(tx, task_id)?;
    let (status, attempt, owner): (String, u32, Option<String>) = tx
        .prepare_cached("SELECT status, attempt, owner FROM tasks WHERE task_id = ?1")?
        .query_row([task_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    let status = TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed);
    match status {
        TaskStatus::Waiting | TaskStatus::Pending => {
            tx.prepare_cached(
                "UPDATE tasks SET status = 'cancelled', ended_at = ?2, ready_at = NULL, error_kind = ?3, error_message = ?4
                 WHERE task_id = ?1",
            )?
            .execute(params![task_id, now, kind.as_str(), reason])?;
            record_event(tx, &key, now, "cancelled", attempt, None, Some(&format!("{kind}: {reason}")))?;
            outcome.cancelled.push(task_id);
            if !skip_dependents {
                return Ok(());
            }
            let graph = load_graph(tx, key.orchestration_id)?;
            for skipped in skip_descendants(tx, &graph, &key, TaskStatus::Cancelled, now)? {
                if !outcome.skipped.contains(&skipped) {
                    outcome.skipped.push(skipped);
                }
            }
        }
        TaskStatus::Running => {
            let first: Option<i64> = tx
                .prepare_cached(
                    "UPDATE tasks SET cancel_requested = 1, cancel_kind = ?2, cancel_reason = ?3
                     WHERE task_id = ?1 AND cancel_requested = 0 RETURNING task_id",
                )?
                .query_row(params![task_id, kind.as_str(), reason], |row| row.get(0))
                .optional()?;
            if first.is_some() {
                record_event(tx, &key, now, "cancel_requested", attempt, None, Some(&format!("{kind}: {reason}")))?;
            }
            outcome.stopping.push((task_id, owner.unwrap_or_default()));
            if skip_dependents {
                let graph = load_graph(tx, key.orchestration_id)?;
                outcome.skipped_when_stopped.extend(graph.unfinished_descendants(task_id));
            }
        }
        finished => outcome.already_finished.push((task_id, finished)),
    }
    Ok(())
}
