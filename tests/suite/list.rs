//! `spool list`: `ID\tSIZE\tENQUEUED\tPREVIEW` per message, or JSON lines with `--json`.

use std::collections::BTreeSet;

use crate::harness::{Engine, Fixture, engine_tests, json_lines, now_secs, parse_rfc3339};

engine_tests! {
    list_shows_id_size_time_and_preview_in_order, list_on_an_empty_queue_prints_nothing,
    previews_escape_control_characters, previews_are_cut_at_48_bytes,
    previews_of_binary_are_printable, list_json_has_id_size_enqueued_preview,
    list_size_is_the_payload_length, list_json_previews_are_json_strings,
}

/// One parsed line of the text listing.
#[derive(Debug)]
struct Row {
    id: u64,
    size: u64,
    enqueued: i64,
    preview: String,
}

#[track_caller]
fn rows(s: &Fixture) -> Vec<Row> {
    let out = s.run(&["list"]);
    out.success();
    let text = out.text();
    assert!(text.is_empty() || text.ends_with('\n'), "{out:?}");
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(4, '\t').collect();
            assert_eq!(fields.len(), 4, "four tab-separated fields: {line:?}");
            Row {
                id: fields[0].parse().expect("id"),
                size: fields[1].parse().expect("size"),
                enqueued: parse_rfc3339(fields[2])
                    .unwrap_or_else(|| panic!("not RFC 3339 UTC: {:?}", fields[2])),
                preview: fields[3].to_string(),
            }
        })
        .collect()
}

#[track_caller]
fn preview_of(engine: Engine, payload: &[u8]) -> String {
    let s = engine.fixture();
    s.cmd().arg("push").stdin(payload.to_vec()).run().success();
    let rows = rows(&s);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].size, payload.len() as u64);
    rows[0].preview.clone()
}

fn list_shows_id_size_time_and_preview_in_order(engine: Engine) {
    let s = engine.fixture();
    let before = now_secs();
    s.push(&["hello", "", "third message"]);
    s.push(&["x"]);
    let after = now_secs();
    s.prints(&["pop"], "hello");
    let rows = rows(&s);
    let got: Vec<(u64, u64, &str)> = rows
        .iter()
        .map(|r| (r.id, r.size, r.preview.as_str()))
        .collect();
    assert_eq!(got, [(2, 0, ""), (3, 13, "third message"), (4, 1, "x")]);
    for r in &rows {
        // File times come from a coarse clock that may lag the system clock slightly.
        assert!(
            (before - 1..=after + 1).contains(&r.enqueued),
            "enqueued {} outside {before}..={after}",
            r.enqueued
        );
    }
    // Listing removes nothing.
    assert_eq!(s.len("default"), 3);
}

fn list_on_an_empty_queue_prints_nothing(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["list"], "");
    s.push(&["a"]);
    s.run(&["pop"]).success();
    s.prints(&["list"], "");
    s.prints(&["list", "--json"], "");
}

// Previews showed control characters in Rust's style (`\u{1b}`), not as the shell's
// tools do.
fn previews_escape_control_characters(engine: Engine) {
    assert_eq!(preview_of(engine, b"a\nb\tc\0"), "a\\nb\\tc\\x00");
    assert_eq!(preview_of(engine, b"line\r\n"), "line\\r\\n");
    assert_eq!(
        preview_of(engine, b"\x1b[31mred\x7f \\ \x01"),
        "\\x1b[31mred\\x7f \\\\ \\x01"
    );
    for payload in [&b"\r\x1b[31mred\x7f"[..], b"\x01\x02\x03\x04 bell\x07"] {
        let p = preview_of(engine, payload);
        assert!(!p.chars().any(char::is_control), "{p:?}");
        assert!(p.contains("red") || p.contains("bell"), "{p:?}");
    }
}

fn previews_are_cut_at_48_bytes(engine: Engine) {
    assert_eq!(preview_of(engine, &[b'x'; 48]), "x".repeat(48));
    assert_eq!(
        preview_of(engine, &[b'x'; 49]),
        format!("{}…", "x".repeat(48))
    );
    assert_eq!(
        preview_of(engine, &[b'y'; 5000]),
        format!("{}…", "y".repeat(48))
    );
    assert_eq!(
        preview_of(engine, "é".repeat(30).as_bytes()),
        format!("{}…", "é".repeat(24))
    );
    assert_eq!(
        preview_of(engine, &[b'\n'; 60]),
        format!("{}…", "\\n".repeat(48))
    );
    // A character cut by the 48th byte is left out, not shown as invalid bytes.
    let x47 = "x".repeat(47);
    assert_eq!(
        preview_of(engine, format!("{x47}éé").as_bytes()),
        format!("{x47}…")
    );
}

fn previews_of_binary_are_printable(engine: Engine) {
    let all: Vec<u8> = (0..=255).collect();
    for chunk in all.chunks(40) {
        let p = preview_of(engine, chunk);
        assert!(!p.chars().any(char::is_control), "{p:?}");
        assert!(!p.contains('\n') && !p.contains('\t'));
    }
}

fn list_json_has_id_size_enqueued_preview(engine: Engine) {
    let s = engine.fixture();
    let before = now_secs();
    s.push(&["hello", "tab\there"]);
    s.run_stdin(&["push"], "z".repeat(100)).success();
    let after = now_secs();
    let out = s.run(&["list", "--json"]);
    out.success();
    let objects = json_lines(&out.stdout);
    assert_eq!(objects.len(), 3);
    let keys: BTreeSet<&str> = ["id", "size", "enqueued", "preview"].into();
    for o in &objects {
        let map = o.as_object().unwrap();
        let present: BTreeSet<&str> = map.keys().map(String::as_str).collect();
        assert!(present.is_superset(&keys), "{o}");
        assert!(map["id"].is_u64() && map["size"].is_u64(), "{o}");
        let t = parse_rfc3339(map["enqueued"].as_str().expect("enqueued is a string"))
            .expect("enqueued is RFC 3339 UTC");
        assert!((before - 1..=after + 1).contains(&t), "{o}");
        assert!(map["preview"].is_string(), "{o}");
    }
    let got: Vec<(u64, u64, &str)> = objects
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["size"].as_u64().unwrap(),
                o["preview"].as_str().unwrap(),
            )
        })
        .collect();
    let cut = format!("{}…", "z".repeat(48));
    assert_eq!(
        got,
        [(1, 5, "hello"), (2, 8, "tab\there"), (3, 100, cut.as_str())]
    );
    // The text listing says the same, escaped.
    let text: Vec<(u64, u64, String)> = rows(&s)
        .into_iter()
        .map(|r| (r.id, r.size, r.preview))
        .collect();
    let json: Vec<(u64, u64, String)> = got
        .into_iter()
        .map(|(i, n, p)| (i, n, p.replace('\t', "\\t")))
        .collect();
    assert_eq!(text, json);
}

fn list_size_is_the_payload_length(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push"], vec![7u8; 123_457]).success();
    s.run_stdin(&["push", "-0"], "ab\0\0cde").success();
    let sizes: Vec<u64> = rows(&s).iter().map(|r| r.size).collect();
    assert_eq!(sizes, [123_457, 2, 0, 3]);
}

// `list --json` escaped previews twice (`"\\xff"`, `"tab\\there"`): a JSON reader got
// backslashes instead of the characters.
fn list_json_previews_are_json_strings(engine: Engine) {
    let s = engine.fixture();
    for payload in [
        &b"tab\there\n\x1b"[..],
        b"\xff\xfeok",
        "é".repeat(30).as_bytes(),
    ] {
        s.cmd().arg("push").stdin(payload.to_vec()).run().success();
    }
    let out = s.run(&["list", "--json"]);
    out.success();
    assert!(
        out.text().contains(r#""preview":"tab\there\n\u001b"}"#),
        "{out:?}"
    );
    let objects = json_lines(&out.stdout);
    let previews: Vec<(&str, Option<bool>)> = objects
        .iter()
        .map(|o| {
            (
                o["preview"].as_str().unwrap(),
                o["preview_escaped"].as_bool(),
            )
        })
        .collect();
    let cut = format!("{}…", "é".repeat(24));
    assert_eq!(
        previews,
        [
            ("tab\there\n\x1b", None),
            // Not UTF-8: escaped as in the text listing, and said so.
            ("\\xff\\xfeok", Some(true)),
            (cut.as_str(), None),
        ]
    );
}
