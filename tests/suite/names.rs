//! Queue names: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with '.'.

use crate::harness::{Fixture, names_in};

fn invalid_names() -> Vec<String> {
    [
        "a/b", "..", ".", ".x", ".hidden", "", "a b", "a\nb", "é", "a\\b", "../x", "/abs", "a:b",
        "*",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "x".repeat(65),
        format!("{}/{}", "a".repeat(32), "b".repeat(31)),
    ])
    .collect()
}

const COMMANDS: &[&[&str]] = &[
    &["push", "m"],
    &["push", "--print-id", "m", "n"],
    &["pop"],
    &["peek"],
    &["list"],
    &["list", "--json"],
    &["len"],
    &["stats"],
    &["stats", "--json"],
    &["clear"],
];

#[track_caller]
fn assert_rejected(s: &Fixture, name: &str, args: &[&str], via_env: bool) {
    let cmd = if via_env {
        s.cmd().env("SPOOL_QUEUE", name).args(args)
    } else {
        s.cmd().arg("-q").arg(name).args(args)
    };
    let out = cmd.run();
    out.error();
    assert!(
        out.stderr.starts_with("spool: invalid queue name"),
        "queue {name:?}:\n{out:?}"
    );
    assert!(out.stdout.is_empty(), "queue {name:?}:\n{out:?}");
}

#[test]
fn invalid_names_are_rejected_and_create_nothing() {
    let s = Fixture::new();
    for name in invalid_names() {
        for args in COMMANDS {
            assert_rejected(&s, &name, args, false);
        }
    }
    assert!(!s.root().exists(), "the root was created");
    assert_eq!(names_in(s.tmp()), Vec::<String>::new());
}

#[test]
fn invalid_names_create_nothing_in_an_existing_root() {
    let s = Fixture::new();
    s.push(&["m"]);
    let before = names_in(&s.queue_dir("default"));
    for name in invalid_names() {
        assert_rejected(&s, &name, &["push", "x"], false);
        assert_rejected(&s, &name, &["len"], false);
    }
    assert_eq!(names_in(s.root()), ["default"]);
    assert_eq!(names_in(&s.queue_dir("default")), before);
    assert_eq!(names_in(s.tmp()), ["spool"]);
    assert_eq!(s.len("default"), 1);
}

#[test]
fn invalid_names_from_the_environment_are_rejected() {
    let s = Fixture::new();
    for name in ["a/b", "..", ".x", "a b", &"y".repeat(65)] {
        assert_rejected(&s, name, &["push", "m"], true);
        assert_rejected(&s, name, &["pop"], true);
    }
    assert!(!s.root().exists(), "the root was created");
}

#[test]
fn valid_names_at_the_edges() {
    let s = Fixture::new();
    let long = "q".repeat(64);
    let names = ["A-Z_0.9", "a..b", "x.", "-", "_", "0", "Z", long.as_str()];
    for name in names {
        s.run(&["-q", name, "push", name]).success();
        s.prints(&["-q", name, "peek"], name);
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    let listed = s.run(&["queues"]);
    listed.success();
    assert_eq!(listed.text(), format!("{}\n", sorted.join("\n")));
    for name in names {
        assert!(s.queue_dir(name).is_dir(), "{name}");
    }
}

/// A name that is not even UTF-8 is not a valid name either.
fn non_utf8_name() -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(b"q\xff".to_vec())
}

#[test]
fn a_non_utf8_queue_flag_is_an_invalid_queue_name() {
    let s = Fixture::new();
    for args in [&["push", "m"][..], &["len"]] {
        let out = s.cmd().arg("-q").arg(non_utf8_name()).args(args).run();
        out.error();
        assert!(
            out.stderr.starts_with("spool: invalid queue name"),
            "{out:?}"
        );
    }
    assert!(!s.root().exists(), "the root was created");
}

#[test]
fn a_non_utf8_spool_queue_is_an_invalid_queue_name() {
    let s = Fixture::new();
    let out = s
        .cmd()
        .env("SPOOL_QUEUE", non_utf8_name())
        .args(["push", "m"])
        .run();
    out.error();
    assert!(
        out.stderr.starts_with("spool: invalid queue name"),
        "{out:?}"
    );
    assert!(
        !s.root().exists(),
        "the message went to {:?}",
        names_in(s.root())
    );
}
