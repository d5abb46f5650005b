//! Attempts and dead letters: every claim counts an attempt, `--max-attempts` fails a
//! message for good, `requeue` brings it back; `clear --state`, `list --state` and
//! `stats` across the states; and a claim meeting a waiting consumer or an output that
//! cannot be written. Claims, leases and tokens themselves are in [`super::claims`].

use crate::harness::{Engine, Fixture, engine_tests, json_lines, now_secs, parse_rfc3339};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::claims::*;

engine_tests! {
    every_claim_counts_an_attempt_and_max_attempts_fails_the_message,
    max_attempts_counts_claims_whose_lease_ended,
    the_default_max_attempts_is_5,
    requeue_moves_failed_messages_back_with_their_attempts_reset,
    clear_removes_what_its_state_says_and_prints_the_count,
    list_state_shows_each_state_and_its_details,
    stats_count_every_state,
    a_missing_required_argument_is_named,
    a_claimed_message_is_not_handed_to_a_waiting_consumer,
    a_claim_whose_token_cannot_be_written_is_given_back,
}

fn every_claim_counts_an_attempt_and_max_attempts_fails_the_message(engine: Engine) {
    let s = engine.fixture();
    s.push(&["flaky"]);
    for attempt in 1..=3u64 {
        let token = s.claim(&["--max-attempts", "3"]);
        assert_eq!(id_of(&token), 1);
        assert_eq!(s.entry("default", 1)["attempts"], attempt);
        s.run(&["nack", &token]).success();
        assert_eq!(s.entry("default", 1)["attempts"], attempt);
    }
    let next = s.push_with(&[], "next");
    // Claimed 3 times: the fourth claim fails it and takes the next message instead.
    let token = s.claim(&["--max-attempts", "3"]);
    assert_eq!(id_of(&token), next);
    let failed = s.list_json("default", "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["id"], 1);
    assert_eq!(failed[0]["state"], "failed");
    assert_eq!(failed[0]["attempts"], 3);
    assert_eq!(failed[0]["reason"], "max-attempts");
    assert_eq!(failed[0]["preview"], "flaky");
    s.run(&["ack", &token]).success();
    // A failed message is never handed out.
    s.run(&["claim"]).nothing();
    s.run(&["pop"]).nothing();
    s.run(&["peek"]).nothing();
    s.prints(&["show", "1"], "flaky");
}

fn max_attempts_counts_claims_whose_lease_ended(engine: Engine) {
    let s = engine.fixture();
    s.push(&["crashes its workers"]);
    for attempt in 1..=2u64 {
        let token = s.claim(&["--lease", "1s", "--max-attempts", "2"]);
        let claimed = Instant::now();
        assert_eq!(id_of(&token), 1);
        assert_eq!(s.entry("default", 1)["attempts"], attempt);
        sleep_past(claimed, Duration::from_secs(1)); // the worker "died"
    }
    s.run(&["claim", "--max-attempts", "2"]).nothing();
    let entry = s.assert_state(1, "failed", 2);
    assert_eq!(entry["reason"], "max-attempts");
}

fn the_default_max_attempts_is_5(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x"]);
    for _ in 0..5 {
        let token = s.claim(&[]);
        s.run(&["nack", &token]).success();
    }
    s.run(&["claim"]).nothing();
    s.assert_state(1, "failed", 5);
    for bad in ["0", "-1", "x", ""] {
        s.run(&["claim", "--max-attempts", bad]).error();
        s.run(&["run", "--max-attempts", bad, "--", "true"]).error();
    }
}

/// A queue with messages 1 and 2 failed (max-attempts), then one ready message, whose id
/// is returned.
fn two_failed(engine: Engine) -> (Fixture, u64) {
    let s = engine.fixture();
    s.push(&["f1", "f2"]);
    for _ in 0..2 {
        let token = s.claim(&[]);
        s.run(&["nack", &token]).success();
    }
    s.run(&["claim", "--max-attempts", "1"]).nothing();
    let ready = s.push_with(&[], "r");
    let failed: Vec<u64> = s
        .list_json("default", "failed")
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [1, 2]);
    (s, ready)
}

fn requeue_moves_failed_messages_back_with_their_attempts_reset(engine: Engine) {
    let (s, r) = two_failed(engine);
    s.prints(&["requeue", "2"], "1\n");
    let entry = s.assert_state(2, "ready", 0);
    assert!(entry.get("reason").is_none(), "{entry}");
    // Behind the waiting ones.
    assert_eq!(s.listed_ids("default"), [r, 2]);
    s.prints(&["requeue", "--all"], "1\n");
    assert_eq!(s.listed_ids("default"), [r, 2, 1]);
    s.prints(&["requeue", "--all"], "0\n");
    assert_eq!(s.pop_all_text("default"), ["r", "f2", "f1"]);
}

#[test]
fn requeue_of_an_unknown_id_exits_2() {
    let (s, r) = two_failed(Engine::Local);
    // r is ready, not failed; 99 does not exist.
    for id in [r.to_string(), "99".to_string()] {
        s.run(&["requeue", &id]).error().stderr_has(&id);
        assert_eq!(s.list_json("default", "failed").len(), 2);
        assert_eq!(s.listed_ids("default"), [r]);
    }
    s.run(&["requeue", "x"]).error();
    s.run(&["requeue"]).error();
    s.run(&["requeue", "1", "--all"]).error();
    // Nothing lost when known and unknown ids are mixed.
    let out = s.run(&["requeue", "1", "99"]);
    out.error().stderr_has("99");
    let mut ids: Vec<u64> = s.states("default").iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, r]);
    let e = Fixture::new();
    e.run(&["requeue", "--all"]).error();
    assert!(!e.root().exists());
}

fn clear_removes_what_its_state_says_and_prints_the_count(engine: Engine) {
    // Failed 1 and 2, claimed c, ready r, delayed d.
    let build = || {
        let (s, c) = two_failed(engine);
        let r = s.push_with(&[], "r");
        let d = s.push_with(&["--delay", "1h"], "d");
        let token = s.claim(&[]);
        assert_eq!(id_of(&token), c);
        (s, token, c, r, d)
    };
    let state_ids = |s: &Fixture| -> Vec<(u64, String)> {
        let mut v = s.states("default");
        v.sort();
        v
    };
    let named = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
        let mut v: Vec<(u64, String)> = v.iter().map(|(i, st)| (*i, st.to_string())).collect();
        v.sort();
        v
    };
    let (s, token, c, r, d) = build();
    s.prints(&["clear", "--state", "failed"], "2\n");
    assert_eq!(
        state_ids(&s),
        named(&[(c, "claimed"), (r, "ready"), (d, "delayed")])
    );
    s.prints(&["clear", "--state", "failed"], "0\n");
    s.run(&["clear", "--state", "claimed"]).error();
    s.prints(&["clear"], "2\n");
    assert_eq!(state_ids(&s), named(&[(c, "claimed")]));
    s.run(&["ack", &token]).success();
    assert_eq!(state_ids(&s), []);

    let (s, _token, c, _, _) = build();
    s.prints(&["clear", "--state", "delayed"], "1\n");
    s.prints(&["clear", "--state", "ready"], "1\n");
    assert_eq!(
        state_ids(&s),
        named(&[(1, "failed"), (2, "failed"), (c, "claimed")])
    );
    let (s, _token, c, _, _) = build();
    s.prints(&["clear", "--state", "all"], "4\n");
    assert_eq!(state_ids(&s), named(&[(c, "claimed")]));
}

fn list_state_shows_each_state_and_its_details(engine: Engine) {
    let (s, r) = two_failed(engine); // 1, 2 failed; r ready
    let p = s.push_with(&["--priority", "4", "--ttl", "1h"], "p4");
    let d = s.push_with(&["--delay", "1h"], "d");
    let last = s.push_with(&[], "last");
    let token = s.claim(&[]); // the priority-4 message comes first
    assert_eq!(id_of(&token), p);
    let ids = |state: &str| -> Vec<u64> {
        s.list_json("default", state)
            .iter()
            .map(|v| {
                assert_eq!(v["state"], state);
                v["id"].as_u64().unwrap()
            })
            .collect()
    };
    assert_eq!(ids("ready"), [r, last]);
    assert_eq!(ids("delayed"), [d]);
    assert_eq!(ids("claimed"), [p]);
    assert_eq!(ids("failed"), [1, 2]);
    let all: Vec<(u64, String)> = s.states("default");
    let expected: Vec<(u64, String)> = [
        (r, "ready"),
        (last, "ready"),
        (d, "delayed"),
        (p, "claimed"),
        (1, "failed"),
        (2, "failed"),
    ]
    .iter()
    .map(|(i, st)| (*i, st.to_string()))
    .collect();
    assert_eq!(all, expected);
    // Plain `list` is the ready state.
    assert_eq!(s.listed_ids("default"), [r, last]);

    // The JSON keys, in order, with until/expires/reason only when they apply.
    let out = s.run(&["list", "--state", "all", "--json"]);
    out.success();
    let text = out.text();
    let base = ["id", "state", "size", "enqueued", "attempts", "priority"];
    for (line, v) in text.lines().zip(json_lines(&out.stdout)) {
        let mut keys: Vec<&str> = base.to_vec();
        match v["state"].as_str().unwrap() {
            "delayed" => keys.push("until"),
            "claimed" => keys.extend(["until", "expires"]),
            "failed" => keys.push("reason"),
            _ => {}
        }
        keys.push("preview");
        let present: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(present, sorted, "keys of {line}");
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "keys out of order in {line}"
        );
    }
    let claimed = s.entry("default", p);
    assert_eq!(claimed["priority"], 4);
    assert_eq!(claimed["attempts"], 1);
    assert_eq!(claimed["preview"], "p4");
    let expires = parse_rfc3339(claimed["expires"].as_str().unwrap()).unwrap();
    assert!((now_secs() + 3600 - 60..=now_secs() + 3600 + 1).contains(&expires));

    // The text listing: the state after the id, the details before the preview.
    let out = s.run(&["list", "--state", "all"]);
    out.success();
    let rows: Vec<Vec<String>> = out
        .text()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 6, "{out:?}");
    for row in &rows {
        assert_eq!(row.len(), 6, "six tab-separated fields: {row:?}");
        assert!(parse_rfc3339(&row[3]).is_some(), "{row:?}");
    }
    let by_id: HashMap<u64, &Vec<String>> = rows
        .iter()
        .map(|row| (row[0].parse().unwrap(), row))
        .collect();
    assert_eq!(by_id[&r][1], "ready");
    assert_eq!(by_id[&d][1], "delayed");
    assert_eq!(by_id[&p][1], "claimed");
    assert_eq!(by_id[&1][1], "failed");
    assert!(by_id[&p][4].contains("attempts=1"), "{:?}", by_id[&p]);
    assert!(by_id[&p][4].contains("priority=4"), "{:?}", by_id[&p]);
    assert!(by_id[&p][4].contains("lease="), "{:?}", by_id[&p]);
    assert!(by_id[&d][4].contains("due="), "{:?}", by_id[&d]);
    assert!(
        by_id[&1][4].contains("reason=max-attempts"),
        "{:?}",
        by_id[&1]
    );
    assert_eq!(by_id[&last][5], "last");
    s.run(&["list", "--state", "bogus"]).error();
}

fn stats_count_every_state(engine: Engine) {
    let (s, r) = two_failed(engine); // 1, 2 failed; r ready
    s.push_with(&["--delay", "1h"], "d");
    s.push(&["r2"]);
    let token = s.claim(&[]);
    assert_eq!(id_of(&token), r);
    let out = s.run(&["stats", "--json"]);
    out.success();
    let v = &json_lines(&out.stdout)[0];
    assert_eq!(v["waiting"], 1);
    assert_eq!(v["delayed"], 1);
    assert_eq!(v["claimed"], 1);
    assert_eq!(v["failed"], 2);
    assert_eq!(s.len("default"), 1);
}

fn a_missing_required_argument_is_named(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x"]);
    let token = s.claim(&[]);
    for (args, missing) in [
        (vec!["extend", token.as_str()], "--lease"),
        (vec!["pop", "--timeout", "1s"], "--wait"),
        (vec!["claim", "--timeout", "1s"], "--wait"),
        (vec!["requeue"], "--all"),
        (vec!["run"], "COMMAND"),
    ] {
        let out = s.run(&args);
        out.error().stderr_has(missing);
    }
    assert_eq!(s.entry("default", 1)["state"], "claimed");
}

fn a_claimed_message_is_not_handed_to_a_waiting_consumer(engine: Engine) {
    let s = engine.fixture();
    s.push(&["mine"]);
    let token = s.claim(&["--lease", "1m"]);
    s.run(&["pop", "--wait", "--timeout", "1s"]).nothing();
    s.run(&["claim", "--wait", "--timeout", "500ms"]).nothing();
    s.run(&["ack", &token]).success();
    assert_eq!(s.states("default"), []);
}

// A claim whose token could not be written stayed claimed for its whole lease, an
// attempt spent, with nobody holding its token.
fn a_claim_whose_token_cannot_be_written_is_given_back(engine: Engine) {
    let s = engine.fixture();
    s.push(&["first", "second"]);
    let mut failures = vec![("spool claim >&-", "Bad file descriptor")];
    if std::path::Path::new("/dev/full").exists() {
        failures.push((
            "spool claim --lease 1h > /dev/full",
            "No space left on device",
        ));
    } else {
        crate::harness::skip("/dev/full does not exist");
    }
    for (script, cause) in failures {
        s.sh(script).run().error().stderr_has(&format!(
            "spool: write standard output: {cause} (message 1 stays in the queue)"
        ));
        s.assert_state(1, "ready", 0);
        assert!(s.list_json("default", "claimed").is_empty(), "{script}");
        assert_eq!(s.listed_ids("default"), [1, 2], "{script}");
    }
    // No attempt was spent: a claim allowed a single attempt still gets it.
    let token = s.claim(&["--max-attempts", "1"]);
    assert_eq!(id_of(&token), 1);
    s.assert_state(1, "claimed", 1);
}
