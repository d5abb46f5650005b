//! Time and chance: the clock (seconds, milliseconds, microseconds since the epoch),
//! RFC 3339 timestamps read and written independently of the implementation under test,
//! polling until something happens, and one seeded pseudo-random stream (xorshift64*) for
//! payloads and for the choices of the randomised tests.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch, now.
pub fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    (now_us() / 1000) as i64
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    (now_us() / 1_000_000) as i64
}

/// Parses an RFC 3339 UTC timestamp with second precision (`2026-11-25T08:40:40Z`) into
/// seconds since the epoch; `None` when it is not exactly that shape.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant), independent of the implementation under test.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Formats seconds since the epoch as RFC 3339 UTC with second precision, the inverse of
/// [`parse_rfc3339`] (independent of the implementation under test).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Polls `done` every 20 ms until it returns true; panics with `what` after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A deterministic pseudo-random stream (xorshift64*): numbers for randomised choices,
/// bytes for large payloads.
pub struct Rng(u64);

impl Rng {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Seeded from the clock and the process id, so runs vary; the seed is returned for
    /// the test to print.
    pub fn from_clock() -> (Rng, u64) {
        let seed = (now_us() as u64) ^ (u64::from(std::process::id()) << 32);
        (Rng::new(seed), seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[test]
fn harness_parses_rfc3339() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
    assert_eq!(parse_rfc3339("2026-11-25T08:29:18Z"), Some(1_795_595_358));
    assert_eq!(parse_rfc3339("2026-11-25 08:29:18Z"), None);
    assert_eq!(parse_rfc3339("2026-11-25T08:29:18"), None);
    assert_eq!(parse_rfc3339("2026-11-25T08:29:18.5Z"), None);
}

#[test]
fn harness_formats_rfc3339() {
    for secs in [0, 951_782_400, 1_795_595_358, 4_102_444_799] {
        assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
    }
    assert_eq!(format_rfc3339(1_795_595_358), "2026-11-25T08:29:18Z");
}
