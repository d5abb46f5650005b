//! The PostgreSQL engine (`--url`) against a real server: the same output as the spool
//! directory; what only a database does (claims held by a session, fenced tokens, a
//! schema of another version); a password in the URL is never shown.
//!
//! Each test has a database of its own on the run's shared cluster (`pg()`), or on
//! `SPOOL_TEST_PG_URL`; without either, the tests skip (and fail under CI=true).

use std::path::Path;

use crate::harness::{Cmd, Fixture, Output, Pg, hide_times, is_one_spool_line, pg};

/// A database for one test, on the run's shared cluster (or `SPOOL_TEST_PG_URL`),
/// dropped when the test ends.
struct Database {
    url: String,
    _pg: Pg,
}

impl Database {
    /// A fresh database, or `None` (after skipping) when no server can be had here.
    fn new() -> Option<Database> {
        let pg = pg()?;
        Some(Database {
            url: pg.url(),
            _pg: pg,
        })
    }

    /// `spool --url URL ARGS`.
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

    /// A statement run on the test's database directly.
    fn sql(&self, statement: &str) {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        client.batch_execute(statement).expect(statement);
    }
}

/// Runs `args` on the spool directory of `local` and on the database, and asserts the
/// same exit status, standard output and standard error (times hidden).
#[track_caller]
fn same(local: &Fixture, db: &Database, args: &[&str], stdin: &[u8]) {
    let a = local.cmd().args(args).stdin(stdin.to_vec()).run();
    let b = db.cmd(args).stdin(stdin.to_vec()).run();
    let shown = |o: &Output| {
        (
            o.code,
            hide_times(&String::from_utf8_lossy(&o.stdout)),
            hide_times(&o.stderr),
        )
    };
    assert_eq!(
        shown(&a),
        shown(&b),
        "spool {args:?}: local, then PostgreSQL"
    );
}

#[test]
fn postgres_gives_the_output_of_the_spool_directory() {
    let Some(db) = Database::new() else { return };
    let local = Fixture::new();
    let script: &[(&[&str], &[u8])] = &[
        (&["len"], b""),
        (&["pop"], b""),
        (&["queues"], b""),
        (&["push", "--print-id", "a", "b", "c"], b""),
        (&["push", "--priority", "5", "--print-id", "high"], b""),
        (&["push", "--lines", "--print-id"], b"one\ntwo\n"),
        (&["push", "--null", "--print-id"], b"n1\0n2\0"),
        (&["push", "--print-id"], b"from stdin"),
        (&["push", "--delay", "1h", "--print-id", "later"], b""),
        (&["-q", "other", "push", "x"], b""),
        (&["len"], b""),
        (&["queues"], b""),
        (&["list"], b""),
        (&["list", "--json"], b""),
        (&["list", "--state", "delayed"], b""),
        (&["list", "--state", "all", "--json"], b""),
        (&["peek", "-n", "3", "--lines"], b""),
        (&["pop"], b""),
        (&["pop", "-n", "3", "--lines"], b""),
        (&["pop", "-n", "2", "--null"], b""),
        (&["clear"], b""),
        (&["len"], b""),
        (&["clear", "--state", "delayed"], b""),
        (&["push", "--print-id", "after clear"], b""),
        (&["pop"], b""),
        (&["pop"], b""),
        (&["-q", "missing", "len"], b""),
        (&["-q", "missing", "pop"], b""),
        (&["-q", "missing", "list"], b""),
    ];
    for (args, stdin) in script {
        same(&local, &db, args, stdin);
    }
    // The counts of stats; rates are not recorded by the PostgreSQL engine yet.
    db.prints(&["push", "--delay", "1h", "d"], "");
    local.run(&["push", "--delay", "1h", "d"]).success();
    let counts = |out: Output| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        [
            "waiting", "delayed", "claimed", "failed", "bytes", "next_id",
        ]
        .map(|k| v[k].clone())
    };
    assert_eq!(
        counts(local.run(&["stats", "--json"])),
        counts(db.run(&["stats", "--json"]))
    );
}

#[test]
fn postgres_takes_by_priority_then_first_in_first_out() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "--print-id", "p0-a"], "1\n");
    db.prints(&["push", "--priority", "9", "--print-id", "p9-a"], "2\n");
    db.prints(&["push", "--print-id", "p0-b"], "3\n");
    db.prints(
        &["push", "--priority", "3", "--print-id", "p3-a", "p3-b"],
        "4\n5\n",
    );
    db.prints(&["push", "--priority", "9", "--print-id", "p9-b"], "6\n");
    db.prints(&["len"], "6\n");
    db.prints(
        &["pop", "-n", "10", "--lines"],
        "p9-a\np9-b\np3-a\np3-b\np0-a\np0-b\n",
    );
    db.run(&["pop"]).nothing();
    db.prints(&["len"], "0\n");
}

#[test]
fn postgres_keeps_binary_payloads_exactly() {
    let Some(db) = Database::new() else { return };
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    db.cmd(&["push"]).stdin(payload.clone()).prints("");
    db.cmd(&["push"]).stdin(Vec::new()).prints("");
    db.prints(&["peek"], &payload);
    db.prints(&["len"], "2\n");
    // A pop that cannot write the message out leaves it in the queue.
    db.cmd(&["pop"])
        .stdout_file(Path::new("/dev/full"))
        .run()
        .error();
    db.prints(&["len"], "2\n");
    db.prints(&["pop"], &payload);
    db.prints(&["pop"], "");
    db.run(&["pop"]).nothing();
}

#[test]
fn postgres_clears_and_counts() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "a", "b", "c"], "");
    db.prints(&["push", "--delay", "1h", "d"], "");
    let text = db.run(&["stats"]).success().text();
    assert!(
        text.contains("waiting:  3\n") && text.contains("delayed:  1\n"),
        "{text}"
    );
    assert!(
        text.contains("bytes:    3\n") && text.contains("next id:  5\n"),
        "{text}"
    );
    db.prints(&["clear", "--state", "delayed"], "1\n");
    db.prints(&["len"], "3\n");
    db.prints(&["clear"], "3\n");
    db.prints(&["len"], "0\n");
    db.prints(&["push", "--print-id", "e"], "5\n");
}

#[test]
fn postgres_makes_expired_messages_dead_letters() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "--ttl", "1h", "keeps"], "");
    db.prints(&["push", "gone"], "");
    // An expiry in the past, as if the hour had passed.
    db.sql("UPDATE spool.messages SET expires_at = now() - interval '1 second' WHERE id = 2");
    db.prints(&["pop", "-n", "5", "--lines"], "keeps\n");
    let failed = db
        .run(&["list", "--state", "failed", "--json"])
        .success()
        .text();
    assert!(
        failed.contains("\"id\":2") && failed.contains("expired"),
        "{failed}"
    );
}

#[test]
fn postgres_delayed_messages_join_the_back_when_due() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "--delay", "1h", "--print-id", "delayed"], "1\n");
    db.prints(&["push", "--print-id", "ready"], "2\n");
    db.run(&["pop", "-n", "5", "--lines"])
        .success()
        .stdout_is("ready\n");
    db.run(&["pop"]).nothing();
    db.sql("UPDATE spool.messages SET due_at = now() - interval '1 second'");
    // Its new place in line takes a number from the counter, as in a spool directory.
    db.prints(&["push", "--print-id", "pushed after it fell due"], "4\n");
    db.prints(
        &["pop", "-n", "5", "--lines"],
        "delayed\npushed after it fell due\n",
    );
}

#[test]
fn postgres_refuses_a_newer_schema() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "m"], "");
    db.sql("UPDATE spool.version SET version = 99");
    let out = db.run(&["len"]);
    out.error();
    assert!(
        out.stderr.contains("newer than this spool knows"),
        "{out:?}"
    );
}

#[test]
fn postgres_fences_the_tokens_of_earlier_claims() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "m"], "");
    let first = db.run(&["claim", "--lease", "1ms"]).success().token();
    // The lease ended: the next claim takes the message again, with a token of its own.
    let second = db.run(&["claim", "--lease", "10m"]).success().token();
    assert_ne!(first, second);
    assert!(second.starts_with("1."), "{second}");
    for verb in ["ack", "nack"] {
        db.run(&[verb, &first]).exits_saying(
            2,
            &format!(
                "spool: token {first}: message 1 was claimed again since: this token is no longer valid\n"
            ),
        );
    }
    db.run(&["extend", &first, "--lease", "1m"]).exits_saying(
        2,
        &format!(
            "spool: token {first}: message 1 was claimed again since: this token is no longer valid\n"
        ),
    );
    db.prints(&["len"], "0\n");
    db.prints(&["ack", &second], "");
    db.run(&["ack", &second]).exits_saying(
        2,
        &format!(
            "spool: token {second}: no claim of message 1 has this token: its lease ended, or it was acked or nacked\n"
        ),
    );
    db.prints(&["list", "--state", "all"], "");
}

#[test]
fn postgres_gives_back_the_claims_of_a_run_that_died_at_once() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "job"], "");
    // run holds the claim by its session: no lease to wait for when it dies.
    let tmp = tempfile::tempdir().expect("tempdir");
    let pid_file = tmp.path().join("pid");
    let script = format!(
        "echo $$ > {}; exec sleep 600 >/dev/null 2>&1",
        pid_file.display()
    );
    let run = db
        .cmd(&["run", "--", "sh", "-c", &script])
        .may_hang()
        .spawn();
    let mut claimed = false;
    for _ in 0..600 {
        let out = db.run(&["stats", "--json"]);
        if out.text().contains("\"claimed\":1") {
            claimed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(claimed, "run never claimed the message");
    db.run(&["pop"]).exits_saying(1, "");
    crate::harness::send_signal(run.pid(), rustix::process::Signal::KILL);
    run.finish().killed_by(rustix::process::Signal::KILL);
    // Its command, in a process group of its own, outlived it: end it too.
    let command: u32 = std::fs::read_to_string(&pid_file)
        .expect("the command's pid")
        .trim()
        .parse()
        .expect("a pid");
    crate::harness::send_signal(command, rustix::process::Signal::KILL);
    // The server ends the session and frees its lock; the next take gives the claim back.
    let mut popped = None;
    for _ in 0..600 {
        let out = db.run(&["pop"]);
        if out.code == 0 {
            popped = Some(out);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let popped = popped.expect("the claim of the dead run never came back");
    popped.stdout_is("job");
    db.prints(&["list", "--state", "all"], "");
}

#[test]
fn postgres_runs_commands_and_settles_their_claims() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "ok", "fail", "ok2"], "");
    let out = db.run(&[
        "run",
        "--max-attempts",
        "1",
        "--",
        "sh",
        "-c",
        "m=$(cat); echo \"$m\"; [ \"$m\" != fail ]",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    out.stdout_is("ok\nfail\nok2\n");
    let failed = db.run(&["list", "--state", "failed", "--json"]);
    failed.success();
    assert!(failed.text().contains("\"id\":2"), "{failed:?}");
    db.prints(&["requeue", "2"], "1\n");
    db.prints(&["pop"], "fail");
}

#[test]
fn postgres_fsck_gives_back_claims_whose_lease_ended() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "m"], "");
    db.run(&["claim", "--lease", "1ms"]).success();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = db.run(&["fsck"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.text().ends_with(": its claim's lease ended\n"),
        "{out:?}"
    );
    let out = db.run(&["fsck", "--repair"]);
    out.success();
    assert!(
        out.text().ends_with(
            ": its claim's lease ended (repaired: given back to its place in the queue)\n"
        ),
        "{out:?}"
    );
    db.prints(&["fsck"], "");
    db.prints(&["len"], "1\n");
    // Ids would be reused if the counter fell behind them: fsck says so and mends it.
    db.sql("UPDATE spool.queues SET next_id = 1");
    let out = db.run(&["fsck", "--repair"]);
    out.success();
    assert!(out.text().contains("next_id is 1, not past the highest id or position in use (1): ids would be reused (repaired: next_id set to 2)"), "{out:?}");
    db.prints(&["push", "--print-id", "n"], "2\n");
}

#[test]
fn a_password_in_the_url_is_never_shown() {
    let secret = "s3cret-pw";
    for url in [
        format!("postgres://user:{secret}@nonexistent.invalid/db"),
        format!("postgresql://user:{secret}@127.0.0.1:1/db?connect_timeout=5"),
        format!("postgresql:///db?host=/nonexistent-socket-dir&user=u&password={secret}"),
        format!("mysql://user:{secret}@localhost/db"),
        format!("postgres://user:{secret}@localhost/db?nonsense=1"),
    ] {
        for args in [&["len"][..], &["push", "m"], &["queues"], &["pop"]] {
            let out = Cmd::bare().arg("--url").arg(&url).args(args).run();
            assert_eq!(out.code, 2, "{url} {args:?}: {out:?}");
            assert!(is_one_spool_line(&out.stderr), "{url} {args:?}: {out:?}");
            assert!(!out.stderr.contains(secret), "{url} {args:?}: {out:?}");
            assert!(out.stderr.contains("***"), "{url} {args:?}: {out:?}");
        }
        let out = Cmd::bare().env("SPOOL_URL", &url).arg("len").run();
        assert_eq!(out.code, 2, "{out:?}");
        assert!(!out.stderr.contains(secret), "{out:?}");
    }
}

#[test]
fn only_postgres_urls_are_taken() {
    Cmd::bare()
        .args(["--url", "redis://localhost", "len"])
        .run()
        .exits_saying(
            2,
            "spool: --url: not a PostgreSQL URL (postgres://… or postgresql://…): \"redis://localhost\"\n",
        );
    let out = Cmd::bare()
        .env("SPOOL_URL", "file:///tmp/x")
        .arg("len")
        .run();
    out.error();
    assert!(out.stderr.starts_with("spool: --url: "), "{out:?}");
    // --dir wins over $SPOOL_URL; --url with --dir is a usage error.
    let s = Fixture::new();
    s.cmd()
        .env("SPOOL_URL", "postgres://nowhere.invalid/db")
        .arg("len")
        .prints("0\n");
    s.cmd()
        .args(["--url", "postgres://nowhere.invalid/db", "len"])
        .run()
        .error();
}

#[test]
fn postgres_consumers_at_once_take_each_message_once() {
    let Some(db) = Database::new() else { return };
    // Producers at once: each one's messages stay in its order.
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let lines: String = (0..100).map(|i| format!("p{p}-{i:03}\n")).collect();
            db.cmd(&["push", "--lines"]).stdin(lines).spawn()
        })
        .collect();
    for running in producers {
        running.finish().success();
    }
    db.prints(&["len"], "400\n");
    // Consumers at once: SKIP LOCKED gives each its own messages.
    let consumers: Vec<_> = (0..4)
        .map(|_| db.cmd(&["pop", "-n", "1000", "--lines"]).spawn())
        .collect();
    let mut all: Vec<String> = Vec::new();
    for running in consumers {
        let out = running.finish();
        // A consumer may find every message taken by the others: exit 1, nothing.
        if out.code == 1 {
            out.nothing();
            continue;
        }
        out.success();
        let got: Vec<String> = out.text().lines().map(str::to_string).collect();
        for p in 0..4 {
            let mine: Vec<&String> = got
                .iter()
                .filter(|m| m.starts_with(&format!("p{p}-")))
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "out of order: {mine:?}"
            );
        }
        all.extend(got);
    }
    all.sort();
    let expected: Vec<String> = (0..4)
        .flat_map(|p| (0..100).map(move |i| format!("p{p}-{i:03}")))
        .collect();
    assert_eq!(all, expected, "each message popped exactly once");
    db.run(&["pop"]).nothing();
}
