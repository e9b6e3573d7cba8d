//! The account's usage limits (a subscription's 5-hour and weekly windows), as pure decisions:
//! whether an attempt was refused by one, until when work waits for it (bounded, jittered), and
//! the words people read ("5-hour usage limit until 05:48"). No IO: the store keeps the pause,
//! the executor acts on it.
//!
//! A usage limit is not an ordinary rate limit: the CLI gives up at once and every request of
//! the account is refused until the window resets. So it is neither a failure nor an attempt of
//! the task; the whole queue waits.

use std::time::Duration;

use chrono::{DateTime, TimeZone};

use crate::model::Millis;
use crate::runner::{RateLimitInfo, ResultEvent};

/// How long to wait when the CLI did not say when the limit resets: then try again (a refusal
/// pauses again, for as long).
pub const MISSING_RESET_WAIT: Duration = Duration::from_secs(5 * 60);
/// How long to wait for a reset the CLI says is already past (a clock that differs, a stale
/// value): a few seconds, not a stuck queue nor a burst of refusals.
pub const PAST_RESET_WAIT: Duration = Duration::from_secs(5);
/// The longest pause: a reset further ahead is not believed (the weekly window is 7 days).
pub const MAX_PAUSE: Duration = Duration::from_secs(8 * 24 * 3600);
/// How long after the reset work starts again, at least: the API's clock may be a little behind.
pub const RESUME_MARGIN: Duration = Duration::from_secs(2);
/// Up to how much later still, at random: so that not every queue of every user sends its first
/// request in the same millisecond.
pub const RESUME_JITTER: Duration = Duration::from_secs(3);

/// An attempt refused by the account's usage limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// `five_hour`, `seven_day`, ...; `None` when the CLI did not say.
    pub kind: Option<String>,
    /// When the limit resets, as the CLI said (milliseconds since the epoch, not bounded).
    pub resets_at: Option<Millis>,
}

/// The account's pause, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    pub kind: Option<String>,
    /// As the CLI said it (milliseconds; may be missing or absurd).
    pub resets_at: Option<Millis>,
    /// When it was seen.
    pub seen_at: Millis,
    /// When work starts again ([`resume_at`]).
    pub until: Millis,
}

/// The last warning that a limit is near (`allowed_warning`).
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub kind: Option<String>,
    /// How much of the window is used, 0 to 1.
    pub utilization: Option<f64>,
    pub surpassed_threshold: Option<f64>,
    pub resets_at: Option<Millis>,
    pub seen_at: Millis,
}

/// Whether a run was refused by the account's usage limit: a `rejected` rate-limit event, or,
/// when none came, a failed result that says so (`api_error: usage_limit_reached`, or the CLI's
/// "You've hit your 5-hour limit" message). An API key's plain 429 is neither.
pub fn recognise(rejected: Option<&RateLimitInfo>, result: Option<&ResultEvent>) -> Option<Hit> {
    if let Some(info) = rejected {
        return Some(Hit {
            kind: info.rate_limit_type.clone().or_else(|| result.and_then(|r| kind_in_message(r.result.as_deref()?))),
            resets_at: info.resets_at.map(|s| s.saturating_mul(1000)),
        });
    }
    let result = result.filter(|r| r.is_error)?;
    let by_message = result.result.as_deref().is_some_and(is_limit_message);
    (by_message || result.api_error.as_deref() == Some("usage_limit_reached"))
        .then(|| Hit { kind: result.result.as_deref().and_then(kind_in_message), resets_at: None })
}

/// "You've hit your 5-hour limit · resets 5:48am (UTC)", "You've hit your weekly limit ...".
fn is_limit_message(text: &str) -> bool {
    let text = text.trim_start();
    let lower = text.to_lowercase();
    (lower.starts_with("you've hit your") || lower.starts_with("you’ve hit your"))
        && lower.split('·').next().is_some_and(|head| head.contains("limit"))
}

/// The kind a usage-limit message names, when it names one this module knows.
fn kind_in_message(text: &str) -> Option<String> {
    if !is_limit_message(text) {
        return None;
    }
    let head = text.split('·').next().unwrap_or(text).to_lowercase();
    let kind = if head.contains("5-hour") || head.contains("five-hour") {
        "five_hour"
    } else if head.contains("opus") {
        "seven_day_opus"
    } else if head.contains("sonnet") {
        "seven_day_sonnet"
    } else if head.contains("weekly") || head.contains("7-day") {
        "seven_day"
    } else {
        return None;
    };
    Some(kind.to_owned())
}

/// When work starts again after a refusal seen at `now`: [`RESUME_MARGIN`] plus `jitter` (0 to 1)
/// of [`RESUME_JITTER`] after the reset, which is bounded: missing, [`MISSING_RESET_WAIT`] from
/// now; past, [`PAST_RESET_WAIT`] from now; never beyond [`MAX_PAUSE`].
pub fn resume_at(resets_at: Option<Millis>, now: Millis, jitter: f64) -> Millis {
    let ms = |d: Duration| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX);
    let reset = match resets_at {
        None => now.saturating_add(ms(MISSING_RESET_WAIT)),
        Some(at) if at <= now => now.saturating_add(ms(PAST_RESET_WAIT)),
        Some(at) => at.min(now.saturating_add(ms(MAX_PAUSE))),
    };
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    reset.saturating_add(ms(RESUME_MARGIN)).saturating_add((ms(RESUME_JITTER) as f64 * jitter) as Millis)
}

/// A random fraction (0 to 1) for [`resume_at`], from the standard library's hasher seed.
pub fn random_jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(crate::time::now_ms().unsigned_abs());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The window's name for people: `5-hour`, `weekly`, `weekly Opus`; the raw name for one this
/// version does not know; `usage` when the CLI did not say.
pub fn kind_words(kind: Option<&str>) -> String {
    match kind {
        Some("five_hour") => "5-hour".to_owned(),
        Some("seven_day") => "weekly".to_owned(),
        Some("seven_day_opus") => "weekly Opus".to_owned(),
        Some("seven_day_sonnet") => "weekly Sonnet".to_owned(),
        Some(other) if !other.trim().is_empty() => other.replace('_', " "),
        _ => "account's".to_owned(),
    }
}

/// `5-hour usage limit until 05:48` (in `tz`); with the day when it is not within the next 20
/// hours: `weekly usage limit until Tue 8 Dec 05:48`.
pub fn describe_in<Tz: TimeZone>(kind: Option<&str>, until: Millis, now: Millis, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{} usage limit until {}", kind_words(kind), time_in(until, now, tz))
}

/// [`describe_in`] the local time zone.
pub fn describe(kind: Option<&str>, until: Millis, now: Millis) -> String {
    describe_in(kind, until, now, &chrono::Local)
}

fn time_in<Tz: TimeZone>(at: Millis, now: Millis, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let Some(when) = DateTime::from_timestamp_millis(at) else { return "an unknown time".to_owned() };
    let when = when.with_timezone(tz);
    if (at - now).abs() < 20 * 3600 * 1000 {
        when.format("%H:%M").to_string()
    } else {
        when.format("%a %-d %b %H:%M").to_string()
    }
}

/// The history line of a task sent back to wait: `usage limit (five_hour) until 2026-12-02T05:48:38.000Z`.
pub fn event_detail(kind: Option<&str>, until: Millis) -> String {
    format!("usage limit ({}) until {}", kind.unwrap_or("unknown"), crate::time::rfc3339(until))
}

/// Whether a warning is still worth showing: its window has not reset (one without a reset time,
/// for five hours after it was seen).
pub fn warning_current(warning: &Warning, now: Millis) -> bool {
    warning.resets_at.unwrap_or(warning.seen_at + 5 * 3600 * 1000) > now
}

/// `5-hour limit 92% used (warned at 90%), resets 05:48`.
pub fn describe_warning_in<Tz: TimeZone>(warning: &Warning, now: Millis, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut text = format!("{} limit", kind_words(warning.kind.as_deref()));
    if let Some(used) = warning.utilization {
        text.push_str(&format!(" {:.0}% used", used * 100.0));
    } else {
        text.push_str(" nearly reached");
    }
    if let Some(threshold) = warning.surpassed_threshold {
        text.push_str(&format!(" (warned at {:.0}%)", threshold * 100.0));
    }
    if let Some(reset) = warning.resets_at {
        text.push_str(&format!(", resets {}", time_in(reset, now, tz)));
    }
    text
}

/// [`describe_warning_in`] the local time zone.
pub fn describe_warning(warning: &Warning, now: Millis) -> String {
    describe_warning_in(warning, now, &chrono::Local)
}

/// The warning a run's `allowed_warning` event gives, seen at `now`.
pub fn warning_of(info: &RateLimitInfo, now: Millis) -> Warning {
    Warning {
        kind: info.rate_limit_type.clone(),
        utilization: info.utilization,
        surpassed_threshold: info.surpassed_threshold,
        resets_at: info.resets_at.map(|s| s.saturating_mul(1000)),
        seen_at: now,
    }
}

/// What a person can do about a pause, said where it is shown.
pub const WHAT_TO_DO: &str =
    "`claude-worker-inspect resume` tries now; `claude-worker-inspect cancel <task or orchestration>` drops what waits";

/// The one line the inspect CLI and the live view show while work waits:
/// `paused: 5-hour usage limit until 05:48 (...)`.
pub fn pause_line(pause: &Pause, now: Millis) -> String {
    format!(
        "paused: {} (claude-worker-inspect resume: try now; claude-worker-inspect cancel: drop what waits)",
        describe(pause.kind.as_deref(), pause.until, now)
    )
}

/// The line that shows a current warning: `usage: 5-hour limit 92% used (warned at 90%), resets 05:48`.
pub fn warning_line(warning: &Warning, now: Millis) -> Option<String> {
    warning_current(warning, now).then(|| format!("usage: {}", describe_warning(warning, now)))
}

/// What a person's "resume now" did: the pause it lifted, or that none held the queue.
pub fn resumed_sentence(lifted: Option<&Pause>, now: Millis) -> String {
    match lifted {
        Some(pause) => format!(
            "resumed: the {} lifted; queued tasks start now (a refusal pauses them again)",
            describe(pause.kind.as_deref(), pause.until, now).replacen(
                "usage limit until",
                "usage-limit pause until",
                1
            )
        ),
        None => "nothing to resume: no usage limit pauses the queue".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    const NOW: Millis = 1_796_172_517_000; // 2026-12-02T00:48:37Z

    fn info(status: &str, kind: Option<&str>, resets_at: Option<i64>) -> RateLimitInfo {
        RateLimitInfo {
            status: Some(status.to_owned()),
            rate_limit_type: kind.map(str::to_owned),
            resets_at,
            ..RateLimitInfo::default()
        }
    }

    fn error_result(text: &str, api_error: Option<&str>) -> ResultEvent {
        ResultEvent {
            is_error: true,
            result: Some(text.to_owned()),
            api_error_status: Some(429),
            api_error: api_error.map(str::to_owned),
            ..ResultEvent::default()
        }
    }

    #[test]
    fn a_rejected_event_is_a_hit_with_its_kind_and_reset() {
        let rejected = info("rejected", Some("five_hour"), Some(1_796_190_516));
        assert_eq!(
            recognise(Some(&rejected), None),
            Some(Hit { kind: Some("five_hour".into()), resets_at: Some(1_796_190_516_000) })
        );
        // Without a kind in the event, the message's.
        let bare = info("rejected", None, None);
        let message = error_result("You've hit your weekly limit · resets Dec 8", None);
        assert_eq!(recognise(Some(&bare), Some(&message)).and_then(|h| h.kind).as_deref(), Some("seven_day"));
    }

    #[test]
    fn the_message_alone_is_a_hit_when_no_event_came() {
        let message = error_result("You've hit your 5-hour limit · resets 5:48am (UTC)", Some("usage_limit_reached"));
        assert_eq!(recognise(None, Some(&message)), Some(Hit { kind: Some("five_hour".into()), resets_at: None }));
        let odd = error_result("You've hit your limit for today", None);
        assert_eq!(recognise(None, Some(&odd)), Some(Hit { kind: None, resets_at: None }));
        let by_api_error = error_result("refused", Some("usage_limit_reached"));
        assert!(recognise(None, Some(&by_api_error)).is_some());
    }

    #[test]
    fn an_api_key_429_and_a_success_are_not_hits() {
        let api_key = error_result(
            "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.",
            None,
        );
        assert_eq!(recognise(None, Some(&api_key)), None);
        let mut success = error_result("You've hit your 5-hour limit · resets 5:48am", None);
        success.is_error = false;
        assert_eq!(recognise(None, Some(&success)), None, "a model's answer may quote the words");
        assert_eq!(recognise(None, None), None);
    }

    #[test]
    fn the_pause_ends_a_few_jittered_seconds_after_a_bounded_reset() {
        let reset = NOW + 3_600_000;
        assert_eq!(resume_at(Some(reset), NOW, 0.0), reset + 2_000);
        assert_eq!(resume_at(Some(reset), NOW, 1.0), reset + 5_000);
        assert_eq!(resume_at(Some(reset), NOW, 0.5), reset + 3_500);
        // Missing: a short wait; past: a few seconds; years ahead: at most 8 days.
        assert_eq!(resume_at(None, NOW, 0.0), NOW + 300_000 + 2_000);
        assert_eq!(resume_at(Some(NOW - 86_400_000), NOW, 0.0), NOW + 5_000 + 2_000);
        assert_eq!(resume_at(Some(0), NOW, 0.0), NOW + 7_000);
        let years = NOW + 10 * 365 * 86_400_000;
        assert_eq!(resume_at(Some(years), NOW, 0.0), NOW + 8 * 86_400_000 + 2_000);
        assert_eq!(resume_at(Some(Millis::MAX), NOW, 1.0), NOW + 8 * 86_400_000 + 5_000);
        assert_eq!(resume_at(Some(Millis::MIN), NOW, 0.0), NOW + 7_000);
        // An odd jitter is no jitter or the most.
        assert_eq!(resume_at(Some(reset), NOW, f64::NAN), reset + 2_000);
        assert_eq!(resume_at(Some(reset), NOW, 7.0), reset + 5_000);
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn the_words_people_read() {
        let at_0548 = 1_796_190_516_000; // 2026-12-02T05:48:36Z
        assert_eq!(describe_in(Some("five_hour"), at_0548, NOW, &Utc), "5-hour usage limit until 05:48");
        assert_eq!(
            describe_in(Some("seven_day"), at_0548 + 6 * 86_400_000, NOW, &Utc),
            "weekly usage limit until Tue 8 Dec 05:48"
        );
        assert_eq!(kind_words(Some("seven_day_opus")), "weekly Opus");
        assert_eq!(kind_words(Some("new_window")), "new window");
        assert_eq!(describe_in(None, at_0548, NOW, &Utc), "account's usage limit until 05:48");
        assert_eq!(event_detail(Some("five_hour"), at_0548), "usage limit (five_hour) until 2026-12-02T05:48:36.000Z");
        let warning = Warning {
            kind: Some("five_hour".into()),
            utilization: Some(0.92),
            surpassed_threshold: Some(0.9),
            resets_at: Some(at_0548),
            seen_at: NOW,
        };
        assert_eq!(describe_warning_in(&warning, NOW, &Utc), "5-hour limit 92% used (warned at 90%), resets 05:48");
        assert!(warning_current(&warning, NOW));
        assert!(!warning_current(&warning, at_0548));
        let bare = Warning { kind: None, utilization: None, surpassed_threshold: None, resets_at: None, seen_at: NOW };
        assert_eq!(describe_warning_in(&bare, NOW, &Utc), "account's limit nearly reached");
        assert!(warning_current(&bare, NOW + 3_600_000) && !warning_current(&bare, NOW + 6 * 3_600_000));
    }
}
