//! Isolation's rows: an orchestration's base (set when its first isolated task is stored), what
//! a task's worktree was made from and what it left (fenced writes of its attempt), and the
//! integration of an orchestration once it ended.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
use crate::isolation::{Base, IntegrationState, NewBase, OrchestrationIsolation, choose_label, recorded_label};
use crate::model::{OrchestrationId, OrchestrationStatus, TaskId};

/// The condition of an ended orchestration whose isolated tasks' results wait to be integrated,
/// written once for every statement that asks (the partial index
/// `orchestrations_integration_pending` serves it). A macro, so that `concat!` makes whole
/// statements of it at compile time.
macro_rules! integration_due {
    () => {
        "integration_state = 'pending' AND status IN ('completed', 'failed', 'cancelled') AND merged_into IS NULL"
    };
}
pub(super) use integration_due;

/// What the executor needs to make a task's worktree.
#[derive(Clone, Debug)]
pub struct IsolationPlan {
    pub orchestration_id: OrchestrationId,
    /// `<id>-<name>` or `<id>`: the orchestration's part of branch names.
    pub label: String,
    pub repository: String,
    pub base_commit: String,
    /// In the order of their ids.
    pub dependencies: Vec<DependencyCommit>,
}

/// A dependency of an isolated task and the commit it left (`None`: it ran without isolation).
#[derive(Clone, Debug)]
pub struct DependencyCommit {
    pub task_id: TaskId,
    pub identifier: String,
    pub result_commit: Option<String>,
}

/// An ended orchestration whose integration is due.
#[derive(Clone, Debug)]
pub struct IntegrationWork {
    pub orchestration_id: OrchestrationId,
    pub status: OrchestrationStatus,
    pub label: String,
    pub base: Base,
    /// Its completed isolated tasks that no task depends on, with their result commits.
    pub sinks: Vec<DependencyCommit>,
    /// The worktrees of its completed tasks and those made ahead for tasks that never started,
    /// to remove.
    pub completed_worktrees: Vec<(TaskId, String)>,
    /// The settings of its first sink: what a task added to resolve the sinks' conflicts runs
    /// with (model, permission mode, tools, limits).
    pub sink_settings: Option<crate::model::TaskSettings>,
}

/// Records the base of a batch's isolated tasks on their orchestration, if it has none; one
/// that has a base in another repository is refused (an orchestration merges its tasks' results
/// into one repository).
pub(super) fn set_base_in(tx: &Connection, orchestration_id: OrchestrationId, new: &NewBase) -> Result<(), StoreError> {
    let base = &new.base;
    let (existing, name): (Option<String>, Option<String>) = tx
        .prepare_cached("SELECT repository, name FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([orchestration_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    match existing {
        Some(repository) if repository != base.repository => Err(StoreError::Refused(format!(
            "orchestration {orchestration_id} runs its isolated tasks in the repository {repository}, not in {}: \
             queue these tasks in an orchestration of their own",
            base.repository
        ))),
        Some(_) => Ok(()),
        None => {
            let label = choose_label(orchestration_id, name.as_deref(), &new.labels_in_use);
            tx.prepare_cached(
                "UPDATE orchestrations SET repository = ?2, base_ref = ?3, base_commit = ?4, merge_when_done = ?5,
                     integration_state = 'pending', branch_label = ?6
                 WHERE orchestration_id = ?1",
            )?
            .execute(params![
                orchestration_id,
                base.repository,
                base.base_ref,
                base.base_commit,
                base.merge_when_done,
                label
            ])?;
            Ok(())
        }
    }
}

/// An orchestration's isolation, if it has isolated tasks.
pub(super) fn orchestration_isolation(
    tx: &Connection,
    orchestration_id: OrchestrationId,
) -> Result<Option<OrchestrationIsolation>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT name, repository, base_ref, base_commit, merge_when_done, integration_state, integration_commit,
                    integration_note, branch_label
             FROM orchestrations WHERE orchestration_id = ?1 AND repository IS NOT NULL",
        )?
        .query_row([orchestration_id], |row| {
            let name: Option<String> = row.get(0)?;
            let state: Option<String> = row.get(5)?;
            Ok(OrchestrationIsolation {
                base: Base {
                    repository: row.get(1)?,
                    base_ref: row.get::<_, Option<String>>(2)?.unwrap_or_else(|| "HEAD".to_owned()),
                    base_commit: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    merge_when_done: row.get(4)?,
                },
                integration: state.as_deref().and_then(IntegrationState::parse).unwrap_or(IntegrationState::Pending),
                branch: crate::isolation::integration_branch(&recorded_label(
                    orchestration_id,
                    name.as_deref(),
                    row.get(8)?,
                )),
                integration_commit: row.get(6)?,
                note: row.get(7)?,
            })
        })
        .optional()?)
}

impl Store {
    /// What an isolated task's worktree is made from: its orchestration's repository and base,
    /// and its dependencies' result commits (a read of the task's own edges only).
    pub fn isolation_plan(&mut self, task_id: TaskId) -> Result<IsolationPlan, StoreError> {
        self.read(|tx| {
            let (orchestration_id, name, repository, base_commit, stored_label): (
                OrchestrationId,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            ) = tx
                .prepare_cached(
                    "SELECT o.orchestration_id, o.name, o.repository, o.base_commit, o.branch_label
                     FROM tasks t JOIN orchestrations o ON o.orchestration_id = t.orchestration_id
                     WHERE t.task_id = ?1",
                )?
                .query_row([task_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no task #{task_id}")))?;
            let (Some(repository), Some(base_commit)) = (repository, base_commit) else {
                return Err(StoreError::Refused(format!(
                    "orchestration {orchestration_id} has no base commit for its isolated tasks: queue the task again"
                )));
            };
            let mut stmt = tx.prepare_cached(
                "SELECT t.task_id, t.task_identifier, t.result_commit
                 FROM task_dependencies d JOIN tasks t ON t.task_id = d.depends_on
                 WHERE d.task_id = ?1 ORDER BY t.task_id",
            )?;
            let dependencies = stmt
                .query_map([task_id], |row| {
                    Ok(DependencyCommit { task_id: row.get(0)?, identifier: row.get(1)?, result_commit: row.get(2)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(IsolationPlan {
                orchestration_id,
                label: recorded_label(orchestration_id, name.as_deref(), stored_label),
                repository,
                base_commit,
                dependencies,
            })
        })
    }

    /// Records the worktree an attempt made for its task (fenced: false if the claim is stale).
    pub fn record_worktree(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        worktree: &crate::isolation::TaskWorktree,
    ) -> Result<bool, StoreError> {
        let conflicts = worktree.conflicts.join("\n");
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE tasks SET worktree_path = ?4, branch = ?5, start_commit = ?6, merge_conflicts = ?7
                     WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'",
                )?
                .execute(params![
                    task_id,
                    owner,
                    fence,
                    worktree.path,
                    worktree.branch,
                    worktree.start_commit,
                    (!conflicts.is_empty()).then_some(conflicts.as_str())
                ])?;
            Ok(changed == 1)
        })
    }

    /// Records the commit a successful attempt left on its branch, and its diffstat (fenced).
    pub fn record_result_commit(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        commit: &str,
        diffstat: &str,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE tasks SET result_commit = ?4, diffstat = ?5
                     WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'",
                )?
                .execute(params![task_id, owner, fence, commit, diffstat])?;
            Ok(changed == 1)
        })
    }

    /// The ended orchestrations whose integration is due (a partial index keeps this read the
    /// size of what is due, not of the database).
    pub fn integrations_due(&mut self) -> Result<Vec<OrchestrationId>, StoreError> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached(concat!("SELECT orchestration_id FROM orchestrations WHERE ", integration_due!()))?;
            let ids = stmt.query_map([], |row| row.get(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
    }

    /// What the integration of an ended orchestration has to do; `None` when it is not due (any
    /// more: another process did it, or the orchestration was reopened).
    pub fn integration_work(
        &mut self,
        orchestration_id: OrchestrationId,
    ) -> Result<Option<IntegrationWork>, StoreError> {
        self.read(|tx| {
            let row: Option<(String, Option<String>, Option<String>)> = tx
                .prepare_cached(concat!(
                    "SELECT status, name, branch_label FROM orchestrations WHERE orchestration_id = ?1 AND ",
                    integration_due!()
                ))?
                .query_row([orchestration_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            let Some((status, name, stored_label)) = row else { return Ok(None) };
            let Some(isolation) = orchestration_isolation(tx, orchestration_id)? else { return Ok(None) };
            let mut stmt = tx.prepare_cached(
                "SELECT t.task_id, t.task_identifier, t.result_commit FROM tasks t
                 WHERE t.orchestration_id = ?1 AND t.status = 'completed' AND t.isolation = 'worktree'
                   AND NOT EXISTS (SELECT 1 FROM task_dependencies d WHERE d.depends_on = t.task_id)
                 ORDER BY t.task_id",
            )?;
            let sinks = stmt
                .query_map([orchestration_id], |row| {
                    Ok(DependencyCommit { task_id: row.get(0)?, identifier: row.get(1)?, result_commit: row.get(2)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            // A worktree made ahead for a task that never started (`branch` still NULL: it was
            // cancelled or skipped) holds nothing to look at either.
            let mut stmt = tx.prepare_cached(
                "SELECT task_id, worktree_path FROM tasks
                 WHERE orchestration_id = ?1 AND worktree_path IS NOT NULL AND (status = 'completed' OR branch IS NULL)
                 ORDER BY task_id",
            )?;
            let completed_worktrees =
                stmt.query_map([orchestration_id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
            let sink_settings = match sinks.first() {
                Some(sink) => Some(super::query::read_task(tx, sink.task_id)?.settings),
                None => None,
            };
            Ok(Some(IntegrationWork {
                orchestration_id,
                status: OrchestrationStatus::parse(&status).unwrap_or(OrchestrationStatus::Failed),
                label: recorded_label(orchestration_id, name.as_deref(), stored_label),
                base: isolation.base,
                sinks,
                completed_worktrees,
                sink_settings,
            }))
        })
    }

    /// Ends an orchestration's integration, if it is still due: `done` with the integration
    /// commit, or `abandoned`; `note` says what else happened (merged into the checkout, or why
    /// not). False when it was not due any more.
    pub fn finish_integration(
        &mut self,
        orchestration_id: OrchestrationId,
        state: IntegrationState,
        commit: Option<&str>,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(concat!(
                    "UPDATE orchestrations SET integration_state = ?2, integration_commit = coalesce(?3, integration_commit),
                         integration_note = ?4
                     WHERE orchestration_id = ?1 AND ",
                    integration_due!()
                ))?
                .execute(params![orchestration_id, state.as_str(), commit, note])?;
            Ok(changed == 1)
        })
    }

    /// Forgets a removed worktree (its branch stays recorded).
    pub fn clear_worktree(&mut self, task_id: TaskId) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE tasks SET worktree_path = NULL WHERE task_id = ?1")?.execute([task_id])?;
            Ok(())
        })
    }

    /// An orchestration's isolation (its base and integration), if it has isolated tasks.
    pub fn isolation_of(
        &mut self,
        orchestration_id: OrchestrationId,
    ) -> Result<Option<OrchestrationIsolation>, StoreError> {
        self.read(|tx| orchestration_isolation(tx, orchestration_id))
    }
}
