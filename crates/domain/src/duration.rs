//! Human-written durations such as `30s`, `10m`, `1h30m` or `7d`, as used by conditions, retry
//! backoff, sleeps and signal timeouts.
//!
//! This module owns the one grammar for those strings. It is pure: it never reads a clock.
//!
//! Grammar: one or more `<digits><unit>` parts with no spaces, units `ms`, `s`, `m`, `h`, `d`,
//! each unit at most once and from the largest to the smallest (`1h30m`, not `30m1h`). A bare
//! number has no unit and is rejected rather than guessed. `0s` is a valid, zero duration.

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected, with the input it came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {kind}")]
pub struct DurationError {
    pub input: String,
    pub kind: DurationErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationErrorKind {
    Empty,
    /// A unit (or something else) where the digits of a part should start.
    ExpectedNumber,
    /// Digits with nothing after them, such as `30`.
    MissingUnit,
    UnknownUnit(String),
    /// A unit repeated, or smaller units before larger ones.
    OutOfOrder,
    TooLarge,
}

impl fmt::Display for DurationErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationErrorKind::Empty => {
                f.write_str("empty; expected something like 30s, 10m or 7d")
            }
            DurationErrorKind::ExpectedNumber => f.write_str("each part must start with a number"),
            DurationErrorKind::MissingUnit => {
                f.write_str("a number needs a unit: ms, s, m, h or d")
            }
            DurationErrorKind::UnknownUnit(unit) => {
                write!(f, "unknown unit {unit:?}; use ms, s, m, h or d")
            }
            DurationErrorKind::OutOfOrder => {
                f.write_str("units must go from largest to smallest, each at most once")
            }
            DurationErrorKind::TooLarge => f.write_str("too large"),
        }
    }
}

/// Units from the largest to the smallest, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration such as `30s`, `24h`, `7d` or `1h30m` (see the module docs for the grammar).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let fail = |kind| DurationError {
        input: s.to_owned(),
        kind,
    };

    if s.is_empty() {
        return Err(fail(DurationErrorKind::Empty));
    }

    let mut rest = s;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen; the next one must come strictly after it.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail(DurationErrorKind::ExpectedNumber));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(fail(DurationErrorKind::MissingUnit));
        }
        let (unit, after) = after.split_at(unit_len);

        let Some(unit_index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(fail(DurationErrorKind::UnknownUnit(unit.to_owned())));
        };
        if last_unit.is_some_and(|last| unit_index <= last) {
            return Err(fail(DurationErrorKind::OutOfOrder));
        }
        last_unit = Some(unit_index);

        let part_ms = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[unit_index].1))
            .and_then(|ms| total_ms.checked_add(ms));
        total_ms = part_ms.ok_or_else(|| fail(DurationErrorKind::TooLarge))?;
        rest = after;
    }

    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration in the grammar [`parse_duration`] reads, largest units first (`1h30m`).
/// Anything finer than a millisecond is dropped; a zero duration is `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut left_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if left_ms == 0 {
        return "0s".to_owned();
    }

    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        let count = left_ms / unit_ms;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            left_ms %= unit_ms;
        }
    }
    out
}

/// For `#[serde(with = "domain::duration::serde")]` on a `std::time::Duration` field.
pub mod serde {
    use std::time::Duration;

    use ::serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<u64, DurationErrorKind>) {
        let got = parse_duration(input)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| e.kind);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn parses_single_units_and_combinations() {
        check("0s", Ok(0));
        check("250ms", Ok(250));
        check("30s", Ok(30_000));
        check("30m", Ok(1_800_000));
        check("24h", Ok(86_400_000));
        check("7d", Ok(604_800_000));
        check("1h30m", Ok(5_400_000));
        check("1d2h3m4s5ms", Ok(93_784_005));
        check("90m", Ok(5_400_000));
    }

    #[test]
    fn rejects_malformed_input() {
        use DurationErrorKind::*;
        check("", Err(Empty));
        check("30", Err(MissingUnit));
        check("1h30", Err(MissingUnit));
        check("h", Err(ExpectedNumber));
        check("-5s", Err(ExpectedNumber));
        check(" 5s", Err(ExpectedNumber));
        check("5 s", Err(MissingUnit));
        check("1.5h", Err(MissingUnit));
        check("5x", Err(UnknownUnit("x".into())));
        check("5S", Err(UnknownUnit("S".into())));
        check("5w", Err(UnknownUnit("w".into())));
        check("30m1h", Err(OutOfOrder));
        check("1m1m", Err(OutOfOrder));
        check("99999999999999999999s", Err(TooLarge));
        check("213503982334601d", Err(TooLarge));
    }

    #[test]
    fn error_names_the_input() {
        let err = parse_duration("5x").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid duration "5x": unknown unit "x"; use ms, s, m, h or d"#
        );
    }

    #[test]
    fn format_round_trips() {
        for input in ["0s", "250ms", "30s", "1h30m", "7d", "1d2h3m4s5ms"] {
            let parsed = parse_duration(input).unwrap();
            assert_eq!(format_duration(parsed), input);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
