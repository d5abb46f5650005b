//! Time for people and for JSON: RFC 3339 in UTC, durations (`1h30m`), and short ages
//! ("3m12s").
//!
//! The calendar is jiff's: days per month, leap years and the conversion between an
//! instant and a date. Only UTC and fixed offsets are used, so no time zone database is
//! ever read (jiff is built without one).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimeParser;
use jiff::tz::Offset;

use crate::excerpt::cut;

/// Seconds in 400 Gregorian years, after which the calendar repeats itself exactly.
const ERA_SECS: i64 = 146_097 * 86_400;

/// Formats `t` as RFC 3339 in UTC with second precision, e.g. `2026-11-25T08:29:18Z`.
///
/// jiff's dates end with the year 9999, a file's time does not: a time past it is shifted
/// back by whole 400-year eras, and the year put back, so that any time prints.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let (eras, in_era) = (secs.div_euclid(ERA_SECS), secs.rem_euclid(ERA_SECS));
    let instant = Timestamp::from_second(in_era).expect("1970 to 2370 are jiff's");
    let civil = Offset::UTC.to_datetime(instant);
    let year = i64::from(civil.year()) + 400 * eras;
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        civil.month(),
        civil.day(),
        civil.hour(),
        civil.minute(),
        civil.second()
    )
}

/// A short age: `850ms`, `42s`, `3m12s`, `5h3m`, `2d4h`.
pub fn age(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).max(0.0) as u64);
    }
    let s = seconds as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The units of a duration, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration: whole numbers each followed by a unit, `ms`, `s`, `m`, `h` or `d`,
/// largest first (`500ms`, `30s`, `5m`, `2h`, `1d`, `1h30m`, `2m30s`, `1d12h`, as systemd
/// and Go write them); a bare number is seconds.
///
/// The error says what is wrong, without repeating the input (the caller shows it).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXAMPLES: &str = "as in 500ms, 30s, 5m, 2h, 1d, 1h30m";
    if text.is_empty() {
        return Err(format!(
            "empty: a duration is a number and a unit, {EXAMPLES}"
        ));
    }
    if text.starts_with('-') {
        return Err("durations are not negative".to_string());
    }
    let too_large = || {
        format!(
            "too large: durations go up to {}d (a bare number is seconds)",
            u64::MAX / 86_400_000
        )
    };
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .map(Duration::from_millis)
            .ok_or_else(too_large);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    // The index in UNITS of the last unit read: the next must be smaller.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let (number, unit) = (&rest[..digits], &rest[digits..digits + letters]);
        if number.is_empty() || unit.is_empty() {
            let next = rest[digits..].chars().next();
            return Err(match next {
                Some('.' | ',') => "whole numbers only (1500ms, not 1.5s)".to_string(),
                Some(' ') => "no spaces (1h30m, not 1h 30m)".to_string(),
                None => "a duration needs a unit after each number: 20ms, 5s, 1h30m".to_string(),
                Some(c) if c.is_ascii_alphabetic() => {
                    format!("a number must come before {:?}, {EXAMPLES}", cut(unit))
                }
                Some(c) => format!("unexpected {c:?}: a duration is numbers and units, {EXAMPLES}"),
            });
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit {:?}: the units are ms, s, m, h and d, {EXAMPLES}",
                cut(unit)
            ));
        };
        if last.is_some_and(|l| index <= l) {
            return Err("units go from the largest to the smallest, each once: 1d12h, 1h30m, 2m30s, 1s500ms".to_string());
        }
        last = Some(index);
        let ms = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(too_large)?;
        total = ms;
        rest = &rest[digits + letters..];
    }
    Ok(Duration::from_millis(total))
}

/// The RFC 3339 parser: jiff's, which reads RFC 3339 and more of ISO 8601.
static PARSER: DateTimeParser = DateTimeParser::new();

/// What a time is, for errors.
const TIME_FORMS: &str =
    "expected RFC 3339 (2026-11-25T08:29:18Z, 2026-11-25T09:29:18+01:00) or unix seconds";

/// Parses a point in time: unix seconds (`1764059358`), or RFC 3339
/// (`2026-11-25T08:29:18Z`, `2026-11-25T09:29:18.5+01:00`).
///
/// jiff checks the calendar (no 2026-02-30); this only holds jiff, which reads any ISO
/// 8601 form, to RFC 3339's: a full date, `T` (or `t`, or a space), a full time to the
/// second, and `Z` or an offset `+HH:MM` of at most 23:59. Digits of a fraction past the
/// nanosecond are dropped. A leap second (`:60`) reads as `:59`. Times before 1970 are
/// refused. The error says what is wrong, without repeating the input.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .ok_or_else(|| "too large for unix seconds".to_string());
    }
    let fraction_end = rfc3339_shape(text)?;
    // At most 9 digits of fraction for jiff: the rest are below a nanosecond.
    let kept = match text.get(19..fraction_end) {
        Some(f) if f.len() > 10 => format!("{}{}", &text[..29], &text[fraction_end..]),
        _ => text.to_string(),
    };
    let instant = PARSER
        .parse_timestamp(&kept)
        .map_err(|e| no_such_time(text, &e))?;
    let secs = u64::try_from(instant.as_second())
        .map_err(|_| "before 1970: times start at 1970-01-01T00:00:00Z".to_string())?;
    let nanos = u32::try_from(instant.subsec_nanosecond()).unwrap_or(0);
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Why jiff refused a time of RFC 3339's shape: a day past the end of its month in words,
/// anything else (a month 13, an hour 24) as jiff says it.
fn no_such_time(text: &str, e: &jiff::Error) -> String {
    let field = |r: std::ops::Range<usize>| text[r].parse::<i8>().ok();
    let (year, month, day) = (text[..4].parse::<i16>().ok(), field(5..7), field(8..10));
    if let (Some(year), Some(month), Some(day)) = (year, month, day)
        && let Ok(first) = jiff::civil::Date::new(year, month, 1)
        && day > first.days_in_month()
    {
        return format!(
            "no such date: {} has {} days",
            &text[..7],
            first.days_in_month()
        );
    }
    format!("no such time: {e}")
}

/// Checks that `text` has the shape of an RFC 3339 time (RFC 3339 section 5.6, with its
/// note's `t` and space) and an offset within 23:59; returns where its fraction of a
/// second (if any) ends. The fields' ranges are left to jiff.
fn rfc3339_shape(text: &str) -> Result<usize, String> {
    let bad = || TIME_FORMS.to_string();
    let b = text.as_bytes();
    let digits_at = |positions: &[usize]| {
        positions
            .iter()
            .all(|&i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    let punctuation = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if b.len() < 20
        || !digits_at(&[0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
        || punctuation.iter().any(|&(i, c)| b[i] != c)
        || !matches!(b[10], b'T' | b't' | b' ')
    {
        return Err(bad());
    }
    let mut end = 19;
    if b[end] == b'.' {
        let digits = b[end + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(bad());
        }
        end += 1 + digits;
    }
    match &b[end..] {
        [b'Z' | b'z'] => Ok(end),
        [b'+' | b'-', h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = (m1 - b'0') * 10 + (m2 - b'0');
            if hours > 23 || minutes > 59 {
                Err(format!(
                    "no such offset {}: offsets go from -23:59 to +23:59",
                    &text[end..]
                ))
            } else {
                Ok(end)
            }
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_595_358);
        assert_eq!(rfc3339(t), "2026-11-25T08:29:18Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        // Fractions of a second are dropped, not rounded.
        assert_eq!(
            rfc3339(t + Duration::from_millis(999)),
            "2026-11-25T08:29:18Z"
        );
    }

    /// Past jiff's year 9999, as the hand-written calendar before it printed them (a file's
    /// modification time can be anything).
    #[test]
    fn formats_past_the_year_9999() {
        let at = |secs: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(at(253_402_300_800), "10000-01-01T00:00:00Z");
        assert_eq!(at(300_000_000_000), "11476-08-15T05:20:00Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(at(i64::MAX as u64), "292277026596-12-04T15:30:07Z");
    }

    #[test]
    fn ages() {
        assert_eq!(age(0.25), "250ms");
        assert_eq!(age(42.0), "42s");
        assert_eq!(age(192.0), "3m12s");
        assert_eq!(age(18_180.0), "5h3m");
        assert_eq!(age(187_200.0), "2d4h");
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "s", "5x", "-5s", "1.5s", "5 s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// `1h30m` was refused; systemd and Go accept compound durations.
    #[test]
    fn compound_durations() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(
            parse_duration("1d2h3m4s5ms"),
            Ok(Duration::from_millis(93_784_005))
        );
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        // Out of order, repeated, or a number without its unit: refused, with the rule.
        for bad in ["30s5m", "1h1h", "5m1d", "1h30", "1hh", "h1"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("largest to the smallest")
                    || e.contains("needs a unit")
                    || e.contains("unknown unit")
                    || e.contains("a number must come before"),
                "{bad}: {e}"
            );
        }
    }

    /// The errors say what is wrong with the duration.
    #[test]
    fn duration_errors_say_what_is_wrong() {
        let e = |text: &str| parse_duration(text).unwrap_err();
        assert!(e("-1").contains("not negative"), "{}", e("-1"));
        assert!(e("-1s").contains("not negative"));
        assert!(
            e("99999999999999999999").contains("too large"),
            "{}",
            e("99999999999999999999")
        );
        assert!(e("99999999999999999999ms").contains("too large"));
        assert!(e("213503982335d").contains("too large"));
        assert!(e("1.5s").contains("whole numbers"));
        assert!(e("5x").contains("unknown unit \"x\""));
        assert!(e("1h 30m").contains("no spaces"));
        // The input is not repeated: the caller shows it, cut if long.
        assert!(!e(&"7".repeat(100)).contains("777"));
    }

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_595_358);
        assert_eq!(parse_time("1795595358"), Ok(t));
        assert_eq!(parse_time("2026-11-25T08:29:18Z"), Ok(t));
        assert_eq!(parse_time("2026-11-25t08:29:18z"), Ok(t));
        assert_eq!(parse_time("2026-11-25 08:29:18Z"), Ok(t));
        assert_eq!(parse_time("2026-11-25T09:29:18+01:00"), Ok(t));
        assert_eq!(parse_time("2026-11-26T08:28:18+23:59"), Ok(t));
        assert_eq!(parse_time("2026-11-25T08:29:18-00:00"), Ok(t));
        assert_eq!(
            parse_time("2026-11-25T08:29:18.25Z"),
            Ok(t + Duration::from_millis(250))
        );
        assert_eq!(
            parse_time("2026-11-25T08:29:18.1234567891234Z"),
            Ok(t + Duration::from_nanos(123_456_789))
        );
        assert_eq!(
            rfc3339(parse_time("2000-02-29T00:00:00Z").unwrap()),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(UNIX_EPOCH));
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-11-25T08:29:18",
            "2026-11-25T08:29:18+0100",
            "2026-11-25T08:29:18+01",
            "2026-11-25T08:29Z",
            "20261125T082918Z",
            "2026-11-25T08:29:18Z[UTC]",
            "2026-11-25T08:29:18.Z",
            "2026-11-25T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "99999999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    /// Impossible dates and offsets were accepted, and made the message
    /// ready at once.
    #[test]
    fn impossible_times_are_refused() {
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-25T08:60:00Z",
            "2026-11-25T08:29:61Z",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.starts_with("no such"), "{bad}: {e}");
        }
        for bad in [
            "2026-12-01T22:00:00+25:00",
            "2026-12-01T22:00:00+24:00",
            "2026-12-01T22:00:00-24:00",
            "2026-12-01T22:00:00+01:60",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("no such offset"), "{bad}: {e}");
        }
        assert_eq!(
            parse_time("2026-02-30T00:00:00Z"),
            Err("no such date: 2026-02 has 28 days".to_string())
        );
        assert_eq!(
            parse_time("2026-04-31T00:00:00Z"),
            Err("no such date: 2026-04 has 30 days".to_string())
        );
        assert!(parse_time("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_time("2000-02-29T00:00:00Z").is_ok());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic(text in "\\PC{0,40}") {
            let _ = parse_duration(&text);
            let _ = parse_time(&text);
        }

        #[test]
        fn rfc3339_shapes_never_panic(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2}|.{0,3})") {
            let _ = parse_time(&text);
        }

        #[test]
        fn durations_round_trip(n in 0u64..1_000_000, unit in prop_oneof!["ms", "s", "m", "h", "d"]) {
            let per = match unit.as_str() { "ms" => 1, "s" => 1000, "m" => 60_000, "h" => 3_600_000, _ => 86_400_000 };
            prop_assert_eq!(parse_duration(&format!("{n}{unit}")), Ok(Duration::from_millis(n * per)));
        }

        /// A duration written in any of its units, largest first, reads back as the sum.
        #[test]
        fn compound_durations_round_trip(parts in prop::collection::vec(prop::option::of(0u64..100_000), 5)) {
            let (mut text, mut ms) = (String::new(), 0);
            for ((unit, per), n) in UNITS.iter().zip(&parts) {
                if let Some(n) = n {
                    text.push_str(&format!("{n}{unit}"));
                    ms += n * per;
                }
            }
            if text.is_empty() {
                text.push_str("0ms");
            }
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_millis(ms)), "{}", text);
        }

        #[test]
        fn times_round_trip(secs in 0u64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            prop_assert_eq!(parse_time(&rfc3339(t)), Ok(t));
            // With a fraction and an offset, as another program would write it.
            let fraction = UNIX_EPOCH + Duration::new(secs, nanos);
            let text = rfc3339(t).replace('Z', &format!(".{nanos:09}Z"));
            prop_assert_eq!(parse_time(&text), Ok(fraction));
        }

        /// The format is jiff's own RFC 3339 printer's, second for second, over jiff's range.
        #[test]
        fn formats_as_jiff_prints(secs in 0i64..253_402_300_799) {
            let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
            prop_assert_eq!(rfc3339(t), Timestamp::from_second(secs).unwrap().to_string());
        }

        /// Any offset within 23:59 names the same instant as its UTC form.
        #[test]
        fn offsets_move_the_clock(secs in 100_000u64..253_402_000_000, minutes in -1439i64..=1439) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let local = UNIX_EPOCH + Duration::from_secs((secs as i64 + minutes * 60) as u64);
            let utc = rfc3339(local);
            let sign = if minutes < 0 { '-' } else { '+' };
            let text = format!("{}{sign}{:02}:{:02}", &utc[..19], minutes.abs() / 60, minutes.abs() % 60);
            prop_assert_eq!(parse_time(&text), Ok(t));
        }
    }
}
