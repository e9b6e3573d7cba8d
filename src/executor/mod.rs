//! The executor: an actor in every server (and headless worker) that claims ready tasks from the
//! shared database and drives each claimed attempt through the runner.
//!
//! It wakes on events, never on a polling loop: a task was created or retried here
//! ([`Executor::wake`]), an attempt finished, a delayed start or an orchestration deadline came
//! due (it sleeps until the earliest one the store reports), or another process committed to the
//! database (the [`DbWatcher`]; while work is pending, a look every [`dispatch::SAFETY_CHECK`] catches a
//! change the watch missed). An idle executor sleeps without a timer. Only when the watch
//! cannot be set up does it fall back to looking every [`dispatch::CAP_RECHECK`] while work is ready.
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

mod attempt;
mod dispatch;
mod isolation;
mod policy;
mod recovery;
mod staging;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feedback::Feedback;
use crate::model::{Millis, TaskId};
use crate::owners::{self, OwnerLock};
use crate::store::Db;
use crate::time::now_ms;
/// How often to look at `PRAGMA data_version` while work is pending, besides the watch: a/// How often a running attempt writes what it is doing (its session id and last action)./// The executor of one process. Cheap to clone: all clones drive the same executor.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: Arc<Config>,
    /// `config.task_log_dir()`, worked out once (it resolves paths on the file system).
    task_log_dir: std::path::PathBuf,
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
    /// Worktrees and merges of isolated tasks.
    git: crate::git::Git,
    /// Set while this process integrates ended orchestrations (one pass at a time).
    integrating: std::sync::atomic::AtomicBool,
    /// Set while this process makes waiting tasks' worktrees ahead (one stager at a time).
    staging_active: std::sync::atomic::AtomicBool,
    /// The gate of the task whose worktree the stager is making (see `staging`).
    staging: Mutex<HashMap<TaskId, Arc<tokio::sync::Mutex<()>>>>,
    /// Tasks whose worktree could not be made ahead: made at their start.
    staging_failed: Mutex<HashSet<TaskId>>,
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
                task_log_dir: config.task_log_dir(),
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
                git: crate::git::Git::new(),
                integrating: std::sync::atomic::AtomicBool::new(false),
                staging_active: std::sync::atomic::AtomicBool::new(false),
                staging: Mutex::new(HashMap::new()),
                staging_failed: Mutex::new(HashSet::new()),
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
