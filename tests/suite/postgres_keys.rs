//! Deduplication keys and per-message options on the PostgreSQL engine: `push --key`
//! against a real server (a key held while its message is ready, delayed or claimed,
//! free once it is consumed or a dead letter; kept through a nack; one message for
//! pushers racing with one key), the upgrade of a version 2 schema, and, through the
//! library, batches whose messages have options of their own (by statement and by COPY),
//! claims' priority and expiry, and a queue's identity.

use std::time::Duration;

use spool::store::postgres::Postgres;
use spool::store::{
    Batch, Claim, Engine, Hold, Meta, PushOptions, Queue, State, TakeOptions, now_ms,
};

use crate::harness::{Cmd, Output, Pg, pg};

/// A database for one test, dropped when the test ends.
struct Database {
    url: String,
    pg: Pg,
}

impl Database {
    fn new() -> Option<Database> {
        let pg = pg()?;
        Some(Database { url: pg.url(), pg })
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::bare().arg("--url").arg(&self.url).args(args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).run()
    }

    #[track_caller]
    fn prints(&self, args: &[&str], expected: impl AsRef<[u8]>) -> Output {
        self.cmd(args).prints(expected)
    }

    fn sql(&self, statement: &str) -> String {
        self.pg.psql(self.pg.db(), statement)
    }

    fn engine(&self) -> Postgres {
        Postgres::new(&self.url).expect("the engine")
    }
}

/// Asserts that a push with a held key exited 0 and said which message holds it.
#[track_caller]
fn duplicate(out: &Output, queue: &str, id: u64, key: &str) {
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        format!("spool: push to {queue}: message {id} holds the key {key}: nothing was pushed\n"),
        "{out:?}"
    );
}

#[test]
fn postgres_a_held_key_pushes_nothing_and_names_its_holder() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "--key", "order-7", "--print-id", "first"], "1\n");
    let out = db.run(&["push", "--key", "order-7", "--print-id", "second"]);
    duplicate(&out, "default", 1, "order-7");
    assert_eq!(out.text(), "1\n");
    // From standard input too, and without --print-id nothing is printed.
    let out = db
        .cmd(&["push", "--key", "order-7"])
        .stdin(b"third".to_vec())
        .run();
    duplicate(&out, "default", 1, "order-7");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(db.sql("SELECT count(*) FROM spool.messages"), "1\n");
    // Another key, another queue: added.
    db.prints(&["push", "--key", "order-8", "--print-id", "x"], "2\n");
    db.prints(
        &["-q", "other", "push", "--key", "order-7", "--print-id", "y"],
        "1\n",
    );
    // Unkeyed messages never collide.
    db.prints(&["push", "--print-id", "a", "b"], "3\n4\n");
    db.prints(&["pop", "-n", "9", "--lines"], "first\nx\na\nb\n");
}

#[test]
fn postgres_a_key_is_free_once_its_message_is_popped_acked_or_failed() {
    let Some(db) = Database::new() else { return };
    let key = ["push", "--key", "k", "--print-id"];
    let push = |payload: &str| db.run(&[&key[..], &[payload]].concat());
    assert_eq!(push("one").text(), "1\n");
    db.prints(&["pop"], "one");
    assert_eq!(push("two").text(), "2\n");
    // Claimed, it holds the key; acked, it does not.
    let token = db.run(&["claim"]).success().text();
    let token = token.trim();
    duplicate(&push("dup"), "default", 2, "k");
    db.run(&["ack", token]).success();
    assert_eq!(push("three").text(), "3\n");
    // A dead letter (expired) holds no key.
    db.run(&["pop"]).success();
    db.prints(
        &["push", "--key", "k", "--ttl", "1ms", "--print-id", "soon"],
        "4\n",
    );
    std::thread::sleep(Duration::from_millis(20));
    db.run(&["pop"]).nothing();
    assert_eq!(
        db.sql("SELECT state, reason, key FROM spool.messages"),
        "failed|expired|k\n"
    );
    assert_eq!(push("five").text(), "5\n");
    // Requeued while message 5 holds its key, the dead letter comes back without it.
    db.prints(&["requeue", "4"], "1\n");
    assert_eq!(
        db.sql("SELECT id, state, coalesce(key, '-') FROM spool.messages ORDER BY id"),
        "4|ready|-\n5|ready|k\n"
    );
    duplicate(&push("six"), "default", 5, "k");
    // Requeued with its key free, it keeps it; of two dead letters with one key, the
    // first keeps it.
    db.run(&["clear"]).success();
    let mut dead = Vec::new();
    for payload in ["a", "b"] {
        let out = db.run(&["push", "--key", "k", "--ttl", "1ms", "--print-id", payload]);
        dead.push(out.success().text().trim().to_string());
        std::thread::sleep(Duration::from_millis(20));
        db.run(&["pop"]).nothing();
    }
    db.run(&["requeue", "--all"]).success();
    assert_eq!(
        db.sql("SELECT id, state, coalesce(key, '-') FROM spool.messages ORDER BY id"),
        format!("{}|ready|k\n{}|ready|-\n", dead[0], dead[1])
    );
    duplicate(&push("c"), "default", dead[0].parse().unwrap(), "k");
}

#[test]
fn postgres_a_key_is_held_while_delayed_and_kept_through_nack_and_extend() {
    let Some(db) = Database::new() else { return };
    db.prints(
        &["push", "--key", "later", "--delay", "1h", "--print-id", "d"],
        "1\n",
    );
    duplicate(
        &db.run(&["push", "--key", "later", "x"]),
        "default",
        1,
        "later",
    );
    db.prints(&["push", "--key", "now", "--print-id", "n"], "2\n");
    let token = db.run(&["claim", "--lease", "1h"]).success().text();
    let token = token.trim().to_string();
    db.run(&["extend", &token, "--lease", "2h"]).success();
    duplicate(&db.run(&["push", "--key", "now", "x"]), "default", 2, "now");
    db.run(&["nack", &token]).success();
    duplicate(&db.run(&["push", "--key", "now", "x"]), "default", 2, "now");
    let token = db.run(&["claim"]).success().text();
    db.run(&["nack", "--delay", "1h", token.trim()]).success();
    duplicate(&db.run(&["push", "--key", "now", "x"]), "default", 2, "now");
    assert_eq!(
        db.sql("SELECT id, state, key FROM spool.messages ORDER BY id"),
        "1|delayed|later\n2|delayed|now\n"
    );
}

#[test]
fn postgres_pushers_racing_with_one_key_add_one_message() {
    let Some(db) = Database::new() else { return };
    let outs: Vec<Output> = std::thread::scope(|s| {
        let running: Vec<_> = (0..8)
            .map(|i| {
                let db = &db;
                s.spawn(move || db.run(&["push", "--key", "race", "--print-id", &format!("m{i}")]))
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let id = db.sql("SELECT id FROM spool.messages");
    assert_eq!(id.lines().count(), 1, "{id}");
    let mut added = 0;
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.text(), id, "{out:?}");
        if out.stderr.is_empty() {
            added += 1;
        } else {
            duplicate(out, "default", id.trim().parse().unwrap(), "race");
        }
    }
    assert_eq!(added, 1, "{outs:?}");
}

#[test]
fn postgres_list_shows_keys() {
    let Some(db) = Database::new() else { return };
    db.run(&["push", "--key", "a:b@c", "keyed"]).success();
    db.run(&["push", "plain"]).success();
    let out = db.run(&["list", "--state", "all"]).success().text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(" key=a:b@c"), "{out}");
    assert!(!lines[1].contains("key="), "{out}");
    let out = db.run(&["list", "--json"]).success().text();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("\"key\":\"a:b@c\""), "{out}");
    assert!(!lines[1].contains("\"key\""), "{out}");
}

/// The tables of schema version 2, as its binaries made them.
const VERSION_2: &str = r#"
CREATE SCHEMA spool;
CREATE TABLE spool.version (version integer NOT NULL);
CREATE TABLE spool.queues (
    name text PRIMARY KEY COLLATE "C",
    next_id bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    published bytea
);
CREATE TABLE spool.messages (
    queue text NOT NULL COLLATE "C",
    id bigint NOT NULL,
    position bigint,
    priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    state text NOT NULL CHECK (state IN ('ready', 'delayed', 'claimed', 'failed')),
    payload bytea NOT NULL,
    enqueued_at timestamptz NOT NULL,
    due_at timestamptz,
    expires_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    token text,
    lease_until timestamptz,
    holder bigint,
    reason text,
    PRIMARY KEY (queue, id)
);
CREATE INDEX messages_ready ON spool.messages (queue, priority DESC, position)
    WHERE state = 'ready';
CREATE INDEX messages_delayed ON spool.messages (queue, due_at, id) WHERE state = 'delayed';
CREATE INDEX messages_expiring ON spool.messages (queue, expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'delayed');
CREATE INDEX messages_leased ON spool.messages (queue, lease_until)
    WHERE state = 'claimed' AND holder IS NULL;
CREATE INDEX messages_held ON spool.messages (holder)
    WHERE state = 'claimed' AND holder IS NOT NULL;
CREATE TABLE spool.holders (key bigint PRIMARY KEY, since timestamptz NOT NULL DEFAULT now());
CREATE TABLE spool.consumed (queue text PRIMARY KEY COLLATE "C", record bytea);
INSERT INTO spool.version VALUES (2);
INSERT INTO spool.queues (name, next_id) VALUES ('default', 5);
INSERT INTO spool.messages (queue, id, position, priority, state, payload, enqueued_at,
                            reason) VALUES
    ('default', 1, 1, 0, 'ready', '\x6669727374', now(), NULL),
    ('default', 2, 2, 0, 'ready', '\x00ff0a0d00', now(), NULL),
    ('default', 3, NULL, 0, 'failed', '\x6465616403', now(), 'expired'),
    ('default', 4, 4, 4, 'ready', '\x686967680a', now(), NULL);
"#;

#[test]
fn postgres_a_schema_of_version_2_is_upgraded_with_its_messages() {
    let Some(db) = Database::new() else { return };
    db.sql(VERSION_2);
    // The first use, a reading one, upgrades it.
    db.prints(&["len"], "3\n");
    assert_eq!(db.sql("SELECT version FROM spool.version"), "3\n");
    assert_eq!(
        db.sql(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_schema = 'spool' AND table_name = 'messages' AND column_name = 'key'"
        ),
        "text\n"
    );
    assert_eq!(
        db.sql(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'spool' \
             AND indexname = 'messages_key'"
        ),
        "CREATE UNIQUE INDEX messages_key ON spool.messages USING btree (queue, key) \
         WHERE ((key IS NOT NULL) AND (state <> 'failed'::text))\n"
    );
    // The messages are there, without keys; ids go on from the counter.
    db.prints(&["push", "--key", "k", "--print-id", "new"], "5\n");
    duplicate(&db.run(&["push", "--key", "k", "again"]), "default", 5, "k");
    db.prints(&["requeue", "3"], "1\n");
    for payload in [
        &b"high\n"[..],
        b"first",
        b"\x00\xff\n\r\x00",
        b"new",
        b"dead\x03",
    ] {
        db.prints(&["pop"], payload);
    }
    db.run(&["pop"]).nothing();
}

#[test]
fn postgres_batches_carry_each_messages_options_and_keys() {
    let Some(db) = Database::new() else { return };
    let engine = db.engine();
    let queue = engine.create("mixed").unwrap();
    let now = now_ms();
    let plain = PushOptions {
        priority: 1,
        ..PushOptions::default()
    };
    let meta = |priority, due: Option<u64>, expires: Option<u64>, key: Option<&str>| Meta {
        opts: PushOptions {
            priority,
            due,
            expires,
        },
        key: key.map(str::to_string),
    };
    // In one statement, then (over 1,000 messages) by COPY.
    for (round, filler) in [(0u64, 0usize), (1, 1500)] {
        let mut batch = queue.stage(true).unwrap();
        let mut add = |meta: Option<Meta>, payload: &str| {
            let write = |sink: &mut spool::store::Sink<'_>| sink.write_all(payload.as_bytes());
            match meta {
                Some(meta) => batch.add_with(meta, write).unwrap(),
                None => batch.add(write).unwrap(),
            }
        };
        let k = |name: &str| format!("{name}{round}");
        add(
            Some(meta(7, None, Some(now + 3_600_000), Some(&k("a")))),
            "high",
        );
        add(None, "plain");
        add(
            Some(meta(0, Some(now + 3_600_000), None, Some(&k("b")))),
            "later",
        );
        add(Some(meta(3, None, None, Some(&k("a")))), "dup-in-batch");
        add(Some(meta(2, None, None, None)), "own-no-key");
        for _ in 0..filler {
            add(None, "filler");
        }
        let published = batch.publish(plain).unwrap();
        let first = published.runs[0].0;
        assert_eq!(published.len(), 4 + filler as u64, "{published:?}");
        assert_eq!(
            published.runs,
            [(first, 4 + filler as u64)],
            "the duplicate takes no id"
        );
        assert_eq!(published.duplicates.len(), 1, "{published:?}");
        assert_eq!(published.duplicates[0].index, 3);
        assert_eq!(published.duplicates[0].id, first);
        // A second batch: both keys held, by a ready and a delayed message.
        let mut batch = queue.stage(true).unwrap();
        for key in ["a", "b"] {
            batch
                .add_with(meta(0, None, None, Some(&k(key))), |sink| {
                    sink.write_all(b"again")
                })
                .unwrap();
        }
        let again = batch.publish(plain).unwrap();
        assert!(again.is_empty(), "{again:?}");
        let held: Vec<u64> = again.duplicates.iter().map(|d| d.id).collect();
        assert_eq!(held, [first, first + 2]);
        // What is in the queue: states, priorities, keys, expiry.
        let mut seen = Vec::new();
        queue
            .walk(&State::ALL, |info, _| {
                if info.id >= first && info.id < first + 4 {
                    seen.push((
                        info.id - first,
                        info.state,
                        info.priority,
                        info.key.clone(),
                        info.expires.is_some(),
                        info.until.is_some(),
                    ));
                }
                Ok(true)
            })
            .unwrap();
        seen.sort_by_key(|s| s.0);
        assert_eq!(
            seen,
            [
                (0, State::Ready, 7, Some(k("a")), true, false),
                (1, State::Ready, 1, None, false, false),
                (2, State::Delayed, 0, Some(k("b")), false, true),
                (3, State::Ready, 2, None, false, false),
            ]
        );
        // Taken in order: priority 7 first, with its priority and expiry.
        let taken = queue
            .take(
                3,
                TakeOptions {
                    hold: Hold::Lease { lease_ms: 60_000 },
                    max_attempts: None,
                },
            )
            .unwrap();
        let got: Vec<(u64, u8, bool, Option<String>)> = taken
            .iter()
            .map(|c| {
                (
                    c.id() - first,
                    c.priority(),
                    c.expires().is_some(),
                    c.key().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, 7, true, Some(k("a"))),
                (3, 2, false, None),
                (1, 1, false, None)
            ]
        );
        let expires = taken[0].expires().unwrap();
        assert!(expires.abs_diff(now + 3_600_000) < 1000, "{expires}");
        for claim in taken {
            queue.ack(&claim.token()).unwrap();
        }
        queue.clear(&[State::Ready]).unwrap();
    }
}

#[test]
fn postgres_a_queue_has_an_identity_of_its_own() {
    let Some(db) = Database::new() else { return };
    let engine = db.engine();
    let a = engine.create("a").unwrap().identity().unwrap();
    assert_eq!(a.len(), 16, "{a}");
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
    // Stable, from another connection too.
    assert_eq!(engine.open("a").unwrap().unwrap().identity().unwrap(), a);
    assert_eq!(db.engine().create("a").unwrap().identity().unwrap(), a);
    let b = engine.create("b").unwrap().identity().unwrap();
    assert_ne!(a, b);
    // A queue removed and made again is another.
    db.sql("DELETE FROM spool.queues WHERE name = 'a'");
    std::thread::sleep(Duration::from_millis(2));
    let again = db.engine().create("a").unwrap().identity().unwrap();
    assert_ne!(again, a);
    // The same in another database of the same server.
    let Some(other) = Database::new() else { return };
    let elsewhere = other.engine().create("b").unwrap().identity().unwrap();
    assert_ne!(elsewhere, b);
}

#[test]
fn postgres_fsck_finds_messages_sharing_a_key() {
    let Some(db) = Database::new() else { return };
    db.run(&["push", "a", "b", "c"]).success();
    db.prints(&["fsck"], "");
    // Only a table without the unique index can hold them.
    db.sql(
        "DROP INDEX spool.messages_key; \
         UPDATE spool.messages SET key = 'k' WHERE id IN (1, 3)",
    );
    let out = db.run(&["fsck"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.text().ends_with(": messages 1 3 hold the same key k\n"),
        "{out:?}"
    );
    let out = db.run(&["fsck", "--repair"]);
    out.success();
    assert!(
        out.text().ends_with(
            ": messages 1 3 hold the same key k (repaired: all but the first lose the key)\n"
        ),
        "{out:?}"
    );
    db.prints(&["fsck"], "");
    assert_eq!(
        db.sql("SELECT id, coalesce(key, '-') FROM spool.messages ORDER BY id"),
        "1|k\n2|-\n3|-\n"
    );
}
