//! The terminal workflow: `claude-worker run` queues one task, `claude-worker orchestrate` a
//! whole workflow file, and both return at once (or watch with `--watch` / `--wait`, see
//! [`crate::live`]). They go through the same [`Service`] as the MCP tools, so the same checks
//! apply and a refused request stores nothing. Queued work must start without any editor open:
//! when no executor is alive on the database, they start the detached worker.
//!
//! This module prints to stdout: it serves a person at a terminal, never an MCP client.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::config::Config;
use crate::model::TaskRef;
use crate::service::{Service, Target, TaskInput};
use crate::store::{Created, Db, Store};

/// What `claude-worker run` was asked (its command-line arguments).
#[derive(Debug, Default, clap::Args)]
pub struct RunRequest {
    /// The instructions, or a file that holds them.
    pub prompt: String,
    /// Directory to run in (default: this one).
    #[arg(long)]
    pub dir: Option<String>,
    /// sonnet, opus, haiku or a full model id.
    #[arg(long)]
    pub model: Option<String>,
    /// The task's name (default: from the prompt's first words).
    #[arg(long)]
    pub identifier: Option<String>,
    /// Tasks that must complete first (identifiers or #id; repeat or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub depends_on: Vec<String>,
    /// Orchestration name to join or create.
    #[arg(long)]
    pub orchestration: Option<String>,
    /// Higher runs first (may be negative).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// Follow the task live until it ends (exit 0 when it completed).
    #[arg(long)]
    pub watch: bool,
    /// Print only the task id.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not read stdin even when it is a pipe or a file (for `while read ...; do claude-worker
    /// run ...; done` loops, which would otherwise hand it the rest of their input).
    #[arg(long)]
    pub no_stdin: bool,
}

/// `claude-worker run`: queues one task; with `watch`, follows it to its end.
pub async fn run(config: Arc<Config>, request: RunRequest) -> anyhow::Result<ExitCode> {
    let mut prompt = prompt_text(&request.prompt)?;
    // Read while Ctrl-C still ends the command: an interrupted input queues nothing.
    if !request.no_stdin && stdin_has_input() {
        let piped = read_stdin(config.max_prompt_bytes)?;
        if !piped.trim().is_empty() {
            prompt = format!("{prompt}\n\n{piped}");
        }
    }
    // From here a Ctrl-C cannot come between queuing the task and starting a worker for it.
    let interrupted = crate::live::interrupts()?;
    let service = open(&config)?;
    let created = match &request.identifier {
        Some(identifier) => create(&service, &request, identifier.clone(), prompt).await?,
        // A name made up from the prompt may be taken in the orchestration: the next free one.
        None => {
            let base = slug(&request.prompt);
            let mut n = 1;
            loop {
                let identifier = if n == 1 { base.clone() } else { format!("{base}-{n}") };
                match create(&service, &request, identifier, prompt.clone()).await {
                    Err(e) if n < 100 && e.to_string().contains("already has a task") => n += 1,
                    other => break other?,
                }
            }
        }
    };
    let task = created.tasks.first().context("the task was not stored")?;
    // Before anything is printed: a Ctrl-C that answers the output cannot reach the worker
    // while it is being started, still in this process's group.
    ensure_executor(&config);
    {
        let mut out = std::io::stdout().lock();
        if request.quiet {
            writeln!(out, "{}", task.task_id)?;
        } else {
            writeln!(
                out,
                "queued task #{} {} ({}) in orchestration {}",
                task.task_id, task.identifier, task.status, created.orchestration_id
            )?;
        }
    }
    if request.watch {
        let target = [Target::Task(TaskRef::Id(task.task_id))];
        return crate::live::watch(&service, &config.db_path, &target, crate::live::Output::auto(), interrupted).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Queues the task of `run` under `identifier`; errors speak of the command's flags.
async fn create(
    service: &Service,
    request: &RunRequest,
    identifier: String,
    prompt: String,
) -> anyhow::Result<Created> {
    let input = TaskInput {
        identifier,
        prompt,
        depends_on: request.depends_on.clone(),
        working_directory: request.dir.clone(),
        model: request.model.clone(),
        priority: request.priority,
        timeout_seconds: request.timeout_seconds,
        ..TaskInput::default()
    };
    service.create_task(input, request.orchestration.clone()).await.map_err(|e| {
        let message = e.to_string().replace("task_identifier", "--identifier").replace("working_directory", "--dir");
        anyhow::anyhow!("{message}")
    })
}

/// `claude-worker orchestrate FILE`: queues a workflow; with `wait`, follows it to its end.
pub async fn orchestrate(
    config: Arc<Config>,
    file: &Path,
    name: Option<String>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let interrupted = crate::live::interrupts()?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (file_name, tasks) = crate::mcp::parse_workflow(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a valid workflow: {e}", file.display()))?;
    // Relative working directories in the file are relative to the file, not to the shell.
    let base =
        file.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let tasks = tasks
        .into_iter()
        .map(|mut task| {
            if let Some(dir) =
                task.working_directory.as_deref().filter(|d| Path::new(d).is_relative() && !d.starts_with('~'))
            {
                task.working_directory = Some(base.join(dir).display().to_string());
            }
            task
        })
        .collect();
    let service = open(&config)?;
    let created = service
        .create_orchestration(name.or(file_name), tasks)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was queued", file.display()))?;
    ensure_executor(&config);
    print_created(&created)?;
    if wait {
        let target = [Target::Orchestration(created.orchestration_id)];
        return crate::live::watch(&service, &config.db_path, &target, crate::live::Output::auto(), interrupted).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_created(created: &Created) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "queued orchestration {} with {} tasks:", created.orchestration_id, created.tasks.len())?;
    for task in &created.tasks {
        writeln!(out, "  #{} {} ({})", task.task_id, task.identifier, task.status)?;
    }
    writeln!(out, "watch it: claude-worker-inspect watch {}", created.orchestration_id)
}

fn open(config: &Arc<Config>) -> anyhow::Result<Service> {
    let store = Store::open(&config.db_path)?;
    let db = Db::spawn(store).context("cannot start the database thread")?;
    Ok(Service::new(db, config.clone(), None))
}

/// Starts the detached worker when no server or worker is alive on the database.
fn ensure_executor(config: &Config) {
    if crate::owners::any_alive(&config.db_path) {
        return;
    }
    match crate::runner::spawn_detached_worker() {
        Ok(pid) => eprintln!("no claude-worker was running: started a background worker (pid {pid})"),
        Err(e) => eprintln!(
            "warning: no claude-worker is running and a background worker could not be started ({e}): \
             run `claude-worker work --until-idle`"
        ),
    }
}

/// The prompt: the text itself, or the contents of the file it names.
fn prompt_text(arg: &str) -> anyhow::Result<String> {
    let path = Path::new(arg);
    if !arg.contains('\n') && arg.len() < 4096 && path.is_file() {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the prompt file {arg} as UTF-8 text"));
    }
    if arg.trim().is_empty() {
        bail!("the prompt is empty: give the task's instructions, or a file that holds them");
    }
    Ok(arg.to_owned())
}

/// Whether stdin is a pipe or a redirected file: input given on purpose. A terminal, /dev/null
/// or a socket (an IDE's task runner) is not read.
fn stdin_has_input() -> bool {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    match nix::sys::stat::fstat(&stdin) {
        Ok(stat) => {
            let kind = nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode) & nix::sys::stat::SFlag::S_IFMT;
            kind == nix::sys::stat::SFlag::S_IFIFO || kind == nix::sys::stat::SFlag::S_IFREG
        }
        Err(_) => false,
    }
}

/// What was piped in, refused when over the prompt limit.
fn read_stdin(max: usize) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    std::io::stdin().lock().take(limit).read_to_end(&mut bytes).context("cannot read stdin")?;
    if bytes.len() > max {
        bail!("the input on stdin is over CLAUDE_WORKER_MAX_PROMPT_BYTES ({max} bytes): pipe less, or raise the limit");
    }
    String::from_utf8(bytes).context("the input on stdin is not UTF-8 text")
}

/// A task identifier from the first words of a prompt (or a file's name).
fn slug(prompt: &str) -> String {
    let source = Path::new(prompt)
        .file_stem()
        .filter(|_| Path::new(prompt).is_file())
        .and_then(|s| s.to_str())
        .unwrap_or(prompt);
    let mut slug = String::new();
    for word in source.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).take(6) {
        if slug.len() + word.len() > 40 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        "task".to_owned()
    } else if slug.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        // Identifiers need a letter (an all-digit one would read as a task id).
        format!("task-{slug}")
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_identifiers() {
        assert_eq!(slug("Create a Python web scraper for news articles"), "create-a-python-web-scraper-for");
        assert_eq!(slug("Review these changes"), "review-these-changes");
        assert_eq!(slug("¿¡!"), "task");
        assert_eq!(slug("2024"), "task-2024");
        assert!(slug(&"word ".repeat(50)).len() <= 40);
    }

    #[test]
    fn an_empty_prompt_is_refused() {
        assert!(prompt_text("   ").is_err());
        assert_eq!(prompt_text("do it").expect("text"), "do it");
    }
}
