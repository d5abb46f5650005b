//! The harness's PostgreSQL server (tests/harness/postgres.rs): one cluster shared by the
//! run, a database of its own per test, dropped after it; a private cluster that can be
//! crashed and restarted with its committed data intact; under `CI=true` a machine
//! without PostgreSQL fails the tests that need it instead of skipping them.

use std::path::Path;
use std::process::Command;

use crate::harness::{Cluster, PG_URL_VAR, pg, psql, require, skip};

// Two tests running at the same time must never see each other's tables: each `pg()`
// is a database of its own on the one shared server.
#[test]
fn each_pg_is_a_database_of_its_own_on_the_shared_server() {
    let Some(a) = pg() else { return };
    let Some(b) = pg() else { return };
    assert_ne!(a.db(), b.db());
    assert_eq!(
        a.psql(a.db(), "SELECT current_database()"),
        format!("{}\n", a.db())
    );
    assert_eq!(
        b.psql(b.db(), "SELECT current_database()"),
        format!("{}\n", b.db())
    );

    a.psql(
        a.db(),
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)",
    );
    b.psql(
        b.db(),
        "CREATE TABLE t (x text); INSERT INTO t VALUES ('b')",
    );
    assert_eq!(a.psql(a.db(), "SELECT x FROM t ORDER BY x"), "1\n2\n");
    assert_eq!(b.psql(b.db(), "SELECT x FROM t"), "b\n");

    // The same server: a's database is listed by b's connection.
    let listed = b.psql(
        b.db(),
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{}'",
            a.db()
        ),
    );
    assert_eq!(listed, "1\n");
    if let (Some(ca), Some(cb)) = (a.cluster(), b.cluster()) {
        assert_eq!(ca.dir(), cb.dir(), "one shared cluster");
    }
}

// The shared cluster is what the module's page says: a Unix socket only, fsync on, room
// for many connections; its URL is one the engine's `--url` takes.
#[test]
fn the_shared_cluster_listens_only_on_its_socket_with_fsync_on() {
    let Some(p) = pg() else { return };
    let Some(cluster) = p.cluster() else {
        // SPOOL_TEST_PG_URL names the server: its settings are its owner's.
        return;
    };
    let show = |setting: &str| p.psql(p.db(), &format!("SHOW {setting}"));
    assert_eq!(show("listen_addresses"), "\n");
    assert_eq!(show("fsync"), "on\n");
    assert_eq!(show("max_connections"), "200\n");
    assert_eq!(
        show("unix_socket_directories"),
        format!("{}\n", cluster.socket_dir().display())
    );
    assert!(cluster.socket_dir().join(".s.PGSQL.5432").exists());
    assert!(
        p.url()
            .starts_with(&format!("postgres:///{}?host=/", p.db())),
        "{}",
        p.url()
    );
    assert!(p.url().ends_with("&user=postgres"), "{}", p.url());
    assert!(p.bin("psql").is_file() && p.bin("pg_ctl").is_file());
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
}

// Databases are dropped with their test, so that a long run does not fill the disk.
#[test]
fn a_tests_database_is_dropped_with_it() {
    let Some(keeper) = pg() else { return };
    let Some(p) = pg() else { return };
    let name = p.db().to_string();
    p.psql(&name, "CREATE TABLE t (x int)");
    let count = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(keeper.psql(keeper.db(), &count), "1\n");
    drop(p);
    assert_eq!(keeper.psql(keeper.db(), &count), "0\n");
}

// What later tests of the engine will do to a server: crash it (no checkpoint) and start
// it again. What was committed is there afterwards, and the log shows a recovery: the
// crash was real. Dropping the cluster stops its server and removes its directory.
#[test]
fn a_private_cluster_crashed_and_restarted_keeps_its_committed_data() {
    let cluster = match Cluster::private() {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    let db = cluster.create_database();
    cluster.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 1000) i",
    );
    cluster.crash().unwrap_or_else(|e| panic!("{e}"));
    let refused = psql(&cluster.url(&db), "SELECT 1").expect_err("the server is down");
    assert!(
        refused.contains("No such file or directory") || refused.contains("connect"),
        "{refused}"
    );

    cluster.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cluster.psql(&db, "SELECT count(*), min(v), max(id) FROM t"),
        "1000|row 1|1000\n"
    );
    let log = cluster.log();
    assert!(
        log.contains("was interrupted") || log.contains("not properly shut down"),
        "no crash recovery in the log:\n{log}"
    );

    let dir = cluster.dir().to_path_buf();
    let pid = postmaster_pid(&cluster.data_dir());
    drop(cluster);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!running(pid), "the server {pid} still runs");
}

// Under CI=true a machine without PostgreSQL must fail the tests that need it; elsewhere
// they skip, saying so: a test of the harness's `pg()`, and the PostgreSQL variant of a
// contract test. Runs each again where /usr/lib/postgresql is an empty directory (a
// mount namespace of its own).
#[test]
fn without_postgresql_pg_skips_visibly_or_fails_under_ci() {
    if !require(true, &[("unshare", &["--mount", "true"])]) {
        return;
    }
    if !Path::new("/usr/lib/postgresql").is_dir() {
        return skip("/usr/lib/postgresql does not exist: nothing to hide");
    }
    for test in [
        "suite::postgres_harness::each_pg_is_a_database_of_its_own_on_the_shared_server",
        "suite::len_stats::len_counts_waiting_messages::postgres",
    ] {
        skips_or_fails_under_ci(test);
    }
}

/// Runs `test` of this binary without PostgreSQL: it skips, saying so, and fails under
/// CI=true.
#[track_caller]
fn skips_or_fails_under_ci(test: &str) {
    let run = |ci: &str| {
        let exe = std::env::current_exe().expect("test binary");
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs none /usr/lib/postgresql && exec \"$@\"",
                "sh",
            ])
            .arg(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("CI", ci)
            .env_remove(PG_URL_VAR)
            .output()
            .expect("run the test binary")
    };
    let out = run("false");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{test}: {out:?}");
    assert!(
        stderr.contains("SKIPPED: PostgreSQL's server (initdb, pg_ctl, postgres) is not installed"),
        "{test}: {stderr}"
    );
    // It ran (the name is exact), and passed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "{test}: {stdout}");
    let out = run("true");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{test}: {text}");
    assert!(text.contains("CI=true forbids skipping"), "{test}: {text}");
}

/// The postmaster's pid, from the first line of `postmaster.pid`.
fn postmaster_pid(data: &Path) -> u32 {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("postmaster.pid: {text:?}"))
}

/// Whether process `pid` runs (exists and is not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
