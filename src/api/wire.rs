//! The JSON shapes of the verbs: arguments as the caller sends them (MCP tool arguments, HTTP
//! request bodies and queries, workflow files) and answers (MCP `structuredContent`, HTTP
//! response bodies), with their JSON Schemas. Conversions from the domain types are written
//! out by hand here, so that the core never derives a wire format.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{
    Millis, OrchestrationDetail, OrchestrationSummary, TaskError, TaskLink, TaskListItem, TaskRef, TaskStatus,
    round_usd,
};
use crate::service::{Status, TaskInput, TaskOptions, TaskOutput, TaskStatusView};
use crate::store::{
    BudgetRaise, CancelOutcome, Created, OrchestrationRetryOutcome, RetriedTask, RetryOutcome, UsageLimits,
};
use crate::time::rfc3339;
use crate::usage_limit;

/// A task named by identifier (`build_api`), by `#<task_id>`, or by its id as a number.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum TaskArg {
    Id(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for TaskArg {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TaskArg;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a task identifier such as \"build_api\", or a task id such as \"#12\" or 12")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TaskArg, E> {
                Ok(TaskArg::Name(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TaskArg, E> {
                Ok(TaskArg::Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TaskArg, E> {
                i64::try_from(v).map(TaskArg::Id).map_err(|_| E::custom("the task id is too large"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl TaskArg {
    pub fn to_ref(&self) -> TaskRef {
        match self {
            TaskArg::Id(id) => TaskRef::Id(*id),
            TaskArg::Name(name) => TaskRef::parse(name),
        }
    }
}

/// Declares an argument struct with the per-task options that `create_task` and the tasks of
/// `create_orchestration` share, written out in each (serde's `flatten` would lose both
/// `deny_unknown_fields` and the field names in error messages).
macro_rules! with_task_options {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Directory to run in (absolute, or relative to the default). Default: the client's first root, else the server's directory.
            pub working_directory: Option<String>,
            /// sonnet, opus, haiku or a full model id.
            pub model: Option<String>,
            pub system_prompt: Option<String>,
            pub append_system_prompt: Option<String>,
            /// default, acceptEdits, plan, dontAsk, auto (bypassPermissions only if the server allows it).
            pub permission_mode: Option<String>,
            #[serde(default, deserialize_with = "one_or_many_opt")]
            pub allowed_tools: Option<Vec<String>>,
            #[serde(default, deserialize_with = "one_or_many_opt")]
            pub disallowed_tools: Option<Vec<String>>,
            pub max_turns: Option<u32>,
            pub max_budget_usd: Option<f64>,
            pub timeout_seconds: Option<u64>,
            /// Attempts for transient failures (API overload, rate limit). Default: the server's (3).
            pub max_attempts: Option<u32>,
            /// Higher runs first.
            pub priority: Option<i64>,
            /// "worktree": run in a git worktree of its own, on its own branch, started from the dependencies' merged results (default: the server's, usually "none").
            pub isolation: Option<String>,
            /// With isolation, when the dependencies' results conflict: "resolve" (start on the conflicted merge, told to resolve it; default) or "fail".
            pub on_conflict: Option<String>,
            // Checked completion.
            /// Shell command run (sh -c, in the working directory) once Claude is done: exit 0 completes the task; otherwise Claude is asked to fix the cause and it runs again. Over MCP only as the server's CLAUDE_WORKER_ALLOW_VERIFY allows.
            pub verify: Option<String>,
            /// Seconds verify may run. Default: the server's (600).
            pub verify_timeout_seconds: Option<u64>,
            /// Fixes asked for before the task fails with verification_failed (0-20). Default 2.
            pub verify_attempts: Option<u32>,
            // Results that reach the dependents (issue 11).
            /// End the prompt with the results of the tasks this one depends on (identifier, result text, structured result; a few KiB each). Default true.
            pub include_dependency_results: Option<bool>,
            /// A JSON Schema object the result must match: Claude answers with JSON through it (claude --json-schema), returned as structured_result and passed to dependents. A result that does not match fails the task (structured_result_invalid).
            pub result_schema: Option<serde_json::Map<String, serde_json::Value>>,
        }

        impl $name {
            /// The service's input: identifier, prompt, dependencies, delay, and the options.
            pub fn into_input(self, identifier: String, prompt: String, depends_on: Vec<String>, wait: Option<f64>) -> TaskInput {
                let options = TaskOptions {
                    working_directory: self.working_directory,
                    model: self.model,
                    system_prompt: self.system_prompt,
                    append_system_prompt: self.append_system_prompt,
                    permission_mode: self.permission_mode,
                    allowed_tools: self.allowed_tools,
                    disallowed_tools: self.disallowed_tools,
                    max_turns: self.max_turns,
                    max_budget_usd: self.max_budget_usd,
                    timeout_seconds: self.timeout_seconds,
                    max_attempts: self.max_attempts,
                    priority: self.priority,
                    isolation: self.isolation,
                    on_conflict: self.on_conflict,
                    verify: self.verify,
                    verify_timeout_seconds: self.verify_timeout_seconds,
                    verify_attempts: self.verify_attempts,
                    include_dependency_results: self.include_dependency_results,
                    result_schema: self.result_schema.map(serde_json::Value::Object),
                };
                TaskInput { identifier, prompt, depends_on, wait_after_dependencies: wait, options: options.boxed() }
            }
        }
    };
}

with_task_options! {
    pub struct CreateTaskArgs {
        /// Name, unique in its orchestration: letters, digits, _ - . (1-100).
        pub task_identifier: String,
        /// What Claude Code should do.
        pub execution_prompt: String,
        /// Tasks that must complete first: identifiers or #<task_id>.
        #[serde(default, deserialize_with = "one_or_many")]
        pub depends_on: Vec<String>,
        /// Seconds to wait after the last dependency completed.
        pub wait_after_dependencies: Option<f64>,
        /// Orchestration name to join or create (default: the dependencies' orchestration, or a new one).
        pub orchestration: Option<String>,
        /// Budget in dollars of the orchestration it creates or joins (sets it): once its tasks have spent it, no more of them start.
        pub orchestration_max_budget_usd: Option<f64>,
    }
}

impl CreateTaskArgs {
    /// The task, the orchestration's name and the orchestration's budget.
    pub fn into_parts(mut self) -> (TaskInput, Option<String>, Option<f64>) {
        let (orchestration, budget) = (self.orchestration.take(), self.orchestration_max_budget_usd);
        let (identifier, prompt, depends_on, wait) = (
            std::mem::take(&mut self.task_identifier),
            std::mem::take(&mut self.execution_prompt),
            std::mem::take(&mut self.depends_on),
            self.wait_after_dependencies,
        );
        (self.into_input(identifier, prompt, depends_on, wait), orchestration, budget)
    }
}

with_task_options! {
    /// One task of `create_orchestration`, in the workflow.json format.
    pub struct BatchTask {
        #[serde(alias = "task_identifier")]
        pub identifier: String,
        pub execution_prompt: String,
        /// Identifiers of tasks in this batch (or #<task_id> of stored ones).
        #[serde(default, deserialize_with = "one_or_many")]
        pub depends_on: Vec<String>,
        /// Seconds to wait after the dependencies completed.
        #[serde(alias = "wait_after_dependencies")]
        pub initial_delay: Option<f64>,
    }
}

impl BatchTask {
    pub fn into_task_input(mut self) -> TaskInput {
        let (identifier, prompt, depends_on, wait) = (
            std::mem::take(&mut self.identifier),
            std::mem::take(&mut self.execution_prompt),
            std::mem::take(&mut self.depends_on),
            self.initial_delay,
        );
        self.into_input(identifier, prompt, depends_on, wait)
    }
}

/// The tasks of `create_orchestration`, each made a [`TaskInput`] as soon as it is read, so that
/// the list never exists as [`BatchTask`]s (over 400 bytes each before their strings): the
/// memory of a 100,000-task request.
fn batch_tasks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<TaskInput>, D::Error> {
    struct Tasks;
    impl<'de> serde::de::Visitor<'de> for Tasks {
        type Value = Vec<TaskInput>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<TaskInput>, A::Error> {
            let mut tasks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(task) = seq.next_element::<BatchTask>()? {
                tasks.push(task.into_task_input());
            }
            Ok(tasks)
        }
    }
    deserializer.deserialize_seq(Tasks)
}

/// A list of strings, also accepted as one string (models often write `"depends_on": "a"`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match Option::<OneOrMany>::deserialize(deserializer) {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(OneOrMany::One(one))) => Ok(vec![one]),
        Ok(Some(OneOrMany::Many(many))) => Ok(many),
        Err(_) => Err(serde::de::Error::custom("expected a list of strings (or one string)")),
    }
}

fn one_or_many_opt<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(deserializer).map(Some)
}

/// Parses a verb's arguments, naming the field at fault in the error.
pub fn parse_args<T: serde::de::DeserializeOwned>(
    args: serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    serde_path_to_error::deserialize(serde_json::Value::Object(args))
        .map_err(|e| args_error(&e.path().to_string(), &e.inner().to_string()))
}

/// Parses a verb's arguments from their JSON text, without a `serde_json::Value` tree in
/// between; the error is worded as [`parse_args`] words it.
pub fn parse_args_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    from_text(text).map_err(|(path, error)| {
        // The text's line and column mean nothing to the caller, who sent a JSON value.
        let message = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        args_error(&path, message.strip_suffix(&position).unwrap_or(&message))
    })
}

/// `text`, the whole of it, read as a `T`; or the path of the field at fault (`.` for the
/// whole) and what is wrong with it.
fn from_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, serde_json::Error)> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| (e.path().to_string(), e.into_inner()))?;
    deserializer.end().map_err(|e| (".".to_owned(), e))?;
    Ok(parsed)
}

fn args_error(path: &str, message: &str) -> String {
    if path == "." || path.is_empty() {
        format!("invalid arguments: {message}")
    } else {
        format!("invalid argument {path}: {message}")
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrchestrationArgs {
    pub name: Option<String>,
    /// Budget in dollars for all its tasks together: once they have spent it, no more of them start (default: the server's, usually none).
    pub max_budget_usd: Option<f64>,
    /// "worktree": every task that sets none runs in a git worktree of its own; their results are merged along the graph onto the branch claude-worker/<orchestration>.
    pub isolation: Option<String>,
    /// With isolation: the commit the tasks without dependencies start from (default HEAD).
    pub base_ref: Option<String>,
    /// With isolation: merge the integration branch into the checkout's current branch when the orchestration completes (refused when the checkout has changes or the merge would conflict).
    pub merge_when_done: Option<bool>,
    #[serde(deserialize_with = "batch_tasks")]
    #[schemars(with = "Vec<BatchTask>")]
    pub tasks: Vec<TaskInput>,
    /// Default verify command of its tasks that set none (a task's "" opts out).
    pub verify: Option<String>,
}

impl CreateOrchestrationArgs {
    /// Its tasks as the service takes them, the orchestration's `verify` given to those that set none.
    pub fn task_inputs(self) -> Vec<TaskInput> {
        let verify = self.verify;
        let mut tasks = self.tasks;
        if let Some(verify) = verify {
            for task in &mut tasks {
                task.options_mut().verify.get_or_insert_with(|| verify.clone());
            }
        }
        tasks
    }

    pub fn options(&self) -> crate::service::OrchestrationOptions {
        crate::service::OrchestrationOptions {
            isolation: self.isolation.clone(),
            base_ref: self.base_ref.clone(),
            merge_when_done: self.merge_when_done.unwrap_or(false),
        }
    }
}

/// A workflow file as read: the orchestration's name and budget, and its tasks.
#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: Option<String>,
    pub max_budget_usd: Option<f64>,
    pub isolation: Option<String>,
    pub base_ref: Option<String>,
    pub merge_when_done: bool,
    pub tasks: Vec<TaskInput>,
    /// The file's default `verify`, not yet given to its tasks (a command line's may replace it).
    pub verify: Option<String>,
}

/// Reads a workflow file (the seed's `workflow.json`: the `create_orchestration` arguments),
/// naming the field at fault on error. Checks of the graph itself happen when the batch is
/// created, all or nothing.
pub fn parse_workflow(text: &str) -> Result<Workflow, String> {
    let args: CreateOrchestrationArgs = from_text(text)
        .map_err(|(path, e)| if path == "." || path.is_empty() { format!("{e}") } else { format!("{path}: {e}") })?;
    if args.tasks.is_empty() {
        return Err("tasks: the workflow has no tasks".to_owned());
    }
    Ok(Workflow {
        name: args.name,
        max_budget_usd: args.max_budget_usd,
        isolation: args.isolation,
        base_ref: args.base_ref,
        merge_when_done: args.merge_when_done.unwrap_or(false),
        tasks: args.tasks,
        verify: args.verify,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    /// Task identifier or #<task_id>.
    pub task: Option<TaskArg>,
    pub orchestration_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrchestrationsArgs {
    /// pending, running, completed, failed or cancelled.
    pub status: Option<String>,
    /// Default 20.
    pub limit: Option<u32>,
    /// List every project's orchestrations, not only this project's (default false).
    pub all_projects: Option<bool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksArgs {
    /// waiting, pending, running, completed, failed, cancelled or skipped.
    pub status: Option<String>,
    pub orchestration_id: Option<i64>,
    /// Default 20.
    pub limit: Option<u32>,
    /// List every project's tasks, not only this project's (default false).
    pub all_projects: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputArgs {
    pub task: TaskArg,
    /// Lines of the summary log to return (default 50).
    pub tail_lines: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    pub task: Option<TaskArg>,
    pub orchestration_id: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryArgs {
    /// The failed or cancelled task to run again.
    pub task: Option<TaskArg>,
    /// Instead of task: retry every failed, cancelled and skipped task of this orchestration.
    pub orchestration_id: Option<i64>,
    /// With orchestration_id: set the orchestration's budget to this many dollars and run again only what its budget stopped (and what waited on that).
    pub max_budget_usd: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    pub task: Option<TaskArg>,
    pub orchestration_id: Option<i64>,
    /// Default 50, at most 600.
    pub timeout_seconds: Option<f64>,
}

// ---- results ----

#[derive(Debug, Serialize, JsonSchema)]
pub struct LinkOut {
    pub task_id: i64,
    pub task_identifier: String,
    pub status: String,
}

impl From<&TaskLink> for LinkOut {
    fn from(link: &TaskLink) -> Self {
        LinkOut {
            task_id: link.task_id,
            task_identifier: link.task_identifier.clone(),
            status: link.status.to_string(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorOut {
    pub kind: String,
    pub message: String,
}

pub(super) fn error_out(error: &Option<TaskError>) -> Option<ErrorOut> {
    error.as_ref().map(|e| ErrorOut { kind: e.kind.as_str().to_owned(), message: e.message.clone() })
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateTaskOut {
    pub task_id: i64,
    pub task_identifier: String,
    pub orchestration_id: i64,
    pub status: String,
    pub depends_on: Vec<LinkOut>,
    pub message: String,
}

impl CreateTaskOut {
    pub fn from_created(created: &Created) -> Option<CreateTaskOut> {
        let task = created.tasks.first()?;
        let mut message = match (&task.skipped_because, task.status) {
            (Some(why), _) => format!("Task {} (#{}) was skipped at once: {why}.", task.identifier, task.task_id),
            (None, crate::model::TaskStatus::Waiting) => format!(
                "Task {} (#{}) is waiting for {}.",
                task.identifier,
                task.task_id,
                task.depends_on
                    .iter()
                    .filter(|l| l.status != crate::model::TaskStatus::Completed)
                    .map(|l| l.task_identifier.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, status) => {
                format!("Task {} (#{}) is {status} and will start when a slot is free.", task.identifier, task.task_id)
            }
        };
        message.push_str(&format!(" Orchestration {}.", created.orchestration_id));
        if !created.merged.is_empty() {
            message.push_str(&format!(
                " Orchestrations {} were merged into it.",
                created.merged.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        for note in &created.notes {
            message.push_str(&format!(" Note: {note}."));
        }
        Some(CreateTaskOut {
            task_id: task.task_id,
            task_identifier: task.identifier.clone(),
            orchestration_id: created.orchestration_id,
            status: task.status.to_string(),
            depends_on: task.depends_on.iter().map(LinkOut::from).collect(),
            message,
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchTaskOut {
    pub identifier: String,
    pub task_id: i64,
    pub depends_on: Vec<String>,
    pub initial_delay: f64,
    pub status: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateOrchestrationOut {
    pub orchestration_id: i64,
    pub status: String,
    pub total_tasks: usize,
    /// The first 1,000 tasks created, at most.
    pub tasks: Vec<BatchTaskOut>,
    /// Tasks created and not listed in `tasks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_not_listed: Option<usize>,
    pub message: String,
}

impl CreateOrchestrationOut {
    pub fn new(created: &Created, delays: &[f64], status: String) -> CreateOrchestrationOut {
        // The first tasks, in the batch's order (a new orchestration has nothing more urgent to
        // show): only those listed are copied.
        let tasks: Vec<BatchTaskOut> = created
            .tasks
            .iter()
            .zip(delays)
            .take(super::listing::MAX_LISTED_TASKS)
            .map(|(t, delay)| BatchTaskOut {
                identifier: t.identifier.clone(),
                task_id: t.task_id,
                depends_on: t.depends_on.iter().map(|l| l.task_identifier.clone()).collect(),
                initial_delay: *delay,
                status: t.status.to_string(),
            })
            .collect();
        let ready = created.tasks.iter().filter(|t| t.status == TaskStatus::Pending).count();
        let total_tasks = created.tasks.len();
        let omitted = total_tasks - tasks.len();
        let mut message = format!(
            "Orchestration {} created with {}; {ready} can start now. Check it with get_status(orchestration_id={}) or wait.",
            created.orchestration_id,
            crate::text::count(total_tasks as u64, "task"),
            created.orchestration_id
        );
        if omitted > 0 {
            message.push_str(&format!(
                " The first {} are listed; get_status(task=...) shows any other.",
                crate::text::count(tasks.len() as u64, "task")
            ));
        }
        for note in &created.notes {
            message.push_str(&format!(" Note: {note}."));
        }
        CreateOrchestrationOut {
            orchestration_id: created.orchestration_id,
            status,
            total_tasks,
            tasks,
            tasks_not_listed: (omitted > 0).then_some(omitted),
            message,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UsageOut {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OrchestrationTaskOut {
    pub task_id: i64,
    pub task_identifier: String,
    pub status: String,
    pub depends_on: Vec<i64>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub error: Option<ErrorOut>,
    /// The task that queued this one from inside its run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<i64>,
}

/// The status of a task or of an orchestration (`kind` says which); fields of the other kind are absent.
#[derive(Debug, Serialize, JsonSchema, Default)]
pub struct StatusOut {
    /// "task" or "orchestration".
    pub kind: String,
    pub orchestration_id: i64,
    /// The project (top of the git work tree of the working directory) it belongs to.
    pub project: String,
    pub status: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub cost_usd: f64,
    // task
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<LinkOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependents: Option<Vec<LinkOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The result as JSON, valid against the task's result_schema (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_denials: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
    /// The task that queued this one from inside its run (through the claude-worker server its
    /// Claude Code started); absent for work queued from outside any task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<i64>,
    /// How many tasks deep this one was queued (a task at depth N queues at N + 1, up to
    /// CLAUDE_WORKER_MAX_DEPTH); absent for work queued from outside any task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// The shell command that checks the task's work once Claude is done (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
    /// With verify: how long one check may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_timeout_seconds: Option<u64>,
    /// With verify: how many times Claude is asked to fix what it found before the task fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detailed_log: Option<String>,
    // orchestration
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_tasks: Option<u32>,
    /// The orchestration's budget in dollars, when it has one (cost_usd is what it has spent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    /// Its spend of the budget, as people read it: "$1.20 of $5.00".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Why it stopped, when its budget stopped tasks, and how to raise it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<OrchestrationTaskOut>>,
    /// Tasks of the orchestration not listed in `tasks` (at most 1,000 are: failed, running and
    /// waiting ones before completed ones); the counters count them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_not_listed: Option<usize>,
    /// Only from `wait`: true when it returned before the work finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// While the account's usage limit holds every queued task back: when they start again
    /// (absent when not paused, or for work that does not wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
    /// Why it waits, and how to start now or drop what waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// A task's worktree, branch and result commit, or an orchestration's base and integration branch (isolation "worktree" only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationOut>,
}

/// Isolation as `get_status` shows it: of a task, or of an orchestration.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct IsolationOut {
    /// The task's branch, or the orchestration's integration branch.
    pub branch: String,
    /// The task's worktree while it exists (kept for a failed or cancelled task, for a person to look at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    /// The commit the task started from (its dependencies' merged results, or the base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_commit: Option<String>,
    /// Files the merge of its dependencies' results left for it to resolve.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// The task's result commit, or the orchestration's integration commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// What the task changed: "3 files changed, 10 insertions(+), 2 deletions(-)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diffstat: Option<String>,
    /// The orchestration's repository (the checkout `claude-worker-inspect merge` merges into).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The orchestration's base: as asked, and the commit it named then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    /// The orchestration's integration: "pending", "done" or "abandoned".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    /// What else the integration did (merged into the checkout, or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl IsolationOut {
    pub fn of_task(w: &crate::model::TaskWorktree) -> Option<IsolationOut> {
        Some(IsolationOut {
            branch: w.branch.clone()?,
            worktree: w.path.clone(),
            start_commit: w.start_commit.clone(),
            conflicts: w.conflicts.clone(),
            commit: w.result_commit.clone(),
            diffstat: w.diffstat.clone(),
            ..IsolationOut::default()
        })
    }

    pub fn of_orchestration(i: &crate::isolation::OrchestrationIsolation) -> IsolationOut {
        IsolationOut {
            branch: i.branch.clone(),
            commit: i.integration_commit.clone(),
            repository: Some(i.base.repository.clone()),
            base_ref: Some(i.base.base_ref.clone()),
            base_commit: Some(i.base.base_commit.clone()),
            integration: Some(i.integration.as_str().to_owned()),
            note: i.note.clone(),
            ..IsolationOut::default()
        }
    }
}

impl StatusOut {
    /// Says so when the account's usage limit holds back work this status still waits for (a
    /// pending or waiting task; an orchestration with such tasks).
    pub fn with_pause(mut self, limits: &UsageLimits, now: Millis) -> StatusOut {
        let waits = match self.kind.as_str() {
            "task" => matches!(self.status.as_str(), "pending" | "waiting"),
            _ => self.pending_tasks.unwrap_or(0) + self.waiting_tasks.unwrap_or(0) > 0,
        };
        if let Some(pause) = limits.paused_at(now).filter(|_| waits) {
            self.paused_until = Some(rfc3339(pause.until));
            self.paused_reason = Some(format!(
                "{}: the account's usage limit ({}) was reached, so no task starts until then; running ones go on. {}",
                usage_limit::describe(pause.kind.as_deref(), pause.until, now),
                pause.kind.as_deref().unwrap_or("unknown"),
                usage_limit::WHAT_TO_DO
            ));
        }
        self
    }

    pub fn from_status(status: &Status) -> StatusOut {
        match status {
            Status::Task(view) => StatusOut::from_task(view),
            Status::Orchestration(detail) => StatusOut::from_orchestration(detail),
        }
    }

    pub fn from_task(view: &TaskStatusView) -> StatusOut {
        let t = &view.detail.task;
        StatusOut {
            kind: "task".to_owned(),
            orchestration_id: t.orchestration_id,
            project: t.project.to_string(),
            status: t.status.to_string(),
            created_at: rfc3339(t.created_at),
            started_at: t.started_at.map(rfc3339),
            ended_at: t.ended_at.map(rfc3339),
            cost_usd: round_usd(t.cost_usd),
            task_id: Some(t.task_id),
            task_identifier: Some(t.task_identifier.clone()),
            attempt: Some(t.attempt),
            max_attempts: Some(t.settings.max_attempts),
            model: Some(t.settings.model.clone()),
            working_directory: Some(t.settings.working_directory.clone()),
            depends_on: Some(view.detail.depends_on.iter().map(LinkOut::from).collect()),
            dependents: Some(view.detail.dependents.iter().map(LinkOut::from).collect()),
            next_attempt_at: t.ready_at.map(rfc3339),
            result: t.result.clone(),
            structured_result: t.structured_result.clone(),
            error: error_out(&t.error),
            session_id: t.session_id.clone(),
            usage: Some(UsageOut {
                input_tokens: t.usage.input_tokens,
                output_tokens: t.usage.output_tokens,
                cache_creation_input_tokens: t.usage.cache_creation_input_tokens,
                cache_read_input_tokens: t.usage.cache_read_input_tokens,
            }),
            num_turns: t.num_turns,
            duration_ms: t.duration_ms,
            permission_denials: t.permission_denials.as_deref().and_then(|d| serde_json::from_str(d).ok()),
            last_action: t.last_action.clone(),
            created_by: t.created_by,
            depth: (t.depth > 0).then_some(t.depth),
            verify: t.settings.verify.clone(),
            verify_timeout_seconds: t.settings.verify.as_ref().map(|_| t.settings.verify_timeout_seconds),
            verify_attempts: t.settings.verify.as_ref().map(|_| t.settings.verify_attempts),
            summary_log: Some(view.logs.summary.display().to_string()),
            detailed_log: Some(view.logs.detailed.display().to_string()),
            isolation: IsolationOut::of_task(&t.worktree),
            ..StatusOut::default()
        }
    }

    pub fn from_summary(s: &OrchestrationSummary) -> StatusOut {
        let c = s.counters;
        StatusOut {
            kind: "orchestration".to_owned(),
            orchestration_id: s.orchestration_id,
            project: s.project.to_string(),
            status: s.status.to_string(),
            created_at: rfc3339(s.created_at),
            started_at: s.started_at.map(rfc3339),
            ended_at: s.ended_at.map(rfc3339),
            cost_usd: round_usd(s.cost_usd),
            name: s.name.clone(),
            total_tasks: Some(c.total),
            completed_tasks: Some(c.completed),
            failed_tasks: Some(c.failed),
            skipped_tasks: Some(c.skipped),
            cancelled_tasks: Some(c.cancelled),
            running_tasks: Some(c.running),
            pending_tasks: Some(c.pending),
            waiting_tasks: Some(c.waiting),
            max_budget_usd: s.budget_usd,
            budget: s.budget_usd.map(|budget| crate::budget::spend_of(s.cost_usd, budget)),
            message: crate::budget::exhausted_message(s),
            ..StatusOut::default()
        }
    }

    pub fn from_orchestration(detail: &OrchestrationDetail) -> StatusOut {
        let mut out = StatusOut::from_summary(&detail.summary);
        out.isolation = detail.isolation.as_deref().map(IsolationOut::of_orchestration);
        let (tasks, omitted) =
            super::listing::listed(detail.tasks.iter().collect(), |t| super::listing::status_rank(t.status));
        out.tasks_not_listed = (omitted > 0).then_some(omitted);
        out.tasks = Some(
            tasks
                .into_iter()
                .map(|t| OrchestrationTaskOut {
                    task_id: t.task_id,
                    task_identifier: t.task_identifier.clone(),
                    status: t.status.to_string(),
                    depends_on: t.depends_on.clone(),
                    started_at: t.started_at.map(rfc3339),
                    ended_at: t.ended_at.map(rfc3339),
                    error: error_out(&t.error),
                    created_by: t.created_by,
                })
                .collect(),
        );
        out
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOrchestrationsOut {
    pub orchestrations: Vec<StatusOut>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskListItemOut {
    pub task_id: i64,
    pub task_identifier: String,
    pub orchestration_id: i64,
    pub project: String,
    pub status: String,
    pub created_at: String,
    pub last_action: Option<String>,
}

impl From<&TaskListItem> for TaskListItemOut {
    fn from(t: &TaskListItem) -> Self {
        TaskListItemOut {
            task_id: t.task_id,
            task_identifier: t.task_identifier.clone(),
            orchestration_id: t.orchestration_id,
            project: t.project.to_string(),
            status: t.status.to_string(),
            created_at: rfc3339(t.created_at),
            last_action: t.last_action.clone(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListTasksOut {
    pub tasks: Vec<TaskListItemOut>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OutputOut {
    pub task_id: i64,
    pub status: String,
    pub result: Option<String>,
    /// The result as JSON, valid against the task's result_schema (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_result: Option<serde_json::Value>,
    pub error: Option<ErrorOut>,
    pub summary_tail: Vec<String>,
    pub summary_log: String,
    pub detailed_log: String,
}

impl From<&TaskOutput> for OutputOut {
    fn from(o: &TaskOutput) -> Self {
        let t = &o.view.detail.task;
        OutputOut {
            task_id: t.task_id,
            status: t.status.to_string(),
            result: t.result.clone(),
            structured_result: t.structured_result.clone(),
            error: error_out(&t.error),
            summary_tail: o.summary_tail.clone(),
            summary_log: o.view.logs.summary.display().to_string(),
            detailed_log: o.view.logs.detailed.display().to_string(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CancelOut {
    pub cancelled: Vec<i64>,
    pub skipped: Vec<i64>,
    pub message: String,
}

impl From<&CancelOutcome> for CancelOut {
    fn from(o: &CancelOutcome) -> Self {
        let message = crate::text::cancel_summary(o);
        CancelOut { cancelled: o.cancelled.clone(), skipped: o.skipped.clone(), message }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RetryOut {
    /// The task retried, when the call named a task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    /// Its state now (pending or waiting), when the call named a task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub orchestration_id: i64,
    /// The skipped tasks that went back to waiting.
    pub reopened: Vec<i64>,
    /// Every task put back in line, in dependency order, with its state before and now.
    pub tasks: Vec<RetriedTaskOut>,
    /// The orchestration's budget now, when the call set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RetriedTaskOut {
    pub task_id: i64,
    pub task_identifier: String,
    /// failed, cancelled or skipped.
    pub was: String,
    /// pending or waiting.
    pub status: String,
}

impl From<&RetryOutcome> for RetryOut {
    fn from(o: &RetryOutcome) -> Self {
        RetryOut {
            task_id: Some(o.task_id),
            status: Some(o.status.to_string()),
            orchestration_id: o.orchestration_id,
            reopened: o.reopened.clone(),
            tasks: o.tasks.iter().map(RetriedTaskOut::from).collect(),
            max_budget_usd: None,
            message: crate::text::retry_summary(None, &o.tasks),
        }
    }
}

impl RetryOut {
    /// The answer for a whole orchestration whose tasks were put back in line (a retry of it,
    /// or a raised budget): which were skipped and are reopened, and every task with its states.
    fn of_orchestration(
        orchestration_id: crate::model::OrchestrationId,
        tasks: &[RetriedTask],
        max_budget_usd: Option<f64>,
        message: String,
    ) -> RetryOut {
        RetryOut {
            task_id: None,
            status: None,
            orchestration_id,
            reopened: tasks.iter().filter(|t| t.was == TaskStatus::Skipped).map(|t| t.task_id).collect(),
            tasks: tasks.iter().map(RetriedTaskOut::from).collect(),
            max_budget_usd,
            message,
        }
    }
}

impl From<&BudgetRaise> for RetryOut {
    fn from(o: &BudgetRaise) -> Self {
        RetryOut::of_orchestration(o.orchestration_id, &o.tasks, Some(o.budget_usd), crate::text::raise_summary(o))
    }
}

impl From<&OrchestrationRetryOutcome> for RetryOut {
    fn from(o: &OrchestrationRetryOutcome) -> Self {
        let message = crate::text::retry_summary(Some(o.orchestration_id), &o.tasks);
        RetryOut::of_orchestration(o.orchestration_id, &o.tasks, None, message)
    }
}

impl From<&RetriedTask> for RetriedTaskOut {
    fn from(t: &RetriedTask) -> Self {
        RetriedTaskOut {
            task_id: t.task_id,
            task_identifier: t.task_identifier.clone(),
            was: t.was.to_string(),
            status: t.status.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of reading arguments: from rmcp's map (MCP over HTTP) and from their text (MCP
    /// over stdio).
    fn both<T: serde::de::DeserializeOwned>(text: &str) -> (Result<T, String>, Result<T, String>) {
        let object = serde_json::from_str(text).expect("a JSON object");
        (parse_args(object), parse_args_text(text))
    }

    #[test]
    fn arguments_read_from_text_are_refused_in_the_words_of_the_map() {
        for text in [
            r#"{"tasks": [{"identifier": "a", "execution_prompt": "x", "bogus": 1}]}"#,
            r#"{"tasks": [{"identifier": "a", "execution_prompt": "x"}, {"identifier": "b", "execution_prompt": "x", "model": 5}]}"#,
            r#"{"tasks": [{"identifier": "a"}]}"#,
            r#"{"name": "n"}"#,
            r#"{"tasks": {"identifier": "a"}}"#,
            r#"{"tasks": [{"identifier": "a", "execution_prompt": "x", "depends_on": [1]}]}"#,
            r#"{"tasks": [], "max_budget_usd": "lots"}"#,
        ] {
            let (map, text_read) = both::<CreateOrchestrationArgs>(text);
            let (map, text_read) = (map.expect_err(text), text_read.expect_err(text));
            assert_eq!(map, text_read, "{text}");
            assert!(!text_read.contains("line 1"), "{text_read}");
        }
        let (map, text_read) = both::<CreateTaskArgs>(r#"{"task_identifier": "a", "execution_prompt": 3}"#);
        assert_eq!(map.expect_err("refused"), text_read.expect_err("refused"));
    }

    #[test]
    fn the_tasks_of_an_orchestration_are_read_straight_into_inputs() {
        let text = r#"{"name": "n", "verify": "make check", "tasks": [
            {"identifier": "a", "execution_prompt": "x", "wait_after_dependencies": 5},
            {"task_identifier": "b", "execution_prompt": "y", "depends_on": "a", "model": "opus", "verify": ""}
        ]}"#;
        let (map, text_read) = both::<CreateOrchestrationArgs>(text);
        for args in [map.expect("read"), text_read.expect("read")] {
            let tasks = args.task_inputs();
            assert_eq!(tasks.len(), 2);
            assert_eq!((tasks[0].identifier.as_str(), tasks[0].wait_after_dependencies), ("a", Some(5.0)));
            // The orchestration's verify reaches the task that sets none, and only it.
            let a = tasks[0].options.as_deref().expect("a has the orchestration's verify");
            assert_eq!(a, &TaskOptions { verify: Some("make check".to_owned()), ..TaskOptions::default() });
            assert_eq!(tasks[1].depends_on, ["a"]);
            let b = tasks[1].options.as_deref().expect("b has options");
            assert_eq!((b.model.as_deref(), b.verify.as_deref()), (Some("opus"), Some("")));
        }
        // A task that sets no option carries none.
        let plain: CreateOrchestrationArgs =
            parse_args_text(r#"{"tasks": [{"identifier": "a", "execution_prompt": "x"}]}"#).expect("read");
        assert!(plain.task_inputs()[0].options.is_none());
    }

    #[test]
    fn an_orchestration_retry_answers_with_what_it_reopened() {
        let retried =
            |task_id: i64, was, status| RetriedTask { task_id, task_identifier: format!("t{task_id}"), was, status };
        let tasks = vec![
            retried(2, TaskStatus::Failed, TaskStatus::Pending),
            retried(3, TaskStatus::Skipped, TaskStatus::Waiting),
        ];
        let out = RetryOut::from(&OrchestrationRetryOutcome { orchestration_id: 3, tasks });
        assert_eq!(out.reopened, [3]);
        assert_eq!(out.task_id, None);
        assert!(out.message.starts_with("Retried 1 task of orchestration 3: t2 (#2) now pending."), "{}", out.message);
    }
}
