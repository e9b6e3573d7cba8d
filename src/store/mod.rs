//! The only module with SQL. It opens the shared SQLite file (WAL, `synchronous=FULL`, foreign
//! keys, a busy timeout, `BEGIN IMMEDIATE` for every write), migrates it, and offers one method per
//! operation, each a single short transaction that writes the state change and its `task_events`
//! row together.
//!
//! [`Store`] is synchronous and owned by one thread; [`Db`] (in `handle.rs`) is the async handle
//! that sends operations to that thread so that SQLite never blocks a tokio worker.

mod budgets;
mod control;
mod create;
mod handle;
mod identity;
mod isolation;
mod limits;
mod lineage;
mod maintenance;
mod projects;
mod query;
mod results;
mod run;
mod staging;

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};

use crate::graph;
use crate::model::{Counters, Millis, OrchestrationId, TaskId, TaskStatus};
use identity::Identity;

pub use budgets::BudgetRaise;
pub use control::{CancelOutcome, CancelTarget, OrchestrationRetryOutcome, RetriedTask, RetryOutcome};
pub use create::{Created, CreatedTask, Taken, UnknownDependency};
pub use handle::Db;
pub use isolation::{DependencyCommit, IntegrationWork, IsolationPlan};
pub use limits::UsageLimits;
pub use lineage::AttemptOf;
pub use maintenance::{CostRow, Diagnosis, PruneReport, PrunedTask, RunningClaim};
pub use query::{Marks, OrchestrationFilter, OrchestrationMark, Schedule, TaskFilter, TaskMark};
pub use run::{Claimed, Finish, FinishOutcome, ForeignClaim, Heartbeat, OrchestrationEnd, Reclaimed, RunStats};
pub use staging::Waiting;

/// Highest schema version this binary knows.
pub const SCHEMA_VERSION: usize = 11;

/// The size the WAL file is cut back to once a checkpoint has copied it whole
/// (`PRAGMA journal_size_limit`), in bytes: four times what the automatic checkpoint lets it
/// reach (1,000 pages of 4 KiB), so that ordinary work never pays for truncating it.
pub const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_initial.sql")),
        M::up(include_str!("migrations/0002_recovery.sql")),
        M::up(include_str!("migrations/0003_created_by.sql")),
        M::up_with_hook(include_str!("migrations/0004_projects.sql"), |tx: &rusqlite::Transaction<'_>| {
            projects::backfill_projects(tx).map_err(rusqlite_migration::HookError::from)
        }),
        M::up(include_str!("migrations/0005_usage_limits.sql")),
        M::up(include_str!("migrations/0006_budgets.sql")),
        M::up(include_str!("migrations/0007_orchestration_counts.sql")),
        M::up(include_str!("migrations/0008_verify.sql")),
        M::up(include_str!("migrations/0009_results.sql")),
        M::up(include_str!("migrations/0010_isolation.sql")),
        M::up(include_str!("migrations/0011_staging_and_labels.sql")),
    ])
}

/// What went wrong in the store. `Refused` and `NotFound` are the caller's to fix; the rest are
/// faults of the database or its environment. Those a person has to fix say what to do in one
/// line: they end up on the server's stderr or in a tool's error, and carry no error chain (the
/// cause is in the sentence) so that they are never printed twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// A dependency that names no task: the caller's to fix. What it could have meant is worked
    /// out only when the message is written, after the transaction has ended.
    #[error("{0}")]
    UnknownDependency(Box<create::UnknownDependency>),
    /// A name already in use: the caller's to fix (or, for a terminal command, to number).
    #[error("{0}")]
    Taken(create::Taken),
    #[error(
        "cannot create the directory {path} for the database ({error}): create it yourself, or set \
         CLAUDE_WORKER_DB (or CLAUDE_WORKER_HOME) to a place this user can write to"
    )]
    CreateDir { path: PathBuf, error: std::io::Error },
    #[error(
        "cannot create the database file {path} ({error}): check the directory's permissions, or set \
         CLAUDE_WORKER_DB to a place this user can write to"
    )]
    CreateFile { path: PathBuf, error: std::io::Error },
    #[error(
        "the database {path} is read-only for this user ({reason}): claude-worker must write to it. Make it \
         writable (chmod u+w {path}; check its owner too), or set CLAUDE_WORKER_DB to another file"
    )]
    ReadOnlyFile { path: PathBuf, reason: String },
    #[error(
        "the directory {path} of the database is not writable for this user ({reason}): SQLite creates the \
         database's -wal and -shm files there. Make it writable (chmod u+w {path}), or set CLAUDE_WORKER_DB \
         to a file in a writable directory"
    )]
    ReadOnlyDir { path: PathBuf, reason: String },
    #[error(
        "the database {path} is corrupt ({detail}); claude-worker leaves it as it is. Restore it from a \
         backup, or move it away together with its -wal and -shm files (mv {path} {path}.corrupt) and \
         start again with a new one"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("the database {path} is full: {cause}. Nothing of this change was written; {remedy}, then try again")]
    Full { path: PathBuf, cause: &'static str, remedy: &'static str },
    #[error("cannot open the database {path}: {error}")]
    Open { path: PathBuf, error: rusqlite::Error },
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
    #[error("cannot migrate the database {path}: {error}")]
    Migrate { path: PathBuf, error: rusqlite_migration::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped")]
    Closed,
    #[error("the change could not be committed: {0}")]
    Commit(String),
    #[error(
        "the database {path}{part} was deleted while this process had it open: nothing more is written to \
         it, and the tasks it held are lost to every other process (this process's running tasks were \
         stopped; their logs remain). Start claude-worker again to use a new database at {path} (an editor's \
         MCP server: reconnect it, e.g. /mcp in Claude Code) and queue the work again, or first restore a \
         backup there with every claude-worker process stopped"
    )]
    Deleted { path: PathBuf, part: &'static str },
    #[error(
        "the database {path}{part} was replaced by another file while this process had it open (a backup \
         moved over it?): nothing more is written to the file this process opened, which no other process \
         sees any longer (this process's running tasks were stopped; their logs remain). Start claude-worker \
         again to use the file now at {path} (an editor's MCP server: reconnect it, e.g. /mcp in Claude \
         Code). To restore a backup, stop every claude-worker process first and move the old database's \
         -wal and -shm files away with it"
    )]
    Replaced { path: PathBuf, part: &'static str },
}

impl StoreError {
    /// What every operation of a group commit that failed as a whole is told: the same fault
    /// when it is one a person has to act on (a full disk, a corrupt file), else why the
    /// commit failed.
    pub(crate) fn for_each_waiter(&self) -> StoreError {
        match self {
            StoreError::Full { path, cause, remedy } => StoreError::Full { path: path.clone(), cause, remedy },
            StoreError::Corrupt { path, detail } => StoreError::Corrupt { path: path.clone(), detail: detail.clone() },
            StoreError::Commit(message) => StoreError::Commit(message.clone()),
            StoreError::Deleted { path, part } => StoreError::Deleted { path: path.clone(), part },
            StoreError::Replaced { path, part } => StoreError::Replaced { path: path.clone(), part },
            other => StoreError::Commit(other.to_string()),
        }
    }

    /// Whether the database was deleted or replaced under this process: nothing it does with
    /// this connection can succeed any more (see [`Lost`]).
    pub fn is_lost(&self) -> bool {
        matches!(self, StoreError::Deleted { .. } | StoreError::Replaced { .. })
    }
}

/// The database path no longer names the file this connection opened (see `identity.rs`).
/// From then on every operation of the store is refused with [`Lost::error`].
#[derive(Clone, Debug)]
pub(crate) struct Lost {
    identity: Identity,
    path: PathBuf,
    /// Which of its files: `""` for the database itself, else `" (its -wal file)"` and so on.
    part: &'static str,
}

impl Lost {
    pub(crate) fn error(&self) -> StoreError {
        let (path, part) = (self.path.clone(), self.part);
        match self.identity {
            Identity::Replaced => StoreError::Replaced { path, part },
            Identity::Deleted | Identity::Same => StoreError::Deleted { path, part },
        }
    }
}

/// One connection to the shared database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Inside a group of operations that share one transaction (see `begin_group`).
    in_group: bool,
    /// The fault that ended the group's transaction early, for every operation of the group.
    group_abort: Option<StoreError>,
    /// `CLAUDE_WORKER_MAX_DB_PAGES`, when set: the database may not grow past it.
    max_pages: Option<u64>,
    /// When a write last found the database full (see [`Store::recently_full`]).
    full_at: std::cell::Cell<Option<std::time::Instant>>,
    /// The files this connection opened, compared with what their paths name before each
    /// commit (`None` once the connection was closed because the database was lost).
    opened: Option<identity::OpenedFiles>,
    /// Set once the database path no longer names the opened file: every operation is refused.
    lost: std::cell::OnceCell<Lost>,
}

/// The integrity check a process runs when it opens the database (see [`start_check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartCheck {
    /// A reader: no check (a read changes nothing, and meets a damaged page as an error).
    None,
    /// `PRAGMA quick_check`: every page read once.
    Full,
    /// The schema, every table's root, and the paths a run's writes take; milliseconds at any size.
    Structure,
}

/// Databases up to this size get the full `quick_check` at every writer's start: about 0.65 ms
/// per MiB in a release build on the shared 2-core machine with the pages cached (272 ms for
/// 421 MiB, `cargo bench --bench open`), so at most about 20 ms here.
pub const FULL_CHECK_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Which check a process that opens a database of `bytes` runs: none for a reader, the full
/// `quick_check` for a writer of a database small enough for it to take milliseconds, and a
/// structural check of what writes touch beyond that, so that start-up stays fast however the
/// database grows (`claude-worker-inspect doctor` runs the full check on demand).
pub fn start_check(writes: bool, bytes: u64) -> StartCheck {
    match (writes, bytes <= FULL_CHECK_MAX_BYTES) {
        (false, _) => StartCheck::None,
        (true, true) => StartCheck::Full,
        (true, false) => StartCheck::Structure,
    }
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
        Self::open_with(path, None)
    }

    /// Opens the database as a server or worker does: creating it (and its directory) if needed,
    /// refusing at once, with what to do, a place it cannot write to or a corrupt file, and
    /// capping its size at `max_pages` pages when given (`CLAUDE_WORKER_MAX_DB_PAGES`).
    pub fn open_with(path: &Path, max_pages: Option<u64>) -> Result<Store, StoreError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            // Private, and refused if someone else made it since the start-up check looked.
            crate::files::private_dir_all(dir)
                .map_err(|error| StoreError::CreateDir { path: dir.to_owned(), error })?;
        }
        // SQLite would open a file it cannot write read-only without a word, and fail later
        // (or at the first write) with a message that does not say what to fix.
        writable(dir).map_err(|reason| StoreError::ReadOnlyDir { path: dir.to_owned(), reason })?;
        if path.exists() {
            writable(path).map_err(|reason| StoreError::ReadOnlyFile { path: path.to_owned(), reason })?;
        } else {
            // Create the file ourselves so that it is private from the first byte: it holds prompts.
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                // Never through a link someone left there (see `crate::files`).
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(|error| StoreError::CreateFile { path: path.to_owned(), error })?;
        }
        let mut store = Self::open_existing(path, true, true)?;
        if let Some(pages) = max_pages {
            store.limit_pages(pages)?;
        }
        Ok(store)
    }

    /// Opens a database that must already exist (the inspect CLI never creates one), capped at
    /// `max_pages` pages when given: its cancels, retries and prunes write too. The integrity
    /// check at start ([`start_check`]) runs only when the caller `writes`.
    pub fn open_existing_only(path: &Path, max_pages: Option<u64>, writes: bool) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let mut store = Self::open_existing(path, true, writes)?;
        if let Some(pages) = max_pages {
            store.limit_pages(pages)?;
        }
        Ok(store)
    }

    fn open_existing(path: &Path, migrate: bool, writes: bool) -> Result<Store, StoreError> {
        // Switching a fresh file to WAL takes an exclusive lock for which SQLite may answer
        // "busy" at once rather than wait: when several processes start together, try again.
        let mut attempts = 0;
        loop {
            match Self::try_open(path, migrate, writes) {
                Err(StoreError::Open { error, .. }) if attempts < 200 && is_busy(&error) => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(5 + jitter_ms()));
                }
                // The file was replaced while it was being opened: open what the path names now.
                Err(StoreError::Replaced { .. }) if attempts < 200 => attempts += 1,
                other => return other,
            }
        }
    }

    fn try_open(path: &Path, migrate: bool, writes: bool) -> Result<Store, StoreError> {
        let open_err = |error: rusqlite::Error| match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt { path: path.to_owned(), detail: error.to_string() }
            }
            _ => StoreError::Open { path: path.to_owned(), error },
        };
        let before = match identity::look(path) {
            identity::AtPath::File(id) => Some(id),
            _ => None,
        };
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(open_err)?;
        // Until the file is known to be sound, closing must not checkpoint: that would copy
        // what a WAL file holds into a file we are about to refuse.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        if migrate && conn.is_readonly(rusqlite::MAIN_DB).map_err(open_err)? {
            return Err(StoreError::ReadOnlyFile {
                path: path.to_owned(),
                reason: "SQLite could open it for reading only".to_owned(),
            });
        }
        // Every statement of the store stays prepared (rusqlite keeps 16 by default, fewer than
        // the store has, and re-parsing SQL was the database thread's largest cost).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // A newer schema is refused before anything could write to it (so is a file that is not
        // a database at all: reading its header fails).
        let found: usize = conn
            .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
            .map_err(open_err)?
            .try_into()
            .unwrap_or(usize::MAX);
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.to_owned(), found, supported: SCHEMA_VERSION });
        }
        // A damaged page is refused too, before anything writes (see `start_check`).
        let pages: u64 = conn.pragma_query_value(None, "page_count", |row| row.get(0)).map_err(open_err)?;
        let page_size: u64 = conn.pragma_query_value(None, "page_size", |row| row.get(0)).map_err(open_err)?;
        let check = match start_check(writes, pages.saturating_mul(page_size)) {
            StartCheck::None => "ok".to_owned(),
            StartCheck::Full => conn.query_row("PRAGMA quick_check(1)", [], |row| row.get(0)).map_err(open_err)?,
            StartCheck::Structure => {
                // Reading these walks every table's root and the paths the writes of a run take
                // (the newest rows, where new ones go); a damaged page on them fails the read.
                for sql in [
                    "SELECT count(*) FROM sqlite_schema",
                    "SELECT max(task_id), min(task_id) FROM tasks",
                    "SELECT max(event_id) FROM task_events",
                    "SELECT max(orchestration_id) FROM orchestrations",
                    "SELECT max(task_id) FROM task_dependencies",
                    "SELECT count(*) FROM (SELECT task_id FROM tasks WHERE status = 'pending' ORDER BY priority DESC, task_id LIMIT 1)",
                    "SELECT max(lease_expires_at) FROM tasks WHERE status = 'running'",
                ] {
                    conn.query_row(sql, [], |_| Ok(())).map_err(open_err)?;
                }
                "ok".to_owned()
            }
        };
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                detail: format!(
                    "SQLite's check found: {}",
                    check.lines().filter(|l| !l.starts_with("***")).collect::<Vec<_>>().join("; ")
                ),
            });
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal { path: path.to_owned(), mode });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        // The WAL file keeps the size of the largest transaction it ever held (a batch of
        // 100,000 tasks: tens of megabytes) unless it is cut back after a checkpoint resets it.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0)).map_err(open_err)?;
        if fk != 1 {
            return Err(open_err(rusqlite::Error::InvalidQuery));
        }
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false).map_err(open_err)?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            in_group: false,
            group_abort: None,
            max_pages: None,
            full_at: std::cell::Cell::new(None),
            opened: None,
            lost: std::cell::OnceCell::new(),
        };
        if migrate && found < SCHEMA_VERSION {
            store.migrate()?;
        }
        // The files as opened, for the check before each commit. The path named the same file
        // before SQLite opened it and now: SQLite's file is that one.
        let sqlite_path = store.conn.path().map_or_else(|| path.to_owned(), PathBuf::from);
        store.opened = identity::OpenedFiles::record(path, &sqlite_path);
        if store.opened.as_ref().map(identity::OpenedFiles::db) != before {
            return Err(StoreError::Replaced { path: path.to_owned(), part: "" });
        }
        // Keep the file private even when something else created it.
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(store)
    }

    /// Caps the database at `pages` pages (`PRAGMA max_page_count`, for this connection): a
    /// write that would grow it further fails as a full disk does. SQLite never sets the cap
    /// below the current size; freed pages are reused below it.
    fn limit_pages(&mut self, pages: u64) -> Result<(), StoreError> {
        let set: u64 = self
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |row| row.get(0))
            .map_err(|error| StoreError::Open { path: self.path.clone(), error })?;
        tracing::debug!(
            requested = pages,
            set,
            "the database may not grow past {set} pages (CLAUDE_WORKER_MAX_DB_PAGES)"
        );
        self.max_pages = Some(set);
        Ok(())
    }

    /// Turns SQLite's codes for faults a person must fix into errors that say what to do.
    fn explain(&self, error: StoreError) -> StoreError {
        let StoreError::Sqlite(sqlite) = &error else { return error };
        match sqlite.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => {
                self.full_at.set(Some(std::time::Instant::now()));
                StoreError::Full {
                    path: self.path.clone(),
                    cause: if self.max_pages.is_some() {
                        "it reached its CLAUDE_WORKER_MAX_DB_PAGES size limit, or the disk has no space left"
                    } else {
                        "the disk has no space left"
                    },
                    remedy: if self.max_pages.is_some() {
                        "free disk space, or raise CLAUDE_WORKER_MAX_DB_PAGES and restart claude-worker"
                    } else {
                        "free disk space on that file system"
                    },
                }
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                StoreError::Corrupt { path: self.path.clone(), detail: sqlite.to_string() }
            }
            Some(rusqlite::ErrorCode::ReadOnly) => {
                StoreError::ReadOnlyFile { path: self.path.clone(), reason: "SQLite could not write to it".to_owned() }
            }
            _ => error,
        }
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
                        return Err(StoreError::Migrate { path: self.path.clone(), error: source });
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
                self.refuse_if_lost()?;
                // SQLite rolls a whole transaction back on some errors (a full disk, an I/O
                // error): then the group is over, and a savepoint here would commit on its own.
                if self.conn.is_autocommit() {
                    return Err(self.group_abort.as_ref().map_or_else(
                        || StoreError::Commit("an earlier operation's error ended the transaction".to_owned()),
                        StoreError::for_each_waiter,
                    ));
                }
                let savepoint = self.conn.savepoint()?;
                let value = f(&savepoint)?;
                savepoint.commit()?;
                Ok(value)
            })()
        } else {
            (|| {
                self.refuse_if_lost()?;
                let tx = begin_immediate(&self.conn)?;
                let value = f(&tx)?;
                // Nothing is written to a file the path no longer names (the transaction rolls
                // back), and no caller hears of a commit that landed in one.
                self.check_identity()?;
                tx.commit()?;
                self.check_identity()?;
                Ok(value)
            })()
        };
        let outcome = outcome.map_err(|e| self.explain(e));
        if let Err(e) = &outcome {
            PENDING_LOG.with_borrow_mut(|lines| lines.truncate(logged));
            if self.in_group && self.conn.is_autocommit() && self.group_abort.is_none() {
                self.group_abort = Some(e.for_each_waiter());
            }
        } else if !self.in_group {
            emit_pending_log();
        }
        outcome
    }

    /// Runs `f` in a read transaction (one consistent snapshot), or in the group's transaction.
    fn read<R>(&mut self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.in_group {
            self.refuse_if_lost()?;
            return f(&self.conn).map_err(|e| self.explain(e));
        }
        (|| {
            self.check_identity()?;
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let value = f(&tx)?;
            tx.finish()?;
            Ok(value)
        })()
        .map_err(|e| self.explain(e))
    }

    /// Starts a group: the operations until [`Store::end_group`] share one transaction, each in
    /// a savepoint of its own (an operation that fails undoes only itself), and so share one
    /// commit and one fsync. Their callers must not learn their outcome before that commit.
    pub(crate) fn begin_group(&mut self) -> Result<(), StoreError> {
        self.refuse_if_lost()?;
        begin_immediate(&self.conn)?.set_drop_behavior(rusqlite::DropBehavior::Ignore);
        self.in_group = true;
        self.group_abort = None;
        PENDING_LOG.with_borrow_mut(Vec::clear);
        Ok(())
    }

    /// Commits the group (rolling it back if the commit fails).
    pub(crate) fn end_group(&mut self) -> Result<(), StoreError> {
        self.in_group = false;
        let aborted = self.group_abort.take();
        if self.conn.is_autocommit() {
            PENDING_LOG.with_borrow_mut(Vec::clear);
            return Err(
                aborted.unwrap_or_else(|| StoreError::Commit("the transaction was rolled back by an error".to_owned()))
            );
        }
        if let Err(e) = self.check_identity() {
            let _ = self.conn.execute_batch("ROLLBACK");
            PENDING_LOG.with_borrow_mut(Vec::clear);
            return Err(e);
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                if let Err(e) = self.check_identity() {
                    PENDING_LOG.with_borrow_mut(Vec::clear);
                    return Err(e);
                }
                emit_pending_log();
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                PENDING_LOG.with_borrow_mut(Vec::clear);
                Err(self.explain(e.into()))
            }
        }
    }

    /// Whether a write found the database full in the last few seconds. SQLite may answer a
    /// full disk by rolling back the whole transaction, which in a group commit fails every
    /// operation of the group, even those that would fit: meanwhile, operations run one by one.
    pub(crate) fn recently_full(&self) -> bool {
        self.full_at.get().is_some_and(|at| at.elapsed() < Duration::from_secs(10))
    }

    /// Refuses at once when the database was found deleted or replaced.
    fn refuse_if_lost(&self) -> Result<(), StoreError> {
        self.lost.get().map_or(Ok(()), |lost| Err(lost.error()))
    }

    /// Refuses when the database path (or its -wal or -shm file) no longer names the file this
    /// connection opened, remembering it: from then on every operation is refused.
    fn check_identity(&self) -> Result<(), StoreError> {
        self.refuse_if_lost()?;
        let Some((identity, file)) = self.opened.as_ref().and_then(identity::OpenedFiles::check) else {
            return Ok(());
        };
        let part = if file == self.path {
            ""
        } else if file.as_os_str().to_string_lossy().ends_with("-wal") {
            " (its -wal file)"
        } else {
            " (its -shm file)"
        };
        let lost = self.lost.get_or_init(|| Lost { identity, path: self.path.clone(), part });
        Err(lost.error())
    }

    /// The database was found deleted or replaced.
    pub(crate) fn lost(&self) -> Option<&Lost> {
        self.lost.get()
    }

    /// Closes the connection to a lost database at once; the store answers from then on with
    /// the error alone.
    pub(crate) fn close_lost(&mut self) {
        if self.lost.get().is_some() {
            self.close_checked();
        }
    }

    /// Closes the connection without harm to what the paths name now. SQLite checkpoints into
    /// the database and deletes the -wal and -shm files *by name* when its last connection
    /// closes: that must not happen when those names now belong to another database's files.
    /// (SQLite itself skips it when the database file moved.) When the database file is gone
    /// from its path, what our WAL holds is first copied into it, wherever it is now (a file
    /// moved away stays whole without its WAL), and then our -wal and -shm are deleted if the
    /// names are still ours, so that a database restored at the path is not read through them —
    /// unless another process still reads the old file (the copy was partial): it does the same
    /// when it finds out.
    fn close_checked(&mut self) {
        let Some(opened) = self.opened.take() else { return };
        if !opened.companions_same() {
            let _ = self.conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
        }
        if opened.db_same() {
            return; // closed as usual when the store is dropped
        }
        // (busy, frames in the WAL, frames copied)
        let copied = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let whole = matches!(copied, Ok((0, frames, done)) if frames == done);
        match Connection::open_in_memory() {
            Ok(placeholder) => {
                drop(std::mem::replace(&mut self.conn, placeholder));
                if whole {
                    opened.remove_own_companions();
                }
            }
            Err(e) => tracing::warn!("cannot close the connection to the lost database: {e}"),
        }
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&mut self) -> Result<String, StoreError> {
        self.refuse_if_lost()?;
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
    }
}

impl Drop for Store {
    /// However the process ends, closing leaves alone the files the database's paths name now
    /// (another database's, after `rm tasks.db*` and a new server).
    fn drop(&mut self) {
        self.close_checked();
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

/// Whether this user may write to `path`: `Err` says why not (a read-only file system counts).
fn writable(path: &Path) -> Result<(), String> {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).map_err(|errno| errno.desc().to_owned())
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
    kind: &'static str,
    attempt: u32,
    claim: Option<(&str, i64)>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    insert_event(tx, key.task_id, now, kind, attempt, claim, detail)?;
    PENDING_LOG.with_borrow_mut(|lines| {
        lines.push(Pending::Event(EventLine { key: key.clone(), kind, attempt, detail: detail.map(Box::from) }));
    });
    Ok(())
}

/// Appends one row to `task_events`, without a line in the global log: for events whose line is
/// written some other way ([`record_event`], a batch's `CreatedLines`).
fn insert_event(
    tx: &Connection,
    task_id: TaskId,
    now: Millis,
    kind: &str,
    attempt: u32,
    claim: Option<(&str, i64)>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO task_events (task_id, at, kind, attempt, owner, fence, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![task_id, now, kind, attempt, claim.map(|c| c.0), claim.map(|c| c.1), detail])?;
    Ok(())
}

fn emit_pending_log() {
    for pending in PENDING_LOG.with_borrow_mut(std::mem::take) {
        match pending {
            Pending::Event(line) => line.emit(),
            Pending::Created(created) => created.emit(),
        }
    }
}

thread_local! {
    /// Events written by the transaction in progress on this thread, logged after its commit.
    static PENDING_LOG: std::cell::RefCell<Vec<Pending>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What the global log gets once the transaction in progress commits.
enum Pending {
    Event(EventLine),
    /// The `created` (and `skipped`) events of a batch, written out from what the batch became
    /// rather than kept as a line each: a 100,000-task batch's lines took 18 MB until the commit.
    Created(create::CreatedLines),
}

/// One line of the global log: a committed task event.
pub(super) struct EventLine {
    key: TaskKey,
    kind: &'static str,
    attempt: u32,
    detail: Option<Box<str>>,
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

/// Live counters of one orchestration, and what its tasks cost: kept by triggers as tasks change
/// (migration 0007), so that reading them costs the same for 10 tasks as for 100,000.
fn counters(tx: &Connection, orchestration_id: OrchestrationId) -> Result<(Counters, f64), StoreError> {
    let mut stmt = tx.prepare_cached("SELECT status, n FROM orchestration_counts WHERE orchestration_id = ?1")?;
    let mut rows = stmt.query([orchestration_id])?;
    let mut counters = Counters::default();
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let n: u32 = row.get(1)?;
        if let Some(status) = TaskStatus::parse(&status) {
            counters.add(status, n);
        }
    }
    let cost: f64 = tx
        .prepare_cached("SELECT spent_usd FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([orchestration_id], |row| row.get(0))
        .optional()?
        .unwrap_or(0.0);
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

/// The part of the graph a failure of `root` can change: its descendants, with the edges that
/// lead to them. Read through the dependency index, never the whole orchestration (`CROSS JOIN`
/// keeps the few rows found so far on the outside, where the planner might otherwise scan the edges).
fn load_descendants(tx: &Connection, root: TaskId) -> Result<graph::Graph, StoreError> {
    let mut graph = graph::Graph::new();
    let mut stmt = tx.prepare_cached(
        "WITH RECURSIVE below(task_id) AS (
             SELECT task_id FROM task_dependencies WHERE depends_on = ?1
             UNION SELECT d.task_id FROM below queue CROSS JOIN task_dependencies d ON d.depends_on = queue.task_id)
         SELECT d.task_id, t.status, d.depends_on FROM below queue
         CROSS JOIN task_dependencies d ON d.task_id = queue.task_id
         JOIN tasks t ON t.task_id = d.task_id",
    )?;
    let mut rows = stmt.query([root])?;
    while let Some(row) = rows.next()? {
        let (dependent, dependency): (TaskId, TaskId) = (row.get(0)?, row.get(2)?);
        let status: String = row.get(1)?;
        graph.add_task(dependent, TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed));
        graph.add_edge(dependent, dependency);
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
mod budget_tests;
#[cfg(test)]
mod plans;
#[cfg(test)]
mod tests;
