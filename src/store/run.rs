//! The writes of a run, all fenced: claiming a ready task under the global concurrency cap,
//! recording its start and progress, renewing its lease, and finishing it. A write from an owner
//! that no longer holds the task's current claim (owner and fence) changes nothing.

use rusqlite::{Connection, OptionalExtension, params};

use super::create::seconds_to_ms;
use super::query::read_task;
use super::{
    Store, StoreError, TaskKey, load_descendants, record_event, refresh_orchestration, skip_descendants, task_key,
};
use crate::model::{
    Counters, ErrorKind, Millis, OrchestrationId, OrchestrationStatus, TaskError, TaskId, TaskRecord, TaskStatus, Usage,
};

/// A task claimed for one attempt.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub task: TaskRecord,
    /// The fencing token of this claim: every later write of the attempt carries it.
    pub fence: i64,
    /// The Claude session an interrupted attempt left: this attempt resumes it.
    pub resume_session: Option<String>,
    /// The `--max-budget-usd` this attempt runs with: the task's own `max_budget_usd`, lowered
    /// to what is left of its orchestration's budget (see [`crate::budget::attempt_cap`]).
    pub max_budget_usd: Option<f64>,
}

/// A running task claimed by another owner, as recovery sees it.
#[derive(Clone, Debug)]
pub struct ForeignClaim {
    pub task_id: TaskId,
    pub owner: String,
    pub fence: i64,
    pub lease_expires_at: Millis,
}

/// What a reclaim did.
#[derive(Clone, Debug, Default)]
pub struct Reclaimed {
    /// The session the next attempt will resume.
    pub resume_session: Option<String>,
    pub identifier: String,
    /// The end the task was given (a failure after too many recoveries is announced).
    pub finish: Option<Finish>,
    /// What the write did: `accepted` is false when the claim had changed meanwhile (its owner
    /// finished it, or another executor took it back first).
    pub outcome: FinishOutcome,
}

/// After this many recoveries in a row from dead owners (with no other end of an attempt, and no
/// retry by request, between them) a task fails instead of running again: something about it
/// keeps killing the processes that run it.
pub const MAX_RECLAIMS: i64 = 5;

/// What one attempt reported, added to the task's totals.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub session_id: Option<String>,
    pub cost_usd: f64,
    pub usage: Usage,
    pub num_turns: Option<u32>,
    pub duration_ms: Option<u64>,
    pub permission_denials: Option<String>,
    pub last_action: Option<String>,
    /// The last warning the run gave that the account's usage limit is near.
    pub usage_warning: Option<crate::usage_limit::Warning>,
    /// The run's structured result, as compact JSON text: stored only with a completion.
    pub structured_result: Option<String>,
}

/// How an attempt ended, as the executor decided.
#[derive(Clone, Debug)]
pub enum Finish {
    Completed {
        result: Option<String>,
    },
    /// A transient failure with attempts left: back to `pending` until `ready_at`.
    Retry {
        error: TaskError,
        ready_at: Millis,
    },
    Failed {
        error: TaskError,
    },
    Cancelled {
        error: TaskError,
    },
    /// The executor shut down mid-attempt: back to `pending` at once, the attempt not counted.
    /// With `resume`, the next attempt resumes the Claude session this one recorded.
    Release {
        error: TaskError,
        resume: bool,
    },
    /// Another executor found the attempt's owner dead or its lease expired: as `Release`, resuming.
    Reclaimed {
        error: TaskError,
    },
    /// The account's usage limit refused the attempt: as `Release`, resuming, and the whole
    /// queue pauses (in the same transaction) until `pause.until`.
    UsageLimit {
        error: TaskError,
        pause: crate::usage_limit::Pause,
    },
}

/// What finishing changed.
#[derive(Clone, Debug, Default)]
pub struct FinishOutcome {
    /// False when the claim was stale: nothing was written.
    pub accepted: bool,
    pub status: Option<TaskStatus>,
    /// Dependents that became ready.
    pub promoted: Vec<TaskId>,
    /// Dependents that can now never run.
    pub skipped: Vec<TaskId>,
    /// The task's orchestration, when this outcome finished it.
    pub orchestration_finished: Option<OrchestrationEnd>,
    /// The pause this outcome started, when the queue was not paused before (announced once).
    pub pause_started: Option<crate::usage_limit::Pause>,
}

/// An orchestration as the change that finished it left it.
#[derive(Clone, Debug)]
pub struct OrchestrationEnd {
    pub orchestration_id: OrchestrationId,
    pub name: Option<String>,
    pub status: OrchestrationStatus,
    pub counters: Counters,
    pub cost_usd: f64,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was renewed.
    Renewed,
    /// The lease was renewed, and someone asked for the task to be cancelled.
    CancelRequested,
    /// This owner no longer holds the task: stop the run, write nothing.
    Lost,
}

impl Store {
    /// Claims up to `max` of the best ready tasks while fewer than `cap` run across all
    /// processes and the account's usage limit does not pause the queue, in one transaction. Each
    /// claim is one statement: the cap and pause checks, the choice and the claim cannot
    /// interleave with another claimer.
    pub fn claim_ready(
        &mut self,
        owner: &str,
        cap: u32,
        max: usize,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.write(|tx| {
            let mut claims = Vec::new();
            while claims.len() < max {
                let next: Option<(TaskId, OrchestrationId)> = tx
                    .prepare_cached(
                        // Nothing is claimed while the account's usage limit pauses the queue.
                        "SELECT task_id, orchestration_id FROM tasks WHERE status = 'pending' AND coalesce(ready_at, 0) <= ?1
                           AND NOT EXISTS (SELECT 1 FROM usage_limit WHERE paused_until > ?1)
                         ORDER BY priority DESC, task_id LIMIT 1",
                    )?
                    .query_row([now], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let Some((next, orchestration_id)) = next else { break };
                // The budget's guard, whatever put the task in line (a task joined or reopened
                // while another process recorded the cost that spent it): what a spent budget
                // keeps from starting is skipped instead, and the next task is looked at.
                if !super::budgets::enforce(tx, orchestration_id, now)?.is_empty() {
                    refresh_orchestration(tx, orchestration_id, now)?;
                    continue;
                }
                // A new attempt starts a new Claude session unless it resumes an interrupted one.
                // The choice above and this claim are in one write transaction: no other claimer
                // can come between them.
                let claimed: Option<(TaskId, i64, u32, Option<String>)> = tx
                    .prepare_cached(
                        "UPDATE tasks SET status = 'running', owner = ?1, fence = fence + 1, attempt = attempt + 1,
                             lease_expires_at = ?2, started_at = ?3, ended_at = NULL, ready_at = NULL, pid = NULL,
                             error_kind = NULL, error_message = NULL, session_id = resume_session_id,
                             last_action = NULL
                         WHERE task_id = ?5 AND (SELECT count(*) FROM tasks WHERE status = 'running') < ?4
                         RETURNING task_id, fence, attempt, resume_session_id",
                    )?
                    .query_row(params![owner, now + lease_ms, now, cap, next], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()?;
                let Some((task_id, fence, attempt, resume_session)) = claimed else { break };
                let key = task_key(tx, task_id)?;
                let detail = resume_session.as_ref().map(|s| format!("resumes session {s}"));
                record_event(tx, &key, now, "claimed", attempt, Some((owner, fence)), detail.as_deref())?;
                refresh_orchestration(tx, key.orchestration_id, now)?;
                let task = read_task(tx, task_id)?;
                let max_budget_usd =
                    super::budgets::attempt_cap(tx, task_id, key.orchestration_id, task.settings.max_budget_usd)?;
                claims.push(Claimed { task, fence, resume_session, max_budget_usd });
            }
            Ok(claims)
        })
    }

    /// Records that the attempt's process started.
    pub fn mark_started(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        pid: u32,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE tasks SET pid = ?4 WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'",
                )?
                .execute(params![task_id, owner, fence, pid])?;
            if changed == 0 {
                return Ok(false);
            }
            let (key, attempt) = key_and_attempt(tx, task_id)?;
            record_event(tx, &key, now, "started", attempt, Some((owner, fence)), Some(&format!("pid {pid}")))?;
            Ok(true)
        })
    }

    /// Renews the lease of a running attempt and reports whether a cancel was asked for.
    pub fn heartbeat(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<Heartbeat, StoreError> {
        self.write(|tx| {
            let cancel: Option<bool> = tx
                .prepare_cached(
                    "UPDATE tasks SET lease_expires_at = ?4
                     WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'
                     RETURNING cancel_requested",
                )?
                .query_row(params![task_id, owner, fence, now + lease_ms], |row| row.get(0))
                .optional()?;
            Ok(match cancel {
                None => Heartbeat::Lost,
                Some(true) => Heartbeat::CancelRequested,
                Some(false) => Heartbeat::Renewed,
            })
        })
    }

    /// Records what a running attempt is doing now (and its session id once known).
    pub fn record_progress(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        last_action: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE tasks SET last_action = coalesce(?4, last_action), session_id = coalesce(?5, session_id)
                     WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'",
                )?
                .execute(params![task_id, owner, fence, last_action, session_id])?;
            Ok(changed > 0)
        })
    }

    /// Records one run of a running attempt's `verify` check in the task's history (`kind` is
    /// `verify_passed` or `verify_failed`). Fenced like every write of an attempt: false, and
    /// nothing written, when the claim changed.
    pub fn record_check(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        kind: &'static str,
        detail: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let holds: bool = tx
                .prepare_cached(
                    "SELECT count(*) > 0 FROM tasks WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'",
                )?
                .query_row(params![task_id, owner, fence], |row| row.get(0))?;
            if !holds {
                return Ok(false);
            }
            let (key, attempt) = key_and_attempt(tx, task_id)?;
            record_event(tx, &key, now, kind, attempt, Some((owner, fence)), Some(detail))?;
            Ok(true)
        })
    }

    /// The running tasks other owners hold, for recovery.
    pub fn foreign_claims(&mut self, me: &str) -> Result<Vec<ForeignClaim>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT task_id, owner, fence, lease_expires_at FROM tasks
                 WHERE status = 'running' AND owner IS NOT NULL AND owner != ?1 ORDER BY lease_expires_at",
            )?;
            let rows = stmt.query_map([me], |row| {
                Ok(ForeignClaim {
                    task_id: row.get(0)?,
                    owner: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    fence: row.get(2)?,
                    lease_expires_at: row.get::<_, Option<Millis>>(3)?.unwrap_or(0),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Takes over the claim of a live owner whose lease expired, before its processes are
    /// stopped: the task stays `running` (it still holds a slot until they are gone) under
    /// `owner` with a new fence, so that nothing the old owner writes from now on is accepted
    /// (it may thaw while its CLI is being killed, and would report the kill as its outcome).
    /// The caller then stops the old processes and hands the task on with [`Store::reclaim`]
    /// of the claim returned. `None` when the claim changed meanwhile.
    pub fn seize(
        &mut self,
        claim: &ForeignClaim,
        owner: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<Option<ForeignClaim>, StoreError> {
        self.write(|tx| {
            let fence: Option<i64> = tx
                .prepare_cached(
                    "UPDATE tasks SET owner = ?4, fence = fence + 1, lease_expires_at = ?5
                     WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'
                     RETURNING fence",
                )?
                .query_row(params![claim.task_id, claim.owner, claim.fence, owner, now + lease_ms], |row| row.get(0))
                .optional()?;
            let Some(fence) = fence else { return Ok(None) };
            let (key, attempt) = key_and_attempt(tx, claim.task_id)?;
            let detail = format!("from {} (fence {}) to stop its processes", claim.owner, claim.fence);
            record_event(tx, &key, now, "seized", attempt, Some((owner, fence)), Some(&detail))?;
            Ok(Some(ForeignClaim {
                task_id: claim.task_id,
                owner: owner.to_owned(),
                fence,
                lease_expires_at: now + lease_ms,
            }))
        })
    }

    /// Takes back a task whose owner died or whose lease expired (the caller has made sure its
    /// process group is gone): back to `pending` to resume its session, the attempt not counted;
    /// cancelled instead if a cancel was asked for; failed after [`MAX_RECLAIMS`] recoveries.
    /// Fenced like every attempt write: a claim that changed meanwhile is left alone.
    pub fn reclaim(&mut self, claim: &ForeignClaim, why: &str, now: Millis) -> Result<Reclaimed, StoreError> {
        self.write(|tx| {
            let earlier: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM task_events WHERE task_id = ?1 AND kind = 'reclaimed'
                       AND event_id > coalesce((SELECT max(event_id) FROM task_events WHERE task_id = ?1 AND kind IN
                           ('completed', 'failed', 'cancelled', 'retry_scheduled', 'released', 'retried',
                            'usage_limited')), 0)",
                )?
                .query_row([claim.task_id], |row| row.get(0))?;
            let finish = if earlier + 1 >= MAX_RECLAIMS {
                Finish::Failed {
                    error: TaskError {
                        kind: ErrorKind::OwnerLost,
                        message: format!(
                            "the processes running this task died {} times ({why}); retry it to run it again",
                            earlier + 1
                        ),
                    },
                }
            } else {
                Finish::Reclaimed { error: TaskError { kind: ErrorKind::OwnerLost, message: why.to_owned() } }
            };
            let outcome = finish_in(tx, claim.task_id, &claim.owner, claim.fence, &finish, &RunStats::default(), now)?;
            let resume_session: Option<String> = tx
                .prepare_cached("SELECT resume_session_id FROM tasks WHERE task_id = ?1")?
                .query_row([claim.task_id], |row| row.get(0))?;
            let identifier = task_key(tx, claim.task_id)?.identifier;
            Ok(Reclaimed { resume_session, identifier, finish: Some(finish), outcome })
        })
    }

    /// Ends an attempt: writes its outcome and totals, then promotes or skips its dependents, all
    /// in one transaction. A stale claim is refused and writes nothing.
    pub fn finish(
        &mut self,
        task_id: TaskId,
        owner: &str,
        fence: i64,
        finish: &Finish,
        stats: &RunStats,
        now: Millis,
    ) -> Result<FinishOutcome, StoreError> {
        self.write(|tx| finish_in(tx, task_id, owner, fence, finish, stats, now))
    }
}

fn key_and_attempt(tx: &Connection, task_id: TaskId) -> Result<(TaskKey, u32), StoreError> {
    let key = task_key(tx, task_id)?;
    let attempt: u32 =
        tx.prepare_cached("SELECT attempt FROM tasks WHERE task_id = ?1")?.query_row([task_id], |row| row.get(0))?;
    Ok((key, attempt))
}

fn finish_in(
    tx: &Connection,
    task_id: TaskId,
    owner: &str,
    fence: i64,
    finish: &Finish,
    stats: &RunStats,
    now: Millis,
) -> Result<FinishOutcome, StoreError> {
    // A cancel asked for while the attempt ran wins over anything but success: the task must
    // not be retried or released to run again.
    let cancel_requested: bool = tx
        .prepare_cached("SELECT cancel_requested FROM tasks WHERE task_id = ?1 AND owner = ?2 AND fence = ?3")?
        .query_row(params![task_id, owner, fence], |row| row.get(0))
        .optional()?
        .unwrap_or(false);
    let cancelled_instead;
    let finish = match finish {
        Finish::Retry { .. }
        | Finish::Release { .. }
        | Finish::Reclaimed { .. }
        | Finish::UsageLimit { .. }
        | Finish::Failed { .. }
            if cancel_requested =>
        {
            cancelled_instead = Finish::Cancelled {
                error: TaskError { kind: ErrorKind::Cancelled, message: "cancelled while running".to_owned() },
            };
            &cancelled_instead
        }
        other => other,
    };
    // The CLI stopped at the cap its orchestration's budget gave it: the budget ran out.
    let budget_instead;
    let finish = match finish {
        Finish::Failed { error } => match super::budgets::stopped_by_budget(tx, task_id, error)? {
            Some(error) => {
                budget_instead = Finish::Failed { error };
                &budget_instead
            }
            None => finish,
        },
        other => other,
    };
    let (status, result, error, ready_at, kind) = match finish {
        Finish::Completed { result } => (TaskStatus::Completed, result.as_deref(), None, None, "completed"),
        Finish::Retry { error, ready_at } => {
            (TaskStatus::Pending, None, Some(error), Some(*ready_at), "retry_scheduled")
        }
        Finish::Failed { error } => (TaskStatus::Failed, None, Some(error), None, "failed"),
        Finish::Cancelled { error } => (TaskStatus::Cancelled, None, Some(error), None, "cancelled"),
        Finish::Release { error, .. } => (TaskStatus::Pending, None, Some(error), None, "released"),
        Finish::Reclaimed { error } => (TaskStatus::Pending, None, Some(error), None, "reclaimed"),
        Finish::UsageLimit { error, .. } => (TaskStatus::Pending, None, Some(error), None, "usage_limited"),
    };
    // The account is limited whatever became of this claim: every process must stop claiming.
    if let Some(warning) = &stats.usage_warning {
        super::limits::record_warning(tx, warning)?;
    }
    let pause_started = match finish {
        Finish::UsageLimit { pause, .. } => super::limits::record_pause(tx, pause)?,
        _ => None,
    };
    let uncount =
        i64::from(matches!(finish, Finish::Release { .. } | Finish::Reclaimed { .. } | Finish::UsageLimit { .. }));
    // An interrupted attempt leaves its Claude session to the next one; any other end clears it.
    let resume = i64::from(matches!(
        finish,
        Finish::Release { resume: true, .. } | Finish::Reclaimed { .. } | Finish::UsageLimit { .. }
    ));
    let ended_at = status.is_terminal().then_some(now);
    let changed = tx
        .prepare_cached(
            "UPDATE tasks SET status = ?4, result = coalesce(?5, result),
                 error_kind = CASE WHEN ?4 = 'cancelled' AND cancel_kind IS NOT NULL THEN cancel_kind ELSE ?6 END,
                 error_message = CASE WHEN ?4 = 'cancelled' AND cancel_reason IS NOT NULL THEN cancel_reason ELSE ?7 END,
                 ready_at = ?8, ended_at = ?9, owner = NULL, lease_expires_at = NULL, pid = NULL,
                 session_id = coalesce(?10, session_id), cost_usd = cost_usd + ?11,
                 input_tokens = input_tokens + ?12, output_tokens = output_tokens + ?13,
                 cache_creation_input_tokens = cache_creation_input_tokens + ?14,
                 cache_read_input_tokens = cache_read_input_tokens + ?15,
                 num_turns = coalesce(?16, num_turns), duration_ms = coalesce(?17, duration_ms),
                 permission_denials = coalesce(?18, permission_denials), last_action = coalesce(?19, last_action),
                 attempt = attempt - ?20,
                 resume_session_id = CASE WHEN ?21 = 1 THEN coalesce(?10, session_id, resume_session_id) END,
                 structured_result = CASE WHEN ?4 = 'completed' THEN ?22 ELSE structured_result END
             WHERE task_id = ?1 AND owner = ?2 AND fence = ?3 AND status = 'running'",
        )?
        .execute(params![
            task_id,
            owner,
            fence,
            status.as_str(),
            result,
            error.map(|e| e.kind.as_str()),
            error.map(|e| e.message.as_str()),
            ready_at,
            ended_at,
            stats.session_id,
            stats.cost_usd,
            to_i64(stats.usage.input_tokens),
            to_i64(stats.usage.output_tokens),
            to_i64(stats.usage.cache_creation_input_tokens),
            to_i64(stats.usage.cache_read_input_tokens),
            stats.num_turns,
            stats.duration_ms.map(to_i64),
            stats.permission_denials,
            stats.last_action,
            uncount,
            resume,
            stats.structured_result,
        ])?;
    if changed == 0 {
        return Ok(FinishOutcome { pause_started, ..FinishOutcome::default() });
    }
    let (key, attempt) = key_and_attempt(tx, task_id)?;
    let stored_error: Option<(String, String)> = tx
        .prepare_cached("SELECT error_kind, error_message FROM tasks WHERE task_id = ?1 AND error_kind IS NOT NULL")?
        .query_row([task_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let detail = match finish {
        Finish::Completed { .. } => Some(format!("cost ${:.4}", stats.cost_usd)),
        Finish::Retry { error, ready_at } => Some(format!(
            "{}: {} (next attempt in {:.1} s)",
            error.kind,
            error.message,
            (*ready_at - now) as f64 / 1000.0
        )),
        Finish::Release { error, .. } | Finish::Reclaimed { error } | Finish::UsageLimit { error, .. } => {
            let message = match finish {
                Finish::UsageLimit { pause, .. } => {
                    crate::usage_limit::event_detail(pause.kind.as_deref(), pause.until)
                }
                _ => error.message.clone(),
            };
            let resumes: Option<String> = tx
                .prepare_cached("SELECT resume_session_id FROM tasks WHERE task_id = ?1")?
                .query_row([task_id], |row| row.get(0))?;
            Some(match resumes {
                Some(session) => format!("{message}; the next attempt resumes session {session}"),
                None => message,
            })
        }
        Finish::Failed { .. } | Finish::Cancelled { .. } => {
            stored_error.map(|(kind, message)| format!("{kind}: {message}"))
        }
    };
    record_event(tx, &key, now, kind, attempt, Some((owner, fence)), detail.as_deref())?;

    let mut outcome = FinishOutcome { accepted: true, status: Some(status), pause_started, ..FinishOutcome::default() };
    if status == TaskStatus::Completed {
        crate::crash::point("before_completion_commit");
        // A completion only concerns the task's dependents and their other dependencies.
        let graph = load_dependents(tx, task_id)?;
        outcome.promoted = promote(tx, &graph, &key, now)?;
    }
    // The cost just recorded may have spent the orchestration's budget: nothing more of it
    // starts. Decided before the dependents of a failure are skipped, so that what the budget
    // stopped is told as such (and runs again when the budget is raised).
    outcome.skipped = super::budgets::enforce(tx, key.orchestration_id, now)?;
    if status.blocks_dependents() {
        let graph = load_descendants(tx, task_id)?;
        outcome.skipped.extend(skip_descendants(tx, &graph, &key, status, now)?);
    }
    outcome.orchestration_finished = refresh_orchestration(tx, key.orchestration_id, now)?;
    Ok(outcome)
}

/// The part of the graph a completion of `task_id` can change: its dependents, and every
/// dependency of those dependents, with their states.
fn load_dependents(tx: &Connection, task_id: TaskId) -> Result<crate::graph::Graph, StoreError> {
    let mut graph = crate::graph::Graph::new();
    let mut stmt = tx.prepare_cached(
        "SELECT d2.task_id, dependent.status, d2.depends_on, dependency.status
         FROM task_dependencies d1
         JOIN task_dependencies d2 ON d2.task_id = d1.task_id
         JOIN tasks dependent ON dependent.task_id = d2.task_id
         JOIN tasks dependency ON dependency.task_id = d2.depends_on
         WHERE d1.depends_on = ?1",
    )?;
    let mut rows = stmt.query([task_id])?;
    while let Some(row) = rows.next()? {
        let (dependent, dependency): (TaskId, TaskId) = (row.get(0)?, row.get(2)?);
        let (dependent_status, dependency_status): (String, String) = (row.get(1)?, row.get(3)?);
        graph.add_task(dependent, TaskStatus::parse(&dependent_status).unwrap_or(TaskStatus::Failed));
        graph.add_task(dependency, TaskStatus::parse(&dependency_status).unwrap_or(TaskStatus::Failed));
        graph.add_edge(dependent, dependency);
    }
    Ok(graph)
}

/// Moves the dependents of a completed task whose dependencies have all completed to `pending`,
/// not before their `wait_after_dependencies`.
pub(super) fn promote(
    tx: &Connection,
    graph: &crate::graph::Graph,
    completed: &TaskKey,
    now: Millis,
) -> Result<Vec<TaskId>, StoreError> {
    let ready = graph.ready_after_completion(completed.task_id);
    for &task_id in &ready {
        let wait: f64 = tx
            .prepare_cached(
                "UPDATE tasks SET status = 'pending',
                     ready_at = CASE WHEN wait_after_dependencies > 0 THEN ?2 + CAST(round(wait_after_dependencies * 1000) AS INTEGER) END
                 WHERE task_id = ?1 AND status = 'waiting'
                 RETURNING wait_after_dependencies",
            )?
            .query_row(params![task_id, now], |row| row.get(0))?;
        let key = task_key(tx, task_id)?;
        let detail = if wait > 0.0 {
            format!("dependencies completed; starts after {:.1} s", seconds_to_ms(wait) as f64 / 1000.0)
        } else {
            "dependencies completed".to_owned()
        };
        record_event(tx, &key, now, "ready", 0, None, Some(&detail))?;
        crate::crash::point("mid_promotion");
    }
    Ok(ready)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
