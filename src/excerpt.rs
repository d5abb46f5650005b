//! User input in error messages: cut to a readable length, and escaped so that it stays on
//! the one line an error has.
//!
//! A value can be anything a user (or a script gone wrong) passed: a 100 kB token, a
//! newline, an escape sequence. An error shows the start of it, enough to recognise.

use std::borrow::Cow;

/// The number of characters of user input an error shows.
pub const SHOWN: usize = 40;

/// `text` cut to its first [`SHOWN`] characters and `…` when it is longer; as it is
/// otherwise. For messages that quote with `{:?}`, which escapes what is invisible.
pub fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
        None => Cow::Borrowed(text),
    }
}

/// `text` [`cut`], with control characters escaped as the shell tools write them (`\n`,
/// `\t`, `\r`, `\x1b`): for messages that quote with `'{}'`.
pub fn excerpt(text: &str) -> String {
    let mut shown = String::with_capacity(text.len().min(SHOWN * 4));
    for c in cut(text).chars() {
        match c {
            '\n' => shown.push_str("\\n"),
            '\t' => shown.push_str("\\t"),
            '\r' => shown.push_str("\\r"),
            '\\' => shown.push_str("\\\\"),
            c if c.is_ascii_control() => shown.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if c.is_control() => shown.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => shown.push(c),
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept() {
        assert_eq!(cut("abc"), "abc");
        assert_eq!(cut(&"x".repeat(SHOWN)), "x".repeat(SHOWN));
        assert_eq!(excerpt("a b"), "a b");
    }

    #[test]
    fn long_text_is_cut_on_a_character() {
        let long = "é".repeat(100_000);
        assert_eq!(cut(&long), format!("{}…", "é".repeat(SHOWN)));
        assert_eq!(excerpt(&long).chars().count(), SHOWN + 1);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(excerpt("a\nb\tc\rd\x1be\\"), "a\\nb\\tc\\rd\\x1be\\\\");
        assert_eq!(excerpt("\u{85}"), "\\u{0085}");
        assert!(!excerpt(&"\n".repeat(1000)).contains('\n'));
    }
}
