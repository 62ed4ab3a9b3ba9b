//! When a rate or usage limit resets, read from the text a CLI printed.
//!
//! The CLIs print the reset in several ways (observed, and documented by their
//! vendors): claude's usage limits as `…|1733097600` (Unix seconds) or
//! `resets 5pm (America/New_York)`, codex's as `try again at 3:00 PM` (local
//! time), and API messages as an RFC 3339 timestamp or `try again in 20s`.
//! A clock time without a date is the next such time; one printed to the minute
//! gets a minute's margin, since the CLI truncated the reset to it.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use regex::Regex;

/// How long a goal waits when a limit was hit and nothing says when it resets.
pub const DEFAULT_LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait for a limit that resets at `reset` (nothing, if that has
/// passed; [`DEFAULT_LIMIT_BACKOFF`] when nothing says).
pub fn limit_wait(reset: Option<std::time::SystemTime>, now: std::time::SystemTime) -> Duration {
    reset.map_or(DEFAULT_LIMIT_BACKOFF, |at| {
        at.duration_since(now).unwrap_or(Duration::ZERO)
    })
}

/// A stated reset further out than this is not believed (a parse gone wrong).
const LONGEST_RESET: Duration = Duration::from_secs(8 * 24 * 3600);

static EPOCH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\|\s*(\d{10})(?:\d{3})?\b").expect("valid regex"));
static RFC3339: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})")
        .expect("valid regex")
});
static AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:in|after)\s+(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b",
    )
    .expect("valid regex")
});
static CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:resets?|reset at|try again at|retry at|available at|until)\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?(?:\s*\(([A-Za-z_]+(?:/[A-Za-z_+-]+)*)\))?",
    )
    .expect("valid regex")
});

/// When the limit a message reports resets, judged at `now` in the local time zone.
pub fn reset_from_message(message: &str, now: SystemTime) -> Option<SystemTime> {
    let now_ts = Timestamp::try_from(now).ok()?;
    let reset = epoch_reset(message)
        .or_else(|| rfc3339_reset(message))
        .or_else(|| relative_reset(message, now_ts))
        .or_else(|| clock_reset(message, &now_ts.to_zoned(TimeZone::system())))?;
    let wait = reset.duration_since(now_ts);
    if wait.is_negative() {
        return Some(now);
    }
    if wait.unsigned_abs() > LONGEST_RESET {
        return None;
    }
    Some(SystemTime::from(reset))
}

fn epoch_reset(message: &str) -> Option<Timestamp> {
    let secs: i64 = EPOCH.captures(message)?.get(1)?.as_str().parse().ok()?;
    Timestamp::from_second(secs).ok()
}

fn rfc3339_reset(message: &str) -> Option<Timestamp> {
    let text = RFC3339.find(message)?.as_str().replacen(' ', "T", 1);
    text.parse().ok()
}

fn relative_reset(message: &str, now: Timestamp) -> Option<Timestamp> {
    let caps = AFTER.captures(message)?;
    let amount: f64 = caps.get(1)?.as_str().parse().ok()?;
    let unit = caps.get(2)?.as_str().to_ascii_lowercase();
    let seconds = match unit.as_str() {
        u if u.starts_with("ms") || u.starts_with("milli") => amount / 1000.0,
        u if u.starts_with('s') => amount,
        u if u.starts_with('m') => amount * 60.0,
        _ => amount * 3600.0,
    };
    let wait = Duration::try_from_secs_f64(seconds).ok()?;
    now.checked_add(jiff::SignedDuration::try_from(wait).ok()?)
        .ok()
}

fn clock_reset(message: &str, now: &Zoned) -> Option<Timestamp> {
    let caps = CLOCK.captures(message)?;
    let mut hour: i8 = caps.get(1)?.as_str().parse().ok()?;
    let minute: i8 = match caps.get(2) {
        Some(m) => m.as_str().parse().ok()?,
        None => 0,
    };
    match caps.get(3).map(|m| m.as_str().to_ascii_lowercase()) {
        Some(_) if !(1..=12).contains(&hour) => return None,
        Some(half) if half == "pm" && hour != 12 => hour += 12,
        Some(half) if half == "am" && hour == 12 => hour = 0,
        Some(_) => {}
        // A bare number after "until"/"reset" is not a clock time unless it has minutes.
        None if caps.get(2).is_none() => return None,
        None => {}
    }
    let zone = match caps.get(4) {
        Some(name) => TimeZone::get(name.as_str()).ok()?,
        None => now.time_zone().clone(),
    };
    let now = now.with_time_zone(zone);
    let time = Time::new(hour, minute, 0, 0).ok()?;
    let today = now
        .date()
        .to_datetime(time)
        .to_zoned(now.time_zone().clone())
        .ok()?;
    // The CLI printed the reset truncated to the minute (or the hour).
    let margin = jiff::SignedDuration::from_secs(60);
    let candidate = today.timestamp().checked_add(margin).ok()?;
    if candidate >= now.timestamp() {
        return Some(candidate);
    }
    // Earlier today: passed within the last hour means it has just reset;
    // longer ago means the same time tomorrow.
    if now.timestamp().duration_since(candidate) < jiff::SignedDuration::from_hours(1) {
        return Some(now.timestamp());
    }
    let tomorrow = today.checked_add(jiff::Span::new().days(1)).ok()?;
    tomorrow.timestamp().checked_add(margin).ok()
}

/// `YYYY-MM-DD HH:MM:SS` in UTC for Unix seconds.
pub fn utc_text(secs: u64) -> String {
    match Timestamp::from_second(secs as i64) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => format!("{secs} (Unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_waited_out_until_it_resets_or_a_minute_when_nothing_says() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = now + Duration::from_secs(30);
        assert_eq!(limit_wait(Some(later), now), Duration::from_secs(30));
        assert_eq!(
            limit_wait(Some(now - Duration::from_secs(5)), now),
            Duration::ZERO
        );
        assert_eq!(limit_wait(None, now), DEFAULT_LIMIT_BACKOFF);
    }

    /// 2026-12-01 14:50:00 UTC.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_136_600)
    }

    fn wait(message: &str) -> Option<u64> {
        reset_from_message(message, now())
            .map(|reset| reset.duration_since(now()).unwrap().as_secs())
    }

    #[test]
    fn unix_seconds_after_a_bar() {
        assert_eq!(wait("Claude AI usage limit reached|1796138100"), Some(1500));
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(
            wait("limit resets at 2026-12-01T15:00:00Z, sorry"),
            Some(600)
        );
        assert_eq!(wait("reset: 2026-12-01 16:00:00+01:00"), Some(600));
    }

    #[test]
    fn relative_waits() {
        assert_eq!(
            wait("Rate limit reached. Please try again in 20s."),
            Some(20)
        );
        assert_eq!(wait("retry after 2 minutes"), Some(120));
        assert_eq!(wait("try again in 1.5 hours"), Some(5400));
    }

    #[test]
    fn clock_times_in_a_named_zone_get_a_minutes_margin() {
        // 14:50 UTC is 09:50 in New York; 10am there is 10 minutes away.
        assert_eq!(
            wait("5-hour limit reached ∙ resets 10am (America/New_York)"),
            Some(660)
        );
        assert_eq!(
            wait("You've hit your usage limit … try again at 3:00 PM (UTC)"),
            Some(660)
        );
    }

    #[test]
    fn a_clock_time_earlier_today_is_now_or_tomorrow() {
        assert_eq!(wait("try again at 2:30 PM (UTC)"), Some(0));
        assert_eq!(wait("resets 9am (UTC)"), Some(18 * 3600 + 10 * 60 + 60));
    }

    #[test]
    fn messages_without_a_reset_say_nothing() {
        assert_eq!(
            wait("exceeded retry limit, last status: 429 Too Many Requests"),
            None
        );
        assert_eq!(wait("Overloaded"), None);
        assert_eq!(wait("until 5 it is busy"), None);
    }

    #[test]
    fn a_reset_absurdly_far_out_is_not_believed() {
        assert_eq!(wait("|9999999999"), None);
    }

    #[test]
    fn utc_text_is_readable() {
        assert_eq!(utc_text(1_796_136_600), "2026-12-01 14:50:00");
    }
}
