//! Driving one claimed attempt: the run, its progress and heartbeats, and its outcome written.

use std::time::Duration;

use backon::Retryable as _;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::verify::{AttemptRun, AttemptSetup};
use super::{Executor, StopReason, duration_ms, lock, policy, write_backoff};
use crate::feedback::Event;
use crate::logs::{TaskLogPaths, append_summary};
use crate::model::{TaskId, TaskRecord};
use crate::prompt;
use crate::runner::{self, RunProgress, RunSpec};
use crate::store::{Claimed, Finish, Heartbeat, RunStats, StoreError};
use crate::time::now_ms;

const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

impl Executor {
    /// Runs one claimed attempt and writes its outcome.
    pub(super) async fn drive(&self, claimed: Claimed, cancel: CancellationToken, shutdown: CancellationToken) {
        let inner = &self.inner;
        let task = claimed.task;
        let task_id = task.task_id;
        let fence = claimed.fence;
        let config = &inner.config;
        let paths = TaskLogPaths::new(&inner.task_log_dir, task_id);
        let _ = append_summary(
            &paths.summary,
            &format!(
                "attempt {}/{} of {} started: model {}, in {}",
                task.attempt,
                task.settings.max_attempts,
                task.task_identifier,
                task.settings.model,
                task.settings.working_directory
            ),
        );
        let resume = claimed.resume_session.as_deref();
        if let Some(session) = resume {
            let _ = append_summary(&paths.summary, &format!("resuming the interrupted session {session}"));
        }
        let (progress_tx, progress_rx) = watch::channel(RunProgress::default());
        // Progress and heartbeats are written by their own task: a write that waits for a busy
        // database must not stop the loop below from reading the CLI's output (it would block on
        // a full pipe) or from stopping it (timeout, kill escalation, cancel). It starts before
        // the worktree is made: a large checkout, or a wait for the repository's lock, must not
        // let the lease run out.
        let (verdict_tx, mut verdicts) = tokio::sync::mpsc::unbounded_channel();
        let run_over = CancellationToken::new();
        let recorder = tokio::spawn({
            let this = self.clone();
            let identifier = task.task_identifier.clone();
            let (progress_rx, run_over) = (progress_rx.clone(), run_over.clone());
            async move { this.record_attempt(task_id, fence, identifier, progress_rx, verdict_tx, run_over).await }
        });
        // An isolated task runs in its worktree: made now, or found again.
        let workspace = match self.prepare_workspace(&task, fence).await {
            Ok(workspace) => workspace,
            Err(failure) => {
                lock(&inner.running).remove(&task_id);
                run_over.cancel();
                let _ = recorder.await;
                let cx = policy_context(&task, claimed.resume_session.is_some(), config);
                let (kind, message) = (failure.error.kind.clone(), failure.error.message.clone());
                let finish = policy::setup_failure(&cx, failure.error, failure.transient);
                let summary_line = match &finish {
                    Finish::Retry { .. } => format!("could not start: {kind}: {message}; trying again later"),
                    _ => format!("failed before it started: {kind}: {message}"),
                };
                self.record_outcome(&task, fence, finish, RunStats::default(), summary_line, Duration::ZERO).await;
                return;
            }
        };
        // A resumed session was given the composed prompt when it started: it only gets the
        // resume prompt, or the dependencies' results would be in its conversation twice.
        let prompt = match resume {
            Some(_) => config.resume_prompt.clone(),
            None => {
                let conflicts = workspace.as_ref().map_or(&[][..], |w| &w.conflicts[..]);
                self.attempt_prompt(&task, &paths, conflicts).await
            }
        };
        let spec = RunSpec {
            claude_bin: config.claude_bin.clone(),
            args: runner::command_args(&task.settings, resume, claimed.max_budget_usd),
            prompt,
            working_directory: workspace
                .as_ref()
                .map_or_else(|| task.settings.working_directory.clone().into(), |w| w.directory.clone()),
            timeout: Duration::from_secs(task.settings.timeout_seconds),
            kill_grace: config.kill_grace,
            summary_log: paths.summary.clone(),
            detailed_log: paths.detailed.clone(),
            max_detailed_log_bytes: config.max_detailed_log_bytes,
            run_tag: runner::run_tag(&inner.owner, task_id, fence),
            system_prompt: task.settings.system_prompt.clone(),
            append_system_prompt: task.settings.append_system_prompt.clone(),
        };
        let run_stop = CancellationToken::new();
        // The CLI, then the task's checks and the fixes they ask for: one attempt.
        let run = self.run_checked(AttemptSetup {
            task: &task,
            fence,
            spec: &spec,
            max_budget_usd: claimed.max_budget_usd,
            paths: &paths,
            stop: &run_stop,
            progress: &progress_tx,
        });
        tokio::pin!(run);
        let mut stop_reason: Option<StopReason> = None;
        let AttemptRun { report, stats, elapsed } = loop {
            tokio::select! {
                attempt = &mut run => break attempt,
                Some(why) = verdicts.recv() => stop(&mut stop_reason, why, &run_stop),
                () = cancel.cancelled(), if stop_reason.is_none() => stop(&mut stop_reason, StopReason::Cancel, &run_stop),
                () = shutdown.cancelled(), if stop_reason.is_none() => stop(&mut stop_reason, StopReason::Shutdown, &run_stop),
            }
        };
        lock(&inner.running).remove(&task_id);
        // The recorder finishes the write it is in (the outcome waits for the database anyway),
        // so that nothing of this attempt is written after its outcome.
        run_over.cancel();
        let pid_recorded = recorder.await.unwrap_or(false);
        let (last_pid, started_ms) = {
            let progress = progress_rx.borrow();
            (progress.pid, progress.started_ms)
        };
        if !pid_recorded && let Some(pid) = last_pid {
            self.mark_started(task_id, fence, pid, started_ms).await;
            inner.feedback.emit(&Event::TaskStarted { task_id, identifier: task.task_identifier.clone() });
        }

        let cx = policy_context(&task, claimed.resume_session.is_some(), config);
        let Some(mut finish) = policy::decide(&cx, &report, stop_reason) else {
            tracing::warn!(task_id, "lost the claim of task {task_id}; its outcome is not recorded");
            return;
        };
        // An isolated task's result is the commit it leaves on its branch (after its checks).
        if let (Finish::Completed { .. }, Some(workspace)) = (&finish, &workspace)
            && let Err(error) = self.conclude_workspace(&task, fence, workspace).await
        {
            finish = Finish::Failed { error };
        }
        let summary_line = summary_of(&finish, stats.cost_usd, elapsed);
        self.record_outcome(&task, fence, finish, stats, summary_line, elapsed).await;
    }

    /// Writes an attempt's outcome (again with backoff until it can be, or the claim is lost),
    /// then logs and announces it.
    async fn record_outcome(
        &self,
        task: &TaskRecord,
        fence: i64,
        finish: Finish,
        stats: RunStats,
        summary_line: String,
        elapsed: Duration,
    ) {
        let inner = &self.inner;
        let task_id = task.task_id;
        let paths = TaskLogPaths::new(&inner.task_log_dir, task_id);
        // The outcome must not be lost to a passing fault (a full disk, a lock held too long):
        // try again with backoff before giving up and leaving the task to lease recovery.
        let write = || {
            let (owner, finish, stats) = (inner.owner.clone(), finish.clone(), stats.clone());
            inner.db.call(move |s| s.finish(task_id, &owner, fence, &finish, &stats, now_ms()))
        };
        let written = write
            .retry(write_backoff())
            // A full disk can last: keep the outcome until it can be written (or the database
            // thread is gone). Meanwhile the lease runs out and another executor may take the
            // task over, and then this write is refused by its fence.
            // A deleted or replaced database never comes back: its outcome cannot be recorded.
            .when(|e| !matches!(e, StoreError::Closed) && !e.is_lost())
            .notify(|e, delay| tracing::warn!(task_id, "cannot record the outcome yet ({e}); again in {delay:?}"))
            .await;
        match written {
            Ok(outcome) if outcome.accepted => {
                let _ = append_summary(&paths.summary, &summary_line);
                inner.feedback.finished(task, &finish, &outcome, elapsed, stats.cost_usd);
            }
            Ok(outcome) => {
                tracing::warn!(task_id, "the outcome of task {task_id} was refused: another owner holds it now");
                // The account's pause was recorded all the same: it is announced once anyway.
                if let Some(pause) = &outcome.pause_started {
                    inner.feedback.emit(&Event::WorkPaused(pause.clone()));
                }
            }
            Err(e) if e.is_lost() => {
                // Its log is all that is left of it.
                let line = match &finish {
                    Finish::Release { .. } => format!("stopped after {:.1} s", elapsed.as_secs_f64()),
                    _ => summary_line,
                } + ", not recorded: the database was deleted or replaced under this process";
                let _ = append_summary(&paths.summary, &line);
                tracing::warn!(task_id, "task {task_id} {line}");
            }
            Err(e) => tracing::error!(task_id, "cannot record the outcome of task {task_id}: {e}"),
        }
        inner.changes.send_modify(|n| *n += 1);
    }

    /// Writes what a running attempt does while it runs: its pid at once, its session id and
    /// last action at most every [`PROGRESS_INTERVAL`], and a heartbeat that renews the lease and
    /// tells of a cancel asked for elsewhere or a lost claim (sent to the driver as the reason
    /// to stop). Runs until `run_over` fires; says whether the pid was recorded.
    async fn record_attempt(
        self,
        task_id: TaskId,
        fence: i64,
        identifier: String,
        mut progress_rx: watch::Receiver<RunProgress>,
        verdicts: tokio::sync::mpsc::UnboundedSender<StopReason>,
        run_over: CancellationToken,
    ) -> bool {
        let inner = &self.inner;
        let config = &inner.config;
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + config.heartbeat,
            config.heartbeat.max(Duration::from_millis(10)),
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the store has, and when to write what changed since (progress is written at
        // most every PROGRESS_INTERVAL; the final state goes with the outcome).
        let mut recorded = RunProgress::default();
        let mut flush_at: Option<Instant> = None;
        let mut progress_failing = false;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let lease_ms = duration_ms(config.lease);
        loop {
            tokio::select! {
                biased;
                () = run_over.cancelled() => return recorded.pid.is_some(),
                Ok(()) = progress_rx.changed() => {
                    let (pid, started_ms) = {
                        let progress = progress_rx.borrow_and_update();
                        (progress.pid, progress.started_ms)
                    };
                    if pid.is_some() && recorded.pid.is_none() {
                        crate::crash::point("after_spawn");
                        // The pid is written at once, for a person looking at the task.
                        self.mark_started(task_id, fence, pid.unwrap_or(0), started_ms).await;
                        inner.feedback.emit(&Event::TaskStarted { task_id, identifier: identifier.clone() });
                        recorded.pid = pid;
                    }
                    if flush_at.is_none() {
                        flush_at = Some(Instant::now() + PROGRESS_INTERVAL);
                    }
                }
                () = sleep_until(flush_at.unwrap_or(far)), if flush_at.is_some() => {
                    flush_at = None;
                    let now_progress = progress_rx.borrow().clone();
                    match self.record_progress(task_id, fence, &recorded, &now_progress).await {
                        Ok(()) => {
                            progress_failing = false;
                            recorded = now_progress;
                        }
                        Err(e) => {
                            // The session id must reach the store for a resume: try again later.
                            if !progress_failing && !e.is_lost() {
                                tracing::warn!(task_id, "cannot record progress: {e}; trying again");
                            }
                            progress_failing = true;
                            flush_at = Some(Instant::now() + PROGRESS_INTERVAL * 8);
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let owner = inner.owner.clone();
                    let verdict = match inner.db.call(move |s| s.heartbeat(task_id, &owner, fence, lease_ms, now_ms())).await {
                        Ok(Heartbeat::Renewed) => None,
                        Ok(Heartbeat::CancelRequested) => Some(StopReason::Cancel),
                        Ok(Heartbeat::Lost) => Some(StopReason::LeaseLost),
                        // Nothing can be recorded any more: the process is stopping this attempt.
                        Err(e) if e.is_lost() => None,
                        Err(e) => {
                            tracing::warn!(task_id, "heartbeat failed: {e}");
                            None
                        }
                    };
                    if let Some(why) = verdict {
                        let _ = verdicts.send(why);
                    }
                }
            }
        }
    }

    /// The prompt an attempt that starts a new session is given ([`prompt::compose`]): the
    /// files its start merge left with conflict markers first (isolation), then its own prompt,
    /// then its dependencies' results unless it set `include_dependency_results: false`. A read
    /// that keeps failing leaves the results out, and the summary log says so.
    async fn attempt_prompt(&self, task: &TaskRecord, paths: &TaskLogPaths, conflicts: &[String]) -> String {
        let dependencies = if task.settings.include_dependency_results {
            self.dependency_results(task, paths).await
        } else {
            Vec::new()
        };
        let prompt = prompt::compose(&task.prompt, conflicts, &dependencies);
        if !dependencies.is_empty() {
            let _ = append_summary(
                &paths.summary,
                &format!(
                    "the prompt ends with the results of {} ({} bytes added)",
                    crate::text::count_as(dependencies.len() as u64, "dependency", "dependencies"),
                    prompt.len() - task.prompt.len()
                ),
            );
        }
        prompt
    }

    /// What the task's dependencies reported, with where each one's whole output is; none when
    /// they cannot be read (after a few tries).
    async fn dependency_results(&self, task: &TaskRecord, paths: &TaskLogPaths) -> Vec<prompt::DependencyResult> {
        let inner = &self.inner;
        let task_id = task.task_id;
        let read = || inner.db.call(move |s| s.dependency_results(task_id));
        let read = read
            .retry(write_backoff().with_max_times(5))
            .when(|e| !matches!(e, StoreError::Closed) && !e.is_lost())
            .await;
        match read {
            Ok(mut dependencies) => {
                let log_dir = &inner.task_log_dir;
                for dependency in &mut dependencies {
                    dependency.full_output = Some(TaskLogPaths::new(log_dir, dependency.task_id).detailed);
                }
                dependencies
            }
            Err(e) => {
                tracing::warn!(task_id, "cannot read the results of task {task_id}'s dependencies: {e}");
                let _ = append_summary(
                    &paths.summary,
                    &format!("the dependencies' results could not be read ({e}): the prompt is as written"),
                );
                Vec::new()
            }
        }
    }

    /// Records the start of the CLI, `started_ms` when it was started (now if unknown).
    async fn mark_started(&self, task_id: TaskId, fence: i64, pid: u32, started_ms: Option<crate::model::Millis>) {
        let owner = self.inner.owner.clone();
        let at = started_ms.unwrap_or_else(now_ms);
        if let Err(e) = self.inner.db.call(move |s| s.mark_started(task_id, &owner, fence, pid, at)).await
            && !e.is_lost()
        {
            tracing::warn!(task_id, "cannot record the start: {e}");
        }
    }

    async fn record_progress(
        &self,
        task_id: TaskId,
        fence: i64,
        before: &RunProgress,
        now: &RunProgress,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let owner = inner.owner.clone();
        let action = (now.last_action != before.last_action).then(|| now.last_action.clone()).flatten();
        let session = (now.session_id != before.session_id).then(|| now.session_id.clone()).flatten();
        if action.is_some() || session.is_some() {
            let written = inner
                .db
                .call(move |s| s.record_progress(task_id, &owner, fence, action.as_deref(), session.as_deref()))
                .await;
            written?;
            inner.changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }
}

/// What the policy needs to know of an attempt's task, of this process's settings, and the time.
fn policy_context<'a>(task: &'a TaskRecord, resumed: bool, config: &crate::config::Config) -> policy::Context<'a> {
    policy::Context {
        attempt: task.attempt,
        max_attempts: task.settings.max_attempts,
        timeout_seconds: task.settings.timeout_seconds,
        result_schema: task.settings.result_schema.as_ref(),
        resumed,
        retry_base: config.retry_base,
        retry_max: config.retry_max,
        now: now_ms(),
        jitter: crate::usage_limit::random_jitter(),
    }
}

fn stop(reason: &mut Option<StopReason>, why: StopReason, run_stop: &CancellationToken) {
    if reason.is_none() {
        *reason = Some(why);
        run_stop.cancel();
    }
}

fn summary_of(finish: &Finish, cost: f64, elapsed: Duration) -> String {
    let elapsed = elapsed.as_secs_f64();
    match finish {
        Finish::Completed { result } => {
            let text = result.as_deref().unwrap_or("").replace('\n', " ");
            let short: String = text.chars().take(200).collect();
            format!("completed in {elapsed:.1} s, cost ${cost:.4}: {short}")
        }
        Finish::Retry { error, ready_at } => format!(
            "attempt failed after {elapsed:.1} s ({}: {}); retrying in {:.1} s",
            error.kind,
            error.message,
            (*ready_at - now_ms()).max(0) as f64 / 1000.0
        ),
        Finish::Failed { error } => {
            format!("failed after {elapsed:.1} s, cost ${cost:.4}: {}: {}", error.kind, error.message)
        }
        Finish::Cancelled { .. } => format!("cancelled after {elapsed:.1} s, cost ${cost:.4}"),
        Finish::Release { error, .. } | Finish::Reclaimed { error } => {
            format!("released after {elapsed:.1} s: {}", error.message)
        }
        Finish::UsageLimit { error, .. } => format!("refused by the account's usage limit: {}", error.message),
    }
}
