//! `--wait` and `--timeout` of `pop`, `peek` and `claim`, and the durations every time
//! option accepts.
//!
//! Deadlines here are functional ("returns once the message is there, well before its
//! timeout"), with generous margins: the machine may be slow, never the other way round.

use std::time::{Duration, Instant};

use crate::harness::{
    Engine, Fixture, Output, Running, engine_tests, now_secs, parse_rfc3339, wait_until,
};

engine_tests! {
    pop_wait_returns_a_message_pushed_after_it_started,
    pop_wait_without_a_timeout_waits_for_a_push,
    pop_wait_n_returns_what_is_there_once_something_is,
    one_push_wakes_one_of_two_waiting_pops, peek_wait_returns_the_message_and_leaves_it,
    claim_wait_returns_a_token_for_a_message_pushed_later,
    a_timeout_does_not_cut_short_a_message_that_arrives_in_time, a_nack_wakes_a_waiting_pop,
    an_ended_lease_wakes_a_waiting_pop,
    an_ended_lease_wakes_a_waiting_claim_with_the_attempt_counted,
    a_due_message_wakes_a_waiting_pop, a_timeout_before_the_due_time_exits_1,
    durations_take_every_unit, bad_durations_exit_2_and_change_nothing,
    enormous_leases_and_delays_are_refused_or_honoured,
}

/// Long enough that a test never reaches it when things work.
const LONG: &str = "20s";
/// The longest a waiting command may take to notice a change, on a noisy machine.
const NOTICE: Duration = Duration::from_secs(5);

/// Starts `spool ARGS...` in the background and checks after a moment that it is still
/// waiting (it has not exited).
fn start_waiting(s: &Fixture, args: &[&str]) -> Running {
    let mut waiting = s.cmd().args(args).spawn();
    std::thread::sleep(Duration::from_millis(500));
    if waiting.exited() {
        let out = waiting.finish();
        panic!("{args:?} exited instead of waiting:\n{out:?}");
    }
    waiting
}

/// Waits for a command started with [`start_waiting`] and the time it took from `since`.
fn finish_after(waiting: Running, since: Instant) -> (Output, Duration) {
    let out = waiting.finish();
    (out, since.elapsed())
}

fn pop_wait_returns_a_message_pushed_after_it_started(engine: Engine) {
    let s = engine.fixture();
    s.push(&["old"]);
    s.prints(&["pop"], "old");
    let waiting = start_waiting(&s, &["pop", "--wait", "--timeout", LONG]);
    let pushed = Instant::now();
    s.push(&["late"]);
    let (out, took) = finish_after(waiting, pushed);
    out.success().stdout_is("late");
    assert!(took < NOTICE, "pop --wait took {took:?} to notice a push");
    s.run(&["pop"]).nothing();
}

fn pop_wait_without_a_timeout_waits_for_a_push(engine: Engine) {
    let s = engine.fixture();
    let waiting = start_waiting(&s, &["pop", "-w"]);
    let pushed = Instant::now();
    s.push(&["eventually"]);
    let (out, took) = finish_after(waiting, pushed);
    out.success().stdout_is("eventually");
    assert!(took < NOTICE, "pop -w took {took:?} to notice a push");
}

#[test]
fn pop_wait_on_a_queue_that_does_not_exist_yet() {
    let s = Fixture::new();
    let waiting = start_waiting(&s, &["-q", "later", "pop", "--wait", "--timeout", LONG]);
    assert!(!s.root().exists(), "a waiting pop created the root");
    let pushed = Instant::now();
    s.run(&["-q", "later", "push", "first"]).success();
    let (out, took) = finish_after(waiting, pushed);
    out.success().stdout_is("first");
    assert!(took < NOTICE, "took {took:?} to notice the new queue");
}

// pop --wait died ("open .../head: No such file or directory") when its queue was removed
// and made again by a push: it must wait on, as for a queue not made yet, and take the
// new message. The same for claim, peek and run.
#[test]
fn a_wait_survives_its_queue_being_removed_and_made_again() {
    let cases: [&[&str]; 4] = [
        &["pop", "--wait", "--timeout", LONG],
        &["claim", "--wait", "--timeout", LONG],
        &["peek", "--wait", "--timeout", LONG],
        &["run", "--wait", "--max", "1", "--", "cat"],
    ];
    for args in cases {
        let s = Fixture::new();
        s.push(&["old"]);
        s.prints(&["pop"], "old");
        let mut waiting = start_waiting(&s, args);
        std::fs::remove_dir_all(s.queue_dir("default")).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        if waiting.exited() {
            panic!("{args:?} stopped waiting:\n{:?}", waiting.finish());
        }
        s.push(&["new"]);
        let out = waiting.finish();
        out.success();
        match args[0] {
            "claim" => assert!(out.token().starts_with("1."), "{out:?}"),
            _ => {
                out.stdout_is("new");
            }
        }
        let left = if args[0] == "peek" { 1 } else { 0 };
        assert_eq!(s.len("default"), left, "{args:?}");
    }
}

fn pop_wait_n_returns_what_is_there_once_something_is(engine: Engine) {
    let s = engine.fixture();
    let waiting = start_waiting(&s, &["pop", "--wait", "-n", "5", "--lines"]);
    s.push(&["a", "b"]);
    let out = waiting.finish();
    out.success().stdout_is("a\nb\n");
}

fn one_push_wakes_one_of_two_waiting_pops(engine: Engine) {
    let s = engine.fixture();
    let mut waiting = vec![
        start_waiting(&s, &["pop", "--wait", "--timeout", LONG]),
        start_waiting(&s, &["pop", "--wait", "--timeout", LONG]),
    ];
    s.push(&["only one"]);
    // One of them returns it; the other goes on waiting.
    let mut first = None;
    wait_until("one pop returned", NOTICE, || {
        first = waiting.iter_mut().position(|w| w.exited());
        first.is_some()
    });
    let done = waiting.remove(first.unwrap());
    done.finish().success().stdout_is("only one");
    std::thread::sleep(Duration::from_millis(500));
    let other = waiting.pop().unwrap();
    let mut other = other;
    assert!(
        other.child.try_wait().expect("try_wait").is_none(),
        "the other pop returned too"
    );
    s.push(&["another"]);
    other.finish().success().stdout_is("another");
}

fn peek_wait_returns_the_message_and_leaves_it(engine: Engine) {
    let s = engine.fixture();
    let waiting = start_waiting(&s, &["peek", "--wait", "--timeout", LONG]);
    let pushed = Instant::now();
    s.push(&["look"]);
    let (out, took) = finish_after(waiting, pushed);
    out.success().stdout_is("look");
    assert!(took < NOTICE, "peek --wait took {took:?}");
    s.prints(&["pop"], "look");
}

fn claim_wait_returns_a_token_for_a_message_pushed_later(engine: Engine) {
    let s = engine.fixture();
    let waiting = start_waiting(&s, &["claim", "--wait", "--timeout", LONG, "--lease", "1m"]);
    let pushed = Instant::now();
    let id = s.push_with(&[], "work");
    let (out, took) = finish_after(waiting, pushed);
    out.success();
    assert!(took < NOTICE, "claim --wait took {took:?}");
    let token = out.text().trim_end().to_string();
    assert!(
        token.starts_with(&format!("{id}.")),
        "token of message {id}: {out:?}"
    );
    s.prints(&["show", &token], "work");
    s.run(&["ack", &token]).success();
}

#[test]
fn the_timeout_exits_1_with_no_output() {
    let s = Fixture::new();
    s.push(&["x"]);
    s.run(&["pop"]).success();
    let cases: Vec<(Vec<&str>, u64)> = vec![
        (vec!["pop", "--wait", "--timeout", "1s"], 1000),
        (vec!["peek", "--wait", "--timeout", "1s"], 1000),
        (vec!["claim", "--wait", "--timeout", "1s"], 1000),
        (vec!["pop", "--wait", "--timeout", "500ms"], 500),
        (vec!["claim", "-w", "--timeout", "1"], 1000),
        (vec!["pop", "--wait", "--timeout", "0s"], 0),
    ];
    // All at once: each waits on its own.
    std::thread::scope(|scope| {
        for (args, least) in &cases {
            let s = &s;
            scope.spawn(move || {
                let start = Instant::now();
                let out = s.run(args);
                let took = start.elapsed();
                out.nothing();
                let least = Duration::from_millis(*least);
                assert!(
                    took >= least.saturating_sub(Duration::from_millis(50)),
                    "{args:?} gave up after {took:?}"
                );
                assert!(
                    took < least + NOTICE,
                    "{args:?} overran its timeout: {took:?}"
                );
            });
        }
    });
    // On a queue that does not exist either, without creating it.
    let e = Fixture::new();
    e.run(&["pop", "--wait", "--timeout", "500ms"]).nothing();
    e.run(&["claim", "--wait", "--timeout", "500ms"]).nothing();
    assert!(!e.root().exists(), "a waiting pop created the root");
}

fn a_timeout_does_not_cut_short_a_message_that_arrives_in_time(engine: Engine) {
    let s = engine.fixture();
    let waiting = start_waiting(&s, &["pop", "--wait", "--timeout", "10s"]);
    s.push(&["in time"]);
    waiting.finish().success().stdout_is("in time");
}

fn a_nack_wakes_a_waiting_pop(engine: Engine) {
    let s = engine.fixture();
    s.push(&["bounced"]);
    let token = s.run(&["claim"]).text().trim_end().to_string();
    let waiting = start_waiting(&s, &["pop", "--wait", "--timeout", LONG]);
    let nacked = Instant::now();
    s.run(&["nack", &token]).success();
    let (out, took) = finish_after(waiting, nacked);
    out.success().stdout_is("bounced");
    assert!(took < NOTICE, "took {took:?} to notice the nack");
}

fn an_ended_lease_wakes_a_waiting_pop(engine: Engine) {
    let s = engine.fixture();
    s.push(&["abandoned"]);
    let claimed = Instant::now();
    let out = s.run(&["claim", "--lease", "1s"]);
    out.success();
    let waiting = start_waiting(&s, &["pop", "--wait", "--timeout", LONG]);
    let (out, took) = finish_after(waiting, claimed);
    out.success().stdout_is("abandoned");
    assert!(
        took >= Duration::from_millis(900),
        "returned before the lease ended: {took:?}"
    );
    assert!(
        took < Duration::from_secs(1) + NOTICE,
        "took {took:?} to notice the ended lease"
    );
}

fn an_ended_lease_wakes_a_waiting_claim_with_the_attempt_counted(engine: Engine) {
    let s = engine.fixture();
    s.push(&["abandoned"]);
    let out = s.run(&["claim", "--lease", "1s"]);
    out.success();
    let waiting = start_waiting(&s, &["claim", "--wait", "--timeout", LONG]);
    let out = waiting.finish();
    out.success();
    s.assert_state(1, "claimed", 2);
}

fn a_due_message_wakes_a_waiting_pop(engine: Engine) {
    let s = engine.fixture();
    let pushed = Instant::now();
    s.run(&["push", "--delay", "2s", "later"]).success();
    let (out, took) = finish_after(
        s.cmd().args(["pop", "--wait", "--timeout", LONG]).spawn(),
        pushed,
    );
    out.success().stdout_is("later");
    assert!(
        took >= Duration::from_millis(1900),
        "returned before it was due: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2) + NOTICE,
        "took {took:?} to notice the due message"
    );
}

fn a_timeout_before_the_due_time_exits_1(engine: Engine) {
    let s = engine.fixture();
    s.run(&["push", "--delay", "1h", "much later"]).success();
    s.run(&["pop", "--wait", "--timeout", "500ms"]).nothing();
    s.run(&["claim", "--wait", "--timeout", "500ms"]).nothing();
    assert_eq!(s.list_json("default", "delayed").len(), 1);
}

/// The lease end of message 1, in unix seconds.
#[track_caller]
fn lease_end(s: &Fixture) -> i64 {
    let v = s.entry("default", 1);
    parse_rfc3339(v["until"].as_str().expect("until")).expect("RFC 3339")
}

fn durations_take_every_unit(engine: Engine) {
    for (text, secs) in [
        ("90", 90),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86_400),
        ("1500ms", 1),
        // Compound durations, as systemd and Go accept them.
        ("1h30m", 5400),
        ("2m30s", 150),
        ("1d12h", 129_600),
        ("1m1s1500ms", 62),
    ] {
        let s = engine.fixture();
        s.push(&["x"]);
        let before = now_secs();
        let out = s.run(&["claim", "--lease", text]);
        out.success();
        let after = now_secs();
        let end = lease_end(&s);
        assert!(
            (before + secs - 1..=after + secs + 1).contains(&end),
            "--lease {text}: ends at {end}, not {secs} s after {before}..={after}"
        );
    }
}

fn bad_durations_exit_2_and_change_nothing(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x"]);
    let out = s.run(&["claim", "--lease", "1m"]);
    out.success();
    let token = out.text().trim_end().to_string();
    let lease = lease_end(&s);
    for bad in [
        "",
        "s",
        "5x",
        "1w",
        "-1s",
        "1.5s",
        "5 s",
        " 5s",
        "5S",
        "1e3",
        "ms",
        "99999999999999999999d",
        "999999999999999d",
        "99999999999999999999",
        "0x10",
        "30s5m",
        "1h1h",
        "1h30",
        "1h 30m",
        "-0",
    ] {
        for args in [
            vec!["pop", "--wait", "--timeout", bad],
            vec!["peek", "--wait", "--timeout", bad],
            vec!["claim", "--wait", "--timeout", bad],
            vec!["claim", "--lease", bad],
            vec!["extend", &token, "--lease", bad],
            vec!["nack", &token, "--delay", bad],
            vec!["push", "--delay", bad, "y"],
            vec!["push", "--ttl", bad, "y"],
            vec!["run", "--backoff", bad, "--", "true"],
            vec!["run", "--lease", bad, "--", "true"],
        ] {
            let out = s.run(&args);
            out.error();
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }
    // Nothing was pushed, taken, nacked or extended.
    assert_eq!(s.states("default"), [(1, "claimed".to_string())]);
    assert_eq!(lease_end(&s), lease);
    s.run(&["ack", &token]).success();
}

/// What is wrong with the outcome of a command given an enormous duration, if anything:
/// it must exit 0, or exit 2 with one "spool: " line that is not a crash.
fn enormous_problem(out: &Output) -> Option<String> {
    match out.code {
        0 => None,
        2 if crate::harness::is_one_spool_line(&out.stderr)
            && !out.stderr.contains("internal error") =>
        {
            None
        }
        _ => Some(format!("{out:?}")),
    }
}

fn enormous_leases_and_delays_are_refused_or_honoured(engine: Engine) {
    // The largest whole number of seconds that is still a valid u64 of milliseconds.
    const HUGE: &str = "18446744073709551s";
    let year_ahead = || now_secs() + 365 * 86_400;
    let mut problems = Vec::new();

    // claim --lease: a lease that long, or a refusal that claims nothing.
    let s = engine.fixture();
    s.push(&["x"]);
    let out = s.run(&["claim", "--lease", HUGE]);
    problems.extend(enormous_problem(&out));
    let v = s.entry("default", 1);
    if out.code == 0 {
        if v["state"] != "claimed" || lease_end(&s) < year_ahead() {
            problems.push(format!("claim --lease {HUGE}: claimed as {v}"));
        }
        if s.run(&["claim"]).code != 1 {
            problems.push(format!("claim --lease {HUGE}: the lease has already ended"));
        }
    } else if v["state"] != "ready" || v["attempts"] != 0 {
        problems.push(format!("claim --lease {HUGE} failed, yet left {v}"));
    }

    // extend --lease and nack --delay: done as asked, or refused with the claim unchanged.
    let s = engine.fixture();
    s.push(&["y"]);
    let out = s.run(&["claim", "--lease", "1m"]);
    out.success();
    let token = out.text().trim_end().to_string();
    let lease = lease_end(&s);
    let out = s.run(&["extend", &token, "--lease", HUGE]);
    problems.extend(enormous_problem(&out));
    if out.code == 0 && lease_end(&s) < year_ahead() {
        problems.push(format!(
            "extend --lease {HUGE}: lease ends at {}",
            lease_end(&s)
        ));
    }
    if out.code != 0 && lease_end(&s) != lease {
        problems.push(format!(
            "extend --lease {HUGE} failed, yet changed the lease"
        ));
    }
    let out = s.run(&["nack", &token, "--delay", HUGE]);
    problems.extend(enormous_problem(&out));
    let v = s.entry("default", 1);
    let expected = if out.code == 0 { "delayed" } else { "claimed" };
    if v["state"] != expected {
        problems.push(format!("nack --delay {HUGE} exited {}: {v}", out.code));
    }
    if s.run(&["pop"]).code != 1 {
        problems.push(format!("nack --delay {HUGE}: visible at once"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
