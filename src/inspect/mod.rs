//! `claude-worker-inspect`: the side CLI for people. It reads the same database as the servers
//! (safe while they run: WAL readers never block writers) and prints readable tables, a
//! dependency tree, logs, or JSON with `--json`; it can also cancel and retry. It runs nothing
//! itself: a cancelled running task is stopped by the server that runs it, at its next heartbeat.
//!
//! Beyond looking: `cost` (spend by task, orchestration, model and day), `doctor` (checks the
//! environment and says how to fix it), `prune` (deletes old finished work and its logs) and
//! `completions` (shell completion scripts). Colour on terminals only (see `color.rs`).

pub(crate) mod color;
mod cost;
mod doctor;
mod duration;
mod prune;
mod render;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, Parser, Subcommand};
use serde_json::json;

use crate::config::Config;
use crate::model::{OrchestrationStatus, TaskRef, TaskStatus};
use crate::service::{Service, ServiceError, Status, Target};
use crate::store::{Db, OrchestrationFilter, Store, StoreError, TaskFilter};

#[derive(Parser)]
#[command(
    name = "claude-worker-inspect",
    version,
    about = "Look at and manage claude-worker's tasks and orchestrations"
)]
pub struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The database (default: $CLAUDE_WORKER_DB, else $CLAUDE_WORKER_HOME/tasks.db).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = color::ColorChoice::Auto)]
    color: color::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow work live until it ends: an orchestration id, a task (identifier or #id), or by
    /// default every unfinished orchestration. Exit 0 when everything completed; Ctrl-C stops
    /// watching and leaves the work running.
    Watch { target: Option<String> },
    /// List tasks, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        orchestration: Option<i64>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one task (identifier or #id).
    Status { task: String },
    /// List orchestrations, newest first.
    ListOrchestrations {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show an orchestration's tasks as a dependency tree.
    OrchestrationStatus { id: i64 },
    /// Print a task's summary log (or its detailed log).
    Logs {
        task: String,
        #[arg(long)]
        detailed: bool,
        /// Keep printing as the log grows, until the task finished.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a task (its dependents are skipped) or, with --orchestration, a whole orchestration.
    Cancel {
        task: Option<String>,
        #[arg(long)]
        orchestration: Option<i64>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run a failed or cancelled task again.
    Retry { task: String },
    /// What tasks spent: by task, orchestration, model and day (UTC), with tokens and totals.
    Cost {
        /// Only tasks that ended (or, still running, started) within this long: 30m, 12h, 7d, 2w.
        #[arg(long, value_parser = duration::parse)]
        since: Option<Duration>,
        /// Only this orchestration.
        #[arg(long)]
        orchestration: Option<i64>,
    },
    /// Check the claude binary, credentials, database, logs, sounds and notifications, and say
    /// how to fix each problem. Exits 1 when a check fails.
    Doctor {
        /// Run PRAGMA integrity_check (reads the whole file) instead of quick_check.
        #[arg(long)]
        full: bool,
    },
    /// Delete orchestrations whose every task finished before the cutoff, with their tasks,
    /// events, dependency edges and log files. Does not VACUUM (see README).
    Prune {
        /// How long ago the tasks must have finished: 30m, 12h, 7d, 2w.
        #[arg(long, value_parser = duration::parse)]
        older_than: Duration,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a shell completion script (bash, zsh or fish; README says where to put it).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("claude-worker-inspect: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    color::init(cli.color, cli.json);
    // These two need no database, and doctor must run whatever state the settings are in.
    match cli.command {
        Command::Completions { shell } => return completions(shell, cli.json),
        Command::Doctor { full } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let checks = runtime.block_on(doctor::run(cli.db, full));
            let mut out = std::io::stdout().lock();
            if cli.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&doctor::checks_json(&checks))?)?;
            } else {
                write!(out, "{}", doctor::checks_text(&checks))?;
            }
            return Ok(if doctor::has_failure(&checks) {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            });
        }
        _ => {}
    }
    let mut config = Config::from_env()?;
    if let Some(db) = cli.db {
        config.db_path = db;
    }
    let config = Arc::new(config);
    // Its cancels and retries are task events too: one line each in the global log.
    let _log_guard = crate::logs::init_tracing(&config);
    let store = match Store::open_existing_only(&config.db_path) {
        Ok(store) => store,
        Err(e @ StoreError::Missing(_)) => bail!("{e}"),
        Err(e) => return Err(e.into()),
    };
    let db = Db::spawn(store).context("cannot start the database thread")?;
    let service = Service::new(db.clone(), config.clone(), None);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let json = cli.json;
    let print = |value: serde_json::Value, text: String| -> anyhow::Result<std::process::ExitCode> {
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        } else {
            write!(out, "{text}")?;
        }
        Ok(std::process::ExitCode::SUCCESS)
    };
    match cli.command {
        Command::Cost { since, orchestration } => {
            let since = since.map(|ago| duration::before(crate::time::now_ms(), ago));
            let rows = runtime.block_on(db.call(move |store| store.cost_rows(since, orchestration)))?;
            let report = cost::report(rows, since, orchestration);
            print(cost::report_json(&report), cost::report_text(&report))
        }
        Command::Prune { older_than, dry_run } => {
            let (value, text) = runtime.block_on(prune::run(&db, &config, older_than, dry_run))?;
            print(value, text)
        }
        Command::Watch { target } => runtime.block_on(async {
            let interrupted = crate::live::interrupts()?;
            let targets = watch_targets(&service, target).await?;
            let output = crate::live::Output { color: color::enabled(), json };
            crate::live::watch(&service, &config.db_path, &targets, output, interrupted).await
        }),
        other => runtime.block_on(command(&service, other, cli.json)),
    }
}

/// Prints the completion script for `shell` (as `{"shell", "script"}` with `--json`).
fn completions(shell: clap_complete::Shell, json: bool) -> anyhow::Result<std::process::ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "claude-worker-inspect", &mut script);
    let mut out = std::io::stdout().lock();
    if json {
        let value = json!({ "shell": shell.to_string(), "script": String::from_utf8_lossy(&script) });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        out.write_all(&script)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What `watch` follows: `N` is an orchestration, `#N` or a name a task; by default every
/// unfinished orchestration, or the latest one when all have finished.
async fn watch_targets(service: &Service, target: Option<String>) -> anyhow::Result<Vec<Target>> {
    if let Some(target) = target {
        return Ok(vec![match target.parse::<i64>() {
            Ok(id) => Target::Orchestration(id),
            Err(_) => Target::Task(TaskRef::parse(&target)),
        }]);
    }
    let all = service.list_orchestrations(OrchestrationFilter { status: None, limit: 1000 }).await.map_err(friendly)?;
    let unfinished: Vec<Target> = all
        .iter()
        .filter(|o| o.counters.unfinished() > 0)
        .map(|o| Target::Orchestration(o.orchestration_id))
        .rev()
        .collect();
    if !unfinished.is_empty() {
        return Ok(unfinished);
    }
    match all.first() {
        Some(latest) => Ok(vec![Target::Orchestration(latest.orchestration_id)]),
        None => bail!("nothing to watch: no task has been queued yet"),
    }
}

fn parse_status<T>(text: Option<String>, parse: fn(&str) -> Option<T>, allowed: &str) -> anyhow::Result<Option<T>> {
    match text {
        None => Ok(None),
        Some(t) => match parse(&t) {
            Some(s) => Ok(Some(s)),
            None => bail!("--status {t:?} is not one of {allowed}"),
        },
    }
}

/// The error in this CLI's words: the service names the MCP tools a model would use.
fn friendly(e: ServiceError) -> anyhow::Error {
    let message = e
        .to_string()
        .replace("list_tasks shows", "`claude-worker-inspect list` shows")
        .replace("list_orchestrations shows", "`claude-worker-inspect list-orchestrations` shows")
        .replace("get_status shows", "`claude-worker-inspect status` shows");
    anyhow::anyhow!("{message}")
}

async fn command(service: &Service, command: Command, json: bool) -> anyhow::Result<std::process::ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::List { status, orchestration, limit } => {
            let status = parse_status(
                status,
                TaskStatus::parse,
                "waiting, pending, running, completed, failed, cancelled, skipped",
            )?;
            let tasks = service
                .list_tasks(TaskFilter { status, orchestration_id: orchestration, limit })
                .await
                .map_err(friendly)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&render::tasks_json(&tasks))?)?;
            } else {
                writeln!(out, "{}", render::tasks_table(&tasks))?;
            }
        }
        Command::Status { task } => {
            let status = service.status(&Target::Task(TaskRef::parse(&task))).await.map_err(friendly)?;
            let Status::Task(view) = status else { bail!("not a task") };
            let history = service.history(TaskRef::Id(view.detail.task.task_id)).await.map_err(friendly)?;
            if json {
                let mut value = render::task_json(&view);
                value["events"] = render::events_json(&history);
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(out, "{}", render::task_text(&view))?;
                write!(out, "{}", render::events_text(&history))?;
            }
        }
        Command::ListOrchestrations { status, limit } => {
            let status =
                parse_status(status, OrchestrationStatus::parse, "pending, running, completed, failed, cancelled")?;
            let list = service.list_orchestrations(OrchestrationFilter { status, limit }).await.map_err(friendly)?;
            if json {
                let items: Vec<_> = list.iter().map(render::summary_json).collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({ "orchestrations": items, "count": items.len() }))?
                )?;
            } else {
                writeln!(out, "{}", render::orchestrations_table(&list))?;
            }
        }
        Command::OrchestrationStatus { id } => {
            let status = service.status(&Target::Orchestration(id)).await.map_err(friendly)?;
            let Status::Orchestration(detail) = status else { bail!("not an orchestration") };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&render::orchestration_json(&detail))?)?;
            } else {
                write!(out, "{}", render::orchestration_tree(&detail))?;
            }
        }
        Command::Logs { task, detailed, follow } => {
            let task_ref = TaskRef::parse(&task);
            let status = service.status(&Target::Task(task_ref.clone())).await.map_err(friendly)?;
            let Status::Task(view) = status else { bail!("not a task") };
            let path = if detailed { view.logs.detailed.clone() } else { view.logs.summary.clone() };
            drop(out);
            follow_log(service, &task_ref, &path, follow).await?;
        }
        Command::Cancel { task, orchestration, reason } => {
            let target = match (task, orchestration) {
                (Some(t), None) => Target::Task(TaskRef::parse(&t)),
                (None, Some(id)) => Target::Orchestration(id),
                _ => bail!("give a task, or --orchestration <id>, not both"),
            };
            let outcome = service.cancel(target, reason).await.map_err(friendly)?;
            let stopping: Vec<i64> = outcome.stopping.iter().map(|(id, _)| *id).collect();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "orchestration_id": outcome.orchestration_id,
                        "cancelled": outcome.cancelled,
                        "skipped": outcome.skipped,
                        "stopping": stopping,
                    }))?
                )?;
            } else {
                writeln!(out, "cancelled: {:?}\nskipped: {:?}", outcome.cancelled, outcome.skipped)?;
                if !stopping.is_empty() {
                    writeln!(out, "stopping (running; the server that runs them stops them): {stopping:?}")?;
                }
            }
        }
        Command::Cost { .. }
        | Command::Doctor { .. }
        | Command::Prune { .. }
        | Command::Completions { .. }
        | Command::Watch { .. } => {
            bail!("handled before")
        }
        Command::Retry { task } => {
            let outcome = service.retry(TaskRef::parse(&task)).await.map_err(friendly)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "task_id": outcome.task_id,
                        "status": outcome.status.as_str(),
                        "reopened": outcome.reopened,
                    }))?
                )?;
            } else {
                writeln!(out, "task #{} is {}; reopened: {:?}", outcome.task_id, outcome.status, outcome.reopened)?;
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Prints a log file, and with `follow` keeps printing what is appended until the task finished.
async fn follow_log(service: &Service, task: &TaskRef, path: &std::path::Path, follow: bool) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut offset = 0u64;
    loop {
        if let Ok(mut file) = std::fs::File::open(path) {
            file.seek(SeekFrom::Start(offset))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            offset += bytes.len() as u64;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        } else if !follow {
            bail!("no log yet at {}: the task has not started", path.display());
        }
        if !follow {
            return Ok(());
        }
        let status = service.status(&Target::Task(task.clone())).await.map_err(friendly)?;
        if status.is_finished() {
            // One last read for what was written as it finished.
            if let Ok(mut file) = std::fs::File::open(path) {
                file.seek(SeekFrom::Start(offset))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                std::io::stdout().lock().write_all(&bytes)?;
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
