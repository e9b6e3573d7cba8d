//! Checked completion, as one attempt runs it: the CLI's run, then while the task has a `verify`
//! command and the CLI reported success, the check (through `runner::run_command`, in the
//! directory the attempt ran in, stopped with the attempt), and when it fails and fixes are left,
//! a run that resumes the attempt's session with the fix prompt ([`crate::verify::after_check`]
//! decides). It is all one attempt of one claim: the driver's heartbeats go on, its stop switch
//! stops whichever step is running, its writes are fenced, and its costs are added up.
//!
//! `timeout_seconds` bounds each run of the CLI (the first one and every fix), and
//! `verify_timeout_seconds` each check; so an attempt lasts at most
//! `(1 + verify_attempts) * (timeout_seconds + verify_timeout_seconds)`.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Executor;
use crate::logs::{DetailedLog, TaskLogPaths, append_summary};
use crate::model::{ErrorKind, TaskRecord, Usage};
use crate::runner::{self, CommandSpec, Keep, Outcome, RunProgress, RunReport, RunSpec, StopCause};
use crate::store::RunStats;
use crate::time::now_ms;
use crate::verify::{self, AfterCheck, Check};

/// What the runs of one attempt came to.
pub(super) struct AttemptRun {
    /// The last run of the CLI, its outcome replaced when a check decided the attempt: a
    /// failure (`verification_failed`) when no fix is left, a stop when the attempt was stopped
    /// during a check.
    pub report: RunReport,
    /// What every run of the CLI reported, added up (the session and last action are the last run's).
    pub stats: RunStats,
    /// From the start of the first run to the end of the last step.
    pub elapsed: Duration,
}

/// What an attempt runs with besides its task: set up by the driver.
pub(super) struct AttemptSetup<'a> {
    pub task: &'a TaskRecord,
    pub fence: i64,
    /// The CLI's first run. A fix run is the same with another prompt and `--resume`.
    pub spec: &'a RunSpec,
    /// The attempt's `--max-budget-usd`, as its claim computed it.
    pub max_budget_usd: Option<f64>,
    pub paths: &'a TaskLogPaths,
    /// Stops whichever step is running (a cancel, a lost lease, a shutdown).
    pub stop: &'a CancellationToken,
    pub progress: &'a watch::Sender<RunProgress>,
}

impl Executor {
    /// Runs an attempt: the CLI, then its checks and fixes while the task has `verify`.
    pub(super) async fn run_checked(&self, setup: AttemptSetup<'_>) -> AttemptRun {
        let started = Instant::now();
        let AttemptSetup { task, fence, spec, max_budget_usd, paths, stop, progress } = setup;
        let mut report = runner::run(spec, stop, progress).await;
        let mut stats = stats_of(&report);
        let Some(command) = task.settings.verify.clone() else {
            return AttemptRun { report, stats, elapsed: started.elapsed() };
        };
        // Where the check runs: the directory the attempt ran in (one place to change it).
        let directory = spec.working_directory.clone();
        let mut fixes_done = 0;
        let mut passed = false;
        while matches!(report.outcome, Outcome::Success { .. }) && !stop.is_cancelled() {
            progress.send_modify(|p| p.last_action = Some(format!("verify: {}", first_line(&command))));
            // The session must be in the store before a check that may run for minutes: if this
            // process dies meanwhile, the task is taken back to resume it, not to start over.
            self.record_session(task.task_id, fence, report.stream.session_id.clone()).await;
            let command_spec = CommandSpec {
                timeout: Duration::from_secs(task.settings.verify_timeout_seconds),
                kill_grace: self.inner.config.kill_grace,
                stdout: Keep::Tail(verify::OUTPUT_TAIL_BYTES),
                combine_output: true,
                run_tag: Some(spec.run_tag.clone()),
                ..CommandSpec::new("/bin/sh", directory.clone()).args(["-c", command.as_str()])
            };
            log_check_start(paths, self.inner.config.max_detailed_log_bytes, &command, &directory);
            let command_report = runner::run_command(&command_spec, stop).await;
            let check = Check::of(&command, &command_report, task.settings.verify_timeout_seconds);
            log_check_end(paths, self.inner.config.max_detailed_log_bytes, &check, fixes_done);
            if stop.is_cancelled() && !check.passed {
                // Stopped with the attempt: the stop decides what becomes of the task.
                report.outcome = Outcome::Stopped(StopCause::Requested);
                break;
            }
            let decision =
                verify::after_check(&check, fixes_done, task.settings.verify_attempts, &directory.to_string_lossy());
            let next = match &decision {
                AfterCheck::Complete => String::new(),
                AfterCheck::Fix { .. } => {
                    format!("; asking for fix {} of {}", fixes_done + 1, task.settings.verify_attempts)
                }
                AfterCheck::Fail { .. } => "; no fix left".to_owned(),
            };
            self.record_check(task.task_id, fence, check.event_kind(), format!("{}{next}", check.event_detail())).await;
            let prompt = match decision {
                AfterCheck::Complete => {
                    passed = true;
                    break;
                }
                AfterCheck::Fail { error } => {
                    report.outcome = Outcome::Failure { kind: error.kind, message: error.message, transient: false };
                    break;
                }
                AfterCheck::Fix { prompt } => prompt,
            };
            let Some(session) = report.stream.session_id.clone().or_else(|| stats.session_id.clone()) else {
                report.outcome = Outcome::Failure {
                    kind: ErrorKind::VerificationFailed,
                    message: format!(
                        "verify `{}` failed ({}) and no fix can be asked for: the CLI reported no session to resume",
                        first_line(&command),
                        check.ending
                    ),
                    transient: false,
                };
                break;
            };
            // What the earlier runs spent is no longer the fix's to spend.
            let cap = max_budget_usd.map(|cap| crate::budget::left(cap, stats.cost_usd));
            fixes_done += 1;
            let _ = append_summary(
                &paths.summary,
                &format!(
                    "fix {fixes_done} of {}: resuming session {session} with the check's output",
                    task.settings.verify_attempts
                ),
            );
            let fix_spec =
                RunSpec { args: runner::command_args(&task.settings, Some(&session), cap), prompt, ..spec.clone() };
            report = runner::run(&fix_spec, stop, progress).await;
            stats = added(stats, stats_of(&report));
        }
        if matches!(report.outcome, Outcome::Success { .. }) && !passed {
            // Stopped between the CLI's success and its check: a task with a check never
            // completes unchecked; the stop decides what becomes of it.
            report.outcome = Outcome::Stopped(StopCause::Requested);
        }
        AttemptRun { report, stats, elapsed: started.elapsed() }
    }

    /// Records the session an attempt's run reported (the recorder does too, within a quarter
    /// of a second; this does not wait for it).
    async fn record_session(&self, task_id: crate::model::TaskId, fence: i64, session: Option<String>) {
        let Some(session) = session else { return };
        let owner = self.inner.owner.clone();
        let written =
            self.inner.db.call(move |s| s.record_progress(task_id, &owner, fence, None, Some(&session))).await;
        if let Err(e) = written
            && !e.is_lost()
        {
            tracing::warn!(task_id, "cannot record the session before the check: {e}");
        }
    }

    /// Writes a check into the task's history (fenced; a refusal means the claim is gone, which
    /// the heartbeat reports to the driver).
    async fn record_check(&self, task_id: crate::model::TaskId, fence: i64, kind: &'static str, detail: String) {
        let owner = self.inner.owner.clone();
        match self.inner.db.call(move |s| s.record_check(task_id, &owner, fence, kind, &detail, now_ms())).await {
            Ok(_) => self.inner.changes.send_modify(|n| *n += 1),
            Err(e) if e.is_lost() => {}
            Err(e) => tracing::warn!(task_id, "cannot record the check in the history: {e}"),
        }
    }
}

/// The detailed log's header of a check.
fn log_check_start(paths: &TaskLogPaths, cap: u64, command: &str, directory: &std::path::Path) {
    if let Ok(mut log) = DetailedLog::open(&paths.detailed, cap) {
        let _ = log.line("", format!("=== verify: sh -c {command:?} in {} ===", directory.display()).as_bytes());
        let _ = log.finish();
    }
}

/// The check's output in the detailed log, and its line in the summary log.
fn log_check_end(paths: &TaskLogPaths, cap: u64, check: &Check, fixes_done: u32) {
    if let Ok(mut log) = DetailedLog::open(&paths.detailed, cap) {
        if check.output_cut {
            let _ = log.line("[verify] ", b"[... earlier output not kept ...]");
        }
        for line in check.output_tail.lines() {
            let _ = log.line("[verify] ", line.as_bytes());
        }
        let _ = log
            .line("", format!("=== verify {} after {:.1} s ===", check.ending, check.elapsed.as_secs_f64()).as_bytes());
        let _ = log.finish();
    }
    let _ = append_summary(&paths.summary, &check.summary_line(fixes_done));
}

fn first_line(command: &str) -> &str {
    command.lines().next().unwrap_or("").trim()
}

/// What one run of the CLI reported, as the outcome's write records it.
pub(super) fn stats_of(report: &RunReport) -> RunStats {
    let result = report.stream.result.as_ref();
    RunStats {
        session_id: report.stream.session_id.clone(),
        cost_usd: result.map_or(0.0, |r| r.total_cost_usd),
        usage: result.map_or_else(Usage::default, |r| Usage {
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_creation_input_tokens: r.cache_creation_input_tokens,
            cache_read_input_tokens: r.cache_read_input_tokens,
        }),
        num_turns: result.and_then(|r| r.num_turns),
        duration_ms: result.and_then(|r| r.duration_ms).or_else(|| u64::try_from(report.elapsed.as_millis()).ok()),
        permission_denials: result.and_then(|r| r.permission_denials.clone()),
        last_action: report.stream.last_action.clone(),
        usage_warning: report.stream.usage_warning.as_ref().map(|w| crate::usage_limit::warning_of(w, now_ms())),
        structured_result: result.and_then(|r| r.structured_output.as_ref()).map(serde_json::Value::to_string),
    }
}

/// Two runs of one attempt: costs, tokens, turns and durations added; the rest the later run's
/// when it has it.
fn added(earlier: RunStats, later: RunStats) -> RunStats {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    };
    RunStats {
        session_id: later.session_id.or(earlier.session_id),
        cost_usd: earlier.cost_usd + later.cost_usd,
        usage: Usage {
            input_tokens: earlier.usage.input_tokens.saturating_add(later.usage.input_tokens),
            output_tokens: earlier.usage.output_tokens.saturating_add(later.usage.output_tokens),
            cache_creation_input_tokens: earlier
                .usage
                .cache_creation_input_tokens
                .saturating_add(later.usage.cache_creation_input_tokens),
            cache_read_input_tokens: earlier
                .usage
                .cache_read_input_tokens
                .saturating_add(later.usage.cache_read_input_tokens),
        },
        num_turns: sum(earlier.num_turns.map(u64::from), later.num_turns.map(u64::from))
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        duration_ms: sum(earlier.duration_ms, later.duration_ms),
        permission_denials: later.permission_denials.or(earlier.permission_denials),
        last_action: later.last_action.or(earlier.last_action),
        usage_warning: later.usage_warning.or(earlier.usage_warning),
        structured_result: later.structured_result.or(earlier.structured_result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_of_an_attempt_add_up() {
        let run = |cost: f64, session: &str, turns: u32| RunStats {
            session_id: Some(session.to_owned()),
            cost_usd: cost,
            usage: Usage { input_tokens: 10, output_tokens: 5, ..Usage::default() },
            num_turns: Some(turns),
            duration_ms: Some(1000),
            ..RunStats::default()
        };
        let total = added(run(0.25, "s1", 3), run(0.5, "s1", 2));
        assert!((total.cost_usd - 0.75).abs() < 1e-12);
        assert_eq!((total.usage.input_tokens, total.usage.output_tokens), (20, 10));
        assert_eq!((total.num_turns, total.duration_ms), (Some(5), Some(2000)));
        assert_eq!(total.session_id.as_deref(), Some("s1"));
        // A run that reported nothing keeps what the earlier one did.
        let total = added(run(0.25, "s1", 3), RunStats::default());
        assert_eq!((total.num_turns, total.session_id.as_deref()), (Some(3), Some("s1")));
    }
}
