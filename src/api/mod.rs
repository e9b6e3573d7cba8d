//! The verbs as JSON, for every edge that speaks it: the MCP tools, the HTTP API and workflow
//! files. Each verb takes its arguments as parsed from the caller's JSON (`wire.rs`), calls the
//! [`Service`], and returns the answer's JSON shape or an [`ApiError`]: a sentence that says what
//! to do, and its kind, which an edge turns into its own form (MCP: a tool result with `isError`;
//! HTTP: a 4xx or 5xx status). Neither MCP nor HTTP is known here, so both edges give the same
//! answers and the same error messages.

pub mod dashboard;
mod listing;
pub mod wire;

pub use wire::parse_workflow;

use std::time::Duration;

use crate::model::{OrchestrationStatus, TaskStatus};
use crate::service::{Service, ServiceError, Target};
use crate::store::{OrchestrationFilter, TaskFilter};
use crate::time::now_ms;
use wire::{
    CancelArgs, CancelOut, CreateOrchestrationArgs, CreateOrchestrationOut, CreateTaskArgs, CreateTaskOut,
    ListOrchestrationsArgs, ListOrchestrationsOut, ListTasksArgs, ListTasksOut, OutputArgs, OutputOut, RetryArgs,
    RetryOut, StatusArgs, StatusOut, TaskArg, TaskListItemOut, WaitArgs,
};

/// What went wrong with a call, by whose fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The caller's arguments: the message says what to change.
    Invalid,
    /// No such task or orchestration.
    NotFound,
    /// A name already in use.
    Conflict,
    /// The database was deleted or replaced under this process: nothing can be served.
    Gone,
    /// Ours: the database failed.
    Internal,
}

/// A call's error: its kind and the sentence the caller reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub fault: Fault,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError { fault: Fault::Invalid, message: message.into() }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Invalid(message) => ApiError { fault: Fault::Invalid, message },
            ServiceError::NotFound(message) => ApiError { fault: Fault::NotFound, message },
            ServiceError::Taken(taken) => ApiError { fault: Fault::Conflict, message: taken.to_string() },
            ServiceError::Store(e) => {
                // A lost database was said once, when it was found, not per request.
                let fault = if e.is_lost() { Fault::Gone } else { Fault::Internal };
                if fault == Fault::Internal {
                    tracing::error!("store: {e}");
                }
                ApiError { fault, message: format!("claude-worker could not complete the request: {e}") }
            }
        }
    }
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.message
    }
}

pub type Result<T> = std::result::Result<T, ApiError>;

/// The task or orchestration a call names: exactly one of the two.
pub fn target(task: Option<TaskArg>, orchestration_id: Option<i64>) -> Result<Target> {
    match (task, orchestration_id) {
        (Some(task), None) => Ok(Target::Task(task.to_ref())),
        (None, Some(id)) => Ok(Target::Orchestration(id)),
        (Some(_), Some(_)) => Err(ApiError::invalid("give either task or orchestration_id, not both")),
        (None, None) => Err(ApiError::invalid("give task (an identifier or #<task_id>) or orchestration_id")),
    }
}

/// A list's length: 20 unless given, at most 1,000.
fn limit(limit: Option<u32>) -> Result<u32> {
    match limit.unwrap_or(20) {
        0 => Err(ApiError::invalid("limit must be at least 1")),
        n => Ok(n.min(1000)),
    }
}

pub async fn create_task(service: &Service, args: CreateTaskArgs) -> Result<CreateTaskOut> {
    let (input, orchestration, budget) = args.into_parts();
    let created = service.create_task(input, orchestration, budget).await?;
    CreateTaskOut::from_created(&created).ok_or_else(|| ApiError::invalid("no task was created"))
}

pub async fn create_orchestration(service: &Service, args: CreateOrchestrationArgs) -> Result<CreateOrchestrationOut> {
    let delays: Vec<f64> = args.tasks.iter().map(|t| t.wait_after_dependencies.unwrap_or(0.0)).collect();
    let options = args.options();
    let (name, budget) = (args.name.clone(), args.max_budget_usd);
    let inputs = args.task_inputs();
    let created = service.create_orchestration(name, budget, &options, inputs).await?;
    // The summary, not the whole orchestration: a 100,000-task graph's detail is tens of MB.
    let status = match service.orchestration_summary(created.orchestration_id).await {
        Ok(summary) => summary.status.to_string(),
        Err(_) => "pending".to_owned(),
    };
    Ok(CreateOrchestrationOut::new(&created, &delays, status))
}

pub async fn status(service: &Service, args: StatusArgs) -> Result<StatusOut> {
    status_of(service, &target(args.task, args.orchestration_id)?).await
}

/// The status of a task or orchestration, with the account's usage-limit pause.
pub async fn status_of(service: &Service, target: &Target) -> Result<StatusOut> {
    let status = service.status(target).await?;
    let limits = service.usage_limits().await?;
    Ok(StatusOut::from_status(&status).with_pause(&limits, now_ms()))
}

pub async fn list_orchestrations(service: &Service, args: ListOrchestrationsArgs) -> Result<ListOrchestrationsOut> {
    let status = match args.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(OrchestrationStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!("status {s:?} is not one of pending, running, completed, failed, cancelled"))
        })?),
    };
    let project = service.listed_project(args.all_projects.unwrap_or(false));
    let filter = OrchestrationFilter { status, project, limit: limit(args.limit)? };
    let list = service.list_orchestrations(filter).await?;
    let limits = service.usage_limits().await?;
    let now = now_ms();
    let orchestrations: Vec<StatusOut> =
        list.iter().map(|s| StatusOut::from_summary(s).with_pause(&limits, now)).collect();
    Ok(ListOrchestrationsOut { count: orchestrations.len(), orchestrations })
}

pub async fn list_tasks(service: &Service, args: ListTasksArgs) -> Result<ListTasksOut> {
    let status = match args.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "status {s:?} is not one of waiting, pending, running, completed, failed, cancelled, skipped"
            ))
        })?),
    };
    // An orchestration named by id is listed whole, whatever project it is in.
    let all_projects = args.all_projects.unwrap_or(false) || args.orchestration_id.is_some();
    let project = service.listed_project(all_projects);
    let filter = TaskFilter { status, orchestration_id: args.orchestration_id, project, limit: limit(args.limit)? };
    let list = service.list_tasks(filter).await?;
    let tasks: Vec<TaskListItemOut> = list.iter().map(TaskListItemOut::from).collect();
    Ok(ListTasksOut { count: tasks.len(), tasks })
}

pub async fn output(service: &Service, args: OutputArgs) -> Result<OutputOut> {
    let tail = usize::try_from(args.tail_lines.unwrap_or(50).min(10_000)).unwrap_or(50);
    let output = service.output(args.task.to_ref(), tail).await?;
    Ok(OutputOut::from(&output))
}

pub async fn cancel(service: &Service, args: CancelArgs) -> Result<CancelOut> {
    let target = target(args.task, args.orchestration_id)?;
    let outcome = service.cancel(target, args.reason).await?;
    Ok(CancelOut::from(&outcome))
}

pub async fn retry(service: &Service, args: RetryArgs) -> Result<RetryOut> {
    match (target(args.task, args.orchestration_id)?, args.max_budget_usd) {
        (Target::Orchestration(id), Some(budget)) => Ok(RetryOut::from(&service.set_budget(id, budget).await?)),
        (Target::Task(_), Some(_)) => Err(ApiError::invalid(
            "max_budget_usd is an orchestration's budget: give it with orchestration_id (the task's orchestration, \
             which get_status shows), not with task",
        )),
        (Target::Task(task), None) => Ok(RetryOut::from(&service.retry(task).await?)),
        (Target::Orchestration(id), None) => Ok(RetryOut::from(&service.retry_orchestration(id).await?)),
    }
}

/// A checked `wait`: what it waits for and for how long.
#[derive(Debug)]
pub struct Wait {
    pub target: Target,
    pub timeout: Duration,
}

impl Wait {
    pub fn new(args: WaitArgs) -> Result<Wait> {
        let target = target(args.task, args.orchestration_id)?;
        let seconds = args.timeout_seconds.unwrap_or(50.0);
        if !(seconds.is_finite() && (0.0..=600.0).contains(&seconds)) {
            return Err(ApiError::invalid(format!("timeout_seconds {seconds} must be from 0 to 600")));
        }
        Ok(Wait { target, timeout: Duration::from_secs_f64(seconds) })
    }

    /// Waits until the target finished or the timeout passed, telling `progress` (finished,
    /// total, what changed) along the way.
    pub async fn run(self, service: &Service, progress: impl FnMut((f64, f64, String)) + Send) -> Result<StatusOut> {
        let (status, timed_out) = service.wait(&self.target, self.timeout, progress).await?;
        let limits = service.usage_limits().await?;
        let mut out = StatusOut::from_status(&status).with_pause(&limits, now_ms());
        out.timed_out = Some(timed_out);
        Ok(out)
    }
}
