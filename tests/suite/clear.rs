//! `spool clear`: removes every waiting message, prints how many; ids are never reused.

use crate::harness::{Engine, Fixture, engine_tests, names_in, parse_ids};

engine_tests! {
    clear_removes_everything_and_prints_the_count, ids_are_not_reused_after_clear,
    clear_after_some_pops_counts_what_is_left, clear_across_buckets,
    clear_touches_only_its_queue, clear_keeps_the_queue_usable,
}

fn clear_removes_everything_and_prints_the_count(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c"]);
    s.prints(&["clear"], "3\n");
    s.prints(&["len"], "0\n");
    s.run(&["pop"]).nothing();
    s.run(&["peek"]).nothing();
    s.prints(&["list"], "");
    s.prints(&["clear"], "0\n");
}

fn ids_are_not_reused_after_clear(engine: Engine) {
    let s = engine.fixture();
    let out = s.run(&["push", "--print-id", "a", "b", "c"]);
    out.success();
    let before = parse_ids(&out.stdout);
    assert_eq!(before, [1, 2, 3]);
    s.prints(&["clear"], "3\n");
    let next = s.push_id("default", "d");
    assert!(next > 3, "id {next} reused after clear");
    s.prints(&["pop"], "d");
    // Clearing an emptied queue does not rewind either.
    s.prints(&["clear"], "0\n");
    let after = s.push_id("default", "e");
    assert!(after > next, "id {after} after {next}");
}

fn clear_after_some_pops_counts_what_is_left(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4", "5"]);
    s.run(&["pop", "-n", "2", "-l"]).success();
    s.prints(&["clear"], "3\n");
    assert!(s.push_id("default", "6") > 5);
}

fn clear_across_buckets(engine: Engine) {
    let s = engine.fixture();
    let input: String = (1..=1500).map(|i| format!("{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], input).success();
    s.prints(&["clear"], "1500\n");
    assert_eq!(s.len("default"), 0);
    let id = s.push_id("default", "after");
    assert!(id > 1500, "id {id} reused");
    s.prints(&["pop"], "after");
    s.run(&["pop"]).nothing();
}

fn clear_touches_only_its_queue(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "a", "push", "a1", "a2"]).success();
    s.run(&["-q", "b", "push", "b1"]).success();
    s.prints(&["-q", "a", "clear"], "2\n");
    assert_eq!(s.len("a"), 0);
    assert_eq!(s.len("b"), 1);
    s.prints(&["-q", "b", "pop"], "b1");
}

#[test]
fn clear_on_a_missing_queue_prints_zero_and_creates_nothing() {
    let s = Fixture::new();
    s.run(&["clear"]).says_missing("default", 0, "0\n");
    assert!(!s.root().exists());
    s.run(&["-q", "other", "push", "x"]).success();
    s.run(&["clear"]).says_missing("default", 0, "0\n");
    assert_eq!(names_in(s.root()), ["other"]);
}

fn clear_keeps_the_queue_usable(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x", "y"]);
    s.run(&["clear"]).success();
    s.push(&["z1", "z2"]);
    s.prints(&["pop", "-n", "5", "--lines"], "z1\nz2\n");
    let ids = s.listed_ids("default");
    assert!(ids.is_empty(), "{ids:?}");
}
