//! Whole pipelines through `sh`, as the documentation shows them. `spool` is the binary
//! under test, first in `PATH`; `$SPOOL_DIR` is the test's root, or `$SPOOL_URL` its
//! database.

use crate::harness::{Engine, engine_tests};

engine_tests! {
    echo_push_then_pop, producer_pipes_lines_and_consumer_reads_lines,
    while_pop_loop_stops_when_empty, len_in_a_test_expression,
    null_separated_pipeline_with_print_id, for_each_queue_loop, binary_through_a_pipe,
}

fn echo_push_then_pop(engine: Engine) {
    let s = engine.fixture();
    s.sh("echo hello | spool push && spool pop")
        .prints("hello\n");
    s.prints(&["len"], "0\n");
}

fn producer_pipes_lines_and_consumer_reads_lines(engine: Engine) {
    let s = engine.fixture();
    s.sh("printf 'a\\nb b\\nc\\n' | spool -q jobs push --lines && spool -q jobs pop -n 10 --lines | cat")
        .prints("a\nb b\nc\n");
}

fn while_pop_loop_stops_when_empty(engine: Engine) {
    let s = engine.fixture();
    s.push(&["one", "two", "three"]);
    s.sh("while msg=$(spool pop); do echo \"got $msg\"; done; spool pop; echo \"status $?\"")
        .prints("got one\ngot two\ngot three\nstatus 1\n");
}

fn len_in_a_test_expression(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "jobs", "push", "1", "2", "3"]).success();
    s.sh("[ \"$(spool -q jobs len)\" -gt 2 ] && echo backlog; [ \"$(spool -q other len)\" -eq 0 ] && echo idle")
        .prints("backlog\nidle\n");
}

fn null_separated_pipeline_with_print_id(engine: Engine) {
    let s = engine.fixture();
    s.sh("printf 'x y\\0z\\n\\0' | spool push -0 --print-id")
        .prints("1\n2\n");
    s.sh("spool pop -n 5 -0 | od -An -c | tr -s ' '")
        .prints(" x y \\0 z \\n \\0\n");
}

fn for_each_queue_loop(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "a", "push", "1"]).success();
    s.run(&["-q", "b", "push", "1", "2"]).success();
    s.sh("for q in $(spool queues); do echo \"$q $(spool -q \"$q\" len)\"; done")
        .prints("a 1\nb 2\n");
}

fn binary_through_a_pipe(engine: Engine) {
    let s = engine.fixture();
    s.sh("head -c 70000 /dev/zero | tr '\\0' 'q' | spool push && spool pop | wc -c")
        .prints("70000\n");
}
