//! The executor: an actor in every server (and headless worker) that claims ready tasks from the
//! shared database and drives each claimed attempt through the runner.
//!
//! It wakes on events, never on a polling loop: a task was created or retried here
//! ([`Executor::wake`]), an attempt finished, a delayed start or an orchestration deadline came
//! due (it sleeps until the earliest one the store reports), or another process committed to the
//! database (the [`DbWatcher`]; while work is pending, a look every [`SAFETY_CHECK`] catches a
//! change the watch missed). An idle executor sleeps without a timer. Only when the watch
//! cannot be set up does it fall back to looking every [`CAP_RECHECK`] while work is ready.
//!
//! Each attempt runs in its own tokio task, which records progress, renews the lease by heartbeat
//! (learning of cancels issued elsewhere, or that it lost the claim), and writes the fenced
//! outcome when the run ends.
//!
//! Recovery: every step also looks at the tasks other owners run. One whose owner is dead (its
//! owner lock is free, see [`crate::owners`]) or whose lease expired is taken back: its leftover
//! processes are stopped, then it returns to `pending` to resume its Claude session. A live
//! owner's claim is taken over (a new fence) before its processes are stopped, so that an owner
//! waking up meanwhile cannot record their death as the attempt's outcome.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, Retryable as _};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feedback::{Event, Feedback};
use crate::logs::{TaskLogPaths, append_summary};
use crate::model::{Millis, TaskError, TaskId, Usage};
use crate::owners::{self, Liveness, OwnerLock};
use crate::runner::{self, Outcome, RunProgress, RunReport, RunSpec, StopCause};
use crate::store::{Claimed, Db, Finish, ForeignClaim, Heartbeat, RunStats, StoreError};
use crate::time::now_ms;
use crate::watch::{DbWatcher, changed};

/// How often to look for a free slot while every slot is held by other processes.
const CAP_RECHECK: Duration = Duration::from_millis(500);
/// When to look at `PRAGMA data_version` after the WAL file changed.
/// The last ones cover a writer whose fsync is slow (the index is updated only after it).
const VERSION_CHECKS: [Duration; 7] = [
    Duration::from_millis(2),
    Duration::from_millis(20),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(15),
];
/// How often to look at `PRAGMA data_version` while work is pending, besides the watch: a
/// change whose WAL index is updated after the last of [`VERSION_CHECKS`] is seen all the same.
const SAFETY_CHECK: Duration = Duration::from_secs(5);
/// How often a running attempt writes what it is doing (its session id and last action).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// How long a shutdown waits beyond the stop sequence (SIGINT, SIGTERM, SIGKILL a grace apart)
/// for attempts to release their tasks.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(2);

/// The executor of one process. Cheap to clone: all clones drive the same executor.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: Arc<Config>,
    /// Who claims: unique per process, recorded on every claim.
    owner: String,
    host: String,
    /// Held while this executor may claim: tells other processes it is alive.
    lock: Mutex<Option<OwnerLock>>,
    /// Tasks of dead owners this executor is taking back.
    reclaiming: Mutex<HashSet<TaskId>>,
    /// Claims of live owners first seen with an expired lease, and when (see `recover`).
    expired_seen: Mutex<HashMap<(TaskId, i64), Instant>>,
    /// When recovery must look again: `None` once it found no other owner's running task and
    /// nothing else changed the database since (another process's commit makes it due).
    recovery_due: Mutex<Option<Instant>>,
    /// Set when there may be new work; `notify_one` keeps a permit, so no wake-up is lost.
    wake: Notify,
    /// Stop switches of the attempts running in this process. A std mutex: never held across an await.
    running: Mutex<HashMap<TaskId, CancellationToken>>,
    /// Bumped after every change this process makes to a task, for waiters.
    changes: watch::Sender<u64>,
    /// Sounds and desktop notifications for the changes this process makes.
    feedback: Feedback,
}

/// What a pass of the executor found.
struct Pass {
    /// When to look again (a delayed task, a deadline, recovery), if at all.
    next_at: Option<Instant>,
    /// Whether any work is pending (see [`work_pending`]).
    work_pending: bool,
}

/// Whether the schedule shows work that another process's change could move: a task ready (a
/// slot may free), delayed, or running anywhere.
fn work_pending(schedule: &crate::store::Schedule) -> bool {
    schedule.ready_now || schedule.running > 0 || schedule.next_at.is_some()
}

/// How long until the safety-net look at `PRAGMA data_version`: every [`SAFETY_CHECK`] while
/// work is pending and the watch works; never when idle (an idle executor has no timer), nor
/// without a watch (the executor then looks every [`CAP_RECHECK`] anyway).
fn safety_check(work_pending: bool, watching: bool) -> Option<Duration> {
    (work_pending && watching).then_some(SAFETY_CHECK)
}

/// Why a running attempt was stopped by us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    Cancel,
    LeaseLost,
    Shutdown,
}

impl Executor {
    /// An executor for this process, holding its owner lock on the database from now on.
    pub fn new(db: Db, config: Arc<Config>) -> std::io::Result<Executor> {
        let host = owners::this_host();
        let owner = format!("{host}:{}:{}", std::process::id(), now_ms());
        let lock = OwnerLock::acquire(&config.db_path, &owner)?;
        let feedback = Feedback::new(&config);
        Ok(Executor {
            inner: Arc::new(Inner {
                db,
                config,
                owner,
                host,
                lock: Mutex::new(Some(lock)),
                reclaiming: Mutex::new(HashSet::new()),
                expired_seen: Mutex::new(HashMap::new()),
                recovery_due: Mutex::new(Some(Instant::now())),
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                changes: watch::channel(0).0,
                feedback,
            }),
        })
    }

    /// Gives up the owner lock (after [`Executor::run`] returned): from now on other processes
    /// see this executor as gone.
    pub fn release_owner_lock(&self) {
        lock(&self.inner.lock).take();
    }

    /// Whether another executor (server or worker) is alive on this database.
    pub fn others_alive(&self) -> bool {
        owners::others_alive(&self.inner.config.db_path, &self.inner.owner)
    }

    /// The owner name this executor claims with.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// There may be new work (a task was created, retried or cancelled).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
        self.inner.changes.send_modify(|n| *n += 1);
    }

    /// Stops an attempt running in this process; false when it does not run here.
    pub fn stop(&self, task_id: TaskId) -> bool {
        let running = lock(&self.inner.running);
        match running.get(&task_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// A receiver that changes whenever this process changed a task.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Runs until `shutdown` fires; then stops claiming, interrupts the attempts running here
    /// and releases their tasks for another executor, waiting at most a few seconds.
    pub async fn run(&self, shutdown: CancellationToken) {
        let inner = &self.inner;
        let mut runs: JoinSet<()> = JoinSet::new();
        let attempt_shutdown = CancellationToken::new();
        let mut watcher = match DbWatcher::new(&inner.config.db_path) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch the database for other processes' writes ({e}); checking every {CAP_RECHECK:?} instead"
                );
                None
            }
        };
        let mut data_version = inner.db.call(|s| s.data_version()).await.unwrap_or(0);
        let mut version_checks: Vec<Instant> = Vec::new();
        loop {
            let (next_at, pending) = match self.step(&mut runs, &attempt_shutdown).await {
                Ok(pass) => (pass.next_at, pass.work_pending),
                // The database was deleted or replaced: said once by whoever stops this executor.
                Err(e) if e.is_lost() => (None, false),
                Err(e) => {
                    tracing::error!("executor: {e}");
                    (Some(Instant::now() + Duration::from_secs(1)), true)
                }
            };
            let mut safety_at = safety_check(pending, watcher.is_some()).map(|d| Instant::now() + d);
            let far = Instant::now() + Duration::from_secs(86_400 * 365);
            let next_at = match (&watcher, next_at) {
                (None, next) => {
                    Some(next.map_or(Instant::now() + CAP_RECHECK, |n| n.min(Instant::now() + CAP_RECHECK)))
                }
                (Some(_), next) => next,
            };
            loop {
                tokio::select! {
                    () = inner.wake.notified() => {}
                    Some(_) = runs.join_next(), if !runs.is_empty() => {}
                    () = sleep_until(next_at.unwrap_or(far)), if next_at.is_some() => {}
                    () = shutdown.cancelled() => break,
                    () = changed(&mut watcher) => {
                        // The writer updates the WAL index just after the WAL file: look a few
                        // times over the next moments.
                        version_checks = VERSION_CHECKS.iter().map(|d| Instant::now() + *d).collect();
                        continue;
                    }
                    () = sleep_until(version_checks.first().copied().unwrap_or(far)), if !version_checks.is_empty() => {
                        version_checks.remove(0);
                        if !self.changed_elsewhere(&mut data_version).await {
                            continue;
                        }
                        version_checks.clear();
                    }
                    // The safety net: the watch saw nothing, or the index came after the last look.
                    () = sleep_until(safety_at.unwrap_or(far)), if safety_at.is_some() => {
                        if !self.changed_elsewhere(&mut data_version).await {
                            safety_at = safety_check(pending, watcher.is_some()).map(|d| Instant::now() + d);
                            continue;
                        }
                        tracing::debug!("a change the database watch did not report was found");
                    }
                }
                break;
            }
            if shutdown.is_cancelled() {
                break;
            }
            if watcher.is_none() {
                // Other processes' commits go unseen: recovery looks on every pass.
                *lock(&inner.recovery_due) = Some(Instant::now());
            }
        }
        attempt_shutdown.cancel();
        let deadline = Instant::now() + inner.config.kill_grace * 2 + SHUTDOWN_MARGIN;
        while !runs.is_empty() {
            tokio::select! {
                _ = runs.join_next() => {}
                () = sleep_until(deadline) => {
                    tracing::warn!("executor: {} attempts did not stop in time", runs.len());
                    runs.abort_all();
                    break;
                }
            }
        }
    }

    /// Whether another process committed since `data_version` (then updated); acts on it: makes
    /// recovery due, tells waiters, and stops the attempts of ours it cancelled.
    async fn changed_elsewhere(&self, data_version: &mut i64) -> bool {
        let inner = &self.inner;
        // Our own commits touch the WAL too: only another process's count.
        let version = inner.db.call(|s| s.data_version()).await.unwrap_or(*data_version + 1);
        if version == *data_version {
            return false;
        }
        tracing::debug!(version, "another process changed the database");
        *data_version = version;
        // Another process may have claimed (and died) since recovery last looked.
        *lock(&inner.recovery_due) = Some(Instant::now());
        inner.changes.send_modify(|n| *n += 1);
        // It may have asked for one of our attempts to stop.
        self.stop_cancelled_elsewhere().await;
        true
    }

    /// Plays the orchestration's sound and shows its notification when a cancel (by request or
    /// by its deadline) made here finished it; one whose running tasks are still stopping is
    /// announced by whoever writes the last of them.
    pub fn announce(&self, outcome: &crate::store::CancelOutcome) {
        self.inner.feedback.orchestration_ended(outcome.orchestration_finished.as_ref());
    }

    /// Waits (at most a few seconds) for the last sounds and notifications to go out, after
    /// [`Executor::run`] returned and the owner lock was given up.
    pub async fn drain_feedback(&self) {
        self.inner.feedback.drain(Duration::from_secs(5)).await;
    }

    /// Expires orchestrations, claims what can start, and says when to look again.
    async fn step(&self, runs: &mut JoinSet<()>, attempt_shutdown: &CancellationToken) -> Result<Pass, StoreError> {
        let inner = &self.inner;
        let cap = inner.config.max_concurrent;
        let lease_ms = duration_ms(inner.config.lease);
        let due = *lock(&inner.recovery_due);
        let recheck_at = match due {
            Some(at) if at <= Instant::now() => {
                let next = self.recover(runs).await?;
                *lock(&inner.recovery_due) = next;
                next
            }
            other => other,
        };
        loop {
            let now = now_ms();
            let schedule = inner.db.call(move |s| s.schedule(now)).await?;
            if schedule.deadline_passed {
                for outcome in inner.db.call(|s| s.expire_orchestrations(now_ms())).await? {
                    for (task_id, _) in &outcome.stopping {
                        self.stop(*task_id);
                    }
                    self.announce(&outcome);
                    inner.changes.send_modify(|n| *n += 1);
                }
                continue;
            }
            let next_at = schedule
                .next_at
                .map(|at| Instant::now() + Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
                .into_iter()
                .chain(recheck_at)
                .min();
            let pending = work_pending(&schedule);
            if !schedule.ready_now || schedule.running >= cap {
                return Ok(Pass { next_at, work_pending: pending });
            }
            let owner = inner.owner.clone();
            let max = usize::try_from(cap - schedule.running).unwrap_or(usize::MAX);
            let claims = inner.db.call(move |s| s.claim_ready(&owner, cap, max, lease_ms, now_ms())).await?;
            if claims.is_empty() {
                // Another process took the work first.
                return Ok(Pass { next_at, work_pending: pending });
            }
            crate::crash::point("after_claim");
            for claimed in claims {
                let token = CancellationToken::new();
                lock(&inner.running).insert(claimed.task.task_id, token.clone());
                let this = self.clone();
                let shutdown = attempt_shutdown.clone();
                runs.spawn(async move { Box::pin(this.drive(claimed, token, shutdown)).await });
            }
            inner.changes.send_modify(|n| *n += 1);
        }
    }

    /// Takes back the tasks whose owner died or whose lease expired, each in its own tokio task
    /// (stopping the old processes may take a grace period). Says when to look again while other
    /// owners run tasks: when the first lease runs out, and every heartbeat for dead owners.
    async fn recover(&self, runs: &mut JoinSet<()>) -> Result<Option<Instant>, StoreError> {
        let inner = &self.inner;
        let me = inner.owner.clone();
        let claims = inner.db.call(move |s| s.foreign_claims(&me)).await?;
        if claims.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let heartbeat = inner.config.heartbeat;
        let mut recheck = Instant::now() + heartbeat;
        let mut expired_seen = std::mem::take(&mut *lock(&inner.expired_seen));
        let mut still_expired = HashMap::new();
        for claim in claims {
            if lock(&inner.reclaiming).contains(&claim.task_id) {
                continue;
            }
            let liveness = owners::liveness(&inner.config.db_path, &claim.owner, &inner.host);
            let why = if liveness == Liveness::Dead {
                format!("its owner {} exited", claim.owner)
            } else if claim.lease_expires_at <= now {
                // A live owner whose lease ran out is taken over only if it has not renewed
                // within one more heartbeat by our monotonic clock: after a laptop sleeps, every
                // lease has expired by the wall clock, and every owner renews as it wakes.
                let key = (claim.task_id, claim.fence);
                let first_seen = expired_seen.remove(&key).unwrap_or_else(Instant::now);
                if liveness == Liveness::Alive && first_seen.elapsed() < heartbeat {
                    recheck = recheck.min(first_seen + heartbeat);
                    still_expired.insert(key, first_seen);
                    continue;
                }
                format!("the lease of {} expired without a heartbeat", claim.owner)
            } else {
                let expires_in = Duration::from_millis(u64::try_from(claim.lease_expires_at - now).unwrap_or(0));
                recheck = recheck.min(Instant::now() + expires_in);
                continue;
            };
            lock(&inner.reclaiming).insert(claim.task_id);
            let this = self.clone();
            let owner_dead = liveness == Liveness::Dead;
            runs.spawn(async move { this.reclaim(claim, owner_dead, why).await });
        }
        *lock(&inner.expired_seen) = still_expired;
        Ok(Some(recheck))
    }

    /// Takes a task back from an owner that died or whose lease expired: stops what is left of
    /// the old attempt, then hands the task on for the next attempt (not counted).
    ///
    /// An owner that may still be alive (its lease expired: frozen, a laptop asleep) could wake
    /// while its CLI is being killed and report the kill as the attempt's outcome. So its claim
    /// is taken over first ([`crate::store::Store::seize`]: a new fence, which refuses the old
    /// owner's writes), then its processes are stopped, then the task is released. A dead
    /// owner writes nothing: its processes are stopped first, so that a recovery that dies
    /// half-way leaves the task to the next one still able to find them by the old tag.
    async fn reclaim(&self, claim: ForeignClaim, owner_dead: bool, why: String) {
        let inner = &self.inner;
        let task_id = claim.task_id;
        let tag = runner::run_tag(&claim.owner, task_id, claim.fence);
        let claim = if owner_dead {
            Some(claim)
        } else {
            let (me, lease_ms) = (inner.owner.clone(), duration_ms(inner.config.lease));
            match inner.db.call(move |s| s.seize(&claim, &me, lease_ms, now_ms())).await {
                Ok(seized) => seized,
                Err(e) => {
                    tracing::warn!(task_id, "cannot take over task {task_id}: {e}");
                    None
                }
            }
        };
        if let Some(claim) = claim {
            self.stop_and_release(claim, &tag, !owner_dead, why).await;
        } else {
            tracing::debug!(task_id, "task {task_id} changed hands meanwhile; left alone");
        }
        lock(&inner.reclaiming).remove(&task_id);
        inner.changes.send_modify(|n| *n += 1);
        inner.wake.notify_one();
    }

    /// Stops the processes tagged `tag`, then writes the reclaim of `claim` (the old owner's, or
    /// ours after a seize). Processes that survive SIGKILL keep the task: running it again now
    /// could run it twice. A seized task is ours, so no other recovery would look at it again:
    /// the stop is tried again every heartbeat (renewing our lease) for as long as this runs.
    async fn stop_and_release(&self, claim: ForeignClaim, tag: &str, seized: bool, why: String) {
        let inner = &self.inner;
        let task_id = claim.task_id;
        let found = loop {
            match runner::stop_run(tag, inner.config.kill_grace).await {
                Ok(found) => break found,
                Err(e) if !seized => {
                    // Left for the next look of recovery.
                    tracing::error!(task_id, "cannot stop the old attempt of task {task_id}: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!(task_id, "cannot stop the old attempt of task {task_id}: {e}; trying again");
                    tokio::time::sleep(inner.config.heartbeat).await;
                    let (me, fence, lease_ms) = (inner.owner.clone(), claim.fence, duration_ms(inner.config.lease));
                    if let Ok(Heartbeat::Lost) =
                        inner.db.call(move |s| s.heartbeat(task_id, &me, fence, lease_ms, now_ms())).await
                    {
                        return;
                    }
                }
            }
        };
        crate::crash::pause("reclaim_after_stop").await;
        let why = if found > 0 { format!("{why}; stopped {found} leftover processes") } else { why };
        // A seized task is ours alone now: a write lost to a passing fault would leave it running
        // under this process for good, so it is tried again like an attempt's outcome.
        let write = || {
            let (claim, why) = (claim.clone(), why.clone());
            inner.db.call(move |s| s.reclaim(&claim, &why, now_ms()))
        };
        let written = write
            .retry(write_backoff())
            .when(|e| seized && !matches!(e, StoreError::Closed) && !e.is_lost())
            .notify(|e, delay| tracing::warn!(task_id, "cannot take back task {task_id} yet ({e}); again in {delay:?}"))
            .await;
        match written {
            Ok(r) if r.outcome.accepted => {
                tracing::warn!(task_id, status = ?r.outcome.status, resume = ?r.resume_session, "took back task {task_id}");
                // A task given up after too many deaths of its runners is a failure like any other.
                if let Some(Finish::Failed { error }) = &r.finish
                    && r.outcome.status == Some(crate::model::TaskStatus::Failed)
                {
                    inner.feedback.emit(&Event::TaskFailed {
                        task_id,
                        identifier: r.identifier.clone(),
                        elapsed: Duration::ZERO,
                        cost_usd: 0.0,
                        error: error.clone(),
                    });
                }
                inner.feedback.orchestration_ended(r.outcome.orchestration_finished.as_ref());
            }
            Ok(_) => tracing::debug!(task_id, "task {task_id} changed hands meanwhile; left alone"),
            Err(e) => tracing::warn!(task_id, "cannot take back task {task_id}: {e}"),
        }
    }

    /// Stops the attempts running here whose cancel was asked for by another process (the
    /// heartbeat would find out too, but later).
    async fn stop_cancelled_elsewhere(&self) {
        let ids: Vec<TaskId> = lock(&self.inner.running).keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        match self.inner.db.call(move |s| s.cancel_requested_among(&ids)).await {
            Ok(cancelled) => {
                for task_id in cancelled {
                    self.stop(task_id);
                }
            }
            Err(e) if e.is_lost() => {}
            Err(e) => tracing::warn!("cannot look for cancels: {e}"),
        }
    }

    /// Runs one claimed attempt and writes its outcome.
    async fn drive(&self, claimed: Claimed, cancel: CancellationToken, shutdown: CancellationToken) {
        let inner = &self.inner;
        let task = claimed.task;
        let task_id = task.task_id;
        let fence = claimed.fence;
        let config = &inner.config;
        let paths = TaskLogPaths::new(&config.task_log_dir(), task_id);
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
        let spec = RunSpec {
            claude_bin: config.claude_bin.clone(),
            args: runner::command_args(&task.settings, resume),
            prompt: if resume.is_some() { config.resume_prompt.clone() } else { task.prompt.clone() },
            working_directory: task.settings.working_directory.clone().into(),
            timeout: Duration::from_secs(task.settings.timeout_seconds),
            kill_grace: config.kill_grace,
            summary_log: paths.summary.clone(),
            detailed_log: paths.detailed.clone(),
            max_detailed_log_bytes: config.max_detailed_log_bytes,
            run_tag: runner::run_tag(&inner.owner, task_id, fence),
            system_prompt: task.settings.system_prompt.clone(),
            append_system_prompt: task.settings.append_system_prompt.clone(),
        };
        let (progress_tx, progress_rx) = watch::channel(RunProgress::default());
        let run_stop = CancellationToken::new();
        let run = runner::run(&spec, &run_stop, &progress_tx);
        tokio::pin!(run);
        // Progress and heartbeats are written by their own task: a write that waits for a busy
        // database must not stop this loop from reading the CLI's output (it would block on a
        // full pipe) or from stopping it (timeout, kill escalation, cancel).
        let (verdict_tx, mut verdicts) = tokio::sync::mpsc::unbounded_channel();
        let run_over = CancellationToken::new();
        let recorder = tokio::spawn({
            let this = self.clone();
            let identifier = task.task_identifier.clone();
            let (progress_rx, run_over) = (progress_rx.clone(), run_over.clone());
            async move { this.record_attempt(task_id, fence, identifier, progress_rx, verdict_tx, run_over).await }
        });
        let mut stop_reason: Option<StopReason> = None;
        let report: RunReport = loop {
            tokio::select! {
                report = &mut run => break report,
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
        let last_pid = progress_rx.borrow().pid;
        if !pid_recorded && let Some(pid) = last_pid {
            self.mark_started(task_id, fence, pid).await;
            inner.feedback.emit(&Event::TaskStarted { task_id, identifier: task.task_identifier.clone() });
        }

        let Some(finish) = self.decide(&task, claimed.resume_session.is_some(), &report, stop_reason) else {
            tracing::warn!(task_id, "lost the claim of task {task_id}; its outcome is not recorded");
            return;
        };
        let stats = stats_of(&report);
        let summary_line = summary_of(&finish, &report);
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
                inner.feedback.finished(&task, &finish, &outcome, report.elapsed, stats.cost_usd);
            }
            Ok(_) => tracing::warn!(task_id, "the outcome of task {task_id} was refused: another owner holds it now"),
            Err(e) if e.is_lost() => {
                // Its log is all that is left of it.
                let line = match &finish {
                    Finish::Release { .. } => format!("stopped after {:.1} s", report.elapsed.as_secs_f64()),
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
                    let pid = progress_rx.borrow_and_update().pid;
                    if pid.is_some() && recorded.pid.is_none() {
                        crate::crash::point("after_spawn");
                        // The pid is written at once, for a person looking at the task.
                        self.mark_started(task_id, fence, pid.unwrap_or(0)).await;
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

    async fn mark_started(&self, task_id: TaskId, fence: i64, pid: u32) {
        let owner = self.inner.owner.clone();
        if let Err(e) = self.inner.db.call(move |s| s.mark_started(task_id, &owner, fence, pid, now_ms())).await
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

    /// Turns a run's outcome into the state change to write; `None` when the claim was lost.
    fn decide(
        &self,
        task: &crate::model::TaskRecord,
        resumed: bool,
        report: &RunReport,
        stop_reason: Option<StopReason>,
    ) -> Option<Finish> {
        let config = &self.inner.config;
        let now = now_ms();
        Some(match &report.outcome {
            Outcome::Success { result } => Finish::Completed { result: result.clone() },
            Outcome::Stopped(StopCause::Timeout) => Finish::Failed {
                error: TaskError {
                    kind: "timeout".to_owned(),
                    message: format!(
                        "ran longer than its timeout of {} s and was stopped; raise timeout_seconds if it needs longer",
                        task.settings.timeout_seconds
                    ),
                },
            },
            Outcome::Stopped(StopCause::Requested) => match stop_reason {
                Some(StopReason::LeaseLost) => return None,
                Some(StopReason::Shutdown) => Finish::Release {
                    error: TaskError {
                        kind: "interrupted_by_shutdown".to_owned(),
                        message: "claude-worker shut down while the task ran; it will resume".to_owned(),
                    },
                    resume: true,
                },
                Some(StopReason::Cancel) | None => Finish::Cancelled {
                    error: TaskError { kind: "cancelled".to_owned(), message: "cancelled while running".to_owned() },
                },
            },
            // The session to resume is gone (the CLI keeps sessions per directory and machine), or
            // the CLI would not start with it (a transcript cut short when the CLI that wrote it
            // was killed): start over, the attempt not counted. Failing the task for it would
            // blame the task for the death of its previous runner.
            Outcome::Failure { kind, message, .. }
                if resumed
                    && (message.contains("No conversation found")
                        || (kind == "cli_error" && report.stream.session_id.is_none())) =>
            {
                Finish::Release {
                    error: TaskError {
                        kind: "resume_failed".to_owned(),
                        message: format!("could not resume the interrupted session ({message}); starting over"),
                    },
                    resume: false,
                }
            }
            Outcome::Failure { kind, message, transient } => {
                let error = TaskError { kind: kind.clone(), message: message.clone() };
                if *transient && task.attempt < task.settings.max_attempts {
                    let delay = backoff(config.retry_base, config.retry_max, task.attempt);
                    Finish::Retry { error, ready_at: now + duration_ms(delay) }
                } else {
                    Finish::Failed { error }
                }
            }
        })
    }
}

fn stop(reason: &mut Option<StopReason>, why: StopReason, run_stop: &CancellationToken) {
    if reason.is_none() {
        *reason = Some(why);
        run_stop.cancel();
    }
}

/// The delay before the attempt after `attempt` (1-based): exponential from `base`, with jitter,
/// never above `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let delays = backon::ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    delays.into_iter().nth(usize::try_from(attempt.saturating_sub(1)).unwrap_or(0)).unwrap_or(max).min(max)
}

fn stats_of(report: &RunReport) -> RunStats {
    let result = report.stream.result.as_ref();
    RunStats {
        session_id: report.stream.session_id.clone(),
        cost_usd: result.map_or(0.0, |r| r.total_cost_usd),
        usage: result.map_or_else(Usage::default, |r| Usage {
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_creation_input_tokens: r.cache_creation_input_tokens,
            cache_read_input_tokens: r.cache_read_input_tokens,
        }),
        num_turns: result.and_then(|r| r.num_turns),
        duration_ms: result.and_then(|r| r.duration_ms).or_else(|| u64::try_from(report.elapsed.as_millis()).ok()),
        permission_denials: result.and_then(|r| r.permission_denials.clone()),
        last_action: report.stream.last_action.clone(),
    }
}

fn summary_of(finish: &Finish, report: &RunReport) -> String {
    let cost = report.stream.result.as_ref().map_or(0.0, |r| r.total_cost_usd);
    let elapsed = report.elapsed.as_secs_f64();
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
    }
}

/// Locks a std mutex that is never held across an await, ignoring poisoning (the data stays valid).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn duration_ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// How a write that must not be lost (an outcome, the release of a seized task) is tried again:
/// from 100 ms, doubling to 30 s, jittered, without end (the caller decides when to stop).
fn write_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times()
        .with_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_net_looks_only_while_work_is_pending_and_the_watch_works() {
        let schedule = |ready_now, running, next_at| crate::store::Schedule {
            ready_now,
            running,
            next_at,
            deadline_passed: false,
        };
        assert!(!work_pending(&schedule(false, 0, None)), "idle");
        assert!(work_pending(&schedule(true, 0, None)), "ready");
        assert!(work_pending(&schedule(false, 2, None)), "running here or elsewhere");
        assert!(work_pending(&schedule(false, 0, Some(5))), "delayed");
        assert_eq!(safety_check(true, true), Some(SAFETY_CHECK));
        assert_eq!(safety_check(false, true), None, "no timer when idle");
        assert_eq!(safety_check(true, false), None, "without a watch the fallback already looks");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        for _ in 0..20 {
            let first = backoff(base, max, 1);
            assert!(first >= base && first <= base * 2, "{first:?}");
            let third = backoff(base, max, 3);
            assert!(third >= base * 4 && third <= base * 8, "{third:?}");
            assert!(backoff(base, max, 30) <= max);
        }
    }
}
