//! Names in the spool: queue names (chosen by users), bucket names, and tokens. Message
//! file names are in [`super::entry`].

const BUCKET_WIDTH: usize = 17;

/// What a queue name may be, for the error message.
pub const QUEUE_NAME_RULE: &str =
    "a queue name is 1 to 64 characters of A-Z a-z 0-9 . _ - and does not start with '.'";

/// Checks a queue name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn is_valid_queue_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_digits(name: &str, width: usize) -> Option<u64> {
    if name.len() == width && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Parses a bucket directory name.
pub fn parse_bucket(name: &str) -> Option<u64> {
    parse_digits(name, BUCKET_WIDTH)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        for ok in ["a", "default", "A-Z_0.9", &"x".repeat(64)] {
            assert!(is_valid_queue_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(!is_valid_queue_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(parse_bucket("00000000000000042"), Some(42));
        assert_eq!(parse_bucket("42"), None);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 16);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn queue_names_are_exactly_the_rule(name in "\\PC{0,70}") {
            let ok = (1..=64).contains(&name.len())
                && !name.starts_with('.')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            prop_assert_eq!(is_valid_queue_name(&name), ok);
        }

    }
}
