//! Short commands other than the CLI (git, a task's `verify` check), run by the same rules as the
//! CLI: in a process group of their own, stopped on timeout or request (SIGTERM to the whole
//! group, then SIGKILL after a grace period), and nothing they started left behind in the group
//! once they exit. What they print is kept bounded.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::classify::{Exit, StopCause};
use super::{exit_of, stale};

/// How much of an output stream to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first bytes (what a program like git answers with).
    Head(usize),
    /// The last bytes (the end of a check's output, where the error usually is).
    Tail(usize),
}

/// A command to run.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub working_directory: PathBuf,
    /// Variables set on top of this process's environment.
    pub env: Vec<(OsString, OsString)>,
    /// Variables removed from it.
    pub env_remove: Vec<OsString>,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL when stopping.
    pub kill_grace: Duration,
    /// What to keep of standard output.
    pub stdout: Keep,
    /// How many bytes of the end of standard error to keep.
    pub stderr_tail: usize,
    /// Standard error goes into the same pipe as standard output, interleaved as printed (for a
    /// check whose whole output a person reads); `stderr` of the report is then empty.
    pub combine_output: bool,
    /// The attempt's tag, for a command run as part of an attempt (a `verify` check): set as
    /// `CLAUDE_WORKER_RUN` in its environment, so that recovery finds what it started if this
    /// process dies, and whatever still carries it once the command ended (it left the group for
    /// a session of its own) is stopped, as after the CLI.
    pub run_tag: Option<String>,
}

impl CommandSpec {
    /// `program args...` in `working_directory`, a minute at most, its answer kept up to 4 MiB.
    pub fn new(program: impl Into<PathBuf>, working_directory: impl Into<PathBuf>) -> CommandSpec {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            working_directory: working_directory.into(),
            env: Vec::new(),
            env_remove: Vec::new(),
            timeout: Duration::from_secs(60),
            kill_grace: Duration::from_secs(5),
            stdout: Keep::Head(4 * 1024 * 1024),
            stderr_tail: 16 * 1024,
            combine_output: false,
            run_tag: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> CommandSpec {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> CommandSpec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// How a command ended and what it printed.
#[derive(Clone, Debug)]
pub struct CommandReport {
    /// `None` when it could not be started (see `spawn_error`).
    pub exit: Option<Exit>,
    /// Set when it was stopped (its timeout, or a request) before it exited by itself.
    pub stopped: Option<StopCause>,
    pub spawn_error: Option<String>,
    pub stdout: Vec<u8>,
    /// Bytes of standard output not kept.
    pub stdout_cut: u64,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl CommandReport {
    /// It ran to its end and exited 0.
    pub fn succeeded(&self) -> bool {
        self.stopped.is_none() && self.exit == Some(Exit::Code(0))
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// How it ended, in a few words: `exit code 1`, `killed by signal 9`, `stopped at its
    /// timeout`, `could not be started: ...`.
    pub fn ending(&self) -> String {
        match (&self.spawn_error, self.stopped, self.exit) {
            (Some(e), _, _) => format!("could not be started: {e}"),
            (None, Some(StopCause::Timeout), _) => "stopped at its timeout".to_owned(),
            (None, Some(StopCause::Requested), _) => "stopped on request".to_owned(),
            (None, None, Some(Exit::Code(code))) => format!("exit code {code}"),
            (None, None, Some(Exit::Signal(signal))) => format!("killed by signal {signal}"),
            (None, None, None) => "no exit status".to_owned(),
        }
    }
}

/// Runs `spec` to its end, or until its timeout or `stop`.
pub async fn run_command(spec: &CommandSpec, stop: &CancellationToken) -> CommandReport {
    let started = Instant::now();
    let mut report = CommandReport {
        exit: None,
        stopped: None,
        spawn_error: None,
        stdout: Vec::new(),
        stdout_cut: 0,
        stderr: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut command = Command::new(&spec.program);
    command.args(&spec.args).current_dir(&spec.working_directory).stdin(Stdio::null()).process_group(0);
    for name in &spec.env_remove {
        command.env_remove(name);
    }
    for (name, value) in &spec.env {
        command.env(name, value);
    }
    if let Some(tag) = &spec.run_tag {
        command.env(stale::RUN_TAG_VAR, tag);
    }
    // Interleaved output needs one pipe behind both descriptors.
    let mut combined_reader = None;
    if spec.combine_output {
        match std::io::pipe() {
            Ok((reader, writer)) => {
                let second = match writer.try_clone() {
                    Ok(second) => second,
                    Err(e) => {
                        report.spawn_error = Some(format!("cannot make a pipe: {e}"));
                        return report;
                    }
                };
                command.stdout(Stdio::from(writer)).stderr(Stdio::from(second));
                combined_reader = Some(reader);
            }
            Err(e) => {
                report.spawn_error = Some(format!("cannot make a pipe: {e}"));
                return report;
            }
        }
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    command.kill_on_drop(true);
    // What is left of the command once it ended was started after this (see `stale::sweep`).
    let before_spawn = spec.run_tag.as_ref().and_then(|_| super::births::Since::now());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            report.spawn_error = Some(format!("{}: {e}", spec.program.display()));
            report.elapsed = started.elapsed();
            return report;
        }
    };
    // The writing ends now belong to the child only: the reader sees the end when it exits.
    drop(command);
    let group = child.id().and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
    // Until it is reaped, the sweeps of other runs know it as ours without reading /proc.
    let mut registered = child.id().map(super::births::OwnChild::register);

    let stdout: Option<Box<dyn AsyncRead + Unpin + Send>> = match combined_reader {
        Some(reader) => match std::os::fd::OwnedFd::from(reader).try_into_async() {
            Ok(reader) => Some(reader),
            Err(e) => {
                report.spawn_error = Some(format!("cannot read a pipe: {e}"));
                None
            }
        },
        None => child.stdout.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>),
    };
    let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
    let reading = async {
        let (out, err) = tokio::join!(collect(stdout, spec.stdout), collect(stderr, Keep::Tail(spec.stderr_tail)));
        (out, err)
    };
    tokio::pin!(reading);

    let deadline = started + spec.timeout;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut kill_at: Option<Instant> = None;
    let mut output = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        if report.exit.is_some() && output.is_some() {
            break;
        }
        tokio::select! {
            status = child.wait(), if report.exit.is_none() => {
                drop(registered.take());
                report.exit = Some(status.map_or(Exit::Code(-1), exit_of));
                exited_at = Some(Instant::now());
                if let Some(group) = group {
                    stale::kill_leftovers(group);
                }
            }
            out = &mut reading, if output.is_none() => output = Some(out),
            () = sleep_until(deadline), if report.stopped.is_none() && report.exit.is_none() => {
                report.stopped = Some(StopCause::Timeout);
                kill_at = Some(terminate(group, spec.kill_grace));
            }
            () = stop.cancelled(), if report.stopped.is_none() && report.exit.is_none() => {
                report.stopped = Some(StopCause::Requested);
                kill_at = Some(terminate(group, spec.kill_grace));
            }
            () = sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() && report.exit.is_none() => {
                if let Some(group) = group {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                kill_at = None;
            }
            // Something that left the group still holds the pipes: stop reading after a while.
            () = sleep_until(exited_at.map_or(far, |at| at + Duration::from_secs(2))), if exited_at.is_some() && output.is_none() => {
                break;
            }
        }
    }
    if let Some(tag) = &spec.run_tag
        && let Err(e) = stale::sweep(tag, spec.kill_grace, before_spawn).await
    {
        tracing::error!("{e}");
    }
    if let Some(((stdout, cut), (stderr, _))) = output {
        report.stdout = stdout;
        report.stdout_cut = cut;
        report.stderr = stderr;
    }
    report.elapsed = started.elapsed();
    report
}

/// SIGTERM to the group; returns when to send SIGKILL.
fn terminate(group: Option<Pid>, grace: Duration) -> Instant {
    if let Some(group) = group {
        let _ = killpg(group, Signal::SIGTERM);
    }
    Instant::now() + grace
}

/// Reads a stream to its end, keeping what `keep` says; returns the bytes and how many were cut.
async fn collect(reader: Option<Box<dyn AsyncRead + Unpin + Send>>, keep: Keep) -> (Vec<u8>, u64) {
    let Some(mut reader) = reader else { return (Vec::new(), 0) };
    let mut kept = Vec::new();
    let mut cut = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match keep {
            Keep::Head(limit) => {
                let room = limit.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buffer[..room]);
                cut += (n - room) as u64;
            }
            Keep::Tail(limit) => {
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > limit.saturating_mul(2).max(64 * 1024) {
                    let drop = kept.len() - limit;
                    kept.drain(..drop);
                    cut += drop as u64;
                }
            }
        }
    }
    if let Keep::Tail(limit) = keep
        && kept.len() > limit
    {
        let drop = kept.len() - limit;
        kept.drain(..drop);
        cut += drop as u64;
    }
    (kept, cut)
}

/// Reading the combined pipe asynchronously.
trait IntoAsync {
    fn try_into_async(self) -> std::io::Result<Box<dyn AsyncRead + Unpin + Send>>;
}

impl IntoAsync for std::os::fd::OwnedFd {
    fn try_into_async(self) -> std::io::Result<Box<dyn AsyncRead + Unpin + Send>> {
        let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(self)?;
        Ok(Box::new(receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandSpec {
        CommandSpec::new("/bin/sh", std::env::temp_dir()).args(["-c", script])
    }

    #[tokio::test]
    async fn keeps_the_answer_and_the_exit_code() {
        let report = run_command(&sh("echo out; echo err >&2; exit 3"), &CancellationToken::new()).await;
        assert_eq!(report.exit, Some(Exit::Code(3)));
        assert!(!report.succeeded());
        assert_eq!(report.stdout_text(), "out\n");
        assert_eq!(report.stderr_text(), "err\n");
        assert_eq!(report.ending(), "exit code 3");
    }

    #[tokio::test]
    async fn combined_output_is_interleaved_and_its_tail_kept() {
        let mut spec = sh("echo one; echo two >&2; echo three");
        spec.combine_output = true;
        spec.stdout = Keep::Tail(10);
        let report = run_command(&spec, &CancellationToken::new()).await;
        assert!(report.succeeded(), "{report:?}");
        assert_eq!(report.stdout_text(), "two\nthree\n");
        assert_eq!(report.stdout_cut, 4);
        assert!(report.stderr.is_empty());
    }

    #[tokio::test]
    async fn a_hanging_command_and_what_it_started_are_stopped_at_its_timeout() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pid_file = dir.path().join("child");
        let mut spec = sh(&format!("sleep 600 & echo $! > {}; wait", pid_file.display()));
        spec.timeout = Duration::from_millis(300);
        spec.kill_grace = Duration::from_millis(200);
        let report = run_command(&spec, &CancellationToken::new()).await;
        assert_eq!(report.stopped, Some(StopCause::Timeout));
        assert_eq!(report.ending(), "stopped at its timeout");
        let child: i32 = std::fs::read_to_string(&pid_file).expect("the pid file").trim().parse().expect("a pid");
        // The background sleep was in the group: signalled, it is gone (or a zombie being
        // reaped by init) as soon as the kernel has delivered the signal and it has exited.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
                .unwrap_or(false)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(), "the command's child {child} outlived it");
    }

    #[tokio::test]
    async fn a_stop_request_ends_it() {
        let stop = CancellationToken::new();
        let spec = sh("sleep 600");
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopper.cancel();
        });
        let report = run_command(&spec, &stop).await;
        assert_eq!(report.stopped, Some(StopCause::Requested));
        assert!(!report.succeeded());
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_that_names_it() {
        let report =
            run_command(&CommandSpec::new("/nonexistent/git", std::env::temp_dir()), &CancellationToken::new()).await;
        assert!(report.exit.is_none());
        assert!(report.ending().contains("/nonexistent/git"), "{}", report.ending());
    }

    #[tokio::test]
    async fn a_long_answer_keeps_its_head() {
        let mut spec = sh("yes | head -c 100000");
        spec.stdout = Keep::Head(10);
        let report = run_command(&spec, &CancellationToken::new()).await;
        assert!(report.succeeded());
        assert_eq!(report.stdout.len(), 10);
        assert_eq!(report.stdout_cut, 99_990);
    }
}
