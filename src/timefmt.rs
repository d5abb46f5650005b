//! Time for people and for JSON: RFC 3339 in UTC, and short ages ("3m12s").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats `t` as RFC 3339 in UTC with second precision, e.g. `2026-11-25T08:29:18Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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

/// Parses a duration: a whole number followed by `ms`, `s`, `m`, `h` or `d`
/// (`500ms`, `30s`, `5m`, `2h`, `1d`); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || {
        format!(
            "invalid duration {text:?}: expected a number and a unit, as in 500ms, 30s, 5m, 2h, 1d"
        )
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms_per = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

/// Parses a point in time: unix seconds (`1764059358`), or RFC 3339
/// (`2026-11-25T08:29:18Z`, `2026-11-25T09:29:18.5+01:00`).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!("invalid time {text:?}: expected RFC 3339 (2026-11-25T08:29:18Z) or unix seconds")
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|_| bad())?;
        return UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(bad);
    }
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let s = text.get(r).ok_or_else(bad)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = padded.parse().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let h: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let m: i64 = rest[4..6].parse().map_err(|_| bad())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    if secs < 0 {
        return Err(bad());
    }
    UNIX_EPOCH
        .checked_add(Duration::new(secs as u64, nanos))
        .ok_or_else(bad)
}

/// (year, month, day) to days since 1970-01-01 (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "s", "5x", "-5s", "1.5s", "5 s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_595_358);
        assert_eq!(parse_time("1795595358"), Ok(t));
        assert_eq!(parse_time("2026-11-25T08:29:18Z"), Ok(t));
        assert_eq!(parse_time("2026-11-25T09:29:18+01:00"), Ok(t));
        assert_eq!(
            parse_time("2026-11-25T08:29:18.25Z"),
            Ok(t + Duration::from_millis(250))
        );
        assert_eq!(
            rfc3339(parse_time("2000-02-29T00:00:00Z").unwrap()),
            "2000-02-29T00:00:00Z"
        );
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-11-25T08:29:18",
            "2026-11-25T08:29:18+0100",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
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
        fn durations_round_trip(n in 0u64..1_000_000, unit in prop_oneof!["ms", "s", "m", "h", "d"]) {
            let per = match unit.as_str() { "ms" => 1, "s" => 1000, "m" => 60_000, "h" => 3_600_000, _ => 86_400_000 };
            prop_assert_eq!(parse_duration(&format!("{n}{unit}")), Ok(Duration::from_millis(n * per)));
        }

        #[test]
        fn times_round_trip(secs in 0u64..253_402_300_799) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            prop_assert_eq!(parse_time(&rfc3339(t)), Ok(t));
        }
    }
}
