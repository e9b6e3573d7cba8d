//! The only module with SQL. It opens the shared SQLite file (WAL, `synchronous=FULL`, foreign
//! keys, a busy timeout, `BEGIN IMMEDIATE` for every write), migrates it, and offers one method per
//! operation, each a single short transaction that writes the state change and its `task_events`
//! row together.
//!
//! [`Store`] is synchronous and owned by one thread; [`Db`] (in `handle.rs`) is the async handle
//! that sends operations to that thread so that SQLite never blocks a tokio worker.

mod control;
mod create;
mod handle;
mod query;
mod run;

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};

use crate::graph;
use crate::model::{Counters, Millis, OrchestrationId, TaskId, TaskStatus};

pub use control::{CancelOutcome, CancelTarget, RetryOutcome};
pub use create::{Created, CreatedTask};
pub use handle::Db;
pub use query::{OrchestrationFilter, Schedule, TaskFilter};
pub use run::{Claimed, Finish, FinishOutcome, ForeignClaim, Heartbeat, OrchestrationEnd, Reclaimed, RunStats};

/// Highest schema version this binary knows.
pub const SCHEMA_VERSION: usize = 2;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_initial.sql")),
        M::up(include_str!("migrations/0002_recovery.sql")),
    ])
}

/// What went wrong in the store. `Refused` and `NotFound` are the caller's to fix; the rest are
/// faults of the database or its environment.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("cannot create the directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("no database at {0}: start claude-worker once to create it, or set CLAUDE_WORKER_DB")]
    Missing(PathBuf),
    #[error(
        "the database {path} could not be put in WAL mode (it reports {mode:?}); claude-worker needs WAL \
         to share it safely between processes: check that the file system supports it (not a network share)"
    )]
    NotWal { path: PathBuf, mode: String },
    #[error(
        "the database {path} has schema version {found}, newer than this claude-worker understands \
         ({supported}): upgrade claude-worker; the database was not modified"
    )]
    TooNew { path: PathBuf, found: usize, supported: usize },
    #[error("cannot migrate the database {path}: {source}")]
    Migrate { path: PathBuf, source: rusqlite_migration::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped")]
    Closed,
    #[error("the change could not be committed: {0}")]
    Commit(String),
}

/// One connection to the shared database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Inside a group of operations that share one transaction (see `begin_group`).
    in_group: bool,
}

/// How many prepared statements a connection keeps.
const STATEMENT_CACHE: usize = 256;

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write keeps trying to begin while the database stays locked.
const BUSY_GIVE_UP: Duration = Duration::from_secs(60);

impl Store {
    /// Opens (creating if needed, with private permissions) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })?;
        }
        if !path.exists() {
            // Create the file ourselves so that it is private from the first byte: it holds prompts.
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::CreateDir { path: path.to_owned(), source })?;
        }
        Self::open_existing(path, true)
    }

    /// Opens a database that must already exist (the inspect CLI never creates one).
    pub fn open_existing_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        Self::open_existing(path, true)
    }

    fn open_existing(path: &Path, migrate: bool) -> Result<Store, StoreError> {
        // Switching a fresh file to WAL takes an exclusive lock for which SQLite may answer
        // "busy" at once rather than wait: when several processes start together, try again.
        let mut attempts = 0;
        loop {
            match Self::try_open(path, migrate) {
                Err(StoreError::Open { source, .. }) if attempts < 200 && is_busy(&source) => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(5 + jitter_ms()));
                }
                other => return other,
            }
        }
    }

    fn try_open(path: &Path, migrate: bool) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open { path: path.to_owned(), source };
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Every statement of the store stays prepared (rusqlite keeps 16 by default, fewer than
        // the store has, and re-parsing SQL was the database thread's largest cost).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // A newer schema is refused before anything could write to it.
        let found: usize = conn
            .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
            .map_err(open_err)?
            .try_into()
            .unwrap_or(usize::MAX);
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.to_owned(), found, supported: SCHEMA_VERSION });
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal { path: path.to_owned(), mode });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0)).map_err(open_err)?;
        if fk != 1 {
            return Err(open_err(rusqlite::Error::InvalidQuery));
        }
        let mut store = Store { conn, path: path.to_owned(), in_group: false };
        if migrate && found < SCHEMA_VERSION {
            store.migrate()?;
        }
        // Keep the file private even when something else created it.
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        // Several processes may start at once on a fresh file. rusqlite_migration reads the
        // version before it takes the write lock, so a loser of that race fails (the tables
        // exist, or its snapshot is stale) and rolls back: it then finds the schema current.
        let mut attempts = 0;
        loop {
            match migrations().to_latest(&mut self.conn) {
                Ok(()) => return Ok(()),
                Err(source) => {
                    let version: i64 = self.conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
                    if usize::try_from(version).is_ok_and(|v| v == SCHEMA_VERSION) {
                        return Ok(());
                    }
                    attempts += 1;
                    if attempts >= 20 {
                        return Err(StoreError::Migrate { path: self.path.clone(), source });
                    }
                    std::thread::sleep(Duration::from_millis(10 + jitter_ms()));
                }
            }
        }
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits it if `f` succeeds — or, inside
    /// a group (see [`Store::begin_group`]), in a savepoint of the group's transaction. The
    /// events it recorded reach the global log only once their commit succeeded.
    fn write<R>(&mut self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let logged = PENDING_LOG.with_borrow(Vec::len);
        let outcome = if self.in_group {
            (|| {
                // SQLite rolls a whole transaction back on some errors (a full disk, an I/O
                // error): then the group is over, and a savepoint here would commit on its own.
                if self.conn.is_autocommit() {
                    return Err(StoreError::Commit("an earlier operation's error ended the transaction".to_owned()));
                }
                let savepoint = self.conn.savepoint()?;
                let value = f(&savepoint)?;
                savepoint.commit()?;
                Ok(value)
            })()
        } else {
            (|| {
                let tx = begin_immediate(&self.conn)?;
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            })()
        };
        if outcome.is_err() {
            PENDING_LOG.with_borrow_mut(|lines| lines.truncate(logged));
        } else if !self.in_group {
            emit_pending_log();
        }
        outcome
    }

    /// Runs `f` in a read transaction (one consistent snapshot), or in the group's transaction.
    fn read<R>(&mut self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.in_group {
            return f(&self.conn);
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.finish()?;
        Ok(value)
    }

    /// Starts a group: the operations until [`Store::end_group`] share one transaction, each in
    /// a savepoint of its own (an operation that fails undoes only itself), and so share one
    /// commit and one fsync. Their callers must not learn their outcome before that commit.
    pub(crate) fn begin_group(&mut self) -> Result<(), StoreError> {
        begin_immediate(&self.conn)?.set_drop_behavior(rusqlite::DropBehavior::Ignore);
        self.in_group = true;
        PENDING_LOG.with_borrow_mut(Vec::clear);
        Ok(())
    }

    /// Commits the group (rolling it back if the commit fails).
    pub(crate) fn end_group(&mut self) -> Result<(), StoreError> {
        self.in_group = false;
        if self.conn.is_autocommit() {
            PENDING_LOG.with_borrow_mut(Vec::clear);
            return Err(StoreError::Commit("the transaction was rolled back by an error".to_owned()));
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                emit_pending_log();
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                PENDING_LOG.with_borrow_mut(Vec::clear);
                Err(e.into())
            }
        }
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&mut self) -> Result<String, StoreError> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
    }
}

/// `BEGIN IMMEDIATE`, tried again with a small jittered delay while another process holds the
/// write lock beyond the busy timeout: a busy database never reaches a caller as an error
/// unless it stays locked for [`BUSY_GIVE_UP`].
fn begin_immediate(conn: &Connection) -> Result<rusqlite::Transaction<'_>, rusqlite::Error> {
    let give_up = std::time::Instant::now() + BUSY_GIVE_UP;
    loop {
        match rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Err(e) if is_busy(&e) && std::time::Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(5 + jitter_ms()));
            }
            other => return other,
        }
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// A few milliseconds of jitter, from the clock's low bits (no RNG needed for this).
fn jitter_ms() -> u64 {
    u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) % 30)
}

/// A task's key facts, carried along so that each event can be logged with its context.
#[derive(Clone, Debug)]
struct TaskKey {
    task_id: TaskId,
    identifier: String,
    orchestration_id: OrchestrationId,
}

/// Appends one row to `task_events` and writes the same line to the global log.
fn record_event(
    tx: &Connection,
    key: &TaskKey,
    now: Millis,
    kind: &str,
    attempt: u32,
    claim: Option<(&str, i64)>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO task_events (task_id, at, kind, attempt, owner, fence, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![key.task_id, now, kind, attempt, claim.map(|c| c.0), claim.map(|c| c.1), detail])?;
    PENDING_LOG.with_borrow_mut(|lines| {
        lines.push(EventLine { key: key.clone(), kind: kind.to_owned(), attempt, detail: detail.map(str::to_owned) });
    });
    Ok(())
}

fn emit_pending_log() {
    for line in PENDING_LOG.with_borrow_mut(std::mem::take) {
        line.emit();
    }
}

thread_local! {
    /// Events written by the transaction in progress on this thread, logged after its commit.
    static PENDING_LOG: std::cell::RefCell<Vec<EventLine>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One line of the global log: a committed task event.
struct EventLine {
    key: TaskKey,
    kind: String,
    attempt: u32,
    detail: Option<String>,
}

impl EventLine {
    fn emit(self) {
        tracing::info!(
            target: "claude_worker::events",
            task_id = self.key.task_id,
            task = %self.key.identifier,
            orchestration_id = self.key.orchestration_id,
            attempt = self.attempt,
            "{}{}{}",
            self.kind,
            if self.detail.is_some() { ": " } else { "" },
            self.detail.as_deref().unwrap_or("")
        );
    }
}

fn task_key(tx: &Connection, task_id: TaskId) -> Result<TaskKey, StoreError> {
    tx.prepare_cached("SELECT task_identifier, orchestration_id FROM tasks WHERE task_id = ?1")?
        .query_row([task_id], |row| Ok(TaskKey { task_id, identifier: row.get(0)?, orchestration_id: row.get(1)? }))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no task #{task_id}")))
}

/// Live counters of one orchestration.
fn counters(tx: &Connection, orchestration_id: OrchestrationId) -> Result<(Counters, f64), StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT status, count(*), total(cost_usd) FROM tasks WHERE orchestration_id = ?1 GROUP BY status",
    )?;
    let mut rows = stmt.query([orchestration_id])?;
    let mut counters = Counters::default();
    let mut cost = 0.0;
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let n: u32 = row.get(1)?;
        cost += row.get::<_, f64>(2)?;
        if let Some(status) = TaskStatus::parse(&status) {
            counters.add(status, n);
        }
    }
    Ok((counters, cost))
}

/// Recomputes an orchestration's stored state, start and end from its tasks. Called in every
/// transaction that changes one of its tasks, so that lists can filter on a fresh `status`.
/// Returns the orchestration as it ended when this change finished it.
fn refresh_orchestration(
    tx: &Connection,
    orchestration_id: OrchestrationId,
    now: Millis,
) -> Result<Option<OrchestrationEnd>, StoreError> {
    let (counters, cost_usd) = counters(tx, orchestration_id)?;
    let (cancel_requested, before, name): (bool, String, Option<String>) = tx
        .prepare_cached("SELECT cancel_requested, status, name FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([orchestration_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    let status = graph::orchestration_status(&counters, cancel_requested);
    let started = status != crate::model::OrchestrationStatus::Pending;
    // The deadline (ORCHESTRATION_TIMEOUT) counts from when the orchestration starts running.
    tx.prepare_cached(
        "UPDATE orchestrations SET status = ?2,
             started_at = CASE WHEN ?3 THEN coalesce(started_at, ?5) ELSE started_at END,
             deadline_at = CASE WHEN ?3 THEN coalesce(deadline_at, ?5 + timeout_ms) ELSE deadline_at END,
             ended_at = CASE WHEN ?4 THEN coalesce(ended_at, ?5) ELSE NULL END
         WHERE orchestration_id = ?1",
    )?
    .execute(params![orchestration_id, status.as_str(), started, status.is_terminal(), now])?;
    let was_terminal = crate::model::OrchestrationStatus::parse(&before).is_some_and(|s| s.is_terminal());
    Ok((status.is_terminal() && !was_terminal).then_some(OrchestrationEnd {
        orchestration_id,
        name,
        status,
        counters,
        cost_usd,
    }))
}

/// Loads an orchestration's tasks and edges for the graph logic.
fn load_graph(tx: &Connection, orchestration_id: OrchestrationId) -> Result<graph::Graph, StoreError> {
    let mut graph = graph::Graph::new();
    let mut stmt = tx.prepare_cached("SELECT task_id, status FROM tasks WHERE orchestration_id = ?1")?;
    let mut rows = stmt.query([orchestration_id])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(1)?;
        graph.add_task(row.get(0)?, TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed));
    }
    let mut stmt = tx.prepare_cached(
        "SELECT d.task_id, d.depends_on FROM task_dependencies d JOIN tasks t ON t.task_id = d.task_id
         WHERE t.orchestration_id = ?1",
    )?;
    let mut rows = stmt.query([orchestration_id])?;
    while let Some(row) = rows.next()? {
        graph.add_edge(row.get(0)?, row.get(1)?);
    }
    Ok(graph)
}

/// Marks every unfinished descendant of `root` skipped, with the reason, and returns their ids.
fn skip_descendants(
    tx: &Connection,
    graph: &graph::Graph,
    root: &TaskKey,
    root_status: TaskStatus,
    now: Millis,
) -> Result<Vec<TaskId>, StoreError> {
    let skipped = graph.unfinished_descendants(root.task_id);
    let message = format!("dependency {} (#{}) {}", root.identifier, root.task_id, root_status);
    for &task_id in &skipped {
        tx.prepare_cached(
            "UPDATE tasks SET status = 'skipped', ended_at = ?2, ready_at = NULL,
                 error_kind = 'dependency_failed', error_message = ?3
             WHERE task_id = ?1",
        )?
        .execute(params![task_id, now, message])?;
        let key = task_key(tx, task_id)?;
        record_event(tx, &key, now, "skipped", 0, None, Some(&message))?;
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests;
