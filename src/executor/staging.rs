//! Worktrees made ahead: while an isolated task waits for its dependencies, its worktree is made
//! at its orchestration's base, so that at its start only the files its dependencies changed are
//! written (see [`crate::git`]'s `stage`). On a large repository this takes the checkout, which
//! costs seconds, off the path from a dependency's end to the dependent's start.
//!
//! At most [`crate::config::Config::max_concurrent`] waiting tasks have a worktree made ahead:
//! the first in line, which are the ones that start soonest in the common shapes (a chain, a
//! layer after a layer). One stager runs at a time, in the background: nothing waits for it. A
//! task whose worktree is being made when it is claimed waits for that ([`Executor::staging_gate`])
//! rather than making it twice. A spare worktree kept of the repository is taken when there is one
//! (its files are there already). A worktree that could not be made ahead is made at the start,
//! as without staging.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Executor, lock};
use crate::git::GitError;
use crate::isolation;
use crate::model::{TaskId, TaskStatus};
use crate::store::{StoreError, Waiting};

/// Why a worktree was not made ahead.
#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Executor {
    /// Starts the stager unless it runs already. Detached from the dispatch loop's set of
    /// attempts, so that its end does not make another pass (which would start it again).
    pub(super) fn start_staging(&self) {
        if self.inner.staging_active.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.stage_waiting().await;
            this.inner.staging_active.store(false, Ordering::Release);
        });
    }

    /// Makes the worktrees of the first waiting isolated tasks, until each of them has one.
    async fn stage_waiting(&self) {
        let inner = &self.inner;
        let limit = inner.config.max_concurrent;
        loop {
            let waiting = match inner.db.call(move |s| s.waiting_isolated(limit)).await {
                Ok(waiting) => waiting,
                Err(e) => {
                    if !e.is_lost() {
                        tracing::warn!("cannot look for waiting isolated tasks: {e}");
                    }
                    return;
                }
            };
            let due: Vec<Waiting> = {
                let mut failed = lock(&inner.staging_failed);
                if waiting.is_empty() {
                    failed.clear();
                }
                waiting.into_iter().filter(|w| !w.staged && !failed.contains(&w.task_id)).collect()
            };
            if due.is_empty() {
                return;
            }
            for task in due {
                if let Err(e) = self.stage(&task).await {
                    // Made at its start instead; not tried again ahead.
                    tracing::info!(
                        task_id = task.task_id,
                        "the worktree of task #{} was not made ahead: {e}",
                        task.task_id
                    );
                    lock(&inner.staging_failed).insert(task.task_id);
                }
            }
        }
    }

    /// Makes one waiting task's worktree ahead, holding its gate (see [`Executor::staging_gate`]).
    async fn stage(&self, task: &Waiting) -> Result<(), StageError> {
        let inner = &self.inner;
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let _held = Arc::clone(&gate).lock_owned().await;
        lock(&inner.staging).insert(task.task_id, gate);
        let result = self.stage_gated(task).await;
        lock(&inner.staging).remove(&task.task_id);
        result
    }

    async fn stage_gated(&self, task: &Waiting) -> Result<(), StageError> {
        let inner = &self.inner;
        let git = &inner.git;
        let repository = PathBuf::from(&task.repository);
        let path = isolation::worktree_path(
            &inner.config.worktree_dir(),
            task.orchestration_id,
            task.task_id,
            &task.identifier,
        );
        let info = git.discover(&repository).await?;
        let filled = {
            let _lock = git.lock(&info.common_dir).await?;
            // A spare kept of the repository has its files already (see `git::spare`).
            let spare = inner.config.spare_worktrees > 0
                && !path.exists()
                && git.take_spare(&repository, &inner.config.spare_worktree_dir(), &path).await?;
            if !spare && !git.stage_worktree(&repository, &path, &task.base_commit).await? {
                // Something is there already: the task started, or another process staged it.
                return Ok(());
            }
            spare
        };
        let (task_id, recorded) = (task.task_id, path.to_string_lossy().into_owned());
        let status = inner.db.call(move |s| s.record_staged(task_id, &recorded)).await?;
        if status.is_none_or(TaskStatus::is_terminal) {
            // Ended meanwhile: nobody will work there.
            let _lock = git.lock(&info.common_dir).await?;
            return Ok(git.remove_worktree(&repository, &path).await?);
        }
        if filled {
            return Ok(());
        }
        Ok(git.fill_staged(&path).await?)
    }

    /// The gate the stager holds while it makes `task_id`'s worktree, if it does. Asked with
    /// the repository's lock held: the stager takes the gate before that lock, so a task whose
    /// worktree it has begun to make is seen; then release the lock, wait for the gate, and look
    /// again.
    pub(super) fn staging_gate(&self, task_id: TaskId) -> Option<Arc<tokio::sync::Mutex<()>>> {
        lock(&self.inner.staging).get(&task_id).cloned()
    }
}
