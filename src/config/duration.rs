//! Durations as users type them: `250ms`, `5s`, `2m`, `1h30m`; a bare number is seconds.

use std::time::Duration;

/// The longest duration podvisor uses; longer ones are cut to it. ~100 years is "forever" for
/// a CI step, and every `Instant + duration` (deadlines, grace timers) stays representable.
pub const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses a duration; the error is a short reason, the caller names the flag and value.
pub fn parse(text: &str) -> Result<Duration, String> {
    parse_any(text).map(|d| d.min(LONGEST))
}

fn parse_any(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        // A number too large for f64 (`1e400`, forty digits) parses as infinity: it is longer
        // than 100 years like any other, not an error (found by tests/fuzz_binary.rs). `inf`
        // and `NaN` themselves, which f64 also takes, are no durations.
        if secs >= 0.0 && text.bytes().any(|b| b.is_ascii_digit()) {
            // Beyond Duration's range is beyond LONGEST anyway.
            return Ok(Duration::try_from_secs_f64(secs).unwrap_or(LONGEST));
        }
        return Err("must be a non-negative number of seconds".into());
    }
    humantime::parse_duration(text).map_err(|_| {
        "expected a duration like 250ms, 5s, 2m or 1h30m (a bare number is seconds)".into()
    })
}

/// Renders a duration for log lines: `1.5s`, `250ms`.
pub fn show(d: Duration) -> String {
    if d.as_millis() < 1000 && d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_f64_are_the_longest_and_inf_is_no_duration() {
        assert_eq!(parse("1e400"), Ok(LONGEST));
        assert_eq!(parse(&"9".repeat(400)), Ok(LONGEST));
        assert!(parse("inf").is_err());
        assert!(parse("NaN").is_err());
        assert!(parse("-1").is_err());
    }

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn huge_durations_are_cut_to_the_longest() {
        assert_eq!(parse("584542046090y"), Ok(LONGEST));
        assert_eq!(parse("1e300"), Ok(LONGEST));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "5x", "-1", "ms", "NaN", "inf"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn shows_compactly() {
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_secs(60)), "60s");
        assert_eq!(show(Duration::from_millis(1500)), "1.500s");
    }
}
