//! Deciding how an attempt ended, from what the CLI printed, how its process exited, and whether
//! we stopped it. The shapes come from the real CLI's output (`tests/fixtures/`): an API error
//! still ends in a `result` event with `subtype: success` but `is_error: true`, so the error
//! fields decide, never the subtype alone.
//!
//! [`give_up`] decides, while the CLI runs, that its own retries are pointless: a refused key
//! stays refused however often it is tried, and the CLI would otherwise spend minutes on it.

use super::stream::{ApiRetry, ResultEvent, StreamState};
use crate::model::ErrorKind;

/// After how many retries in a row of an error that retrying cannot fix the CLI is stopped. Not
/// after the first: a login's token is refreshed by the CLI after a 401, and the next request
/// may go through.
pub const UNFIXABLE_RETRIES: u32 = 2;

/// Why we stopped a process ourselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// It ran past its `timeout_seconds`.
    Timeout,
    /// The executor asked (a cancel, a lost lease, a shutdown).
    Requested,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A `result` event with `is_error: false`.
    Success { result: Option<String> },
    /// It failed; `transient` failures are worth another attempt.
    Failure { kind: ErrorKind, message: String, transient: bool },
    /// We stopped it.
    Stopped(StopCause),
    /// The account's usage limit refused it: not the task's failure, nor an attempt.
    UsageLimit(crate::usage_limit::Hit),
}

impl Outcome {
    fn permanent(kind: ErrorKind, message: impl Into<String>) -> Outcome {
        Outcome::Failure { kind, message: message.into(), transient: false }
    }

    fn transient(kind: ErrorKind, message: impl Into<String>) -> Outcome {
        Outcome::Failure { kind, message: message.into(), transient: true }
    }
}

/// How the process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Classifies an attempt. `stderr_tail` is the end of what the CLI wrote to stderr.
pub fn classify(stream: &StreamState, exit: Exit, stopped: Option<StopCause>, stderr_tail: &str) -> Outcome {
    if let Some(result) = &stream.result
        && !result.is_error
    {
        return Outcome::Success { result: result.result.clone() };
    }
    if let Some(cause) = stopped {
        return Outcome::Stopped(cause);
    }
    if let Some(hit) = crate::usage_limit::recognise(stream.usage_rejected.as_ref(), stream.result.as_ref()) {
        return Outcome::UsageLimit(hit);
    }
    match &stream.result {
        Some(result) => classify_error_result(result, stream),
        None => classify_no_result(exit, stream.session_id.is_some(), stderr_tail),
    }
}

/// Whether to stop the CLI now instead of letting it go on retrying: `Some` (a permanent failure,
/// of the kind [`classify`] gives the same error in a result) once [`UNFIXABLE_RETRIES`] retries
/// in a row reported an error that retrying cannot fix (a refused key or login, a billing
/// problem) and the CLI means to try again after that.
pub fn give_up(stream: &StreamState) -> Option<Outcome> {
    let retry = stream.api_retry.as_ref()?;
    let (kind, what, fix) = unfixable(retry)?;
    if stream.api_retry_streak < UNFIXABLE_RETRIES || retry.attempt >= retry.max_retries {
        return None;
    }
    let error = match (retry.error_status, retry.error.as_deref()) {
        (Some(status), Some(error)) => format!("{status} {error}"),
        (Some(status), None) => status.to_string(),
        (None, error) => error.unwrap_or("error").to_owned(),
    };
    let left = retry.max_retries - retry.attempt;
    Some(Outcome::permanent(
        kind,
        format!(
            "the API {what} ({error}) on {} requests in a row, which retrying cannot fix: claude-worker stopped \
             claude rather than let it retry {left} more {}. {fix}, then retry the task",
            stream.api_retry_streak,
            if left == 1 { "time" } else { "times" },
        ),
    ))
}

/// The kind, what happened and what to do, for an error that retrying cannot fix.
fn unfixable(retry: &ApiRetry) -> Option<(ErrorKind, &'static str, &'static str)> {
    match (retry.error_status, retry.error.as_deref()) {
        (Some(401), _) | (_, Some("authentication_failed")) => Some((
            ErrorKind::Auth,
            "refused the credentials",
            "Check ANTHROPIC_API_KEY (or log in again with `claude /login`)",
        )),
        (Some(403), _) => Some((
            ErrorKind::Auth,
            "refused access",
            "Check that the API key or login may use this model and organization",
        )),
        (Some(402), _) | (_, Some("billing_error")) => Some((
            ErrorKind::Billing,
            "refused the request for billing reasons",
            "Check the account's credit and billing",
        )),
        _ => None,
    }
}

fn classify_error_result(result: &ResultEvent, stream: &StreamState) -> Outcome {
    let text = result
        .result
        .clone()
        .or_else(|| (!result.errors.is_empty()).then(|| result.errors.join("; ")))
        .or_else(|| stream.assistant_error_text.clone())
        .unwrap_or_else(|| format!("the CLI reported an error ({})", result.subtype));
    match result.subtype.as_str() {
        "error_max_turns" => return Outcome::permanent(ErrorKind::MaxTurns, text),
        "error_max_budget_usd" => return Outcome::permanent(ErrorKind::MaxBudget, text),
        "error_during_execution" => {
            // Interrupted, and not by us: someone else signalled it. Worth another try.
            return Outcome::transient(ErrorKind::Interrupted, text);
        }
        _ => {}
    }
    let assistant_error = stream.assistant_error.as_deref().unwrap_or("");
    let terminal = result.terminal_reason.as_deref().unwrap_or("");
    match result.api_error_status {
        Some(401 | 403) => return Outcome::permanent(ErrorKind::Auth, text),
        Some(402) => return Outcome::permanent(ErrorKind::Billing, text),
        Some(429) => return Outcome::transient(ErrorKind::RateLimited, text),
        Some(529) => return Outcome::transient(ErrorKind::Overloaded, text),
        Some(500..=599) => return Outcome::transient(ErrorKind::ApiError, text),
        Some(413) => return Outcome::permanent(ErrorKind::PromptTooLong, text),
        Some(400..=499) => {
            let kind = if terminal == "prompt_too_long" { ErrorKind::PromptTooLong } else { ErrorKind::InvalidRequest };
            return Outcome::permanent(kind, text);
        }
        _ => {}
    }
    if terminal == "prompt_too_long" {
        return Outcome::permanent(ErrorKind::PromptTooLong, text);
    }
    match assistant_error {
        "authentication_failed" => return Outcome::permanent(ErrorKind::Auth, text),
        "billing_error" => return Outcome::permanent(ErrorKind::Billing, text),
        "invalid_request" => return Outcome::permanent(ErrorKind::InvalidRequest, text),
        "rate_limit" => return Outcome::transient(ErrorKind::RateLimited, text),
        _ => {}
    }
    if result.api_error.as_deref() == Some("connection_failed") {
        return Outcome::transient(ErrorKind::Connection, text);
    }
    if assistant_error == "server_error" || terminal == "api_error" {
        return Outcome::transient(ErrorKind::ApiError, text);
    }
    Outcome::permanent(ErrorKind::ClaudeError, text)
}

/// How many of the last lines of stderr an error message quotes, and how many bytes at most.
pub const STDERR_LINES: usize = 10;
pub const STDERR_BYTES: usize = 2048;

/// A CLI that ended without a `result` event, and not because claude-worker stopped it. The
/// message always says how it ended (the exit code, or the signal by name) and quotes the end of
/// its stderr, so that an occurrence nobody can reproduce explains itself.
///
/// Transient (`killed_by_signal`, `cli_crashed`): a signal claude-worker did not send (the OOM
/// killer's SIGKILL, a SIGTERM from someone else; also as a shell or version manager's wrapper
/// reports it, 128 + N), an output pipe that broke under it, or a non-zero exit after the CLI had
/// started its session: none of these says the task itself cannot succeed. Permanent
/// (`cli_error`): the CLI refused to start (a usage error, an unknown flag, an unknown session:
/// it exits before its `init` event, and would do the same again), or it exited 0 as if it had
/// finished, without a result to show for it.
fn classify_no_result(exit: Exit, started: bool, stderr_tail: &str) -> Outcome {
    let said = quote_stderr(stderr_tail);
    // The CLI exits 128+N when it handles SIGINT/SIGTERM itself, and a wrapper script (a
    // version manager's shim) reports its child's death by signal N the same way.
    let wrapped = match exit {
        Exit::Code(code @ 129..=192) if signal_name(code - 128).is_some() => Some(code - 128),
        _ => None,
    };
    match (exit, wrapped) {
        (Exit::Signal(signal), _) => Outcome::transient(
            ErrorKind::KilledBySignal,
            format!(
                "claude was killed by {} before it wrote a result; claude-worker did not send it{}{said}",
                describe_signal(signal),
                signal_hint(signal),
            ),
        ),
        (Exit::Code(code), Some(signal)) => Outcome::transient(
            ErrorKind::KilledBySignal,
            format!(
                "claude exited with code {code} (128 + {}) before it wrote a result: a signal claude-worker did not \
                 send{}{said}",
                describe_signal(signal),
                signal_hint(signal),
            ),
        ),
        (Exit::Code(code), None) if broken_pipe(stderr_tail) => Outcome::transient(
            ErrorKind::CliCrashed,
            format!("claude exited with code {code} without writing a result: its output pipe broke{said}"),
        ),
        (Exit::Code(code), None) if code != 0 && started => Outcome::transient(
            ErrorKind::CliCrashed,
            format!("claude exited with code {code} in the middle of its session, without writing a result{said}"),
        ),
        (Exit::Code(0), None) => {
            Outcome::permanent(ErrorKind::CliError, format!("claude exited with code 0 without writing a result{said}"))
        }
        (Exit::Code(code), None) if code < 0 => Outcome::permanent(
            ErrorKind::CliError,
            format!("claude ended without writing a result, and its exit status could not be read{said}"),
        ),
        (Exit::Code(code), None) => Outcome::permanent(
            ErrorKind::CliError,
            format!("claude exited with code {code} before it started a session, without writing a result{said}"),
        ),
    }
}

/// `SIGKILL (signal 9)`, or `signal 99` for a number without a name.
pub fn describe_signal(signal: i32) -> String {
    match signal_name(signal) {
        Some(name) => format!("{name} (signal {signal})"),
        None => format!("signal {signal}"),
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(signal).ok().map(nix::sys::signal::Signal::as_str)
}

/// What a signal usually means, for the few that point somewhere.
fn signal_hint(signal: i32) -> &'static str {
    use nix::sys::signal::Signal;
    match Signal::try_from(signal) {
        Ok(Signal::SIGKILL) => " (the kernel's out-of-memory killer sends SIGKILL: see `dmesg`)",
        Ok(Signal::SIGPIPE) => " (its output pipe broke)",
        Ok(Signal::SIGSEGV | Signal::SIGBUS | Signal::SIGABRT) => " (it crashed)",
        _ => "",
    }
}

fn broken_pipe(stderr_tail: &str) -> bool {
    stderr_tail.contains("EPIPE") || stderr_tail.to_ascii_lowercase().contains("broken pipe")
}

/// `; the end of its stderr: "a" / "b"` with the last [`STDERR_LINES`] non-empty lines, at most
/// [`STDERR_BYTES`] bytes of them (the oldest cut), or `; it wrote nothing on stderr`.
pub fn quote_stderr(stderr_tail: &str) -> String {
    let lines: Vec<&str> = stderr_tail.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "; it wrote nothing on stderr".to_owned();
    }
    let mut kept = lines[lines.len().saturating_sub(STDERR_LINES)..].join(" / ");
    if kept.len() > STDERR_BYTES {
        let cut = kept.len() - STDERR_BYTES;
        let cut = (cut..kept.len()).find(|&i| kept.is_char_boundary(i)).unwrap_or(0);
        kept = format!("...{}", &kept[cut..]);
    }
    format!("; the end of its stderr: {kept}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(fixture: &str) -> StreamState {
        let mut state = StreamState::default();
        for line in fixture.lines() {
            state.feed(line.as_bytes());
        }
        state
    }

    fn kind(fixture: &str, exit: Exit) -> (String, bool) {
        match classify(&stream_of(fixture), exit, None, "") {
            Outcome::Failure { kind, transient, .. } => (kind.as_str().to_owned(), transient),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $name))
        };
    }

    #[test]
    fn successes_complete_with_their_result() {
        for fixture in [
            fixture!("success-text.jsonl"),
            fixture!("success-bash-tool.jsonl"),
            fixture!("success-mcp-tool-use.jsonl"),
            fixture!("success-with-permission-denial.jsonl"),
            fixture!("oauth-with-rate-limit-event.jsonl"),
        ] {
            let outcome = classify(&stream_of(fixture), Exit::Code(0), None, "");
            assert_eq!(outcome, Outcome::Success { result: Some("Final answer from mock.".into()) });
        }
    }

    #[test]
    fn stream_records_session_cost_and_actions() {
        let s = stream_of(fixture!("success-bash-tool.jsonl"));
        assert_eq!(s.session_id.as_deref(), Some("525a76be-12fa-4015-a850-b9c1bf6543cf"));
        let r = s.result.expect("result");
        assert!((r.total_cost_usd - 0.0016).abs() < 1e-9);
        assert_eq!((r.input_tokens, r.output_tokens, r.num_turns), (200, 40, Some(2)));
        assert_eq!(r.duration_ms, Some(195));
        assert_eq!(s.last_action.as_deref(), Some("Text: Final answer from mock."));
        let mut s = StreamState::default();
        for line in fixture!("success-bash-tool.jsonl").lines().take(2) {
            s.feed(line.as_bytes());
        }
        assert_eq!(s.last_action.as_deref(), Some("Bash: echo hi-from-bash"));
        let denied = stream_of(fixture!("success-with-permission-denial.jsonl")).result.expect("result");
        assert!(denied.permission_denials.expect("denials").contains("mcp__mcpdemo__add"));
    }

    #[test]
    fn a_usage_limit_is_neither_failure_nor_success() {
        let outcome = classify(&stream_of(fixture!("usage-limit-rejected.jsonl")), Exit::Code(1), None, "");
        assert_eq!(
            outcome,
            Outcome::UsageLimit(crate::usage_limit::Hit {
                kind: Some("five_hour".into()),
                resets_at: Some(1_796_190_516_000)
            })
        );
        // The message alone, the event lost.
        let without_event: String = fixture!("usage-limit-rejected.jsonl")
            .lines()
            .filter(|l| !l.contains(r#""type":"rate_limit_event""#) && !l.contains(r#""type":"assistant""#))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(matches!(
            classify(&stream_of(&without_event), Exit::Code(1), None, ""),
            Outcome::UsageLimit(crate::usage_limit::Hit { resets_at: None, .. })
        ));
        // Stopped by us first: the stop decides.
        let stopped =
            classify(&stream_of(fixture!("usage-limit-rejected.jsonl")), Exit::Code(1), Some(StopCause::Requested), "");
        assert_eq!(stopped, Outcome::Stopped(StopCause::Requested));
        // An API key's 429 stays an ordinary rate limit; a warning is a success.
        assert_eq!(
            kind(fixture!("api-429-usage-limit-with-api-key.jsonl"), Exit::Code(1)),
            ("rate_limited".into(), true)
        );
        assert!(matches!(
            classify(&stream_of(fixture!("usage-limit-warning.jsonl")), Exit::Code(0), None, ""),
            Outcome::Success { .. }
        ));
    }

    #[test]
    fn transient_api_errors_are_retried() {
        assert_eq!(kind(fixture!("api-429-rate-limit.jsonl"), Exit::Code(1)), ("rate_limited".into(), true));
        assert_eq!(kind(fixture!("api-529-overloaded.jsonl"), Exit::Code(1)), ("overloaded".into(), true));
        assert_eq!(kind(fixture!("api-500-server-error.jsonl"), Exit::Code(1)), ("api_error".into(), true));
        assert_eq!(kind(fixture!("api-connection-refused.jsonl"), Exit::Code(1)), ("connection".into(), true));
    }

    #[test]
    fn permanent_errors_are_not() {
        assert_eq!(kind(fixture!("api-401-auth-failed.jsonl"), Exit::Code(1)), ("auth".into(), false));
        assert_eq!(kind(fixture!("not-logged-in.jsonl"), Exit::Code(1)), ("auth".into(), false));
        assert_eq!(kind(fixture!("api-400-prompt-too-long.jsonl"), Exit::Code(1)), ("prompt_too_long".into(), false));
        assert_eq!(kind(fixture!("error-max-turns.jsonl"), Exit::Code(1)), ("max_turns".into(), false));
        assert_eq!(kind(fixture!("error-max-budget.jsonl"), Exit::Code(1)), ("max_budget".into(), false));
    }

    #[test]
    fn signals_and_stops() {
        // SIGINT from someone else: the CLI still writes an error_during_execution result.
        assert_eq!(kind(fixture!("interrupted-by-sigint.jsonl"), Exit::Code(0)), ("interrupted".into(), true));
        // SIGTERM: no result at all, exit 143.
        assert_eq!(kind(fixture!("terminated-by-sigterm.jsonl"), Exit::Code(143)), ("killed_by_signal".into(), true));
        assert_eq!(kind("", Exit::Signal(9)), ("killed_by_signal".into(), true));
        assert_eq!(kind("", Exit::Code(1)), ("cli_error".into(), false));
        // When we stopped it, that is the outcome, whatever it printed.
        let s = stream_of(fixture!("interrupted-by-sigint.jsonl"));
        assert_eq!(classify(&s, Exit::Code(0), Some(StopCause::Timeout), ""), Outcome::Stopped(StopCause::Timeout));
        assert_eq!(classify(&s, Exit::Code(0), Some(StopCause::Requested), ""), Outcome::Stopped(StopCause::Requested));
    }

    fn failure(stream: &StreamState, exit: Exit, stderr: &str) -> (String, bool, String) {
        match classify(stream, exit, None, stderr) {
            Outcome::Failure { kind, transient, message } => (kind.as_str().to_owned(), transient, message),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// A CLI that printed its `init` event: its session had started.
    fn started() -> StreamState {
        stream_of(fixture!("success-text.jsonl").lines().next().expect("init line"))
    }

    #[test]
    fn a_death_by_a_signal_nobody_here_sent_is_retried_and_named() {
        let (kind, transient, message) = failure(&started(), Exit::Signal(9), "");
        assert_eq!((kind.as_str(), transient), ("killed_by_signal", true));
        assert!(message.contains("SIGKILL (signal 9)") && message.contains("out-of-memory"), "{message}");
        assert!(message.contains("it wrote nothing on stderr"), "{message}");
        let (_, _, message) = failure(&StreamState::default(), Exit::Signal(13), "");
        assert!(message.contains("SIGPIPE (signal 13)") && message.contains("pipe broke"), "{message}");
        // As a wrapper script (a version manager's shim) reports it: 128 + N.
        for (code, name) in [(137, "SIGKILL"), (141, "SIGPIPE"), (129, "SIGHUP"), (134, "SIGABRT"), (143, "SIGTERM")] {
            let (kind, transient, message) = failure(&StreamState::default(), Exit::Code(code), "");
            assert_eq!((kind.as_str(), transient), ("killed_by_signal", true), "{code}");
            assert!(message.contains(&format!("code {code} (128 + {name}")), "{message}");
        }
        // Past the signals there are: an exit code like any other.
        assert_eq!(failure(&StreamState::default(), Exit::Code(255), "").0, "cli_error");
    }

    #[test]
    fn a_crash_in_the_middle_of_a_session_is_retried_a_refusal_to_start_is_not() {
        let stderr = "Error: something broke\n    at Object.<anonymous> (cli.js:1:1)\n";
        let (kind, transient, message) = failure(&started(), Exit::Code(1), stderr);
        assert_eq!((kind.as_str(), transient), ("cli_crashed", true));
        assert!(message.contains("code 1") && message.contains("Error: something broke / "), "{message}");
        // A usage error: exit 1 at once, before any session.
        let (kind, transient, message) =
            failure(&StreamState::default(), Exit::Code(1), "error: unknown option '--bogus'\n");
        assert_eq!((kind.as_str(), transient), ("cli_error", false));
        assert!(message.contains("code 1") && message.contains("unknown option '--bogus'"), "{message}");
        // The executor recognises an unknown session by these words.
        let (kind, _, message) =
            failure(&StreamState::default(), Exit::Code(1), "No conversation found with session ID: x\n");
        assert_eq!(kind, "cli_error");
        assert!(message.contains("No conversation found"), "{message}");
        // Its output pipe broke under it, whenever that was.
        let (kind, transient, message) =
            failure(&StreamState::default(), Exit::Code(1), "Error: write EPIPE\n    at afterWriteDispatched\n");
        assert_eq!((kind.as_str(), transient), ("cli_crashed", true));
        assert!(message.contains("output pipe broke") && message.contains("write EPIPE"), "{message}");
        // It believes it finished, but there is nothing to show for it.
        let (kind, transient, _) = failure(&started(), Exit::Code(0), "");
        assert_eq!((kind.as_str(), transient), ("cli_error", false));
    }

    #[test]
    fn stderr_is_quoted_by_its_last_lines_within_a_bound() {
        let many: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        let quoted = quote_stderr(&many);
        assert!(
            quoted.ends_with(
                "line 41 / line 42 / line 43 / line 44 / line 45 / line 46 / line 47 / line 48 / line 49 / line 50"
            ),
            "{quoted}"
        );
        assert!(!quoted.contains("line 40 "), "{quoted}");
        let long = format!("{}\nlast\n", "é".repeat(5000));
        let quoted = quote_stderr(&long);
        assert!(quoted.len() <= STDERR_BYTES + 64 && quoted.ends_with(" / last"), "{}", quoted.len());
        assert_eq!(quote_stderr("\n  \n"), "; it wrote nothing on stderr");
    }

    #[test]
    fn garbage_lines_are_not_errors() {
        let mut s = StreamState::default();
        assert_eq!(s.feed(b"not json"), super::super::stream::LineEffect::Nothing);
        assert_eq!(s.feed(b"{\"type\":\"brand_new_event\",\"x\":1}"), super::super::stream::LineEffect::Nothing);
        assert_eq!(s.feed(b"\xff\xfe"), super::super::stream::LineEffect::Nothing);
        assert_eq!(s.non_json_lines, 2);
    }

    fn retries(status: u16, error: &str, count: u32, max_retries: u32) -> StreamState {
        let mut state = StreamState::default();
        for attempt in 1..=count {
            let line = format!(
                r#"{{"type":"system","subtype":"api_retry","attempt":{attempt},"max_retries":{max_retries},"retry_delay_ms":500,"error_status":{status},"error":"{error}","session_id":"s"}}"#
            );
            state.feed(line.as_bytes());
        }
        state
    }

    fn gives_up(state: &StreamState) -> Option<(String, bool)> {
        give_up(state).map(|outcome| match outcome {
            Outcome::Failure { kind, transient, .. } => (kind.as_str().to_owned(), transient),
            other => panic!("give_up gives failures, not {other:?}"),
        })
    }

    #[test]
    fn a_refused_key_is_given_up_at_its_second_retry() {
        assert_eq!(gives_up(&retries(401, "authentication_failed", 1, 10)), None, "the first may heal");
        let state = retries(401, "authentication_failed", 2, 10);
        assert_eq!(gives_up(&state), Some(("auth".into(), false)));
        let Some(Outcome::Failure { message, .. }) = give_up(&state) else { panic!("a failure") };
        assert!(message.contains("401 authentication_failed") && message.contains("retry 8 more times"), "{message}");
        assert!(message.contains("ANTHROPIC_API_KEY"), "{message}");
        assert_eq!(gives_up(&retries(403, "permission_error", 2, 10)), Some(("auth".into(), false)));
        assert_eq!(gives_up(&retries(402, "billing_error", 3, 10)), Some(("billing".into(), false)));
        let Some(Outcome::Failure { message, .. }) = give_up(&retries(401, "authentication_failed", 2, 3)) else {
            panic!("a failure")
        };
        assert!(message.contains("retry 1 more time."), "{message}");
    }

    #[test]
    fn errors_that_may_pass_are_left_to_the_cli() {
        for (status, error) in
            [(429, "rate_limit"), (529, "overloaded"), (500, "server_error"), (400, "invalid_request")]
        {
            assert_eq!(gives_up(&retries(status, error, 5, 10)), None, "{status}");
        }
        // At its last retry the CLI stops by itself, with its own words: nothing to save.
        assert_eq!(gives_up(&retries(401, "authentication_failed", 2, 2)), None);
        // Nor is a streak broken by an answer from the model.
        let mut state = retries(401, "authentication_failed", 1, 10);
        state.feed(br#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]},"session_id":"s"}"#);
        state.feed(
            br#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error_status":401,"error":"authentication_failed","session_id":"s"}"#,
        );
        assert_eq!(gives_up(&state), None);
    }

    #[test]
    fn the_recorded_auth_failure_is_not_cut_short() {
        // The fixture's CLI retried twice of two: it gave up by itself.
        assert_eq!(gives_up(&stream_of(fixture!("api-401-auth-failed.jsonl"))), None);
    }
}
