//! What an attempt's outcome means for its task: pure decisions, no IO.

use std::time::Duration;

use backon::BackoffBuilder;

use super::{StopReason, duration_ms};
use crate::model::{ErrorKind, Millis, TaskError};
use crate::runner::{Outcome, RunReport, StopCause};
use crate::store::Finish;
use crate::usage_limit::{self, Pause};

/// What [`decide`] needs to know besides the run: of the task, of the process's settings, and the time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Context<'a> {
    /// This attempt (1-based) and how many the task may have.
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_seconds: u64,
    /// Whether this attempt resumed an interrupted session.
    pub resumed: bool,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub now: Millis,
    /// A random fraction (0 to 1) that spreads the end of a usage-limit pause.
    pub jitter: f64,
    /// The task's `result_schema`: a success completes the task only with a structured result
    /// that matches it.
    pub result_schema: Option<&'a serde_json::Value>,
}

/// Turns a run's outcome into the state change to write; `None` when the claim was lost.
pub(super) fn decide(cx: &Context<'_>, report: &RunReport, stop_reason: Option<StopReason>) -> Option<Finish> {
    Some(match &report.outcome {
        // A result that does not match its schema would mislead every dependent that reads it;
        // another attempt would most likely answer the same way at the same cost: not retried.
        Outcome::Success { result } => match cx.result_schema.map(|schema| {
            let structured = report.stream.result.as_ref().and_then(|r| r.structured_output.as_ref());
            crate::result_schema::check_result(schema, structured)
        }) {
            Some(Err(message)) => {
                Finish::Failed { error: TaskError { kind: ErrorKind::StructuredResultInvalid, message } }
            }
            None | Some(Ok(())) => Finish::Completed { result: result.clone() },
        },
        Outcome::Stopped(StopCause::Timeout) => Finish::Failed {
            error: TaskError {
                kind: ErrorKind::Timeout,
                message: format!(
                    "ran longer than its timeout of {} s and was stopped; raise timeout_seconds if it needs longer",
                    cx.timeout_seconds
                ),
            },
        },
        Outcome::Stopped(StopCause::Requested) => match stop_reason {
            Some(StopReason::LeaseLost) => return None,
            Some(StopReason::Shutdown) => Finish::Release {
                error: TaskError {
                    kind: ErrorKind::InterruptedByShutdown,
                    message: "claude-worker shut down while the task ran; it will resume".to_owned(),
                },
                resume: true,
            },
            Some(StopReason::Cancel) | None => Finish::Cancelled {
                error: TaskError { kind: ErrorKind::Cancelled, message: "cancelled while running".to_owned() },
            },
        },
        // The account, not the task, is out of quota: the whole queue waits for the reset, and
        // this attempt is not counted; the task resumes its session then.
        Outcome::UsageLimit(hit) => {
            let until = usage_limit::resume_at(hit.resets_at, cx.now, cx.jitter);
            Finish::UsageLimit {
                error: TaskError {
                    kind: ErrorKind::UsageLimit,
                    message: format!(
                        "{}: it waits, then resumes ({})",
                        usage_limit::describe(hit.kind.as_deref(), until, cx.now),
                        usage_limit::WHAT_TO_DO
                    ),
                },
                pause: Pause { kind: hit.kind.clone(), resets_at: hit.resets_at, seen_at: cx.now, until },
            }
        }
        // The task's check still failed after its fixes: the task's own failure, never retried
        // (whatever words the check printed).
        Outcome::Failure { kind: ErrorKind::VerificationFailed, message, .. } => {
            Finish::Failed { error: TaskError { kind: ErrorKind::VerificationFailed, message: message.clone() } }
        }
        // The session to resume is gone (the CLI keeps sessions per directory and machine), or
        // the CLI would not start with it (a transcript cut short when the CLI that wrote it
        // was killed): start over, the attempt not counted. Failing the task for it would
        // blame the task for the death of its previous runner.
        Outcome::Failure { kind, message, .. }
            if cx.resumed
                && (message.contains("No conversation found")
                    || (*kind == ErrorKind::CliError && report.stream.session_id.is_none())) =>
        {
            Finish::Release {
                error: TaskError {
                    kind: ErrorKind::ResumeFailed,
                    message: format!("could not resume the interrupted session ({message}); starting over"),
                },
                resume: false,
            }
        }
        Outcome::Failure { kind, message, transient } => {
            let error = TaskError { kind: kind.clone(), message: message.clone() };
            if *transient && cx.attempt < cx.max_attempts {
                let delay = backoff(cx.retry_base, cx.retry_max, cx.attempt);
                Finish::Retry { error, ready_at: cx.now + duration_ms(delay) }
            } else {
                Finish::Failed { error }
            }
        }
    })
}

/// What an attempt that could not start means for its task (its worktree could not be made):
/// tried again after the backoff while attempts are left, if trying again may help; failed
/// otherwise.
pub(super) fn setup_failure(cx: &Context<'_>, error: TaskError, transient: bool) -> Finish {
    if transient && cx.attempt < cx.max_attempts {
        let delay = backoff(cx.retry_base, cx.retry_max, cx.attempt);
        Finish::Retry { error, ready_at: cx.now + duration_ms(delay) }
    } else {
        Finish::Failed { error }
    }
}

/// The delay before the attempt after `attempt` (1-based): exponential from `base`, with jitter,
/// never above `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let delays = backon::ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    delays.into_iter().nth(usize::try_from(attempt.saturating_sub(1)).unwrap_or(0)).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::StreamState;

    fn cx(attempt: u32, resumed: bool) -> Context<'static> {
        Context {
            attempt,
            max_attempts: 3,
            timeout_seconds: 60,
            resumed,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            now: 1_000_000,
            jitter: 0.0,
            result_schema: None,
        }
    }

    fn report(outcome: Outcome) -> RunReport {
        RunReport { outcome, stream: StreamState::default(), exit: None, elapsed: Duration::from_secs(1) }
    }

    fn failure(kind: ErrorKind, message: &str, transient: bool) -> RunReport {
        report(Outcome::Failure { kind, message: message.to_owned(), transient })
    }

    #[test]
    fn a_setup_failure_is_retried_only_when_trying_again_may_help() {
        let error = || TaskError::new(ErrorKind::IsolationFailed, "git timed out");
        assert!(matches!(setup_failure(&cx(1, false), error(), true), Finish::Retry { .. }));
        assert!(matches!(setup_failure(&cx(3, false), error(), true), Finish::Failed { .. }), "the last attempt");
        assert!(matches!(setup_failure(&cx(1, false), error(), false), Finish::Failed { .. }), "permanent");
    }

    #[test]
    fn a_transient_failure_is_retried_until_the_last_attempt() {
        let rate_limited = failure(ErrorKind::Overloaded, "529", true);
        match decide(&cx(1, false), &rate_limited, None) {
            Some(Finish::Retry { error, ready_at }) => {
                assert_eq!(error.kind, ErrorKind::Overloaded);
                assert!((1_005_000..=1_010_000).contains(&ready_at), "{ready_at}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decide(&cx(3, false), &rate_limited, None), Some(Finish::Failed { .. })));
        let auth = failure(ErrorKind::Auth, "401", false);
        assert!(
            matches!(decide(&cx(1, false), &auth, None), Some(Finish::Failed { error }) if error.kind == ErrorKind::Auth)
        );
    }

    #[test]
    fn a_stop_means_what_we_stopped_it_for() {
        let stopped = report(Outcome::Stopped(StopCause::Requested));
        assert!(decide(&cx(1, false), &stopped, Some(StopReason::LeaseLost)).is_none(), "nothing to write");
        assert!(matches!(
            decide(&cx(1, false), &stopped, Some(StopReason::Shutdown)),
            Some(Finish::Release { resume: true, error }) if error.kind == ErrorKind::InterruptedByShutdown
        ));
        assert!(matches!(
            decide(&cx(1, false), &stopped, Some(StopReason::Cancel)),
            Some(Finish::Cancelled { error }) if error.kind == ErrorKind::Cancelled
        ));
        let timeout = report(Outcome::Stopped(StopCause::Timeout));
        match decide(&cx(1, false), &timeout, None) {
            Some(Finish::Failed { error }) => {
                assert_eq!(error.kind, ErrorKind::Timeout);
                assert!(error.message.contains("60 s"), "{}", error.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_session_that_cannot_be_resumed_starts_over_uncounted() {
        let gone = failure(ErrorKind::CliError, "No conversation found with session ID: x", false);
        assert!(matches!(
            decide(&cx(2, true), &gone, None),
            Some(Finish::Release { resume: false, error }) if error.kind == ErrorKind::ResumeFailed
        ));
        // Not resuming: the same words are the task's own failure.
        assert!(matches!(decide(&cx(2, false), &gone, None), Some(Finish::Failed { .. })));
    }

    #[test]
    fn a_usage_limit_pauses_the_queue_without_counting_the_attempt() {
        let hit =
            |resets_at| report(Outcome::UsageLimit(usage_limit::Hit { kind: Some("five_hour".into()), resets_at }));
        // On the last attempt too, and when resuming: never a failure.
        for (attempt, resumed) in [(1, false), (3, false), (3, true)] {
            match decide(&cx(attempt, resumed), &hit(Some(4_000_000)), None) {
                Some(Finish::UsageLimit { error, pause }) => {
                    assert_eq!(error.kind, ErrorKind::UsageLimit);
                    assert!(error.message.contains("5-hour usage limit until"), "{}", error.message);
                    assert!(error.message.contains("claude-worker-inspect resume"), "{}", error.message);
                    assert_eq!(pause.kind.as_deref(), Some("five_hour"));
                    assert_eq!((pause.resets_at, pause.seen_at, pause.until), (Some(4_000_000), 1_000_000, 4_002_000));
                }
                other => panic!("{other:?}"),
            }
        }
        // No reset given: a short wait, then another try.
        match decide(&cx(1, false), &hit(None), None) {
            Some(Finish::UsageLimit { pause, .. }) => assert_eq!(pause.until, 1_000_000 + 302_000),
            other => panic!("{other:?}"),
        }
        // Stopped by us meanwhile: the stop decides (the runner reports Stopped then).
        let stopped = report(Outcome::Stopped(StopCause::Requested));
        assert!(matches!(decide(&cx(1, false), &stopped, Some(StopReason::Cancel)), Some(Finish::Cancelled { .. })));
    }

    #[test]
    fn a_failed_check_fails_the_task_whatever_it_printed() {
        let failed = failure(ErrorKind::VerificationFailed, "verify `x` still failed: No conversation found", false);
        for resumed in [false, true] {
            assert!(matches!(
                decide(&cx(1, resumed), &failed, None),
                Some(Finish::Failed { error }) if error.kind == ErrorKind::VerificationFailed
            ));
        }
    }

    #[test]
    fn a_structured_result_must_match_the_schema_to_complete() {
        let schema = serde_json::json!({"type": "object", "required": ["answer"]});
        let success = |structured: Option<serde_json::Value>| RunReport {
            stream: StreamState {
                result: Some(crate::runner::ResultEvent {
                    is_error: false,
                    structured_output: structured,
                    ..crate::runner::ResultEvent::default()
                }),
                ..StreamState::default()
            },
            ..report(Outcome::Success { result: Some("{}".to_owned()) })
        };
        let with_schema = Context { result_schema: Some(&schema), ..cx(1, false) };
        let good = success(Some(serde_json::json!({"answer": 42})));
        assert!(matches!(decide(&with_schema, &good, None), Some(Finish::Completed { .. })));
        // Not matching, or missing: failed at once, not retried, whatever attempts are left.
        for bad in [success(Some(serde_json::json!({"other": 1}))), success(None)] {
            match decide(&with_schema, &bad, None) {
                Some(Finish::Failed { error }) => assert_eq!(error.kind, ErrorKind::StructuredResultInvalid),
                other => panic!("{other:?}"),
            }
        }
        // Without a schema nothing is checked.
        assert!(matches!(decide(&cx(1, false), &success(None), None), Some(Finish::Completed { .. })));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        for _ in 0..20 {
            let first = backoff(base, max, 1);
            assert!(first >= base && first <= base * 2, "{first:?}");
            let third = backoff(base, max, 3);
            assert!(third >= base * 4 && third <= base * 8, "{third:?}");
            assert!(backoff(base, max, 30) <= max);
        }
    }
}
