//! `spool push [MESSAGE]...`, `--lines`, `--null`, `--print-id`.

use crate::harness::{Engine, Fixture, engine_tests, parse_ids};

engine_tests! {
    each_argument_is_one_message, arguments_that_look_like_flags_after_double_dash,
    no_argument_pushes_all_of_stdin_as_one_message, print_id_prints_each_new_id,
    lines_one_message_per_line, lines_final_line_without_newline_counts,
    lines_empty_lines_are_empty_messages, lines_empty_input_pushes_nothing,
    lines_keep_nul_bytes_and_long_lines, null_one_message_per_record,
    null_empty_input_pushes_nothing, many_lines_in_one_push_keep_their_order,
    ids_keep_growing_across_pushes_and_pops, push_with_standard_input_closed_pushes_nothing,
    push_print_id_with_standard_output_closed_pushes_and_says_so,
}

fn each_argument_is_one_message(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "first job", "second\njob", ""], "");
    assert_eq!(s.len("default"), 3);
    assert_eq!(
        s.pop_all("default"),
        [b"first job".to_vec(), b"second\njob".to_vec(), b"".to_vec()]
    );
}

fn arguments_that_look_like_flags_after_double_dash(engine: Engine) {
    let s = engine.fixture();
    s.run(&["push", "--", "-n", "--lines"]).success();
    assert_eq!(s.pop_all("default"), [b"-n".to_vec(), b"--lines".to_vec()]);
}

fn no_argument_pushes_all_of_stdin_as_one_message(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push"], "line one\nline two\n\0binary\n")
        .success()
        .stdout_is("");
    assert_eq!(s.len("default"), 1);
    s.prints(&["pop"], "line one\nline two\n\0binary\n");
}

#[test]
fn empty_stdin_is_one_empty_message() {
    let s = Fixture::new();
    s.run_stdin(&["push"], "").success().stdout_is("");
    assert_eq!(s.len("default"), 1);
    assert_eq!(std::fs::read(s.message_path("default", 1)).unwrap(), b"");
    s.prints(&["pop"], "");
    assert_eq!(s.len("default"), 0);
    s.run(&["pop"]).nothing();
}

fn print_id_prints_each_new_id(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--print-id", "a"], "1\n");
    s.prints(&["push", "--print-id", "b", "c", "d"], "2\n3\n4\n");
    s.run_stdin(&["push", "--print-id"], "e")
        .success()
        .stdout_is("5\n");
    s.run_stdin(&["push", "--print-id", "--lines"], "f\ng\n")
        .success()
        .stdout_is("6\n7\n");
    s.run_stdin(&["push", "--print-id", "-0"], "h\0")
        .success()
        .stdout_is("8\n");
    s.run_stdin(&["push", "--print-id", "--lines"], "")
        .success()
        .stdout_is("");
    // Without --print-id: silence.
    s.prints(&["push", "i"], "");
    assert_eq!(s.listed_ids("default"), (1..=9).collect::<Vec<u64>>());
}

fn lines_one_message_per_line(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "--lines"], "a\nb b\n\nc\r\n\ttab\n")
        .success()
        .stdout_is("");
    assert_eq!(
        s.pop_all("default"),
        [
            b"a".to_vec(),
            b"b b".to_vec(),
            b"".to_vec(),
            b"c\r".to_vec(),
            b"\ttab".to_vec()
        ]
    );
}

fn lines_final_line_without_newline_counts(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "-l"], "x\ny").success();
    assert_eq!(s.pop_all("default"), [b"x".to_vec(), b"y".to_vec()]);
}

fn lines_empty_lines_are_empty_messages(engine: Engine) {
    let s = engine.fixture();
    let out = s.run_stdin(&["push", "--lines", "--print-id"], "\n\n\n");
    out.success();
    assert_eq!(parse_ids(&out.stdout), [1, 2, 3]);
    assert_eq!(s.pop_all("default"), vec![Vec::<u8>::new(); 3]);
}

fn lines_empty_input_pushes_nothing(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "--lines"], "")
        .success()
        .stdout_is("");
    assert_eq!(s.len("default"), 0);
    s.run(&["pop"]).nothing();
    // And no id was used up.
    assert_eq!(s.push_id("default", "x"), 1);
}

fn lines_keep_nul_bytes_and_long_lines(engine: Engine) {
    let s = engine.fixture();
    let long = "z".repeat(200_000);
    s.run_stdin(&["push", "--lines"], format!("a\0b\n{long}\nend"))
        .success();
    assert_eq!(
        s.pop_all("default"),
        [b"a\0b".to_vec(), long.into_bytes(), b"end".to_vec()]
    );
}

fn null_one_message_per_record(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "-0"], "a\0multi\nline\0\0last")
        .success()
        .stdout_is("");
    assert_eq!(
        s.pop_all("default"),
        [
            b"a".to_vec(),
            b"multi\nline".to_vec(),
            b"".to_vec(),
            b"last".to_vec()
        ]
    );
    s.run_stdin(&["push", "--null"], "x\0y\0").success();
    assert_eq!(s.pop_all("default"), [b"x".to_vec(), b"y".to_vec()]);
}

fn null_empty_input_pushes_nothing(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "--null"], "").success().stdout_is("");
    assert_eq!(s.len("default"), 0);
    s.run_stdin(&["push", "-0"], "\0").success();
    assert_eq!(s.pop_all("default"), [Vec::<u8>::new()]);
}

#[test]
fn messages_with_lines_or_null_are_a_usage_error() {
    let s = Fixture::new();
    for args in [
        &["push", "--lines", "m"][..],
        &["push", "-l", "m", "n"],
        &["push", "-0", "m"],
        &["push", "m", "--null"],
    ] {
        let out = s.run_stdin(args, "stdin\n");
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    assert!(!s.root().exists(), "a usage error created the root");
}

fn many_lines_in_one_push_keep_their_order(engine: Engine) {
    let s = engine.fixture();
    let input: String = (0..3000).map(|i| format!("{i}\n")).collect();
    let out = s.run_stdin(&["push", "--lines", "--print-id"], input.clone());
    out.success();
    assert_eq!(parse_ids(&out.stdout), (1..=3000).collect::<Vec<u64>>());
    assert_eq!(s.len("default"), 3000);
    s.prints(&["pop", "-n", "3000", "--lines"], input);
}

fn ids_keep_growing_across_pushes_and_pops(engine: Engine) {
    let s = engine.fixture();
    let mut last = 0;
    for i in 0..5 {
        let id = s.push_id("default", &format!("m{i}"));
        assert!(id > last, "id {id} after {last}");
        last = id;
        s.prints(&["pop"], format!("m{i}"));
    }
    assert_eq!(last, 5);
}

fn push_with_standard_input_closed_pushes_nothing(engine: Engine) {
    let s = engine.fixture();
    for script in [
        "spool push <&-",
        "spool push --lines <&-",
        "spool push -0 <&-",
    ] {
        s.sh(script)
            .run()
            .error()
            .stderr_has("spool: read standard input: Bad file descriptor (nothing was pushed)");
    }
    assert_eq!(s.len("default"), 0);
    // Arguments need no standard input.
    s.sh("spool push arg <&-").run().success();
    s.prints(&["pop"], "arg");
}

fn push_print_id_with_standard_output_closed_pushes_and_says_so(engine: Engine) {
    let s = engine.fixture();
    // The message is on disk before its id is printed: the error says it was pushed.
    s.sh("spool push --print-id m >&-")
        .run()
        .error()
        .stderr_has("spool: write standard output: Bad file descriptor (the message was pushed)");
    s.sh("spool push --print-id a b >&-")
        .run()
        .error()
        .stderr_has("(the 2 messages were pushed)");
    assert_eq!(s.pop_all_text("default"), ["m", "a", "b"]);
}
