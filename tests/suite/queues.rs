//! `spool queues`: the queue names of the root, sorted, one per line.

use crate::harness::{Engine, Fixture, engine_tests};

engine_tests! {
    queues_lists_sorted_names, emptied_queues_are_still_queues,
    queues_ignores_the_queue_flag,
}

fn queues_lists_sorted_names(engine: Engine) {
    let s = engine.fixture();
    for q in ["jobs", "Zeta", "alpha", "b-2", "b.1", "default"] {
        s.run(&["-q", q, "push", "m"]).success();
    }
    s.prints(&["queues"], "Zeta\nalpha\nb-2\nb.1\ndefault\njobs\n");
}

#[test]
fn queues_on_a_missing_or_empty_root_prints_nothing() {
    let s = Fixture::new();
    s.prints(&["queues"], "");
    assert!(!s.root().exists());
    std::fs::create_dir(s.root()).unwrap();
    s.prints(&["queues"], "");
}

fn emptied_queues_are_still_queues(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "once", "push", "m"]).success();
    s.run(&["-q", "once", "pop"]).success();
    s.run(&["-q", "cleared", "push", "m"]).success();
    s.run(&["-q", "cleared", "clear"]).success();
    s.prints(&["queues"], "cleared\nonce\n");
}

#[test]
fn queues_ignores_what_is_not_a_queue() {
    let s = Fixture::new();
    s.run(&["-q", "real", "push", "m"]).success();
    std::fs::write(s.root().join("notes.txt"), "not a queue").unwrap();
    std::fs::create_dir(s.root().join("emptydir")).unwrap();
    std::fs::create_dir(s.root().join(".hidden")).unwrap();
    s.prints(&["queues"], "real\n");
    // Reading commands did not make queues out of them.
    s.prints(&["-q", "emptydir", "len"], "0\n");
    s.prints(&["queues"], "real\n");
}

fn queues_ignores_the_queue_flag(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "a", "push", "m"]).success();
    s.run(&["-q", "b", "push", "m"]).success();
    s.prints(&["-q", "a", "queues"], "a\nb\n");
}
