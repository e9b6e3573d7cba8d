//! The dispatch loop: waking on events, claiming what can start, and noticing other processes' commits.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Executor, duration_ms, lock};
use crate::model::TaskId;
use crate::store::StoreError;
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
/// change whose WAL index is updated after the last of [`VERSION_CHECKS`] is seen all the same.
const SAFETY_CHECK: Duration = Duration::from_secs(5);
/// The same look while idle, less often: a change the watch did not report (seen under heavy
/// load: a commit of another process whose WAL write raised no event) would otherwise leave its
/// task unclaimed until something else happened. One `data_version` read, a few microseconds.
const IDLE_SAFETY_CHECK: Duration = Duration::from_secs(10);
/// How long a shutdown waits beyond the stop sequence (SIGINT, SIGTERM, SIGKILL a grace apart)
/// for attempts to release their tasks.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(2);

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
/// work is pending and the watch works, every [`IDLE_SAFETY_CHECK`] when idle; never without a
/// watch (the executor then looks every [`CAP_RECHECK`] anyway).
fn safety_check(work_pending: bool, watching: bool) -> Option<Duration> {
    watching.then_some(if work_pending { SAFETY_CHECK } else { IDLE_SAFETY_CHECK })
}

impl Executor {
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
            // A finished attempt's task keeps its allocation (the size of its whole future) until
            // it is joined: join every finished one, not one a wake-up, or a large graph whose
            // attempts end faster than the passes run holds thousands of them.
            while runs.try_join_next().is_some() {}
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
            if schedule.pause_over {
                // Every executor wakes at the end of the pause; the one whose write ends it says so.
                if let Some(pause) = inner.db.call(move |s| s.end_pause(now)).await? {
                    tracing::info!("the usage-limit pause ended: claiming again");
                    inner.feedback.emit(&crate::feedback::Event::WorkResumed(pause));
                    inner.changes.send_modify(|n| *n += 1);
                }
                continue;
            }
            if schedule.integration_due {
                self.start_integrations(runs);
            }
            if schedule.staging_wanted {
                self.start_staging();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_net_looks_less_often_when_idle_and_not_without_a_watch() {
        let schedule = |ready_now, running, next_at| crate::store::Schedule {
            ready_now,
            running,
            next_at,
            deadline_passed: false,
            paused_until: None,
            pause_over: false,
            integration_due: false,
            staging_wanted: false,
        };
        assert!(!work_pending(&schedule(false, 0, None)), "idle");
        assert!(work_pending(&schedule(true, 0, None)), "ready");
        assert!(work_pending(&schedule(false, 2, None)), "running here or elsewhere");
        assert!(work_pending(&schedule(false, 0, Some(5))), "delayed");
        assert_eq!(safety_check(true, true), Some(SAFETY_CHECK));
        assert_eq!(safety_check(false, true), Some(IDLE_SAFETY_CHECK), "less often when idle");
        assert!(IDLE_SAFETY_CHECK > SAFETY_CHECK);
        assert_eq!(safety_check(true, false), None, "without a watch the fallback already looks");
    }
}
