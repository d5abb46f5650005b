//! Delays, priorities and expiry: `push --delay`, `--at`, `--priority` and `--ttl`.
//! Delayed messages are invisible until due, then come out in order of due time;
//! priorities are strict and kept through every state; expired messages go to failed.

use std::time::{Duration, Instant};

use crate::harness::{
    Engine, Fixture, engine_tests, format_rfc3339, now_ms, now_secs, parse_rfc3339,
};

engine_tests! {
    a_delayed_message_is_invisible_until_due,
    at_takes_unix_seconds_and_rfc3339_with_any_offset, at_in_the_past_is_ready_at_once,
    bad_times_exit_2_and_push_nothing, delayed_messages_come_out_in_order_of_due_time,
    a_due_message_goes_ahead_of_messages_pushed_after_its_due_time,
    each_delayed_message_appears_at_its_own_time,
    priorities_go_first_and_fifo_within_a_priority, priority_must_be_0_to_9,
    a_message_keeps_its_priority_in_every_state,
    a_delayed_priority_message_goes_ahead_of_lower_ones_once_due,
    an_expired_message_moves_to_failed_and_is_skipped,
    claim_and_run_fail_expired_messages_too, a_delay_counts_towards_the_ttl,
    a_message_that_expires_while_claimed_can_still_be_acked,
    a_nacked_message_that_expired_goes_to_failed, far_future_times_are_refused_or_honoured,
    an_enormous_ttl_never_expires_at_once, impossible_times_are_refused,
    compound_durations_delay_and_expire,
}

/// Sleeps until the wall clock is at least `secs` (unix seconds) plus `margin`.
fn sleep_until_secs(secs: i64, margin: Duration) {
    let target = secs * 1000 + margin.as_millis() as i64;
    let left = target - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
}

/// Sleeps until `duration` after `since`.
fn sleep_from(since: Instant, duration: Duration) {
    if let Some(left) = (since + duration).checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

fn id_of(token: &str) -> u64 {
    token.split('.').next().unwrap().parse().unwrap()
}

fn a_delayed_message_is_invisible_until_due(engine: Engine) {
    let s = engine.fixture();
    let before = now_secs();
    let d = s.push_with(&["--delay", "2s"], "delayed");
    let pushed = Instant::now();
    let after = now_secs();
    let r = s.push_with(&[], "ready");
    let due = s.until(d);
    assert!(
        (before + 2..=after + 2).contains(&due),
        "due at {due}, not 2 s after {before}..={after}"
    );
    assert_eq!(s.entry("default", d)["state"], "delayed");
    assert_eq!(s.listed_ids("default"), [r]);
    assert_eq!(s.len("default"), 1);
    s.prints(&["pop"], "ready");
    s.run(&["pop"]).nothing();
    s.run(&["peek"]).nothing();
    s.run(&["claim"]).nothing();
    s.run(&["pop", "-n", "5", "--lines"]).nothing();
    assert_eq!(s.len("default"), 0);
    // Well after the due time, a plain pop returns it.
    sleep_from(pushed, Duration::from_millis(2500));
    s.prints(&["pop"], "delayed");
    s.run(&["pop"]).nothing();
    assert_eq!(s.states("default"), []);
}

fn at_takes_unix_seconds_and_rfc3339_with_any_offset(engine: Engine) {
    let s = engine.fixture();
    let t = now_secs() + 4;
    let unix = s.push_with(&["--at", &t.to_string()], "unix");
    let utc = s.push_with(&["--at", &format_rfc3339(t)], "utc");
    let plus_one = format_rfc3339(t + 3600).replace('Z', "+01:00");
    let offset = s.push_with(&["--at", &plus_one], "offset");
    let minus = format_rfc3339(t - 5400).replace('Z', "-01:30");
    let negative = s.push_with(&["--at", &minus], "negative");
    let fraction = format_rfc3339(t).replace('Z', ".5Z");
    let frac = s.push_with(&["--at", &fraction], "fraction");
    for id in [unix, utc, offset, negative, frac] {
        assert_eq!(s.entry("default", id)["state"], "delayed");
        assert_eq!(s.until(id), t, "due time of message {id}");
    }
    s.run(&["pop"]).nothing();
    sleep_until_secs(t, Duration::from_millis(700));
    // Due at the same second: in push order, the half second last.
    assert_eq!(
        s.pop_all_text("default"),
        ["unix", "utc", "offset", "negative", "fraction"]
    );
}

fn at_in_the_past_is_ready_at_once(engine: Engine) {
    let s = engine.fixture();
    s.push(&["first"]);
    s.run(&["push", "--at", "2000-01-01T00:00:00Z", "y2k"])
        .success();
    s.run(&["push", "--at", "1", "epoch"]).success();
    s.run(&["push", "--at", &(now_secs() - 1).to_string(), "just now"])
        .success();
    let popped = s.pop_all("default");
    assert_eq!(popped.len(), 4, "{popped:?}");
    assert_eq!(popped[0], b"first");
    let mut rest: Vec<&[u8]> = popped[1..].iter().map(Vec::as_slice).collect();
    rest.sort_unstable();
    assert_eq!(rest, [b"epoch".as_slice(), b"just now", b"y2k"]);
}

fn bad_times_exit_2_and_push_nothing(engine: Engine) {
    let s = engine.fixture();
    for bad in [
        "",
        "tomorrow",
        "now",
        "-5",
        "1.5",
        "2026-13-01T00:00:00Z",
        "2026-11-25T08:29:18",
        "2026-11-25T08:29:18+0100",
        "2026-11-25",
        "1969-12-31T23:59:59Z",
    ] {
        let out = s.run(&["push", "--at", bad, "x"]);
        out.error();
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    s.run(&["push", "--at", "1", "--delay", "1s", "x"]).error();
    assert_eq!(s.states("default"), []);
}

/// `--at 2026-02-30T00:00:00Z` and `--at 2026-12-01T22:00:00+25:00` were
/// accepted, and the message made ready at once. Days past the end of their month and
/// offsets past 23:59 are refused, as a month 13 is, and nothing is pushed.
fn impossible_times_are_refused(engine: Engine) {
    let s = engine.fixture();
    for (bad, why) in [
        ("2026-02-30T00:00:00Z", "no such date: 2026-02 has 28 days"),
        ("2027-02-29T00:00:00Z", "no such date: 2027-02 has 28 days"),
        ("2100-02-29T12:00:00Z", "no such date: 2100-02 has 28 days"),
        ("2026-04-31T00:00:00Z", "no such date: 2026-04 has 30 days"),
        (
            "2026-11-31T00:00:00+01:00",
            "no such date: 2026-11 has 30 days",
        ),
        ("2026-12-01T22:00:00+25:00", "no such offset +25:00"),
        ("2026-12-01T22:00:00-24:00", "no such offset -24:00"),
        ("2026-12-01T22:00:00+01:60", "no such offset +01:60"),
        ("2026-13-01T00:00:00Z", "no such time"),
        ("2026-12-01T24:00:00Z", "no such time"),
        ("2026-12-01T23:60:00Z", "no such time"),
    ] {
        let out = s.run(&["push", "--at", bad, "x"]);
        out.error()
            .stderr_has(&format!("invalid value '{bad}' for --at: {why}"));
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    assert_eq!(s.states("default"), []);
    // The days that are: a leap day, the last of a month, the offsets at the limit.
    for (good, secs) in [
        ("2028-02-29T00:00:00Z", 1_835_395_200),
        ("2400-02-29T00:00:00Z", 13_574_563_200),
        ("2030-04-30T23:59:59Z", 1_903_823_999),
        ("2030-12-01T23:59:00+23:59", 1_922_313_600),
        ("2030-11-30T00:01:00-23:59", 1_922_313_600),
    ] {
        let id = s.push_with(&["--at", good], good);
        assert_eq!(s.entry("default", id)["state"], "delayed", "{good}");
        assert_eq!(s.until(id), secs, "{good}");
    }
}

/// `1h30m` was refused. Compound durations (largest unit first, as
/// systemd and Go write them) delay and expire as their sum does.
fn compound_durations_delay_and_expire(engine: Engine) {
    let s = engine.fixture();
    for (text, secs) in [
        ("1h30m", 5400),
        ("2m30s", 150),
        ("1d12h", 129_600),
        ("1m1s500ms", 61),
    ] {
        let before = now_secs();
        let id = s.push_with(&["--delay", text], text);
        let due = s.until(id);
        assert!(
            (before + secs..=now_secs() + secs + 1).contains(&due),
            "--delay {text}: due at {due}, not {secs} s after {before}"
        );
    }
    let id = s.push_with(&["--ttl", "1h30m"], "expires");
    let expires = s.entry("default", id)["expires"]
        .as_str()
        .map(parse_rfc3339);
    let expected = now_secs() + 5400;
    assert!(
        matches!(expires, Some(Some(t)) if (expected - 2..=expected).contains(&t)),
        "--ttl 1h30m: expires {expires:?}, not about {expected}"
    );
    for bad in ["30s5m", "1h1h", "1h30", "1h 30m", "1.5h"] {
        s.run(&["push", "--delay", bad, "x"])
            .error()
            .stderr_has(bad);
    }
    assert_eq!(s.states("default").len(), 5);
}

fn delayed_messages_come_out_in_order_of_due_time(engine: Engine) {
    // The due times are fixed before the first push (`--at`, to the millisecond): however
    // long a push takes on a busy machine, they are not in the order of the pushes.
    let s = engine.fixture();
    let base = now_ms() + 2500;
    let at = |offset: i64| {
        let t = base + offset;
        let secs = format_rfc3339(t.div_euclid(1000));
        format!("{}.{:03}Z", &secs[..19], t.rem_euclid(1000))
    };
    for (offset, message) in [
        (1500, "late"),
        (0, "early"),
        (1000, "middle"),
        (500, "between"),
    ] {
        s.run(&["push", "--at", &at(offset), message]).success();
    }
    let delayed: Vec<String> = s
        .list_json("default", "delayed")
        .iter()
        .map(|v| v["preview"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delayed, ["early", "between", "middle", "late"]);
    s.run(&["pop"]).nothing();
    // Past the last due time, with a margin.
    let left = base + 1800 - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
    assert_eq!(
        s.pop_all_text("default"),
        ["early", "between", "middle", "late"]
    );
}

fn a_due_message_goes_ahead_of_messages_pushed_after_its_due_time(engine: Engine) {
    // Whether or not a consumer looked at the queue in between, a message that became
    // due at T is ahead of one pushed after T.
    let s = engine.fixture();
    s.push(&["a"]);
    s.run(&["push", "--delay", "1s", "due first"]).success();
    let pushed = Instant::now();
    sleep_from(pushed, Duration::from_millis(1500));
    s.push(&["pushed after"]);
    assert_eq!(
        s.pop_all_text("default"),
        ["a", "due first", "pushed after"]
    );
    // The same with a nack --delay.
    s.push(&["n"]);
    let token = s.claim(&[]);
    s.run(&["nack", &token, "--delay", "1s"]).success();
    let nacked = Instant::now();
    sleep_from(nacked, Duration::from_millis(1500));
    s.push(&["later"]);
    assert_eq!(s.pop_all_text("default"), ["n", "later"]);
}

fn each_delayed_message_appears_at_its_own_time(engine: Engine) {
    let s = engine.fixture();
    let before = Instant::now();
    s.run(&["push", "--delay", "1s", "one"]).success();
    let pushed = Instant::now();
    s.run(&["push", "--delay", "3s", "three"]).success();
    // Between the two due times, only the first is there.
    sleep_from(pushed, Duration::from_millis(1500));
    s.prints(&["pop"], "one");
    s.run(&["pop"]).nothing();
    let out = s.run(&["pop", "--wait", "--timeout", "20s"]);
    out.success().stdout_is("three");
    assert!(
        before.elapsed() >= Duration::from_millis(2900),
        "popped after {:?}, before its due time",
        before.elapsed()
    );
}

fn priorities_go_first_and_fifo_within_a_priority(engine: Engine) {
    let s = engine.fixture();
    for (p, m) in [
        ("1", "a1"),
        ("5", "b5"),
        ("0", "c0"),
        ("5", "d5"),
        ("9", "e9"),
        ("1", "f1"),
    ] {
        s.run(&["push", "--priority", p, m]).success();
    }
    s.push(&["g0"]);
    s.run(&["push", "--priority", "9", "h9"]).success();
    let listed: Vec<(String, u64)> = s
        .list_json("default", "ready")
        .iter()
        .map(|v| {
            (
                v["preview"].as_str().unwrap().to_string(),
                v["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("e9", 9),
        ("h9", 9),
        ("b5", 5),
        ("d5", 5),
        ("a1", 1),
        ("f1", 1),
        ("c0", 0),
        ("g0", 0),
    ];
    assert_eq!(
        listed,
        expected
            .iter()
            .map(|(m, p)| (m.to_string(), *p))
            .collect::<Vec<_>>()
    );
    s.prints(&["peek", "-n", "3", "--lines"], "e9\nh9\nb5\n");
    s.prints(&["pop", "-n", "3", "--lines"], "e9\nh9\nb5\n");
    // A higher priority pushed now still goes first.
    s.run(&["push", "--priority", "2", "late2"]).success();
    assert_eq!(
        s.pop_all_text("default"),
        ["d5", "late2", "a1", "f1", "c0", "g0"]
    );
}

fn priority_must_be_0_to_9(engine: Engine) {
    let s = engine.fixture();
    for bad in ["10", "-1", "x", "", "1.5", "255", "256"] {
        s.run(&["push", "--priority", bad, "m"]).error();
    }
    assert_eq!(s.states("default"), []);
    for p in 0..=9u64 {
        let id = s.push_with(&["--priority", &p.to_string()], "m");
        assert_eq!(s.entry("default", id)["priority"], p);
    }
}

fn a_message_keeps_its_priority_in_every_state(engine: Engine) {
    let s = engine.fixture();
    let old = s.push_with(&[], "old0");
    let p = s.push_with(&["--priority", "7"], "p7");
    let priority = |s: &Fixture| s.entry("default", p)["priority"].as_u64();

    // Claimed, then nacked: still ahead of the older priority-0 message.
    let token = s.claim(&[]);
    assert_eq!(id_of(&token), p);
    assert_eq!(priority(&s), Some(7));
    s.run(&["nack", &token]).success();
    assert_eq!(priority(&s), Some(7));
    assert_eq!(s.listed_ids("default"), [p, old]);

    // Nacked with a delay, then due.
    let token = s.claim(&[]);
    assert_eq!(id_of(&token), p);
    s.run(&["nack", &token, "--delay", "1s"]).success();
    let nacked = Instant::now();
    assert_eq!(s.entry("default", p)["state"], "delayed");
    assert_eq!(priority(&s), Some(7));
    sleep_from(nacked, Duration::from_millis(1800));
    let token = s.claim(&["--lease", "1s"]);
    assert_eq!(id_of(&token), p, "the due priority-7 message goes first");

    // Returned by its lease.
    std::thread::sleep(Duration::from_millis(1300));
    s.prints(&["peek"], "p7");
    assert_eq!(s.entry("default", p)["state"], "ready");
    assert_eq!(priority(&s), Some(7));

    // Failed (out of attempts: claimed 3 times so far).
    s.run(&["claim", "--max-attempts", "3"]).success();
    let failed = s.entry("default", p);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["priority"], 7);
    assert_eq!(failed["attempts"], 3);
    // That claim took the priority-0 message instead.
    let claimed = s.list_json("default", "claimed");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0]["id"], old);

    // Requeued: first again.
    s.prints(&["requeue", &p.to_string()], "1\n");
    assert_eq!(priority(&s), Some(7));
    assert_eq!(s.entry("default", p)["attempts"], 0);
    s.prints(&["pop"], "p7");
}

fn a_delayed_priority_message_goes_ahead_of_lower_ones_once_due(engine: Engine) {
    let s = engine.fixture();
    // Due in 3 seconds: time for the next push and pop on a busy machine.
    s.run(&["push", "--priority", "3", "--delay", "3s", "urgent later"])
        .success();
    let pushed = Instant::now();
    s.push(&["a", "b"]);
    s.prints(&["pop"], "a");
    sleep_from(pushed, Duration::from_millis(3800));
    s.prints(&["pop"], "urgent later");
    s.prints(&["pop"], "b");
}

fn an_expired_message_moves_to_failed_and_is_skipped(engine: Engine) {
    let s = engine.fixture();
    let before = now_secs();
    let short = s.push_with(&["--ttl", "1s"], "short");
    let pushed = Instant::now();
    let after = now_secs();
    s.push_with(&["--ttl", "1h"], "long");
    let plain = s.push_with(&[], "plain");
    let v = s.entry("default", short);
    let expires = parse_rfc3339(v["expires"].as_str().expect("expires")).unwrap();
    assert!(
        (before + 1..=after + 1).contains(&expires),
        "expires at {expires}, not 1 s after {before}..={after}"
    );
    assert!(s.entry("default", plain).get("expires").is_none());
    sleep_from(pushed, Duration::from_millis(1600));
    // peek skips it; pop moves it to failed and takes the next one.
    s.prints(&["peek"], "long");
    s.prints(&["pop"], "long");
    let v = s.assert_state(short, "failed", 0);
    assert_eq!(v["reason"], "expired");
    s.prints(&["show", &short.to_string()], "short");
    assert!(s.entry("default", plain).get("expires").is_none());
    s.prints(&["pop"], "plain");
    s.run(&["pop"]).nothing();
    assert_eq!(s.states("default"), [(short, "failed".to_string())]);
}

fn claim_and_run_fail_expired_messages_too(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "c", "push", "--ttl", "1s", "a"]).success();
    s.run(&["-q", "r", "push", "--ttl", "1s", "b"]).success();
    let pushed = Instant::now();
    sleep_from(pushed, Duration::from_millis(1600));
    s.run(&["-q", "c", "claim"]).nothing();
    let v = s.entry("c", 1);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["reason"], "expired");

    let marker = s.outside("ran");
    let out = s
        .cmd()
        .env("MARKER", &marker)
        .args(["-q", "r", "run", "--", "sh", "-c", "touch \"$MARKER\""])
        .run();
    assert_ne!(out.code, 2, "{out:?}");
    assert!(!marker.exists(), "the command ran for an expired message");
    let v = s.entry("r", 1);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["reason"], "expired");
}

fn a_delay_counts_towards_the_ttl(engine: Engine) {
    let s = engine.fixture();
    let never = s.push_with(&["--delay", "2s", "--ttl", "1s"], "never");
    s.push_with(&["--delay", "1s", "--ttl", "1h"], "fine");
    let pushed = Instant::now();
    s.run(&["pop"]).nothing();
    sleep_from(pushed, Duration::from_millis(2500));
    s.prints(&["pop"], "fine");
    s.run(&["pop"]).nothing();
    let v = s.entry("default", never);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["reason"], "expired");
}

fn a_message_that_expires_while_claimed_can_still_be_acked(engine: Engine) {
    let s = engine.fixture();
    s.push_with(&["--ttl", "1s"], "in progress");
    let pushed = Instant::now();
    let token = s.claim(&["--lease", "1m"]);
    sleep_from(pushed, Duration::from_millis(1600));
    s.prints(&["show", &token], "in progress");
    s.run(&["ack", &token]).success();
    assert_eq!(s.states("default"), []);
}

fn a_nacked_message_that_expired_goes_to_failed(engine: Engine) {
    let s = engine.fixture();
    let id = s.push_with(&["--ttl", "1s"], "too late");
    let pushed = Instant::now();
    let token = s.claim(&["--lease", "1m"]);
    sleep_from(pushed, Duration::from_millis(1600));
    s.run(&["nack", &token]).success();
    s.run(&["pop"]).nothing();
    let v = s.assert_state(id, "failed", 1);
    assert_eq!(v["reason"], "expired");
    // Requeued, it loses its expiry and can be consumed.
    s.prints(&["requeue", "--all"], "1\n");
    assert!(s.entry("default", id).get("expires").is_none());
    s.prints(&["pop"], "too late");
}

/// What is wrong with `push OPTIONS... far`, if anything: it must either be refused (exit
/// 2, one line, nothing pushed) or be honoured with the message not visible now.
fn far_push_problem(engine: Engine, options: &[&str]) -> Option<String> {
    let s = engine.fixture();
    let mut args = vec!["push"];
    args.extend_from_slice(options);
    args.push("far");
    let out = s.run(&args);
    let states = s.states("default");
    if out.code == 0 && out.stderr.is_empty() {
        let pop = s.run(&["pop"]);
        if pop.code != 1 {
            return Some(format!(
                "{options:?}: pushed, then visible at once:\n{pop:?}"
            ));
        }
        if states != [(1, "delayed".to_string())] {
            return Some(format!("{options:?}: pushed, listed as {states:?}"));
        }
        None
    } else if out.code != 2 || !crate::harness::is_one_spool_line(&out.stderr) {
        Some(format!("{options:?}: not one error line:\n{out:?}"))
    } else if out.stderr.contains("internal error") {
        Some(format!("{options:?}: crashed:\n{out:?}"))
    } else if !states.is_empty() {
        Some(format!(
            "{options:?}: failed, yet pushed {states:?}:\n{out:?}"
        ))
    } else {
        None
    }
}

fn far_future_times_are_refused_or_honoured(engine: Engine) {
    let problems: Vec<String> = [
        vec!["--at", "4102444800"], // 2100
        vec!["--at", "9999-12-31T23:59:59Z"],
        vec!["--delay", "36500d"],
        vec!["--at", "99999999999999"],
        vec!["--at", "18446744073709551615"],
        vec!["--delay", "10000000000d"],
        vec!["--delay", "18446744073709551s"],
    ]
    .iter()
    .filter_map(|options| far_push_problem(engine, options))
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

fn an_enormous_ttl_never_expires_at_once(engine: Engine) {
    let mut problems = Vec::new();
    for ttl in ["36500d", "18446744073709551s"] {
        let s = engine.fixture();
        let out = s.run(&["push", "--ttl", ttl, "keep"]);
        if out.code == 0 {
            let pop = s.run(&["pop"]);
            if pop.code != 0 || pop.stdout != b"keep" {
                problems.push(format!(
                    "--ttl {ttl}: pushed, but not delivered: {pop:?}\nnow listed as {:?}",
                    s.states("default")
                ));
            }
        } else if out.code != 2
            || out.stderr.contains("internal error")
            || !s.states("default").is_empty()
        {
            problems.push(format!("--ttl {ttl}: {out:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
