//! `spool pop`: the oldest message's exact bytes, then it is gone.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Stdio;

use crate::harness::{Engine, Fixture, engine_tests, skip};

engine_tests! {
    pop_on_an_empty_queue_exits_1, pop_n_with_lines, pop_n_with_null,
    framing_applies_to_a_single_message_too,
    pop_n_above_one_without_framing_removes_nothing, pop_across_buckets_keeps_the_order,
    pop_to_a_full_device_keeps_the_message, pop_many_to_a_full_device_keeps_them_all,
    pop_to_a_closed_pipe_keeps_the_message, popped_messages_are_never_returned_again,
    pop_with_standard_output_closed_keeps_the_message,
    pop_with_standard_error_closed_still_reports_by_its_status,
    consumers_and_clear_name_a_queue_that_does_not_exist,
}

fn pop_on_an_empty_queue_exits_1(engine: Engine) {
    let s = engine.fixture();
    s.run(&["pop"]).says_missing("default", 1, "");
    s.push(&["x"]);
    s.prints(&["pop"], "x");
    s.run(&["pop"]).nothing();
    s.run(&["pop", "-n", "5", "--lines"]).nothing();
    s.run(&["pop", "-n", "5", "-0"]).nothing();
}

#[test]
fn pop_returns_the_oldest_and_deletes_it() {
    let s = Fixture::new();
    s.push(&["a", "b"]);
    s.push(&["c"]);
    s.prints(&["pop"], "a");
    assert!(
        !s.message_path("default", 1).exists(),
        "message 1 still on disk"
    );
    assert_eq!(s.len("default"), 2);
    assert_eq!(s.listed_ids("default"), [2, 3]);
    s.prints(&["pop"], "b");
    s.prints(&["pop"], "c");
    s.run(&["pop"]).nothing();
    assert_eq!(s.len("default"), 0);
    crate::harness::assert_no_leftovers(&s.queue_dir("default"), "after popping all");
}

fn pop_n_with_lines(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c"]);
    s.prints(&["pop", "-n", "2", "--lines"], "a\nb\n");
    assert_eq!(s.len("default"), 1);
    s.prints(&["pop", "-n", "5", "-l"], "c\n");
    s.run(&["pop", "-n", "2", "--lines"]).nothing();
}

fn pop_n_with_null(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a\nb", "", "c"]);
    s.prints(&["pop", "--count", "2", "-0"], "a\nb\0\0");
    s.prints(&["pop", "-n", "9", "--null"], "c\0");
}

fn framing_applies_to_a_single_message_too(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c", "d"]);
    s.prints(&["pop", "--lines"], "a\n");
    s.prints(&["pop", "-0"], "b\0");
    s.prints(&["pop", "-n", "1", "-l"], "c\n");
    s.prints(&["pop", "-n", "1"], "d");
}

fn pop_n_above_one_without_framing_removes_nothing(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let out = s.run(&["pop", "-n", "2"]);
    out.error().stderr_has("needs --lines or --null");
    assert!(out.stdout.is_empty());
    assert_eq!(s.len("default"), 2);
    // Also on an empty queue: the usage error comes first.
    let e = engine.fixture();
    e.run(&["pop", "-n", "3"])
        .error()
        .stderr_has("needs --lines or --null");
}

fn pop_across_buckets_keeps_the_order(engine: Engine) {
    let s = engine.fixture();
    let input: String = (1..=2100).map(|i| format!("{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], input.clone()).success();
    let first: String = (1..=998).map(|i| format!("{i}\n")).collect();
    s.prints(&["pop", "-n", "998", "--lines"], first);
    s.prints(&["pop"], "999");
    s.prints(&["pop"], "1000");
    let rest: String = (1001..=2100).map(|i| format!("{i}\n")).collect();
    s.prints(&["pop", "-n", "5000", "--lines"], rest);
    s.run(&["pop"]).nothing();
    assert_eq!(s.push_id("default", "next"), 2101);
    s.prints(&["pop"], "next");
}

#[test]
fn pop_into_a_file() {
    let s = Fixture::new();
    s.push(&["job one"]);
    let path = s.outside("job.txt");
    let out = s
        .cmd()
        .arg("pop")
        .run_with_stdout(Stdio::from(File::create(&path).unwrap()));
    out.success();
    assert_eq!(std::fs::read(&path).unwrap(), b"job one");
    assert_eq!(s.len("default"), 0);
}

/// Opens /dev/full for writing, or skips (failing in CI).
fn dev_full() -> Option<File> {
    if !Path::new("/dev/full").exists() {
        skip("/dev/full does not exist");
        return None;
    }
    Some(OpenOptions::new().write(true).open("/dev/full").unwrap())
}

fn pop_to_a_full_device_keeps_the_message(engine: Engine) {
    let Some(full) = dev_full() else { return };
    let s = engine.fixture();
    s.push(&["precious", "second"]);
    let out = s.cmd().arg("pop").run_with_stdout(Stdio::from(full));
    out.error().stderr_has("stays in the queue");
    assert_eq!(s.len("default"), 2);
    s.prints(&["peek"], "precious");
    assert_eq!(s.listed_ids("default"), [1, 2]);
    s.prints(&["pop"], "precious");
    s.prints(&["pop"], "second");
}

fn pop_many_to_a_full_device_keeps_them_all(engine: Engine) {
    let Some(full) = dev_full() else { return };
    let s = engine.fixture();
    s.push(&["a", "b", "c"]);
    let out = s
        .cmd()
        .args(["pop", "-n", "3", "--lines"])
        .run_with_stdout(Stdio::from(full));
    out.error().stderr_has("in the queue");
    assert_eq!(s.len("default"), 3);
    assert_eq!(s.listed_ids("default"), [1, 2, 3]);
    s.prints(&["pop", "-n", "3", "--lines"], "a\nb\nc\n");
}

fn pop_to_a_closed_pipe_keeps_the_message(engine: Engine) {
    let s = engine.fixture();
    s.push(&["kept"]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = s.cmd().arg("pop").run_with_stdout(Stdio::from(writer));
    out.error().stderr_has("stays in the queue");
    assert_eq!(s.len("default"), 1);
    s.prints(&["pop"], "kept");
}

fn popped_messages_are_never_returned_again(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4", "5", "6"]);
    s.prints(&["pop", "-n", "2", "-l"], "1\n2\n");
    s.prints(&["peek", "-n", "9", "-l"], "3\n4\n5\n6\n");
    s.prints(&["pop"], "3");
    s.push(&["7"]);
    s.prints(&["pop", "-n", "9", "-l"], "4\n5\n6\n7\n");
}

fn pop_with_standard_output_closed_keeps_the_message(engine: Engine) {
    let s = engine.fixture();
    s.push(&["kept", "second"]);
    let out = s.sh("spool pop >&-").run();
    out.error().stderr_has(
        "spool: write standard output: Bad file descriptor (message 1 stays in the queue)",
    );
    let out = s.sh("spool pop -n 2 --lines >&-").run();
    out.error()
        .stderr_has("(messages 1 to 2 stay in the queue)");
    assert_eq!(s.listed_ids("default"), [1, 2]);
    s.prints(&["pop", "-n", "2", "--lines"], "kept\nsecond\n");
}

fn pop_with_standard_error_closed_still_reports_by_its_status(engine: Engine) {
    let s = engine.fixture();
    s.sh("spool pop 2>&-").run().nothing();
    s.push(&["m"]);
    s.sh("spool pop 2>&-").prints("m");
    // The error message has nowhere to go, but the status says it and nothing is lost.
    s.push(&["n"]);
    let out = s.sh("spool pop >&- 2>&-").run();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(s.len("default"), 1);
}

#[test]
fn pop_n_across_many_rounds_delivers_each_message_once_in_order() {
    let s = Fixture::new();
    let lines: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], lines.clone()).success();
    s.prints(
        &["pop", "-n", "999", "--lines"],
        lines.split_inclusive('\n').take(999).collect::<String>(),
    );
    assert_eq!(s.listed_ids("default"), [1000]);
    assert!(
        crate::harness::names_in(&s.queue_dir("default").join("claimed")).is_empty(),
        "nothing is left claimed"
    );
    s.prints(&["pop", "-n", "5", "--lines"], "1000\n");
}

// A mistyped queue name passed for an empty queue: consumers and clear said nothing.
fn consumers_and_clear_name_a_queue_that_does_not_exist(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x"]);
    for args in [
        &["pop"][..],
        &["pop", "-n", "2", "--lines"],
        &["peek"],
        &["claim"],
    ] {
        s.cmd()
            .args(["-q", "jbos"])
            .args(args)
            .run()
            .says_missing("jbos", 1, "");
    }
    s.run(&["-q", "jbos", "run", "--", "true"])
        .says_missing("jbos", 0, "");
    s.run(&["-q", "jbos", "clear"])
        .says_missing("jbos", 0, "0\n");
    // Waiting for a queue not made yet is normal: nothing is said.
    for command in ["pop", "peek", "claim"] {
        s.run(&["-q", "jbos", command, "--wait", "--timeout", "10ms"])
            .nothing();
    }
    // Nothing made the mistyped queue.
    s.prints(&["queues"], "default\n");
    assert_eq!(s.len("default"), 1);
}
