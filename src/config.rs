//! Every setting claude-worker reads from its environment, read once at start-up into [`Config`].
//!
//! Nothing else in the crate calls `std::env::var` for a setting: a value is parsed here, checked,
//! and a bad one is refused with a message that names the variable and what it accepts.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a resumed attempt is told: the session already holds the task and the work so far.
pub const DEFAULT_RESUME_PROMPT: &str = "Your previous run of this task was interrupted (the process running it \
stopped). Continue the task from where you left off: check what is already done, finish the rest, and end with \
the final answer the task asks for.";

/// The settings of one claude-worker process (server, worker or inspect CLI).
#[derive(Clone, Debug)]
pub struct Config {
    /// `CLAUDE_WORKER_HOME`: the directory that holds the database and logs by default.
    pub home: PathBuf,
    /// `CLAUDE_WORKER_DB`: the SQLite file shared by every process of this user.
    pub db_path: PathBuf,
    /// `CLAUDE_WORKER_LOG_DIR`: where `claude-worker.log` and the task logs
    /// ([`Config::task_log_dir`]) live.
    pub log_dir: PathBuf,
    /// `CLAUDE_WORKER_CLAUDE_BIN`: the Claude Code CLI to run.
    pub claude_bin: PathBuf,
    /// `CLAUDE_WORKER_MAX_CONCURRENT`: tasks running at once across all processes.
    pub max_concurrent: u32,
    /// `CLAUDE_WORKER_DEFAULT_MODEL`: the model of a task that names none.
    pub default_model: String,
    /// `CLAUDE_WORKER_PERMISSION_MODE`: the permission mode of a task that names none.
    pub default_permission_mode: String,
    /// `CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS`: whether a task may ask for `bypassPermissions`.
    pub allow_bypass_permissions: bool,
    /// `CLAUDE_WORKER_TASK_TIMEOUT`: seconds a task may run when it names no `timeout_seconds`.
    pub task_timeout: Duration,
    /// `CLAUDE_WORKER_MAX_ATTEMPTS`: attempts of a task that names no `max_attempts`.
    pub max_attempts: u32,
    /// `CLAUDE_WORKER_RETRY_BASE_SECONDS`: first backoff delay after a transient failure.
    pub retry_base: Duration,
    /// Longest backoff delay (300 s; `CLAUDE_WORKER_RETRY_MAX_SECONDS` for tests).
    pub retry_max: Duration,
    /// `MAX_TASKS_PER_ORCHESTRATION`.
    pub max_tasks_per_orchestration: u32,
    /// `ORCHESTRATION_TIMEOUT` (seconds): after it, unfinished tasks of an orchestration are cancelled.
    pub orchestration_timeout: Duration,
    /// `CLAUDE_WORKER_MAX_PROMPT_BYTES`: the largest prompt accepted.
    pub max_prompt_bytes: usize,
    /// `CLAUDE_WORKER_MAX_LOG_MB`: cap of one task's detailed log, in bytes.
    pub max_detailed_log_bytes: u64,
    /// `CLAUDE_WORKER_KILL_GRACE_SECONDS`: wait between SIGINT, SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// `CLAUDE_WORKER_LEASE_SECONDS`: how long a claim stays valid without a heartbeat.
    pub lease: Duration,
    /// `CLAUDE_WORKER_HEARTBEAT_SECONDS`: how often a running task renews its lease.
    pub heartbeat: Duration,
    /// `CLAUDE_WORKER_RESUME_PROMPT`: what an attempt that resumes an interrupted session says.
    pub resume_prompt: String,
    /// `CLAUDE_WORKER_DETACH_ON_EXIT`: whether a server that exits with work left, and no other
    /// executor alive, starts a detached `claude-worker work --until-idle`.
    pub detach_on_exit: bool,
    /// The directory a task runs in when it names none: the server's own working directory.
    pub default_working_directory: PathBuf,
    /// `CLAUDE_WORKER_MAX_DB_PAGES`: the most pages (4 KiB each) the database may grow to, unset
    /// by default. A write that would need more fails as on a full disk. It is read in every
    /// build, not only in debug ones: the tests of a full disk use it against the binary that
    /// is shipped, and a user may want a hard ceiling on the file's size.
    pub max_db_pages: Option<u64>,
    /// `CLAUDE_WORKER_ENABLE_SOUNDS`: play a sound when a task starts, completes or fails and when
    /// an orchestration finishes.
    pub enable_sounds: bool,
    /// `CLAUDE_WORKER_ENABLE_NOTIFICATIONS`: show a desktop notification when a task completes or
    /// fails and when an orchestration finishes.
    pub enable_notifications: bool,
    /// `CLAUDE_WORKER_{START,SUCCESS,FAILURE,ORCHESTRATION}_SOUND`: the user's own sound files.
    pub sound_files: SoundFiles,
    /// `CLAUDE_WORKER_FEEDBACK_LOG` (diagnostics): a file that gets one JSON line per sound played
    /// and notification shown.
    pub feedback_log: Option<PathBuf>,
    /// `CLAUDE_WORKER_RUN`, as the runner sets it for every attempt's CLI and everything it starts
    /// (`<owner>/<task_id>/<fence>`): this process runs inside a task. A server started so runs no
    /// executor; work it queues names the task that queued it (once the tag is checked).
    pub run_tag: Option<String>,
    /// `CLAUDE_WORKER_MAX_DEPTH`: how deep tasks may queue tasks. A task queued from outside any
    /// task is at depth 0; one queued by a task at depth N is at depth N + 1, refused beyond this.
    pub max_depth: u32,
    /// `CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD`: the budget of a new orchestration that
    /// is given none (unset: no budget).
    pub default_orchestration_budget_usd: Option<f64>,
    /// `CLAUDE_WORKER_DEFAULT_ISOLATION`: `none` (the default) or `worktree`, for tasks that ask
    /// for neither.
    pub default_isolation: crate::isolation::Isolation,
    /// `CLAUDE_WORKER_SPARE_WORKTREES`: how many finished worktrees of a repository are kept,
    /// cleaned, for the next isolated tasks that start there (0: none; each holds a checkout).
    pub spare_worktrees: u32,
    // Checked completion (`verify`).
    /// `CLAUDE_WORKER_ALLOW_VERIFY`: which `verify` commands an MCP caller may give (none by
    /// default); a person's own `claude-worker run --verify` is always allowed.
    pub allow_verify: crate::verify::AllowVerify,
    /// `CLAUDE_WORKER_VERIFY_TIMEOUT`: seconds a `verify` command may run when the task names no
    /// `verify_timeout_seconds`.
    pub verify_timeout: Duration,
    // The HTTP edge (`serve --http`).
    /// `CLAUDE_WORKER_HOST` and `CLAUDE_WORKER_PORT`: where `serve --http` listens when given no
    /// address (`127.0.0.1:8000`, the Python tool's port, on loopback).
    pub http_host: String,
    pub http_port: u16,
    /// `CLAUDE_WORKER_HTTP_TOKEN`: the token every HTTP API and MCP request must carry (as
    /// `Authorization: Bearer`); unset on a non-loopback address, one is generated and kept
    /// beside the database.
    pub http_token: Option<String>,
    /// `CLAUDE_WORKER_HTTP_HOSTS`: more host names the HTTP server answers to (comma-separated),
    /// beyond IP addresses, `localhost` and this machine's name.
    pub http_hosts: Vec<String>,
}

/// The sound files a user chose instead of the built-in sounds (`None`: the built-in one).
#[derive(Clone, Debug, Default)]
pub struct SoundFiles {
    pub start: Option<PathBuf>,
    pub success: Option<PathBuf>,
    pub failure: Option<PathBuf>,
    pub orchestration: Option<PathBuf>,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: expected {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
    #[error("cannot find the home directory: set CLAUDE_WORKER_HOME (or HOME)")]
    NoHome,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so that tests can supply their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let home = match get("CLAUDE_WORKER_HOME") {
            Some(h) => expand_tilde(&h, &lookup)?,
            None => {
                let user_home = lookup("HOME").filter(|h| !h.is_empty()).ok_or(ConfigError::NoHome)?;
                PathBuf::from(user_home).join(".claude-worker")
            }
        };
        let db_path = match get("CLAUDE_WORKER_DB") {
            Some(p) => expand_tilde(&p, &lookup)?,
            None => home.join("tasks.db"),
        };
        let log_dir = match get("CLAUDE_WORKER_LOG_DIR") {
            Some(p) => expand_tilde(&p, &lookup)?,
            None => home.clone(),
        };
        let default_working_directory = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let max_log_mb: u64 = parse(&get, "CLAUDE_WORKER_MAX_LOG_MB", 50, "a whole number of MiB, at least 1")?;
        if max_log_mb == 0 {
            return Err(ConfigError::Invalid {
                name: "CLAUDE_WORKER_MAX_LOG_MB",
                value: "0".to_owned(),
                expected: "a whole number of MiB, at least 1",
            });
        }
        let max_db_pages: Option<u64> = match get("CLAUDE_WORKER_MAX_DB_PAGES") {
            None => None,
            Some(value) => match value.trim().parse() {
                Ok(pages) if pages >= 1 => Some(pages),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "CLAUDE_WORKER_MAX_DB_PAGES",
                        value,
                        expected: "a whole number of pages, at least 1",
                    });
                }
            },
        };
        let config = Config {
            claude_bin: get("CLAUDE_WORKER_CLAUDE_BIN").map_or_else(|| PathBuf::from("claude"), PathBuf::from),
            max_concurrent: parse(&get, "CLAUDE_WORKER_MAX_CONCURRENT", 4, "a whole number from 1 to 1000")?,
            default_model: get("CLAUDE_WORKER_DEFAULT_MODEL").unwrap_or_else(|| "sonnet".to_owned()),
            default_permission_mode: get("CLAUDE_WORKER_PERMISSION_MODE").unwrap_or_else(|| "acceptEdits".to_owned()),
            allow_bypass_permissions: parse_bool(&get, "CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS", false)?,
            task_timeout: seconds(&get, "CLAUDE_WORKER_TASK_TIMEOUT", 3600.0)?,
            max_attempts: parse(&get, "CLAUDE_WORKER_MAX_ATTEMPTS", 3, "a whole number from 1 to 100")?,
            retry_base: seconds(&get, "CLAUDE_WORKER_RETRY_BASE_SECONDS", 5.0)?,
            retry_max: seconds(&get, "CLAUDE_WORKER_RETRY_MAX_SECONDS", 300.0)?,
            max_tasks_per_orchestration: parse(&get, "MAX_TASKS_PER_ORCHESTRATION", 100, "a whole number, at least 1")?,
            orchestration_timeout: seconds(&get, "ORCHESTRATION_TIMEOUT", 3600.0)?,
            max_prompt_bytes: parse(
                &get,
                "CLAUDE_WORKER_MAX_PROMPT_BYTES",
                1024 * 1024,
                "a number of bytes, at least 1",
            )?,
            max_detailed_log_bytes: max_log_mb.saturating_mul(1024 * 1024),
            kill_grace: seconds(&get, "CLAUDE_WORKER_KILL_GRACE_SECONDS", 3.0)?,
            lease: seconds(&get, "CLAUDE_WORKER_LEASE_SECONDS", 30.0)?,
            heartbeat: seconds(&get, "CLAUDE_WORKER_HEARTBEAT_SECONDS", 10.0)?,
            resume_prompt: get("CLAUDE_WORKER_RESUME_PROMPT").unwrap_or_else(|| DEFAULT_RESUME_PROMPT.to_owned()),
            detach_on_exit: parse_bool(&get, "CLAUDE_WORKER_DETACH_ON_EXIT", true)?,
            default_working_directory,
            max_db_pages,
            enable_sounds: parse_bool(&get, "CLAUDE_WORKER_ENABLE_SOUNDS", true)?,
            enable_notifications: parse_bool(&get, "CLAUDE_WORKER_ENABLE_NOTIFICATIONS", true)?,
            sound_files: SoundFiles {
                start: get("CLAUDE_WORKER_START_SOUND").map(|p| expand_tilde(&p, &lookup)).transpose()?,
                success: get("CLAUDE_WORKER_SUCCESS_SOUND").map(|p| expand_tilde(&p, &lookup)).transpose()?,
                failure: get("CLAUDE_WORKER_FAILURE_SOUND").map(|p| expand_tilde(&p, &lookup)).transpose()?,
                orchestration: get("CLAUDE_WORKER_ORCHESTRATION_SOUND")
                    .map(|p| expand_tilde(&p, &lookup))
                    .transpose()?,
            },
            feedback_log: get("CLAUDE_WORKER_FEEDBACK_LOG").map(|p| expand_tilde(&p, &lookup)).transpose()?,
            run_tag: get(crate::runner::RUN_TAG_VAR),
            max_depth: parse(&get, "CLAUDE_WORKER_MAX_DEPTH", 3, "a whole number from 0 to 100")?,
            default_orchestration_budget_usd: default_budget(&get)?,
            default_isolation: match get("CLAUDE_WORKER_DEFAULT_ISOLATION") {
                None => crate::isolation::Isolation::None,
                Some(value) => crate::isolation::Isolation::parse(value.trim()).ok_or(ConfigError::Invalid {
                    name: "CLAUDE_WORKER_DEFAULT_ISOLATION",
                    value,
                    expected: "none or worktree",
                })?,
            },
            allow_verify: allow_verify(&get)?,
            verify_timeout: seconds(&get, "CLAUDE_WORKER_VERIFY_TIMEOUT", 600.0)?,
            spare_worktrees: parse(&get, "CLAUDE_WORKER_SPARE_WORKTREES", 4, "a whole number from 0 to 64")?,
            http_host: get("CLAUDE_WORKER_HOST").map_or_else(|| "127.0.0.1".to_owned(), |h| h.trim().to_owned()),
            http_port: parse(&get, "CLAUDE_WORKER_PORT", 8000, "a port number from 0 to 65535")?,
            http_token: get("CLAUDE_WORKER_HTTP_TOKEN").map(|t| t.trim().to_owned()),
            http_hosts: get("CLAUDE_WORKER_HTTP_HOSTS")
                .map(|list| list.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect())
                .unwrap_or_default(),
            home,
            db_path,
            log_dir,
        };
        check_range("CLAUDE_WORKER_MAX_CONCURRENT", config.max_concurrent, 1, 1000, "a whole number from 1 to 1000")?;
        check_range("CLAUDE_WORKER_SPARE_WORKTREES", config.spare_worktrees, 0, 64, "a whole number from 0 to 64")?;
        if !(1..=7 * 86_400).contains(&config.verify_timeout.as_secs()) {
            return Err(ConfigError::Invalid {
                name: "CLAUDE_WORKER_VERIFY_TIMEOUT",
                value: format!("{}", config.verify_timeout.as_secs_f64()),
                expected: "a number of seconds from 1 to 604800 (a week)",
            });
        }
        check_range("CLAUDE_WORKER_MAX_DEPTH", config.max_depth, 0, 100, "a whole number from 0 to 100")?;
        check_range("CLAUDE_WORKER_MAX_ATTEMPTS", config.max_attempts, 1, 100, "a whole number from 1 to 100")?;
        check_range(
            "MAX_TASKS_PER_ORCHESTRATION",
            config.max_tasks_per_orchestration,
            1,
            u32::MAX,
            "a whole number, at least 1",
        )?;
        if config.heartbeat >= config.lease {
            return Err(ConfigError::Invalid {
                name: "CLAUDE_WORKER_HEARTBEAT_SECONDS",
                value: format!("{}", config.heartbeat.as_secs_f64()),
                expected: "fewer seconds than CLAUDE_WORKER_LEASE_SECONDS (a lease must be renewed before it runs out)",
            });
        }
        if !crate::model::PERMISSION_MODES.contains(&config.default_permission_mode.as_str()) {
            return Err(ConfigError::Invalid {
                name: "CLAUDE_WORKER_PERMISSION_MODE",
                value: config.default_permission_mode,
                expected: "one of default, acceptEdits, plan, bypassPermissions, dontAsk, auto",
            });
        }
        if config.default_permission_mode == "bypassPermissions" && !config.allow_bypass_permissions {
            return Err(ConfigError::Invalid {
                name: "CLAUDE_WORKER_PERMISSION_MODE",
                value: config.default_permission_mode,
                expected: "a mode other than bypassPermissions, unless CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS=true",
            });
        }
        Ok(config)
    }

    /// Directory of this database's per-task summary and detailed logs: `<log_dir>/tasks` for
    /// the database at `<log_dir>/tasks.db` (the default), else a directory of its own (see
    /// [`crate::logs::task_log_dir_name`]). Everything that reads, writes or prunes task logs
    /// asks here.
    pub fn task_log_dir(&self) -> PathBuf {
        self.log_dir
            .join(crate::logs::task_log_dir_name(&canonical_path(&self.log_dir), &canonical_path(&self.db_path)))
    }

    /// Directory of this database's task worktrees (isolation): next to its task logs,
    /// `<log_dir>/worktrees` for the default database, else a directory of its own.
    pub fn worktree_dir(&self) -> PathBuf {
        let name = crate::logs::task_log_dir_name(&canonical_path(&self.log_dir), &canonical_path(&self.db_path));
        self.log_dir.join(name.replacen("tasks", "worktrees", 1))
    }

    /// Where finished worktrees are kept for the next tasks (see `spare_worktrees`).
    pub fn spare_worktree_dir(&self) -> PathBuf {
        self.worktree_dir().join("spare")
    }

    /// Where the HTTP server's generated token is kept: beside the database, private.
    pub fn http_token_path(&self) -> PathBuf {
        let mut name = self.db_path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
        name.push(".http-token");
        self.db_path.with_file_name(name)
    }

    /// Path of the global log.
    pub fn global_log_path(&self) -> PathBuf {
        self.log_dir.join("claude-worker.log")
    }
}

/// `path` made absolute with symlinks resolved, as far as it exists: its longest existing
/// ancestor is canonicalized and the rest appended, so a database or log directory that is not
/// created yet gets the same answer as once it is.
fn canonical_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            return missing.iter().rev().fold(canonical, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

fn expand_tilde(value: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(rest) = value.strip_prefix("~/") {
        let home = lookup("HOME").filter(|h| !h.is_empty()).ok_or(ConfigError::NoHome)?;
        return Ok(Path::new(&home).join(rest));
    }
    Ok(PathBuf::from(value))
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid { name, value, expected }),
    }
}

fn seconds(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
    let expected = "a number of seconds, from 0 to 1000000000";
    let value: f64 = parse(get, name, default, expected)?;
    if !(0.0..=1e9).contains(&value) {
        return Err(ConfigError::Invalid { name, value: value.to_string(), expected });
    }
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::Invalid { name, value: value.to_string(), expected })
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid { name, value, expected: "true or false" }),
        },
    }
}

/// `CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD`, checked as any budget is
/// ([`crate::budget::check`]): `NaN`, `inf`, a negative or an absurd amount is refused.
fn default_budget(get: &impl Fn(&str) -> Option<String>) -> Result<Option<f64>, ConfigError> {
    const NAME: &str = "CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD";
    const EXPECTED: &str = "a positive number of dollars, at most 10000 (unset: no budget)";
    let Some(value) = get(NAME) else { return Ok(None) };
    match value.trim().parse::<f64>().ok().map(|usd| crate::budget::check(NAME, usd)) {
        Some(Ok(usd)) => Ok(Some(usd)),
        _ => Err(ConfigError::Invalid { name: NAME, value, expected: EXPECTED }),
    }
}

/// `CLAUDE_WORKER_ALLOW_VERIFY`: `true`, `false`, or a comma-separated list of command prefixes.
fn allow_verify(get: &impl Fn(&str) -> Option<String>) -> Result<crate::verify::AllowVerify, ConfigError> {
    const NAME: &str = "CLAUDE_WORKER_ALLOW_VERIFY";
    let Some(value) = get(NAME) else { return Ok(crate::verify::AllowVerify::Nobody) };
    crate::verify::AllowVerify::parse(&value).ok_or(ConfigError::Invalid {
        name: NAME,
        value,
        expected: "true, false, or a comma-separated list of command prefixes such as `cargo test,npm test` \
                   (without ; & | ` $ ( ) < >)",
    })
}

fn check_range(name: &'static str, value: u32, low: u32, high: u32, expected: &'static str) -> Result<(), ConfigError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid { name, value: value.to_string(), expected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_follow_home() {
        let c = config(&[("HOME", "/home/u")]).expect("defaults are valid");
        assert_eq!(c.db_path, PathBuf::from("/home/u/.claude-worker/tasks.db"));
        assert_eq!(c.log_dir, PathBuf::from("/home/u/.claude-worker"));
        assert_eq!(c.max_concurrent, 4);
        assert_eq!(c.default_model, "sonnet");
        assert_eq!(c.default_permission_mode, "acceptEdits");
        assert_eq!(c.task_timeout, Duration::from_secs(3600));
        assert_eq!(c.max_detailed_log_bytes, 50 * 1024 * 1024);
        assert!(!c.allow_bypass_permissions);
        assert_eq!(c.max_db_pages, None);
        assert!(c.enable_sounds && c.enable_notifications);
        assert!(c.sound_files.start.is_none() && c.feedback_log.is_none());
    }

    #[test]
    fn feedback_switches_and_sound_files() {
        for (value, on) in [("true", true), ("1", true), ("Yes", true), ("on", true), ("false", false), ("0", false)] {
            let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_ENABLE_SOUNDS", value)]).expect("valid");
            assert_eq!(c.enable_sounds, on, "{value}");
        }
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "off")]).expect("valid");
        assert!(!c.enable_notifications);
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_ENABLE_SOUNDS", "loud")]).expect_err("not a bool");
        assert!(err.to_string().contains("CLAUDE_WORKER_ENABLE_SOUNDS"), "{err}");
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_FAILURE_SOUND", "~/s/fail.wav")]).expect("valid");
        assert_eq!(c.sound_files.failure, Some(PathBuf::from("/h/s/fail.wav")));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_MAX_CONCURRENT", "lots")]).expect_err("not a number");
        assert!(err.to_string().contains("CLAUDE_WORKER_MAX_CONCURRENT"), "{err}");
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_MAX_CONCURRENT", "0")]).expect_err("zero");
        assert!(err.to_string().contains("1 to 1000"), "{err}");
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_PERMISSION_MODE", "yolo")]).expect_err("unknown mode");
        assert!(err.to_string().contains("acceptEdits"), "{err}");
        let err =
            config(&[("HOME", "/h"), ("CLAUDE_WORKER_PERMISSION_MODE", "bypassPermissions")]).expect_err("not allowed");
        assert!(err.to_string().contains("CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS=true"), "{err}");
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_MAX_LOG_MB", "0")]).expect_err("zero");
        assert!(err.to_string().contains("at least 1"), "{err}");
        let err =
            config(&[("HOME", "/h"), ("CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS", "maybe")]).expect_err("not a bool");
        assert!(err.to_string().contains("true or false"), "{err}");
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_MAX_DB_PAGES", "0")]).expect_err("zero");
        assert!(err.to_string().contains("CLAUDE_WORKER_MAX_DB_PAGES"), "{err}");
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_MAX_DB_PAGES", "500")]).expect("valid");
        assert_eq!(c.max_db_pages, Some(500));
    }

    #[test]
    fn the_default_orchestration_budget_is_a_sane_number_of_dollars() {
        const NAME: &str = "CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD";
        assert_eq!(config(&[("HOME", "/h")]).expect("valid").default_orchestration_budget_usd, None);
        let c = config(&[("HOME", "/h"), (NAME, " 2.50 ")]).expect("valid");
        assert_eq!(c.default_orchestration_budget_usd, Some(2.5));
        for bad in ["NaN", "inf", "-1", "0", "1e9", "five"] {
            let err = config(&[("HOME", "/h"), (NAME, bad)]).expect_err(bad).to_string();
            assert!(err.contains(NAME) && err.contains("at most 10000"), "{bad}: {err}");
        }
    }

    #[test]
    fn verify_settings() {
        use crate::verify::AllowVerify;
        let c = config(&[("HOME", "/h")]).expect("valid");
        assert_eq!(c.allow_verify, AllowVerify::Nobody);
        assert_eq!(c.verify_timeout, Duration::from_secs(600));
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_ALLOW_VERIFY", "cargo test,npm test")]).expect("valid");
        assert_eq!(c.allow_verify, AllowVerify::Prefixes(vec!["cargo test".to_owned(), "npm test".to_owned()]));
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_ALLOW_VERIFY", "true")]).expect("valid");
        assert_eq!(c.allow_verify, AllowVerify::Any);
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_ALLOW_VERIFY", "make; rm")]).expect_err("a metacharacter");
        assert!(err.to_string().contains("CLAUDE_WORKER_ALLOW_VERIFY"), "{err}");
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_VERIFY_TIMEOUT", "30")]).expect("valid");
        assert_eq!(c.verify_timeout, Duration::from_secs(30));
        let err = config(&[("HOME", "/h"), ("CLAUDE_WORKER_VERIFY_TIMEOUT", "0")]).expect_err("zero");
        assert!(err.to_string().contains("CLAUDE_WORKER_VERIFY_TIMEOUT"), "{err}");
    }

    #[test]
    fn task_logs_follow_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("cw");
        let home_str = home.display().to_string();
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_HOME", &home_str)]).expect("valid");
        assert_eq!(c.task_log_dir(), home.join("tasks"), "the default layout, before anything exists");
        std::fs::create_dir_all(&home).expect("mkdir");
        std::fs::write(home.join("tasks.db"), "").expect("db");
        assert_eq!(c.task_log_dir(), home.join("tasks"), "and after");
        // The same database named through a symlink shares the logs.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&home, &link).expect("symlink");
        let through_link = format!("{}/tasks.db", link.display());
        let c = config(&[("HOME", "/h"), ("CLAUDE_WORKER_HOME", &home_str), ("CLAUDE_WORKER_DB", &through_link)])
            .expect("valid");
        assert_eq!(c.task_log_dir(), home.join("tasks"));
        // Another database sharing the log directory gets its own.
        let other = dir.path().join("project/work.db").display().to_string();
        let c =
            config(&[("HOME", "/h"), ("CLAUDE_WORKER_HOME", &home_str), ("CLAUDE_WORKER_DB", &other)]).expect("valid");
        let tasks = c.task_log_dir();
        assert_eq!(tasks.parent(), Some(home.as_path()));
        assert!(tasks.file_name().expect("name").to_string_lossy().starts_with("tasks-work-"), "{tasks:?}");
    }

    #[test]
    fn explicit_paths_and_tilde() {
        let c =
            config(&[("HOME", "/h"), ("CLAUDE_WORKER_HOME", "~/cw"), ("CLAUDE_WORKER_DB", "/x/t.db")]).expect("valid");
        assert_eq!(c.home, PathBuf::from("/h/cw"));
        assert_eq!(c.db_path, PathBuf::from("/x/t.db"));
        assert_eq!(c.log_dir, PathBuf::from("/h/cw"));
    }
}
