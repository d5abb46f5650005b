//! Bad input for the PostgreSQL engine: URLs that are malformed or not PostgreSQL's, a
//! database or a server that is not there, a role without the rights it needs, a schema
//! newer than the binary, one of version 1 (upgraded, its messages kept), tables changed
//! by hand. Every error is one `spool: ` line and exit 2, and never shows a password;
//! nothing is changed by a command that fails. And a role with only the privileges
//! docs/FORMAT.md lists ("Privileges") can do everything.

use std::net::TcpListener;

use crate::harness::{Cmd, Output, Pg, is_one_spool_line, pg};

/// The password every URL of these tests carries: it must never be shown.
const SECRET: &str = "s3cret-Pw";

/// Runs `spool --url URL ARGS...`.
fn spool(url: &str, args: &[&str]) -> Output {
    Cmd::bare().arg("--url").arg(url).args(args).run()
}

/// Asserts exit 2, nothing on standard output, one `spool: ` line on standard error that
/// contains `says`, no panic and no password.
#[track_caller]
fn refused(out: &Output, says: &str) {
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(is_one_spool_line(&out.stderr), "{out:?}");
    assert!(out.stderr.contains(says), "expected {says:?}:\n{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert!(
        !out.stderr.contains(SECRET),
        "the password is shown:\n{out:?}"
    );
}

/// `url` with `user` and [`SECRET`] as its role and password (a `user=` parameter is
/// replaced, else the user part of the URL).
fn as_role(url: &str, user: &str) -> String {
    if let Some(at) = url.find("user=") {
        let end = url[at..].find('&').map_or(url.len(), |e| at + e);
        return format!("{}user={user}&password={SECRET}{}", &url[..at], &url[end..]);
    }
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let rest = match rest.find('@') {
        Some(at) if rest[..at].find('/').is_none() => &rest[at + 1..],
        _ => rest,
    };
    format!("{scheme}://{user}:{SECRET}@{rest}")
}

/// Every command that reaches the store, with its arguments.
const COMMANDS: &[&[&str]] = &[
    &["push", "new"],
    &["pop"],
    &["peek"],
    &["len"],
    &["list", "--state", "all"],
    &["stats"],
    &["stats", "--all"],
    &["clear"],
    &["clear", "--state", "all"],
    &["queues"],
    &["claim"],
    &["show", "1"],
    &["ack", "1.0123456789abcdef"],
    &["nack", "1.0123456789abcdef"],
    &["extend", "1.0123456789abcdef", "--lease", "1m"],
    &["requeue", "--all"],
    &["run", "--", "true"],
    &["fsck"],
];

/// What a database holds of spool's, as text: the version, the queues and every message
/// (payloads in hexadecimal), to compare before and after.
fn snapshot(pg: &Pg) -> String {
    pg.psql(
        pg.db(),
        "SELECT 'version', version::text FROM spool.version; \
         SELECT name, next_id FROM spool.queues ORDER BY name; \
         SELECT queue, id, position, priority, state, encode(payload, 'hex'), attempts, \
                enqueued_at, due_at, expires_at, reason \
         FROM spool.messages ORDER BY queue, id",
    )
}

/// A role made for one test (roles belong to the whole server), dropped with what it
/// owns and its privileges when the test ends, before the test's database.
struct Role<'a> {
    pg: &'a Pg,
    name: String,
}

impl<'a> Role<'a> {
    /// A new role that may log in, and nothing else.
    fn login_only(pg: &'a Pg) -> Role<'a> {
        let name = format!("r_{}", pg.db());
        pg.psql(pg.db(), &format!("CREATE ROLE {name} LOGIN"));
        Role { pg, name }
    }

    /// The test database's URL as this role, with a password.
    fn url(&self) -> String {
        as_role(&self.pg.url(), &self.name)
    }

    /// Runs `sql` as the server's superuser, `{role}` standing for this role's name.
    fn grant(&self, sql: &str) {
        self.pg
            .psql(self.pg.db(), &sql.replace("{role}", &self.name));
    }
}

impl Drop for Role<'_> {
    fn drop(&mut self) {
        let _ = crate::harness::psql(
            &self.pg.url(),
            &format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name),
        );
    }
}

#[test]
fn a_malformed_url_is_a_usage_error_that_masks_its_password() {
    for (url, says) in [
        (
            format!("postgres://u:{SECRET}@host:notaport/db"),
            "invalid port \"notaport\"",
        ),
        (
            format!("postgres://u:{SECRET}@host/db?sslmode=sometimes"),
            "invalid sslmode \"sometimes\" (disable, allow, prefer, require, verify-ca or verify-full)",
        ),
        (
            format!("postgresql://u:{SECRET}@h/db?connect_timeout=soon"),
            "invalid value for option `connect_timeout`",
        ),
        (format!("postgres://u:{SECRET}@[::1/db"), "invalid host"),
    ] {
        for args in [&["push", "m"][..], &["len"], &["pop"], &["queues"]] {
            let out = spool(&url, args);
            refused(&out, says);
            assert!(
                out.stderr
                    .starts_with("spool: --url: invalid URL \"postgres"),
                "{out:?}"
            );
            assert!(out.stderr.contains("***"), "{out:?}");
        }
        let out = Cmd::bare().env("SPOOL_URL", &url).arg("len").run();
        refused(&out, says);
    }
}

#[test]
fn a_url_that_is_not_postgresql_is_refused() {
    for url in [
        format!("mysql://u:{SECRET}@localhost/db"),
        "http://localhost/db".to_string(),
        "/var/lib/spool".to_string(),
        "postgres:/db".to_string(),
        "POSTGRES://localhost/db".to_string(),
    ] {
        for args in [&["push", "m"][..], &["len"]] {
            refused(
                &spool(&url, args),
                "spool: --url: not a PostgreSQL URL (postgres://… or postgresql://…): ",
            );
        }
    }
}

#[test]
fn a_database_that_is_not_there_is_named() {
    let Some(pg) = pg() else { return };
    let url = as_role(&pg.url_of("no_such_database"), "postgres");
    for args in [
        &["push", "m"][..],
        &["len"],
        &["pop"],
        &["queues"],
        &["stats"],
    ] {
        let out = spool(&url, args);
        refused(&out, "database \"no_such_database\" does not exist");
        assert!(out.stderr.starts_with("spool: connect postgres"), "{out:?}");
    }
    // Nothing made it: the server has no such database still.
    assert_eq!(
        pg.psql(
            pg.db(),
            "SELECT count(*) FROM pg_database WHERE datname = 'no_such_database'"
        ),
        "0\n"
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_in_one_line() {
    // A socket directory where nothing listens.
    let empty = tempfile::tempdir().expect("tempdir");
    let socket = format!(
        "postgres:///db?host={}&user=u&password={SECRET}",
        empty.path().display()
    );
    // A TCP port that was just open, now closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tcp = format!("postgres://u:{SECRET}@127.0.0.1:{port}/db?connect_timeout=10");
    for (url, says) in [
        (socket, "No such file or directory"),
        (tcp, "Connection refused"),
    ] {
        for args in [&["push", "m"][..], &["len"], &["pop"], &["queues"]] {
            let out = spool(&url, args);
            refused(&out, says);
            assert!(
                out.stderr.starts_with("spool: connect postgres://"),
                "{out:?}"
            );
            assert!(out.stderr.contains("***"), "{out:?}");
        }
    }
}

#[test]
fn a_role_without_rights_is_told_which_privilege_it_lacks() {
    let Some(pg) = pg() else { return };
    let role = Role::login_only(&pg);
    let url = role.url();
    // No schema yet, and no CREATE on the database.
    refused(
        &spool(&url, &["push", "m"]),
        &format!("permission denied for database {}", pg.db()),
    );
    // Reading commands create nothing: without the schema there is nothing to read.
    Cmd::bare().arg("--url").arg(&url).arg("len").prints("0\n");
    Cmd::bare().arg("--url").arg(&url).arg("queues").prints("");
    Cmd::bare()
        .arg("--url")
        .arg(&url)
        .arg("pop")
        .run()
        .says_missing("default", 1, "");
    assert_eq!(
        pg.psql(pg.db(), "SELECT to_regnamespace('spool') IS NULL"),
        "t\n"
    );

    // The schema made by its owner: the role may not use it.
    spool(&pg.url(), &["push", "kept"]).success();
    let before = snapshot(&pg);
    for args in COMMANDS {
        let out = spool(&url, args);
        refused(&out, "permission denied for schema spool");
    }
    // USAGE without the tables' privileges: the table is named.
    role.grant("GRANT USAGE ON SCHEMA spool TO {role}");
    refused(
        &spool(&url, &["len"]),
        "permission denied for table version",
    );
    // Reading, but not writing: len, list, stats and queues read; peek, like pop, first
    // promotes due messages and fails expired ones, which is writing.
    role.grant("GRANT SELECT ON ALL TABLES IN SCHEMA spool TO {role}");
    Cmd::bare().arg("--url").arg(&url).arg("len").prints("1\n");
    Cmd::bare()
        .arg("--url")
        .arg(&url)
        .arg("queues")
        .prints("default\n");
    for args in [&["list"][..], &["stats"], &["stats", "--all"]] {
        spool(&url, args).success();
    }
    refused(
        &spool(&url, &["push", "m"]),
        "permission denied for table queues",
    );
    // A take's upkeep first sweeps the sessions that ended (spool.holders).
    for (verb, table) in [
        ("pop", "holders"),
        ("peek", "holders"),
        ("clear", "messages"),
    ] {
        refused(
            &spool(&url, &[verb]),
            &format!("permission denied for table {table}"),
        );
    }
    assert_eq!(snapshot(&pg), before, "a refused command changed nothing");
}

#[test]
fn a_role_with_the_documented_privileges_can_do_everything() {
    let Some(pg) = pg() else { return };
    // CONNECT only to whom it is granted.
    pg.psql(
        pg.db(),
        &format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", pg.db()),
    );

    // First use by the role itself: CONNECT and CREATE on the database.
    let creator = Role::login_only(&pg);
    refused(
        &spool(&creator.url(), &["len"]),
        &format!("permission denied for database \"{}\"", pg.db()),
    );
    creator.grant(&format!(
        "GRANT CONNECT, CREATE ON DATABASE {} TO {{role}}",
        pg.db()
    ));
    every_command_works(&creator.url(), "default", "by its creator");

    // A schema made by an administrator: CONNECT, USAGE on the schema, and SELECT,
    // INSERT, UPDATE, DELETE on its tables.
    let Some(pg2) = crate::harness::pg() else {
        return;
    };
    spool(&pg2.url(), &["-q", "made", "push", "by the administrator"]).success();
    pg2.psql(
        pg2.db(),
        &format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", pg2.db()),
    );
    let user = Role::login_only(&pg2);
    user.grant(&format!(
        "GRANT CONNECT ON DATABASE {} TO {{role}}",
        pg2.db()
    ));
    user.grant("GRANT USAGE ON SCHEMA spool TO {role}");
    user.grant(
        "GRANT SELECT, INSERT, UPDATE, DELETE \
         ON spool.version, spool.queues, spool.messages, spool.holders, spool.consumed \
         TO {role}",
    );
    every_command_works(&user.url(), "other", "on an administrator's schema");
    Cmd::bare()
        .arg("--url")
        .arg(user.url())
        .args(["-q", "made", "pop"])
        .prints("by the administrator");
}

/// Pushes, reads and consumes queue `queue` (new) through `url`, every verb the engine
/// has, with their usual output.
#[track_caller]
fn every_command_works(url: &str, queue: &str, how: &str) {
    let run = |args: &[&str]| {
        let mut all = vec!["-q", queue];
        all.extend_from_slice(args);
        spool(url, &all)
    };
    let prints = |args: &[&str], expected: &str| {
        let out = run(args);
        assert_eq!(
            (out.code, out.text(), out.stderr.as_str()),
            (0, expected.to_string(), ""),
            "{how}: {args:?}\n{out:?}"
        );
    };
    prints(&["push", "--print-id", "a", "b", "c"], "1\n2\n3\n");
    prints(&["push", "--delay", "1h", "--print-id", "later"], "4\n");
    prints(&["push", "--priority", "5", "--print-id", "first"], "5\n");
    prints(&["len"], "4\n");
    prints(&["peek"], "first");
    let out = run(&["queues"]);
    assert_eq!(out.code, 0, "{how}: {out:?}");
    assert!(out.text().lines().any(|l| l == queue), "{how}: {out:?}");
    prints(&["pop"], "first");
    prints(&["pop", "-n", "2", "--lines"], "a\nb\n");
    let out = run(&["list", "--state", "all", "--json"]);
    assert_eq!(out.code, 0, "{how}: {out:?}");
    assert_eq!(out.text().lines().count(), 2, "{how}: {out:?}");
    let out = run(&["stats", "--json"]);
    assert_eq!(out.code, 0, "{how}: {out:?}");
    assert!(out.text().contains("\"waiting\":1"), "{how}: {out:?}");
    prints(&["clear", "--state", "all"], "2\n");
    prints(&["len"], "0\n");
    let out = run(&["pop"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, ""), "{how}: {out:?}");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_by_every_command_and_left_alone() {
    let Some(pg) = pg() else { return };
    spool(&pg.url(), &["push", "one", "two"]).success();
    spool(&pg.url(), &["push", "--delay", "1h", "later"]).success();
    pg.psql(pg.db(), "UPDATE spool.version SET version = 99");
    let before = snapshot(&pg);
    let url = as_role(&pg.url(), "postgres");
    for args in COMMANDS {
        for queue in ["default", "elsewhere"] {
            let mut all = vec!["-q", queue];
            all.extend_from_slice(args);
            let out = spool(&url, &all);
            refused(
                &out,
                "schema spool is version 99, newer than this spool knows (3): upgrade spool",
            );
        }
    }
    assert_eq!(snapshot(&pg), before, "nothing was changed");
}

/// The tables of schema version 1, as its binaries made them.
const VERSION_1: &str = r#"
CREATE SCHEMA spool;
CREATE TABLE spool.version (version integer NOT NULL);
CREATE TABLE spool.queues (
    name text PRIMARY KEY COLLATE "C",
    next_id bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE spool.messages (
    queue text NOT NULL COLLATE "C" REFERENCES spool.queues (name) ON DELETE CASCADE,
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
    reason text,
    PRIMARY KEY (queue, id)
);
CREATE INDEX messages_ready
    ON spool.messages (queue, priority DESC, position) WHERE state = 'ready';
CREATE INDEX messages_delayed
    ON spool.messages (queue, due_at, id) WHERE state = 'delayed';
CREATE INDEX messages_expiring
    ON spool.messages (queue, expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'delayed');
INSERT INTO spool.version VALUES (1);
INSERT INTO spool.queues (name, next_id) VALUES ('default', 5), ('jobs', 3);
INSERT INTO spool.messages (queue, id, position, priority, state, payload, enqueued_at) VALUES
    ('default', 1, 1, 0, 'ready', '\x6669727374', now()),
    ('default', 2, 2, 0, 'ready', '\x00ff0a0d00', now()),
    ('default', 3, 3, 0, 'ready', '\x', now()),
    ('default', 4, 4, 4, 'ready', '\x686967680a', now()),
    ('jobs', 1, 1, 0, 'ready', '\x6a31', now()),
    ('jobs', 2, 2, 0, 'ready', '\x6a32', now());
"#;

#[test]
fn a_schema_of_version_1_is_upgraded_on_first_use_with_its_messages() {
    let Some(pg) = pg() else { return };
    pg.psql(pg.db(), VERSION_1);
    let url = pg.url();
    // The first use, a reading one, upgrades it.
    Cmd::bare().arg("--url").arg(&url).arg("len").prints(
        "4
",
    );
    assert_eq!(
        pg.psql(pg.db(), "SELECT version FROM spool.version"),
        "3
"
    );
    assert_eq!(
        pg.psql(
            pg.db(),
            "SELECT string_agg(table_name || '.' || column_name, ' ' ORDER BY table_name, column_name)              FROM information_schema.columns WHERE table_schema = 'spool'              AND column_name IN ('published', 'record', 'holder', 'key')"
        ),
        "consumed.record holders.key messages.holder messages.key queues.published\n"
    );
    // Every message is there, in order (priority first), bytes equal.
    let pop = |queue: &str, expected: &[u8]| {
        Cmd::bare()
            .arg("--url")
            .arg(&url)
            .args(["-q", queue, "pop"])
            .prints(expected);
    };
    pop("default", b"high\n");
    pop("default", b"first");
    pop("default", b"\x00\xff\n\r\x00");
    pop("default", b"");
    Cmd::bare()
        .arg("--url")
        .arg(&url)
        .arg("pop")
        .run()
        .nothing();
    // Ids go on from the queue's counter.
    Cmd::bare()
        .arg("--url")
        .arg(&url)
        .args(["-q", "jobs", "push", "--print-id", "j3"])
        .prints("3\n");
    Cmd::bare()
        .arg("--url")
        .arg(&url)
        .args(["-q", "jobs", "pop", "-n", "5", "--lines"])
        .prints("j1\nj2\nj3\n");
}

#[test]
fn a_table_changed_by_hand_is_an_error_in_one_line() {
    // What was changed, and the name the error must give with "does not exist".
    for (change, missing) in [
        (
            "ALTER TABLE spool.messages DROP COLUMN attempts",
            "attempts",
        ),
        ("ALTER TABLE spool.queues DROP COLUMN next_id", "next_id"),
        ("DROP TABLE spool.messages", "spool.messages"),
    ] {
        let Some(pg) = pg() else { return };
        spool(&pg.url(), &["push", "one", "two"]).success();
        pg.psql(pg.db(), change);
        let url = as_role(&pg.url(), "postgres");
        let mut failed = 0;
        for args in COMMANDS {
            let out = spool(&url, args);
            assert!(!out.stderr.contains("panicked"), "{change}: {out:?}");
            assert!(!out.stderr.contains(SECRET), "{change}: {out:?}");
            // A command that does not read the changed column may still work, find
            // nothing (once clear has run), or fail for its own reason (a token of no
            // claim, a message not there); one that reads it names what is missing.
            if out.stderr.contains("does not exist") {
                refused(&out, missing);
                failed += 1;
            } else if out.code == 2 {
                refused(&out, "");
            } else {
                assert!(out.code <= 1, "{change}: {out:?}");
            }
        }
        assert!(failed > 0, "{change}: no command noticed");
    }
}
