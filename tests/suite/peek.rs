//! `spool peek`: the same output as pop, removing nothing.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;

use crate::harness::{Engine, Fixture, engine_tests, skip};

engine_tests! {
    peek_on_an_empty_or_missing_queue_exits_1, peek_output_equals_pop_output,
    peek_n_with_lines_and_null, peek_n_above_one_without_framing_is_an_error,
    peek_sees_messages_pushed_after_a_pop,
}

fn peek_on_an_empty_or_missing_queue_exits_1(engine: Engine) {
    let s = engine.fixture();
    s.run(&["peek"]).says_missing("default", 1, "");
    s.push(&["x"]);
    s.run(&["pop"]).success();
    s.run(&["peek"]).nothing();
    s.run(&["peek", "-n", "4", "--lines"]).nothing();
}

#[test]
fn peek_shows_the_oldest_and_keeps_it() {
    let s = Fixture::new();
    s.push(&["first\n", "second"]);
    for _ in 0..3 {
        s.prints(&["peek"], "first\n");
    }
    assert_eq!(s.len("default"), 2);
    assert_eq!(
        std::fs::read(s.message_path("default", 1)).unwrap(),
        b"first\n"
    );
    s.prints(&["pop"], "first\n");
    s.prints(&["peek"], "second");
}

fn peek_output_equals_pop_output(engine: Engine) {
    let s = engine.fixture();
    let fill = || {
        s.run_stdin(&["push", "-0"], "a\0\0b\nc\0d\n\0").success();
    };
    fill();
    for args in [
        &["-n", "1"][..],
        &["--lines"],
        &["-0"],
        &["-n", "3", "--lines"],
        &["-n", "9", "-0"],
    ] {
        let peeked = s.cmd().arg("peek").args(args).run();
        peeked.success();
        assert_eq!(s.len("default"), 4, "peek {args:?} removed something");
        let popped = s.cmd().arg("pop").args(args).run();
        popped.success().stdout_is(&peeked.stdout);
        // Put everything back for the next round.
        s.run(&["clear"]).success();
        fill();
    }
}

fn peek_n_with_lines_and_null(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c"]);
    s.prints(&["peek", "-n", "2", "--lines"], "a\nb\n");
    s.prints(&["peek", "-n", "10", "-l"], "a\nb\nc\n");
    s.prints(&["peek", "--count", "3", "--null"], "a\0b\0c\0");
    s.prints(&["peek", "-0"], "a\0");
    assert_eq!(s.len("default"), 3);
}

fn peek_n_above_one_without_framing_is_an_error(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let out = s.run(&["peek", "-n", "2"]);
    out.error().stderr_has("needs --lines or --null");
    assert!(out.stdout.is_empty());
    assert_eq!(s.len("default"), 2);
}

#[test]
fn peek_to_a_full_device_fails_and_keeps_everything() {
    if !Path::new("/dev/full").exists() {
        return skip("/dev/full does not exist");
    }
    let s = Fixture::new();
    s.push(&["a", "b"]);
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    s.cmd()
        .args(["peek", "-n", "2", "-l"])
        .run_with_stdout(Stdio::from(full))
        .error();
    assert_eq!(s.len("default"), 2);
}

fn peek_sees_messages_pushed_after_a_pop(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1"]);
    s.run(&["pop"]).success();
    s.run(&["peek"]).nothing();
    s.push(&["2", "3"]);
    s.prints(&["peek", "-n", "5", "-l"], "2\n3\n");
}
