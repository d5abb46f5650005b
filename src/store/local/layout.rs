//! Every name on disk, defined once, with the predicates that recognise them: the files
//! and directories of a queue directory, lanes, buckets, temporary names, claim tokens
//! and queue names. The names of message files (a key and fields) are in
//! `entry`. docs/FORMAT.md is the reference.
//!
//! ```text
//! QUEUE/format     "spool-queue 1\n", written last when the queue is created
//! QUEUE/counter    its length is the next id to allocate; flock = producer lock
//! QUEUE/head       its length is a lower bound of the keys in ready/; flock = consumer lock
//! QUEUE/lanes      its length is a bit set of the priority lanes 1-9 that may hold messages
//! QUEUE/due        its length is the earliest due time (unix seconds) in delayed/, 0 if none
//! QUEUE/rates      the rates of publishing and consumption, for stats (two records)
//! QUEUE/rate       no longer written (per-minute counts of earlier versions); left alone
//! QUEUE/identity the queue's identity: 32 lowercase hex digits and a newline, made when needed
//! QUEUE/tmp/       TOKEN, format.TOKEN, identity.TOKEN, TOKEN.batch/N: being written, flocked
//!                  by the writer
//! QUEUE/ready/BUCKET/NAME     waiting messages of priority 0, BUCKET = key / 1000
//! QUEUE/ready-P/BUCKET/NAME   waiting messages of priority P (1-9)
//! QUEUE/delayed/NAME          not visible before their due time (the key)
//! QUEUE/claimed/NAME          handed out: flocked by a running pop or run, or leased
//! QUEUE/failed/NAME           dead letters, with their reason
//! QUEUE/keys/KEY              its length is the id of the message holding the deduplication key
//! QUEUE/corrupt/              what fsck --repair moved aside
//! ```

/// The content of a queue's `format` file.
pub const FORMAT: &[u8] = b"spool-queue 1\n";

/// The format file.
pub const FORMAT_FILE: &str = "format";
/// The queue's identity: 32 lowercase hex digits and a newline, made when first needed.
pub const IDENTITY: &str = "identity";
/// The number of hex digits of an identity (128 bits).
pub const IDENTITY_LEN: usize = 32;

/// The identity an identity file's content holds, if it is exactly one: 32 lowercase hex
/// digits and a newline.
pub fn parse_identity(content: &[u8]) -> Option<String> {
    let digits = content.strip_suffix(b"\n")?;
    (digits.len() == IDENTITY_LEN
        && digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then(|| String::from_utf8_lossy(digits).into_owned())
}

/// What a queue's format file says.
#[derive(Debug, PartialEq, Eq)]
pub enum Format {
    /// Exactly [`FORMAT`].
    Ours,
    /// There is none: the queue was never completely created.
    Missing,
    /// Not what any version writes (why, for the error): it can be written anew, when the
    /// rest of the queue is as this format lays it out.
    Damaged(String),
    /// Another version's format (why, for the error): never rewritten.
    Other(String),
}

/// Judges the `size` bytes of a format file, of which `head` are the first. A line naming another version is another format; anything else
/// (a missing newline, bytes added, garbage) is damage, shown with its invisible bytes
/// escaped.
pub fn judge_format(head: &[u8], size: u64) -> Format {
    if head == FORMAT && size == FORMAT.len() as u64 {
        return Format::Ours;
    }
    let shown = escape_bytes(head, size);
    let reads = escape_bytes(FORMAT, FORMAT.len() as u64);
    let version = head
        .strip_prefix(b"spool-queue ")
        .map(|v| v.strip_suffix(b"\n").unwrap_or(v));
    if let Some(v) = version
        && !v.is_empty()
        && v.iter().all(u8::is_ascii_digit)
        && v != b"1"
        && size == head.len() as u64
    {
        return Format::Other(format!(
            "unsupported queue format {shown} (this spool reads {reads})"
        ));
    }
    let why = if size == 0 {
        "empty".to_string()
    } else if [head, b"\n"].concat() == FORMAT && size == head.len() as u64 {
        "no newline at its end".to_string()
    } else if head.starts_with(FORMAT) {
        format!("{} bytes after its line", size - FORMAT.len() as u64)
    } else if FORMAT.starts_with(head) && size == head.len() as u64 {
        format!("cut after {size} bytes")
    } else {
        let at = head.iter().zip(FORMAT).take_while(|(a, b)| a == b).count();
        format!("differs from byte {}", at + 1)
    };
    Format::Damaged(format!(
        "unsupported queue format {shown} ({why}; this spool reads {reads})"
    ))
}

/// `bytes` in double quotes as a shell user reads them: `\n`, `\t`, `\r`, `\\`, `\"`, and
/// `\xHH` for other bytes that are not printable ASCII; cut at 32 bytes, with the size
/// when `size` says there is more.
pub fn escape_bytes(bytes: &[u8], size: u64) -> String {
    const SHOWN: usize = 32;
    let mut out = String::from("\"");
    for &b in bytes.iter().take(SHOWN) {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    if size > SHOWN.min(bytes.len()) as u64 {
        out.push_str(&format!("... ({size} bytes)"));
    }
    out
}
/// The length file of the next id; its flock is the producer lock.
pub const COUNTER: &str = "counter";
/// The length file of the lowest key of lane 0; its flock is the consumer lock.
pub const HEAD: &str = "head";
/// The length file whose length is the bit set of priority lanes in use.
pub const LANES: &str = "lanes";
/// The length file whose length is the earliest due time, in seconds.
pub const DUE: &str = "due";
/// The rates of publishing and consumption (see `rate`).
pub const RATES: &str = "rates";
/// Consumption counts per minute, as earlier versions kept them: known, no longer used.
pub const OLD_RATE: &str = "rate";
/// The length files (and `rates`), in the order they are checked.
pub const LENGTH_FILES: [&str; 5] = [COUNTER, HEAD, LANES, DUE, RATES];

/// Messages being written.
pub const TMP: &str = "tmp";
/// Lane 0 of the ready messages.
pub const READY: &str = "ready";
/// Messages waiting for their due time.
pub const DELAYED: &str = "delayed";
/// Messages handed out.
pub const CLAIMED: &str = "claimed";
/// Dead letters.
pub const FAILED: &str = "failed";
/// Where fsck moves what it cannot use.
pub const CORRUPT: &str = "corrupt";
/// The deduplication keys held: length files named by the key, whose length is the id of
/// the message holding it. Made by the first push with a key.
pub const KEYS: &str = "keys";
/// The directories every queue is created with.
pub const STATE_DIRS: [&str; 5] = [TMP, READY, DELAYED, CLAIMED, FAILED];

/// What a waiter watches: every push changes the length of the counter, every take that
/// of the head, and every return, nack or ack moves a name out of claimed/.
pub const WATCHED_LENGTHS: [&str; 2] = [COUNTER, HEAD];

/// The number of priority lanes (0 to 9).
pub const LANE_COUNT: u8 = 10;

/// The directory of priority lane `p` (held to 9).
pub fn lane_dir(p: u8) -> &'static str {
    const NAMES: [&str; LANE_COUNT as usize] = [
        "ready", "ready-1", "ready-2", "ready-3", "ready-4", "ready-5", "ready-6", "ready-7",
        "ready-8", "ready-9",
    ];
    NAMES[usize::from(p.min(LANE_COUNT - 1))]
}

/// Whether `name` is a file or directory of a queue directory that spool writes.
pub fn is_queue_entry(name: &str) -> bool {
    name == FORMAT_FILE
        || name == IDENTITY
        || name == CORRUPT
        || name == KEYS
        || name == OLD_RATE
        || LENGTH_FILES.contains(&name)
        || STATE_DIRS.contains(&name)
        || (0..LANE_COUNT).any(|p| lane_dir(p) == name)
}

/// Whether `name` is a directory that a queue directory holds (a state directory, a
/// lane, corrupt/): a directory inside a queue has one of these on its path.
pub fn is_queue_dir_entry(name: &str) -> bool {
    name == CORRUPT
        || name == KEYS
        || STATE_DIRS.contains(&name)
        || (1..LANE_COUNT).any(|p| lane_dir(p) == name)
}

/// Keys per bucket directory.
pub const BUCKET_SIZE: u64 = 1000;
const BUCKET_WIDTH: usize = 17;

/// The bucket of a key.
pub fn bucket_of(key: u64) -> u64 {
    key / BUCKET_SIZE
}

/// The directory name of bucket `b`.
pub fn bucket_name(b: u64) -> String {
    format!("{b:0BUCKET_WIDTH$}")
}

/// The path of bucket `b` of lane `lane`, relative to the queue directory.
pub fn bucket_rel(lane: u8, b: u64) -> String {
    format!("{}/{}", lane_dir(lane), bucket_name(b))
}

/// Whether `s` is a token as [`token`] makes them: 16 lowercase hex digits.
fn is_token(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The prefix of the temporary name of a format file being written.
pub const FORMAT_TMP_PREFIX: &str = "format.";
/// The prefix of the temporary name of an identity file being written.
pub const IDENTITY_TMP_PREFIX: &str = "identity.";
/// The suffix of a batch directory in tmp/.
pub const BATCH_SUFFIX: &str = ".batch";

/// Whether `name` is an entry spool writes in tmp/: `TOKEN` (one message),
/// `format.TOKEN` (a format file), `identity.TOKEN` (an identity file) or `TOKEN.batch`
/// (a batch directory).
pub fn is_tmp_name(name: &str) -> bool {
    is_token(name)
        || name.strip_prefix(FORMAT_TMP_PREFIX).is_some_and(is_token)
        || name.strip_prefix(IDENTITY_TMP_PREFIX).is_some_and(is_token)
        || name.strip_suffix(BATCH_SUFFIX).is_some_and(is_token)
}

/// Whether `name` is a message of a batch directory: its index in decimal digits.
pub fn is_batch_entry(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// A claim token as users see it: `ID.HEX`.
pub fn format_token(id: u64, hex: &str) -> String {
    format!("{id}.{hex}")
}

/// A queue's directory is named by the queue's name (see [`crate::store::check_queue_name`]).
pub use crate::store::is_valid_queue_name;

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

pub use crate::store::token::{parse_token, token};

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
        assert_eq!(bucket_name(42), "00000000000000042");
        assert_eq!(parse_bucket(&bucket_name(bucket_of(123_456))), Some(123));
    }

    #[test]
    fn tmp_names() {
        let t = token();
        assert!(is_tmp_name(&t));
        assert!(is_tmp_name(&format!("{FORMAT_TMP_PREFIX}{t}")));
        assert!(is_tmp_name(&format!("{t}{BATCH_SUFFIX}")));
        assert!(!is_tmp_name("notes.txt"));
        assert!(is_batch_entry("12") && !is_batch_entry("1a"));
    }

    #[test]
    fn queue_entries() {
        for name in [
            "format", "counter", "ready", "ready-9", "corrupt", "tmp", "keys",
        ] {
            assert!(is_queue_entry(name), "{name}");
        }
        for name in ["ready-0", "ready-10", "junk"] {
            assert!(!is_queue_entry(name), "{name}");
        }
        for name in ["ready", "ready-1", "ready-9", "tmp", "claimed", "corrupt"] {
            assert!(is_queue_dir_entry(name), "{name}");
        }
        for name in ["format", "counter", "ready-0", "spool", "default"] {
            assert!(!is_queue_dir_entry(name), "{name}");
        }
    }

    #[test]
    fn format_files_are_judged_and_shown_escaped() {
        let judge = |b: &[u8]| judge_format(b, b.len() as u64);
        assert_eq!(
            judge(b"spool-queue 1"),
            Format::Damaged(
                r#"unsupported queue format "spool-queue 1" (no newline at its end; this spool reads "spool-queue 1\n")"#.into()
            )
        );
        assert_eq!(
            judge(b"spool-queue 99\n"),
            Format::Other(
                r#"unsupported queue format "spool-queue 99\n" (this spool reads "spool-queue 1\n")"#.into()
            )
        );
        assert!(matches!(judge(b"spool-queue 2"), Format::Other(_)));
        assert_eq!(judge(FORMAT), Format::Ours);
        assert!(
            matches!(judge(b"spool-queue 1 \n"), Format::Damaged(w) if w.contains("differs from byte 14"))
        );
        assert!(
            matches!(judge(b"spool-queue 1\r\n"), Format::Damaged(w) if w.contains(r#""spool-queue 1\r\n""#))
        );
        assert!(matches!(judge(b""), Format::Damaged(w) if w.contains("(empty;")));
        assert!(matches!(judge(b"spool-q"), Format::Damaged(w) if w.contains("cut after 7 bytes")));
        assert!(
            matches!(judge(b"spool-queue 1\nx"), Format::Damaged(w) if w.contains("1 bytes after its line"))
        );
        assert_eq!(escape_bytes(b"a\x00\xff\t\\\"", 6), r#""a\x00\xff\t\\\"""#);
        assert_eq!(
            escape_bytes(&[b'x'; 40], 100),
            format!("\"{}\"... (100 bytes)", "x".repeat(32))
        );
    }

    /// A token one hex digit too long or too short was taken for a claim
    /// that ended ("message 1 was claimed again since").
    #[test]
    fn claim_tokens_are_exactly_what_claim_prints() {
        let hex = token();
        assert_eq!(
            parse_token(&format_token(42, &hex)),
            Some((42, hex.as_str()))
        );
        assert_eq!(
            parse_token("42.9f3a0c1d2e4b5a67"),
            Some((42, "9f3a0c1d2e4b5a67"))
        );
        for bad in [
            "42.9f3a0c1d2e4b5a6",
            "42.9f3a0c1d2e4b5a670",
            "42.9F3A0C1D2E4B5A67",
            "42.",
            ".9f3a0c1d2e4b5a67",
            "042.9f3a0c1d2e4b5a67",
            "4x.9f3a0c1d2e4b5a67",
            "42.9f3a0c1d2e4b5a6g",
            "42.9f3a0c1d2e4b5a67.0",
            "99999999999999999999.9f3a0c1d2e4b5a67",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
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
