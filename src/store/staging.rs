//! The rows of staging: an isolated task that waits for its dependencies gets its worktree made
//! ahead of its start, recorded as `worktree_path` with no `branch` yet (the branch is made, and
//! recorded, when it starts). Two partial indexes (migration 0011) keep these reads the size of
//! the waiting isolated tasks.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::model::{OrchestrationId, TaskId, TaskStatus};

/// A waiting isolated task, among the first in line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub task_id: TaskId,
    pub identifier: String,
    pub orchestration_id: OrchestrationId,
    pub repository: String,
    pub base_commit: String,
    /// Its worktree was made already.
    pub staged: bool,
}

impl Store {
    /// Whether a waiting isolated task has no worktree made yet (asked on every pass).
    pub(super) fn staging_wanted(tx: &rusqlite::Connection) -> Result<bool, StoreError> {
        Ok(tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tasks
                     WHERE isolation = 'worktree' AND status = 'waiting' AND worktree_path IS NULL)",
            )?
            .query_row([], |row| row.get(0))?)
    }

    /// The first `limit` waiting isolated tasks, in the order they were queued (those whose
    /// orchestration has no base yet are left out).
    pub fn waiting_isolated(&mut self, limit: u32) -> Result<Vec<Waiting>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT t.task_id, t.task_identifier, t.orchestration_id, o.repository, o.base_commit,
                        t.worktree_path IS NOT NULL
                 FROM tasks t JOIN orchestrations o ON o.orchestration_id = t.orchestration_id
                 WHERE t.isolation = 'worktree' AND t.status = 'waiting'
                 ORDER BY t.task_id LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |row| {
                Ok((
                    row.get::<_, TaskId>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, OrchestrationId>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, bool>(5)?,
                ))
            })?;
            let mut waiting = Vec::new();
            for row in rows {
                let (task_id, identifier, orchestration_id, repository, base_commit, staged) = row?;
                if let (Some(repository), Some(base_commit)) = (repository, base_commit) {
                    waiting.push(Waiting { task_id, identifier, orchestration_id, repository, base_commit, staged });
                }
            }
            Ok(waiting)
        })
    }

    /// Records the worktree made ahead for a task that has not started. Returns the task's
    /// state: recorded unless it ended meanwhile (then nobody will use the worktree) or started
    /// (then its attempt takes the worktree and records it); `None` for a task deleted meanwhile.
    pub fn record_staged(&mut self, task_id: TaskId, path: &str) -> Result<Option<TaskStatus>, StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE tasks SET worktree_path = ?2
                 WHERE task_id = ?1 AND worktree_path IS NULL AND branch IS NULL AND status IN ('waiting', 'pending')",
            )?
            .execute(params![task_id, path])?;
            let status: Option<String> = tx
                .prepare_cached("SELECT status FROM tasks WHERE task_id = ?1")?
                .query_row([task_id], |row| row.get(0))
                .optional()?;
            Ok(status.as_deref().and_then(TaskStatus::parse))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::{Base, Isolation, NewBase};
    use crate::model::{NewBatch, NewTask, Project, TaskRef, TaskSettings};
    use crate::store::CancelTarget;

    fn isolated(identifier: &str, depends_on: &[&str]) -> NewTask {
        let mut settings = TaskSettings::for_tests();
        settings.isolation = Isolation::Worktree;
        NewTask {
            identifier: identifier.to_owned(),
            prompt: "p".to_owned(),
            depends_on: depends_on.iter().map(|d| TaskRef::Identifier((*d).to_owned())).collect(),
            settings: settings.into(),
            project: Project::from_stored("/".to_owned()),
        }
    }

    #[test]
    fn waiting_isolated_tasks_are_staged_once_and_not_after_they_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("tasks.db")).expect("store");
        let base = Base {
            repository: "/repo".to_owned(),
            base_ref: "HEAD".to_owned(),
            base_commit: "abc".to_owned(),
            merge_when_done: false,
        };
        let batch = NewBatch {
            orchestration: Some("o".to_owned()),
            new_orchestration: true,
            tasks: vec![isolated("a", &[]), isolated("b", &["a"]), isolated("c", &["a"]), isolated("d", &["b"])],
            queued_by: None,
            scope: Project::from_stored("/".to_owned()),
            budget_usd: None,
            default_budget_usd: None,
            isolation: Some(NewBase { base, labels_in_use: Vec::new() }),
        };
        let created = store.create_batch(&batch, 100, i64::MAX, 0).expect("created");
        let id = |name: &str| created.tasks.iter().find(|t| t.identifier == name).expect("task").task_id;
        assert!(store.read(Store::staging_wanted).expect("asked"));
        let waiting = store.waiting_isolated(2).expect("read");
        assert_eq!(waiting.iter().map(|w| w.identifier.as_str()).collect::<Vec<_>>(), ["b", "c"], "in order, bounded");
        assert!(waiting.iter().all(|w| !w.staged && w.base_commit == "abc" && w.repository == "/repo"));

        assert_eq!(store.record_staged(id("b"), "/wt/b").expect("recorded"), Some(TaskStatus::Waiting));
        assert!(store.waiting_isolated(2).expect("read")[0].staged);
        assert_eq!(store.record_staged(id("b"), "/elsewhere").expect("again"), Some(TaskStatus::Waiting));
        let worktree_of = |store: &mut Store, task_id| {
            store.read(|tx| super::super::query::read_task(tx, task_id)).expect("task").worktree.path
        };
        assert_eq!(worktree_of(&mut store, id("b")).as_deref(), Some("/wt/b"), "recorded once");

        let here = Project::from_stored("/".to_owned());
        store.cancel(&CancelTarget::Task(TaskRef::Id(id("c")), here), "not needed", 1).expect("cancelled");
        assert_eq!(store.record_staged(id("c"), "/wt/c").expect("asked"), Some(TaskStatus::Cancelled));
        assert!(worktree_of(&mut store, id("c")).is_none(), "an ended task's is not recorded");
        assert_eq!(store.waiting_isolated(5).expect("read").len(), 2, "b and d wait");
    }
}
