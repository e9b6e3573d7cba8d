//! The domain types shared by the store, the graph, the executor and the edges: task and
//! orchestration states, what a new task asks for, and the records read back.
//!
//! These types carry no wire format: the MCP module and the inspect CLI convert them by hand.

use std::fmt;

pub use crate::isolation::{Isolation, OnConflict, TaskWorktree};

pub use crate::project::Project;

/// Row id of a task.
pub type TaskId = i64;
/// Row id of an orchestration.
pub type OrchestrationId = i64;
/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The life of a task. `waiting -> pending -> running -> completed | failed | cancelled`, and
/// `skipped` for a task that can never run because a dependency did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskStatus {
    Waiting,
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Skipped,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Waiting,
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "waiting",
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True once the task will never change again on its own.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Skipped)
    }

    /// True for the terminal states that make every dependent impossible to run.
    pub fn blocks_dependents(self) -> bool {
        matches!(self, TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Skipped)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of an orchestration, derived from its tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrchestrationStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl OrchestrationStatus {
    pub const ALL: [OrchestrationStatus; 5] = [
        OrchestrationStatus::Pending,
        OrchestrationStatus::Running,
        OrchestrationStatus::Completed,
        OrchestrationStatus::Failed,
        OrchestrationStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrchestrationStatus::Pending => "pending",
            OrchestrationStatus::Running => "running",
            OrchestrationStatus::Completed => "completed",
            OrchestrationStatus::Failed => "failed",
            OrchestrationStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<OrchestrationStatus> {
        OrchestrationStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, OrchestrationStatus::Completed | OrchestrationStatus::Failed | OrchestrationStatus::Cancelled)
    }
}

impl fmt::Display for OrchestrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permission modes the Claude Code CLI accepts.
pub const PERMISSION_MODES: [&str; 6] = ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto"];

/// How a caller names a task: by identifier, or by id written `#<task_id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskRef {
    Id(TaskId),
    Identifier(String),
}

impl TaskRef {
    /// Parses `#12`, `12` (a bare number is an id) or an identifier.
    pub fn parse(text: &str) -> TaskRef {
        let text = text.trim();
        let digits = text.strip_prefix('#').unwrap_or(text);
        match digits.parse::<TaskId>() {
            Ok(id) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => TaskRef::Id(id),
            _ => TaskRef::Identifier(text.to_owned()),
        }
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskRef::Id(id) => write!(f, "#{id}"),
            TaskRef::Identifier(ident) => f.write_str(ident),
        }
    }
}

/// Everything a task runs with, with defaults already applied and every value checked.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSettings {
    pub working_directory: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
    pub permission_mode: String,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    pub timeout_seconds: u64,
    pub max_attempts: u32,
    pub priority: i64,
    /// Seconds to wait after the last dependency completed before starting.
    pub wait_after_dependencies: f64,
    // Isolation (issue 11).
    pub isolation: Isolation,
    pub on_conflict: OnConflict,
    // Checked completion (`verify`, see `crate::verify`).
    /// A shell command run in the task's directory after the CLI reports success: exit 0
    /// completes the task, anything else asks Claude to fix the cause.
    pub verify: Option<String>,
    /// How long one run of `verify` may take before it is stopped (and counts as failed).
    pub verify_timeout_seconds: u64,
    /// How many times Claude is asked to fix what `verify` found before the task fails.
    pub verify_attempts: u32,
    // Results that reach the dependents (issue 11).
    /// Whether an attempt's prompt ends with the results of the tasks this one depends on
    /// (see [`crate::prompt`]).
    pub include_dependency_results: bool,
    /// The JSON Schema (an object, checked at create) the task's structured result must match;
    /// passed to the CLI as `--json-schema`.
    pub result_schema: Option<serde_json::Value>,
}

impl TaskSettings {
    /// Plain settings for unit tests: sonnet in `/`, one minute, three attempts.
    #[cfg(test)]
    pub fn for_tests() -> TaskSettings {
        TaskSettings {
            working_directory: "/".to_owned(),
            model: "sonnet".to_owned(),
            system_prompt: None,
            append_system_prompt: None,
            permission_mode: "acceptEdits".to_owned(),
            allowed_tools: vec![],
            disallowed_tools: vec![],
            max_turns: None,
            max_budget_usd: None,
            timeout_seconds: 60,
            max_attempts: 3,
            priority: 0,
            wait_after_dependencies: 0.0,
            isolation: Isolation::None,
            on_conflict: OnConflict::Resolve,
            verify: None,
            verify_timeout_seconds: 600,
            verify_attempts: 2,
            include_dependency_results: true,
            result_schema: None,
        }
    }
}

/// A task to store: its name, prompt, settings and the tasks it depends on.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub identifier: String,
    pub prompt: String,
    pub depends_on: Vec<TaskRef>,
    pub settings: std::sync::Arc<TaskSettings>,
    /// The project of its working directory.
    pub project: Project,
}

/// A set of tasks stored in one transaction: one task from `create_task`, or a whole
/// `create_orchestration` batch. Dependencies on identifiers of the batch bind inside it.
#[derive(Clone, Debug)]
pub struct NewBatch {
    /// Name of the orchestration to join or create.
    pub orchestration: Option<String>,
    /// True for `create_orchestration`: a name that already exists is refused instead of joined.
    pub new_orchestration: bool,
    pub tasks: Vec<NewTask>,
    /// The caller's project: where bare identifiers in `depends_on` and the orchestration's
    /// name are looked for.
    pub scope: Project,
    /// Set when the batch is queued from inside a running task.
    pub queued_by: Option<QueuedBy>,
    /// The orchestration's budget in dollars, given with the batch: set on a new orchestration,
    /// and on one the batch joins (raising or lowering it; see [`crate::budget`]).
    pub budget_usd: Option<f64>,
    /// The budget of a new orchestration that was given none
    /// (`CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD`); an orchestration joined keeps its own.
    pub default_budget_usd: Option<f64>,
    /// The base of the batch's isolated tasks (none isolated: `None`), recorded on an
    /// orchestration that has none yet.
    pub isolation: Option<crate::isolation::NewBase>,
}

/// The task whose attempt queued a batch (through a server its CLI started), and the depth the
/// batch's tasks get: one more than the creator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedBy {
    pub task_id: TaskId,
    pub depth: u32,
}

/// Why a task failed, was cancelled or skipped: a stable machine-readable kind and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TaskError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TaskError {
        TaskError { kind, message: message.into() }
    }
}

/// Declares [`ErrorKind`]: each variant with the name it is stored and shown under.
macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        /// The kind of a [`TaskError`], stored and shown by its snake_case name. Callers match
        /// the variants, never the names.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[doc = $doc])+ $variant,)+
            /// A name this version does not know (written by a newer one): kept as it was.
            Other(String),
        }

        impl ErrorKind {
            /// Every kind this version writes.
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$variant,)+];

            /// The stored and shown name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorKind::$variant => $name,)+
                    ErrorKind::Other(name) => name,
                }
            }

            /// The kind of a stored name; an unknown one is kept as [`ErrorKind::Other`].
            pub fn from_name(name: &str) -> ErrorKind {
                match name {
                    $($name => ErrorKind::$variant,)+
                    other => ErrorKind::Other(other.to_owned()),
                }
            }
        }
    };
}

error_kinds! {
    /// It ran longer than its `timeout_seconds`.
    Timeout = "timeout",
    /// A caller cancelled it.
    Cancelled = "cancelled",
    /// Its orchestration ran past `ORCHESTRATION_TIMEOUT`.
    OrchestrationTimeout = "orchestration_timeout",
    /// A dependency failed, was cancelled or skipped.
    DependencyFailed = "dependency_failed",
    /// Its orchestration's budget was spent before it could start.
    BudgetExhausted = "budget_exhausted",
    /// The account's usage limit was reached: it waits for the reset (never a failure).
    UsageLimit = "usage_limit",
    /// The process running it shut down; it resumes elsewhere.
    InterruptedByShutdown = "interrupted_by_shutdown",
    /// The interrupted session could not be resumed; it starts over.
    ResumeFailed = "resume_failed",
    /// The process running it died or stopped renewing its lease.
    OwnerLost = "owner_lost",
    /// The API refused the credentials or access.
    Auth = "auth",
    /// The API refused the request for billing reasons.
    Billing = "billing",
    /// The API's rate limit (HTTP 429) of an API key.
    RateLimited = "rate_limited",
    /// The API was overloaded (HTTP 529).
    Overloaded = "overloaded",
    /// Another server error of the API.
    ApiError = "api_error",
    /// The API could not be reached.
    Connection = "connection",
    /// The prompt is longer than the model takes.
    PromptTooLong = "prompt_too_long",
    /// The API refused the request as invalid.
    InvalidRequest = "invalid_request",
    /// The CLI stopped at `max_turns`.
    MaxTurns = "max_turns",
    /// The CLI stopped at its `--max-budget-usd`.
    MaxBudget = "max_budget",
    /// Someone else interrupted the CLI.
    Interrupted = "interrupted",
    /// Claude reported an error of another kind.
    ClaudeError = "claude_error",
    /// The CLI was killed by a signal claude-worker did not send.
    KilledBySignal = "killed_by_signal",
    /// The CLI exited with an error after it had started.
    CliCrashed = "cli_crashed",
    /// The CLI refused to start, or exited without a result.
    CliError = "cli_error",
    /// No `claude` was found to run.
    ClaudeNotFound = "claude_not_found",
    /// The `claude` found cannot be executed.
    ClaudeNotExecutable = "claude_not_executable",
    /// The CLI could not be started.
    SpawnFailed = "spawn_failed",
    /// The task's working directory no longer exists.
    WorkingDirectoryMissing = "working_directory_missing",
    /// The results of an isolated task's dependencies conflict and it was asked to fail then
    /// (`on_conflict: "fail"`).
    MergeConflict = "merge_conflict",
    /// An isolated task's worktree could not be made, or its result not committed.
    IsolationFailed = "isolation_failed",
    /// Its `verify` command still failed after `verify_attempts` fixes.
    VerificationFailed = "verification_failed",
    /// Its structured result did not match its `result_schema`, or was missing.
    StructuredResultInvalid = "structured_result_invalid",
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token counts reported by the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// A task as stored, with its settings and what its runs recorded.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub orchestration_id: OrchestrationId,
    pub project: Project,
    pub prompt: String,
    pub settings: TaskSettings,
    pub status: TaskStatus,
    pub attempt: u32,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// While `pending`: the earliest time the task may start (backoff or `wait_after_dependencies`).
    pub ready_at: Option<Millis>,
    pub result: Option<String>,
    pub error: Option<TaskError>,
    pub session_id: Option<String>,
    /// Summed over all attempts.
    pub cost_usd: f64,
    pub usage: Usage,
    pub num_turns: Option<u32>,
    pub duration_ms: Option<u64>,
    /// JSON array as the CLI printed it.
    pub permission_denials: Option<String>,
    pub last_action: Option<String>,
    pub cancel_requested: bool,
    /// The task that queued this one from inside its attempt, if any (see [`QueuedBy`]).
    pub created_by: Option<TaskId>,
    /// How many tasks deep this one was queued: 0 from outside any task.
    pub depth: u32,
    /// Its worktree, branch and result commit, when it runs isolated.
    pub worktree: TaskWorktree,
    /// The structured result of the attempt that completed it (valid against its
    /// `result_schema`), when the CLI gave one.
    pub structured_result: Option<serde_json::Value>,
}

/// One edge seen from a task: the task on the other end and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLink {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub status: TaskStatus,
}

/// A task with its edges in both directions.
#[derive(Clone, Debug)]
pub struct TaskDetail {
    pub task: TaskRecord,
    pub depends_on: Vec<TaskLink>,
    pub dependents: Vec<TaskLink>,
}

/// Live counts of an orchestration's tasks by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub total: u32,
    pub waiting: u32,
    pub pending: u32,
    pub running: u32,
    pub completed: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub skipped: u32,
}

impl Counters {
    pub fn add(&mut self, status: TaskStatus, n: u32) {
        self.total += n;
        let slot = match status {
            TaskStatus::Waiting => &mut self.waiting,
            TaskStatus::Pending => &mut self.pending,
            TaskStatus::Running => &mut self.running,
            TaskStatus::Completed => &mut self.completed,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
            TaskStatus::Skipped => &mut self.skipped,
        };
        *slot += n;
    }

    pub fn unfinished(&self) -> u32 {
        self.waiting + self.pending + self.running
    }
}

/// An orchestration with its live counters and summed cost.
#[derive(Clone, Debug)]
pub struct OrchestrationSummary {
    pub orchestration_id: OrchestrationId,
    pub name: Option<String>,
    /// The project all its tasks belong to.
    pub project: Project,
    pub status: OrchestrationStatus,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub counters: Counters,
    pub cost_usd: f64,
    /// Its budget in dollars, when it has one (see [`crate::budget`]); `cost_usd` is its spend.
    pub budget_usd: Option<f64>,
    /// Its tasks that the budget kept from starting or stopped (error kind `budget_exhausted`):
    /// they run again when the budget is raised.
    pub budget_stopped: u32,
}

/// A task as listed inside its orchestration.
#[derive(Clone, Debug)]
pub struct OrchestrationTask {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub status: TaskStatus,
    pub depends_on: Vec<TaskId>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// While `pending`: the earliest time the task may start (backoff or `wait_after_dependencies`).
    pub ready_at: Option<Millis>,
    pub error: Option<TaskError>,
    pub cost_usd: f64,
    pub last_action: Option<String>,
    /// The task that queued this one from inside its attempt, if any.
    pub created_by: Option<TaskId>,
}

/// An orchestration with all its tasks.
#[derive(Clone, Debug)]
pub struct OrchestrationDetail {
    pub summary: OrchestrationSummary,
    pub tasks: Vec<OrchestrationTask>,
    /// Its base and integration, when it has isolated tasks.
    pub isolation: Option<Box<crate::isolation::OrchestrationIsolation>>,
}

/// A line of a task listing.
#[derive(Clone, Debug)]
pub struct TaskListItem {
    pub task_id: TaskId,
    pub task_identifier: String,
    pub orchestration_id: OrchestrationId,
    pub project: Project,
    pub status: TaskStatus,
    pub created_at: Millis,
    pub last_action: Option<String>,
    pub cost_usd: f64,
}

/// One row of the append-only history of a task.
#[derive(Clone, Debug)]
pub struct TaskEvent {
    pub event_id: i64,
    pub task_id: TaskId,
    pub at: Millis,
    pub kind: String,
    pub attempt: u32,
    pub detail: Option<String>,
}

/// How many decimal places of a dollar costs keep at the edges (JSON of the tools, resources and
/// the inspect CLI). The CLI's `total_cost_usd` is tokens times a price per million tokens, and
/// the finest prices (a few cents per million, or $0.3125 for a cache write) need up to 10
/// decimals to stay exact; float noise of sums (`0.0024000000000000002`) sits near the 16th
/// significant digit, far below that for any realistic spend.
pub const USD_DECIMALS: i32 = 10;

/// A cost rounded to [`USD_DECIMALS`] places, so that sums print as the decimals they are
/// (`0.0024`, not `0.0024000000000000002`). Every edge that prints a cost as a number uses it.
pub fn round_usd(usd: f64) -> f64 {
    let scale = 10f64.powi(USD_DECIMALS);
    let rounded = (usd * scale).round() / scale;
    // Beyond what an f64 holds as whole units of the last place: nothing to round.
    if rounded.is_finite() && (usd * scale).abs() < 9e15 { rounded } else { usd }
}

#[cfg(test)]
mod cost_tests {
    use super::round_usd;

    #[test]
    fn sums_print_as_the_decimals_they_are() {
        let sum = 0.0008 + 0.0008 + 0.0008;
        assert_eq!(sum.to_string(), "0.0024000000000000002", "the noise this is about");
        assert_eq!(round_usd(sum).to_string(), "0.0024");
        assert_eq!(serde_json::json!(round_usd(0.1 + 0.2)).to_string(), "0.3");
    }

    #[test]
    fn what_the_cli_reports_is_kept() {
        for cost in [0.0, 0.0004, 0.0016, 1.5, 3.125e-7, 3e-8, 123.456_789_012_3] {
            assert_eq!(round_usd(cost), cost, "{cost}");
        }
        // A negative, huge or odd value passes through rather than turning into something else.
        assert_eq!(round_usd(-0.0024000000000000002), -0.0024);
        assert_eq!(round_usd(1e300), 1e300);
        assert!(round_usd(f64::NAN).is_nan());
    }
}

#[cfg(test)]
mod error_kind_tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_reads_back_as_itself_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert_eq!(&ErrorKind::from_name(kind.as_str()), kind);
            assert!(names.insert(kind.as_str()), "{kind} twice");
        }
    }

    #[test]
    fn a_newer_versions_kind_is_kept_as_written() {
        let kind = ErrorKind::from_name("something_new");
        assert_eq!(kind, ErrorKind::Other("something_new".to_owned()));
        assert_eq!(kind.to_string(), "something_new");
    }
}
