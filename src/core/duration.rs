//! Durations as people write them on the command line: `500ms`, `90s`, `15m`, `12h`, `30d`,
//! `2w`, `1y` (a week is 7 days, a year 365); and API key expiry, which also accepts `never`
//! and is at least a second (DESIGN §1).

use std::fmt;
use std::time::Duration;

/// Longest duration accepted: 100 years. Keeps arithmetic on timestamps far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<digits><unit>`.
    #[error(
        "`{0}` is not a duration; write a whole number and a unit: 500ms, 90s, 15m, 12h, 30d, 2w, 1y"
    )]
    Malformed(String),
    /// An expiry under a second (`500ms`).
    #[error(
        "`{0}` is under a second; a key's expiry is at least 1s: write 90s, 15m, 12h, 30d, 2w, 1y or never"
    )]
    UnderASecond(String),
    /// Zero.
    #[error("`{0}` is zero; a duration must be positive")]
    Zero(String),
    /// More than [`MAX_DURATION`].
    #[error("`{0}` is too long; at most 100 years")]
    TooLong(String),
}

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h`, `d`, `w` (7 days) or `y` (365 days).
///
/// # Errors
/// [`DurationError`] for anything else, zero, or more than 100 years.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(malformed)?;
    let (digits, unit) = text.split_at(split);
    // No leading zero: `010d` is a mistake more often than ten days.
    if digits.is_empty() || digits.len() > 15 || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(malformed());
    }
    let n: u64 = digits.parse().map_err(|_| malformed())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return Err(malformed()),
    };
    let millis = n
        .checked_mul(millis_per_unit)
        .ok_or_else(|| DurationError::TooLong(text.into()))?;
    let duration = Duration::from_millis(millis);
    if duration.is_zero() {
        return Err(DurationError::Zero(text.to_owned()));
    }
    if duration > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(duration)
}

/// `d` as people write it, in the largest unit that divides it: `300ms`, `30s`, `15m`, `2w`.
#[must_use]
pub fn words(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// When an API key expires, relative to its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Never.
    Never,
    /// After this long.
    After(Duration),
}

impl std::str::FromStr for Expiry {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "never" {
            return Ok(Self::Never);
        }
        let duration = parse_duration(s)?;
        if duration < Duration::from_secs(1) {
            return Err(DurationError::UnderASecond(s.to_owned()));
        }
        Ok(Self::After(duration))
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("never"),
            Self::After(d) => write!(f, "{}s", d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_forms() {
        let table = [
            ("500ms", Duration::from_millis(500)),
            ("90s", Duration::from_secs(90)),
            ("15m", Duration::from_secs(900)),
            ("12h", Duration::from_secs(43_200)),
            ("1d", Duration::from_secs(86_400)),
            ("30d", Duration::from_secs(30 * 86_400)),
            ("90d", Duration::from_secs(90 * 86_400)),
            ("36500d", Duration::from_secs(36_500 * 86_400)),
            ("2w", Duration::from_secs(14 * 86_400)),
            ("1y", Duration::from_secs(365 * 86_400)),
            ("100y", Duration::from_secs(36_500 * 86_400)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_zero_and_huge() {
        for bad in [
            "", "s", "10", "10 s", " 10s", "10S", "1.5h", "-5s", "5W", "1yr", "10sec", "1e3s",
            "010d",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Malformed(_))),
                "{bad:?} gave {:?}",
                parse_duration(bad)
            );
        }
        assert!(matches!(parse_duration("0s"), Err(DurationError::Zero(_))));
        assert!(matches!(
            parse_duration("36501d"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse_duration("101y"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse_duration("999999999999999d"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse_duration("9999999999999999d"),
            Err(DurationError::Malformed(_))
        ));
    }

    #[test]
    fn words_round_trip() {
        for text in [
            "300ms", "1500ms", "30s", "90s", "15m", "12h", "30d", "2w", "1y",
        ] {
            let d = parse_duration(text).expect("parses");
            assert_eq!(parse_duration(&words(d)), Ok(d), "{text}");
        }
        assert_eq!(words(Duration::from_secs(90)), "90s");
        assert_eq!(words(Duration::from_secs(14 * 86_400)), "2w");
    }

    #[test]
    fn expiry() {
        assert_eq!("never".parse(), Ok(Expiry::Never));
        assert_eq!(
            "30d".parse(),
            Ok(Expiry::After(Duration::from_secs(30 * 86_400)))
        );
        assert!(
            matches!(
                "500ms".parse::<Expiry>(),
                Err(DurationError::UnderASecond(_))
            ),
            "a key lives at least a second"
        );
        assert!(
            DurationError::UnderASecond("500ms".into())
                .to_string()
                .contains("at least 1s")
        );
        assert!("Never".parse::<Expiry>().is_err());
        assert_eq!(Expiry::After(Duration::from_secs(90)).to_string(), "90s");
    }
}
