//! Durations as a person types them on the command line: a whole number and one unit, `s`, `m`
//! (minutes), `h`, `d` or `w` — `30m`, `12h`, `7d`, `2w`. Strict on purpose: `--older-than 1M`
//! must not quietly mean minutes or months.

use std::time::Duration;

/// Parses `30m`, `12h`, `7d`, `2w` (and `45s`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{text:?} is not a duration: expected a whole number followed by s, m, h, d or w (30m, 12h, 7d, 2w)")
    };
    let text_trimmed = text.trim();
    let split = text_trimmed.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text_trimmed.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    // About 2.9 million years: anything beyond is a typo.
    const MAX_SECS: u64 = 1 << 46;
    let secs = n.checked_mul(unit_secs).filter(|s| *s <= MAX_SECS).ok_or_else(|| format!("{text:?} is too long"))?;
    Ok(Duration::from_secs(secs))
}

/// The moment `ago` before `now`, in milliseconds since the epoch.
pub fn before(now: crate::model::Millis, ago: Duration) -> crate::model::Millis {
    now.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_number_and_one_unit() {
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse("0d"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_anything_else_with_the_accepted_forms() {
        for bad in ["", "7", "d", "7 d", "1M", "1.5h", "-1d", "7days", "1h30m", "99999999999999999999w"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("is not a duration") || err.contains("too long"), "{bad}: {err}");
        }
        assert!(parse("1M").expect_err("months").contains("30m, 12h, 7d, 2w"));
    }

    #[test]
    fn before_saturates() {
        assert_eq!(before(10_000, Duration::from_secs(3)), 7_000);
        assert_eq!(before(0, Duration::from_secs(u64::MAX / 2)), -i64::MAX);
    }
}
