//! Names in the spool: queue names (chosen by users) and the entry names spool writes.
//!
//! Message files are named by their id in 20 decimal digits, so that `ls` and shell globs
//! list them in queue order; they live in buckets of 1,000 ids named by `id / 1000` in 17
//! digits. Anything else found where these belong is not ours and is never touched.

/// Ids per bucket directory.
pub const BUCKET_SIZE: u64 = 1000;
const ID_WIDTH: usize = 20;
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

/// The file name of message `id`.
pub fn id_name(id: u64) -> String {
    format!("{id:0ID_WIDTH$}")
}

/// The bucket that holds message `id`.
pub fn bucket_of(id: u64) -> u64 {
    id / BUCKET_SIZE
}

/// The directory name of bucket `bucket`.
pub fn bucket_name(bucket: u64) -> String {
    format!("{bucket:0BUCKET_WIDTH$}")
}

/// The path of message `id` relative to the queue directory.
pub fn ready_path(id: u64) -> String {
    format!("ready/{}/{}", bucket_name(bucket_of(id)), id_name(id))
}

fn parse_digits(name: &str, width: usize) -> Option<u64> {
    if name.len() == width && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Parses a message file name; None for anything spool would not have written.
pub fn parse_id(name: &str) -> Option<u64> {
    parse_digits(name, ID_WIDTH).filter(|&id| id > 0)
}

/// Parses a bucket directory name.
pub fn parse_bucket(name: &str) -> Option<u64> {
    parse_digits(name, BUCKET_WIDTH)
}

/// Parses a claimed entry name, `ID.TOKEN`, into its id.
pub fn parse_claim(name: &str) -> Option<u64> {
    let (id, token) = name.split_once('.')?;
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    parse_id(id)
}

/// A fresh random token of 16 hex digits, for temporary and claim names.
pub fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS's random source once per process; mixing in the
    // pid, a serial and the clock keeps tokens distinct within and across processes.
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
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
    fn ids_sort_as_text() {
        assert_eq!(id_name(42), "00000000000000000042");
        assert!(id_name(9) < id_name(10));
        assert_eq!(
            ready_path(42137),
            "ready/00000000000000042/00000000000000042137"
        );
        assert_eq!(parse_id("00000000000000042137"), Some(42137));
        assert_eq!(parse_id("42137"), None);
        assert_eq!(parse_id("00000000000000000000"), None);
        assert_eq!(parse_id("0000000000000004213x"), None);
        assert_eq!(parse_bucket("00000000000000042"), Some(42));
        assert_eq!(parse_claim("00000000000000000042.00ff"), Some(42));
        assert_eq!(parse_claim("00000000000000000042."), None);
        assert_eq!(parse_claim("00000000000000000042.zz"), None);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 16);
    }
}
