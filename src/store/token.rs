//! Claim tokens, the same on every engine: `ID.HEX`, the message's id and 16 hex digits
//! drawn anew for each claim, so that a token from an earlier claim of the same message
//! names nothing.

/// A fresh random token of 16 hex digits, for temporary and claim names.
pub fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS's random source once per process; mixing in the
    // pid, a serial and the clock keeps tokens distinct within and across processes.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(*PID.get_or_init(std::process::id));
    h.write_u64(SERIAL.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

/// Splits a claim token into id and hex part; `None` unless it is of the form spool
/// prints: an id (decimal digits, no leading zero) and a [`token`] (exactly 16 of
/// `0-9 a-f`), joined by a dot. A token one digit short or long is malformed, not a claim
/// that ended.
pub fn parse_token(token: &str) -> Option<(u64, &str)> {
    let (id, hex) = token.split_once('.')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.starts_with('0') {
        return None;
    }
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some((id.parse().ok()?, hex))
}
