//! Reading the CLI's `--output-format stream-json` output, leniently: each line is parsed on its
//! own, unknown event types and fields are ignored here (they stay in the detailed log), and a
//! line that is not JSON is not an error, nor is one with invalid UTF-8 (it is read with the
//! bad bytes replaced). What a run needs is kept: the session id, what the model is doing now,
//! the errors the CLI reported, the API errors it is retrying (`system/api_retry`), what it said
//! of the account's usage limits (`rate_limit_event`), and the final `result` event.
//!
//! Most of what a busy task prints is tool output (`user` events), often large: once the session
//! id is known, a line that says it is of a type the runner does not track is not parsed at all.

use std::time::Duration;

use serde_json::Value;

/// The final `result` event, as far as a runner needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultEvent {
    pub subtype: String,
    pub is_error: bool,
    pub result: Option<String>,
    pub errors: Vec<String>,
    pub total_cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub num_turns: Option<u32>,
    pub duration_ms: Option<u64>,
    /// The `permission_denials` array as JSON text, when not empty.
    pub permission_denials: Option<String>,
    pub terminal_reason: Option<String>,
    pub api_error_status: Option<u16>,
    pub api_error_type: Option<String>,
    /// `api_error` (for example `connection_failed`).
    pub api_error: Option<String>,
    /// `structured_output`: the answer the model gave through the CLI's `StructuredOutput` tool
    /// when it ran with `--json-schema` (the same JSON is in `result` as text).
    pub structured_output: Option<Value>,
}

/// One `system/api_retry` event: the CLI's request failed and it will try again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiRetry {
    /// Which retry this is (1-based) of `max_retries`.
    pub attempt: u32,
    pub max_retries: u32,
    pub retry_delay_ms: u64,
    /// The HTTP status, when there was an answer.
    pub error_status: Option<u16>,
    /// The CLI's name for the error: `authentication_failed`, `rate_limit`, `overloaded`, ...
    pub error: Option<String>,
}

impl ApiRetry {
    /// What the task is doing meanwhile: `API error 401 (authentication_failed), retry 3 of 10 in 2.1 s`.
    pub fn describe(&self) -> String {
        let what = match (self.error_status, self.error.as_deref()) {
            (Some(status), Some(error)) => format!("API error {status} ({error})"),
            (Some(status), None) => format!("API error {status}"),
            (None, Some(error)) => format!("API request failed ({error})"),
            (None, None) => "API request failed".to_owned(),
        };
        format!(
            "{what}, retry {} of {} in {:.1} s",
            self.attempt,
            self.max_retries,
            Duration::from_millis(self.retry_delay_ms).as_secs_f64()
        )
    }

    fn parse(event: &Value) -> ApiRetry {
        let u64_of = |key: &str| event.get(key).and_then(Value::as_u64);
        ApiRetry {
            attempt: u64_of("attempt").and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            max_retries: u64_of("max_retries").and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            retry_delay_ms: u64_of("retry_delay_ms").unwrap_or(0),
            error_status: u64_of("error_status").and_then(|n| u16::try_from(n).ok()),
            error: event.get("error").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

/// The `rate_limit_info` of a `rate_limit_event` (or of an assistant message refused by a usage
/// limit), every field optional: an odd or missing field is left out, never an error.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimitInfo {
    /// `allowed`, `allowed_warning`, `rejected`.
    pub status: Option<String>,
    /// When the window resets, in seconds since the epoch, as the CLI says it (not bounded here).
    pub resets_at: Option<i64>,
    /// `five_hour`, `seven_day`, `seven_day_opus`, `seven_day_sonnet`, ...
    pub rate_limit_type: Option<String>,
    /// How much of the window is used, 0 to 1 (an `allowed_warning` says it).
    pub utilization: Option<f64>,
    /// The warning threshold that was passed, 0 to 1.
    pub surpassed_threshold: Option<f64>,
    pub overage_status: Option<String>,
    pub overage_disabled_reason: Option<String>,
    pub is_using_overage: Option<bool>,
    /// `unifiedWindows`: each window by name, in the order the CLI wrote them.
    pub windows: Vec<(String, RateLimitWindow)>,
}

/// One of `unifiedWindows`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimitWindow {
    pub status: Option<String>,
    pub utilization: Option<f64>,
    pub resets_at: Option<i64>,
    pub surpassed_threshold: Option<f64>,
}

impl RateLimitInfo {
    fn parse(info: &Value) -> RateLimitInfo {
        let str_of = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_owned);
        let windows = info
            .get("unifiedWindows")
            .and_then(Value::as_object)
            .map(|windows| {
                windows
                    .iter()
                    .map(|(name, w)| {
                        (
                            name.clone(),
                            RateLimitWindow {
                                status: w.get("status").and_then(Value::as_str).map(str::to_owned),
                                utilization: fraction(w.get("utilization")),
                                resets_at: epoch_seconds(w.get("resetsAt")),
                                surpassed_threshold: fraction(w.get("surpassedThreshold")),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        RateLimitInfo {
            status: str_of("status"),
            resets_at: epoch_seconds(info.get("resetsAt")),
            rate_limit_type: str_of("rateLimitType"),
            utilization: fraction(info.get("utilization")),
            surpassed_threshold: fraction(info.get("surpassedThreshold")),
            overage_status: str_of("overageStatus"),
            overage_disabled_reason: str_of("overageDisabledReason"),
            is_using_overage: info.get("isUsingOverage").and_then(Value::as_bool),
            windows,
        }
    }

    /// Whether the account's requests are refused until the reset.
    pub fn is_rejected(&self) -> bool {
        self.status.as_deref() == Some("rejected")
    }

    /// Whether the account is near its limit.
    pub fn is_warning(&self) -> bool {
        self.status.as_deref() == Some("allowed_warning")
    }
}

/// A time in epoch seconds: an integer, a finite float (floored), or a string of either.
fn epoch_seconds(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    let float = match value {
        Value::Number(n) => n.as_i64().map(|i| i as f64).or_else(|| n.as_f64()),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    // Beyond what i64 milliseconds can carry is no time at all.
    (float.is_finite() && float.abs() < 9.0e15).then(|| float.floor() as i64)
}

/// A number that should be a fraction (0 to 1), kept only when it is a finite number.
fn fraction(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64).filter(|f| f.is_finite())
}

/// What one line changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineEffect {
    /// Nothing a runner tracks.
    Nothing,
    /// The session id became known.
    Session,
    /// The model started a new step; the new `last_action`.
    Action(String),
    /// The CLI is retrying a failed API request ([`StreamState::api_retry`]); the new
    /// `last_action`, which says so.
    ApiRetry(String),
    /// A `rate_limit_event` arrived (see [`StreamState::usage_rejected`] and
    /// [`StreamState::usage_warning`]).
    RateLimit,
    /// The result event arrived.
    Result,
}

/// Everything learnt from the stream so far.
#[derive(Clone, Debug, Default)]
pub struct StreamState {
    pub session_id: Option<String>,
    pub last_action: Option<String>,
    /// `error` of the last assistant message that carried one (`rate_limit`,
    /// `authentication_failed`, `server_error`, `invalid_request`, ...).
    pub assistant_error: Option<String>,
    /// Text of that message (the CLI's explanation).
    pub assistant_error_text: Option<String>,
    pub result: Option<ResultEvent>,
    /// The latest `system/api_retry` event, if the CLI is retrying.
    pub api_retry: Option<ApiRetry>,
    /// How many retries in a row reported the same error as `api_retry` (none in between got
    /// an answer from the model): 1 for the first.
    pub api_retry_streak: u32,
    /// The last `rate_limit_event` that said the account's usage limit refuses requests (or the
    /// `rate_limit_info` of an assistant message refused for it).
    pub usage_rejected: Option<RateLimitInfo>,
    /// The last `rate_limit_event` that warned the limit is near (`allowed_warning`).
    pub usage_warning: Option<RateLimitInfo>,
    pub lines: u64,
    /// Lines that were parsed and found not to be JSON.
    pub non_json_lines: u64,
}

/// The longest `last_action`.
const ACTION_LEN: usize = 160;

impl StreamState {
    /// Takes one line of output.
    pub fn feed(&mut self, line: &[u8]) -> LineEffect {
        self.lines += 1;
        if self.session_id.is_some()
            && leading_type(line).is_some_and(|t| {
                t != b"assistant" && t != b"result" && t != b"rate_limit_event" && !is_api_retry(t, line)
            })
        {
            return LineEffect::Nothing;
        }
        let event = match serde_json::from_slice::<Value>(line) {
            Ok(event) => event,
            // Invalid UTF-8 in a string makes the line invalid JSON: read it with the bad bytes
            // replaced, so that a result with a broken character still counts.
            Err(_) if line.first() == Some(&b'{') && std::str::from_utf8(line).is_err() => {
                match serde_json::from_str::<Value>(&String::from_utf8_lossy(line)) {
                    Ok(event) => event,
                    Err(_) => {
                        self.non_json_lines += 1;
                        return LineEffect::Nothing;
                    }
                }
            }
            Err(_) => {
                self.non_json_lines += 1;
                return LineEffect::Nothing;
            }
        };
        let mut effect = LineEffect::Nothing;
        if self.session_id.is_none()
            && let Some(id) = event.get("session_id").and_then(Value::as_str)
        {
            self.session_id = Some(id.to_owned());
            effect = LineEffect::Session;
        }
        match event.get("type").and_then(Value::as_str) {
            Some("assistant") => {
                if let Some(error) = event.get("error").and_then(Value::as_str) {
                    self.assistant_error = Some(error.to_owned());
                    self.assistant_error_text = message_text(&event);
                    // The refusal repeats the event's information: enough if the event was lost.
                    if let Some(info) = event.pointer("/api_error_params/rate_limit_info").map(RateLimitInfo::parse)
                        && info.is_rejected()
                        && self.usage_rejected.is_none()
                    {
                        self.usage_rejected = Some(info);
                    }
                }
                if let Some(action) = action_of(&event) {
                    self.last_action = Some(action.clone());
                    effect = LineEffect::Action(action);
                }
                // The model answered: the requests go through again.
                if event.get("error").is_none() {
                    self.api_retry = None;
                    self.api_retry_streak = 0;
                }
            }
            Some("system") if event.get("subtype").and_then(Value::as_str) == Some("api_retry") => {
                let retry = ApiRetry::parse(&event);
                let same = self
                    .api_retry
                    .as_ref()
                    .is_some_and(|last| (last.error_status, &last.error) == (retry.error_status, &retry.error));
                self.api_retry_streak = if same { self.api_retry_streak + 1 } else { 1 };
                let action = retry.describe();
                self.last_action = Some(action.clone());
                self.api_retry = Some(retry);
                effect = LineEffect::ApiRetry(action);
            }
            Some("rate_limit_event") => {
                let info = event.get("rate_limit_info").map(RateLimitInfo::parse).unwrap_or_default();
                if info.is_rejected() {
                    self.usage_rejected = Some(info);
                } else if info.is_warning() {
                    self.usage_warning = Some(info);
                }
                effect = LineEffect::RateLimit;
            }
            Some("result") => {
                self.result = Some(parse_result(&event));
                if let Some(id) = event.get("session_id").and_then(Value::as_str) {
                    self.session_id = Some(id.to_owned());
                }
                effect = LineEffect::Result;
            }
            _ => {}
        }
        effect
    }
}

/// The event type of a line the CLI wrote with `type` as its first key (`{"type":"user",...`),
/// without parsing the rest.
fn leading_type(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(br#"{"type":""#)?;
    let end = rest.iter().take(64).position(|&b| b == b'"')?;
    Some(&rest[..end])
}

/// Whether a line of type `line_type` is a `system/api_retry` event (written as
/// `{"type":"system","subtype":"api_retry",...`), without parsing it.
fn is_api_retry(line_type: &[u8], line: &[u8]) -> bool {
    const SUBTYPE: &[u8] = br#""subtype":"api_retry""#;
    line_type == b"system" && line[..line.len().min(128)].windows(SUBTYPE.len()).any(|w| w == SUBTYPE)
}

fn message_text(event: &Value) -> Option<String> {
    event
        .pointer("/message/content")?
        .as_array()?
        .iter()
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .next()
        .map(str::to_owned)
}

/// `Bash: cargo test`, `Edit: src/lib.rs`, or `Text: first words` for a plain answer.
fn action_of(event: &Value) -> Option<String> {
    let blocks = event.pointer("/message/content")?.as_array()?;
    let mut text_action = None;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("tool");
                let input = block.get("input");
                let detail = ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"]
                    .iter()
                    .find_map(|key| input.and_then(|i| i.get(*key)).and_then(Value::as_str))
                    .map(str::to_owned)
                    .or_else(|| input.filter(|i| i.as_object().is_some_and(|o| !o.is_empty())).map(Value::to_string));
                return Some(one_line(&match detail {
                    Some(detail) => format!("{name}: {detail}"),
                    None => name.to_owned(),
                }));
            }
            Some("text") if text_action.is_none() => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or("").trim();
                if !text.is_empty() {
                    text_action = Some(one_line(&format!("Text: {text}")));
                }
            }
            _ => {}
        }
    }
    text_action
}

fn one_line(text: &str) -> String {
    // Only the start can be shown: a long text is not looked at whole.
    let end = (0..=text.len().min(ACTION_LEN * 4)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let mut flat = String::with_capacity(ACTION_LEN * 2);
    let mut chars = 0;
    for word in text[..end].split_whitespace() {
        if chars > 0 {
            flat.push(' ');
            chars += 1;
        }
        flat.push_str(word);
        chars += word.chars().count();
        if chars > ACTION_LEN {
            break;
        }
    }
    if chars <= ACTION_LEN && end == text.len() {
        flat
    } else {
        let mut cut: String = flat.chars().take(ACTION_LEN - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
#[test]
fn one_line_flattens_and_shortens() {
    assert_eq!(one_line("  a\n b\tc "), "a b c");
    let long = one_line(&"word ".repeat(1000));
    assert_eq!(long.chars().count(), ACTION_LEN);
    assert!(long.ends_with('…'));
    let unbroken = one_line(&"é".repeat(10_000));
    assert_eq!(unbroken.chars().count(), ACTION_LEN);
}

fn parse_result(event: &Value) -> ResultEvent {
    let str_of = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
    let u64_of = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let usage = event.get("usage");
    let denials =
        event.get("permission_denials").filter(|d| d.as_array().is_some_and(|a| !a.is_empty())).map(Value::to_string);
    ResultEvent {
        subtype: str_of("subtype").unwrap_or_default(),
        is_error: event.get("is_error").and_then(Value::as_bool).unwrap_or(true),
        result: str_of("result"),
        errors: event
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        total_cost_usd: event.get("total_cost_usd").and_then(Value::as_f64).unwrap_or(0.0),
        input_tokens: u64_of(usage.and_then(|u| u.get("input_tokens"))),
        output_tokens: u64_of(usage.and_then(|u| u.get("output_tokens"))),
        cache_creation_input_tokens: u64_of(usage.and_then(|u| u.get("cache_creation_input_tokens"))),
        cache_read_input_tokens: u64_of(usage.and_then(|u| u.get("cache_read_input_tokens"))),
        num_turns: event.get("num_turns").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()),
        duration_ms: event.get("duration_ms").and_then(Value::as_u64),
        permission_denials: denials,
        terminal_reason: str_of("terminal_reason"),
        api_error_status: event.get("api_error_status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()),
        api_error_type: str_of("api_error_type"),
        api_error: str_of("api_error"),
        structured_output: event.get("structured_output").filter(|v| !v.is_null()).cloned(),
    }
}

#[cfg(test)]
mod api_retry_tests {
    use super::*;

    const RETRY_401: &str = r#"{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2100,"error_status":401,"error":"authentication_failed","session_id":"s"}"#;

    #[test]
    fn a_retry_is_the_current_action_even_after_the_session_is_known() {
        let mut s = StreamState::default();
        s.feed(br#"{"type":"system","subtype":"init","session_id":"s"}"#);
        let effect = s.feed(RETRY_401.as_bytes());
        let text = "API error 401 (authentication_failed), retry 3 of 10 in 2.1 s";
        assert_eq!(effect, LineEffect::ApiRetry(text.to_owned()));
        assert_eq!(s.last_action.as_deref(), Some(text));
        assert_eq!(s.api_retry_streak, 1);
        s.feed(RETRY_401.as_bytes());
        assert_eq!(s.api_retry_streak, 2);
        // Another error starts a new streak; an answer from the model ends it.
        s.feed(RETRY_401.replace("401", "529").replace("authentication_failed", "overloaded").as_bytes());
        assert_eq!(s.api_retry_streak, 1);
        s.feed(br#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]},"session_id":"s"}"#);
        assert_eq!((s.api_retry.as_ref(), s.api_retry_streak), (None, 0));
        // Other system events are still not parsed.
        assert_eq!(s.feed(br#"{"type":"system","subtype":"status","session_id":"s"}"#), LineEffect::Nothing);
    }

    #[test]
    fn a_retry_without_a_status_says_what_failed() {
        let retry = ApiRetry {
            attempt: 1,
            max_retries: 1,
            retry_delay_ms: 544,
            error_status: None,
            error: Some("unknown".into()),
        };
        assert_eq!(retry.describe(), "API request failed (unknown), retry 1 of 1 in 0.5 s");
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    fn feed_fixture(name: &str) -> StreamState {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut state = StreamState::default();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            state.feed(line);
        }
        state
    }

    #[test]
    fn a_rejected_event_is_kept_with_all_its_fields() {
        let s = feed_fixture("usage-limit-rejected.jsonl");
        let info = s.usage_rejected.expect("rejected");
        assert_eq!(info.status.as_deref(), Some("rejected"));
        assert_eq!(info.resets_at, Some(1_796_190_516));
        assert_eq!(info.rate_limit_type.as_deref(), Some("five_hour"));
        assert_eq!(info.overage_status.as_deref(), Some("rejected"));
        assert_eq!(info.overage_disabled_reason.as_deref(), Some("org_level_disabled"));
        assert_eq!(info.is_using_overage, Some(false));
        assert!(s.usage_warning.is_none());
        let result = s.result.expect("result");
        assert_eq!((result.is_error, result.api_error_status), (true, Some(429)));
        assert_eq!(result.api_error.as_deref(), Some("usage_limit_reached"));
    }

    #[test]
    fn a_structured_output_is_kept_beside_the_result() {
        // The result line of this fixture does not start with its type: it is parsed whole.
        let s = feed_fixture("success-structured-output.jsonl");
        let result = s.result.expect("result");
        assert!(!result.is_error);
        assert_eq!(result.structured_output, Some(serde_json::json!({"answer": 42})));
        assert_eq!(result.result.as_deref(), Some(r#"{"answer":42}"#));
        assert_eq!(feed_fixture("success-text.jsonl").result.expect("result").structured_output, None);
    }

    #[test]
    fn a_warning_is_kept_with_its_windows() {
        let s = feed_fixture("usage-limit-warning.jsonl");
        let info = s.usage_warning.expect("warning");
        assert_eq!(info.utilization, Some(0.92));
        assert_eq!(info.surpassed_threshold, Some(0.9));
        assert_eq!(info.resets_at, Some(1_796_186_931));
        assert_eq!(info.windows.len(), 1);
        let (name, window) = &info.windows[0];
        assert_eq!(name, "five_hour");
        assert_eq!(window.status.as_deref(), Some("allowed_warning"));
        assert_eq!(window.utilization, Some(0.92));
        assert!(s.usage_rejected.is_none());
        assert!(!s.result.expect("result").is_error);
    }

    #[test]
    fn an_api_key_429_and_an_allowed_event_say_nothing_of_usage() {
        for name in ["api-429-usage-limit-with-api-key.jsonl", "oauth-with-rate-limit-event.jsonl"] {
            let s = feed_fixture(name);
            assert!(s.usage_rejected.is_none() && s.usage_warning.is_none(), "{name}");
        }
    }

    #[test]
    fn odd_fields_are_left_out_never_an_error() {
        let mut s = StreamState::default();
        s.feed(br#"{"type":"system","subtype":"init","session_id":"s"}"#);
        let effect = s.feed(
            br#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":"soon","rateLimitType":7,"utilization":"x","unifiedWindows":[1]},"session_id":"s"}"#,
        );
        assert_eq!(effect, LineEffect::RateLimit);
        let info = s.usage_rejected.clone().expect("rejected");
        assert_eq!((info.resets_at, info.rate_limit_type, info.utilization), (None, None, None));
        assert!(info.windows.is_empty());
        // No rate_limit_info at all, a float and a string for the time, an absurd number.
        s.feed(br#"{"type":"rate_limit_event","session_id":"s"}"#);
        let parse = |json: &str| RateLimitInfo::parse(&serde_json::from_str(json).expect("json"));
        assert_eq!(parse(r#"{"resetsAt":1796190516.9}"#).resets_at, Some(1_796_190_516));
        assert_eq!(parse(r#"{"resetsAt":" 1796190516 "}"#).resets_at, Some(1_796_190_516));
        assert_eq!(parse(r#"{"resetsAt":1e300}"#).resets_at, None);
        assert_eq!(parse(r#"{"resetsAt":-5}"#).resets_at, Some(-5));
    }
}
