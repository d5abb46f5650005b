//! `spool list`, `len` and `queues`: looking at queues without changing them (`stats`
//! has a file of its own).
//!
//! Nothing here creates a queue: a queue that does not exist lists nothing and counts 0.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::failure::Outcome;
use super::output::{print, println_checked, stdout_error, stdout_file};
use crate::cli::{ListArgs, StateArg};
use crate::clock;
use crate::exit::ExitStatus;
use crate::store::{self, Engine, Error, Queue, State};
use crate::timefmt;

pub(super) fn states(arg: StateArg) -> Vec<State> {
    match arg {
        StateArg::Ready => vec![State::Ready],
        StateArg::Delayed => vec![State::Delayed],
        StateArg::Claimed => vec![State::Claimed],
        StateArg::Failed => vec![State::Failed],
        StateArg::All => State::ALL.to_vec(),
    }
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: u64,
    state: &'static str,
    size: u64,
    enqueued: &'a str,
    attempts: u32,
    priority: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    preview: &'a str,
    /// The preview is not UTF-8: it shows the bytes escaped, as the text listing does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    preview_escaped: bool,
}

const PREVIEW_BYTES: usize = 48;

pub(super) fn list<E: Engine>(engine: &E, name: &str, args: ListArgs) -> Outcome {
    let Some(queue) = engine.open(name)? else {
        return Ok(ExitStatus::Success);
    };
    let mut out = BufWriter::with_capacity(1 << 16, stdout_file()?);
    let mut head = [0u8; PREVIEW_BYTES + 1];
    let show_state = args.state != StateArg::Ready;
    queue.walk(&states(args.state), |info, open| {
        let preview = match open()? {
            Some(mut file) => {
                let n = store::read_full(&mut file, &mut head)
                    .map_err(|e| Error::io("read", format!("message {}", info.id), e))?;
                preview(&head[..n.min(PREVIEW_BYTES)], n > PREVIEW_BYTES)
            }
            None => return Ok(true), // taken meanwhile
        };
        let enqueued = timefmt::rfc3339(info.enqueued);
        let until = info.until.map(|t| timefmt::rfc3339(clock::system_time(t)));
        let expires = info
            .expires
            .map(|t| timefmt::rfc3339(clock::system_time(t)));
        let written = if args.json {
            let entry = ListEntry {
                id: info.id,
                state: info.state.as_str(),
                size: info.size,
                enqueued: &enqueued,
                attempts: info.attempts,
                priority: info.priority,
                until,
                expires,
                reason: info.reason.as_deref(),
                key: info.key.as_deref(),
                preview: preview.text.as_deref().unwrap_or(&preview.escaped),
                preview_escaped: preview.text.is_none(),
            };
            serde_json::to_writer(&mut out, &entry)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        } else if show_state {
            let mut details = format!("attempts={}", info.attempts);
            if info.priority > 0 {
                details.push_str(&format!(" priority={}", info.priority));
            }
            if let Some(u) = &until {
                details.push_str(if info.state == State::Delayed {
                    " due="
                } else {
                    " lease="
                });
                details.push_str(u);
            }
            if let Some(r) = &info.reason {
                details.push_str(&format!(" reason={r}"));
            }
            if let Some(k) = &info.key {
                details.push_str(&format!(" key={k}"));
            }
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                info.id,
                info.state.as_str(),
                info.size,
                enqueued,
                details,
                preview.escaped
            )
        } else {
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                info.id, info.size, enqueued, preview.escaped
            )
        };
        written.map_err(|e| Error::io("write", "standard output", e))?;
        Ok(true)
    })?;
    out.flush().map_err(stdout_error)?;
    Ok(ExitStatus::Success)
}

/// The start of a payload, for `list`.
struct Preview {
    /// One printable line, as shells' tools escape (`ls -b`, `cat -v`): `\t`, `\n`, `\r`,
    /// `\\`, and `\xHH` for each byte of other control characters and of invalid UTF-8;
    /// `…` marks a cut.
    escaped: String,
    /// The bytes as they are when they are UTF-8 (JSON escapes what it must), with `…`
    /// marking a cut; `None` when they are not.
    text: Option<String>,
}

/// Previews `bytes`, the start of a payload; `cut`: the payload goes on. A character cut
/// by the end of `bytes` is left out, not shown as invalid bytes.
fn preview(bytes: &[u8], cut: bool) -> Preview {
    let mut bytes = bytes;
    if cut && let Some(last) = bytes.utf8_chunks().last() {
        let tail = last.invalid();
        if std::str::from_utf8(tail).is_err_and(|e| e.error_len().is_none()) {
            bytes = &bytes[..bytes.len() - tail.len()];
        }
    }
    let mark = if cut { "…" } else { "" };
    let mut escaped = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '\t' => escaped.push_str("\\t"),
                '\n' => escaped.push_str("\\n"),
                '\r' => escaped.push_str("\\r"),
                c if c.is_control() => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        escaped.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => escaped.push(c),
            }
        }
        for b in chunk.invalid() {
            escaped.push_str(&format!("\\x{b:02x}"));
        }
    }
    escaped.push_str(mark);
    let text = std::str::from_utf8(bytes)
        .ok()
        .map(|t| format!("{t}{mark}"));
    Preview { escaped, text }
}

pub(super) fn len<E: Engine>(engine: &E, name: &str) -> Outcome {
    let n = match engine.open(name)? {
        Some(queue) => queue.waiting()?,
        None => 0,
    };
    println_checked(&n.to_string())?;
    Ok(ExitStatus::Success)
}

pub(super) fn queues<E: Engine>(engine: &E) -> Outcome {
    let mut text = String::new();
    for name in engine.queues()? {
        text.push_str(&name);
        text.push('\n');
    }
    print(text.as_bytes())?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[track_caller]
    fn escaped(bytes: &[u8], cut: bool) -> String {
        preview(bytes, cut).escaped
    }

    #[test]
    fn previews_are_one_printable_line_escaped_as_shell_tools_do() {
        assert_eq!(escaped(b"hello", false), "hello");
        assert_eq!(escaped(b"a\nb\tc\r\0", false), "a\\nb\\tc\\r\\x00");
        assert_eq!(escaped(b"\x1b[31mred\x7f", false), "\\x1b[31mred\\x7f");
        assert_eq!(
            escaped("next\u{85}line".as_bytes(), false),
            "next\\xc2\\x85line"
        );
        assert_eq!(escaped(b"caf\xc3\xa9 \xff", true), "café \\xff…");
        assert_eq!(escaped(b"back\\slash", false), "back\\\\slash");
    }

    #[test]
    fn previews_cut_at_a_character_boundary() {
        // "é" is two bytes: a cut after the first leaves the character out.
        assert_eq!(escaped(b"ab\xc3", true), "ab…");
        assert_eq!(escaped("a€".as_bytes()[..3].as_ref(), true), "a…");
        // Not at a cut, or not the start of a character: invalid bytes, shown.
        assert_eq!(escaped(b"ab\xc3", false), "ab\\xc3");
        assert_eq!(escaped(b"ab\xff", true), "ab\\xff…");
        assert_eq!(preview(b"ab\xc3", true).text.as_deref(), Some("ab…"));
    }

    #[test]
    fn previews_keep_utf8_as_text_for_json() {
        let p = preview(b"tab\there\x1b", false);
        assert_eq!(p.text.as_deref(), Some("tab\there\x1b"));
        assert_eq!(preview(b"\xff\xfe", false).text, None);
    }
}
