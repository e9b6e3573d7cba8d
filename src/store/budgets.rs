//! Orchestration budgets in the store: the spend read in the transactions that decide with it,
//! the skipping of what a spent budget keeps from starting (when a finish records a cost, and
//! as a guard at every claim), the cap each attempt starts with, and raising a budget. The
//! rules themselves are [`crate::budget`]'s.

use rusqlite::{Connection, params};

use super::control::{RetriedTask, reopen_step, restart_orchestration};
use super::query::resolve_orchestration;
use super::{Store, StoreError, load_graph, record_event, task_key};
use crate::budget;
use crate::model::{ErrorKind, Millis, OrchestrationId, TaskError, TaskId};

/// An orchestration's budget and what its tasks have spent.
#[derive(Clone, Copy, Debug)]
pub(super) struct Spend {
    pub budget_usd: Option<f64>,
    pub spent_usd: f64,
}

impl Spend {
    /// The budget, when there is one and it is spent.
    fn spent_budget(self) -> Option<f64> {
        self.budget_usd.filter(|&b| budget::is_spent(b, self.spent_usd))
    }
}

/// What raising a budget changed.
#[derive(Clone, Debug)]
pub struct BudgetRaise {
    pub orchestration_id: OrchestrationId,
    pub budget_usd: f64,
    pub spent_usd: f64,
    /// The tasks put back in line (those the old budget stopped, and their dependents skipped
    /// because of them), in dependency order.
    pub tasks: Vec<RetriedTask>,
}

pub(super) fn spend(tx: &Connection, orchestration_id: OrchestrationId) -> Result<Spend, StoreError> {
    Ok(tx
        .prepare_cached(
            // `spent_usd` is kept by triggers as costs are recorded (migration 0007): summing the
            // tasks here would make every finish cost as much as the orchestration is large.
            "SELECT budget_usd, spent_usd FROM orchestrations WHERE orchestration_id = ?1",
        )?
        .query_row([orchestration_id], |row| Ok(Spend { budget_usd: row.get(0)?, spent_usd: row.get(1)? }))?)
}

/// Skips every task of the orchestration that has not started (`waiting` or `pending`) when its
/// budget is spent, with error kind `budget_exhausted`. Running tasks are left to finish.
/// Returns the tasks skipped; the caller refreshes the orchestration.
pub(super) fn enforce(
    tx: &Connection,
    orchestration_id: OrchestrationId,
    now: Millis,
) -> Result<Vec<TaskId>, StoreError> {
    let spend = spend(tx, orchestration_id)?;
    let Some(budget_usd) = spend.spent_budget() else { return Ok(Vec::new()) };
    let message = budget::skipped_message(orchestration_id, spend.spent_usd, budget_usd);
    let skipped: Vec<TaskId> = tx
        .prepare_cached(
            "UPDATE tasks SET status = 'skipped', ended_at = ?2, ready_at = NULL, error_kind = ?3, error_message = ?4
             WHERE orchestration_id = ?1 AND status IN ('waiting', 'pending')
             RETURNING task_id",
        )?
        .query_map(params![orchestration_id, now, ErrorKind::BudgetExhausted.as_str(), message], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for &task_id in &skipped {
        record_event(tx, &task_key(tx, task_id)?, now, "skipped", 0, None, Some(&message))?;
    }
    Ok(skipped)
}

/// The `--max-budget-usd` of an attempt being claimed: the task's own limit, lowered to what is
/// left of its orchestration's budget. Recorded with the task, so that its outcome can tell a
/// stop at the budget from a stop at its own limit.
pub(super) fn attempt_cap(
    tx: &Connection,
    task_id: TaskId,
    orchestration_id: OrchestrationId,
    task_max: Option<f64>,
) -> Result<Option<f64>, StoreError> {
    let spend = spend(tx, orchestration_id)?;
    let cap = budget::attempt_cap(task_max, spend.budget_usd, spend.spent_usd);
    tx.prepare_cached("UPDATE tasks SET attempt_budget_usd = ?2 WHERE task_id = ?1")?.execute(params![task_id, cap])?;
    Ok(cap)
}

/// The error a task gets instead of `max_budget` when the CLI stopped at the cap its
/// orchestration's budget gave it (not at the task's own limit): `budget_exhausted`, so that
/// raising the budget runs it again.
pub(super) fn stopped_by_budget(
    tx: &Connection,
    task_id: TaskId,
    error: &TaskError,
) -> Result<Option<TaskError>, StoreError> {
    if error.kind != ErrorKind::MaxBudget {
        return Ok(None);
    }
    let (task_max, cap, orchestration_id): (Option<f64>, Option<f64>, OrchestrationId) = tx
        .prepare_cached("SELECT max_budget_usd, attempt_budget_usd, orchestration_id FROM tasks WHERE task_id = ?1")?
        .query_row([task_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(match cap {
        Some(cap) if budget::capped_by_orchestration(task_max, Some(cap)) => Some(TaskError::new(
            ErrorKind::BudgetExhausted,
            budget::stopped_message(orchestration_id, cap, &error.message),
        )),
        _ => None,
    })
}

/// Refuses a retry in an orchestration whose budget is spent: what it put back in line would
/// be skipped again at once.
pub(super) fn refuse_retry_if_spent(tx: &Connection, orchestration_id: OrchestrationId) -> Result<(), StoreError> {
    let spend = spend(tx, orchestration_id)?;
    match spend.spent_budget() {
        Some(budget_usd) => {
            Err(StoreError::Refused(budget::retry_refused(orchestration_id, spend.spent_usd, budget_usd)))
        }
        None => Ok(()),
    }
}

/// Refuses new tasks in an orchestration whose budget is spent: they would never start.
pub(super) fn refuse_join_if_spent(tx: &Connection, orchestration_id: OrchestrationId) -> Result<(), StoreError> {
    let spend = spend(tx, orchestration_id)?;
    match spend.spent_budget() {
        Some(budget_usd) => {
            Err(StoreError::Refused(budget::join_refused(orchestration_id, spend.spent_usd, budget_usd)))
        }
        None => Ok(()),
    }
}

/// Sets an orchestration's budget (refused when it would be spent at once) and puts back in
/// line what the old one stopped, with their dependents skipped because of them
/// ([`crate::graph::Graph::reopened_by_raise`]); the orchestration runs again with a fresh
/// deadline when anything was reopened.
pub(super) fn set_budget_in(
    tx: &Connection,
    orchestration_id: OrchestrationId,
    budget_usd: f64,
    now: Millis,
) -> Result<BudgetRaise, StoreError> {
    let spent_usd = spend(tx, orchestration_id)?.spent_usd;
    budget::check_raise(orchestration_id, budget_usd, spent_usd).map_err(StoreError::Refused)?;
    tx.prepare_cached("UPDATE orchestrations SET budget_usd = ?2 WHERE orchestration_id = ?1")?
        .execute(params![orchestration_id, budget_usd])?;
    let stopped: Vec<TaskId> = tx
        .prepare_cached(
            "SELECT task_id FROM tasks WHERE orchestration_id = ?1 AND error_kind = ?2
               AND status IN ('failed', 'skipped') ORDER BY task_id",
        )?
        .query_map(params![orchestration_id, ErrorKind::BudgetExhausted.as_str()], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let plan = load_graph(tx, orchestration_id)?.reopened_by_raise(&stopped);
    let mut tasks = Vec::with_capacity(plan.len());
    let why = format!("the budget of orchestration {orchestration_id} was raised to {}", budget::usd(budget_usd));
    for step in plan {
        tasks.push(reopen_step(tx, &step, &why, now)?);
    }
    if !tasks.is_empty() {
        restart_orchestration(tx, orchestration_id, now)?;
    }
    Ok(BudgetRaise { orchestration_id, budget_usd, spent_usd, tasks })
}

impl Store {
    /// Sets an orchestration's budget and carries on: see [`set_budget_in`].
    pub fn set_budget(
        &mut self,
        orchestration_id: OrchestrationId,
        budget_usd: f64,
        now: Millis,
    ) -> Result<BudgetRaise, StoreError> {
        self.write(|tx| {
            let orchestration_id = resolve_orchestration(tx, orchestration_id)?;
            set_budget_in(tx, orchestration_id, budget_usd, now)
        })
    }
}
