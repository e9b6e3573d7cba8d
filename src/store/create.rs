//! Storing new tasks: one `create_task` or a whole `create_orchestration` batch, in one
//! transaction. Dependencies are resolved, the orchestration is found, created or merged, the
//! first state of each task is decided by the graph logic, and nothing is written when any check
//! fails.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::projects::{orchestration_project, task_elsewhere, task_in_project};
use super::{
    EventLine, PENDING_LOG, Pending, Store, StoreError, TaskKey, budgets, insert_event, isolation, lineage,
    refresh_orchestration,
};
use crate::graph::{self, InitialState};
use crate::model::{Millis, NewBatch, OrchestrationId, QueuedBy, TaskId, TaskLink, TaskRef, TaskStatus};
use crate::project::Project;

/// What a stored batch became.
#[derive(Clone, Debug)]
pub struct Created {
    pub orchestration_id: OrchestrationId,
    /// Other orchestrations that were merged into this one because the batch joined them.
    pub merged: Vec<OrchestrationId>,
    /// In the order of the batch; shared with the global log's lines until they are written.
    pub tasks: Arc<Vec<CreatedTask>>,
    /// What the caller should know of what was stored (a checkout with changes isolated tasks
    /// will not see).
    pub notes: Vec<String>,
}

/// One stored task.
#[derive(Clone, Debug)]
pub struct CreatedTask {
    pub task_id: TaskId,
    pub identifier: String,
    pub status: TaskStatus,
    pub depends_on: Vec<TaskLink>,
    /// Why the task was skipped at once, when a dependency had already failed.
    pub skipped_because: Option<String>,
}

/// How many names an unknown-dependency message lists.
const SUGGESTIONS: usize = 10;

impl Store {
    /// Stores a batch of new tasks, all or nothing.
    pub fn create_batch(
        &mut self,
        batch: &NewBatch,
        max_tasks_per_orchestration: u32,
        orchestration_timeout_ms: Millis,
        now: Millis,
    ) -> Result<Created, StoreError> {
        let order = graph::plan_batch(&batch.tasks).map_err(|e| StoreError::Refused(e.to_string()))?;
        self.write(|tx| create_in(tx, batch, &order, max_tasks_per_orchestration, orchestration_timeout_ms, now))
    }
}

/// A dependency resolved to a stored task.
#[derive(Clone, Debug)]
struct Resolved {
    task_id: TaskId,
    identifier: String,
    orchestration_id: OrchestrationId,
    status: TaskStatus,
    project: Project,
}

fn create_in(
    tx: &Connection,
    batch: &NewBatch,
    order: &[usize],
    max_tasks: u32,
    timeout_ms: Millis,
    now: Millis,
) -> Result<Created, StoreError> {
    let in_batch: HashMap<&str, usize> =
        batch.tasks.iter().enumerate().map(|(i, t)| (t.identifier.as_str(), i)).collect();

    // An orchestration holds the tasks of one project: never merged across projects.
    let project = batch_project(batch)?;
    let named = match &batch.orchestration {
        Some(name) => named_orchestration(tx, name, &batch.scope, &project)?,
        None => None,
    };
    if let (true, Some(existing), Some(name)) = (batch.new_orchestration, named, &batch.orchestration) {
        return Err(StoreError::Taken(Taken::OrchestrationName { name: name.clone(), existing }));
    }

    // Resolve every dependency that is not a task of this batch.
    let mut external: HashMap<TaskRef, Resolved> = HashMap::new();
    for task in &batch.tasks {
        for dep in &task.depends_on {
            let is_internal = matches!(dep, TaskRef::Identifier(name) if in_batch.contains_key(name.as_str()));
            if is_internal || external.contains_key(dep) {
                continue;
            }
            let Some(resolved) = resolve_dependency(tx, dep, named, &batch.scope)? else {
                return Err(unknown_dependency(tx, &task.identifier, dep, named, &batch.scope)?);
            };
            if resolved.project != project {
                return Err(StoreError::Refused(format!(
                    "task {:?} (project {project}) cannot depend on {dep}, task #{} {:?} of project {}: an \
                     orchestration holds the tasks of one project, so dependencies never cross projects. Drop \
                     the dependency, or queue the task from that project with a working_directory in it",
                    task.identifier, resolved.task_id, resolved.identifier, resolved.project
                )));
            }
            external.insert(dep.clone(), resolved);
        }
    }

    // The orchestration: the named one, the one of the dependencies, or several merged into one.
    let mut involved: BTreeSet<OrchestrationId> = external.values().map(|r| r.orchestration_id).collect();
    involved.extend(named);
    let mut merged = Vec::new();
    let orchestration_id = match involved.first().copied() {
        None => {
            tx.prepare_cached(
                "INSERT INTO orchestrations (name, created_at, timeout_ms, project, budget_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                batch.orchestration,
                now,
                timeout_ms,
                project.as_str(),
                batch.budget_usd.or(batch.default_budget_usd)
            ])?;
            tx.last_insert_rowid()
        }
        Some(target) => {
            merged = involved.iter().copied().filter(|&id| id != target).collect();
            if !merged.is_empty() {
                merge_orchestrations(tx, target, &merged)?;
            }
            reopen_if_finished(tx, target)?;
            if let (Some(name), None) = (&batch.orchestration, named) {
                name_orchestration(tx, target, name)?;
            }
            // A budget given with tasks that join an orchestration is its new budget; a spent
            // one would never let them start.
            if let Some(budget_usd) = batch.budget_usd {
                budgets::set_budget_in(tx, target, budget_usd, now)?;
            }
            budgets::refuse_join_if_spent(tx, target)?;
            target
        }
    };

    if let Some(base) = &batch.isolation {
        isolation::set_base_in(tx, orchestration_id, base)?;
    }

    // The identifiers must be free in the orchestration, and it must have room.
    let existing: f64 = tx
        .prepare_cached("SELECT total(n) FROM orchestration_counts WHERE orchestration_id = ?1")?
        .query_row([orchestration_id], |row| row.get(0))?;
    // A count kept by triggers (migration 0007): the tasks are not counted on every create.
    let wanted = (existing as u32).saturating_add(u32::try_from(batch.tasks.len()).unwrap_or(u32::MAX));
    if wanted > max_tasks {
        return Err(StoreError::Refused(format!(
            "orchestration {orchestration_id} would have {wanted} tasks, over the limit of {max_tasks} \
             (MAX_TASKS_PER_ORCHESTRATION): split the work into several orchestrations"
        )));
    }
    for task in &batch.tasks {
        let taken: Option<TaskId> = tx
            .prepare_cached("SELECT task_id FROM tasks WHERE orchestration_id = ?1 AND task_identifier = ?2")?
            .query_row(params![orchestration_id, task.identifier], |row| row.get(0))
            .optional()?;
        if let Some(task_id) = taken {
            return Err(StoreError::Taken(Taken::Identifier {
                orchestration_id,
                identifier: task.identifier.clone(),
                task_id,
            }));
        }
    }

    // Insert dependencies first, deciding each task's first state from its dependencies' states.
    let mut stored: Vec<Option<CreatedTask>> = vec![None; batch.tasks.len()];
    for &index in order {
        let task = &batch.tasks[index];
        let mut links: Vec<TaskLink> = Vec::with_capacity(task.depends_on.len());
        for dep in &task.depends_on {
            let link = match dep {
                TaskRef::Identifier(name) if in_batch.contains_key(name.as_str()) => {
                    let created = stored[in_batch[name.as_str()]]
                        .as_ref()
                        .ok_or_else(|| StoreError::Refused(format!("internal ordering error at {name:?}")))?;
                    TaskLink {
                        task_id: created.task_id,
                        task_identifier: created.identifier.clone(),
                        status: created.status,
                    }
                }
                _ => {
                    let r = &external[dep];
                    TaskLink { task_id: r.task_id, task_identifier: r.identifier.clone(), status: r.status }
                }
            };
            if !links.iter().any(|l| l.task_id == link.task_id) {
                links.push(link);
            }
        }
        let state = graph::initial_state(links.iter().map(|l| (l.task_identifier.as_str(), l.status)));
        let (status, skipped_because) = match &state {
            InitialState::Pending => (TaskStatus::Pending, None),
            InitialState::Waiting => (TaskStatus::Waiting, None),
            InitialState::Skipped { dependency, dependency_status } => {
                (TaskStatus::Skipped, Some(format!("dependency {dependency} {dependency_status}")))
            }
        };
        let s = &task.settings;
        let ready_at = (status == TaskStatus::Pending && s.wait_after_dependencies > 0.0)
            .then(|| now + seconds_to_ms(s.wait_after_dependencies));
        let ended_at = (status == TaskStatus::Skipped).then_some(now);
        tx.prepare_cached(
            "INSERT INTO tasks (orchestration_id, task_identifier, execution_prompt, working_directory, model,
                 system_prompt, append_system_prompt, permission_mode, allowed_tools, disallowed_tools,
                 max_turns, max_budget_usd, timeout_seconds, max_attempts, priority, wait_after_dependencies,
                 status, created_at, ready_at, ended_at, error_kind, error_message, project, isolation, on_conflict,
                 verify, verify_timeout_seconds, verify_attempts, include_dependency_results, result_schema)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
                 ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)",
        )?
        .execute(params![
            orchestration_id,
            task.identifier,
            task.prompt,
            s.working_directory,
            s.model,
            s.system_prompt,
            s.append_system_prompt,
            s.permission_mode,
            s.allowed_tools.join("\n"),
            s.disallowed_tools.join("\n"),
            s.max_turns,
            s.max_budget_usd,
            i64::try_from(s.timeout_seconds).unwrap_or(i64::MAX),
            s.max_attempts,
            s.priority,
            s.wait_after_dependencies,
            status.as_str(),
            now,
            ready_at,
            ended_at,
            skipped_because.as_ref().map(|_| "dependency_failed"),
            skipped_because,
            project.as_str(),
            s.isolation.as_str(),
            s.on_conflict.as_str(),
            s.verify,
            i64::try_from(s.verify_timeout_seconds).unwrap_or(i64::MAX),
            s.verify_attempts,
            s.include_dependency_results,
            s.result_schema.as_ref().map(serde_json::Value::to_string),
        ])?;
        let task_id = tx.last_insert_rowid();
        if let Some(by) = &batch.queued_by {
            lineage::record_creator(tx, task_id, by)?;
        }
        for link in &links {
            tx.prepare_cached("INSERT INTO task_dependencies (task_id, depends_on) VALUES (?1, ?2)")?
                .execute(params![task_id, link.task_id])?;
        }
        // Logged after the commit, from what the batch became (`CreatedLines`).
        let detail = created_detail(&links, batch.queued_by.as_ref());
        insert_event(tx, task_id, now, "created", 0, None, detail.as_deref())?;
        if let Some(reason) = &skipped_because {
            insert_event(tx, task_id, now, "skipped", 0, None, Some(reason))?;
        }
        stored[index] = Some(CreatedTask {
            task_id,
            identifier: task.identifier.clone(),
            status,
            depends_on: links,
            skipped_because,
        });
    }
    refresh_orchestration(tx, orchestration_id, now)?;
    #[expect(
        clippy::filter_map_identity,
        reason = "filter_map collects in place (Option<CreatedTask> is as wide as CreatedTask); flatten \
                  allocated a second vector, 11.5 MB at 100,000 tasks"
    )]
    let tasks: Arc<Vec<CreatedTask>> = Arc::new(stored.into_iter().filter_map(|t| t).collect());
    let lines = CreatedLines { orchestration_id, queued_by: batch.queued_by, tasks: Arc::clone(&tasks) };
    PENDING_LOG.with_borrow_mut(|pending| pending.push(Pending::Created(lines)));
    Ok(Created { orchestration_id, merged, tasks, notes: Vec::new() })
}

/// The detail of a task's `created` event: who queued it and what it depends on.
fn created_detail(links: &[TaskLink], queued_by: Option<&QueuedBy>) -> Option<String> {
    let depends = (!links.is_empty()).then(|| {
        format!(
            "depends on {}",
            links.iter().map(|l| format!("{} (#{})", l.task_identifier, l.task_id)).collect::<Vec<_>>().join(", ")
        )
    });
    lineage::created_detail(queued_by, depends)
}

/// The global log's lines for a stored batch, written once it is committed.
pub(super) struct CreatedLines {
    orchestration_id: OrchestrationId,
    queued_by: Option<QueuedBy>,
    tasks: Arc<Vec<CreatedTask>>,
}

impl CreatedLines {
    pub(super) fn emit(self) {
        for task in self.tasks.iter() {
            let key = TaskKey {
                task_id: task.task_id,
                identifier: task.identifier.clone(),
                orchestration_id: self.orchestration_id,
            };
            let detail = created_detail(&task.depends_on, self.queued_by.as_ref());
            EventLine { key: key.clone(), kind: "created", attempt: 0, detail: detail.map(Box::from) }.emit();
            if let Some(reason) = &task.skipped_because {
                EventLine { key, kind: "skipped", attempt: 0, detail: Some(reason.as_str().into()) }.emit();
            }
        }
    }
}

pub(super) fn seconds_to_ms(seconds: f64) -> Millis {
    // Checked by the service to lie in 0..=86400.
    (seconds * 1000.0).round() as Millis
}

/// The project of a batch's tasks: one for all of them, or a refusal.
fn batch_project(batch: &NewBatch) -> Result<Project, StoreError> {
    let first = batch.tasks.first().map_or_else(|| batch.scope.clone(), |t| t.project.clone());
    if let Some(other) = batch.tasks.iter().find(|t| t.project != first) {
        return Err(StoreError::Refused(format!(
            "task {:?} is in project {first} and task {:?} in project {}: an orchestration holds the tasks of \
             one project (the git work tree of their working_directory). Queue them as separate orchestrations",
            batch.tasks[0].identifier, other.identifier, other.project
        )));
    }
    Ok(first)
}

/// The orchestration a batch names: looked for in the caller's project, and in the tasks'
/// project when that is another (where a new one of that name would live). Refused when it
/// lies in another project than the tasks.
fn named_orchestration(
    tx: &Connection,
    name: &str,
    scope: &Project,
    project: &Project,
) -> Result<Option<OrchestrationId>, StoreError> {
    let found = match find_orchestration_by_name(tx, name, scope)? {
        Some(id) => Some(id),
        None if scope != project => find_orchestration_by_name(tx, name, project)?,
        None => None,
    };
    let Some(id) = found else { return Ok(None) };
    let its_project = orchestration_project(tx, id)?;
    if &its_project != project {
        return Err(StoreError::Refused(format!(
            "orchestration {name:?} (id {id}) belongs to project {its_project}, but the tasks' working_directory is \
             in project {project}: an orchestration holds the tasks of one project. Choose another orchestration \
             name, or a working_directory in {its_project}"
        )));
    }
    Ok(Some(id))
}

/// The live orchestration of a name in a project, following merges.
pub(super) fn find_orchestration_by_name(
    tx: &Connection,
    name: &str,
    project: &Project,
) -> Result<Option<OrchestrationId>, StoreError> {
    let id: Option<OrchestrationId> = tx
        .prepare_cached(
            "SELECT orchestration_id FROM orchestrations WHERE project = ?2 AND name = ?1
             ORDER BY orchestration_id DESC LIMIT 1",
        )?
        .query_row(params![name, project.as_str()], |row| row.get(0))
        .optional()?;
    match id {
        Some(id) => Ok(Some(follow_merges(tx, id)?)),
        None => Ok(None),
    }
}

/// The orchestration that `id` was merged into, if it was, else `id`.
pub(super) fn follow_merges(tx: &Connection, mut id: OrchestrationId) -> Result<OrchestrationId, StoreError> {
    for _ in 0..64 {
        let next: Option<Option<OrchestrationId>> = tx
            .prepare_cached("SELECT merged_into FROM orchestrations WHERE orchestration_id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?;
        match next {
            Some(Some(target)) => id = target,
            _ => return Ok(id),
        }
    }
    Ok(id)
}

/// A dependency: `#id` anywhere; a bare identifier in the named orchestration, else the newest
/// task of that identifier in the caller's project.
fn resolve_dependency(
    tx: &Connection,
    dep: &TaskRef,
    named: Option<OrchestrationId>,
    scope: &Project,
) -> Result<Option<Resolved>, StoreError> {
    let task_id = match (dep, named) {
        (TaskRef::Id(id), _) => Some(*id),
        (TaskRef::Identifier(name), Some(orchestration_id)) => tx
            .prepare_cached("SELECT task_id FROM tasks WHERE orchestration_id = ?1 AND task_identifier = ?2")?
            .query_row(params![orchestration_id, name], |row| row.get(0))
            .optional()?,
        (TaskRef::Identifier(name), None) => task_in_project(tx, scope, name)?,
    };
    let Some(task_id) = task_id else { return Ok(None) };
    let found = tx
        .prepare_cached("SELECT task_identifier, orchestration_id, status, project FROM tasks WHERE task_id = ?1")?
        .query_row([task_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
        })
        .optional()?;
    Ok(found.map(|(identifier, orchestration_id, status, project)| Resolved {
        task_id,
        identifier,
        orchestration_id,
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        project: Project::from_stored(project),
    }))
}

/// The refusal for a dependency that names no task, with the identifiers it could have meant
/// (read in the transaction: at most 200 short rows).
fn unknown_dependency(
    tx: &Connection,
    task: &str,
    dep: &TaskRef,
    named: Option<OrchestrationId>,
    scope: &Project,
) -> Result<StoreError, StoreError> {
    let elsewhere = match (dep, named) {
        (TaskRef::Identifier(name), None) => task_elsewhere(tx, scope, name)?,
        _ => None,
    };
    let candidates: Vec<String> = match named {
        Some(id) => tx
            .prepare_cached("SELECT task_identifier FROM tasks WHERE orchestration_id = ?1 ORDER BY task_id DESC")?
            .query_map([id], |row| row.get(0))?
            .collect::<Result<_, _>>()?,
        None => tx
            .prepare_cached(
                "SELECT task_identifier FROM tasks WHERE project = ?1
                 GROUP BY task_identifier ORDER BY max(task_id) DESC LIMIT 200",
            )?
            .query_map([scope.as_str()], |row| row.get(0))?
            .collect::<Result<_, _>>()?,
    };
    Ok(StoreError::UnknownDependency(Box::new(UnknownDependency {
        task: task.to_owned(),
        dependency: dep.clone(),
        orchestration: named,
        project: scope.clone(),
        elsewhere,
        candidates,
    })))
}

/// A name a new task or orchestration asked for that is already in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A new orchestration's name: another orchestration has it.
    OrchestrationName { name: String, existing: OrchestrationId },
    /// A task's identifier: the orchestration it joins has a task of that name.
    Identifier { orchestration_id: OrchestrationId, identifier: String, task_id: TaskId },
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Taken::OrchestrationName { name, existing } => write!(
                f,
                "an orchestration named {name:?} already exists (id {existing}): choose another name, or add \
                 tasks to it with create_task and orchestration={name:?}"
            ),
            Taken::Identifier { orchestration_id, identifier, task_id } => write!(
                f,
                "orchestration {orchestration_id} already has a task {identifier:?} (#{task_id}): choose another \
                 task_identifier (identifiers are unique within an orchestration)"
            ),
        }
    }
}

/// A dependency that names no task, and the identifiers stored where it was looked for.
#[derive(Debug, Clone)]
pub struct UnknownDependency {
    pub task: String,
    pub dependency: TaskRef,
    /// The orchestration it was looked for in, when one was named.
    pub orchestration: Option<OrchestrationId>,
    /// The caller's project, where a bare identifier was looked for.
    pub project: Project,
    /// A task of that identifier in another project, which a bare identifier does not reach.
    pub elsewhere: Option<(TaskId, Project)>,
    candidates: Vec<String>,
}

impl std::fmt::Display for UnknownDependency {
    /// Ranks the candidates here, when the message is written: never inside the transaction
    /// that found the dependency missing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wanted = match &self.dependency {
            TaskRef::Id(id) => id.to_string(),
            TaskRef::Identifier(name) => name.clone(),
        };
        let suggestions = graph::suggest(&wanted, self.candidates.iter().map(String::as_str), SUGGESTIONS);
        let scope = match self.orchestration {
            Some(id) => format!(" in orchestration {id}"),
            None => format!(" in this project ({})", self.project),
        };
        if let Some((task_id, other)) = &self.elsewhere {
            return write!(
                f,
                "task {:?} depends on {wanted}, which matches no task{scope}: the task {wanted:?} is #{task_id}, in \
                 project {other}. Bare identifiers name tasks of the caller's project only, and dependencies never \
                 cross projects: create {wanted:?} in this project, or drop the dependency",
                self.task
            );
        }
        let hint = if suggestions.is_empty() {
            "there are no tasks to depend on yet: create the dependency first, or drop it".to_owned()
        } else {
            format!("known identifiers: {}", suggestions.join(", "))
        };
        write!(f, "task {:?} depends on {}, which matches no task{scope}; {hint}", self.task, self.dependency)
    }
}

/// Moves the tasks of `others` into `target`, refusing when an identifier would clash.
fn merge_orchestrations(
    tx: &Connection,
    target: OrchestrationId,
    others: &[OrchestrationId],
) -> Result<(), StoreError> {
    let mut all = vec![target];
    all.extend_from_slice(others);
    let list = all.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    // The ids are integers we formatted ourselves, so building the IN list is safe.
    let clash: Option<String> = tx
        .prepare(&format!(
            "SELECT task_identifier FROM tasks WHERE orchestration_id IN ({list})
             GROUP BY task_identifier HAVING count(*) > 1 LIMIT 1"
        ))?
        .query_row([], |row| row.get(0))
        .optional()?;
    if let Some(identifier) = clash {
        return Err(StoreError::Refused(format!(
            "the dependencies lie in orchestrations {list}, which would merge into one, but more than one \
             of them has a task {identifier:?}: depend on tasks of one orchestration, or use #<task_id> \
             references to tasks whose identifiers differ"
        )));
    }
    for &other in others {
        tx.prepare_cached("UPDATE tasks SET orchestration_id = ?1 WHERE orchestration_id = ?2")?
            .execute(params![target, other])?;
        tx.prepare_cached("UPDATE orchestrations SET merged_into = ?1 WHERE orchestration_id = ?2")?
            .execute(params![target, other])?;
        // The survivor keeps its own name and budget, or takes the first merged one's.
        tx.prepare_cached(
            "UPDATE orchestrations SET name = (SELECT name FROM orchestrations WHERE orchestration_id = ?2)
             WHERE orchestration_id = ?1 AND name IS NULL",
        )?
        .execute(params![target, other])?;
        tx.prepare_cached(
            "UPDATE orchestrations SET budget_usd = (SELECT budget_usd FROM orchestrations WHERE orchestration_id = ?2)
             WHERE orchestration_id = ?1 AND budget_usd IS NULL",
        )?
        .execute(params![target, other])?;
        tx.prepare_cached(
            "UPDATE orchestrations SET created_at = min(created_at, (SELECT created_at FROM orchestrations WHERE orchestration_id = ?2)),
                 cancel_requested = 0
             WHERE orchestration_id = ?1",
        )?
        .execute(params![target, other])?;
    }
    Ok(())
}

/// Gives a new name to the orchestration that tasks joined through their dependencies, unless
/// it already has another one.
fn name_orchestration(tx: &Connection, id: OrchestrationId, name: &str) -> Result<(), StoreError> {
    let current: Option<String> = tx
        .prepare_cached("SELECT name FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([id], |row| row.get(0))?;
    match current {
        None => {
            tx.prepare_cached("UPDATE orchestrations SET name = ?2 WHERE orchestration_id = ?1")?
                .execute(params![id, name])?;
            Ok(())
        }
        Some(current) if current == name => Ok(()),
        Some(current) => Err(StoreError::Refused(format!(
            "the dependencies belong to orchestration {id}, named {current:?}, so the task joins it and \
             cannot also be in orchestration {name:?}: drop orchestration, or use orchestration={current:?}"
        ))),
    }
}

/// New work in a finished orchestration gets a fresh deadline (set when it runs again) and
/// clears an old cancel.
fn reopen_if_finished(tx: &Connection, id: OrchestrationId) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE orchestrations SET deadline_at = NULL, cancel_requested = 0
         WHERE orchestration_id = ?1 AND status IN ('completed', 'failed', 'cancelled')",
    )?
    .execute([id])?;
    Ok(())
}
