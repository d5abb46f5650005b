//! The output of `spool run`'s commands on its way through spool: with -j above 1 every
//! line whole, as `parallel --line-buffer` writes them; with --group each command's output
//! together, as parallel's default; and a standard output that closes keeps the messages
//! whose output it did not take. The helpers are in [`super::run`].

use std::collections::BTreeMap;

use crate::harness::{Engine, engine_tests};

use super::run::*;

engine_tests! {
    with_jobs_every_line_of_every_command_is_whole,
    the_last_line_without_a_newline_comes_when_its_command_ends,
    group_keeps_each_commands_output_together,
    a_closed_standard_output_keeps_the_messages_whose_output_was_lost,
}

/// Lines of a command: `LINES` of them to standard output and to standard error, each in
/// three pieces written a little apart, with a long middle.
const PIECEMEAL: &str = r#"pad=$(printf '%0500d' 0)
i=1
while [ $i -le "$LINES" ]; do
    printf 'job %s line %s ' "$SPOOL_ID" $i; printf 'err %s line %s ' "$SPOOL_ID" $i >&2
    sleep 0.01
    printf '%s' "$pad"; printf '%s' "$pad" >&2
    sleep 0.01
    printf ' end %s %s\n' "$SPOOL_ID" $i; printf ' end %s %s\n' "$SPOOL_ID" $i >&2
    i=$((i + 1))
done"#;

/// The `(id, line number)` of each line of `text` that [`PIECEMEAL`] writes with
/// `prefix` (`job` or `err`), asserting that each line is whole.
#[track_caller]
fn whole_lines(text: &str, prefix: &str) -> Vec<(u64, u64)> {
    assert!(text.ends_with('\n'), "ends with a whole line: {text:?}");
    let pad = "0".repeat(500);
    text.lines()
        .map(|line| {
            let parsed = line
                .strip_prefix(&format!("{prefix} "))
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(id, rest)| {
                    let (n, rest) = rest.strip_prefix("line ")?.split_once(' ')?;
                    let end = format!("{pad} end {id} {n}");
                    (rest == end).then(|| Some((id.parse().ok()?, n.parse().ok()?)))?
                });
            parsed.unwrap_or_else(|| panic!("a line mixed with another: {line:?}"))
        })
        .collect()
}

/// With -j above 1, the commands wrote to spool's standard output and error directly, so
/// that lines written in pieces by two commands at once came out mixed.
fn with_jobs_every_line_of_every_command_is_whole(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4", "5", "6"]);
    let lines = std::path::Path::new("30");
    let out = run_sh(&s, &["-j", "4"], PIECEMEAL, &[("LINES", lines)]);
    assert_eq!(out.code, 0, "{out:?}");
    for (text, prefix) in [(out.text(), "job"), (out.stderr.clone(), "err")] {
        let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (id, n) in whole_lines(&text, prefix) {
            seen.entry(id).or_default().push(n);
        }
        let expected: BTreeMap<u64, Vec<u64>> =
            (1..=6).map(|id| (id, (1..=30).collect())).collect();
        assert_eq!(
            seen, expected,
            "{prefix}: every line once, in order per command"
        );
    }
    assert_eq!(s.states("default"), []);
}

fn the_last_line_without_a_newline_comes_when_its_command_ends(engine: Engine) {
    for options in [&["-j", "2"][..], &["--group"]] {
        let s = engine.fixture();
        s.push(&["x"]);
        let out = run_sh(&s, options, r"printf 'a\nb'; printf 'c\nd' >&2", &[]);
        assert!(
            out.code == 0 && out.stdout == b"a\nb" && out.stderr == "c\nd",
            "{options:?}: {out:?}"
        );
    }
}

/// --group: each command's lines come together, in order, whatever the others write
/// meanwhile.
fn group_keeps_each_commands_output_together(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4"]);
    let lines = std::path::Path::new("10");
    let out = run_sh(&s, &["-j", "4", "--group"], PIECEMEAL, &[("LINES", lines)]);
    assert_eq!(out.code, 0, "{out:?}");
    for (text, prefix) in [(out.text(), "job"), (out.stderr.clone(), "err")] {
        let got = whole_lines(&text, prefix);
        let mut order: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        order.dedup();
        let mut ids = order.clone();
        ids.sort_unstable();
        assert_eq!(
            ids,
            [1, 2, 3, 4],
            "{prefix}: one block per command: {order:?}"
        );
        for id in order {
            let block: Vec<u64> = got.iter().filter(|l| l.0 == id).map(|l| l.1).collect();
            assert_eq!(
                block,
                (1..=10).collect::<Vec<_>>(),
                "{prefix}: command {id}"
            );
        }
    }
}

/// A message is acked only once its command's output was written: when the reader of
/// spool's standard output goes away, the messages whose output it did not take stay in
/// the queue, as a pop's would, and run stops taking more and exits 2.
fn a_closed_standard_output_keeps_the_messages_whose_output_was_lost(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4", "5", "6"]);
    let status = s.outside("status");
    // Each command writes one line of 200 kB: more than a pipe holds.
    let out = s
        .sh(&format!(
            "{{ spool run -j 2 -- sh -c 'head -c 200000 /dev/zero | tr \"\\0\" x; echo'; echo $? > '{}'; }} | head -c 1 > /dev/null",
            status.display()
        ))
        .run();
    assert_eq!(read(&status), "2\n", "{out:?}");
    // No output was taken in full: no message was acked, none spent an attempt.
    let ready: Vec<(u64, u64)> = s
        .list_json("default", "all")
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v["attempts"].as_u64().unwrap()))
        .collect();
    assert_eq!(ready, (1..=6).map(|id| (id, 0)).collect::<Vec<_>>());
    assert_eq!(s.len("default"), 6);
    // One line names the messages that were taken and given back: those of the two
    // commands that ran, and no other, since run stopped taking messages.
    let named: Vec<u64> = out
        .stderr
        .strip_prefix("spool: write standard output: Broken pipe (message")
        .and_then(|l| l.strip_suffix(" in the queue)\n"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .map(|id| id.parse().expect("an id"))
                .collect()
        })
        .unwrap_or_else(|| panic!("one line naming the kept messages: {out:?}"));
    assert!(
        !named.is_empty() && named.len() <= 2 && named.iter().all(|id| *id <= 6),
        "{out:?}"
    );
}
