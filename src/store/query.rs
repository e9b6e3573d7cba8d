//! Reads: one task with its edges, one orchestration with its tasks, filtered lists, a task's
//! history, the marks a resource watcher compares, and the next moment the executor has
//! something to do. Each read is one snapshot.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::create::follow_merges;
use super::isolation::integration_due;
use super::projects::{task_in_project, unknown_task};
use super::{Store, StoreError, counters};
use crate::model::{
    Counters, ErrorKind, Isolation, Millis, OnConflict, OrchestrationDetail, OrchestrationId, OrchestrationStatus,
    OrchestrationSummary, OrchestrationTask, TaskDetail, TaskError, TaskEvent, TaskId, TaskLink, TaskListItem,
    TaskRecord, TaskRef, TaskSettings, TaskStatus, TaskWorktree, Usage,
};
use crate::project::Project;

/// Which tasks to list.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub orchestration_id: Option<OrchestrationId>,
    /// Only the tasks of this project; `None` lists every project's.
    pub project: Option<Project>,
    pub limit: u32,
}

/// Which orchestrations to list.
#[derive(Clone, Debug, Default)]
pub struct OrchestrationFilter {
    pub status: Option<OrchestrationStatus>,
    /// Only the orchestrations of this project; `None` lists every project's.
    pub project: Option<Project>,
    pub limit: u32,
}

const TASK_COLUMNS: &str = "task_id, task_identifier, orchestration_id, execution_prompt, working_directory, model,
    system_prompt, append_system_prompt, permission_mode, allowed_tools, disallowed_tools, max_turns, max_budget_usd,
    timeout_seconds, max_attempts, priority, wait_after_dependencies, status, attempt, created_at, started_at, ended_at,
    ready_at, result, error_kind, error_message, session_id, cost_usd, input_tokens, output_tokens,
    cache_creation_input_tokens, cache_read_input_tokens, num_turns, duration_ms, permission_denials, last_action,
    cancel_requested, created_by, depth, project, isolation, on_conflict, worktree_path, branch, start_commit,
    merge_conflicts, result_commit, diffstat, verify, verify_timeout_seconds, verify_attempts, include_dependency_results,
    result_schema, structured_result";

fn lines(text: String) -> Vec<String> {
    text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn status_of(text: &str) -> TaskStatus {
    TaskStatus::parse(text).unwrap_or(TaskStatus::Failed)
}

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    let error_kind: Option<String> = row.get("error_kind")?;
    let error_message: Option<String> = row.get("error_message")?;
    let status: String = row.get("status")?;
    Ok(TaskRecord {
        task_id: row.get("task_id")?,
        task_identifier: row.get("task_identifier")?,
        orchestration_id: row.get("orchestration_id")?,
        project: Project::from_stored(row.get("project")?),
        prompt: row.get("execution_prompt")?,
        settings: TaskSettings {
            working_directory: row.get("working_directory")?,
            model: row.get("model")?,
            system_prompt: row.get("system_prompt")?,
            append_system_prompt: row.get("append_system_prompt")?,
            permission_mode: row.get("permission_mode")?,
            allowed_tools: lines(row.get("allowed_tools")?),
            disallowed_tools: lines(row.get("disallowed_tools")?),
            max_turns: row.get("max_turns")?,
            max_budget_usd: row.get("max_budget_usd")?,
            timeout_seconds: row.get::<_, i64>("timeout_seconds")?.try_into().unwrap_or(0),
            max_attempts: row.get("max_attempts")?,
            priority: row.get("priority")?,
            wait_after_dependencies: row.get("wait_after_dependencies")?,
            isolation: Isolation::parse(&row.get::<_, String>("isolation")?).unwrap_or_default(),
            on_conflict: OnConflict::parse(&row.get::<_, String>("on_conflict")?).unwrap_or_default(),
            verify: row.get("verify")?,
            verify_timeout_seconds: row.get::<_, i64>("verify_timeout_seconds")?.try_into().unwrap_or(0),
            verify_attempts: row.get("verify_attempts")?,
            include_dependency_results: row.get("include_dependency_results")?,
            result_schema: json_column(row, "result_schema")?,
        },
        status: status_of(&status),
        attempt: row.get("attempt")?,
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        ended_at: row.get("ended_at")?,
        ready_at: row.get("ready_at")?,
        result: row.get("result")?,
        error: error_kind
            .map(|kind| TaskError { kind: ErrorKind::from_name(&kind), message: error_message.unwrap_or_default() }),
        session_id: row.get("session_id")?,
        cost_usd: row.get("cost_usd")?,
        usage: Usage {
            input_tokens: row.get::<_, i64>("input_tokens")?.try_into().unwrap_or(0),
            output_tokens: row.get::<_, i64>("output_tokens")?.try_into().unwrap_or(0),
            cache_creation_input_tokens: row.get::<_, i64>("cache_creation_input_tokens")?.try_into().unwrap_or(0),
            cache_read_input_tokens: row.get::<_, i64>("cache_read_input_tokens")?.try_into().unwrap_or(0),
        },
        num_turns: row.get("num_turns")?,
        duration_ms: row.get::<_, Option<i64>>("duration_ms")?.and_then(|d| d.try_into().ok()),
        permission_denials: row.get("permission_denials")?,
        last_action: row.get("last_action")?,
        cancel_requested: row.get("cancel_requested")?,
        created_by: row.get("created_by")?,
        depth: row.get("depth")?,
        worktree: TaskWorktree {
            path: row.get("worktree_path")?,
            branch: row.get("branch")?,
            start_commit: row.get("start_commit")?,
            conflicts: lines(row.get::<_, Option<String>>("merge_conflicts")?.unwrap_or_default()),
            result_commit: row.get("result_commit")?,
            diffstat: row.get("diffstat")?,
        },
        structured_result: json_column(row, "structured_result")?,
    })
}

/// A column of JSON text (written by this program, so always valid; a value that is not JSON
/// reads as missing rather than failing the whole row).
pub(super) fn json_column(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<serde_json::Value>> {
    Ok(row.get::<_, Option<String>>(column)?.and_then(|text| serde_json::from_str(&text).ok()))
}

pub(super) fn read_task(tx: &Connection, task_id: TaskId) -> Result<TaskRecord, StoreError> {
    tx.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1"))?
        .query_row([task_id], task_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no task #{task_id}")))
}

/// The id a reference names: `#id` (in any project), or the most recent task with that
/// identifier in the caller's project `scope`. An identifier found only in another project is
/// refused with that task's `#id`, never bound.
pub(super) fn resolve_task(tx: &Connection, task: &TaskRef, scope: &Project) -> Result<TaskId, StoreError> {
    match task {
        TaskRef::Id(id) => tx
            .prepare_cached("SELECT task_id FROM tasks WHERE task_id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "no task {task}: give a task identifier or #<task_id> (list_tasks shows the stored ones)"
                ))
            }),
        TaskRef::Identifier(name) => match task_in_project(tx, scope, name)? {
            Some(id) => Ok(id),
            None => Err(unknown_task(tx, scope, name)?),
        },
    }
}

/// The live orchestration an id names (following merges).
pub(super) fn resolve_orchestration(tx: &Connection, id: OrchestrationId) -> Result<OrchestrationId, StoreError> {
    let exists: bool = tx
        .prepare_cached("SELECT count(*) FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([id], |row| row.get(0))?;
    if !exists {
        return Err(StoreError::NotFound(format!("no orchestration {id}: list_orchestrations shows the stored ones")));
    }
    follow_merges(tx, id)
}

fn links(tx: &Connection, sql: &str, task_id: TaskId) -> Result<Vec<TaskLink>, StoreError> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map([task_id], |row| {
        let status: String = row.get(2)?;
        Ok(TaskLink { task_id: row.get(0)?, task_identifier: row.get(1)?, status: status_of(&status) })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn task_detail(tx: &Connection, task_id: TaskId) -> Result<TaskDetail, StoreError> {
    let task = read_task(tx, task_id)?;
    let depends_on = links(
        tx,
        "SELECT t.task_id, t.task_identifier, t.status FROM task_dependencies d JOIN tasks t ON t.task_id = d.depends_on
         WHERE d.task_id = ?1 ORDER BY t.task_id",
        task_id,
    )?;
    let dependents = links(
        tx,
        "SELECT t.task_id, t.task_identifier, t.status FROM task_dependencies d JOIN tasks t ON t.task_id = d.task_id
         WHERE d.depends_on = ?1 ORDER BY t.task_id",
        task_id,
    )?;
    Ok(TaskDetail { task, depends_on, dependents })
}

fn summary(tx: &Connection, id: OrchestrationId) -> Result<OrchestrationSummary, StoreError> {
    let (name, status, created_at, started_at, ended_at, project): (
        Option<String>,
        String,
        Millis,
        Option<Millis>,
        Option<Millis>,
        String,
    ) = tx
        .prepare_cached(
            "SELECT name, status, created_at, started_at, ended_at, project FROM orchestrations
             WHERE orchestration_id = ?1",
        )?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))?;
    let (counters, cost_usd) = counters(tx, id)?;
    let budget_usd: Option<f64> = tx
        .prepare_cached("SELECT budget_usd FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([id], |row| row.get(0))?;
    // Only an orchestration with a budget can have tasks it stopped.
    let budget_stopped: u32 = match budget_usd {
        None => 0,
        Some(_) => tx
            .prepare_cached(
                "SELECT count(*) FROM tasks WHERE orchestration_id = ?1 AND error_kind = 'budget_exhausted'",
            )?
            .query_row([id], |row| row.get(0))?,
    };
    Ok(OrchestrationSummary {
        orchestration_id: id,
        name,
        project: Project::from_stored(project),
        status: OrchestrationStatus::parse(&status).unwrap_or(OrchestrationStatus::Failed),
        created_at,
        started_at,
        ended_at,
        counters,
        cost_usd,
        budget_usd,
        budget_stopped,
    })
}

pub(super) fn orchestration_detail(tx: &Connection, id: OrchestrationId) -> Result<OrchestrationDetail, StoreError> {
    let summary = summary(tx, id)?;
    let mut stmt = tx.prepare_cached(
        "SELECT task_id, task_identifier, status, started_at, ended_at, error_kind, error_message, cost_usd, last_action,
                ready_at, created_by
         FROM tasks WHERE orchestration_id = ?1 ORDER BY task_id",
    )?;
    let mut tasks: Vec<OrchestrationTask> = stmt
        .query_map([id], |row| {
            let status: String = row.get(2)?;
            let kind: Option<String> = row.get(5)?;
            let message: Option<String> = row.get(6)?;
            Ok(OrchestrationTask {
                task_id: row.get(0)?,
                task_identifier: row.get(1)?,
                status: status_of(&status),
                depends_on: Vec::new(),
                started_at: row.get(3)?,
                ended_at: row.get(4)?,
                ready_at: row.get(9)?,
                error: kind
                    .map(|kind| TaskError { kind: ErrorKind::from_name(&kind), message: message.unwrap_or_default() }),
                cost_usd: row.get(7)?,
                last_action: row.get(8)?,
                created_by: row.get(10)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = tx.prepare_cached(
        "SELECT d.task_id, d.depends_on FROM task_dependencies d JOIN tasks t ON t.task_id = d.task_id
         WHERE t.orchestration_id = ?1 ORDER BY d.task_id, d.depends_on",
    )?;
    let edges: Vec<(TaskId, TaskId)> =
        stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
    for (task_id, depends_on) in edges {
        if let Ok(i) = tasks.binary_search_by_key(&task_id, |t| t.task_id) {
            tasks[i].depends_on.push(depends_on);
        }
    }
    let isolation = super::isolation::orchestration_isolation(tx, summary.orchestration_id)?.map(Box::new);
    Ok(OrchestrationDetail { summary, tasks, isolation })
}

impl Store {
    /// One task with its dependencies and dependents (a bare identifier in `scope`).
    pub fn task(&mut self, task: &TaskRef, scope: &Project) -> Result<TaskDetail, StoreError> {
        self.read(|tx| {
            let task_id = resolve_task(tx, task, scope)?;
            task_detail(tx, task_id)
        })
    }

    /// One orchestration with its live counters and all its tasks.
    pub fn orchestration(&mut self, id: OrchestrationId) -> Result<OrchestrationDetail, StoreError> {
        self.read(|tx| {
            let id = resolve_orchestration(tx, id)?;
            orchestration_detail(tx, id)
        })
    }

    /// The orchestration a name gives in a project (the newest of that name, following
    /// merges), if any. Names are per project.
    pub fn orchestration_named(
        &mut self,
        name: &str,
        project: &Project,
    ) -> Result<Option<OrchestrationId>, StoreError> {
        self.read(|tx| super::create::find_orchestration_by_name(tx, name, project))
    }

    /// The newest orchestration of this name in another project than `project`, with its project.
    pub fn orchestration_named_elsewhere(
        &mut self,
        name: &str,
        project: &Project,
    ) -> Result<Option<(OrchestrationId, Project)>, StoreError> {
        self.read(|tx| super::projects::orchestration_elsewhere(tx, project, name))
    }

    /// The names of a project's orchestrations that are `base` or start with `base-`, for
    /// numbering runs.
    pub fn orchestration_names_like(&mut self, base: &str, project: &Project) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT name FROM orchestrations WHERE project = ?2
                 AND (name = ?1 OR (substr(name, 1, length(?1)) = ?1 AND substr(name, length(?1) + 1, 1) = '-'))",
            )?;
            let names = stmt.query_map(params![base, project.as_str()], |row| row.get(0))?.collect::<Result<_, _>>()?;
            Ok(names)
        })
    }

    /// One orchestration's live counters and cost, without its tasks.
    pub fn orchestration_summary(&mut self, id: OrchestrationId) -> Result<OrchestrationSummary, StoreError> {
        self.read(|tx| {
            let id = resolve_orchestration(tx, id)?;
            summary(tx, id)
        })
    }

    /// An orchestration's counters by state, kept by triggers: what `wait` looks at on every
    /// change it wakes for (the whole summary also counts the tasks a budget stopped).
    pub fn orchestration_counters(&mut self, id: OrchestrationId) -> Result<Counters, StoreError> {
        self.read(|tx| {
            let id = resolve_orchestration(tx, id)?;
            Ok(counters(tx, id)?.0)
        })
    }

    /// Tasks, newest first.
    pub fn list_tasks(&mut self, filter: &TaskFilter) -> Result<Vec<TaskListItem>, StoreError> {
        self.read(|tx| {
            let orchestration = match filter.orchestration_id {
                Some(id) => Some(resolve_orchestration(tx, id)?),
                None => None,
            };
            let mut stmt = tx.prepare_cached(
                "SELECT task_id, task_identifier, orchestration_id, status, created_at, last_action, cost_usd, project
                 FROM tasks
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR orchestration_id = ?2)
                     AND (?4 IS NULL OR project = ?4)
                 ORDER BY task_id DESC LIMIT ?3",
            )?;
            let project = filter.project.as_ref().map(Project::as_str);
            let rows = stmt.query_map(
                params![filter.status.map(TaskStatus::as_str), orchestration, filter.limit, project],
                |row| {
                    let status: String = row.get(3)?;
                    Ok(TaskListItem {
                        task_id: row.get(0)?,
                        task_identifier: row.get(1)?,
                        orchestration_id: row.get(2)?,
                        project: Project::from_stored(row.get(7)?),
                        status: status_of(&status),
                        created_at: row.get(4)?,
                        last_action: row.get(5)?,
                        cost_usd: row.get(6)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Orchestrations (not those merged into another), newest first.
    pub fn list_orchestrations(
        &mut self,
        filter: &OrchestrationFilter,
    ) -> Result<Vec<OrchestrationSummary>, StoreError> {
        self.read(|tx| {
            let ids: Vec<OrchestrationId> = tx
                .prepare_cached(
                    "SELECT orchestration_id FROM orchestrations WHERE merged_into IS NULL AND (?1 IS NULL OR status = ?1)
                         AND (?3 IS NULL OR project = ?3)
                     ORDER BY orchestration_id DESC LIMIT ?2",
                )?
                .query_map(
                    params![
                        filter.status.map(OrchestrationStatus::as_str),
                        filter.limit,
                        filter.project.as_ref().map(Project::as_str)
                    ],
                    |row| row.get(0),
                )?
                .collect::<Result<_, _>>()?;
            ids.into_iter().map(|id| summary(tx, id)).collect()
        })
    }

    /// The history of a task, oldest first (a bare identifier in `scope`).
    pub fn events(&mut self, task: &TaskRef, scope: &Project) -> Result<Vec<TaskEvent>, StoreError> {
        self.read(|tx| {
            let task_id = resolve_task(tx, task, scope)?;
            let mut stmt = tx.prepare_cached(
                "SELECT event_id, task_id, at, kind, attempt, detail FROM task_events WHERE task_id = ?1 ORDER BY event_id",
            )?;
            let rows = stmt.query_map([task_id], |row| {
                Ok(TaskEvent {
                    event_id: row.get(0)?,
                    task_id: row.get(1)?,
                    at: row.get(2)?,
                    kind: row.get(3)?,
                    attempt: row.get(4)?,
                    detail: row.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// What the executor has to do, and by when: whether a task is ready now, and the earliest
    /// future moment something becomes due (a delayed start or an orchestration deadline).
    pub fn schedule(&mut self, now: Millis) -> Result<Schedule, StoreError> {
        self.read(|tx| {
            let ready_now: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'pending' AND coalesce(ready_at, 0) <= ?1)",
                )?
                .query_row([now], |row| row.get(0))?;
            let next_ready: Option<Millis> = tx
                .prepare_cached("SELECT min(ready_at) FROM tasks WHERE status = 'pending' AND ready_at > ?1")?
                .query_row([now], |row| row.get(0))?;
            let deadline_passed: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM orchestrations
                     WHERE merged_into IS NULL AND status IN ('pending', 'running') AND cancel_requested = 0 AND deadline_at <= ?1)",
                )?
                .query_row([now], |row| row.get(0))?;
            let next_deadline: Option<Millis> = tx
                .prepare_cached(
                    "SELECT min(deadline_at) FROM orchestrations
                     WHERE merged_into IS NULL AND status IN ('pending', 'running') AND cancel_requested = 0",
                )?
                .query_row([], |row| row.get(0))?;
            let running: u32 = tx
                .prepare_cached("SELECT count(*) FROM tasks WHERE status = 'running'")?
                .query_row([], |row| row.get(0))?;
            let integration_due: bool = tx
                .prepare_cached(concat!("SELECT EXISTS (SELECT 1 FROM orchestrations WHERE ", integration_due!(), ")"))?
                .query_row([], |row| row.get(0))?;
            let staging_wanted = Store::staging_wanted(tx)?;
            let pause = super::limits::current_pause(tx)?;
            let paused_until = pause.as_ref().map(|p| p.until).filter(|&until| until > now);
            // Deadlines stand still while paused: the pause's end moves them on (`end_pause`)
            // before they are looked at again.
            let next_deadline = next_deadline.filter(|_| pause.is_none());
            let next_at = [next_ready, next_deadline, paused_until].into_iter().flatten().min();
            Ok(Schedule {
                ready_now: ready_now && paused_until.is_none(),
                running,
                next_at,
                deadline_passed: deadline_passed && pause.is_none(),
                paused_until,
                pause_over: pause.is_some() && paused_until.is_none(),
                integration_due,
                staging_wanted,
            })
        })
    }
}

/// The few columns of a task that tell a watcher it moved: its state, its attempt and what it
/// is doing now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMark {
    pub status: TaskStatus,
    pub attempt: u32,
    pub last_action: Option<String>,
}

/// What tells a watcher an orchestration moved: its state and its tasks' counts by state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrchestrationMark {
    /// The live orchestration (after following merges).
    pub orchestration_id: OrchestrationId,
    pub status: OrchestrationStatus,
    pub counters: Counters,
}

/// What [`Store::marks`] read, in one snapshot: a mark per asked id (`None`: no such row), and
/// the newest task and live orchestration (a new one changes what lists show).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub tasks: Vec<(TaskId, Option<TaskMark>)>,
    pub orchestrations: Vec<(OrchestrationId, Option<OrchestrationMark>)>,
    pub newest_task: Option<TaskId>,
    pub newest_orchestration: Option<OrchestrationId>,
}

impl Store {
    /// The marks of these tasks and orchestrations, and the newest of each.
    pub fn marks(&mut self, tasks: &[TaskId], orchestrations: &[OrchestrationId]) -> Result<Marks, StoreError> {
        self.read(|tx| {
            let mut marks = Marks::default();
            let mut stmt = tx.prepare_cached("SELECT status, attempt, last_action FROM tasks WHERE task_id = ?1")?;
            for &id in tasks {
                let mark = stmt
                    .query_row([id], |row| {
                        let status: String = row.get(0)?;
                        Ok(TaskMark { status: status_of(&status), attempt: row.get(1)?, last_action: row.get(2)? })
                    })
                    .optional()?;
                marks.tasks.push((id, mark));
            }
            for &id in orchestrations {
                let mark = match resolve_orchestration(tx, id) {
                    Ok(live) => {
                        let status: String = tx
                            .prepare_cached("SELECT status FROM orchestrations WHERE orchestration_id = ?1")?
                            .query_row([live], |row| row.get(0))?;
                        let (counters, _) = counters(tx, live)?;
                        Some(OrchestrationMark {
                            orchestration_id: live,
                            status: OrchestrationStatus::parse(&status).unwrap_or(OrchestrationStatus::Failed),
                            counters,
                        })
                    }
                    Err(StoreError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                marks.orchestrations.push((id, mark));
            }
            marks.newest_task = tx.prepare_cached("SELECT max(task_id) FROM tasks")?.query_row([], |row| row.get(0))?;
            marks.newest_orchestration = tx
                .prepare_cached(
                    "SELECT orchestration_id FROM orchestrations WHERE merged_into IS NULL
                     ORDER BY orchestration_id DESC LIMIT 1",
                )?
                .query_row([], |row| row.get(0))
                .optional()?;
            Ok(marks)
        })
    }
}

/// What the executor learns from [`Store::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// A pending task could start now (if the cap allows).
    pub ready_now: bool,
    /// Tasks running across all processes.
    pub running: u32,
    /// The next moment a delayed task becomes ready, an orchestration reaches its deadline, or a
    /// usage-limit pause ends.
    pub next_at: Option<Millis>,
    /// Some unfinished orchestration is past its deadline.
    pub deadline_passed: bool,
    /// The account's usage limit pauses every claim until then (also in `next_at`).
    pub paused_until: Option<Millis>,
    /// A pause has passed and nobody has ended (and announced) it yet.
    pub pause_over: bool,
    /// An orchestration with isolated tasks ended and its results wait to be integrated.
    pub integration_due: bool,
    /// An isolated task waits for its dependencies and its worktree is not made yet.
    pub staging_wanted: bool,
}

impl Store {
    /// Changes whenever another connection (another process) committed to the database.
    pub fn data_version(&mut self) -> Result<i64, StoreError> {
        self.read(|tx| {
            // Reading a page first makes the connection look at the WAL index; the pragma alone
            // can report the value as of this connection's previous read.
            tx.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get::<_, i64>(0))?;
            Ok(tx.query_row("PRAGMA data_version", [], |row| row.get(0))?)
        })
    }

    /// Those of `ids` that run and were asked to stop.
    pub fn cancel_requested_among(&mut self, ids: &[TaskId]) -> Result<Vec<TaskId>, StoreError> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT cancel_requested FROM tasks WHERE task_id = ?1 AND status = 'running'")?;
            let mut out = Vec::new();
            for &id in ids {
                if stmt.query_row([id], |row| row.get::<_, bool>(0)).optional()?.unwrap_or(false) {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// True while some task is waiting, pending or running, or an ended orchestration waits to
    /// be integrated (its isolated tasks' results merged): a worker that stops when idle stays
    /// until then.
    pub fn has_unfinished_work(&mut self) -> Result<bool, StoreError> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached(concat!(
                    "SELECT EXISTS (SELECT 1 FROM tasks WHERE status IN ('waiting', 'pending', 'running'))
                         OR EXISTS (SELECT 1 FROM orchestrations WHERE ",
                    integration_due!(),
                    ")"
                ))?
                .query_row([], |row| row.get(0))?)
        })
    }
}
