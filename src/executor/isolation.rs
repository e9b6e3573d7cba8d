//! Isolated attempts and integrations, through `git`: the worktree an isolated task's attempt
//! runs in (made, or found again after a crash), its result committed on its branch, and, once
//! an orchestration ended, its results merged onto its integration branch (or a task added to
//! resolve their conflicts), its completed tasks' worktrees removed, and the integration merged
//! into the checkout when asked. Every git step on a repository holds its lock.
//!
//! Crash rules: a worktree is recorded (fenced) only after it exists, so a task taken back
//! finds it by its deterministic path and branch and resumes there (`ensure_worktree` repairs a
//! half-made one); the start merge is a commit without a ref until the worktree is made from it;
//! the result commit is written before the outcome; an integration sets its branch atomically
//! and is marked done after, so a crash in between makes the next executor do it again.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::Executor;
use crate::git::GitError;
use crate::isolation::{self, IntegrationState, Isolation};
use crate::logs::{TaskLogPaths, append_summary};
use crate::model::{ErrorKind, NewBatch, NewTask, OrchestrationId, TaskError, TaskRecord, TaskRef, TaskSettings};
use crate::store::{IntegrationWork, StoreError};
use crate::time::now_ms;

/// How long after a failed integration pass the next one starts.
const INTEGRATION_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Where an isolated attempt runs, and what its result commit is measured from.
#[derive(Clone, Debug)]
pub(super) struct Workspace {
    /// The task's directory inside its worktree.
    pub directory: PathBuf,
    /// Files its start merge left with conflict markers.
    pub conflicts: Vec<String>,
    worktree: PathBuf,
    repository: PathBuf,
    /// The repository's git directory, where its lock is.
    common_dir: PathBuf,
    start: String,
    label: String,
}

fn failed(e: impl std::fmt::Display) -> TaskError {
    TaskError::new(ErrorKind::IsolationFailed, e.to_string())
}

/// Why an isolated attempt could not start, and whether trying again later may help (git
/// failing as such: a timeout, a lock another program held, a full disk; the database) or not
/// (no repository any more, git missing, a conflict the task must fail on, a branch not ours).
#[derive(Debug)]
pub(super) struct SetupFailure {
    pub error: TaskError,
    pub transient: bool,
}

impl SetupFailure {
    fn permanent(error: TaskError) -> SetupFailure {
        SetupFailure { error, transient: false }
    }

    fn transient(error: TaskError) -> SetupFailure {
        SetupFailure { error, transient: true }
    }
}

impl From<GitError> for SetupFailure {
    fn from(e: GitError) -> SetupFailure {
        // A branch checked out elsewhere may be let go of (another process's attempt ending);
        // one that is not ours stays until a person deletes it.
        let transient = matches!(e, GitError::Failed { .. } | GitError::BranchCheckedOut { .. });
        SetupFailure { error: failed(e), transient }
    }
}

fn store_failed(e: StoreError) -> TaskError {
    failed(format!("cannot read or record the task's worktree: {e}"))
}

impl Executor {
    /// Makes the worktree of an isolated task's attempt, or finds it again (a task taken back
    /// after a crash, or retried, resumes where it was); `None` for a task without isolation.
    pub(super) async fn prepare_workspace(
        &self,
        task: &TaskRecord,
        fence: i64,
    ) -> Result<Option<Workspace>, SetupFailure> {
        if task.settings.isolation != Isolation::Worktree {
            return Ok(None);
        }
        let inner = &self.inner;
        let task_id = task.task_id;
        let plan = inner
            .db
            .call(move |s| s.isolation_plan(task_id))
            .await
            .map_err(|e| SetupFailure::transient(store_failed(e)))?;
        let git = &inner.git;
        let repository = PathBuf::from(&plan.repository);
        let info = git.discover(&repository).await.map_err(SetupFailure::from)?;
        let _lock = loop {
            let held = git.lock(&info.common_dir).await.map_err(SetupFailure::from)?;
            match self.staging_gate(task_id) {
                None => break held,
                Some(gate) => {
                    drop(held);
                    drop(gate.lock().await);
                }
            }
        };
        let recorded = &task.worktree;
        let branch =
            recorded.branch.clone().unwrap_or_else(|| isolation::task_branch(&plan.label, &task.task_identifier));
        let path = recorded.path.as_ref().map_or_else(
            || {
                isolation::worktree_path(
                    &inner.config.worktree_dir(),
                    plan.orchestration_id,
                    task_id,
                    &task.task_identifier,
                )
            },
            PathBuf::from,
        );
        let (start, conflicts) = match &recorded.start_commit {
            // Made before: the same start, whatever its dependencies became since.
            Some(start) => (start.clone(), recorded.conflicts.clone()),
            None => {
                let results: Vec<Option<String>> = plan.dependencies.iter().map(|d| d.result_commit.clone()).collect();
                let points = isolation::start_points(&plan.base_commit, &results);
                let names: Vec<String> = plan.dependencies.iter().map(|d| d.identifier.clone()).collect();
                let merged = git
                    .merge_commits(&repository, &points, &isolation::merge_message(&task.task_identifier, &names))
                    .await
                    .map_err(SetupFailure::from)?;
                (merged.commit, merged.conflicts)
            }
        };
        // A branch of that name that this task did not make (made by hand, or left by a run whose
        // database is gone: orchestrations' branch names are chosen free of the repository's) is
        // never taken over: its work is not this task's.
        if recorded.path.is_none() && !path.exists() {
            let reference = format!("refs/heads/{branch}");
            if git.resolve_commit(&repository, &reference).await.is_ok() {
                return Err(SetupFailure::from(GitError::BranchNotOurs { branch }));
            }
        }
        if !conflicts.is_empty() && task.settings.on_conflict == isolation::OnConflict::Fail {
            let names: Vec<String> = plan.dependencies.iter().map(|d| d.identifier.clone()).collect();
            let message = isolation::conflict_failure(&names, &conflicts);
            return Err(SetupFailure::permanent(TaskError::new(ErrorKind::MergeConflict, message)));
        }
        // Made ahead while the task waited (only a task that never ran: Claude may have
        // detached the HEAD of a worktree it worked in), or made, or found again.
        let mut from_spare = false;
        let staged = match recorded.branch {
            // Made ahead: a directory at its path.
            None if path.exists() => {
                git.take_staged(&repository, &path, &branch, &start).await.map_err(SetupFailure::from)?
            }
            // Nothing there and no branch of its name (checked above): a spare, if one is kept.
            None => {
                let taken = self.take_spare(&repository, &path, &branch, &start).await;
                from_spare = taken.is_some();
                taken
            }
            Some(_) => None,
        };
        let worktree = match staged {
            Some(worktree) => worktree,
            None => git.ensure_worktree(&repository, &path, &branch, &start).await.map_err(SetupFailure::from)?,
        };
        crate::crash::point("after_worktree");
        if recorded.path.is_none() || recorded.start_commit.is_none() {
            let record = isolation::TaskWorktree {
                path: Some(worktree.path.to_string_lossy().into_owned()),
                branch: Some(branch.clone()),
                start_commit: Some(start.clone()),
                conflicts: conflicts.clone(),
                result_commit: None,
                diffstat: None,
            };
            let owner = inner.owner.clone();
            let kept = inner
                .db
                .call(move |s| s.record_worktree(task_id, &owner, fence, &record))
                .await
                .map_err(|e| SetupFailure::transient(store_failed(e)))?;
            if !kept {
                return Err(SetupFailure::permanent(failed("the task's claim was lost while its worktree was made")));
            }
        }
        let working_directory = Path::new(&task.settings.working_directory);
        let directory =
            isolation::directory_in_worktree(&repository, working_directory, &worktree.path).ok_or_else(|| {
                SetupFailure::permanent(failed(format!(
                    "the working directory {} is not inside the repository {}",
                    working_directory.display(),
                    repository.display()
                )))
            })?;
        if !directory.is_dir() {
            return Err(SetupFailure::permanent(failed(format!(
                "{} does not exist in the task's worktree: the working directory is not in the repository's \
                 commit {} (untracked or ignored in the checkout?). Commit it, or run the task from a directory that is",
                directory.display(),
                crate::git::short_commit(&start)
            ))));
        }
        let paths = TaskLogPaths::new(&inner.task_log_dir, task_id);
        let what = match (worktree.resumed, from_spare) {
            (true, _) => "resumed in its worktree",
            (false, true) => "made its worktree from a kept one",
            (false, false) => "made its worktree",
        };
        let mut line =
            format!("{what} {} on branch {branch}, from {}", worktree.path.display(), crate::git::short_commit(&start));
        if !conflicts.is_empty() {
            line.push_str(&format!("; conflicts to resolve in {}", conflicts.join(", ")));
        }
        let _ = append_summary(&paths.summary, &line);
        Ok(Some(Workspace {
            directory,
            conflicts,
            worktree: worktree.path,
            repository,
            common_dir: info.common_dir,
            start,
            label: plan.label,
        }))
    }

    /// Commits what a successful isolated attempt left in its worktree on its branch, and
    /// records that result commit and its diffstat (fenced).
    pub(super) async fn conclude_workspace(
        &self,
        task: &TaskRecord,
        fence: i64,
        workspace: &Workspace,
    ) -> Result<(), TaskError> {
        let inner = &self.inner;
        // A conflicted start is done only once no marker is left in the files it listed.
        let unresolved: Vec<String> = workspace
            .conflicts
            .iter()
            .filter(|file| {
                std::fs::read(workspace.worktree.join(file))
                    .is_ok_and(|bytes| isolation::has_conflict_markers(&String::from_utf8_lossy(&bytes)))
            })
            .cloned()
            .collect();
        if !unresolved.is_empty() {
            return Err(TaskError::new(ErrorKind::MergeConflict, isolation::markers_left(&unresolved)));
        }
        let git = &inner.git;
        let _lock = git.lock(&workspace.common_dir).await.map_err(failed)?;
        let message = isolation::result_commit_message(&task.task_identifier, task.task_id, &workspace.label);
        let commit = git.commit_all(&workspace.worktree, &message).await.map_err(failed)?;
        let diffstat = git.diffstat(&workspace.repository, &workspace.start, &commit).await.unwrap_or_default();
        let (task_id, owner) = (task.task_id, inner.owner.clone());
        let (recorded_commit, recorded_stat) = (commit.clone(), diffstat.clone());
        let kept = inner
            .db
            .call(move |s| s.record_result_commit(task_id, &owner, fence, &recorded_commit, &recorded_stat))
            .await
            .map_err(store_failed)?;
        if !kept {
            return Err(failed("the task's claim was lost while its result was committed"));
        }
        let paths = TaskLogPaths::new(&inner.task_log_dir, task_id);
        let branch = task.worktree.branch.clone().unwrap_or_default();
        let _ = append_summary(
            &paths.summary,
            &format!("result commit {} on {branch}: {diffstat}", crate::git::short_commit(&commit)),
        );
        Ok(())
    }

    /// Starts integrating the ended orchestrations that wait for it, unless this executor is
    /// already at it (one integration at a time per process; the repository lock orders them
    /// across processes).
    pub(super) fn start_integrations(&self, runs: &mut tokio::task::JoinSet<()>) {
        if self.inner.integrating.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        runs.spawn(async move {
            let mut failed = false;
            match this.inner.db.call(|s| s.integrations_due()).await {
                Ok(due) => {
                    for orchestration_id in due {
                        if let Err(e) = this.integrate(orchestration_id).await {
                            failed = !e.is_lost();
                            tracing::error!(orchestration_id, "cannot integrate orchestration {orchestration_id}: {e}");
                        }
                    }
                }
                Err(e) if e.is_lost() => {}
                Err(e) => {
                    failed = true;
                    tracing::warn!("cannot look for integrations: {e}");
                }
            }
            // What is still due is tried again when this pass ends; after a failure (of the
            // database: git's are recorded as abandoned) not at once, or the loop would spin.
            if failed {
                tokio::time::sleep(INTEGRATION_RETRY).await;
            }
            this.inner.integrating.store(false, Ordering::Release);
            this.inner.changes.send_modify(|n| *n += 1);
        });
    }

    /// Integrates one ended orchestration: see the module's documentation.
    async fn integrate(&self, orchestration_id: OrchestrationId) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(recorded) = inner.db.call(move |s| s.isolation_of(orchestration_id)).await? else {
            return Ok(());
        };
        let git = &inner.git;
        let repository = PathBuf::from(&recorded.base.repository);
        let _lock = match git.lock_repository(&repository).await {
            Ok(lock) => lock,
            Err(e) => return self.give_up_integration(orchestration_id, &e).await,
        };
        // Read under the lock: another process may have done it meanwhile.
        let Some(work) = inner.db.call(move |s| s.integration_work(orchestration_id)).await? else { return Ok(()) };
        if work.status != crate::model::OrchestrationStatus::Completed {
            self.remove_worktrees(&repository, &work).await;
            inner
                .db
                .call(move |s| s.finish_integration(orchestration_id, IntegrationState::Abandoned, None, None))
                .await?;
            return Ok(());
        }
        let results: Vec<Option<String>> = work.sinks.iter().map(|s| s.result_commit.clone()).collect();
        let points = isolation::start_points(&work.base.base_commit, &results);
        let names: Vec<String> = work.sinks.iter().map(|s| s.identifier.clone()).collect();
        let merged = match git.merge_commits(&repository, &points, &isolation::merge_message(&work.label, &names)).await
        {
            Ok(merged) => merged,
            Err(e) => return self.give_up_integration(orchestration_id, &e).await,
        };
        if !merged.conflicts.is_empty() {
            return self.add_resolving_task(&work).await;
        }
        let branch = isolation::integration_branch(&work.label);
        // The branch moves only from where this orchestration left it: one that someone else
        // made or moved (another database's orchestration of the same number, a person's
        // commits) is not overwritten.
        let reference = format!("refs/heads/{branch}");
        // (At the merge itself already: moved there before a crash; merges are reproducible.)
        if let Ok(now_at) = git.resolve_commit(&repository, &reference).await
            && Some(&now_at) != recorded.integration_commit.as_ref()
            && now_at != merged.commit
        {
            let e = GitError::Failed {
                command: format!("update-ref {reference}"),
                message: format!(
                    "{branch} exists and is not where this orchestration left it ({}): delete or rename it, then \
                     retry the orchestration",
                    crate::git::short_commit(&now_at)
                ),
            };
            return self.give_up_integration(orchestration_id, &e).await;
        }
        if let Err(e) = git.set_branch(&repository, &branch, &merged.commit).await {
            return self.give_up_integration(orchestration_id, &e).await;
        }
        crate::crash::point("after_integration_branch");
        self.remove_worktrees(&repository, &work).await;
        let note = if work.base.merge_when_done {
            Some(match git.merge_into_checkout(&repository, &branch).await {
                Ok(merge) => format!("merged into the checkout: {merge}"),
                Err(e) => format!("not merged into the checkout: {e}"),
            })
        } else {
            None
        };
        let commit = merged.commit.clone();
        inner
            .db
            .call(move |s| {
                s.finish_integration(orchestration_id, IntegrationState::Done, Some(&commit), note.as_deref())
            })
            .await?;
        tracing::info!(orchestration_id, "orchestration {orchestration_id} integrated on {branch}");
        Ok(())
    }

    /// An integration that git refused: recorded as abandoned with the reason (no endless
    /// retries), for a person to look at.
    async fn give_up_integration(&self, orchestration_id: OrchestrationId, e: &GitError) -> Result<(), StoreError> {
        let note = format!("not integrated: {e}");
        tracing::error!(orchestration_id, "orchestration {orchestration_id} {note}");
        self.inner
            .db
            .call(move |s| s.finish_integration(orchestration_id, IntegrationState::Abandoned, None, Some(&note)))
            .await?;
        Ok(())
    }

    /// Adds the task that resolves the conflicts of an orchestration's results: isolated, it
    /// starts on their conflicted merge with the files listed; its orchestration reopens, and
    /// its completion makes the integration due again (with it as the one result).
    async fn add_resolving_task(&self, work: &IntegrationWork) -> Result<(), StoreError> {
        let inner = &self.inner;
        let config = &inner.config;
        let names: Vec<String> = work.sinks.iter().map(|s| s.identifier.clone()).collect();
        // Conflicts come from merging the results of two sinks at least: there is one to copy.
        let Some(sink) = &work.sink_settings else { return Ok(()) };
        // It works as the tasks it resolves did (their model, permissions, tools and limits), in
        // their directory, on their conflicted merge; with no check of its own, which was theirs.
        let settings = TaskSettings {
            wait_after_dependencies: 0.0,
            isolation: Isolation::Worktree,
            on_conflict: isolation::OnConflict::Resolve,
            verify: None,
            include_dependency_results: true,
            result_schema: None,
            ..sink.clone()
        };
        let task = NewTask {
            identifier: isolation::RESOLVE_IDENTIFIER.to_owned(),
            prompt: isolation::resolve_prompt(&names),
            depends_on: work.sinks.iter().map(|s| TaskRef::Id(s.task_id)).collect(),
            project: crate::project::Project::of_directory(Path::new(&settings.working_directory)),
            settings: settings.into(),
        };
        let batch = NewBatch {
            orchestration: None,
            new_orchestration: false,
            scope: task.project.clone(),
            tasks: vec![task],
            queued_by: None,
            budget_usd: None,
            default_budget_usd: None,
            isolation: None,
        };
        let (max, timeout_ms) = (
            config.max_tasks_per_orchestration,
            i64::try_from(config.orchestration_timeout.as_millis()).unwrap_or(i64::MAX),
        );
        let orchestration_id = work.orchestration_id;
        match inner.db.call(move |s| s.create_batch(&batch, max, timeout_ms, now_ms())).await {
            Ok(created) => {
                tracing::info!(
                    orchestration_id,
                    "the results of {} conflict: added task #{} to resolve them",
                    names.join(", "),
                    created.tasks.first().map_or(0, |t| t.task_id)
                );
                inner.wake.notify_one();
                Ok(())
            }
            // Already added (by another process, or before a crash) and ended, or refused (the
            // orchestration is full, or its budget spent): nothing more to try; said, not retried.
            Err(e @ (StoreError::Taken(_) | StoreError::Refused(_))) => {
                let why = match e {
                    StoreError::Taken(_) => "the task that resolves them ended".to_owned(),
                    other => format!("no task could be added to resolve them ({other})"),
                };
                let note = format!("the results of {} conflict, and {why}", names.join(", "));
                inner
                    .db
                    .call(move |s| {
                        s.finish_integration(orchestration_id, IntegrationState::Abandoned, None, Some(&note))
                    })
                    .await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A spare worktree of the repository made ready at `path` for a task that starts with
    /// nothing there (see `git::spare`), if one is kept. A failure is only said: the worktree is
    /// then made from scratch.
    async fn take_spare(
        &self,
        repository: &Path,
        path: &Path,
        branch: &str,
        start: &str,
    ) -> Option<crate::git::Worktree> {
        let inner = &self.inner;
        if inner.config.spare_worktrees == 0 {
            return None;
        }
        let spares = inner.config.spare_worktree_dir();
        match inner.git.take_spare_for(repository, &spares, path, branch, start).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!("cannot take a spare worktree for {}: {e}", path.display());
                None
            }
        }
    }

    /// Removes the worktrees of an ended orchestration's completed tasks (and those made ahead
    /// for tasks that never started), keeping up to `CLAUDE_WORKER_SPARE_WORKTREES` of the
    /// repository, cleaned, for the next tasks (their branches stay). A worktree that cannot be
    /// removed is left, and said. Hold the repository's lock.
    async fn remove_worktrees(&self, repository: &Path, work: &IntegrationWork) {
        let inner = &self.inner;
        let spares = inner.config.spare_worktree_dir();
        let keep = usize::try_from(inner.config.spare_worktrees).unwrap_or(0);
        for (task_id, path) in &work.completed_worktrees {
            match inner.git.recycle_worktree(repository, Path::new(path), &spares, keep).await {
                Ok(_) => {
                    let task_id = *task_id;
                    if let Err(e) = self.inner.db.call(move |s| s.clear_worktree(task_id)).await {
                        tracing::warn!(task_id, "cannot record the removal of {path}: {e}");
                    }
                }
                Err(e) => tracing::warn!(task_id, "cannot remove the worktree {path}: {e}"),
            }
        }
    }
}
