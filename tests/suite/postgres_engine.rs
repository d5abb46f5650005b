//! The PostgreSQL engine (`--url`): push, pop, peek, len, queues, clear, stats and list
//! against a real server, with the same output as the spool directory; the verbs still
//! to come fail with one line; a password in the URL is never shown.
//!
//! The server: `SPOOL_TEST_PG_URL` (a URL without a database name or parameters, such as
//! `postgres://postgres@localhost:5432`: each test makes a database of its own there),
//! else a throwaway cluster per test, made here with the PostgreSQL binaries (initdb as
//! the `postgres` user when run as root, a Unix socket in a temporary directory only,
//! stopped and removed when the test ends). Without either, the tests skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::harness::{Cmd, Fixture, Output, hide_times, is_one_spool_line, skip};

/// A database for one test: its URL, and the cluster to stop when the test ends.
struct Database {
    url: String,
    _cluster: Option<Cluster>,
}

impl Database {
    /// A fresh database, or `None` (after skipping) when no server can be had here.
    fn new() -> Option<Database> {
        if let Some(base) = std::env::var("SPOOL_TEST_PG_URL")
            .ok()
            .filter(|v| !v.is_empty())
        {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "spool_test_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let mut client = postgres::Client::connect(&base, postgres::NoTls)
                .unwrap_or_else(|e| panic!("SPOOL_TEST_PG_URL: {e}"));
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create a test database");
            let base = base.trim_end_matches('/');
            return Some(Database {
                url: format!("{base}/{name}"),
                _cluster: None,
            });
        }
        let Some(bin) = binaries() else {
            skip("no PostgreSQL binaries (initdb, pg_ctl) and no SPOOL_TEST_PG_URL");
            return None;
        };
        let cluster = Cluster::start(&bin);
        Some(Database {
            url: format!(
                "postgresql:///postgres?host={}&user=postgres",
                cluster.dir.path().display()
            ),
            _cluster: Some(cluster),
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

/// The directory of the newest PostgreSQL binaries installed, if any.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// A throwaway cluster listening only on a Unix socket in its own directory.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    fn start(bin: &Path) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        // initdb refuses root: as root, the cluster is the postgres user's.
        let as_postgres = rustix::process::geteuid().is_root();
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {:?}", dir.path());
        }
        let cluster = Cluster {
            dir,
            bin: bin.to_path_buf(),
            as_postgres,
        };
        let data = cluster.data();
        cluster.tool(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories={} -c fsync=off",
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("log");
        cluster.tool(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the cluster's tools (as `postgres` when root), panicking on failure.
    fn tool(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command.args(args).output().expect(name);
        assert!(
            out.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
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
fn postgres_says_what_is_not_supported_yet() {
    let Some(db) = Database::new() else { return };
    db.prints(&["push", "m"], "");
    for (args, verb) in [
        (&["claim"][..], "claim"),
        (&["ack", "1.0123456789abcdef"], "ack"),
        (&["nack", "1.0123456789abcdef"], "nack"),
        (&["extend", "1.0123456789abcdef", "--lease", "1m"], "extend"),
        (&["requeue", "--all"], "requeue"),
        (&["show", "1"], "show"),
        (&["run", "--", "true"], "run"),
        (&["fsck"], "fsck"),
    ] {
        db.run(args).exits_saying(
            2,
            &format!("spool: {verb} on PostgreSQL: not supported yet\n"),
        );
    }
    db.prints(&["len"], "1\n");
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
