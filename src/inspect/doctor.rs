//! `doctor`: checks what claude-worker needs — its settings, the `claude` binary and its
//! version, credentials, the database (file, WAL, schema, integrity, tasks, stuck attempts),
//! the log directory, and the sound and notification backends — and says how to fix each
//! problem. It changes nothing (a probe file in the log directory is created and removed).
//!
//! Credentials, `DBUS_SESSION_BUS_ADDRESS` and the sound and notification switches are read
//! from the environment here: they are not settings of this binary but facts about the
//! environment a server started from this shell would see. Their values are never printed
//! (only which ones are present).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::color;
use crate::config::Config;
use crate::owners::{Liveness, liveness, others_alive, this_host};
use crate::runner::{VersionError, claude_version, find_executable};
use crate::store::{Diagnosis, Store};
use crate::time::{now_ms, rfc3339};

/// How long `claude --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// A log directory above this size is worth pruning.
const LARGE_LOGS: u64 = 1024 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One check's verdict, and what to do about it.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub message: String,
    pub fix: Option<String>,
}

fn ok(name: &'static str, message: impl Into<String>) -> Check {
    Check { name, level: Level::Ok, message: message.into(), fix: None }
}

fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, level: Level::Warn, message: message.into(), fix: Some(fix.into()) }
}

fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, level: Level::Fail, message: message.into(), fix: Some(fix.into()) }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Runs every check. `db` is `--db`, which overrides the configured database.
pub async fn run(db: Option<PathBuf>, full: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match Config::from_env() {
        Ok(mut config) => {
            if let Some(db) = db {
                config.db_path = db;
            }
            checks.push(ok(
                "settings",
                format!(
                    "database {}, logs {} (its task logs in {})",
                    config.db_path.display(),
                    config.log_dir.display(),
                    config.task_log_dir().display()
                ),
            ));
            Some(config)
        }
        Err(e) => {
            checks.push(fail(
                "settings",
                e.to_string(),
                "correct or unset that variable: servers refuse to start with it (the other checks need valid settings)",
            ));
            None
        }
    };
    if let Some(config) = &config {
        checks.push(claude(&config.claude_bin).await);
    }
    checks.push(credentials());
    if let Some(config) = &config {
        checks.push(private_dirs(config));
        checks.extend(database(&config.db_path, full));
        checks.push(log_dir(&config.log_dir));
    }
    checks.extend(sounds());
    checks.push(notifications());
    checks
}

async fn claude(bin: &Path) -> Check {
    const NAME: &str = "claude";
    let source = if env("CLAUDE_WORKER_CLAUDE_BIN").is_some() { "CLAUDE_WORKER_CLAUDE_BIN" } else { "PATH" };
    let Some(path) = find_executable(bin) else {
        if bin.components().count() > 1 && bin.exists() {
            return fail(
                NAME,
                format!("{} is not an executable file", bin.display()),
                format!(
                    "make it executable (chmod +x {}) or point CLAUDE_WORKER_CLAUDE_BIN at the real CLI",
                    bin.display()
                ),
            );
        }
        let message = if source == "PATH" {
            format!("{:?} is not on PATH", bin.display().to_string())
        } else {
            format!("CLAUDE_WORKER_CLAUDE_BIN={} does not exist", bin.display())
        };
        return fail(
            NAME,
            message,
            "install Claude Code (npm install -g @anthropic-ai/claude-code), then set CLAUDE_WORKER_CLAUDE_BIN to the \
             absolute path `command -v claude` prints (GUI clients often start servers without your shell's PATH)",
        );
    };
    match claude_version(&path, VERSION_TIMEOUT).await {
        Ok(version) if version.is_empty() => warn(
            NAME,
            format!("{} ({source}) printed no version", path.display()),
            "check that it is the Claude Code CLI: `claude --version` should print its version",
        ),
        Ok(version) => ok(NAME, format!("{} ({source}): {version}", path.display())),
        Err(VersionError::Timeout(after)) => warn(
            NAME,
            format!("{} --version gave no answer within {} s", path.display(), after.as_secs()),
            "run `claude --version` in a terminal: it may be waiting for an update or a first-run prompt",
        ),
        Err(e) => fail(
            NAME,
            format!("{} --version failed: {e}", path.display()),
            "run `claude --version` in a terminal to see why; reinstall Claude Code if it is broken \
             (npm install -g @anthropic-ai/claude-code), and if it was installed with npm, `node` must be on PATH too",
        ),
    }
}

fn credentials() -> Check {
    const NAME: &str = "credentials";
    let mut found: Vec<String> = ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"]
        .into_iter()
        .filter(|name| env(name).is_some())
        .map(|name| format!("{name} in the environment"))
        .collect();
    let home = env("HOME").map(PathBuf::from);
    let config_dir = env("CLAUDE_CONFIG_DIR").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".claude")));
    if let Some(file) = config_dir.map(|d| d.join(".credentials.json"))
        && std::fs::metadata(&file).is_ok_and(|m| m.is_file() && m.len() > 0)
    {
        found.push(format!("a Claude Code login in {}", file.display()));
    }
    if let Some(file) = home.map(|h| h.join(".claude.json"))
        && let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(value) = serde_json::from_str::<Value>(&text)
        && ["oauthAccount", "primaryApiKey"].iter().any(|key| value.get(key).is_some_and(|v| !v.is_null()))
    {
        found.push(format!("a login recorded in {}", file.display()));
    }
    if !found.is_empty() {
        return ok(NAME, format!("found {}", found.join("; ")));
    }
    let message = "no credentials found: no ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_AUTH_TOKEN, \
                   no ~/.claude/.credentials.json, no login in ~/.claude.json";
    let fix = "run `claude` in a terminal and log in (/login), or give the server a key \
               (claude mcp add ... -e ANTHROPIC_API_KEY=...); tasks fail with `auth` until then";
    if cfg!(target_os = "macos") {
        warn(NAME, format!("{message} (a login kept in the macOS Keychain cannot be seen from here)"), fix)
    } else {
        fail(NAME, message, fix)
    }
}

fn database(path: &Path, full: bool) -> Vec<Check> {
    const NAME: &str = "database";
    if !path.exists() {
        return vec![warn(
            NAME,
            format!("no database yet at {}", path.display()),
            "it is created when a server (or `claude-worker work`) first starts; if servers already run, give this \
             command the same CLAUDE_WORKER_HOME or CLAUDE_WORKER_DB as them, or --db",
        )];
    }
    let d: Diagnosis = match Store::diagnose(path, full) {
        Ok(d) => d,
        Err(e) => {
            return vec![fail(
                NAME,
                e.to_string(),
                "check the file's owner and permissions; if it is not a claude-worker database, point \
                 CLAUDE_WORKER_DB elsewhere or move the file away (a new one is created at the next start)",
            )];
        }
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut checks = Vec::new();
    if d.journal_mode.eq_ignore_ascii_case("wal") {
        checks.push(ok(NAME, format!("{} ({}, WAL)", path.display(), human_bytes(size))));
    } else if d.schema_version == 0 {
        checks.push(warn(
            NAME,
            format!("{} is empty or not yet set up (journal mode {})", path.display(), d.journal_mode),
            "start a server once to set it up",
        ));
    } else {
        checks.push(fail(
            NAME,
            format!("{} is in journal mode {:?}, not WAL", path.display(), d.journal_mode),
            "claude-worker needs WAL to share the file between processes: put it on a local disk (not a network \
             share) by setting CLAUDE_WORKER_DB or CLAUDE_WORKER_HOME",
        ));
    }
    checks.push(match d.schema_version.cmp(&d.supported_version) {
        std::cmp::Ordering::Equal => ok("schema", format!("version {} (this binary's)", d.schema_version)),
        std::cmp::Ordering::Less => warn(
            "schema",
            format!("version {}, older than this binary's {}", d.schema_version, d.supported_version),
            "nothing to do: the next server to start migrates it",
        ),
        std::cmp::Ordering::Greater => fail(
            "schema",
            format!(
                "version {}, newer than this binary understands ({}): a newer claude-worker migrated it",
                d.schema_version, d.supported_version
            ),
            "upgrade this claude-worker (cargo install --locked --path . from an up-to-date clone)",
        ),
    });
    let pragma = if d.full_check { "integrity_check" } else { "quick_check" };
    if d.check == ["ok"] {
        checks.push(ok("integrity", format!("{pragma}: ok")));
    } else {
        checks.push(fail(
            "integrity",
            format!("{pragma} found problems: {}", d.check.join("; ")),
            "stop every claude-worker process, copy the file, then rebuild it with \
             `sqlite3 tasks.db .recover | sqlite3 recovered.db` and point CLAUDE_WORKER_DB at the result",
        ));
    }
    if d.schema_version >= 1 {
        checks.push(tasks(path, &d));
        checks.extend(usage_limits(path));
    }
    checks
}

/// The account's usage limits as the database knows them: a pause on, a warning that a limit is
/// near, or the last refusal.
fn usage_limits(path: &Path) -> Vec<Check> {
    const NAME: &str = "usage limit";
    let limits = match Store::open_existing_only(path, None, false).and_then(|mut s| s.usage_limits()) {
        Ok(limits) => limits,
        Err(e) => return vec![warn(NAME, format!("cannot read the usage limits: {e}"), "run doctor again")],
    };
    let now = now_ms();
    let mut checks = Vec::new();
    if let Some(pause) = limits.paused_at(now) {
        checks.push(warn(
            NAME,
            format!(
                "{} (refused at {}; the CLI said it resets at {}): no task starts until then, running ones go on",
                crate::usage_limit::pause_line(pause, now),
                rfc3339(pause.seen_at),
                pause.resets_at.map_or_else(|| "an unknown time".to_owned(), rfc3339)
            ),
            "nothing to do: queued tasks start by themselves then. `claude-worker-inspect resume` tries now;              `claude-worker-inspect cancel` drops what waits",
        ));
    }
    if let Some(line) = limits.warning.as_ref().and_then(|w| crate::usage_limit::warning_line(w, now)) {
        checks.push(warn(
            NAME,
            line,
            "nothing to do: at the limit, queued work pauses and resumes by itself after the reset",
        ));
    }
    if checks.is_empty() {
        checks.push(ok(
            NAME,
            match &limits.last_refusal {
                Some(last) => format!(
                    "not paused (the last refusal, {}, was at {})",
                    crate::usage_limit::kind_words(last.kind.as_deref()),
                    rfc3339(last.seen_at)
                ),
                None => "not paused, no warning".to_owned(),
            },
        ));
    }
    checks
}

fn tasks(path: &Path, d: &Diagnosis) -> Check {
    let total: u64 = d.task_counts.iter().map(|(_, n)| n).sum();
    let count_of = |status: &str| d.task_counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
    let by_status: Vec<String> = d.task_counts.iter().map(|(s, n)| format!("{n} {}", color::status(s))).collect();
    let summary = format!(
        "{total} task{} in {} orchestration{}{}",
        if total == 1 { "" } else { "s" },
        d.orchestrations,
        if d.orchestrations == 1 { "" } else { "s" },
        if by_status.is_empty() { String::new() } else { format!(": {}", by_status.join(", ")) }
    );
    let host = this_host();
    let now = now_ms();
    let mut stuck = Vec::new();
    for claim in &d.running {
        let why = match &claim.owner {
            None => Some("no owner".to_owned()),
            Some(owner) => match liveness(path, owner, &host) {
                Liveness::Alive => None,
                Liveness::Dead => Some(format!("its owner {owner} is gone")),
                Liveness::Unknown => claim
                    .lease_expires_at
                    .filter(|at| *at < now)
                    .map(|at| format!("the lease of {owner} ran out at {}", rfc3339(at))),
            },
        };
        if let Some(why) = why {
            stuck.push(format!("#{} {} ({why})", claim.task_id, claim.task_identifier));
        }
    }
    let executor_alive = others_alive(path, "");
    if !stuck.is_empty() {
        let fix = if executor_alive {
            "a live executor takes them back at its next pass (within one heartbeat); check again in a minute"
        } else {
            "no executor is alive to take them back: start one with `claude-worker work --until-idle` (or open an \
             editor that runs the server)"
        };
        return warn("tasks", format!("{summary}; stuck running: {}", stuck.join(", ")), fix);
    }
    let queued = count_of("pending") + count_of("waiting");
    if queued > 0 && !executor_alive && d.running.is_empty() {
        return warn(
            "tasks",
            format!("{summary}; {queued} queued but no executor is alive on this machine"),
            "start one with `claude-worker work --until-idle`, or open an editor that runs the server",
        );
    }
    ok("tasks", summary)
}

/// Whether servers will accept the database and log directories (see [`crate::files::check_dirs`]).
fn private_dirs(config: &Config) -> Check {
    match crate::files::check_dirs(config) {
        Ok(()) => ok("private", "no other user can write to the database and log directories"),
        Err(refusal) => fail("private", format!("{}: servers refuse to start", refusal.problem()), refusal.fix()),
    }
}

fn log_dir(dir: &Path) -> Check {
    const NAME: &str = "logs";
    if !dir.exists() {
        return warn(
            NAME,
            format!("{} does not exist yet", dir.display()),
            "nothing to do: it is created when a server first starts; if that fails, check that its parent is writable",
        );
    }
    let probe = dir.join(format!(".doctor-probe-{}", std::process::id()));
    if let Err(e) = crate::files::create_new(&probe) {
        return fail(
            NAME,
            format!("cannot write in {}: {e}", dir.display()),
            "give your user write permission on it (chmod u+w), or point CLAUDE_WORKER_LOG_DIR at a writable directory",
        );
    }
    let _ = std::fs::remove_file(&probe);
    let (bytes, task_logs) = dir_size(dir);
    let message = format!("{} ({}, {task_logs} task log files), writable", dir.display(), human_bytes(bytes));
    if bytes > LARGE_LOGS {
        return warn(
            NAME,
            message,
            "delete old finished tasks and their logs: claude-worker-inspect prune --older-than 30d",
        );
    }
    ok(NAME, message)
}

/// Bytes under `dir` (two levels: the global log and the task log directories of every
/// database that shares it, `tasks/` and `tasks-*/`), and how many task logs.
fn dir_size(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut task_logs = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    for entry in entries.filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            bytes += meta.len();
        } else if meta.is_dir()
            && (entry.file_name() == "tasks" || entry.file_name().as_encoded_bytes().starts_with(b"tasks-"))
        {
            for file in std::fs::read_dir(entry.path()).into_iter().flatten().filter_map(Result::ok) {
                if let Ok(meta) = file.metadata()
                    && meta.is_file()
                {
                    bytes += meta.len();
                    task_logs += 1;
                }
            }
        }
    }
    (bytes, task_logs)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A switch as the server reads it: true/1/yes/on or false/0/no/off, `default` when unset.
fn switch(name: &str, default: bool) -> Result<bool, String> {
    match env(name) {
        None => Ok(default),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(value),
        },
    }
}

const SOUND_FILES: [&str; 4] = [
    "CLAUDE_WORKER_START_SOUND",
    "CLAUDE_WORKER_SUCCESS_SOUND",
    "CLAUDE_WORKER_FAILURE_SOUND",
    "CLAUDE_WORKER_ORCHESTRATION_SOUND",
];

fn sounds() -> Vec<Check> {
    const NAME: &str = "sounds";
    let enabled = match switch("CLAUDE_WORKER_ENABLE_SOUNDS", true) {
        Ok(enabled) => enabled,
        Err(value) => {
            return vec![fail(
                NAME,
                format!("CLAUDE_WORKER_ENABLE_SOUNDS={value:?} is not true or false"),
                "set it to true or false (or unset it: sounds are on by default)",
            )];
        }
    };
    if !enabled {
        return vec![ok(NAME, "off (CLAUDE_WORKER_ENABLE_SOUNDS is false)")];
    }
    let mut checks = Vec::new();
    let players: &[&str] =
        if cfg!(target_os = "macos") { &["afplay"] } else { &["paplay", "pw-play", "aplay", "mpv", "ffplay"] };
    let found: Vec<String> =
        players.iter().filter_map(|p| find_executable(Path::new(p))).map(|p| p.display().to_string()).collect();
    checks.push(if found.is_empty() {
        warn(
            NAME,
            format!("on, but no player on PATH ({})", players.join(", ")),
            "install one (pulseaudio-utils gives paplay, pipewire gives pw-play, alsa-utils gives aplay), build \
             claude-worker with native playback, or set CLAUDE_WORKER_ENABLE_SOUNDS=false",
        )
    } else {
        ok(NAME, format!("on; players: {}", found.join(", ")))
    });
    for name in SOUND_FILES {
        if let Some(file) = env(name) {
            // As the server reads it: a leading ~/ is the home directory.
            let path = match (file.strip_prefix("~/"), env("HOME")) {
                (Some(rest), Some(home)) => Path::new(&home).join(rest),
                _ => std::path::PathBuf::from(&file),
            };
            let readable = std::fs::File::open(&path).and_then(|f| f.metadata()).is_ok_and(|m| m.is_file());
            if !readable {
                checks.push(fail(
                    "sounds",
                    format!("{name}={file} cannot be read"),
                    format!("point {name} at a readable sound file (WAV), or unset it for the built-in sound"),
                ));
            }
        }
    }
    checks
}

fn notifications() -> Check {
    const NAME: &str = "notifications";
    match switch("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", true) {
        Err(value) => fail(
            NAME,
            format!("CLAUDE_WORKER_ENABLE_NOTIFICATIONS={value:?} is not true or false"),
            "set it to true or false (or unset it: notifications are on by default)",
        ),
        Ok(false) => ok(NAME, "off (CLAUDE_WORKER_ENABLE_NOTIFICATIONS is false)"),
        Ok(true) if !cfg!(target_os = "linux") => ok(NAME, "on"),
        Ok(true) => {
            if env("DBUS_SESSION_BUS_ADDRESS").is_some() {
                return ok(NAME, "on; D-Bus session bus from DBUS_SESSION_BUS_ADDRESS");
            }
            if let Some(socket) = env("XDG_RUNTIME_DIR").map(|d| Path::new(&d).join("bus"))
                && socket.exists()
            {
                return ok(NAME, format!("on; D-Bus session bus at {}", socket.display()));
            }
            warn(
                NAME,
                "on, but no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset): notifications will not show",
                "run the server from a desktop session, export DBUS_SESSION_BUS_ADDRESS (usually \
                 unix:path=/run/user/$UID/bus), or set CLAUDE_WORKER_ENABLE_NOTIFICATIONS=false",
            )
        }
    }
}

pub fn checks_json(checks: &[Check]) -> Value {
    let count = |level| checks.iter().filter(|c| c.level == level).count();
    json!({
        "ok": count(Level::Fail) == 0,
        "failures": count(Level::Fail),
        "warnings": count(Level::Warn),
        "checks": checks.iter().map(|c| json!({
            "name": c.name,
            "status": c.level.as_str(),
            "message": c.message,
            "fix": c.fix,
        })).collect::<Vec<_>>(),
    })
}

pub fn checks_text(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let level = c.level.as_str();
        // Pad before colouring: escape codes have no width.
        let padded = format!("{level:<4}");
        let painted = padded.replacen(level, &color::status(level), 1);
        out.push_str(&format!("{painted}  {:<width$}  {}\n", c.name, c.message));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:<width$}  fix: {fix}\n", ""));
        }
    }
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warns = checks.iter().filter(|c| c.level == Level::Warn).count();
    out.push_str(&match (fails, warns) {
        (0, 0) => "\nall checks passed\n".to_owned(),
        (0, w) => format!("\nno failures, {w} warning{}\n", if w == 1 { "" } else { "s" }),
        (f, w) => {
            format!("\n{f} failure{}, {w} warning{}\n", if f == 1 { "" } else { "s" }, if w == 1 { "" } else { "s" })
        }
    });
    out
}

pub fn has_failure(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.level == Level::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn text_ends_with_a_verdict_and_shows_fixes() {
        let checks = vec![ok("a", "fine"), fail("bb", "broken", "mend it")];
        let text = checks_text(&checks);
        assert!(text.contains("ok    a   fine"), "{text}");
        assert!(text.contains("fail  bb  broken\n          fix: mend it"), "{text}");
        assert!(text.ends_with("1 failure, 0 warnings\n"), "{text}");
        assert!(has_failure(&checks));
        assert_eq!(checks_json(&checks)["failures"], 1);
    }
}
