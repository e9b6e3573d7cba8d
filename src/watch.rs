//! Telling when *another process* wrote to the shared database, without polling: a file-system
//! watch (inotify, through the `notify` crate) on the database's WAL file reports writes to it,
//! and `PRAGMA data_version` (which changes only for commits made by other connections)
//! tells them apart from our own writes. An idle executor thus sleeps with no timer and still
//! wakes when, say, the inspect CLI retries a task or another editor window's server frees a slot.
//!
//! The database file itself is watched too: deleting it, or moving another file over it, changes
//! its link count, and the look that follows finds it gone (see `store/identity.rs`) at once
//! rather than at the next write.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::Notify;

/// Reports writes to one database's WAL file.
pub struct DbWatcher {
    /// Kept alive: dropping it ends the watch.
    _watcher: notify::RecommendedWatcher,
    written: Arc<Notify>,
}

impl DbWatcher {
    /// Watches the WAL file of `db_path` — or, while it does not exist yet, the directory that
    /// holds it. Watching the file itself keeps other files' writes (the global log often lives
    /// beside the database) from interleaving, so the kernel can merge a commit's many writes
    /// into one event. The file lives as long as this process keeps a connection open.
    pub fn new(db_path: &Path) -> notify::Result<DbWatcher> {
        let dir = db_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let db_name = db_path.file_name().map(OsString::from).unwrap_or_default();
        let mut wal_name = db_name.clone();
        wal_name.push("-wal");
        let wal_path = dir.join(&wal_name);
        let written = Arc::new(Notify::new());
        let signal = written.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let is_write = matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_));
            // Unlinked, renamed over, or a link count changed (the database file: a checkpoint's
            // writes are rare).
            let db_changed = matches!(event.kind, EventKind::Modify(_) | EventKind::Remove(_));
            if (is_write && event.paths.iter().any(|p| p.file_name() == Some(wal_name.as_os_str())))
                || (db_changed && event.paths.iter().any(|p| p.file_name() == Some(db_name.as_os_str())))
            {
                // Keeps one permit: writes that arrive before the next wait count once.
                signal.notify_one();
            }
        })?;
        if wal_path.exists() {
            watcher.watch(&wal_path, RecursiveMode::NonRecursive)?;
            if db_path.exists() {
                watcher.watch(db_path, RecursiveMode::NonRecursive)?;
            }
        } else {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(DbWatcher { _watcher: watcher, written })
    }

    /// Resolves once the WAL file was written since the last call.
    pub async fn changed(&mut self) {
        self.written.notified().await;
    }
}

/// [`DbWatcher::changed`] of a watch that may not exist: without one, never resolves.
pub async fn changed(watcher: &mut Option<DbWatcher>) {
    match watcher {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// After a write to the WAL, when to look at `PRAGMA data_version` (the writer updates the WAL
/// index just after the file), stopping at the first change.
const VERSION_CHECKS: [std::time::Duration; 5] = [
    std::time::Duration::from_millis(2),
    std::time::Duration::from_millis(20),
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(2),
];
/// How often [`follow_commits`] looks regardless: a change whose WAL index was updated after the
/// last look is seen by then. (Without a working watch, it is the only way.)
const SAFETY_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// For a process that runs no executor (a server started inside a task): moves `changes` when
/// another process commits to the database, until `stop`, so that `wait`, resource
/// subscriptions and progress notifications hear of it within milliseconds. A cheap
/// `data_version` read every [`SAFETY_CHECK`] catches what the watch misses.
pub fn follow_commits(
    db: crate::store::Db,
    db_path: &Path,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut watcher = match DbWatcher::new(db_path) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::info!(
                "cannot watch the database for other processes' writes ({e}): looking every {SAFETY_CHECK:?}"
            );
            None
        }
    };
    tokio::spawn(async move {
        use tokio::time::{Instant, sleep_until};
        let Ok(mut version) = db.call(|s| s.data_version()).await else { return };
        let mut checks: Vec<Instant> = Vec::new();
        let mut safety = Instant::now() + SAFETY_CHECK;
        loop {
            let next = checks.first().copied().unwrap_or(safety).min(safety);
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed(&mut watcher) => {
                    let now = Instant::now();
                    checks = VERSION_CHECKS.iter().map(|d| now + *d).collect();
                    continue;
                }
                () = sleep_until(next) => {}
            }
            let now = Instant::now();
            checks.retain(|at| *at > now);
            if now >= safety {
                safety = now + SAFETY_CHECK;
            }
            let Ok(seen) = db.call(|s| s.data_version()).await else {
                // The database was deleted or replaced: waiters look once more, and meet the error.
                changes.send_modify(|n| *n = n.wrapping_add(1));
                return;
            };
            if seen != version {
                version = seen;
                checks.clear();
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    })
}
