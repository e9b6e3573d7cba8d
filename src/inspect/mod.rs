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

/// The pictures `graph` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
}

#[derive(Subcommand)]
enum Command {
    /// Follow work live until it ends: an orchestration (id or name), a task (#id or
    /// identifier), or by default every unfinished orchestration. Exit 0 when everything
    /// completed; Ctrl-C stops watching and leaves the work running.
    Watch {
        /// An orchestration id or name, or a task's #id or identifier (default: every unfinished
        /// orchestration of the current directory's project).
        target: Option<String>,
        /// Without a target: every project's unfinished orchestrations.
        #[arg(long)]
        all_projects: bool,
    },
    /// List tasks, newest first.
    List {
        /// Only tasks in this state: waiting, pending, running, completed, failed, cancelled or
        /// skipped.
        #[arg(long)]
        status: Option<String>,
        /// Only the tasks of this orchestration (id or name).
        #[arg(long)]
        orchestration: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Every project's tasks, not only those of the current directory's project.
        #[arg(long)]
        all_projects: bool,
    },
    /// Show one task: its settings, result or error, and history.
    Status {
        /// The task: an identifier, #id or id.
        task: String,
    },
    /// List orchestrations, newest first.
    ListOrchestrations {
        /// Only orchestrations in this state: pending, running, completed, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Every project's orchestrations, not only those of the current directory's project.
        #[arg(long)]
        all_projects: bool,
    },
    /// Show an orchestration's tasks as a dependency tree.
    OrchestrationStatus {
        /// The orchestration: its id or name.
        orchestration: String,
    },
    /// Print an orchestration's dependency graph with its tasks' states: Mermaid (pastes into a
    /// pull request or an issue), Graphviz DOT, or SVG (opens anywhere); the dashboard's layout.
    Graph {
        /// The orchestration: its id or name.
        orchestration: String,
        /// mermaid, dot or svg.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Print a task's summary log (or its detailed log).
    Logs {
        /// The task: an identifier, #id or id.
        task: String,
        /// The detailed log (everything claude printed) instead of the summary.
        #[arg(long)]
        detailed: bool,
        /// Keep printing as the log grows, until the task finished.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a task (its dependents are skipped) or, with --orchestration, a whole orchestration.
    Cancel {
        /// The task: an identifier, #id or id.
        task: Option<String>,
        /// Cancel every unfinished task of this orchestration (id or name) instead.
        #[arg(long)]
        orchestration: Option<String>,
        /// Why, kept in the tasks' history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run a failed or cancelled task again (its skipped dependents reopen), or with
    /// --orchestration every failed, cancelled and skipped task of an orchestration. Starts a
    /// background worker when none is running.
    Retry {
        /// The task: an identifier, #id or id.
        task: Option<String>,
        /// Retry every failed, cancelled and skipped task of this orchestration (id or name).
        #[arg(long)]
        orchestration: Option<String>,
    },
    /// Set an orchestration's budget and carry on: what the old budget stopped (tasks it kept
    /// from starting or stopped, and their dependents skipped because of them) runs again.
    /// Starts a background worker when none is running.
    Budget {
        /// The orchestration: its id or name.
        orchestration: String,
        /// The new budget in dollars, for all its tasks together (at most 10000).
        #[arg(allow_negative_numbers = true)]
        usd: f64,
    },
    /// Merge an orchestration's integration branch (claude-worker/<orchestration>, the merge
    /// of its tasks' results) into the current branch of your checkout. Refused, with the
    /// reason and nothing changed, when the checkout has uncommitted changes or the merge would
    /// conflict.
    Merge {
        /// The orchestration: its id or name.
        orchestration: String,
    },
    /// Try now: lift the pause the account's usage limit put on every queued task (running
    /// executors start them at once; a background worker is started when none is running). A
    /// refusal pauses again. To drop what waits instead, cancel it.
    Resume,
    /// What tasks spent: by task, orchestration, model and day (UTC), with tokens and totals.
    Cost {
        /// Only tasks that ended (or, still running, started) within this long: 30m, 12h, 7d, 2w.
        #[arg(long, value_parser = duration::parse)]
        since: Option<Duration>,
        /// Only this orchestration (id or name).
        #[arg(long)]
        orchestration: Option<String>,
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
        /// The shell to complete for.
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
            eprintln!("claude-worker-inspect: {}", crate::text::in_cli_words(&format!("{e:#}")));
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
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            // An invalid setting: the same exit code as claude-worker's.
            eprintln!("claude-worker-inspect: {e}");
            return Ok(std::process::ExitCode::from(2));
        }
    };
    if let Some(db) = cli.db {
        config.db_path = db;
    }
    let config = Arc::new(config);
    // Before the global log is written (see `crate::files`).
    crate::files::check_dirs(&config)?;
    // Its cancels and retries are task events too: one line each in the global log.
    let _log_guard = crate::logs::init_tracing(&config);
    // Only the commands that write have the database checked at open: reads change nothing.
    let writes = matches!(
        cli.command,
        Command::Cancel { .. }
            | Command::Retry { .. }
            | Command::Budget { .. }
            | Command::Prune { .. }
            | Command::Resume
    );
    let store = match Store::open_existing_only(&config.db_path, config.max_db_pages, writes) {
        Ok(store) => store,
        Err(e @ StoreError::Missing(_)) => bail!("{e}"),
        Err(e) => return Err(e.into()),
    };
    let db = Db::spawn(store).context("cannot start the database thread")?;
    let service = Service::new(db.clone(), config.clone(), None).for_person();
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
            let orchestration = match orchestration {
                Some(text) => Some(runtime.block_on(service.find_orchestration(&text))?),
                None => None,
            };
            let rows = runtime.block_on(db.call(move |store| store.cost_rows(since, orchestration)))?;
            let report = cost::report(rows, since, orchestration);
            print(cost::report_json(&report), cost::report_text(&report))
        }
        Command::Prune { older_than, dry_run } => {
            let (value, text) = runtime.block_on(prune::run(&db, &config, older_than, dry_run))?;
            print(value, text)
        }
        Command::Watch { target, all_projects } => runtime.block_on(async {
            let interrupted = crate::live::interrupts()?;
            let targets = watch_targets(&service, target, all_projects).await?;
            let output = crate::live::Output { color: color::enabled(), json };
            crate::live::watch(&service, &config.db_path, &targets, output, interrupted).await
        }),
        other => runtime.block_on(command(&service, &config.db_path, other, cli.json)),
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

/// What `watch` follows: `N` is an orchestration id, `#N` a task; a name is an orchestration
/// when one has it, else a task identifier. By default every unfinished orchestration, or the
/// latest one when all have finished: of the caller's project, or of all with `all_projects`.
async fn watch_targets(service: &Service, target: Option<String>, all_projects: bool) -> anyhow::Result<Vec<Target>> {
    if let Some(target) = target {
        let target = target.trim();
        if target.starts_with('#') {
            return Ok(vec![Target::Task(TaskRef::parse(target))]);
        }
        if let Ok(id) = target.parse::<i64>() {
            return Ok(vec![Target::Orchestration(id)]);
        }
        if let Some(id) = service.orchestration_named(target).await? {
            return Ok(vec![Target::Orchestration(id)]);
        }
        let task = Target::Task(TaskRef::parse(target));
        return match service.status(&task).await {
            Ok(_) => Ok(vec![task]),
            Err(ServiceError::NotFound(_)) => bail!(
                "no orchestration or task is named {}: give an orchestration id or name, or a task's #id or \
                 identifier (`claude-worker-inspect list-orchestrations` and `list` show the stored ones)",
                crate::graph::shown(target)
            ),
            Err(e) => Err(e.into()),
        };
    }
    let filter = OrchestrationFilter { status: None, project: service.listed_project(all_projects), limit: 1000 };
    let all = service.list_orchestrations(filter).await?;
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
        None if all_projects => bail!("nothing to watch: no task has been queued yet"),
        None => bail!(
            "nothing to watch: no task has been queued in this project ({}) yet; --all-projects watches every \
             project's work",
            service.project()
        ),
    }
}

/// The lines that say the account's usage limit pauses the queue (when `pause` and it does) and
/// that a limit is near (a current warning), each ending in a newline; empty when neither.
async fn limit_lines(service: &Service, pause: bool) -> anyhow::Result<String> {
    let limits = service.usage_limits().await?;
    let now = crate::time::now_ms();
    let mut text = String::new();
    if let Some(p) = limits.paused_at(now).filter(|_| pause) {
        text.push_str(&color::paint(
            &crate::usage_limit::pause_line(p, now),
            anstyle::AnsiColor::Yellow.on_default().bold(),
        ));
        text.push('\n');
    }
    if let Some(line) = limits.warning.as_ref().and_then(|w| crate::usage_limit::warning_line(w, now)) {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
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

async fn command(
    service: &Service,
    db_path: &std::path::Path,
    command: Command,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::List { status, orchestration, limit, all_projects } => {
            let status = parse_status(
                status,
                TaskStatus::parse,
                "waiting, pending, running, completed, failed, cancelled, skipped",
            )?;
            let orchestration_id = match orchestration {
                Some(text) => Some(service.find_orchestration(&text).await?),
                None => None,
            };
            // An orchestration given by id or name is listed whole.
            let all_projects = all_projects || orchestration_id.is_some();
            let project = service.listed_project(all_projects);
            let tasks = service.list_tasks(TaskFilter { status, orchestration_id, project, limit }).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&render::tasks_json(&tasks))?)?;
            } else {
                writeln!(out, "{}", render::tasks_table(&tasks, all_projects))?;
                if tasks.is_empty() && !all_projects {
                    writeln!(out, "(in project {}; --all-projects lists every project's)", service.project())?;
                }
                write!(out, "{}", limit_lines(service, true).await?)?;
            }
        }
        Command::Status { task } => {
            let status = service.status(&Target::Task(TaskRef::parse(&task))).await?;
            let Status::Task(view) = status else { bail!("not a task") };
            let history = service.history(TaskRef::Id(view.detail.task.task_id)).await?;
            if json {
                let mut value = render::task_json(&view);
                let now = crate::time::now_ms();
                let waits = matches!(view.detail.task.status, TaskStatus::Pending | TaskStatus::Waiting);
                if let Some(pause) = service.usage_limits().await?.paused_at(now).filter(|_| waits) {
                    value["paused_until"] = json!(crate::time::rfc3339(pause.until));
                    value["paused_reason"] = json!(crate::usage_limit::pause_line(pause, now));
                }
                value["events"] = render::events_json(&history);
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(out, "{}", render::task_text(&view))?;
                // The pause concerns a task that still waits to start.
                let waits = matches!(view.detail.task.status, TaskStatus::Pending | TaskStatus::Waiting);
                write!(out, "{}", limit_lines(service, waits).await?)?;
                write!(out, "{}", render::events_text(&history))?;
            }
        }
        Command::ListOrchestrations { status, limit, all_projects } => {
            let status =
                parse_status(status, OrchestrationStatus::parse, "pending, running, completed, failed, cancelled")?;
            let project = service.listed_project(all_projects);
            let list = service.list_orchestrations(OrchestrationFilter { status, project, limit }).await?;
            if json {
                let items: Vec<_> = list.iter().map(render::summary_json).collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({ "orchestrations": items, "count": items.len() }))?
                )?;
            } else {
                writeln!(out, "{}", render::orchestrations_table(&list, all_projects))?;
                if list.is_empty() && !all_projects {
                    writeln!(out, "(in project {}; --all-projects lists every project's)", service.project())?;
                }
                write!(out, "{}", limit_lines(service, true).await?)?;
            }
        }
        Command::OrchestrationStatus { orchestration } => {
            let id = service.find_orchestration(&orchestration).await?;
            let status = service.status(&Target::Orchestration(id)).await?;
            let Status::Orchestration(detail) = status else { bail!("not an orchestration") };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&render::orchestration_json(&detail))?)?;
            } else {
                write!(out, "{}", render::orchestration_tree(&detail))?;
                write!(out, "{}", limit_lines(service, detail.summary.counters.unfinished() > 0).await?)?;
            }
        }
        Command::Graph { orchestration, format } => {
            let id = service.find_orchestration(&orchestration).await?;
            let Status::Orchestration(detail) = service.status(&Target::Orchestration(id)).await? else {
                bail!("not an orchestration")
            };
            let picture = crate::drawing::Picture::of(&detail, crate::time::now_ms());
            let text = match format {
                GraphFormat::Mermaid => crate::drawing::mermaid(&picture),
                GraphFormat::Dot => crate::drawing::dot(&picture),
                GraphFormat::Svg => crate::drawing::svg(&picture),
            };
            write!(out, "{text}")?;
        }
        Command::Logs { task, detailed, follow } => {
            let status = service.status(&Target::Task(TaskRef::parse(&task))).await?;
            let Status::Task(view) = status else { bail!("not a task") };
            let task_id = view.detail.task.task_id;
            let path = if detailed { view.logs.detailed.clone() } else { view.logs.summary.clone() };
            drop(out);
            let mut sink = if json {
                LogSink::Json { task_id, log: if detailed { "detailed" } else { "summary" }, partial: Vec::new() }
            } else {
                LogSink::Raw
            };
            follow_log(service, task_id, &path, follow, &mut sink).await?;
        }
        Command::Cancel { task, orchestration, reason } => {
            let target = match (task, orchestration) {
                (Some(t), None) => Target::Task(TaskRef::parse(&t)),
                (None, Some(o)) => Target::Orchestration(service.find_orchestration(&o).await?),
                (None, None) => {
                    bail!("say what to cancel: a task (identifier or #id), or --orchestration <id or name>")
                }
                (Some(_), Some(_)) => bail!("give a task or --orchestration <id or name>, not both"),
            };
            let outcome = service.cancel(target, reason).await?;
            if json {
                let stopping: Vec<i64> = outcome.stopping.iter().map(|(id, _)| *id).collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "orchestration_id": outcome.orchestration_id,
                        "cancelled": outcome.cancelled,
                        "skipped": outcome.skipped,
                        "stopping": stopping,
                        "skipped_when_stopped": outcome.skipped_when_stopped,
                        "message": crate::text::cancel_summary(&outcome),
                    }))?
                )?;
            } else {
                writeln!(out, "{}", crate::text::cancel_summary(&outcome))?;
            }
        }
        Command::Resume => {
            let resumed = service.resume_now().await?;
            let now = crate::time::now_ms();
            if resumed.is_some() {
                // The lifted work must run without an editor open.
                crate::terminal::ensure_executor(db_path);
            }
            let message = crate::usage_limit::resumed_sentence(resumed.as_ref(), now);
            if json {
                let value = json!({
                    "resumed": resumed.is_some(),
                    "paused_until": resumed.as_ref().map(|p| crate::time::rfc3339(p.until)),
                    "kind": resumed.as_ref().and_then(|p| p.kind.clone()),
                    "message": message,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(out, "{message}")?;
            }
        }
        Command::Cost { .. }
        | Command::Doctor { .. }
        | Command::Prune { .. }
        | Command::Completions { .. }
        | Command::Watch { .. } => {
            bail!("handled before")
        }
        Command::Merge { orchestration } => {
            let id = service.find_orchestration(&orchestration).await?;
            let merged = service.merge_into_checkout(id).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&json!({ "orchestration_id": id, "message": merged }))?
                )?;
            } else {
                writeln!(out, "{merged}")?;
            }
        }
        Command::Budget { orchestration, usd } => {
            crate::budget::check("the budget", usd).map_err(anyhow::Error::msg)?;
            let id = service.find_orchestration(&orchestration).await?;
            let raise = service.set_budget(id, usd).await?;
            // What was put back in line must run without an editor open.
            if !raise.tasks.is_empty() {
                crate::terminal::ensure_executor(db_path);
            }
            let message = crate::text::raise_summary(&raise);
            if json {
                let value = json!({
                    "orchestration_id": raise.orchestration_id,
                    "max_budget_usd": raise.budget_usd,
                    "cost_usd": crate::model::round_usd(raise.spent_usd),
                    "tasks": retried_json(&raise.tasks),
                    "message": message,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(out, "{message}")?;
            }
        }
        Command::Retry { task, orchestration } => {
            // The same shape as the MCP tool's answer: task_id and status for a single task.
            let (single, orchestration_id, tasks) = match (task, orchestration) {
                (Some(task), None) => {
                    let outcome = service.retry(TaskRef::parse(&task)).await?;
                    (Some((outcome.task_id, outcome.status)), outcome.orchestration_id, outcome.tasks)
                }
                (None, Some(orchestration)) => {
                    let id = service.find_orchestration(&orchestration).await?;
                    let outcome = service.retry_orchestration(id).await?;
                    (None, outcome.orchestration_id, outcome.tasks)
                }
                (None, None) => bail!("say what to retry: a task (identifier or #id), or --orchestration <id or name>"),
                (Some(_), Some(_)) => bail!("give a task or --orchestration <id or name>, not both"),
            };
            // The retried work must run without an editor open.
            crate::terminal::ensure_executor(db_path);
            let message = crate::text::retry_summary(single.is_none().then_some(orchestration_id), &tasks);
            if json {
                let reopened: Vec<i64> =
                    tasks.iter().filter(|t| t.was == TaskStatus::Skipped).map(|t| t.task_id).collect();
                let mut value = json!({
                    "orchestration_id": orchestration_id,
                    "reopened": reopened,
                    "tasks": retried_json(&tasks),
                    "message": message,
                });
                if let Some((task_id, status)) = single {
                    value["task_id"] = json!(task_id);
                    value["status"] = json!(status.as_str());
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(out, "{message}")?;
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The tasks a retry or a raise put back in line, as JSON.
fn retried_json(tasks: &[crate::store::RetriedTask]) -> serde_json::Value {
    tasks
        .iter()
        .map(|t| {
            json!({
                "task_id": t.task_id,
                "task_identifier": t.task_identifier,
                "was": t.was.as_str(),
                "status": t.status.as_str(),
            })
        })
        .collect()
}

/// Where `logs` prints what it reads: the bytes as they are, or with `--json` one JSON object
/// per line (`{"task_id", "log", "line"}`; invalid UTF-8 replaced).
enum LogSink {
    Raw,
    Json { task_id: i64, log: &'static str, partial: Vec<u8> },
}

impl LogSink {
    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self {
            LogSink::Raw => out.write_all(bytes)?,
            LogSink::Json { task_id, log, partial } => {
                partial.extend_from_slice(bytes);
                while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line[..end]);
                    writeln!(out, "{}", json!({ "task_id": task_id, "log": log, "line": text }))?;
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    /// The last line, when the log does not end with a line break.
    fn finish(&mut self) -> anyhow::Result<()> {
        if let LogSink::Json { partial, .. } = self
            && !partial.is_empty()
        {
            partial.push(b'\n');
            return self.write(&[]);
        }
        Ok(())
    }
}

/// Prints a log file, and with `follow` keeps printing what is appended until the task finished.
async fn follow_log(
    service: &Service,
    task_id: i64,
    path: &std::path::Path,
    follow: bool,
    sink: &mut LogSink,
) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut offset = 0u64;
    let mut read_new = |offset: &mut u64| -> anyhow::Result<bool> {
        // Never through a link planted at the log's path.
        let Ok(mut file) = crate::files::open_read(path) else { return Ok(false) };
        file.seek(SeekFrom::Start(*offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        *offset += bytes.len() as u64;
        sink.write(&bytes)?;
        Ok(true)
    };
    loop {
        if !read_new(&mut offset)? && !follow {
            bail!("no log yet at {}: the task has not started", path.display());
        }
        if !follow {
            break;
        }
        let status = service.status(&Target::Task(TaskRef::Id(task_id))).await?;
        if status.is_finished() {
            // One last read for what was written as it finished.
            read_new(&mut offset)?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sink.finish()
}
