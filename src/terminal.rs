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
use crate::service::{Service, ServiceError, Target, TaskInput, TaskOptions};
use crate::store::{Created, Db, Store, Taken};

/// What `claude-worker run` was asked (its command-line arguments).
#[derive(Debug, Default, clap::Args)]
pub struct RunRequest {
    /// The instructions, or a file that holds them.
    pub prompt: String,
    /// Directory to run in (default: this one).
    #[arg(long)]
    pub dir: Option<String>,
    /// sonnet, opus, haiku or a full model id (default: CLAUDE_WORKER_DEFAULT_MODEL).
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
    /// Budget in dollars of the orchestration it creates or joins (sets it; default for a new
    /// one: CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD): once its tasks spent it, no more start.
    #[arg(long, allow_negative_numbers = true)]
    pub orchestration_max_budget_usd: Option<f64>,
    /// Higher runs first (may be negative).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Seconds the task may run before it is stopped (default: CLAUDE_WORKER_TASK_TIMEOUT).
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// What the task may do unasked: default, acceptEdits, plan, dontAsk, auto or
    /// bypassPermissions (default: CLAUDE_WORKER_PERMISSION_MODE).
    #[arg(long)]
    pub permission_mode: Option<String>,
    /// Tools it may use without asking, such as Edit or "Bash(npm test:*)" (repeat the flag).
    #[arg(long)]
    pub allowed_tools: Vec<String>,
    /// Tools it must not use (repeat the flag).
    #[arg(long)]
    pub disallowed_tools: Vec<String>,
    /// Most turns before it stops (1 to 10000).
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Most dollars it may spend.
    #[arg(long, allow_negative_numbers = true)]
    pub max_budget_usd: Option<f64>,
    /// Replaces Claude Code's system prompt.
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Is added to Claude Code's system prompt.
    #[arg(long)]
    pub append_system_prompt: Option<String>,
    /// Attempts for transient failures (1 to 100; default: CLAUDE_WORKER_MAX_ATTEMPTS).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Run in a git worktree of its own, on its own branch: worktree or none (default:
    /// CLAUDE_WORKER_DEFAULT_ISOLATION). Your checkout is left alone until you merge.
    #[arg(long, value_parser = ["none", "worktree"])]
    pub isolation: Option<String>,
    /// With isolation, when its dependencies' results conflict: resolve (start on the
    /// conflicted merge, told to resolve it first) or fail.
    #[arg(long, value_parser = ["resolve", "fail"])]
    pub on_conflict: Option<String>,
    /// A shell command that checks the work once Claude is done (run with sh -c in the task's
    /// directory): exit 0 completes the task; otherwise Claude is asked to fix the cause.
    #[arg(long, value_name = "CMD")]
    pub verify: Option<String>,
    /// Seconds the --verify command may run (default: CLAUDE_WORKER_VERIFY_TIMEOUT, 600).
    #[arg(long)]
    pub verify_timeout_seconds: Option<u64>,
    /// How many times Claude is asked to fix what --verify found before the task fails (0 to
    /// 20; default 2).
    #[arg(long)]
    pub verify_attempts: Option<u32>,
    /// Give the task its prompt as written, without the results of the tasks it depends on.
    #[arg(long)]
    pub no_dependency_results: bool,
    /// A JSON Schema (the JSON itself, or a file that holds it) its answer must match: Claude
    /// answers with JSON, returned as structured_result and given to its dependents.
    #[arg(long, value_name = "JSON|FILE")]
    pub result_schema: Option<String>,
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

/// What `claude-worker orchestrate` was asked (its command-line arguments).
#[derive(Debug, Default, clap::Args)]
pub struct OrchestrateRequest {
    /// The workflow file: {"name": ..., "tasks": [...]}, as create_orchestration takes.
    pub file: PathBuf,
    /// Name the orchestration (overrides the file's "name").
    #[arg(long)]
    pub name: Option<String>,
    /// Budget in dollars for all its tasks together (overrides the file's "max_budget_usd"):
    /// once they spent it, no more of them start.
    #[arg(long, allow_negative_numbers = true)]
    pub max_budget_usd: Option<f64>,
    /// A shell command that checks each task's work (for the tasks that set no verify of their
    /// own; overrides the file's "verify"): see `run --verify`.
    #[arg(long, value_name = "CMD")]
    pub verify: Option<String>,
    /// Queue it as a new run even while the latest run of the same name is unfinished (named
    /// NAME-2, NAME-3, ...), or number a --name that is taken. After a finished run of the
    /// file's name no flag is needed: the new run is numbered.
    #[arg(long)]
    pub rerun: bool,
    /// Run its tasks in git worktrees of their own, merged along the graph onto the branch
    /// claude-worker/<orchestration> (overrides the file's "isolation"; a task's own wins).
    #[arg(long, value_parser = ["none", "worktree"])]
    pub isolation: Option<String>,
    /// With isolation: the commit its tasks start from (default: the file's "base_ref", else HEAD).
    #[arg(long)]
    pub base_ref: Option<String>,
    /// With isolation: merge its integration branch into your checkout's current branch when
    /// it completes (refused, and said, when the checkout has changes or the merge conflicts).
    #[arg(long)]
    pub merge_when_done: bool,
    /// Follow it live until every task ended (exit 0 when all completed).
    #[arg(long)]
    pub wait: bool,
    /// Print only the orchestration id.
    #[arg(long, short)]
    pub quiet: bool,
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
        Some(identifier) => create(&service, &request, identifier.clone(), prompt).await,
        // A name made up from the prompt may be taken in the orchestration: the next free one.
        None => {
            let base = slug(&request.prompt);
            let mut n = 1;
            loop {
                let identifier = if n == 1 { base.clone() } else { format!("{base}-{n}") };
                match create(&service, &request, identifier, prompt.clone()).await {
                    Err(ServiceError::Taken(Taken::Identifier { .. })) if n < 100 => n += 1,
                    other => break other,
                }
            }
        }
    }
    // The tools named first, while the field names they use are still whole.
    .map_err(|e| anyhow::anyhow!("{}", in_flag_words(&crate::text::in_cli_words(&e.to_string()))))?;
    let task = created.tasks.first().context("the task was not stored")?;
    // Before anything is printed: a Ctrl-C that answers the output cannot reach the worker
    // while it is being started, still in this process's group.
    ensure_executor(&config.db_path);
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

/// Queues the task of `run` under `identifier`.
async fn create(
    service: &Service,
    request: &RunRequest,
    identifier: String,
    prompt: String,
) -> Result<Created, ServiceError> {
    let list = |tools: &[String]| (!tools.is_empty()).then(|| tools.to_vec());
    let options = TaskOptions {
        working_directory: request.dir.clone(),
        model: request.model.clone(),
        priority: request.priority,
        timeout_seconds: request.timeout_seconds,
        permission_mode: request.permission_mode.clone(),
        allowed_tools: list(&request.allowed_tools),
        disallowed_tools: list(&request.disallowed_tools),
        max_turns: request.max_turns,
        max_budget_usd: request.max_budget_usd,
        system_prompt: request.system_prompt.clone(),
        append_system_prompt: request.append_system_prompt.clone(),
        max_attempts: request.max_attempts,
        isolation: request.isolation.clone(),
        on_conflict: request.on_conflict.clone(),
        verify: request.verify.clone(),
        verify_timeout_seconds: request.verify_timeout_seconds,
        verify_attempts: request.verify_attempts,
        include_dependency_results: request.no_dependency_results.then_some(false),
        result_schema: request.result_schema.as_deref().map(schema_argument).transpose()?,
    };
    let input = TaskInput {
        identifier,
        prompt,
        depends_on: request.depends_on.clone(),
        wait_after_dependencies: None,
        options: options.boxed(),
    };
    service.create_task(input, request.orchestration.clone(), request.orchestration_max_budget_usd).await
}

/// `--result-schema`: JSON given inline, or the path of a file that holds it.
fn schema_argument(text: &str) -> Result<serde_json::Value, ServiceError> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let from_file = std::fs::read_to_string(text).map_err(|e| {
        ServiceError::Invalid(format!(
            "result_schema is neither JSON nor a file that can be read ({text}: {e}): give the schema itself, \
             such as '{{\"type\": \"object\"}}', or the path of a JSON file"
        ))
    })?;
    serde_json::from_str(&from_file)
        .map_err(|e| ServiceError::Invalid(format!("result_schema: {text} does not hold JSON: {e}")))
}

/// A message about `create_task`'s fields in the words of `run`'s flags.
fn in_flag_words(message: &str) -> String {
    // Longer names first: `append_system_prompt` holds `system_prompt`.
    const FLAGS: [(&str, &str); 16] = [
        ("verify_timeout_seconds", "--verify-timeout-seconds"),
        ("result_schema", "--result-schema"),
        ("verify_attempts", "--verify-attempts"),
        ("task_identifier", "--identifier"),
        ("orchestration_max_budget_usd", "--orchestration-max-budget-usd"),
        ("working_directory", "--dir"),
        ("append_system_prompt", "--append-system-prompt"),
        ("system_prompt", "--system-prompt"),
        ("permission_mode", "--permission-mode"),
        ("disallowed_tools", "--disallowed-tools"),
        ("allowed_tools", "--allowed-tools"),
        ("max_turns", "--max-turns"),
        ("max_budget_usd", "--max-budget-usd"),
        ("timeout_seconds", "--timeout-seconds"),
        ("max_attempts", "--max-attempts"),
        ("execution_prompt", "the prompt"),
    ];
    let mut message = message.to_owned();
    for (field, flag) in FLAGS {
        message = message.replace(field, flag);
    }
    message
}

/// `claude-worker orchestrate FILE`: queues a workflow; with `wait`, follows it to its end.
pub async fn orchestrate(config: Arc<Config>, request: OrchestrateRequest) -> anyhow::Result<ExitCode> {
    let interrupted = crate::live::interrupts()?;
    let file = &request.file;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let workflow = crate::api::parse_workflow(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a valid workflow: {e}", file.display()))?;
    let (file_name, tasks) = (workflow.name, workflow.tasks);
    // The command line's verify, then the file's, for the tasks that name none.
    let default_verify = request.verify.clone().or(workflow.verify);
    let budget = request.max_budget_usd.or(workflow.max_budget_usd);
    // Working directories in the file are relative to the file, not to the shell; a task that
    // names none runs in the file's directory, where its relative paths point.
    let base =
        file.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let tasks = tasks
        .into_iter()
        .map(|mut task| {
            let options = task.options_mut();
            options.working_directory = Some(match options.working_directory.take().filter(|d| !d.is_empty()) {
                Some(dir) if Path::new(&dir).is_relative() && !dir.starts_with('~') => {
                    base.join(dir).display().to_string()
                }
                Some(dir) => dir,
                None => base.display().to_string(),
            });
            if options.verify.is_none() {
                options.verify.clone_from(&default_verify);
            }
            task
        })
        .collect::<Vec<_>>();
    // The workflow belongs to the project of the directory it lies in, wherever it is run from.
    let file_dir = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
    let service = open(&config)?.in_project(crate::project::Project::of_directory(&file_dir));
    // The name given with --name is used as it is (numbered only with --rerun); the file's own
    // name is numbered for each new run.
    let asked = match (request.name.clone(), file_name) {
        (Some(name), _) => Some((name, true)),
        (None, Some(name)) => Some((name, false)),
        (None, None) => None,
    };
    let mut name = None;
    if let Some((asked, explicit)) = &asked {
        name = Some(run_name(&service, asked, *explicit, request.rerun).await?);
    }
    let options = crate::service::OrchestrationOptions {
        isolation: request.isolation.clone().or(workflow.isolation),
        base_ref: request.base_ref.clone().or(workflow.base_ref),
        merge_when_done: request.merge_when_done || workflow.merge_when_done,
    };
    let mut created = service.create_orchestration(name.clone(), budget, &options, tasks.clone()).await;
    // Another run of the same file may have taken the number in the meantime: the next one.
    for _ in 0..10 {
        match (&created, &asked) {
            (Err(ServiceError::Taken(Taken::OrchestrationName { .. })), Some((asked, explicit)))
                if !*explicit || request.rerun =>
            {
                name = Some(run_name(&service, asked, *explicit, true).await?);
                created = service.create_orchestration(name.clone(), budget, &options, tasks.clone()).await;
            }
            _ => break,
        }
    }
    let created = created.map_err(|e| {
        anyhow::anyhow!("{}: {}; nothing was queued", file.display(), crate::text::in_cli_words(&e.to_string()))
    })?;
    ensure_executor(&config.db_path);
    if request.quiet {
        writeln!(std::io::stdout().lock(), "{}", created.orchestration_id)?;
    } else {
        print_created(&created, name.as_deref())?;
    }
    if request.wait {
        let target = [Target::Orchestration(created.orchestration_id)];
        return crate::live::watch(&service, &config.db_path, &target, crate::live::Output::auto(), interrupted).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The name this run of a workflow gets. A name given with `--name` (`explicit`) is used as it
/// is, refused when taken unless `rerun` asks for the next free `name-N`. The file's own name
/// is numbered: `name` for the first run, then `name-2`, ... once the latest run has finished;
/// while that one is unfinished another is refused (saying how to follow it) unless `rerun`.
async fn run_name(service: &Service, name: &str, explicit: bool, rerun: bool) -> anyhow::Result<String> {
    let taken = service.orchestration_names_like(name).await?;
    let next = next_run_name(name, &taken);
    if explicit {
        let Some(existing) = service.orchestration_named(name).await?.filter(|_| taken.iter().any(|t| t == name))
        else {
            return Ok(name.to_owned());
        };
        if rerun {
            return Ok(next);
        }
        let summary = service.orchestration_summary(existing).await?;
        bail!(
            "an orchestration named {name:?} already exists (#{existing}, {}): give another --name, or add \
             --rerun to queue this run as {next:?}",
            summary.status
        );
    }
    let Some(latest) = latest_run(name, &taken) else {
        return Ok(name.to_owned());
    };
    if !rerun && let Some(existing) = service.orchestration_named(&latest).await? {
        let summary = service.orchestration_summary(existing).await?;
        if summary.counters.unfinished() > 0 {
            bail!(
                "the latest run of {name:?}, orchestration {latest:?} (#{existing}), is still {} with {} \
                 unfinished: follow it with `claude-worker-inspect watch {existing}`, or queue another run \
                 beside it with --rerun (it would be {next:?}) or --name",
                summary.status,
                crate::text::count(u64::from(summary.counters.unfinished()), "task"),
            );
        }
    }
    Ok(next)
}

/// The run number of `name` as a run of `base`: `base` itself is run 1, `base-N` run N.
fn run_number(base: &str, name: &str) -> Option<u64> {
    match name.strip_prefix(base) {
        Some("") => Some(1),
        Some(rest) => rest.strip_prefix('-').and_then(|n| n.parse::<u64>().ok()).filter(|n| *n >= 2),
        None => None,
    }
}

/// The highest-numbered run of `base` in `taken`.
fn latest_run(base: &str, taken: &[String]) -> Option<String> {
    taken.iter().filter_map(|name| run_number(base, name).map(|n| (n, name))).max().map(|(_, name)| name.clone())
}

/// `base` when it has no run in `taken`, else `base-N` for the first N above every run.
fn next_run_name(base: &str, taken: &[String]) -> String {
    match taken.iter().filter_map(|name| run_number(base, name)).max() {
        None => base.to_owned(),
        Some(n) => format!("{base}-{}", n + 1),
    }
}

fn print_created(created: &Created, name: Option<&str>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "queued orchestration {}{} with {}:",
        created.orchestration_id,
        name.map(|n| format!(" ({n})")).unwrap_or_default(),
        crate::text::count(created.tasks.len() as u64, "task")
    )?;
    for task in created.tasks.iter() {
        writeln!(out, "  #{} {} ({})", task.task_id, task.identifier, task.status)?;
    }
    writeln!(out, "watch it: claude-worker-inspect watch {}", created.orchestration_id)
}

fn open(config: &Arc<Config>) -> anyhow::Result<Service> {
    let store = Store::open_with(&config.db_path, config.max_db_pages)?;
    crate::files::make_private(&config.db_path)?;
    let db = Db::spawn(store).context("cannot start the database thread")?;
    Ok(Service::new(db, config.clone(), None).for_person())
}

/// Starts the detached worker when no server or worker is alive on the database, saying so on
/// stderr: work that a terminal command queued or reopened must run without an editor open.
pub fn ensure_executor(db_path: &Path) {
    match crate::runner::ensure_worker(db_path) {
        Ok(None) => {}
        Ok(Some(pid)) => eprintln!("no claude-worker was running: started a background worker (pid {pid})"),
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

/// What was piped in, refused when over the prompt limit. Nothing is queued before the input
/// ends, so when none has ended after a moment, stderr says what the command waits for.
fn read_stdin(max: usize) -> anyhow::Result<String> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = std::io::stdin().lock().take(limit).read_to_end(&mut bytes).map(|_| bytes);
        let _ = sender.send(read);
    });
    let read = match received.recv_timeout(STDIN_NOTICE_AFTER) {
        Ok(read) => read,
        Err(_) => {
            eprintln!(
                "reading stdin until it ends: its text is added to the prompt (--no-stdin skips it; Ctrl-C \
                 queues nothing)"
            );
            received.recv().context("cannot read stdin")?
        }
    };
    let bytes = read.context("cannot read stdin")?;
    if bytes.len() > max {
        bail!("the input on stdin is over CLAUDE_WORKER_MAX_PROMPT_BYTES ({max} bytes): pipe less, or raise the limit");
    }
    String::from_utf8(bytes).context("the input on stdin is not UTF-8 text")
}

/// How long `run` reads stdin before it says that it is waiting for it to end.
const STDIN_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

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
    fn a_new_run_of_a_workflow_gets_the_next_number() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(next_run_name("todo-app", &[]), "todo-app");
        assert_eq!(next_run_name("todo-app", &names(&["todo-app"])), "todo-app-2");
        assert_eq!(next_run_name("todo-app", &names(&["todo-app", "todo-app-2", "todo-app-7"])), "todo-app-8");
        // Other names that merely start the same way are not runs of it.
        assert_eq!(next_run_name("todo-app", &names(&["todo-app", "todo-app-ui", "todo-app-2b"])), "todo-app-2");
        assert_eq!(next_run_name("build", &names(&["build-3"])), "build-4");
        assert_eq!(next_run_name("build", &names(&["build-1"])), "build", "build-1 is not a run of build");
        assert_eq!(
            latest_run("todo-app", &names(&["todo-app-2", "todo-app", "todo-app-ui"])).as_deref(),
            Some("todo-app-2")
        );
        assert_eq!(latest_run("todo-app", &names(&["todo-app-ui"])), None);
    }

    #[test]
    fn errors_speak_of_run_s_flags() {
        assert_eq!(
            in_flag_words("append_system_prompt and system_prompt and working_directory"),
            "--append-system-prompt and --system-prompt and --dir"
        );
    }

    #[test]
    fn an_empty_prompt_is_refused() {
        assert!(prompt_text("   ").is_err());
        assert_eq!(prompt_text("do it").expect("text"), "do it");
    }
}
