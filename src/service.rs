//! The application's verbs, shared by the MCP edge and the inspect CLI: create a task or a
//! whole orchestration, read statuses, outputs and log tails, cancel, retry (a task or a whole
//! orchestration) and wait, and watch for changes (what resource subscriptions are built on).
//! Each checks what it is given and turns it into domain types (applying defaults from
//! [`Config`]), calls the store, and wakes or stops the executor as needed. Nothing here knows MCP or JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::executor::Executor;
use crate::git::Git;
use crate::graph;
use crate::isolation;
use crate::logs::{TaskLogPaths, tail_lines};
use crate::model::{
    Isolation, NewBatch, NewTask, OnConflict, OrchestrationDetail, OrchestrationId, OrchestrationSummary,
    PERMISSION_MODES, Project, QueuedBy, TaskDetail, TaskListItem, TaskRef, TaskSettings,
};
use crate::store::{
    BudgetRaise, CancelOutcome, CancelTarget, Created, Db, Marks, OrchestrationFilter, OrchestrationRetryOutcome,
    RetryOutcome, StoreError, TaskFilter,
};
use crate::time::now_ms;

/// A mistake the caller can fix, or a fault of ours.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A bad argument, an unknown dependency, a cycle, ...: the message says what to do.
    #[error("{0}")]
    Invalid(String),
    /// An unknown task or orchestration.
    #[error("{0}")]
    NotFound(String),
    /// A name already in use (an orchestration's, or an identifier in an orchestration).
    #[error("{0}")]
    Taken(crate::store::Taken),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(m) => ServiceError::Invalid(m),
            StoreError::UnknownDependency(unknown) => ServiceError::Invalid(unknown.to_string()),
            StoreError::Taken(taken) => ServiceError::Taken(taken),
            StoreError::NotFound(m) => ServiceError::NotFound(m),
            other => ServiceError::Store(other),
        }
    }
}

type Result<T> = std::result::Result<T, ServiceError>;

/// A task as a caller describes it: every option may be missing and nothing is checked yet.
#[derive(Clone, Debug, Default)]
pub struct TaskInput {
    pub identifier: String,
    pub prompt: String,
    pub depends_on: Vec<String>,
    pub wait_after_dependencies: Option<f64>,
    /// The options the caller set, `None` when it set none: the tasks of a big graph rarely set
    /// any, and then cost no more than their names (`TaskOptions` is about 400 bytes).
    pub options: Option<Box<TaskOptions>>,
}

impl TaskInput {
    /// Its options, to be set: made when it had none (then each is unset, so a default given
    /// through them is always taken).
    pub fn options_mut(&mut self) -> &mut TaskOptions {
        self.options.get_or_insert_with(Box::default)
    }
}

/// The options of a [`TaskInput`], each missing until the caller sets it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskOptions {
    pub working_directory: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub disallowed_tools: Option<Vec<String>>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    pub timeout_seconds: Option<u64>,
    pub max_attempts: Option<u32>,
    pub priority: Option<i64>,
    // Isolation (issue 11).
    pub isolation: Option<String>,
    pub on_conflict: Option<String>,
    // Checked completion (`verify`).
    /// A shell command that checks the work; `Some("")` is none (a task's way out of its
    /// orchestration's default).
    pub verify: Option<String>,
    pub verify_timeout_seconds: Option<u64>,
    pub verify_attempts: Option<u32>,
    // Results that reach the dependents (issue 11).
    /// Default true: the prompt ends with the dependencies' results.
    pub include_dependency_results: Option<bool>,
    /// A JSON Schema object the structured result must match.
    pub result_schema: Option<serde_json::Value>,
}

impl TaskOptions {
    /// The options, or `None` when none is set.
    pub fn boxed(self) -> Option<Box<TaskOptions>> {
        (self != TaskOptions::default()).then(|| Box::new(self))
    }
}

/// The options of an orchestration as a whole, beyond its name and budget.
#[derive(Clone, Debug, Default)]
pub struct OrchestrationOptions {
    /// The isolation of its tasks that ask for none.
    pub isolation: Option<String>,
    /// The commit its isolated tasks start from (default `HEAD`).
    pub base_ref: Option<String>,
    /// Merge its integration branch into the checkout's current branch when it completes.
    pub merge_when_done: bool,
}

/// Who a [`Service`] serves: what a caller may ask for depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Caller {
    /// An MCP client: a model, or a task's Claude queuing follow-up work. A `verify` command
    /// (a shell command run without Claude Code's permission prompts) needs the server owner's
    /// leave (`CLAUDE_WORKER_ALLOW_VERIFY`). The default: a service that was not told otherwise
    /// refuses what needs that leave.
    #[default]
    Mcp,
    /// A person at a terminal (`claude-worker run`, `orchestrate`, the inspect CLI): a `verify`
    /// command is their own.
    Person,
}

/// What `wait` and `get_status` look at.
#[derive(Clone, Debug)]
pub enum Target {
    Task(TaskRef),
    Orchestration(OrchestrationId),
}

/// A status read: of a task or of an orchestration.
#[derive(Clone, Debug)]
pub enum Status {
    Task(Box<TaskStatusView>),
    Orchestration(OrchestrationDetail),
}

impl Status {
    /// True once nothing more will happen on its own.
    pub fn is_finished(&self) -> bool {
        match self {
            Status::Task(view) => view.detail.task.status.is_terminal(),
            Status::Orchestration(detail) => detail.summary.counters.unfinished() == 0,
        }
    }

    /// (done, total, one line) for progress notifications.
    pub fn progress(&self) -> (f64, f64, String) {
        match self {
            Status::Task(view) => {
                let t = &view.detail.task;
                let line = match &t.last_action {
                    Some(action) => format!("{} {}: {action}", t.task_identifier, t.status),
                    None => format!("{} {}", t.task_identifier, t.status),
                };
                (if t.status.is_terminal() { 1.0 } else { 0.0 }, 1.0, line)
            }
            Status::Orchestration(detail) => counters_progress(&detail.summary.counters),
        }
    }
}

/// (done, total, one line) of an orchestration's counters.
fn counters_progress(c: &crate::model::Counters) -> (f64, f64, String) {
    let done = c.total - c.unfinished();
    let tasks = if c.total == 1 { "task" } else { "tasks" };
    (f64::from(done), f64::from(c.total), format!("{done}/{} {tasks} finished, {} running", c.total, c.running))
}

/// A task with its edges and where its logs are.
#[derive(Clone, Debug)]
pub struct TaskStatusView {
    pub detail: TaskDetail,
    pub logs: TaskLogPaths,
}

/// A task's output: its record, the end of its summary log, and the log paths.
#[derive(Clone, Debug)]
pub struct TaskOutput {
    pub view: TaskStatusView,
    pub summary_tail: Vec<String>,
}

/// The verbs, for one caller. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    db: Db,
    config: Arc<Config>,
    executor: Option<Executor>,
    /// Without an executor: a counter moved by [`crate::watch::follow_commits`] when another
    /// process commits, and by this service when it changed something, for what waits on changes
    /// (`wait`, resource subscriptions).
    changes: Option<Arc<tokio::sync::watch::Sender<u64>>>,
    /// The caller's project: bare task identifiers and orchestration names are looked for in
    /// it, and lists default to it (`#id` reaches any task).
    project: Project,
    /// Where a task runs when it names no working directory, and what a relative one is
    /// relative to: the process's directory, or the session's root.
    directory: PathBuf,
    /// Who this service serves (what it may ask for).
    caller: Caller,
}

/// How much of a task's summary log [`Service::log_tail`] returns at most.
pub const LOG_TAIL_BYTES: usize = 64 * 1024;
const LOG_TAIL_LINES: usize = 1000;

/// Longest `wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// How often a waiter looks at the database for changes made by other processes.
const WAIT_RECHECK: Duration = Duration::from_secs(1);
/// How long a cancel waits for running attempts to stop.
const CANCEL_WAIT_EXTRA: Duration = Duration::from_secs(2);

impl Service {
    /// `executor` is `None` in the inspect CLI, which runs nothing itself. The caller's project
    /// is that of the process's working directory until [`Service::in_project`] says otherwise.
    pub fn new(db: Db, config: Arc<Config>, executor: Option<Executor>) -> Service {
        let project = Project::of_directory(&config.default_working_directory);
        let directory = config.default_working_directory.clone();
        Service { db, config, executor, changes: None, project, directory, caller: Caller::Mcp }
    }

    /// The same verbs for a person at a terminal (see [`Caller::Person`]).
    pub fn for_person(self) -> Service {
        Service { caller: Caller::Person, ..self }
    }

    /// A service without an executor whose waiters still hear of changes at once: `changes`
    /// is moved by whoever follows the database (see [`crate::watch::follow_commits`]), and by
    /// this service's own writes.
    pub fn with_changes(db: Db, config: Arc<Config>, changes: Arc<tokio::sync::watch::Sender<u64>>) -> Service {
        Service { changes: Some(changes), ..Service::new(db, config, None) }
    }

    /// The same verbs for a caller in `project` (a workflow file's).
    pub fn in_project(&self, project: Project) -> Service {
        Service { project, ..self.clone() }
    }

    /// The same verbs for a caller working in `directory` (an MCP session's root): its project,
    /// and the default working directory of its tasks.
    pub fn in_directory(&self, directory: PathBuf) -> Service {
        Service { project: Project::of_directory(&directory), directory, ..self.clone() }
    }

    /// The caller's project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The project to list: the caller's, or every one.
    pub fn listed_project(&self, all_projects: bool) -> Option<Project> {
        (!all_projects).then(|| self.project.clone())
    }

    fn wake(&self) {
        if let Some(executor) = &self.executor {
            executor.wake();
        }
        if let Some(changes) = &self.changes {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Stores one task. `orchestration_budget` is the budget of the orchestration it creates or
    /// joins (`orchestration_max_budget_usd`). An isolated task that creates its orchestration
    /// records the base of its repository's `HEAD`.
    pub async fn create_task(
        &self,
        input: TaskInput,
        orchestration: Option<String>,
        orchestration_budget: Option<f64>,
    ) -> Result<Created> {
        if let Some(name) = &orchestration {
            check_orchestration_name(name)?;
        }
        let budget_usd = check_budget("orchestration_max_budget_usd", orchestration_budget)?;
        let task = self.check_task(input)?;
        let batch = NewBatch {
            orchestration,
            new_orchestration: false,
            tasks: vec![task],
            queued_by: None,
            scope: self.project.clone(),
            budget_usd,
            default_budget_usd: self.config.default_orchestration_budget_usd,
            isolation: None,
        };
        self.store_batch(batch, &OrchestrationOptions::default()).await
    }

    /// Stores a whole orchestration, all or nothing, with its budget (`max_budget_usd`) if given,
    /// and its isolation options (see [`OrchestrationOptions`]).
    pub async fn create_orchestration(
        &self,
        name: Option<String>,
        budget: Option<f64>,
        options: &OrchestrationOptions,
        mut tasks: Vec<TaskInput>,
    ) -> Result<Created> {
        if let Some(isolation) = &options.isolation {
            for task in &mut tasks {
                task.options_mut().isolation.get_or_insert_with(|| isolation.clone());
            }
        }
        if let Some(name) = &name {
            check_orchestration_name(name)?;
        }
        let budget_usd = check_budget("max_budget_usd", budget)?;
        if tasks.is_empty() {
            return Err(ServiceError::Invalid("tasks is empty: give at least one task".to_owned()));
        }
        let max = self.config.max_tasks_per_orchestration;
        if tasks.len() > max as usize {
            return Err(ServiceError::Invalid(format!(
                "tasks has {} entries, over the limit of {max} for one orchestration (MAX_TASKS_PER_ORCHESTRATION): \
                 split the work into several orchestrations",
                tasks.len()
            )));
        }
        let mut checked: Vec<NewTask> = Vec::with_capacity(tasks.len());
        for (i, input) in tasks.into_iter().enumerate() {
            let label = if input.identifier.is_empty() { format!("tasks[{i}]") } else { input.identifier.clone() };
            let mut task = self.check_task(input).map_err(|e| ServiceError::Invalid(format!("{label}: {e}")))?;
            // The tasks of a graph mostly share their settings and project: one copy for a run
            // of them, not one a task (a 100,000-task graph's memory).
            if let Some(previous) = checked.last() {
                if previous.settings == task.settings {
                    task.settings = Arc::clone(&previous.settings);
                }
                if previous.project == task.project {
                    task.project = previous.project.clone();
                }
            }
            checked.push(task);
        }
        let batch = NewBatch {
            orchestration: name,
            new_orchestration: true,
            tasks: checked,
            queued_by: None,
            scope: self.project.clone(),
            budget_usd,
            default_budget_usd: self.config.default_orchestration_budget_usd,
            isolation: None,
        };
        self.store_batch(batch, options).await
    }

    async fn store_batch(&self, mut batch: NewBatch, options: &OrchestrationOptions) -> Result<Created> {
        batch.queued_by = self.queued_by().await?;
        let (base, notes) = self.isolation_base(&batch.tasks, options).await?;
        batch.isolation = base;
        let max = self.config.max_tasks_per_orchestration;
        let timeout_ms = i64::try_from(self.config.orchestration_timeout.as_millis()).unwrap_or(i64::MAX);
        let mut created = self.db.call(move |s| s.create_batch(&batch, max, timeout_ms, now_ms())).await?;
        created.notes.extend(notes);
        self.wake();
        Ok(created)
    }

    /// Merges an orchestration's integration branch into the current branch of its
    /// repository's checkout (see `git::Git::merge_into_checkout`); says what happened.
    pub async fn merge_into_checkout(&self, orchestration_id: OrchestrationId) -> Result<String> {
        let isolation = self.db.call(move |s| s.isolation_of(orchestration_id)).await?.ok_or_else(|| {
            ServiceError::Invalid(format!(
                "orchestration {orchestration_id} has no isolated tasks: its work is already in its working directories"
            ))
        })?;
        if isolation.integration_commit.is_none() {
            return Err(ServiceError::Invalid(match isolation.integration {
                isolation::IntegrationState::Abandoned => format!(
                    "orchestration {orchestration_id} ended without completing, so nothing was integrated{}: retry it, \
                     or merge the branch of a task that completed",
                    isolation.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
                ),
                _ => format!(
                    "orchestration {orchestration_id} has not completed yet: its results are merged onto {} when it \
                     does; wait for it, then merge",
                    isolation.branch
                ),
            }));
        }
        let repository = PathBuf::from(&isolation.base.repository);
        let git = Git::new();
        let not_merged = |e: crate::git::GitError| {
            ServiceError::Invalid(format!("{} not merged into {}: {e}", isolation.branch, repository.display()))
        };
        // Under the repository's lock, like every git step of claude-worker's: not while an
        // integration or a worktree is being made.
        let common_dir = git.discover(&repository).await.map_err(not_merged)?.common_dir;
        let _lock = git.lock(&common_dir).await.map_err(not_merged)?;
        let merged = git.merge_into_checkout(&repository, &isolation.branch).await.map_err(not_merged)?;
        Ok(format!("{} merged into {}: {merged}", isolation.branch, repository.display()))
    }

    /// The base of a batch's isolated tasks: their repository (one for all), the commit
    /// `base_ref` names now, and a note when the checkout has changes the tasks will not see.
    /// `None` when no task of the batch is isolated.
    async fn isolation_base(
        &self,
        tasks: &[NewTask],
        options: &OrchestrationOptions,
    ) -> Result<(Option<isolation::NewBase>, Vec<String>)> {
        let isolated: Vec<&NewTask> = tasks.iter().filter(|t| t.settings.isolation == Isolation::Worktree).collect();
        if isolated.is_empty() {
            if options.base_ref.is_some() || options.merge_when_done {
                return Err(ServiceError::Invalid(
                    "base_ref and merge_when_done apply to isolated tasks: give isolation \"worktree\" too".to_owned(),
                ));
            }
            return Ok((None, Vec::new()));
        }
        // One git call a directory, not a task: a batch's tasks mostly share a few directories.
        let mut directories: Vec<&NewTask> = Vec::new();
        for task in &isolated {
            if !directories.iter().any(|seen| seen.settings.working_directory == task.settings.working_directory) {
                directories.push(task);
            }
        }
        let git = Git::new();
        let mut top: Option<PathBuf> = None;
        for task in directories {
            let found = git
                .discover(Path::new(&task.settings.working_directory))
                .await
                .map(|info| info.top)
                .map_err(|e| ServiceError::Invalid(format!("{}: isolation \"worktree\": {e}", task.identifier)))?;
            match &top {
                None => top = Some(found),
                Some(first) if *first != found => {
                    return Err(ServiceError::Invalid(format!(
                        "{}: its working directory is in the repository {}, the other isolated tasks' in {}: an \
                         orchestration merges its tasks' results in one repository, so queue them separately",
                        task.identifier,
                        found.display(),
                        first.display()
                    )));
                }
                Some(_) => {}
            }
        }
        let Some(top) = top else { return Ok((None, Vec::new())) };
        let base_ref = options.base_ref.clone().unwrap_or_else(|| "HEAD".to_owned());
        let base_commit = git
            .resolve_commit(&top, &base_ref)
            .await
            .map_err(|e| ServiceError::Invalid(format!("base_ref {base_ref:?}: {e}")))?;
        let dirty = git.dirty_files(&top).await.map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let notes = isolation::dirty_note(&top.to_string_lossy(), &base_commit, &dirty).into_iter().collect();
        let labels_in_use = git.labels_in_use(&top).await.map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let base = isolation::Base {
            repository: top.to_string_lossy().into_owned(),
            base_ref,
            base_commit,
            merge_when_done: options.merge_when_done,
        };
        Ok((Some(isolation::NewBase { base, labels_in_use }), notes))
    }

    /// The task this process runs inside, when its tag names an attempt the database knows,
    /// and the depth what it queues gets; refused beyond `CLAUDE_WORKER_MAX_DEPTH`.
    async fn queued_by(&self) -> Result<Option<QueuedBy>> {
        let Some(text) = &self.config.run_tag else { return Ok(None) };
        let Some(tag) = crate::runner::parse_run_tag(text) else {
            tracing::info!(tag = ?text, "{} is not a tag claude-worker made: work is queued as from outside any task", crate::runner::RUN_TAG_VAR);
            return Ok(None);
        };
        let task_id = tag.task_id;
        let attempt = self.db.call(move |s| s.attempt_of(task_id)).await?;
        let decision = queued_by(&tag, attempt.as_ref(), self.config.max_depth);
        if let Ok(None) = decision {
            tracing::info!(tag = ?text, "the task {} names has no such attempt: work is queued as from outside any task", crate::runner::RUN_TAG_VAR);
        }
        decision.map_err(ServiceError::Invalid)
    }

    /// Checks a task's fields and applies the defaults.
    fn check_task(&self, task: TaskInput) -> Result<NewTask> {
        let invalid = |m: String| ServiceError::Invalid(m);
        let (identifier, prompt, depends_on_text, wait_after_dependencies) =
            (task.identifier, task.prompt, task.depends_on, task.wait_after_dependencies);
        let options = task.options.map(|o| *o).unwrap_or_default();
        graph::check_identifier(&identifier).map_err(invalid)?;
        if prompt.trim().is_empty() {
            return Err(invalid("execution_prompt is empty: say what the task should do".to_owned()));
        }
        if prompt.len() > self.config.max_prompt_bytes {
            return Err(invalid(format!(
                "execution_prompt is {} bytes, over the limit of {} (CLAUDE_WORKER_MAX_PROMPT_BYTES): put the \
                 material in a file and tell the task to read it",
                prompt.len(),
                self.config.max_prompt_bytes
            )));
        }
        if prompt.contains('\0') {
            return Err(invalid("execution_prompt contains a NUL byte: remove it".to_owned()));
        }
        for (field, value) in
            [("system_prompt", &options.system_prompt), ("append_system_prompt", &options.append_system_prompt)]
        {
            if let Some(value) = value
                && value.len() > self.config.max_prompt_bytes
            {
                return Err(invalid(format!(
                    "{field} is {} bytes, over the limit of {} (CLAUDE_WORKER_MAX_PROMPT_BYTES)",
                    value.len(),
                    self.config.max_prompt_bytes
                )));
            }
        }
        // These become command-line arguments of `claude` (or its directory), which cannot
        // carry a NUL byte: refused here, not failed at spawn time.
        for (field, value) in [
            ("working_directory", options.working_directory.as_deref()),
            ("model", options.model.as_deref()),
            ("system_prompt", options.system_prompt.as_deref()),
            ("append_system_prompt", options.append_system_prompt.as_deref()),
            ("permission_mode", options.permission_mode.as_deref()),
        ] {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(invalid(format!("{field} contains a NUL byte: remove it")));
            }
        }
        let working_directory = self.check_directory(options.working_directory.as_deref())?;
        let model = options.model.unwrap_or_else(|| self.config.default_model.clone());
        if model.is_empty()
            || model.len() > 200
            || model.starts_with('-')
            || model.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(format!(
                "model {model:?} is not a model name: use an alias (sonnet, opus, haiku) or a full model id"
            )));
        }
        let permission_mode = options.permission_mode.unwrap_or_else(|| self.config.default_permission_mode.clone());
        if !PERMISSION_MODES.contains(&permission_mode.as_str()) {
            return Err(invalid(format!(
                "permission_mode {permission_mode:?} is not one of {}",
                PERMISSION_MODES.join(", ")
            )));
        }
        if permission_mode == "bypassPermissions" && !self.config.allow_bypass_permissions {
            return Err(invalid(
                "permission_mode bypassPermissions is not allowed on this server: the user can allow it by \
                 starting claude-worker with CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS=true; otherwise use \
                 acceptEdits with allowed_tools"
                    .to_owned(),
            ));
        }
        let tools = |name: &str, list: Option<Vec<String>>| -> Result<Vec<String>> {
            let list = list.unwrap_or_default();
            if list.len() > MAX_TOOL_RULES {
                return Err(invalid(format!(
                    "{name} has {} entries, over the limit of {MAX_TOOL_RULES}: use patterns such as Bash(git:*)",
                    list.len()
                )));
            }
            for tool in &list {
                if tool.len() > MAX_TOOL_RULE_BYTES {
                    return Err(invalid(format!(
                        "{name} has an entry of {} bytes, over the limit of {MAX_TOOL_RULE_BYTES}: {}",
                        tool.len(),
                        graph::shown(tool)
                    )));
                }
                if tool.contains('\0') {
                    return Err(invalid(format!("{name} entry {} contains a NUL byte: remove it", graph::shown(tool))));
                }
                if tool.trim().is_empty() || tool.contains(['\n', '\r']) {
                    return Err(invalid(format!("{name} has an empty or multi-line entry {}", graph::shown(tool))));
                }
                // The CLI would read it as one of its own flags (say, another --permission-mode).
                if tool.trim_start().starts_with('-') {
                    return Err(invalid(format!(
                        "{name} entry {} starts with '-': give tool names or patterns such as Edit or Bash(git log:*)",
                        graph::shown(tool)
                    )));
                }
            }
            Ok(list)
        };
        let allowed_tools = tools("allowed_tools", options.allowed_tools)?;
        let disallowed_tools = tools("disallowed_tools", options.disallowed_tools)?;
        if let Some(turns) = options.max_turns
            && !(1..=10_000).contains(&turns)
        {
            return Err(invalid(format!("max_turns {turns} must be from 1 to 10000")));
        }
        check_budget("max_budget_usd", options.max_budget_usd)?;
        let timeout_seconds = options.timeout_seconds.unwrap_or_else(|| self.config.task_timeout.as_secs().max(1));
        if !(1..=7 * 86_400).contains(&timeout_seconds) {
            return Err(invalid(format!("timeout_seconds {timeout_seconds} must be from 1 to 604800 (a week)")));
        }
        let max_attempts = options.max_attempts.unwrap_or(self.config.max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(invalid(format!("max_attempts {max_attempts} must be from 1 to 100")));
        }
        let priority = options.priority.unwrap_or(0);
        if !(-1_000_000..=1_000_000).contains(&priority) {
            return Err(invalid(format!("priority {priority} must be from -1000000 to 1000000")));
        }
        let wait = wait_after_dependencies.unwrap_or(0.0);
        if !(wait.is_finite() && (0.0..=86_400.0).contains(&wait)) {
            return Err(invalid(format!("wait_after_dependencies {wait} must be from 0 to 86400 seconds")));
        }
        // Checked here, before any transaction: what the store then does with them is bounded
        // (at most an orchestration's worth of short identifiers).
        let max_dependencies = self.config.max_tasks_per_orchestration as usize;
        if depends_on_text.len() > max_dependencies {
            return Err(invalid(format!(
                "depends_on has {} entries, more than an orchestration can hold ({max_dependencies}, \
                 MAX_TASKS_PER_ORCHESTRATION)",
                depends_on_text.len()
            )));
        }
        let mut depends_on = Vec::with_capacity(depends_on_text.len());
        for dep in &depends_on_text {
            let dep = dep.trim();
            if dep.is_empty() {
                return Err(invalid("depends_on has an empty entry: give a task identifier or #<task_id>".to_owned()));
            }
            let task_ref = TaskRef::parse(dep);
            if let TaskRef::Identifier(name) = &task_ref {
                graph::check_identifier(name).map_err(|e| invalid(format!("depends_on: {e}")))?;
            }
            if !depends_on.contains(&task_ref) {
                depends_on.push(task_ref);
            }
        }
        let isolation = match options.isolation.as_deref() {
            None => self.config.default_isolation,
            Some(text) => Isolation::parse(text)
                .ok_or_else(|| invalid(format!("isolation {text:?} is not valid: give \"none\" or \"worktree\"")))?,
        };
        let on_conflict = match options.on_conflict.as_deref() {
            None => OnConflict::Resolve,
            Some(text) => OnConflict::parse(text)
                .ok_or_else(|| invalid(format!("on_conflict {text:?} is not valid: give \"resolve\" or \"fail\"")))?,
        };
        let (verify, verify_timeout_seconds, verify_attempts) =
            self.check_verify(options.verify, options.verify_timeout_seconds, options.verify_attempts)?;
        // Results that reach the dependents (issue 11).
        if let Some(schema) = &options.result_schema {
            crate::result_schema::check_schema(schema).map_err(invalid)?;
        }
        let project = Project::of_task(Path::new(&working_directory), &self.project);
        Ok(NewTask {
            project,
            identifier,
            prompt,
            depends_on,
            settings: std::sync::Arc::new(TaskSettings {
                working_directory,
                model,
                system_prompt: options.system_prompt.filter(|s| !s.is_empty()),
                append_system_prompt: options.append_system_prompt.filter(|s| !s.is_empty()),
                permission_mode,
                allowed_tools,
                disallowed_tools,
                max_turns: options.max_turns,
                max_budget_usd: options.max_budget_usd,
                timeout_seconds,
                max_attempts,
                priority,
                wait_after_dependencies: wait,
                isolation,
                on_conflict,
                verify,
                verify_timeout_seconds,
                verify_attempts,
                include_dependency_results: options.include_dependency_results.unwrap_or(true),
                result_schema: options.result_schema,
            }),
        })
    }

    /// A task's `verify` options, checked, with their defaults; an MCP caller's command only as
    /// `CLAUDE_WORKER_ALLOW_VERIFY` allows.
    fn check_verify(
        &self,
        verify: Option<String>,
        timeout_seconds: Option<u64>,
        attempts: Option<u32>,
    ) -> Result<(Option<String>, u64, u32)> {
        let invalid = |m: String| ServiceError::Invalid(m);
        let verify = verify.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(command) = &verify {
            if command.len() > crate::verify::MAX_COMMAND_BYTES {
                return Err(invalid(format!(
                    "verify is {} bytes, over the limit of {}: put the check in a script and run that",
                    command.len(),
                    crate::verify::MAX_COMMAND_BYTES
                )));
            }
            if command.contains('\0') {
                return Err(invalid("verify contains a NUL byte: remove it".to_owned()));
            }
            if self.caller == Caller::Mcp {
                self.config.allow_verify.check(command).map_err(invalid)?;
            }
        }
        let timeout_seconds = timeout_seconds.unwrap_or_else(|| self.config.verify_timeout.as_secs().max(1));
        if !(1..=7 * 86_400).contains(&timeout_seconds) {
            return Err(invalid(format!("verify_timeout_seconds {timeout_seconds} must be from 1 to 604800 (a week)")));
        }
        let attempts = attempts.unwrap_or(DEFAULT_VERIFY_ATTEMPTS);
        if attempts > MAX_VERIFY_ATTEMPTS {
            return Err(invalid(format!(
                "verify_attempts {attempts} must be from 0 to {MAX_VERIFY_ATTEMPTS} (how many times Claude is asked \
                 to fix what verify found)"
            )));
        }
        Ok((verify, timeout_seconds, attempts))
    }

    /// The canonical, existing directory a task runs in.
    fn check_directory(&self, given: Option<&str>) -> Result<String> {
        let base = &self.directory;
        let path: PathBuf = match given {
            None | Some("") => base.clone(),
            Some(p) => {
                let expanded = match p.strip_prefix("~/") {
                    Some(rest) => {
                        std::env::var_os("HOME").map_or_else(|| PathBuf::from(p), |h| Path::new(&h).join(rest))
                    }
                    None => PathBuf::from(p),
                };
                if expanded.is_absolute() { expanded } else { base.join(expanded) }
            }
        };
        let canonical = std::fs::canonicalize(&path).map_err(|e| {
            ServiceError::Invalid(format!(
                "working_directory {} cannot be used ({e}): create it first, or give an existing absolute path",
                path.display()
            ))
        })?;
        if !canonical.is_dir() {
            return Err(ServiceError::Invalid(format!("working_directory {} is not a directory", canonical.display())));
        }
        canonical
            .into_os_string()
            .into_string()
            .map_err(|_| ServiceError::Invalid("working_directory must be valid UTF-8".to_owned()))
    }

    fn log_paths(&self, task_id: i64) -> TaskLogPaths {
        TaskLogPaths::new(&self.config.task_log_dir(), task_id)
    }

    /// The status of a task or an orchestration.
    pub async fn status(&self, target: &Target) -> Result<Status> {
        match target {
            Target::Task(task) => {
                check_task_ref(task)?;
                let task = task.clone();
                let scope = self.project.clone();
                let detail = self.db.call(move |s| s.task(&task, &scope)).await?;
                let logs = self.log_paths(detail.task.task_id);
                Ok(Status::Task(Box::new(TaskStatusView { detail, logs })))
            }
            Target::Orchestration(id) => {
                let id = *id;
                Ok(Status::Orchestration(self.db.call(move |s| s.orchestration(id)).await?))
            }
        }
    }

    /// What the database knows of the account's usage limits: the pause, the last warning.
    pub async fn usage_limits(&self) -> Result<crate::store::UsageLimits> {
        Ok(self.db.call(|s| s.usage_limits()).await?)
    }

    /// A person's "try now": ends the usage-limit pause at once (every executor on the database
    /// notices the commit, ends the pause and claims). The pause it cut short, if one was on.
    pub async fn resume_now(&self) -> Result<Option<crate::usage_limit::Pause>> {
        let resumed = self.db.call(|s| s.resume_now(now_ms())).await?;
        self.wake();
        Ok(resumed)
    }

    /// The orchestration that `text` names: its id (`12` or `#12`) or its name.
    pub async fn find_orchestration(&self, text: &str) -> Result<OrchestrationId> {
        let text = text.trim();
        let digits = text.strip_prefix('#').unwrap_or(text);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = digits.parse()
        {
            return Ok(id);
        }
        if let Some(id) = self.orchestration_named(text).await? {
            return Ok(id);
        }
        let (name, project) = (text.to_owned(), self.project.clone());
        let elsewhere = self.db.call(move |s| s.orchestration_named_elsewhere(&name, &project)).await?;
        match elsewhere {
            Some((id, other)) => Err(ServiceError::NotFound(format!(
                "no orchestration {text:?} in this project ({}): orchestration {id} {text:?} is in project {other}. \
                 Names are per project; give its id {id} to reach that one",
                self.project
            ))),
            None => Err(ServiceError::NotFound(format!(
                "no orchestration {text:?} in this project ({}): give an orchestration id or name (names are per \
                 project; list_orchestrations shows the stored ones)",
                self.project
            ))),
        }
    }

    /// The orchestration of this name in the caller's project (the newest), if there is one.
    pub async fn orchestration_named(&self, name: &str) -> Result<Option<OrchestrationId>> {
        let name = name.to_owned();
        let project = self.project.clone();
        Ok(self.db.call(move |s| s.orchestration_named(&name, &project)).await?)
    }

    /// An orchestration's counters and cost, without its tasks.
    pub async fn orchestration_summary(&self, id: OrchestrationId) -> Result<OrchestrationSummary> {
        Ok(self.db.call(move |s| s.orchestration_summary(id)).await?)
    }

    /// The names of the caller's project's orchestrations that are `base` or `base-...`.
    pub async fn orchestration_names_like(&self, base: &str) -> Result<Vec<String>> {
        let base = base.to_owned();
        let project = self.project.clone();
        Ok(self.db.call(move |s| s.orchestration_names_like(&base, &project)).await?)
    }

    /// A task's history, oldest first.
    pub async fn history(&self, task: TaskRef) -> Result<Vec<crate::model::TaskEvent>> {
        check_task_ref(&task)?;
        let scope = self.project.clone();
        Ok(self.db.call(move |s| s.events(&task, &scope)).await?)
    }

    pub async fn list_tasks(&self, filter: TaskFilter) -> Result<Vec<TaskListItem>> {
        Ok(self.db.call(move |s| s.list_tasks(&filter)).await?)
    }

    pub async fn list_orchestrations(&self, filter: OrchestrationFilter) -> Result<Vec<OrchestrationSummary>> {
        Ok(self.db.call(move |s| s.list_orchestrations(&filter)).await?)
    }

    /// A task's result and the end of its summary log.
    pub async fn output(&self, task: TaskRef, tail: usize) -> Result<TaskOutput> {
        let Status::Task(view) = self.status(&Target::Task(task)).await? else {
            return Err(ServiceError::Invalid("expected a task".to_owned()));
        };
        let path = view.logs.summary.clone();
        let summary_tail = tokio::task::spawn_blocking(move || tail_lines(&path, tail))
            .await
            .map_err(|e| ServiceError::Invalid(format!("cannot read the log: {e}")))?
            .unwrap_or_default();
        Ok(TaskOutput { view: *view, summary_tail })
    }

    /// The end of a task's summary log: its last lines, at most [`LOG_TAIL_BYTES`] (cut at a
    /// line start), and whether earlier lines were left out.
    pub async fn log_tail(&self, task: TaskRef) -> Result<(TaskStatusView, String, bool)> {
        let Status::Task(view) = self.status(&Target::Task(task)).await? else {
            return Err(ServiceError::Invalid("expected a task".to_owned()));
        };
        let path = view.logs.summary.clone();
        let lines = tokio::task::spawn_blocking(move || tail_lines(&path, LOG_TAIL_LINES))
            .await
            .map_err(|e| ServiceError::Invalid(format!("cannot read the log: {e}")))?
            .unwrap_or_default();
        let mut cut = lines.len() == LOG_TAIL_LINES;
        let mut size = 0;
        let mut first = lines.len();
        while first > 0 && size + lines[first - 1].len() < LOG_TAIL_BYTES {
            first -= 1;
            size += lines[first].len() + 1;
        }
        cut |= first > 0;
        let mut text = String::with_capacity(size);
        for line in &lines[first..] {
            text.push_str(line);
            text.push('\n');
        }
        Ok((*view, text, cut))
    }

    /// At most `max` bytes of a task's summary (or detailed) log from byte `from`, and the log's
    /// size: for following a log from elsewhere (the dashboard).
    pub async fn log_piece(
        &self,
        task: TaskRef,
        detailed: bool,
        from: u64,
        max: usize,
    ) -> Result<(TaskStatusView, Vec<u8>, u64)> {
        let Status::Task(view) = self.status(&Target::Task(task)).await? else {
            return Err(ServiceError::Invalid("expected a task".to_owned()));
        };
        let path = if detailed { view.logs.detailed.clone() } else { view.logs.summary.clone() };
        let (bytes, size) = tokio::task::spawn_blocking(move || crate::logs::read_piece(&path, from, max))
            .await
            .map_err(|e| ServiceError::Invalid(format!("cannot read the log: {e}")))?
            .map_err(|e| ServiceError::Invalid(format!("cannot read the log: {e}")))?;
        Ok((*view, bytes, size))
    }

    /// A receiver that changes whenever a task may have changed, in this process or (as noticed
    /// by the executor's database watch) in another; `None` without an executor.
    pub fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match (&self.executor, &self.changes) {
            (Some(executor), _) => Some(executor.subscribe()),
            (None, Some(changes)) => Some(changes.subscribe()),
            (None, None) => None,
        }
    }

    /// The marks of these tasks and orchestrations, to tell when they move.
    pub async fn marks(&self, tasks: Vec<crate::model::TaskId>, orchestrations: Vec<OrchestrationId>) -> Result<Marks> {
        Ok(self.db.call(move |s| s.marks(&tasks, &orchestrations)).await?)
    }

    /// Cancels a task (skipping its dependents) or a whole orchestration. Running attempts are
    /// stopped; this waits (a little longer than the kill grace periods) for them to end.
    pub async fn cancel(&self, target: Target, reason: Option<String>) -> Result<CancelOutcome> {
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .map(|r| if r.chars().count() > MAX_REASON_CHARS { r.chars().take(MAX_REASON_CHARS).collect() } else { r })
            .unwrap_or_else(|| "cancelled by request".to_owned());
        if let Target::Task(task) = &target {
            check_task_ref(task)?;
        }
        let store_target = match &target {
            Target::Task(t) => CancelTarget::Task(t.clone(), self.project.clone()),
            Target::Orchestration(id) => CancelTarget::Orchestration(*id),
        };
        let outcome = self.db.call(move |s| s.cancel(&store_target, &reason, now_ms())).await?;
        if let Some(executor) = &self.executor {
            executor.announce(&outcome);
        }
        // Attempts running in this process are stopped now; others by their owner, which sees
        // the change in the database.
        let local: Vec<i64> = match &self.executor {
            Some(executor) => outcome.stopping.iter().map(|(id, _)| *id).filter(|id| executor.stop(*id)).collect(),
            None => Vec::new(),
        };
        self.wake();
        if local.is_empty() {
            return Ok(outcome);
        }
        // Wait for the stopped attempts to write their end, so the answer is final.
        let deadline = Instant::now() + self.config.kill_grace * 2 + CANCEL_WAIT_EXTRA;
        let mut outcome = outcome;
        for task_id in local {
            let target = Target::Task(TaskRef::Id(task_id));
            let remaining = deadline.saturating_duration_since(Instant::now());
            if let Ok((Status::Task(view), false)) = self.wait(&target, remaining, |_| {}).await
                && view.detail.task.status == crate::model::TaskStatus::Cancelled
            {
                outcome.cancelled.push(task_id);
            }
        }
        // Their dependents, transitively, were skipped when they stopped.
        if !outcome.skipped_when_stopped.is_empty()
            && let Ok(Status::Orchestration(detail)) =
                self.status(&Target::Orchestration(outcome.orchestration_id)).await
        {
            for task in &detail.tasks {
                let skipped = task.status == crate::model::TaskStatus::Skipped;
                if skipped
                    && outcome.skipped_when_stopped.contains(&task.task_id)
                    && !outcome.skipped.contains(&task.task_id)
                {
                    outcome.skipped.push(task.task_id);
                }
            }
        }
        outcome.cancelled.sort_unstable();
        outcome.skipped.sort_unstable();
        Ok(outcome)
    }

    /// Puts a failed or cancelled task back in line.
    pub async fn retry(&self, task: TaskRef) -> Result<RetryOutcome> {
        check_task_ref(&task)?;
        let scope = self.project.clone();
        let outcome = self.db.call(move |s| s.retry(&task, &scope, now_ms())).await?;
        self.wake();
        Ok(outcome)
    }

    /// Puts every failed, cancelled and skipped task of an orchestration back in line with
    /// fresh attempts, in one transaction, and starts a fresh orchestration deadline. Completed
    /// tasks are left as they are. `Invalid` when none of its tasks can be retried.
    pub async fn retry_orchestration(&self, id: OrchestrationId) -> Result<OrchestrationRetryOutcome> {
        let outcome = self.db.call(move |s| s.retry_orchestration(id, now_ms())).await?;
        self.wake();
        Ok(outcome)
    }

    /// Sets an orchestration's budget and carries on: what the old budget stopped (and its
    /// dependents skipped because of it) goes back in line. `Invalid` for a budget that is not
    /// one, or that the orchestration has already spent.
    pub async fn set_budget(&self, id: OrchestrationId, max_budget_usd: f64) -> Result<BudgetRaise> {
        let budget_usd = crate::budget::check("max_budget_usd", max_budget_usd).map_err(ServiceError::Invalid)?;
        let outcome = self.db.call(move |s| s.set_budget(id, budget_usd, now_ms())).await?;
        self.wake();
        Ok(outcome)
    }

    /// Whether the target finished, and its progress: for an orchestration only its counters
    /// are read (a waiter looks after every change; the task list is read once, at the end).
    async fn peek(&self, target: &Target) -> Result<(bool, (f64, f64, String))> {
        match target {
            Target::Task(_) => {
                let status = self.status(target).await?;
                Ok((status.is_finished(), status.progress()))
            }
            Target::Orchestration(id) => {
                let id = *id;
                let counters = self.db.call(move |s| s.orchestration_counters(id)).await?;
                let mut finished = counters.unfinished() == 0;
                if finished {
                    // Its end includes merging its isolated tasks' results onto its integration
                    // branch (or adding the task that resolves their conflicts).
                    let isolation = self.db.call(move |s| s.isolation_of(id)).await?;
                    finished = isolation.is_none_or(|i| i.integration != isolation::IntegrationState::Pending);
                }
                Ok((finished, counters_progress(&counters)))
            }
        }
    }

    /// Waits until the target finished or `timeout` passed; calls `on_change` with each new
    /// progress (done, total, one line). Returns the last state and whether it timed out.
    pub async fn wait(
        &self,
        target: &Target,
        timeout: Duration,
        mut on_change: impl FnMut((f64, f64, String)),
    ) -> Result<(Status, bool)> {
        let deadline = Instant::now() + timeout.min(MAX_WAIT);
        let mut changes = self.changes();
        let mut last: Option<(f64, f64, String)> = None;
        loop {
            let (finished, progress) = self.peek(target).await?;
            if last.as_ref() != Some(&progress) {
                on_change(progress.clone());
                last = Some(progress);
            }
            if finished {
                return Ok((self.status(target).await?, false));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok((self.status(target).await?, true));
            }
            let recheck = (now + WAIT_RECHECK).min(deadline);
            match changes.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = rx.changed() => {}
                        () = tokio::time::sleep_until(recheck) => {}
                    }
                }
                None => tokio::time::sleep_until(recheck).await,
            }
        }
    }
}

/// The highest `CLAUDE_WORKER_MAX_DEPTH` accepted (see `config.rs`).
const MAX_DEPTH_LIMIT: u32 = 100;

/// Whose work a batch queued inside the attempt `tag` names is, and at what depth: `None` when
/// the tag names no task, or an attempt that task never had (a tag from a stale or forged
/// environment is not believed: it would only attach work to a task that did not queue it).
/// A task at depth N queues at N + 1; beyond `max_depth` the batch is refused with a sentence
/// that says how to raise the limit.
fn queued_by(
    tag: &crate::runner::RunTag,
    attempt: Option<&crate::store::AttemptOf>,
    max_depth: u32,
) -> std::result::Result<Option<QueuedBy>, String> {
    let Some(attempt) = attempt else { return Ok(None) };
    let had_it =
        tag.fence < attempt.fence || (tag.fence == attempt.fence && attempt.owner.as_deref() == Some(&tag.owner));
    if !had_it {
        return Ok(None);
    }
    let depth = attempt.depth.saturating_add(1);
    if depth > max_depth {
        let raise = if depth <= MAX_DEPTH_LIMIT {
            format!(
                "or raise the limit where claude-worker is registered, for example `claude mcp add claude-worker -s \
                 user -e CLAUDE_WORKER_MAX_DEPTH={depth} -- claude-worker`"
            )
        } else {
            format!("the limit cannot be raised beyond {MAX_DEPTH_LIMIT}")
        };
        return Err(format!(
            "not queued: task #{} (this task) is at depth {} of tasks queued by tasks, and CLAUDE_WORKER_MAX_DEPTH is \
             {max_depth}, so what it queues would be at depth {depth}, over the limit. Do the work in this task \
             instead, {raise}",
            tag.task_id, attempt.depth
        ));
    }
    Ok(Some(QueuedBy { task_id: tag.task_id, depth }))
}

/// A budget a caller gave, checked ([`crate::budget::check`]); `field` names it in the message.
fn check_budget(field: &str, usd: Option<f64>) -> Result<Option<f64>> {
    usd.map(|usd| crate::budget::check(field, usd)).transpose().map_err(ServiceError::Invalid)
}

fn check_orchestration_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "orchestration name {} must be 1 to 100 printable characters",
            graph::shown(name)
        )));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::Invalid(format!(
            "orchestration name {name:?} is all digits, which reads as an id: add a letter"
        )));
    }
    Ok(())
}

/// How many times Claude is asked to fix what `verify` found, by default and at most.
const DEFAULT_VERIFY_ATTEMPTS: u32 = 2;
const MAX_VERIFY_ATTEMPTS: u32 = 20;

/// Most entries in `allowed_tools` or `disallowed_tools`, and the longest entry.
const MAX_TOOL_RULES: usize = 1000;
const MAX_TOOL_RULE_BYTES: usize = 4096;
/// The longest `reason` a cancel keeps (the rest is cut): it goes into every cancelled task's
/// history.
const MAX_REASON_CHARS: usize = 1000;

/// A task reference a caller gave: an identifier must be one that could exist, so that no
/// lookup, message or transaction ever works on megabytes of it.
fn check_task_ref(task: &TaskRef) -> Result<()> {
    match task {
        TaskRef::Id(_) => Ok(()),
        TaskRef::Identifier(name) => graph::check_identifier(name).map_err(|e| {
            ServiceError::NotFound(format!("no task {}: {e}; give a task identifier or #<task_id>", graph::shown(name)))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RunTag;
    use crate::store::AttemptOf;

    fn tag(fence: i64) -> RunTag {
        RunTag { owner: "host:1:2".to_owned(), task_id: 12, fence }
    }

    fn attempt(fence: i64, owner: &str, depth: u32) -> AttemptOf {
        AttemptOf { fence, owner: Some(owner.to_owned()), depth }
    }

    #[test]
    fn a_task_queues_one_level_deeper_than_itself() {
        assert_eq!(
            queued_by(&tag(3), Some(&attempt(3, "host:1:2", 0)), 3),
            Ok(Some(QueuedBy { task_id: 12, depth: 1 }))
        );
        assert_eq!(
            queued_by(&tag(3), Some(&attempt(3, "host:1:2", 2)), 3),
            Ok(Some(QueuedBy { task_id: 12, depth: 3 }))
        );
        // An older attempt of the same task (a process it left behind) still queues as the task.
        assert_eq!(
            queued_by(&tag(2), Some(&attempt(3, "other:5:6", 1)), 3),
            Ok(Some(QueuedBy { task_id: 12, depth: 2 }))
        );
    }

    #[test]
    fn beyond_the_limit_is_refused_with_the_way_to_raise_it() {
        let refused = queued_by(&tag(3), Some(&attempt(3, "host:1:2", 3)), 3).expect_err("refused");
        assert!(refused.contains("CLAUDE_WORKER_MAX_DEPTH is 3"), "{refused}");
        assert!(refused.contains("depth 4"), "{refused}");
        assert!(refused.contains("-e CLAUDE_WORKER_MAX_DEPTH=4"), "{refused}");
        // A limit of 0: no task queues anything.
        assert!(queued_by(&tag(1), Some(&attempt(1, "host:1:2", 0)), 0).is_err());
        // At the highest limit, no higher one is suggested.
        let top = queued_by(&tag(3), Some(&attempt(3, "host:1:2", 100)), 100).expect_err("refused");
        assert!(top.contains("cannot be raised beyond 100"), "{top}");
        assert!(!top.contains("MAX_DEPTH=101"), "{top}");
    }

    #[test]
    fn a_tag_the_database_does_not_back_is_ignored() {
        // No such task.
        assert_eq!(queued_by(&tag(3), None, 3), Ok(None));
        // An attempt the task never had: a fence from the future, or the current fence with
        // another owner.
        assert_eq!(queued_by(&tag(4), Some(&attempt(3, "host:1:2", 3)), 3), Ok(None));
        assert_eq!(queued_by(&tag(3), Some(&attempt(3, "other:5:6", 3)), 3), Ok(None));
        assert_eq!(queued_by(&tag(3), Some(&AttemptOf { fence: 3, owner: None, depth: 0 }), 3), Ok(None));
    }
}
