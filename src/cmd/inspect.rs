//! `spool list`, `len`, `stats` and `queues`: looking at queues without changing them.
//!
//! Nothing here creates a queue: a queue that does not exist lists nothing and counts 0.

use std::io::{self, BufWriter, Write};
use std::time::SystemTime;

use serde::Serialize;

use super::failure::{Failure, Outcome};
use super::output::{print, println_checked, stdout_error, stdout_file};
use crate::cli::{ListArgs, StateArg, StatsArgs};
use crate::clock;
use crate::exit::ExitStatus;
use crate::store::{self, Engine, Error, Queue, Result, State};
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

#[derive(Default, Serialize)]
struct StatsJson {
    queue: String,
    waiting: u64,
    delayed: u64,
    claimed: u64,
    failed: u64,
    bytes: u64,
    oldest_enqueued: Option<String>,
    oldest_age_seconds: Option<f64>,
    next_id: u64,
    /// Consumption rate R, messages per second over the last minutes.
    rate_per_second: f64,
    /// Expected wait of a new message, L / R; null when nothing was consumed lately.
    expected_wait_seconds: Option<f64>,
}

fn queue_stats<Q: Queue>(queue: Option<Q>, name: &str) -> Result<StatsJson> {
    let s = match &queue {
        Some(q) => q.stats()?,
        None => store::Stats {
            next_id: 1,
            window: 1.0,
            ..Default::default()
        },
    };
    let now = SystemTime::now();
    let rate = if s.window > 0.0 {
        s.consumed as f64 / s.window
    } else {
        0.0
    };
    Ok(StatsJson {
        queue: name.to_string(),
        waiting: s.ready,
        delayed: s.delayed,
        claimed: s.claimed,
        failed: s.failed,
        bytes: s.bytes,
        oldest_enqueued: s.oldest.map(timefmt::rfc3339),
        oldest_age_seconds: s.oldest.map(|t| {
            now.duration_since(t)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        }),
        next_id: s.next_id,
        rate_per_second: (rate * 1000.0).round() / 1000.0,
        expected_wait_seconds: (rate > 0.0).then(|| (s.ready as f64 / rate * 10.0).round() / 10.0),
    })
}

/// One fact of a queue's stats, in both renderings.
struct Field {
    /// Its column in `stats --all` (`None`: only in the one-queue form).
    header: Option<&'static str>,
    /// Its label in the one-queue form.
    label: &'static str,
    value: String,
    /// What follows the value in the one-queue form.
    note: String,
}

/// The facts of one queue, in the order both renderings show them.
fn fields(r: &StatsJson) -> Vec<Field> {
    let or_dash = |v: Option<f64>| v.map_or("-".to_string(), timefmt::age);
    let oldest_at = r.oldest_enqueued.as_ref().map(|t| format!(" ({t})"));
    [
        (Some("QUEUE"), "queue", r.queue.clone(), None),
        (Some("WAITING"), "waiting", r.waiting.to_string(), None),
        (Some("DELAYED"), "delayed", r.delayed.to_string(), None),
        (Some("CLAIMED"), "claimed", r.claimed.to_string(), None),
        (Some("FAILED"), "failed", r.failed.to_string(), None),
        (Some("BYTES"), "bytes", r.bytes.to_string(), None),
        (
            Some("OLDEST"),
            "oldest",
            or_dash(r.oldest_age_seconds),
            oldest_at,
        ),
        (
            Some("RATE/s"),
            "rate",
            r.rate_per_second.to_string(),
            Some("/s (last 5 minutes)".into()),
        ),
        (
            Some("WAIT"),
            "wait",
            or_dash(r.expected_wait_seconds),
            Some(" (expected, waiting / rate)".into()),
        ),
        (None, "next id", r.next_id.to_string(), None),
    ]
    .into_iter()
    .map(|(header, label, value, note)| Field {
        header,
        label,
        value,
        note: note.unwrap_or_default(),
    })
    .collect()
}

/// The stats of one queue, a line per fact: `waiting:  3`.
fn render_one(r: &StatsJson) -> String {
    let mut text = String::new();
    for f in fields(r) {
        let label = format!("{}:", f.label);
        text.push_str(&format!("{label:<10}{}{}\n", f.value, f.note));
    }
    text
}

/// The stats of many queues: the header line, then a line of cells per queue.
fn render_table(rows: &[StatsJson]) -> Vec<Vec<String>> {
    let columns = |r: &StatsJson| -> Vec<String> {
        fields(r)
            .into_iter()
            .filter(|f| f.header.is_some())
            .map(|f| f.value)
            .collect()
    };
    let header: Vec<String> = fields(&StatsJson::default())
        .into_iter()
        .filter_map(|f| f.header.map(String::from))
        .collect();
    std::iter::once(header)
        .chain(rows.iter().map(columns))
        .collect()
}

/// Lays out `table`. `aligned` (for a terminal): columns padded with spaces, the queue
/// names to the left, the figures to the right, as `ps` shows them. Otherwise
/// tab-separated values for `cut`, `awk` and `column -t`, the header kept as their first
/// line (as `ps` keeps it in a pipe): a reader skips it by position, never by guessing.
fn lay_out(table: &[Vec<String>], aligned: bool) -> String {
    let mut text = String::new();
    if !aligned {
        for line in table {
            text.push_str(&line.join("\t"));
            text.push('\n');
        }
        return text;
    }
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .map(|line| line[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in table {
        let mut cells = Vec::with_capacity(columns);
        for (c, cell) in line.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            cells.push(if c == 0 {
                format!("{cell}{pad}")
            } else {
                format!("{pad}{cell}")
            });
        }
        text.push_str(&cells.join("  "));
        text.push('\n');
    }
    text
}

fn render_stats<E: Engine>(
    engine: &E,
    name: &str,
    args: &StatsArgs,
    terminal: bool,
) -> std::result::Result<String, Failure> {
    let names = if args.all {
        engine.queues()?
    } else {
        vec![name.to_string()]
    };
    let mut rows = Vec::new();
    for name in &names {
        rows.push(queue_stats(engine.open(name)?, name)?);
    }
    let mut text = String::new();
    if args.json {
        for row in &rows {
            text.push_str(&serde_json::to_string(row).expect("plain struct serializes"));
            text.push('\n');
        }
    } else if args.all {
        text = lay_out(&render_table(&rows), terminal);
    } else if let Some(r) = rows.first() {
        text = render_one(r);
    }
    Ok(text)
}

pub(super) fn stats<E: Engine>(engine: &E, name: &str, args: StatsArgs) -> Outcome {
    use std::io::IsTerminal;
    let mut out = stdout_file()?;
    let tty = out.is_terminal();
    loop {
        let text = render_stats(engine, name, &args, tty)?;
        if args.watch && tty {
            out.write_all(b"\x1b[H\x1b[2J").map_err(stdout_error)?;
        }
        out.write_all(text.as_bytes()).map_err(stdout_error)?;
        if !args.watch {
            return Ok(ExitStatus::Success);
        }
        if !tty {
            out.write_all(b"\n").map_err(stdout_error)?;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
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
    use super::{StatsJson, lay_out, preview, render_table};

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
    fn stats_of_many_queues_align_on_a_terminal_and_are_tab_separated_otherwise() {
        let row = |queue: &str, waiting, oldest| StatsJson {
            queue: queue.into(),
            waiting,
            bytes: waiting * 10,
            oldest_age_seconds: oldest,
            rate_per_second: 0.25,
            expected_wait_seconds: Some(waiting as f64 * 4.0),
            next_id: 7,
            ..StatsJson::default()
        };
        let table = render_table(&[row("a", 12345, Some(61.0)), row("longer", 0, None)]);
        assert_eq!(
            lay_out(&table, true),
            "\
QUEUE   WAITING  DELAYED  CLAIMED  FAILED   BYTES  OLDEST  RATE/s    WAIT
a         12345        0        0       0  123450    1m1s    0.25  13h43m
longer        0        0        0       0       0       -    0.25     0ms
"
        );
        assert_eq!(
            lay_out(&table, false),
            "\
QUEUE\tWAITING\tDELAYED\tCLAIMED\tFAILED\tBYTES\tOLDEST\tRATE/s\tWAIT
a\t12345\t0\t0\t0\t123450\t1m1s\t0.25\t13h43m
longer\t0\t0\t0\t0\t0\t-\t0.25\t0ms
"
        );
    }

    #[test]
    fn previews_keep_utf8_as_text_for_json() {
        let p = preview(b"tab\there\x1b", false);
        assert_eq!(p.text.as_deref(), Some("tab\there\x1b"));
        assert_eq!(preview(b"\xff\xfe", false).text, None);
    }
}
