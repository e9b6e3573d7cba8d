//! The views a person's dashboard reads, beyond what the MCP tools answer: an orchestration's
//! graph laid out (by [`crate::layout`], the same layout `claude-worker-inspect graph` draws),
//! a task's details (its prompt, settings and history), a piece of a task's log to follow, and
//! the end of a usage-limit pause.

use schemars::JsonSchema;
use serde::Serialize;

use super::wire::{ErrorOut, StatusOut, TaskArg, error_out};
use super::{ApiError, Result, listing};
use crate::drawing::Picture;
use crate::model::{OrchestrationDetail, TaskRef, round_usd};
use crate::service::{Service, Status, Target};
use crate::time::{now_ms, rfc3339};

/// The largest piece of a log one answer carries.
pub const MAX_LOG_PIECE: usize = 256 * 1024;

/// A task as a box of the graph.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeOut {
    pub task_id: i64,
    pub task_identifier: String,
    pub status: String,
    /// The state's icon, as the pictures draw it.
    pub icon: &'static str,
    /// Its dependency layer (0: no dependencies drawn), and its box's top-left corner.
    pub layer: usize,
    pub x: f64,
    pub y: f64,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub cost_usd: f64,
    /// What it is doing (while running) or did last.
    pub last_action: Option<String>,
    pub error: Option<ErrorOut>,
    /// Time, cost and action in one line, as the pictures print it.
    pub note: String,
}

/// An orchestration's graph, laid out.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GraphOut {
    /// The orchestration's status and counters (its tasks are the nodes).
    pub orchestration: StatusOut,
    pub width: f64,
    pub height: f64,
    pub box_width: f64,
    pub box_height: f64,
    pub nodes: Vec<NodeOut>,
    /// `[dependency, dependent]` task ids.
    pub edges: Vec<[i64; 2]>,
    /// Tasks not drawn (at most 1,000 are: failed, running and waiting ones first); the counters count them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_not_drawn: Option<usize>,
}

/// One line of a task's history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventOut {
    pub at: String,
    pub kind: String,
    pub attempt: u32,
    pub detail: Option<String>,
}

/// Everything about a task a person looks at: its status (as `get_status` answers), its prompt,
/// its settings, and its history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DetailsOut {
    pub task: StatusOut,
    pub prompt: String,
    pub settings: serde_json::Value,
    pub history: Vec<EventOut>,
}

/// A piece of a task's log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogPieceOut {
    pub task_id: i64,
    /// "summary" or "detailed".
    pub log: &'static str,
    /// Where the piece starts, in bytes, and where the next one does.
    pub from: u64,
    pub next: u64,
    /// The log's size now.
    pub size: u64,
    pub text: String,
    /// The task finished: the log grows no more once `next` reaches `size`.
    pub finished: bool,
}

/// The end of a usage-limit pause.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResumeOut {
    pub resumed: bool,
    pub message: String,
}

pub async fn graph(service: &Service, orchestration_id: i64) -> Result<GraphOut> {
    let Status::Orchestration(detail) = service.status(&Target::Orchestration(orchestration_id)).await? else {
        return Err(ApiError::invalid("expected an orchestration"));
    };
    let limits = service.usage_limits().await?;
    let now = now_ms();
    let status = |d: &OrchestrationDetail| {
        let mut out = StatusOut::from_orchestration(d).with_pause(&limits, now);
        (out.tasks, out.tasks_not_listed) = (None, None);
        out
    };
    Ok(graph_of(detail, status, now))
}

/// The graph of `detail`, at most [`listing::MAX_LISTED_TASKS`] of its tasks drawn.
fn graph_of(
    mut detail: OrchestrationDetail,
    status: impl FnOnce(&OrchestrationDetail) -> StatusOut,
    now: i64,
) -> GraphOut {
    let orchestration = status(&detail);
    let (mut drawn, omitted) = listing::listed(std::mem::take(&mut detail.tasks), |t| listing::status_rank(t.status));
    drawn.sort_by_key(|t| t.task_id);
    detail.tasks = drawn;
    let picture = Picture::of(&detail, now);
    let layout = picture.layout();
    let nodes = detail
        .tasks
        .iter()
        .zip(&layout.nodes)
        .zip(&picture.cards)
        .map(|((t, placed), card)| NodeOut {
            task_id: t.task_id,
            task_identifier: t.task_identifier.clone(),
            status: t.status.to_string(),
            icon: crate::drawing::look(t.status).icon,
            layer: placed.layer,
            x: placed.x,
            y: placed.y,
            started_at: t.started_at.map(rfc3339),
            ended_at: t.ended_at.map(rfc3339),
            cost_usd: round_usd(t.cost_usd),
            last_action: t.last_action.clone(),
            error: error_out(&t.error),
            note: card.note.clone(),
        })
        .collect();
    let edges = layout.edges.iter().map(|&(a, b)| [layout.nodes[a].id, layout.nodes[b].id]).collect();
    GraphOut {
        orchestration,
        width: layout.width,
        height: layout.height,
        box_width: crate::layout::BOX_WIDTH,
        box_height: crate::layout::BOX_HEIGHT,
        nodes,
        edges,
        tasks_not_drawn: (omitted > 0).then_some(omitted),
    }
}

pub async fn details(service: &Service, task: TaskArg) -> Result<DetailsOut> {
    let reference = task.to_ref();
    let status = service.status(&Target::Task(reference.clone())).await?;
    let Status::Task(view) = &status else { return Err(ApiError::invalid("expected a task")) };
    let record = &view.detail.task;
    let history = service.history(TaskRef::Id(record.task_id)).await?;
    let limits = service.usage_limits().await?;
    let s = &record.settings;
    let settings = serde_json::json!({
        "working_directory": s.working_directory,
        "model": s.model,
        "permission_mode": s.permission_mode,
        "allowed_tools": s.allowed_tools,
        "disallowed_tools": s.disallowed_tools,
        "max_turns": s.max_turns,
        "max_budget_usd": s.max_budget_usd,
        "timeout_seconds": s.timeout_seconds,
        "max_attempts": s.max_attempts,
        "priority": s.priority,
        "wait_after_dependencies": s.wait_after_dependencies,
        "isolation": s.isolation.as_str(),
        "verify": s.verify,
        "include_dependency_results": s.include_dependency_results,
        "system_prompt": s.system_prompt,
        "append_system_prompt": s.append_system_prompt,
        "result_schema": s.result_schema,
    });
    Ok(DetailsOut {
        task: StatusOut::from_status(&status).with_pause(&limits, now_ms()),
        prompt: record.prompt.clone(),
        settings,
        history: history
            .into_iter()
            .map(|e| EventOut { at: rfc3339(e.at), kind: e.kind, attempt: e.attempt, detail: e.detail })
            .collect(),
    })
}

pub async fn log_piece(service: &Service, task: TaskArg, detailed: bool, from: u64) -> Result<LogPieceOut> {
    let (view, bytes, size) = service.log_piece(task.to_ref(), detailed, from, MAX_LOG_PIECE).await?;
    let from = from.min(size);
    let next = from + bytes.len() as u64;
    Ok(LogPieceOut {
        task_id: view.detail.task.task_id,
        log: if detailed { "detailed" } else { "summary" },
        from,
        next,
        size,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        finished: view.detail.task.status.is_terminal(),
    })
}

/// Where a task's summary (or detailed) log is, for serving it whole.
pub async fn log_file(service: &Service, task: TaskArg, detailed: bool) -> Result<std::path::PathBuf> {
    let Status::Task(view) = service.status(&Target::Task(task.to_ref())).await? else {
        return Err(ApiError::invalid("expected a task"));
    };
    Ok(if detailed { view.logs.detailed.clone() } else { view.logs.summary.clone() })
}

pub async fn resume(service: &Service) -> Result<ResumeOut> {
    let resumed = service.resume_now().await?;
    let message = crate::usage_limit::resumed_sentence(resumed.as_ref(), now_ms());
    Ok(ResumeOut { resumed: resumed.is_some(), message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counters, OrchestrationStatus, OrchestrationSummary, OrchestrationTask, TaskStatus};

    fn task(id: i64, status: TaskStatus, depends_on: Vec<i64>) -> OrchestrationTask {
        OrchestrationTask {
            task_id: id,
            task_identifier: format!("t{id}"),
            status,
            depends_on,
            started_at: None,
            ended_at: None,
            ready_at: None,
            error: None,
            cost_usd: 0.0,
            last_action: None,
            created_by: None,
        }
    }

    fn detail(tasks: Vec<OrchestrationTask>) -> OrchestrationDetail {
        OrchestrationDetail {
            summary: OrchestrationSummary {
                orchestration_id: 1,
                name: None,
                project: crate::project::Project::from_stored("/p".to_owned()),
                status: OrchestrationStatus::Running,
                created_at: 0,
                started_at: None,
                ended_at: None,
                counters: Counters::default(),
                cost_usd: 0.0,
                budget_usd: None,
                budget_stopped: 0,
            },
            tasks,
            isolation: None,
        }
    }

    #[test]
    fn a_graph_draws_its_tasks_in_layers_with_their_edges() {
        let graph = graph_of(
            detail(vec![task(1, TaskStatus::Completed, vec![]), task(2, TaskStatus::Running, vec![1])]),
            |_| StatusOut::default(),
            0,
        );
        assert_eq!(graph.edges, vec![[1, 2]]);
        assert_eq!(graph.nodes.iter().map(|n| (n.task_id, n.layer)).collect::<Vec<_>>(), vec![(1, 0), (2, 1)]);
        assert!(graph.nodes[1].x > graph.nodes[0].x);
        assert_eq!(graph.tasks_not_drawn, None);
    }

    #[test]
    fn a_huge_graph_draws_the_tasks_to_look_at_first() {
        let mut tasks: Vec<OrchestrationTask> = (1..=1500).map(|i| task(i, TaskStatus::Completed, vec![])).collect();
        tasks[1400].status = TaskStatus::Failed;
        let graph = graph_of(detail(tasks), |_| StatusOut::default(), 0);
        assert_eq!(graph.nodes.len(), listing::MAX_LISTED_TASKS);
        assert_eq!(graph.tasks_not_drawn, Some(500));
        assert!(graph.nodes.iter().any(|n| n.task_id == 1401), "the failed task is drawn");
        assert!(graph.nodes.windows(2).all(|w| w[0].task_id < w[1].task_id), "in creation order");
    }
}
