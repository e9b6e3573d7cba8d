//! Wall-clock time as the store keeps it (milliseconds since the epoch) and as people and clients
//! read it (RFC 3339, UTC, milliseconds: `2026-11-25T03:12:45.123Z`).

use crate::model::Millis;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Formats a stored time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(super::rfc3339(1_795_576_365_123), "2026-11-25T03:12:45.123Z");
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
