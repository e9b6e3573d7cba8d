//! Taking back the tasks of owners that died or stopped renewing their lease.

use std::collections::HashMap;
use std::time::Duration;

use backon::Retryable as _;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Executor, duration_ms, lock, write_backoff};
use crate::feedback::Event;
use crate::owners::{self, Liveness};
use crate::runner::{self};
use crate::store::{Finish, ForeignClaim, Heartbeat, StoreError};
use crate::time::now_ms;

impl Executor {
    /// Takes back the tasks whose owner died or whose lease expired, each in its own tokio task
    /// (stopping the old processes may take a grace period). Says when to look again while other
    /// owners run tasks: when the first lease runs out, and every heartbeat for dead owners.
    pub(super) async fn recover(&self, runs: &mut JoinSet<()>) -> Result<Option<Instant>, StoreError> {
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
}
