//! The only module that spawns processes. [`run`] starts the Claude Code CLI for one attempt —
//! prompt on stdin, in the task's directory, in a process group of its own, without `CLAUDECODE`
//! in its environment — reads its stream-json with bounded memory into the logs and a live
//! [`RunProgress`], stops it on timeout or request (SIGINT to the whole group, then SIGTERM, then
//! SIGKILL, a grace period apart), makes sure nothing it started outlives it, and classifies how
//! it ended. It also stops a CLI whose API retries cannot succeed ([`give_up`]: a refused key),
//! the same way, and fails the attempt at once instead of minutes later.

mod births;
mod classify;
mod command;
mod detach;
mod lines;
mod prompt_files;
mod stale;
mod stream;
mod version;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

pub use classify::{Exit, Outcome, StopCause, classify, give_up};
pub use command::{CommandReport, CommandSpec, Keep, run_command};
pub use detach::{ensure_worker, spawn_detached_worker};
pub use lines::{BoundedLines, Line};
pub use stale::{RUN_TAG_VAR, RunTag, parse_run_tag, run_tag, stop_run};
pub use stream::{ApiRetry, LineEffect, RateLimitInfo, RateLimitWindow, ResultEvent, StreamState};
pub use version::{VersionError, claude_version};

use crate::logs::{DetailedLog, SummarySteps};
use crate::model::{ErrorKind, TaskSettings};

/// The longest stream-json line kept whole; longer ones are cut in the log and not parsed.
const MAX_LINE: usize = 8 * 1024 * 1024;
/// How many bytes of steps one attempt writes to the summary log at most (thousands of steps).
const SUMMARY_STEPS_BUDGET: u64 = 1024 * 1024;
/// How much of stderr is kept for error messages.
const STDERR_TAIL: usize = 2000;
/// How long to wait for the output pipes to close once the process exited and its group was killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// One attempt to run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub claude_bin: PathBuf,
    pub args: Vec<String>,
    pub prompt: String,
    pub working_directory: PathBuf,
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub summary_log: PathBuf,
    pub detailed_log: PathBuf,
    pub max_detailed_log_bytes: u64,
    /// The attempt's tag ([`run_tag`]), set in the CLI's environment so that its processes can
    /// be found if this process dies.
    pub run_tag: String,
    /// The task's `system_prompt` and `append_system_prompt`: they reach the CLI through private
    /// files ([`prompt_files`]), never its argv, which every user of the machine can read.
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
}

/// What a running attempt is doing, for the executor to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunProgress {
    pub pid: Option<u32>,
    /// When the CLI was started (milliseconds since the epoch): the task's start as recorded,
    /// not the moment the record is written.
    pub started_ms: Option<crate::model::Millis>,
    pub session_id: Option<String>,
    pub last_action: Option<String>,
}

/// How an attempt ended and what it reported.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub outcome: Outcome,
    pub stream: StreamState,
    pub exit: Option<Exit>,
    pub elapsed: Duration,
}

/// The arguments of `claude` for a task (the prompt goes to stdin, and the system prompts to
/// files that [`run`] adds, never here); `resume` continues an interrupted attempt's session.
/// `max_budget_usd` is the attempt's cap as its claim computed it (the task's own
/// `max_budget_usd` lowered to what is left of its orchestration's budget), not the setting.
pub fn command_args(settings: &TaskSettings, resume: Option<&str>, max_budget_usd: Option<f64>) -> Vec<String> {
    let mut args: Vec<String> =
        ["-p", "--output-format", "stream-json", "--verbose", "--model"].iter().map(|s| (*s).to_owned()).collect();
    args.push(settings.model.clone());
    args.push("--permission-mode".to_owned());
    args.push(settings.permission_mode.clone());
    if let Some(session) = resume {
        args.push(format!("--resume={session}"));
    }
    // The system prompts are not here: `run` passes them in private files (see `RunSpec`).
    if let Some(turns) = settings.max_turns {
        args.extend(["--max-turns".to_owned(), turns.to_string()]);
    }
    if let Some(budget) = max_budget_usd {
        // Rounded as costs are, so that a remainder prints as `0.2`, not `0.19999999999999996`.
        args.extend(["--max-budget-usd".to_owned(), crate::model::round_usd(budget).to_string()]);
    }
    // Results that reach the dependents (issue 11): the schema as one argument of compact JSON
    // (never starting with `-`: it is an object), before the tool lists.
    if let Some(schema) = &settings.result_schema {
        args.extend(["--json-schema".to_owned(), schema.to_string()]);
    }
    // The tool lists take several values each: they go last, each behind its own flag.
    if !settings.allowed_tools.is_empty() {
        args.push("--allowedTools".to_owned());
        args.extend(settings.allowed_tools.iter().cloned());
    }
    if !settings.disallowed_tools.is_empty() {
        args.push("--disallowedTools".to_owned());
        args.extend(settings.disallowed_tools.iter().cloned());
    }
    args
}

/// Runs one attempt to its end. `stop` asks for the process to be stopped; `progress` receives
/// what the attempt is doing as it goes.
pub async fn run(spec: &RunSpec, stop: &CancellationToken, progress: &watch::Sender<RunProgress>) -> RunReport {
    let started = Instant::now();
    let failure = |kind: ErrorKind, message: String| RunReport {
        outcome: Outcome::Failure { kind, message, transient: false },
        stream: StreamState::default(),
        exit: None,
        elapsed: started.elapsed(),
    };
    if !spec.working_directory.is_dir() {
        return failure(
            ErrorKind::WorkingDirectoryMissing,
            format!(
                "the working directory {} no longer exists: recreate it, then retry the task",
                spec.working_directory.display()
            ),
        );
    }
    // Kept until the attempt ends, whichever way: dropping it removes the files.
    let prompt_files = match prompt_files::PromptFiles::write(
        &spec.run_tag,
        spec.system_prompt.as_deref(),
        spec.append_system_prompt.as_deref(),
    ) {
        Ok(files) => files,
        Err(e) => {
            return failure(
                ErrorKind::SpawnFailed,
                format!(
                    "cannot write the system prompt to a private file in {}: {e}. Check that the temporary \
                     directory (TMPDIR) exists and is writable",
                    std::env::temp_dir().display()
                ),
            );
        }
    };
    let args = with_prompt_files(&spec.args, prompt_files.as_ref().map_or(&[][..], |f| &f.args[..]));
    let mut command = Command::new(&spec.claude_bin);
    command
        .args(&args)
        .current_dir(&spec.working_directory)
        .env_remove("CLAUDECODE")
        .env(RUN_TAG_VAR, &spec.run_tag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // What is left of the run once it ended was started after this (see `stale::sweep`).
    let before_spawn = births::Since::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && spec.claude_bin.is_file() => {
            // The file is there: what is missing is the interpreter its `#!` line names.
            let interpreter = std::fs::read(&spec.claude_bin)
                .ok()
                .and_then(|bytes| bytes.split(|&b| b == b'\n').next().map(|l| String::from_utf8_lossy(l).into_owned()))
                .and_then(|line| line.strip_prefix("#!").map(|i| i.trim().to_owned()))
                .unwrap_or_default();
            return failure(
                ErrorKind::ClaudeNotFound,
                format!(
                    "cannot run {:?}: the interpreter its first line names ({interpreter:?}) was not found. Install \
                     it, or set CLAUDE_WORKER_CLAUDE_BIN to a working Claude Code CLI",
                    spec.claude_bin
                ),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return failure(
                ErrorKind::ClaudeNotFound,
                format!(
                    "cannot run {:?}: not found. Install Claude Code (npm install -g @anthropic-ai/claude-code) \
                     or set CLAUDE_WORKER_CLAUDE_BIN to its path",
                    spec.claude_bin
                ),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let what = if spec.claude_bin.is_dir() {
                "it is a directory. Set CLAUDE_WORKER_CLAUDE_BIN to the CLI file itself".to_owned()
            } else {
                format!(
                    "permission denied. Make it executable (chmod +x {}), or set CLAUDE_WORKER_CLAUDE_BIN to \
                     another Claude Code CLI",
                    spec.claude_bin.display()
                )
            };
            return failure(ErrorKind::ClaudeNotExecutable, format!("cannot run {:?}: {what}", spec.claude_bin));
        }
        Err(e) => return failure(ErrorKind::SpawnFailed, format!("cannot start {:?}: {e}", spec.claude_bin)),
    };
    let pid = child.id();
    // Until it is reaped, the sweeps of other attempts know it as ours without reading /proc.
    let mut registered = pid.map(births::OwnChild::register);
    let started_ms = crate::time::now_ms();
    progress.send_modify(|p| {
        p.pid = pid;
        p.started_ms = Some(started_ms);
    });
    let group = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);

    let mut detailed = match DetailedLog::open(&spec.detailed_log, spec.max_detailed_log_bytes) {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::warn!("cannot open {}: {e}", spec.detailed_log.display());
            None
        }
    };
    if let Some(log) = detailed.as_mut() {
        let _ = log.line("", format!("=== claude {} (pid {}) ===", args.join(" "), pid.unwrap_or(0)).as_bytes());
    }

    // Feed the prompt from its own task, so that a large prompt cannot deadlock against output.
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = spec.prompt.clone();
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    let mut stdout =
        child.stdout.take().map(|s| BoundedLines::new(Box::new(s) as Box<dyn AsyncRead + Unpin + Send>, MAX_LINE));
    let mut stderr =
        child.stderr.take().map(|s| BoundedLines::new(Box::new(s) as Box<dyn AsyncRead + Unpin + Send>, 64 * 1024));
    let mut stderr_tail = String::new();
    let mut steps = SummarySteps::new(&spec.summary_log, SUMMARY_STEPS_BUDGET);
    let mut state = StreamState::default();

    let deadline = Instant::now() + spec.timeout;
    let mut stopped: Option<StopCause> = None;
    // The failure to report when the CLI was stopped because its retries cannot succeed.
    let mut gave_up: Option<Outcome> = None;
    // The next signal to send while stopping, and when.
    let mut escalation: Option<(Signal, Instant)> = None;
    let mut exit: Option<Exit> = None;
    let mut drain_until: Option<Instant> = None;
    // When the CLI closed its output, if it did before it exited.
    let mut stdout_closed: Option<Instant> = None;
    let mut exited_at: Option<Instant> = None;

    loop {
        if exit.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        tokio::select! {
            line = next(&mut stdout), if stdout.is_some() => match line {
                Some(line) => {
                    let mut on_line = |line: Line| {
                        if let Some(log) = detailed.as_mut() {
                            let _ = log.line("", &line.bytes);
                            if line.cut > 0 {
                                let _ = log.line("", format!("[... line cut: {} more bytes ...]", line.cut).as_bytes());
                            }
                        }
                        if line.cut == 0 {
                            match state.feed(&line.bytes) {
                                LineEffect::Action(action) => {
                                    let _ = steps.step(&action);
                                    progress.send_modify(|p| p.last_action = Some(action));
                                }
                                LineEffect::ApiRetry(action) => {
                                    let _ = steps.step(&action);
                                    progress.send_modify(|p| p.last_action = Some(action));
                                    // A stop already under way keeps its own cause.
                                    if gave_up.is_none() && stopped.is_none() {
                                        gave_up = give_up(&state);
                                    }
                                }
                                LineEffect::Session => {
                                    let id = state.session_id.clone();
                                    progress.send_modify(|p| p.session_id = id);
                                }
                                LineEffect::Result | LineEffect::RateLimit | LineEffect::Nothing => {}
                            }
                        }
                    };
                    on_line(line);
                    // The lines that came in the same read need no trip through the select.
                    while let Some(line) = stdout.as_mut().and_then(BoundedLines::buffered_line) {
                        on_line(line);
                    }
                    if let Some(Outcome::Failure { message, .. }) = &gave_up
                        && stopped.is_none()
                        && escalation.is_none()
                        && exit.is_none()
                    {
                        tracing::info!("stopping claude (pid {}): {message}", pid.unwrap_or(0));
                        escalation = begin_stop(group, spec.kill_grace);
                    }
                }
                None => {
                    stdout = None;
                    stdout_closed = Some(Instant::now());
                }
            },
            line = next(&mut stderr), if stderr.is_some() => match line {
                Some(line) => {
                    if let Some(log) = detailed.as_mut() {
                        let _ = log.line("[stderr] ", &line.bytes);
                    }
                    stderr_tail.push_str(&String::from_utf8_lossy(&line.bytes));
                    stderr_tail.push('\n');
                    if stderr_tail.len() > STDERR_TAIL * 2 {
                        let cut = stderr_tail.len() - STDERR_TAIL;
                        let cut = (cut..stderr_tail.len()).find(|&i| stderr_tail.is_char_boundary(i)).unwrap_or(0);
                        stderr_tail.drain(..cut);
                    }
                }
                None => stderr = None,
            },
            status = child.wait(), if exit.is_none() => {
                drop(registered.take());
                exited_at = Some(Instant::now());
                exit = Some(match status {
                    Ok(status) => exit_of(status),
                    Err(_) => Exit::Code(-1),
                });
                // Nothing the CLI started may outlive it (its pid is free now: see kill_leftovers).
                if let Some(group) = group {
                    stale::kill_leftovers(group);
                }
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            },
            // Once giving up, that stop runs its course: its outcome is the one to report.
            () = sleep_until(deadline), if stopped.is_none() && gave_up.is_none() && exit.is_none() => {
                stopped = Some(StopCause::Timeout);
                escalation = begin_stop(group, spec.kill_grace);
            },
            () = stop.cancelled(), if stopped.is_none() && gave_up.is_none() && exit.is_none() => {
                stopped = Some(StopCause::Requested);
                escalation = begin_stop(group, spec.kill_grace);
            },
            () = sleep_until(escalation.map_or(far, |(_, at)| at)), if escalation.is_some() && exit.is_none() => {
                escalation = escalation.and_then(|(signal, _)| {
                    if let Some(group) = group {
                        let _ = killpg(group, signal);
                    }
                    (signal == Signal::SIGTERM).then(|| (Signal::SIGKILL, Instant::now() + spec.kill_grace))
                });
            },
            () = sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                // Something outside the group still holds the pipes: stop reading.
                stdout = None;
                stderr = None;
            },
        }
    }
    // Killing the group misses what left it for a session of its own: find those by the tag.
    match stale::sweep(&spec.run_tag, spec.kill_grace, before_spawn).await {
        Ok(0) => {}
        Ok(n) => {
            let _ = steps.step(&format!("stopped {n} processes it left running outside its process group"));
        }
        Err(e) => tracing::error!("{e}"),
    }
    if let Some(log) = detailed {
        let _ = log.finish();
    }
    let exit = exit.unwrap_or(Exit::Code(-1));
    let mut outcome = match (classify(&state, exit, stopped, &stderr_tail), gave_up) {
        // What the CLI printed once stopped (an interrupted run) is not what happened.
        (Outcome::Success { result }, _) => Outcome::Success { result },
        (_, Some(failure)) => failure,
        (outcome, None) => outcome,
    };
    if let (Outcome::Failure { kind, message, .. }, Some(closed), Some(exited)) =
        (&mut outcome, stdout_closed, exited_at)
        && matches!(kind, ErrorKind::CliError | ErrorKind::CliCrashed)
        && exited.duration_since(closed) >= Duration::from_secs(1)
    {
        // Say why nothing came: a CLI that goes on without its output is stuck or broken.
        message.push_str(&format!(
            " (it closed its standard output {:.1} s before it exited)",
            exited.duration_since(closed).as_secs_f64()
        ));
    }
    drop(prompt_files);
    RunReport { outcome, stream: state, exit: Some(exit), elapsed: started.elapsed() }
}

/// `args` with the prompt files' arguments put before the tool lists, which must come last (each
/// takes several values).
fn with_prompt_files(args: &[String], files: &[String]) -> Vec<String> {
    let at = args.iter().position(|a| a == "--allowedTools" || a == "--disallowedTools").unwrap_or(args.len());
    let mut all = args.to_vec();
    all.splice(at..at, files.iter().cloned());
    all
}

async fn next(lines: &mut Option<BoundedLines<Box<dyn AsyncRead + Unpin + Send>>>) -> Option<Line> {
    match lines.as_mut() {
        Some(reader) => Box::pin(reader.next_line()).await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// Sends SIGINT to the group (so the CLI writes its final result with the session id) and
/// returns the next step: SIGTERM after the grace period.
fn begin_stop(group: Option<Pid>, grace: Duration) -> Option<(Signal, Instant)> {
    if let Some(group) = group {
        let _ = killpg(group, Signal::SIGINT);
    }
    Some((Signal::SIGTERM, Instant::now() + grace))
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

/// Whether `path` names an executable file, directly or through `PATH`.
pub fn find_executable(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if path.components().count() > 1 {
        return is_exec(path).then(|| path.to_owned());
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(path)).find(|p| is_exec(p)))
        .unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_keep_values_from_being_read_as_flags() {
        let settings = TaskSettings {
            system_prompt: Some("- be brief".to_owned()),
            append_system_prompt: Some("--also".to_owned()),
            max_turns: Some(5),
            allowed_tools: vec!["Edit".to_owned(), "Bash(git log:*)".to_owned()],
            ..TaskSettings::for_tests()
        };
        let args = command_args(&settings, None, None);
        assert_eq!(
            args,
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model",
                "sonnet",
                "--permission-mode",
                "acceptEdits",
                "--max-turns",
                "5",
                "--allowedTools",
                "Edit",
                "Bash(git log:*)",
            ]
        );
        assert!(!args.iter().any(|a| a.contains("be brief") || a.contains("--also")), "no prompt in the argv");
        // The attempt's cap, not the task's setting, and without float noise.
        let capped =
            command_args(&TaskSettings { max_budget_usd: Some(5.0), ..settings.clone() }, None, Some(1.0 - 0.8));
        let at = capped.iter().position(|a| a == "--max-budget-usd").expect("a cap");
        assert_eq!(capped[at + 1], "0.2");
        assert_eq!(capped.iter().filter(|a| *a == "--max-budget-usd").count(), 1);
        let files = ["--system-prompt-file=/p/s.md".to_owned()];
        let with = with_prompt_files(&args, &files);
        assert_eq!(
            with[with.len() - 4..],
            ["--system-prompt-file=/p/s.md", "--allowedTools", "Edit", "Bash(git log:*)"]
        );
        let bare = command_args(&TaskSettings::for_tests(), None, None);
        assert_eq!(with_prompt_files(&bare, &files).last().map(String::as_str), Some("--system-prompt-file=/p/s.md"));
    }

    #[test]
    fn a_result_schema_goes_as_compact_json_before_the_tool_lists() {
        let schema = serde_json::json!({"type": "object", "properties": {"answer": {"type": "integer"}}});
        let settings = TaskSettings {
            result_schema: Some(schema),
            allowed_tools: vec!["Edit".to_owned()],
            ..TaskSettings::for_tests()
        };
        let args = command_args(&settings, Some("s-1"), None);
        assert_eq!(
            args[args.len() - 4..],
            [
                "--json-schema",
                r#"{"properties":{"answer":{"type":"integer"}},"type":"object"}"#,
                "--allowedTools",
                "Edit"
            ]
        );
        // A resumed session keeps answering through the schema.
        assert!(args.contains(&"--resume=s-1".to_owned()));
    }
}
