//! Work queued from inside a task: what the store knows of the attempt a `CLAUDE_WORKER_RUN` tag
//! names (so that the service can decide whether to believe it), and the creator and depth
//! recorded with each task such an attempt queues.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
use crate::model::{QueuedBy, TaskId};

/// A task as far as the tag of one of its attempts can be checked against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptOf {
    /// The fence of its latest claim: every attempt it had carries a fence up to this one.
    pub fence: i64,
    /// Who holds (or last held) that claim.
    pub owner: Option<String>,
    /// How deep the task itself was queued.
    pub depth: u32,
}

impl Store {
    /// What an attempt's tag can be checked against; `None` for a task that does not exist.
    pub fn attempt_of(&mut self, task_id: TaskId) -> Result<Option<AttemptOf>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT fence, owner, depth FROM tasks WHERE task_id = ?1")?
                .query_row([task_id], |row| {
                    Ok(AttemptOf { fence: row.get(0)?, owner: row.get(1)?, depth: row.get(2)? })
                })
                .optional()?)
        })
    }
}

/// Records who queued `task_id`, and at what depth, in its creating transaction.
pub(super) fn record_creator(tx: &Connection, task_id: TaskId, by: &QueuedBy) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE tasks SET created_by = ?2, depth = ?3 WHERE task_id = ?1")?
        .execute(params![task_id, by.task_id, by.depth])?;
    Ok(())
}

/// The detail of a task's `created` event: who queued it, then what it depends on.
pub(super) fn created_detail(by: Option<&QueuedBy>, depends: Option<String>) -> Option<String> {
    match (by, depends) {
        (None, depends) => depends,
        (Some(by), None) => Some(format!("queued by #{}", by.task_id)),
        (Some(by), Some(depends)) => Some(format!("queued by #{}; {depends}", by.task_id)),
    }
}
