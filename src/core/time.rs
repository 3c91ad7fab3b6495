//! Relative times for tables: `just now`, `5 minutes ago`, `yesterday`, `1 week ago`,
//! `in 3 days`. Pure: the caller passes "now".

/// Renders `at` relative to `now` (both Unix milliseconds).
#[must_use]
pub fn relative(at: i64, now: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let seconds = (now - at) / 1000;
    let (future, s) = if seconds < 0 {
        (true, -seconds)
    } else {
        (false, seconds)
    };
    let plural = |n: i64, unit: &str| {
        let text = if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        };
        if future {
            format!("in {text}")
        } else {
            format!("{text} ago")
        }
    };
    match s {
        s if s < 45 => {
            if future {
                "in a moment".to_owned()
            } else {
                "just now".to_owned()
            }
        }
        s if s < 90 => plural(1, "minute"),
        s if s < 45 * MINUTE => plural((s + 30) / MINUTE, "minute"),
        s if s < 90 * MINUTE => plural(1, "hour"),
        s if s < 22 * HOUR => plural((s + HOUR / 2) / HOUR, "hour"),
        s if s < 2 * DAY => {
            if future {
                "tomorrow".to_owned()
            } else {
                "yesterday".to_owned()
            }
        }
        // Rounded to the nearest unit: a key made to expire in 7 days is "in 7 days" a moment
        // later, not "in 6 days".
        s if s < 7 * DAY => plural((s + DAY / 2) / DAY, "day"),
        s if s < 30 * DAY => plural((s + 7 * DAY / 2) / (7 * DAY), "week"),
        // From 11.5 months on it reads as a year: a key made to expire in `1y` is "in 1
        // year" a moment later, not "in 12 months".
        s if s < 345 * DAY => plural((s + 15 * DAY) / (30 * DAY), "month"),
        s => plural((s + 365 * DAY / 2) / (365 * DAY), "year"),
    }
}

/// `at` (Unix milliseconds) as RFC 3339 UTC to the second: `2026-12-06T07:52:06Z`. The web
/// app's `<time datetime>`; the browser shows it in the reader's zone.
#[must_use]
pub fn utc(at: i64) -> String {
    let seconds = at.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_rfc_3339() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_543_526_999), "2026-12-06T07:52:06Z");
        assert_eq!(utc(-1_000), "1969-12-31T23:59:59Z");
        assert_eq!(utc(4_102_444_800_000), "2100-01-01T00:00:00Z");
    }

    const NOW: i64 = 1_800_000_000_000;
    const S: i64 = 1000;

    #[test]
    fn past_and_future() {
        let table = [
            (0, "just now"),
            (30 * S, "just now"),
            (60 * S, "1 minute ago"),
            (5 * 60 * S, "5 minutes ago"),
            (60 * 60 * S, "1 hour ago"),
            (3 * 3600 * S, "3 hours ago"),
            (24 * 3600 * S, "yesterday"),
            (47 * 3600 * S, "yesterday"),
            (3 * 86_400 * S, "3 days ago"),
            (7 * 86_400 * S, "1 week ago"),
            (16 * 86_400 * S, "2 weeks ago"),
            (20 * 86_400 * S, "3 weeks ago"),
            (40 * 86_400 * S, "1 month ago"),
            (200 * 86_400 * S, "7 months ago"),
            (170 * 86_400 * S, "6 months ago"),
            (400 * 86_400 * S, "1 year ago"),
            (800 * 86_400 * S, "2 years ago"),
            (-30 * S, "in a moment"),
            (-24 * 3600 * S, "tomorrow"),
            (-30 * 86_400 * S, "in 1 month"),
            (-90 * 86_400 * S, "in 3 months"),
            // A moment after "in 7 days" or "in 90 days" was set, it still reads so.
            (-(7 * 86_400 - 5) * S, "in 7 days"),
            (-(6 * 86_400 + 80_000) * S, "in 7 days"),
            (-(90 * 86_400 - 5) * S, "in 3 months"),
            (-(365 * 86_400 - 5) * S, "in 1 year"),
            (330 * 86_400 * S, "11 months ago"),
        ];
        for (ago, want) in table {
            assert_eq!(relative(NOW - ago, NOW), want, "{ago} ms ago");
        }
    }
}
