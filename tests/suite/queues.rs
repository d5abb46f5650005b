//! `spool queues`: the queue names of the root, sorted, one per line.

use crate::harness::Fixture;
use crate::harness::{Engine, engine_tests};

engine_tests! {
    queues_lists_sorted_names,
    emptied_queues_are_still_queues,
    queues_ignores_the_queue_flag,
}

fn queues_lists_sorted_names(engine: Engine) {
    let s = engine.fixture();
    for q in ["jobs", "Zeta", "alpha", "b-2", "b.1", "default"] {
        s.run(&["-q", q, "push", "m"]).success();
    }
    s.run(&["queues"])
        .success()
        .stdout_is("Zeta\nalpha\nb-2\nb.1\ndefault\njobs\n");
}

#[test]
fn queues_on_a_missing_or_empty_root_prints_nothing() {
    let s = Fixture::new();
    s.run(&["queues"]).success().stdout_is("");
    assert!(!s.root().exists());
    std::fs::create_dir(s.root()).unwrap();
    s.run(&["queues"]).success().stdout_is("");
}

fn emptied_queues_are_still_queues(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "once", "push", "m"]).success();
    s.run(&["-q", "once", "pop"]).success();
    s.run(&["-q", "cleared", "push", "m"]).success();
    s.run(&["-q", "cleared", "clear"]).success();
    s.run(&["queues"]).success().stdout_is("cleared\nonce\n");
}

#[test]
fn queues_ignores_what_is_not_a_queue() {
    let s = Fixture::new();
    s.run(&["-q", "real", "push", "m"]).success();
    std::fs::write(s.root().join("notes.txt"), "not a queue").unwrap();
    std::fs::create_dir(s.root().join("emptydir")).unwrap();
    std::fs::create_dir(s.root().join(".hidden")).unwrap();
    s.run(&["queues"]).success().stdout_is("real\n");
    // Reading commands did not make queues out of them.
    s.run(&["-q", "emptydir", "len"]).success().stdout_is("0\n");
    s.run(&["queues"]).success().stdout_is("real\n");
}

fn queues_ignores_the_queue_flag(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "a", "push", "m"]).success();
    s.run(&["-q", "b", "push", "m"]).success();
    s.run(&["-q", "a", "queues"]).success().stdout_is("a\nb\n");
}
