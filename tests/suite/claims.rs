//! Claims: `claim`, `show`, `ack`, `nack`, `extend`, leases that end, attempts,
//! `--max-attempts`, the failed state, `requeue`, `clear --state` and `list --state`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Engine, Fixture, engine_tests, now_secs, until_of};

engine_tests! {
    claim_prints_a_token_and_moves_the_oldest_message_to_claimed,
    tokens_differ_for_every_claim_of_the_same_message,
    show_prints_a_message_in_every_state,
    show_of_something_unknown_exits_2,
    ack_deletes_the_claimed_message_once,
    nack_returns_the_message_behind_the_waiting_ones,
    nack_with_a_delay_hides_the_message_until_then,
    extend_renews_the_lease,
    an_ended_lease_returns_the_message_to_its_place,
    each_look_returns_ended_leases_pop_and_claim_too,
    a_stale_token_does_nothing_once_the_message_was_claimed_again,
    a_token_works_until_its_ended_lease_is_noticed,
    slow_workers_never_ack_a_message_twice,
    a_lease_of_0_is_refused_by_claim_and_extend,
    a_token_one_digit_too_long_or_short_is_malformed,
}

/// The message id of a token.
pub(super) fn id_of(token: &str) -> u64 {
    token.split('.').next().unwrap().parse().unwrap()
}

/// Sleeps past the lease `lease` of a claim that returned at `claimed`, with a margin.
pub(super) fn sleep_past(claimed: Instant, lease: Duration) {
    let end = claimed + lease + Duration::from_millis(300);
    if let Some(left) = end.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

fn claim_prints_a_token_and_moves_the_oldest_message_to_claimed(engine: Engine) {
    let s = engine.fixture();
    s.push(&["first", "second"]);
    let before = now_secs();
    let token = s.claim(&[]);
    let after = now_secs();
    assert_eq!(id_of(&token), 1);
    let first = s.assert_state(1, "claimed", 1);
    assert_eq!(first["preview"], "first");
    // The default lease is 5 minutes.
    let lease = until_of(&first);
    assert!(
        (before + 300 - 1..=after + 300 + 1).contains(&lease),
        "lease ends at {lease}, not 5 minutes after {before}..={after}"
    );
    // Claimed messages are not waiting: pop, peek and len see only the second.
    assert_eq!(s.listed_ids("default"), [2]);
    assert_eq!(s.len("default"), 1);
    s.prints(&["peek"], "second");
    let other = s.claim(&["--lease", "1m"]);
    assert_eq!(id_of(&other), 2);
    assert_ne!(token, other);
    s.run(&["claim"]).nothing();
    s.run(&["pop"]).nothing();
    s.run(&["peek"]).nothing();
}

#[test]
fn claim_on_an_empty_or_missing_queue_exits_1() {
    let s = Fixture::new();
    s.run(&["claim"]).says_missing("default", 1, "");
    assert!(!s.root().exists(), "claim created the root");
    s.push(&["x"]);
    s.run(&["pop"]).success();
    s.run(&["claim"]).nothing();
    s.run(&["claim", "--lease", "1s", "--max-attempts", "2"])
        .nothing();
}

fn tokens_differ_for_every_claim_of_the_same_message(engine: Engine) {
    let s = engine.fixture();
    s.push(&["again and again"]);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let token = s.claim(&[]);
        assert_eq!(id_of(&token), 1);
        assert!(!seen.contains(&token), "token {token} reused: {seen:?}");
        s.prints(&["nack", &token], "");
        seen.push(token);
    }
    assert_eq!(s.entry("default", 1)["attempts"], 5);
}

fn show_prints_a_message_in_every_state(engine: Engine) {
    let s = engine.fixture();
    // Failed: claimed once, then out of attempts.
    let failed = s.push_with(&[], "doomed");
    let token = s.claim(&[]);
    s.run(&["nack", &token]).success();
    s.run(&["claim", "--max-attempts", "1"]).nothing();
    // Claimed, ready, delayed.
    let payload: Vec<u8> = (0..=255u8).collect();
    let out = s
        .cmd()
        .args(["push", "--print-id"])
        .stdin(payload.clone())
        .run();
    out.success();
    let claimed = crate::harness::parse_ids(&out.stdout)[0];
    let token = s.claim(&[]);
    assert_eq!(id_of(&token), claimed);
    let ready = s.push_with(&[], "ready one");
    let delayed = s.push_with(&["--delay", "1h"], "later");
    let states: HashMap<u64, String> = s.states("default").into_iter().collect();
    let expected: HashMap<u64, String> = [
        (failed, "failed"),
        (claimed, "claimed"),
        (ready, "ready"),
        (delayed, "delayed"),
    ]
    .into_iter()
    .map(|(id, st)| (id, st.to_string()))
    .collect();
    assert_eq!(states, expected);

    s.prints(&["show", &token], &payload);
    s.prints(&["show", &claimed.to_string()], &payload);
    s.prints(&["show", &failed.to_string()], "doomed");
    s.prints(&["show", &ready.to_string()], "ready one");
    s.prints(&["show", &delayed.to_string()], "later");
    // Showing changes nothing.
    let after: HashMap<u64, String> = s.states("default").into_iter().collect();
    assert_eq!(after, expected);
    assert_eq!(s.entry("default", claimed)["attempts"], 1);
    assert_eq!(s.entry("default", ready)["attempts"], 0);
}

fn show_of_something_unknown_exits_2(engine: Engine) {
    let s = engine.fixture();
    s.run(&["show", "1"]).error();
    s.push(&["a"]);
    s.run(&["show", "2"]).error();
    s.run(&["show", "1.0123456789abcdef"]).error();
    for bad in ["0", "-1", "x", "01", "1.XYZ", "1.", ".ab", ""] {
        let out = s.run(&["show", bad]);
        out.error();
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    s.prints(&["pop"], "a");
    s.run(&["show", "1"]).error();
}

fn ack_deletes_the_claimed_message_once(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let token = s.claim(&[]);
    s.prints(&["ack", &token], "");
    assert_eq!(s.states("default"), [(2, "ready".to_string())]);
    s.run(&["show", "1"]).error();
    // A second ack of the same token does nothing and says why.
    let again = s.run(&["ack", &token]);
    again.error().stderr_has(&token);
    assert_eq!(s.states("default"), [(2, "ready".to_string())]);
    s.prints(&["pop"], "b");
    s.run(&["pop"]).nothing();
}

#[test]
fn bad_tokens_are_errors_that_change_nothing() {
    let s = Fixture::new();
    s.push(&["a"]);
    let token = s.claim(&[]);
    let (id, hex) = token.split_once('.').unwrap();
    let wrong_hex = match hex.strip_prefix('0') {
        Some(rest) => format!("{id}.1{rest}"),
        None => format!("{id}.0{}", &hex[1..]),
    };
    for bad in [
        "garbage",
        "1",
        "1.",
        ".abc",
        "0.abc",
        "01.abc",
        "1.ABC",
        "2.abc",
        wrong_hex.as_str(),
    ] {
        for cmd in [
            vec!["ack", bad],
            vec!["nack", bad],
            vec!["extend", bad, "--lease", "1m"],
            vec!["nack", bad, "--delay", "1s"],
        ] {
            let out = s.run(&cmd);
            out.error();
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }
    s.assert_state(1, "claimed", 1);
    s.run(&["ack", &token]).success();
    // On a queue that does not exist.
    let e = Fixture::new();
    e.run(&["ack", "1.abc"]).error();
    e.run(&["nack", "1.abc"]).error();
    e.run(&["extend", "1.abc", "--lease", "1m"]).error();
    assert!(!e.root().exists(), "a failed ack created the root");
}

fn nack_returns_the_message_behind_the_waiting_ones(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c"]);
    let token = s.claim(&[]);
    s.prints(&["nack", &token], "");
    let d = s.push_with(&[], "d");
    assert_eq!(s.listed_ids("default"), [2, 3, 1, d]);
    assert_eq!(s.entry("default", 1)["attempts"], 1);
    assert_eq!(s.pop_all_text("default"), ["b", "c", "a", "d"]);
    // The token was used up by the nack.
    s.run(&["nack", &token]).error();
    s.run(&["ack", &token]).error();
    s.run(&["pop"]).nothing();
}

fn nack_with_a_delay_hides_the_message_until_then(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let token = s.claim(&[]);
    let before = now_secs();
    s.run(&["nack", &token, "--delay", "2s"]).success();
    let after = now_secs();
    let entry = s.assert_state(1, "delayed", 1);
    let due = until_of(&entry);
    assert!(
        (before + 2 - 1..=after + 2 + 1).contains(&due),
        "due at {due}, not 2 s after {before}..={after}"
    );
    s.prints(&["pop"], "b");
    s.run(&["pop"]).nothing();
    s.run(&["claim"]).nothing();
    let out = s.run(&["pop", "--wait", "--timeout", "10s"]);
    out.success().stdout_is("a");
    assert!(
        now_secs() >= due,
        "delivered before its due time {due}:\n{out:?}"
    );
}

fn extend_renews_the_lease(engine: Engine) {
    let s = engine.fixture();
    s.push(&["long job"]);
    let token = s.claim(&["--lease", "1s"]);
    let claimed = Instant::now();
    let before = now_secs();
    s.prints(&["extend", &token, "--lease", "1m"], "");
    let after = now_secs();
    let lease = until_of(&s.entry("default", 1));
    assert!(
        (before + 60 - 1..=after + 60 + 1).contains(&lease),
        "lease ends at {lease}, not a minute after {before}..={after}"
    );
    sleep_past(claimed, Duration::from_secs(1));
    // The first lease is over, the renewed one is not: nobody else gets the message.
    s.run(&["claim"]).nothing();
    s.run(&["pop"]).nothing();
    s.run(&["peek"]).nothing();
    assert_eq!(s.entry("default", 1)["state"], "claimed");
    s.prints(&["show", &token], "long job");
    // The token still works, for extend as for ack.
    s.run(&["extend", &token, "--lease", "2h"]).success();
    let two_hours = until_of(&s.entry("default", 1));
    assert!(two_hours >= now_secs() + 7200 - 2, "lease {two_hours}");
    s.run(&["extend", &token, "--lease", "1d"]).success();
    let one_day = until_of(&s.entry("default", 1));
    assert!(one_day >= now_secs() + 86_400 - 2, "lease {one_day}");
    s.run(&["ack", &token]).success();
    assert_eq!(s.states("default"), []);
}

/// `claim --lease 0` and `extend --lease 0` were accepted (a claim that
/// ends as it is made). A lease is at least 1 ms; the refusal changes nothing.
fn a_lease_of_0_is_refused_by_claim_and_extend(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    for lease in ["0", "0ms", "0h0m0s"] {
        let out = s.run(&["claim", "--lease", lease]);
        out.error()
            .stderr_has("--lease must be at least 1ms (see spool claim --help)");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    s.assert_state(1, "ready", 0);
    let token = s.claim(&["--lease", "1m"]);
    let lease = until_of(&s.entry("default", 1));
    for lease in ["0", "0s"] {
        s.run(&["extend", &token, "--lease", lease])
            .error()
            .stderr_has("--lease must be at least 1ms (see spool extend --help)");
    }
    assert_eq!(until_of(&s.entry("default", 1)), lease);
    s.assert_state(1, "claimed", 1);
    s.assert_state(2, "ready", 0);
    // A compound lease is a lease.
    let before = now_secs();
    s.run(&["extend", &token, "--lease", "1h30m"]).success();
    let renewed = until_of(&s.entry("default", 1));
    assert!(
        (before + 5400 - 1..=now_secs() + 5400 + 1).contains(&renewed),
        "--lease 1h30m ends at {renewed}, {before}"
    );
    s.run(&["ack", &token]).success();
}

/// A token one hex digit too long or too short was taken for a claim that
/// ended ("message 1 was claimed again since"). Tokens are what `claim` prints, 16 hex
/// digits: any other is malformed, and said to be, whatever is in the queue.
fn a_token_one_digit_too_long_or_short_is_malformed(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a"]);
    let token = s.claim(&["--lease", "1m"]);
    let (id, hex) = token.split_once('.').unwrap();
    assert_eq!(hex.len(), 16, "{token}");
    let lease = until_of(&s.entry("default", 1));
    let short = format!("{id}.{}", &hex[..15]);
    let long = format!("{token}0");
    let upper = format!("{id}.{}", hex.to_uppercase());
    for bad in [&short, &long, &upper] {
        if bad == &token {
            continue;
        }
        for cmd in [
            vec!["ack", bad.as_str()],
            vec!["nack", bad],
            vec!["nack", bad, "--delay", "1s"],
            vec!["extend", bad, "--lease", "1m"],
            vec!["show", bad],
        ] {
            let out = s.run(&cmd);
            out.error()
                .stderr_has(&format!("invalid value '{bad}' for TOKEN"));
            out.stderr_has("not a claim token (they look like 42.9f3a0c1d2e4b5a67)");
            assert!(!out.stderr.contains("claimed again"), "{out:?}");
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }
    // Nothing changed: the claim holds, and its token works.
    s.assert_state(1, "claimed", 1);
    assert_eq!(until_of(&s.entry("default", 1)), lease);
    s.prints(&["show", &token], "a");
    s.run(&["ack", &token]).success();
}

fn an_ended_lease_returns_the_message_to_its_place(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let token = s.claim(&["--lease", "1s"]);
    let claimed = Instant::now();
    s.push(&["c"]);
    sleep_past(claimed, Duration::from_secs(1));
    // The next consumer that looks returns it, ahead of the messages pushed after it.
    s.prints(&["peek"], "a");
    assert_eq!(s.listed_ids("default"), [1, 2, 3]);
    let entry = s.entry("default", 1);
    assert_eq!(entry["state"], "ready");
    assert_eq!(entry["attempts"], 1, "the ended claim counts: {entry}");
    // Its token is no good any more.
    s.run(&["ack", &token]).error();
    s.run(&["extend", &token, "--lease", "1m"]).error();
    s.run(&["nack", &token]).error();
    assert_eq!(s.listed_ids("default"), [1, 2, 3]);
    assert_eq!(s.pop_all_text("default"), ["a", "b", "c"]);
}

fn each_look_returns_ended_leases_pop_and_claim_too(engine: Engine) {
    let s = engine.fixture();
    let mut firsts = Vec::new();
    for queue in ["p", "c"] {
        s.run(&["-q", queue, "push", "only"]).success();
        let out = s.run(&["-q", queue, "claim", "--lease", "1s"]);
        out.success();
        firsts.push(out.token());
    }
    let claimed = Instant::now();
    for queue in ["p", "c"] {
        s.run(&["-q", queue, "pop"]).nothing();
        s.run(&["-q", queue, "claim"]).nothing();
    }
    sleep_past(claimed, Duration::from_secs(1));
    s.prints(&["-q", "p", "pop"], "only");
    assert_eq!(s.states("p"), []);
    let out = s.run(&["-q", "c", "claim"]);
    out.success();
    assert_ne!(out.token(), firsts[1]);
    let entry = s.entry("c", 1);
    assert_eq!(entry["state"], "claimed");
    assert_eq!(entry["attempts"], 2);
}

fn a_stale_token_does_nothing_once_the_message_was_claimed_again(engine: Engine) {
    let s = engine.fixture();
    s.push(&["the job"]);
    let stale = s.claim(&["--lease", "1s"]);
    let claimed = Instant::now();
    sleep_past(claimed, Duration::from_secs(1));
    let fresh = s.claim(&["--lease", "1m"]);
    assert_eq!(id_of(&fresh), 1);
    assert_ne!(fresh, stale);
    let lease = until_of(&s.entry("default", 1));

    for cmd in [
        vec!["ack", stale.as_str()],
        vec!["nack", stale.as_str()],
        vec!["nack", stale.as_str(), "--delay", "1s"],
        vec!["extend", stale.as_str(), "--lease", "1s"],
        vec!["show", stale.as_str()],
    ] {
        let out = s.run(&cmd);
        out.error().stderr_has("claimed again");
        assert!(out.stdout.is_empty(), "{out:?}");
        // Nothing changed: the message is claimed once, under the fresh claim.
        let entry = s.entry("default", 1);
        assert_eq!(entry["state"], "claimed", "after {cmd:?}");
        assert_eq!(entry["attempts"], 2, "after {cmd:?}");
        assert_eq!(until_of(&entry), lease, "after {cmd:?}: the lease changed");
    }
    s.prints(&["show", &fresh], "the job");
    s.run(&["ack", &fresh]).success();
    assert_eq!(s.states("default"), []);
    // Neither token acks anything again.
    s.run(&["ack", &fresh]).error();
    s.run(&["ack", &stale]).error();
    s.push(&["next"]);
    s.prints(&["pop"], "next");
}

fn a_token_works_until_its_ended_lease_is_noticed(engine: Engine) {
    let s = engine.fixture();
    s.push(&["slow"]);
    let token = s.claim(&["--lease", "1s"]);
    let claimed = Instant::now();
    sleep_past(claimed, Duration::from_secs(1));
    // Nobody looked at the queue since the lease ended: the claim is still there.
    s.prints(&["show", &token], "slow");
    s.run(&["ack", &token]).success();
    assert_eq!(s.states("default"), []);
    s.run(&["claim"]).nothing();
}

fn slow_workers_never_ack_a_message_twice(engine: Engine) {
    // Workers claim with a 1 s lease; for some messages the first worker sleeps past its
    // lease before acking. Whatever the interleaving, each message is acked exactly once
    // and none is lost.
    const MESSAGES: u64 = 40;
    const WORKERS: usize = 4;
    let s = engine.fixture();
    let input: String = (1..=MESSAGES).map(|i| format!("job-{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], input).success();
    let acked: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let slowed: Mutex<HashSet<u64>> = Mutex::new(HashSet::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (s, acked, stop, slowed) = (&s, &acked, &stop, &slowed);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "worker {w}: not drained after 60 s"
                    );
                    let out = s.run(&["claim", "--lease", "1s", "--max-attempts", "100"]);
                    if out.code == 1 {
                        out.nothing();
                        if s.states("default").is_empty() {
                            stop.store(true, Ordering::SeqCst);
                        } else {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        continue;
                    }
                    out.success();
                    let token = out.token();
                    let shown = s.run(&["show", &token]);
                    if shown.code == 2 {
                        // The lease ended already (a slow machine): the claim is gone.
                        shown.error();
                        continue;
                    }
                    shown.success();
                    let payload = shown.text();
                    let id = id_of(&token);
                    // A quarter of the messages: the first worker to get one is slow.
                    if id.is_multiple_of(4) && slowed.lock().unwrap().insert(id) {
                        std::thread::sleep(Duration::from_millis(1400));
                    }
                    let out = s.run(&["ack", &token]);
                    match out.code {
                        0 => {
                            out.success();
                            acked.lock().unwrap().push((id, payload));
                        }
                        _ => {
                            out.error().stderr_has(&token);
                        }
                    }
                }
            });
        }
    });
    let acked = acked.into_inner().unwrap();
    let mut count: HashMap<u64, usize> = HashMap::new();
    for (id, payload) in &acked {
        assert_eq!(payload, &format!("job-{id}"), "message {id} payload");
        *count.entry(*id).or_default() += 1;
    }
    for id in 1..=MESSAGES {
        assert_eq!(count.get(&id), Some(&1), "message {id} acked once");
    }
    assert_eq!(acked.len() as u64, MESSAGES);
    assert_eq!(s.states("default"), []);
}
