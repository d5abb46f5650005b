//! Waiting on the PostgreSQL engine, and its rates: a push notifies the channel `spool`
//! with the queue's name; `pop --wait` and `peek --wait` listen (their LISTEN connection
//! is seen on the server) and return what another process pushes later; `--timeout`
//! with nothing pushed exits 1; a waiter whose listening connection is refused still
//! returns the message (it polls); `stats` shows the rates of publishing and of
//! consumption, in text and JSON as a spool directory does, and a damaged record reads
//! as no rate.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use crate::harness::{Cmd, Output, Pg, Running, json_lines, pg};

/// `spool --url URL ARGS...` on the test's database.
fn spool(p: &Pg, args: &[&str]) -> Cmd {
    Cmd::bare().arg("--url").arg(p.url()).args(args)
}

/// How long a waiting command may take before the test counts it as hung.
const HANG: Duration = Duration::from_secs(60);

/// Waits until `sql` (run in the test's database) prints `want`; panics, with what it
/// printed last and `running`'s output, if it never does within [`HANG`] or `running`
/// exits first.
#[track_caller]
fn until_server_says(p: &Pg, sql: &str, want: &str, running: &mut Running) {
    let start = Instant::now();
    loop {
        let got = p.psql(p.db(), sql);
        if got == want {
            return;
        }
        if running.exited() || start.elapsed() > HANG {
            panic!("{sql} printed {got:?}, not {want:?}; the waiting command ended or hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The connections of this test's database that are listening for spool's notifications
/// (their last statement was `LISTEN spool`).
const LISTENING: &str = "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND query = 'LISTEN spool'";

/// A queue `name` that exists and is empty.
fn empty_queue(p: &Pg, name: &str) {
    spool(p, &["-q", name, "push", "x"]).prints("");
    spool(p, &["-q", name, "pop"]).prints("x");
}

// A push sends one notification on the channel `spool` naming its queue, at its commit.
#[test]
fn a_push_notifies_the_channel_spool_with_the_queue_name() {
    let Some(p) = pg() else { return };
    let mut client = postgres::Client::connect(&p.url(), postgres::NoTls).expect("connect");
    client.batch_execute("LISTEN spool").expect("LISTEN");
    spool(&p, &["-q", "jobs", "push", "--lines"])
        .stdin("a\nb\nc\n")
        .prints("");
    spool(&p, &["-q", "other.q", "push", "m"]).prints("");
    let mut heard = Vec::new();
    let mut notifications = client.notifications();
    let mut iter = notifications.timeout_iter(HANG);
    while heard.len() < 2 {
        let n = iter.next().expect("notifications").expect("a notification");
        heard.push((n.channel().to_string(), n.payload().to_string()));
    }
    assert_eq!(
        heard,
        [
            ("spool".to_string(), "jobs".to_string()),
            ("spool".to_string(), "other.q".to_string())
        ],
        "one notification per push, in commit order"
    );
}

// pop --wait started before the push: it listens (its connection is on the server,
// having run LISTEN), then returns the message another process pushes, and exits 0. A
// push to another queue meanwhile is not taken.
#[test]
fn pop_wait_listens_and_returns_a_message_pushed_later() {
    let Some(p) = pg() else { return };
    empty_queue(&p, "jobs");
    let mut waiting = spool(&p, &["-q", "jobs", "pop", "--wait", "--timeout", "5m"])
        .limit(HANG)
        .spawn();
    until_server_says(&p, LISTENING, "1\n", &mut waiting);
    spool(&p, &["-q", "elsewhere", "push", "not this"]).prints("");
    spool(&p, &["-q", "jobs", "push", "hello"]).prints("");
    waiting.finish().success().stdout_is("hello");
    spool(&p, &["-q", "jobs", "len"]).prints("0\n");
    spool(&p, &["-q", "elsewhere", "len"]).prints("1\n");
}

// peek --wait the same way: it returns the message and leaves it in the queue.
#[test]
fn peek_wait_listens_and_shows_a_message_pushed_later() {
    let Some(p) = pg() else { return };
    empty_queue(&p, "jobs");
    let mut waiting = spool(&p, &["-q", "jobs", "peek", "--wait", "--timeout", "5m"])
        .limit(HANG)
        .spawn();
    until_server_says(&p, LISTENING, "1\n", &mut waiting);
    spool(&p, &["-q", "jobs", "push", "look"]).prints("");
    waiting.finish().success().stdout_is("look");
    spool(&p, &["-q", "jobs", "pop"]).prints("look");
}

// pop --wait on a queue not made yet: the push that makes it is found, and the message
// returned.
#[test]
fn pop_wait_returns_a_message_of_a_queue_made_later() {
    let Some(p) = pg() else { return };
    let waiting = spool(&p, &["-q", "later", "pop", "--wait", "--timeout", "5m"])
        .limit(HANG)
        .spawn();
    spool(&p, &["-q", "later", "push", "first"]).prints("");
    waiting.finish().success().stdout_is("first");
}

// --timeout with nothing pushed: exit 1, nothing printed; on an empty queue and on one
// that does not exist.
#[test]
fn wait_with_a_timeout_and_nothing_pushed_exits_1() {
    let Some(p) = pg() else { return };
    empty_queue(&p, "jobs");
    for verb in ["pop", "peek"] {
        for queue in ["jobs", "never-made"] {
            spool(&p, &["-q", queue, verb, "--wait", "--timeout", "300ms"])
                .limit(HANG)
                .run()
                .nothing();
        }
    }
    spool(&p, &["-q", "jobs", "push", "after"]).prints("");
    spool(&p, &["-q", "jobs", "pop", "--wait", "--timeout", "300ms"]).prints("after");
}

// A waiter whose own listening connection the server refuses (a role allowed one
// connection, which the command's first connection holds) falls back to polling: the
// message pushed later is returned, exit 0, nothing said.
#[test]
fn a_waiter_that_cannot_listen_polls() {
    let Some(p) = pg() else { return };
    let Some(_) = p.cluster() else {
        // SPOOL_TEST_PG_URL names the server: its roles are its owner's.
        return;
    };
    empty_queue(&p, "jobs");
    let role = format!("r_{}", p.db());
    p.psql(
        p.db(),
        &format!(
            "CREATE ROLE {role} LOGIN CONNECTION LIMIT 1; \
             GRANT USAGE ON SCHEMA spool TO {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA spool TO {role}"
        ),
    );
    let url = p.url().replace("user=postgres", &format!("user={role}"));
    assert_ne!(url, p.url(), "the cluster's URL names its user");
    let mut waiting = Cmd::bare()
        .arg("--url")
        .arg(&url)
        .args(["-q", "jobs", "pop", "--wait", "--timeout", "5m"])
        .limit(HANG)
        .spawn();
    // Its one connection is made (the first look); the listener's is refused.
    until_server_says(
        &p,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"),
        "1\n",
        &mut waiting,
    );
    spool(&p, &["-q", "jobs", "push", "polled"]).prints("");
    let out: Output = waiting.finish();
    p.psql(p.db(), &format!("DROP OWNED BY {role}"));
    p.psql(p.db(), &format!("DROP ROLE {role}"));
    out.success().stdout_is("polled");
}

// `spool run --wait` takes the messages pushed after it started.
#[test]
fn run_wait_takes_messages_pushed_later() {
    let Some(p) = pg() else { return };
    empty_queue(&p, "jobs");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let script = format!("cat >> {}; echo >> {}", log.display(), log.display());
    let mut running = spool(
        &p,
        &[
            "-q", "jobs", "run", "--wait", "--max", "2", "--", "sh", "-c",
        ],
    )
    .arg(&script)
    .limit(HANG)
    .spawn();
    until_server_says(&p, LISTENING, "1\n", &mut running);
    spool(&p, &["-q", "jobs", "push", "one"]).prints("");
    spool(&p, &["-q", "jobs", "push", "two"]).prints("");
    running.finish().success();
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "one\ntwo\n");
    spool(&p, &["-q", "jobs", "len"]).prints("0\n");
}

/// Two pushes (of 3 and 1 messages) and two pops, a little apart, so that each rate has two events.
fn publish_and_consume(run: impl Fn(&[&str]) -> Output) {
    for push in [&["push", "a", "b", "c"][..], &["push", "d"]] {
        run(push).success();
        std::thread::sleep(Duration::from_millis(30));
    }
    for _ in 0..2 {
        run(&["pop"]).success();
        std::thread::sleep(Duration::from_millis(30));
    }
}

// stats shows both rates after pushes and pops, where it showed `-`; the records hold
// the numbers of messages published (4) and consumed (2).
#[test]
fn stats_shows_the_rates_of_publishing_and_consumption() {
    let Some(p) = pg() else { return };
    publish_and_consume(|args| spool(&p, &[&["-q", "jobs"], args].concat()).run());
    let text = spool(&p, &["-q", "jobs", "stats"]).run();
    text.success();
    let text = text.text();
    for label in ["arrivals: ", "consumed: "] {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line:\n{text}"));
        assert!(
            !line.ends_with(" -") && line.contains("/s"),
            "{line}\n{text}"
        );
    }
    // The records: 48 bytes each, the total count in the last 8 (little-endian).
    assert_eq!(
        p.psql(
            p.db(),
            "SELECT octet_length(published), get_byte(published, 40), \
             octet_length(record), get_byte(record, 40) \
             FROM spool.queues, spool.consumed WHERE name = 'jobs' AND queue = 'jobs'"
        ),
        "48|4|48|2\n"
    );
}

// stats --json has the fields of a spool directory's, with both rates numbers.
#[test]
fn stats_json_has_the_rates_and_the_shape_of_a_spool_directory() {
    let Some(p) = pg() else { return };
    let root = tempfile::tempdir().expect("tempdir");
    publish_and_consume(|args| spool(&p, &[&["-q", "jobs"], args].concat()).run());
    publish_and_consume(|args| Cmd::at(root.path()).args(["-q", "jobs"]).args(args).run());
    let keys = |out: &Output| -> Vec<String> {
        out.success();
        let json = json_lines(&out.stdout);
        let object = json[0].as_object().expect("an object");
        for rate in ["arrival_rate_per_second", "rate_per_second"] {
            assert!(object[rate].is_number(), "{rate}: {}", out.text());
        }
        object.keys().cloned().collect()
    };
    let db = keys(&spool(&p, &["-q", "jobs", "stats", "--json"]).run());
    let local = keys(
        &Cmd::at(root.path())
            .args(["-q", "jobs", "stats", "--json"])
            .run(),
    );
    assert_eq!(db, local);
}

// A damaged record of a rate reads as no rate, not as an error (stats showed both rates
// before); the next push writes the record anew.
#[test]
fn a_damaged_rate_record_is_no_rate() {
    let Some(p) = pg() else { return };
    publish_and_consume(|args| spool(&p, &[&["-q", "jobs"], args].concat()).run());
    p.psql(
        p.db(),
        "UPDATE spool.queues SET published = '\\x0102'::bytea WHERE name = 'jobs'; \
         UPDATE spool.consumed SET record = decode(repeat('ff', 48), 'hex') WHERE queue = 'jobs'",
    );
    let out = spool(&p, &["-q", "jobs", "stats"]).run();
    out.success();
    let text = out.text();
    assert!(text.contains("arrivals: -\n"), "{text}");
    assert!(text.contains("consumed: -\n"), "{text}");
    spool(&p, &["-q", "jobs", "push", "b"]).prints("");
    assert_eq!(
        p.psql(
            p.db(),
            "SELECT octet_length(published), get_byte(published, 40) \
             FROM spool.queues WHERE name = 'jobs'"
        ),
        "48|1\n"
    );
}
