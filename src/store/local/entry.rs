//! The names of message files, which carry each message's small metadata.
//!
//! A name is a 20-digit key, then optional fields, each `.` + a letter + a value:
//!
//! | field | meaning | where |
//! |---|---|---|
//! | `i<n>` | message id, when it differs from the key | ready lanes, delayed |
//! | `s<n>` | position (sequence) to return to, when it differs from the id | claimed |
//! | `a<n>` | attempts so far (claims made) | all, when not 0 |
//! | `p<n>` | priority 1-9 | delayed, claimed, failed (a lane's directory says it otherwise) |
//! | `e<ms>` | expiry time (unix milliseconds) from `--ttl` | all |
//! | `t<hex>` | the claim's token | claimed |
//! | `l<ms>` | lease deadline (unix milliseconds) | claimed |
//! | `r<word>` | why it failed | failed |
//! | `k<key>` | deduplication key (`push --key`), always last | all |
//!
//! The key is the position in a ready lane (a sequence number: the id for a fresh message),
//! the due time in unix milliseconds in `delayed/`, and the id in `claimed/` and `failed/`.
//! A fresh message without metadata is named by its id alone. Anything that does not parse
//! exactly is not ours.
//!
//! A key may hold `.`, so the `k` field is found differently: the first `.k` of a name
//! starts it, and the rest of the name is the key (checked by [`crate::store::is_valid_key`]).
//! No other field's value holds `.k` (they are digits, lowercase hex, or reason words
//! without `.`), so the first one is the key's. The longest name, a claim's, is under 140
//! bytes before the key, and 66 more with it: below the 255 bytes a name may have.

/// Width of keys in names.
pub const KEY_WIDTH: usize = 20;

/// A parsed entry name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Position, due time or id, by directory (see the module docs).
    pub key: u64,
    /// Message id (`i`, else the key).
    pub id: u64,
    /// Position to return to (`s`), for claimed messages.
    pub seq: Option<u64>,
    /// Claims made so far.
    pub attempts: u32,
    /// Priority, 0 to 9.
    pub priority: u8,
    /// Expiry (unix ms).
    pub expires: Option<u64>,
    /// Claim token (hex).
    pub token: Option<String>,
    /// Lease deadline (unix ms).
    pub lease: Option<u64>,
    /// Failure reason (a word of `a-z 0-9 -`).
    pub reason: Option<String>,
    /// Deduplication key (`k`): the message holds it while `keys/KEY`'s length is its id.
    pub dedup: Option<String>,
}

fn digits(s: &str) -> Option<u64> {
    if !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
    {
        s.parse().ok()
    } else {
        None
    }
}

/// Whether a reason word is well formed.
pub fn is_reason(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Entry {
    /// A fresh message with id `id`, keyed by it.
    pub fn fresh(id: u64) -> Entry {
        Entry {
            key: id,
            id,
            ..Entry::default()
        }
    }

    /// This message waiting in a ready lane at position `key`: its id, attempts, expiry
    /// and deduplication key kept, its priority said by the lane's directory, nothing of a
    /// claim.
    pub fn in_lane(&self, key: u64) -> Entry {
        Entry {
            key,
            id: self.id,
            attempts: self.attempts,
            expires: self.expires,
            dedup: self.dedup.clone(),
            ..Entry::default()
        }
    }

    /// Parses a name; `None` unless it is exactly of the form spool writes.
    pub fn parse(name: &str) -> Option<Entry> {
        // The key field is last and may hold dots: everything after the first `.k`.
        let (name, dedup) = match name.find(".k") {
            Some(at) => {
                let key = &name[at + 2..];
                if !crate::store::is_valid_key(key) {
                    return None;
                }
                (&name[..at], Some(key.to_string()))
            }
            None => (name, None),
        };
        let mut parts = name.split('.');
        let key = parts.next()?;
        if key.len() != KEY_WIDTH || !key.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let key: u64 = key.parse().ok()?;
        let mut e = Entry {
            key,
            id: key,
            dedup,
            ..Entry::default()
        };
        // Fields appear at most once each, in this order.
        const ORDER: &[u8] = b"isapetlr"; // and `k`, last, split off above
        let mut next_rank = 0;
        for part in parts {
            let tag = *part.as_bytes().first()?;
            let rank = ORDER.iter().position(|&t| t == tag)?;
            if rank < next_rank {
                return None;
            }
            next_rank = rank + 1;
            let v = &part[1..]; // the tag is ASCII: slicing after it is on a char boundary
            match tag {
                // Fields equal to their default are never written: not accepted either, so
                // that every entry has exactly one name.
                b'i' => e.id = digits(v).filter(|&id| id != key)?,
                b's' => e.seq = Some(digits(v)?),
                b'a' => e.attempts = u32::try_from(digits(v)?).ok().filter(|&a| a > 0)?,
                b'p' => {
                    let p = digits(v)?;
                    if !(1..=9).contains(&p) {
                        return None;
                    }
                    e.priority = p as u8;
                }
                b'e' => e.expires = Some(digits(v)?),
                b't' => {
                    if v.is_empty()
                        || v.len() > 32
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    {
                        return None;
                    }
                    e.token = Some(v.to_string());
                }
                b'l' => e.lease = Some(digits(v)?),
                b'r' => {
                    if !is_reason(v) {
                        return None;
                    }
                    e.reason = Some(v.to_string());
                }
                _ => return None,
            }
        }
        if e.id == 0 || e.seq == Some(e.id) {
            return None;
        }
        Some(e)
    }

    /// The name of this entry (the inverse of [`parse`](Self::parse)).
    pub fn name(&self) -> String {
        let mut s = format!("{:0w$}", self.key, w = KEY_WIDTH);
        if self.id != self.key {
            s.push_str(&format!(".i{}", self.id));
        }
        if let Some(seq) = self.seq.filter(|&q| q != self.id) {
            s.push_str(&format!(".s{seq}"));
        }
        if self.attempts > 0 {
            s.push_str(&format!(".a{}", self.attempts));
        }
        if self.priority > 0 {
            s.push_str(&format!(".p{}", self.priority));
        }
        if let Some(e) = self.expires {
            s.push_str(&format!(".e{e}"));
        }
        if let Some(t) = &self.token {
            s.push_str(&format!(".t{t}"));
        }
        if let Some(l) = self.lease {
            s.push_str(&format!(".l{l}"));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(".r{r}"));
        }
        if let Some(k) = &self.dedup {
            s.push_str(&format!(".k{k}"));
        }
        s
    }

    /// Where a claimed message goes back to: its position, or its id.
    pub fn position(&self) -> u64 {
        self.seq.unwrap_or(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_are_the_id() {
        assert_eq!(Entry::fresh(42).name(), "00000000000000000042");
        assert_eq!(Entry::parse("00000000000000000042"), Some(Entry::fresh(42)));
    }

    #[test]
    fn round_trips() {
        let e = Entry {
            key: 7,
            id: 3,
            seq: Some(5),
            attempts: 2,
            priority: 9,
            expires: Some(1_764_059_358_000),
            token: Some("9f3a".into()),
            lease: Some(1_764_059_400_000),
            reason: Some("exit-100".into()),
            dedup: Some("job.k1:a@b".into()),
        };
        let name = e.name();
        assert_eq!(
            name,
            "00000000000000000007.i3.s5.a2.p9.e1764059358000.t9f3a.l1764059400000.rexit-100.kjob.k1:a@b"
        );
        assert_eq!(Entry::parse(&name), Some(e));
    }

    #[test]
    fn keys_may_hold_dots_and_dot_k() {
        for key in [
            "a",
            "a.b",
            "x.k",
            "a.kb.k",
            "k",
            "k.",
            "a..b",
            "user@host:1+2=3,4",
        ] {
            let e = Entry {
                dedup: Some(key.into()),
                ..Entry::fresh(42)
            };
            let name = e.name();
            assert_eq!(name, format!("00000000000000000042.k{key}"));
            assert_eq!(Entry::parse(&name), Some(e), "{name}");
        }
        // Fields come before the key: after it, they are part of it.
        let e = Entry::parse("00000000000000000042.a2.kjob.a3").unwrap();
        assert_eq!((e.attempts, e.dedup.as_deref()), (2, Some("job.a3")));
    }

    #[test]
    fn the_longest_names_fit() {
        // The longest name spool writes is a claim's; a dead letter's is shorter.
        let claim = Entry {
            key: u64::MAX,
            id: u64::MAX,
            seq: Some(u64::MAX - 1),
            attempts: u32::MAX,
            priority: 9,
            expires: Some(u64::MAX),
            token: Some("f".repeat(16)),
            lease: Some(u64::MAX),
            reason: None,
            dedup: Some("K".repeat(64)),
        };
        let failed = Entry {
            seq: None,
            token: None,
            lease: None,
            reason: Some("z".repeat(40)),
            ..claim.clone()
        };
        for e in [claim, failed] {
            let name = e.name();
            assert!(name.len() <= 201, "{} bytes: {name}", name.len());
            assert_eq!(Entry::parse(&name), Some(e));
        }
    }

    #[test]
    fn rejects_what_spool_would_not_write() {
        for bad in [
            "42",
            "0000000000000000004x",
            "00000000000000000000",
            "00000000000000000042.",
            "00000000000000000042.x1",
            "00000000000000000042.a01",
            "00000000000000000042.a1.a2",
            "00000000000000000042.a1.i3",
            "00000000000000000042.p0",
            "00000000000000000042.p10",
            "00000000000000000042.tXYZ",
            "00000000000000000042.rBad",
            "00000000000000000042.tmp",
            "00000000000000000042.a0",
            "00000000000000000042.i42",
            "00000000000000000042.s42",
            "00000000000000000042.k",
            "00000000000000000042.k.x",
            "00000000000000000042.ka b",
            "00000000000000000042.ka/b",
            "00000000000000000042.a1.k",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad}");
        }
        let long = format!("00000000000000000042.k{}", "x".repeat(65));
        assert_eq!(Entry::parse(&long), None);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn parsing_any_name_never_panics_and_round_trips(name in "\\PC{0,60}") {
            if let Some(e) = Entry::parse(&name) {
                prop_assert_eq!(e.name(), name);
            }
        }

        #[test]
        fn names_of_the_right_shape_round_trip(
            key in 1u64..u64::MAX, attempts in 0u32..100, priority in 0u8..10,
            expires in proptest::option::of(0u64..1u64 << 50), token in proptest::option::of("[0-9a-f]{1,32}"),
            reason in proptest::option::of("[a-z0-9-]{1,40}"),
            dedup in proptest::option::of("[A-Za-z0-9_:@+=,-][A-Za-z0-9._:@+=,-]{0,63}"),
        ) {
            let e = Entry { key, id: key, seq: None, attempts, priority, expires, token, lease: None, reason, dedup };
            prop_assert_eq!(Entry::parse(&e.name()), Some(e));
        }

        #[test]
        fn near_misses_are_not_ours(name in "[0-9]{18,22}(\\.[a-z][0-9a-zA-Z-]{0,5}){0,3}") {
            if let Some(e) = Entry::parse(&name) {
                prop_assert_eq!(e.name(), name);
            }
        }
    }
}
