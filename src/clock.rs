//! Time as spool stores it: unix milliseconds, held to a latest representable instant.
//!
//! Every deadline spool writes (a due time, a lease, an expiry) is a `u64` count of
//! milliseconds since the epoch, computed here and nowhere else, so that all of them are
//! clamped the same way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest time spool schedules anything at: 9999-12-31T23:59:59Z, in unix ms. Later
/// deadlines are held to it, so that names and the `due` length stay in range.
pub const LATEST_MS: u64 = 253_402_300_799_000;

/// Milliseconds since the epoch, now (0 for a clock before 1970).
pub fn now_ms() -> u64 {
    ms_of(SystemTime::now())
}

/// `ms` milliseconds after `now`, held to [`LATEST_MS`]: for deadlines that may be held
/// there (a lease of a thousand years ends at the end of the calendar).
pub fn after(now: u64, ms: u64) -> u64 {
    now.saturating_add(ms).min(LATEST_MS)
}

/// `duration` after `now`, or `None` when that is past [`LATEST_MS`]: for deadlines that
/// a user asked for, which are refused (a due time) or dropped (an expiry) rather than
/// moved.
pub fn deadline(now: u64, duration: Duration) -> Option<u64> {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    Some(now.saturating_add(ms)).filter(|&t| t <= LATEST_MS)
}

/// A time as unix milliseconds (0 before the epoch).
pub fn ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds as a time.
pub fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A file time (seconds and nanoseconds since the epoch, as `stat` gives them) as a time;
/// the epoch for a time before it.
pub fn from_stat(secs: i64, nanos: i64) -> SystemTime {
    match (u64::try_from(secs), u32::try_from(nanos)) {
        (Ok(s), Ok(n)) => UNIX_EPOCH + Duration::new(s, n),
        _ => UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_clamped() {
        assert_eq!(after(1, 2), 3);
        assert_eq!(after(LATEST_MS - 1, 5), LATEST_MS);
        assert_eq!(after(u64::MAX, u64::MAX), LATEST_MS);
        assert_eq!(deadline(1, Duration::from_millis(2)), Some(3));
        assert_eq!(deadline(LATEST_MS, Duration::ZERO), Some(LATEST_MS));
        assert_eq!(deadline(LATEST_MS, Duration::from_millis(1)), None);
        assert_eq!(deadline(0, Duration::MAX), None);
        assert_eq!(ms_of(system_time(1234)), 1234);
        assert_eq!(from_stat(-1, 0), UNIX_EPOCH);
    }
}
