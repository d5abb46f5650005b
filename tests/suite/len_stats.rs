//! `spool len` and `spool stats` (text, `--json`, `--all`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{
    Engine, Fixture, engine_tests, json_lines, names_in, parse_rfc3339, skip, tool_works,
};

engine_tests! {
    len_counts_waiting_messages, stats_text, stats_json, stats_all_covers_every_queue,
    commands_that_print_fail_when_standard_output_is_closed,
    stats_all_aligns_columns_on_a_terminal_and_separates_them_with_tabs_in_a_pipe,
}

fn len_counts_waiting_messages(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["len"], "0\n");
    s.push(&["a", "b", "c"]);
    s.prints(&["len"], "3\n");
    s.run(&["pop"]).success();
    s.prints(&["len"], "2\n");
    s.run(&["peek"]).success();
    s.prints(&["len"], "2\n");
    s.prints(&["-q", "elsewhere", "len"], "0\n");
    s.run(&["pop", "-n", "2", "-l"]).success();
    s.prints(&["len"], "0\n");
}

#[test]
fn len_of_a_missing_queue_is_zero() {
    let s = Fixture::new();
    s.prints(&["-q", "nothing-here", "len"], "0\n");
    assert!(!s.root().exists());
}

fn stats_text(engine: Engine) {
    let s = engine.fixture();
    s.push(&["abc", "defg", "hello"]);
    let out = s.run(&["stats"]);
    out.success();
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"waiting:  3"), "{text}");
    assert!(lines.contains(&"bytes:    12"), "{text}");
    assert!(text.contains("default"), "{text}");
    s.run(&["pop"]).success();
    let text = s.run(&["stats"]).text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"waiting:  2"), "{text}");
    assert!(lines.contains(&"bytes:    9"), "{text}");
}

#[test]
fn stats_text_on_a_missing_queue() {
    let s = Fixture::new();
    let out = s.run(&["stats"]);
    out.success();
    let text = out.text();
    assert!(text.lines().any(|l| l == "waiting:  0"), "{text}");
    assert!(text.lines().any(|l| l == "bytes:    0"), "{text}");
    assert!(!s.root().exists());
}

const STATS_KEYS: [&str; 7] = [
    "queue",
    "waiting",
    "bytes",
    "claimed",
    "oldest_enqueued",
    "oldest_age_seconds",
    "next_id",
];

/// Asserts the keys of the contract are there (more may follow in later versions).
#[track_caller]
fn check_keys(o: &Value) {
    let keys: BTreeSet<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
    let missing: Vec<&&str> = STATS_KEYS.iter().filter(|k| !keys.contains(**k)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in {o}");
}

fn stats_json(engine: Engine) {
    let s = engine.fixture();
    s.push(&["abc", "defg", "hello"]);
    let out = s.run(&["stats", "--json"]);
    out.success();
    let objects = json_lines(&out.stdout);
    assert_eq!(objects.len(), 1, "{out:?}");
    let o = &objects[0];
    check_keys(o);
    assert_eq!(o["queue"], "default");
    assert_eq!(o["waiting"], 3);
    assert_eq!(o["bytes"], 12);
    assert_eq!(o["claimed"], 0);
    assert_eq!(o["next_id"], 4);
    let oldest = o["oldest_enqueued"].as_str().expect("oldest_enqueued");
    assert!(parse_rfc3339(oldest).is_some(), "{oldest}");
    let listed = json_lines(&s.run(&["list", "--json"]).stdout);
    assert_eq!(listed[0]["enqueued"].as_str(), Some(oldest));
    let age = o["oldest_age_seconds"].as_f64().expect("age is a number");
    assert!(age >= 0.0, "{o}");
}

#[test]
fn stats_json_on_an_empty_and_a_missing_queue() {
    let s = Fixture::new();
    let o = &json_lines(&s.run(&["stats", "--json"]).stdout)[0];
    check_keys(o);
    assert_eq!(o["queue"], "default");
    assert_eq!(o["waiting"], 0);
    assert_eq!(o["bytes"], 0);
    assert_eq!(o["claimed"], 0);
    assert_eq!(o["next_id"], 1);
    assert!(o["oldest_enqueued"].is_null(), "{o}");
    assert!(o["oldest_age_seconds"].is_null(), "{o}");
    assert!(!s.root().exists());

    s.push(&["a", "b"]);
    s.run(&["pop", "-n", "2", "-l"]).success();
    let o = &json_lines(&s.run(&["stats", "--json"]).stdout)[0];
    assert_eq!(o["waiting"], 0);
    assert_eq!(o["bytes"], 0);
    assert_eq!(o["next_id"], 3);
    assert!(o["oldest_enqueued"].is_null(), "{o}");
}

fn stats_all_covers_every_queue(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "beta", "push", "b1"]).success();
    s.run(&["-q", "alpha", "push", "a1", "a22"]).success();
    s.run(&["-q", "gamma", "push", "g"]).success();
    s.run(&["-q", "gamma", "pop"]).success();

    let out = s.run(&["stats", "--all", "--json"]);
    out.success();
    let objects = json_lines(&out.stdout);
    let got: Vec<(String, u64, u64, u64)> = objects
        .iter()
        .map(|o| {
            check_keys(o);
            (
                o["queue"].as_str().unwrap().to_string(),
                o["waiting"].as_u64().unwrap(),
                o["bytes"].as_u64().unwrap(),
                o["next_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("alpha".to_string(), 2, 5, 3),
            ("beta".to_string(), 1, 2, 2),
            ("gamma".to_string(), 0, 0, 2),
        ]
    );

    let out = s.run(&["stats", "--all"]);
    out.success();
    let text = out.text();
    for q in ["alpha", "beta", "gamma"] {
        assert!(text.lines().any(|l| l.contains(q)), "{q} in:\n{text}");
    }
    // -q does not narrow --all.
    let out = s.run(&["-q", "beta", "stats", "--all", "--json"]);
    assert_eq!(json_lines(&out.stdout).len(), 3);
}

#[test]
fn stats_does_not_create_anything() {
    let s = Fixture::new();
    s.run(&["-q", "a", "push", "x"]).success();
    s.run(&["-q", "b", "stats"]).success();
    s.run(&["-q", "b", "stats", "--json"]).success();
    s.run(&["stats", "--all"]).success();
    assert_eq!(names_in(s.root()), ["a"]);
}

fn commands_that_print_fail_when_standard_output_is_closed(engine: Engine) {
    let s = engine.fixture();
    s.push(&["m"]);
    for command in [
        "spool len",
        "spool list",
        "spool stats",
        "spool queues",
        "spool peek",
        "spool --version",
        "spool completions bash",
    ] {
        s.sh(&format!("{command} >&-"))
            .run()
            .error()
            .stderr_has("write standard output: Bad file descriptor");
    }
    assert_eq!(s.len("default"), 1);
}

/// The spans (start, end) of the words of `line`.
fn word_spans(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
        match (c == ' ', start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    spans
}

// `stats --all` printed tab-separated values on a terminal too, its columns not aligned.
fn stats_all_aligns_columns_on_a_terminal_and_separates_them_with_tabs_in_a_pipe(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "alpha", "push", "a", "b"]).success();
    s.run(&["-q", "a-much-longer-name", "push", "--delay", "1h", "x"])
        .success();
    let header = [
        "QUEUE", "WAITING", "DELAYED", "CLAIMED", "FAILED", "BYTES", "OLDEST", "IN/s", "OUT/s",
        "WAIT", "TREND",
    ];
    // In a pipe: tab-separated values under their header.
    let out = s.run(&["stats", "--all"]);
    out.success();
    let text = out.text();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], header, "{text}");
    assert_eq!(
        lines[1][..6],
        ["a-much-longer-name", "0", "1", "0", "0", "0"]
    );
    assert_eq!(lines[2][..6], ["alpha", "2", "0", "0", "0", "2"]);
    assert!(lines.iter().all(|l| l.len() == header.len()), "{text}");

    // On a terminal: columns aligned with spaces, names to the left, figures to the right.
    if let Err(why) = tool_works("script", &["--version"]) {
        return skip(&why);
    }
    let out = s.sh("script -qec 'spool stats --all' /dev/null").run();
    out.success();
    let text = out.text().replace("\r\n", "\n");
    assert!(!text.contains('\t'), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let words: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(words, header, "{text}");
    let spans: Vec<Vec<(usize, usize)>> = lines.iter().map(|l| word_spans(l)).collect();
    for (line, s) in lines.iter().zip(&spans) {
        assert_eq!(s.len(), header.len(), "{line:?} in:\n{text}");
        assert_eq!(s[0].0, 0, "{text}");
        // Figures end where their header ends; the trend, a word, starts where its does.
        let last = header.len() - 1;
        for c in 1..last {
            assert_eq!(
                s[c].1, spans[0][c].1,
                "column {} not aligned:\n{text}",
                header[c]
            );
        }
        assert_eq!(s[last].0, spans[0][last].0, "TREND not aligned:\n{text}");
    }
    assert!(lines[1].starts_with("a-much-longer-name  "), "{text}");
    assert!(lines[2].starts_with("alpha               "), "{text}");
}
