//! `spool relay`: both directions, between every pair of engines; what a message keeps on
//! the way (payload, order, priority, time to live); the refusals (the same queue twice,
//! a second relay, an unreachable place); `--wait` woken by a push and stopped by SIGTERM.
//! The faults (kills at every step, outages) are in relay_faults.rs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{Cmd, Engine, Fixture, Pg, engine_tests, pg, send_signal};

engine_tests! {
    forwards_everything_in_order_to_a_directory, forwards_everything_in_order_to_postgres,
    brings_messages_from_a_directory, brings_messages_from_postgres,
    keeps_priority_and_time_to_live, delayed_messages_go_when_due,
    an_empty_or_missing_source_forwards_nothing, binary_payloads_arrive_byte_for_byte,
    the_same_queue_is_refused, a_second_relay_of_one_source_is_refused,
    an_unreachable_place_exits_75_and_keeps_everything, wait_forwards_what_comes_and_stops_on_sigterm,
    forwarded_messages_carry_their_source_key, a_message_keeps_its_own_key,
    an_empty_source_does_not_need_the_destination, a_source_made_again_is_another_source,
}

/// The place at the other end of a relay: a spool directory, or a database of its own.
enum Other {
    Dir(PathBuf),
    Pg(Pg),
}

impl Other {
    fn dir(f: &Fixture) -> Other {
        Other::Dir(f.outside("other-spool"))
    }

    /// A database of its own on the test server; `None` after a visible skip.
    fn pg() -> Option<Other> {
        pg().map(Other::Pg)
    }

    /// What `--to` and `--from` take.
    fn place(&self) -> String {
        match self {
            Other::Dir(dir) => dir.display().to_string(),
            Other::Pg(pg) => pg.url(),
        }
    }

    /// spool on this place.
    fn cmd(&self, f: &Fixture) -> Cmd {
        let _ = f;
        match self {
            Other::Dir(dir) => Cmd::at(dir),
            Other::Pg(pg) => Cmd::bare().args(["--url", &pg.url()]),
        }
    }

    fn pop_all(&self, f: &Fixture, queue: &str) -> Vec<String> {
        let out = self
            .cmd(f)
            .args(["-q", queue, "pop", "-n", "100000", "--null"])
            .run();
        if out.code == 1 {
            return Vec::new();
        }
        out.success();
        out.stdout
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    fn len(&self, f: &Fixture, queue: &str) -> u64 {
        let out = self.cmd(f).args(["-q", queue, "len"]).run();
        out.success();
        out.text().trim().parse().expect("a count")
    }
}

/// `spool -q QUEUE relay ARGS…` on the fixture's store.
fn relay(f: &Fixture, queue: &str, args: &[&str]) -> crate::harness::Output {
    f.cmd().args(["-q", queue, "relay"]).args(args).run()
}

fn forwards_everything_in_order(engine: Engine, other: Other) {
    let f = engine.fixture();
    let messages: Vec<String> = (1..=250).map(|i| format!("message {i}")).collect();
    let lines = messages.join("\n") + "\n";
    f.run_stdin(&["-q", "outbox", "push", "--lines"], lines)
        .success();
    relay(
        &f,
        "outbox",
        &[
            "--to",
            &other.place(),
            "--to-queue",
            "jobs",
            "--batch",
            "100",
        ],
    )
    .exits(0);
    assert_eq!(f.len("outbox"), 0, "the source is empty");
    assert_eq!(other.pop_all(&f, "jobs"), messages, "all, once, in order");
}

fn forwards_everything_in_order_to_a_directory(engine: Engine) {
    let f = engine.fixture();
    forwards_everything_in_order(engine, Other::dir(&f));
}

fn forwards_everything_in_order_to_postgres(engine: Engine) {
    if let Some(other) = Other::pg() {
        forwards_everything_in_order(engine, other);
    }
}

fn brings_messages(engine: Engine, other: Other) {
    let f = engine.fixture();
    other
        .cmd(&f)
        .args(["-q", "work", "push", "one", "two", "three"])
        .run()
        .success();
    relay(
        &f,
        "inbox",
        &["--from", &other.place(), "--from-queue", "work"],
    )
    .exits(0);
    assert_eq!(other.len(&f, "work"), 0, "taken from the source");
    assert_eq!(f.pop_all_text("inbox"), ["one", "two", "three"]);
}

fn brings_messages_from_a_directory(engine: Engine) {
    let f = engine.fixture();
    brings_messages(engine, Other::dir(&f));
}

fn brings_messages_from_postgres(engine: Engine) {
    if let Some(other) = Other::pg() {
        brings_messages(engine, other);
    }
}

fn keeps_priority_and_time_to_live(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    f.run(&["-q", "q", "push", "plain"]).success();
    f.run(&["-q", "q", "push", "--priority", "7", "urgent"])
        .success();
    f.run(&["-q", "q", "push", "--ttl", "1h", "perishable"])
        .success();
    let before: Vec<serde_json::Value> = f.list_json("q", "all");
    let expires = before
        .iter()
        .find(|m| m["preview"] == "perishable")
        .and_then(|m| m["expires"].as_str().map(str::to_string))
        .expect("an expiry");
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    let out = other.cmd(&f).args(["-q", "q", "list", "--json"]).run();
    out.success();
    let after = crate::harness::json_lines(&out.stdout);
    let by_preview = |p: &str| {
        after
            .iter()
            .find(|m| m["preview"] == p)
            .unwrap_or_else(|| panic!("{p} forwarded: {after:?}"))
            .clone()
    };
    assert_eq!(by_preview("urgent")["priority"], 7);
    assert_eq!(by_preview("plain")["priority"], 0);
    assert_eq!(by_preview("perishable")["expires"], expires.as_str());
    assert!(by_preview("plain").get("expires").is_none());
    // The destination's order is the source's: the higher priority first.
    assert_eq!(other.pop_all(&f, "q"), ["urgent", "plain", "perishable"]);
}

fn delayed_messages_go_when_due(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    f.run(&["-q", "q", "push", "--delay", "2s", "later"])
        .success();
    f.run(&["-q", "q", "push", "now"]).success();
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    assert_eq!(other.pop_all(&f, "q"), ["now"]);
    assert_eq!(
        f.states("q").len(),
        1,
        "the delayed message waits at the source"
    );
    std::thread::sleep(Duration::from_millis(2100));
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    assert_eq!(other.pop_all(&f, "q"), ["later"]);
    assert!(f.states("q").is_empty());
}

fn an_empty_or_missing_source_forwards_nothing(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    relay(&f, "nothing", &["--to", &other.place()]).exits(0);
    f.run(&["-q", "empty", "push", "x"]).success();
    f.run(&["-q", "empty", "pop"]).success();
    relay(&f, "empty", &["--to", &other.place()]).exits(0);
    assert_eq!(other.len(&f, "empty"), 0);
}

fn binary_payloads_arrive_byte_for_byte(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    let payload: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    f.run_stdin(&["-q", "bin", "push"], payload.clone())
        .success();
    f.run_stdin(&["-q", "bin", "push"], Vec::new()).success();
    relay(&f, "bin", &["--to", &other.place()]).exits(0);
    let first = other.cmd(&f).args(["-q", "bin", "pop"]).run();
    first.success();
    assert!(first.stdout == payload, "the payload arrived intact");
    other
        .cmd(&f)
        .args(["-q", "bin", "pop"])
        .run()
        .success()
        .stdout_is("");
}

fn the_same_queue_is_refused(engine: Engine) {
    let f = engine.fixture();
    f.run(&["-q", "q", "push", "x"]).success();
    let place = match f.pg() {
        Some(pg) => pg.url(),
        None => f.root().display().to_string(),
    };
    let out = relay(&f, "q", &["--to", &place]);
    out.error()
        .stderr_has("the source and the destination are the same queue");
    assert_eq!(f.len("q"), 1, "nothing moved");
    // Another name at the same place is another queue.
    relay(&f, "q", &["--to", &place, "--to-queue", "r"]).exits(0);
    assert_eq!(f.pop_all_text("r"), ["x"]);
}

fn a_second_relay_of_one_source_is_refused(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    f.run(&["-q", "q", "push", "first"]).success();
    let place = other.place();
    let mut first = f
        .cmd()
        .args(["-q", "q", "relay", "--wait", "--to", &place])
        .spawn();
    // The first relay holds the lock once it forwarded what was there.
    wait_until("the first relay forwarded", || other.len(&f, "q") == 1);
    // A second one-shot relay leaves the work to the first: try again later.
    relay(&f, "q", &["--to", &place]).exits_saying(
        75,
        &format!(
            "spool: relay q at {} -> q at {place}: another relay is running from q\n",
            store_shown(&f)
        ),
    );
    // A second relay that waits is a mistake of configuration: refused.
    let waiting = f
        .cmd()
        .args(["-q", "q", "relay", "--wait", "--to", &place])
        .run();
    waiting
        .error()
        .stderr_has("another relay is running from q");
    send_signal(first.pid(), Signal::TERM);
    assert!(wait_exit(&mut first), "the first relay stopped");
    let out = first.finish();
    out.killed_by_saying(
        Signal::TERM,
        &format!(
            "spool: relay q at {} -> q at {place}: stopped; forwarded 1\n",
            store_shown(&f)
        ),
    );
}

fn an_unreachable_place_exits_75_and_keeps_everything(engine: Engine) {
    let f = engine.fixture();
    f.run(&["-q", "q", "push", "a", "b"]).success();
    let nowhere = format!(
        "postgresql://spool@{}/db",
        f.outside("no-server")
            .display()
            .to_string()
            .replace('/', "%2F")
    );
    let out = relay(&f, "q", &["--to", &nowhere]);
    assert_eq!(out.code, 75, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with("spool: relay q at "), "{out:?}");
    out.stderr_has("(forwarded 0; the rest waits at the source)");
    assert_eq!(f.pop_all_text("q"), ["a", "b"], "nothing lost, order kept");
}

fn wait_forwards_what_comes_and_stops_on_sigterm(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    let place = other.place();
    let mut running = f
        .cmd()
        .args(["-q", "q", "relay", "--wait", "--to", &place])
        .spawn();
    for i in 1..=3 {
        f.run(&["-q", "q", "push", &format!("m{i}")]).success();
        wait_until("the relay forwarded the push", || other.len(&f, "q") == i);
    }
    send_signal(running.pid(), Signal::TERM);
    assert!(wait_exit(&mut running), "the relay stopped");
    running.finish().killed_by_saying(
        Signal::TERM,
        &format!(
            "spool: relay q at {} -> q at {place}: stopped; forwarded 3\n",
            store_shown(&f)
        ),
    );
    assert_eq!(other.pop_all(&f, "q"), ["m1", "m2", "m3"]);
    assert_eq!(f.len("q"), 0);
}

fn forwarded_messages_carry_their_source_key(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    let id = f.push_id("q", "keyed");
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    let out = other.cmd(&f).args(["-q", "q", "list", "--json"]).run();
    out.success();
    let listed = crate::harness::json_lines(&out.stdout);
    let key = listed[0]["key"].as_str().expect("a key").to_string();
    assert!(
        key.starts_with("relay:") && key.ends_with(&format!(":{id}")),
        "relay:IDENTITY:ID, got {key}"
    );
    // A second copy of the same source message adds nothing.
    other
        .cmd(&f)
        .args(["-q", "q", "push", "--key", &key, "again"])
        .run()
        .exits_saying(
            0,
            &format!("spool: push to q: message 1 holds the key {key}: nothing was pushed\n"),
        );
    assert_eq!(other.len(&f, "q"), 1);
}

/// How the relay's lines show the fixture's store.
fn store_shown(f: &Fixture) -> String {
    match f.pg() {
        Some(pg) => pg.url(),
        None => f.root().display().to_string(),
    }
}

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(running: &mut crate::harness::Running) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.exited() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn a_message_keeps_its_own_key(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    f.run(&["-q", "q", "push", "--key", "nightly", "first"])
        .success();
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    // The key is free at the source again, held at the destination: a second message
    // with it is added here, and is a duplicate there.
    let out = f.run(&[
        "-q",
        "q",
        "push",
        "--print-id",
        "--key",
        "nightly",
        "second",
    ]);
    out.success();
    let second = crate::harness::parse_ids(&out.stdout)[0];
    relay(&f, "q", &["--to", &other.place()]).exits_saying(
        0,
        &format!(
            "spool: relay q at {} -> q at {}: message {second} not added: message 1 there holds its key nightly\n",
            store_shown(&f),
            other.place()
        ),
    );
    assert_eq!(f.len("q"), 0);
    assert_eq!(other.pop_all(&f, "q"), ["first"]);
}

fn an_empty_source_does_not_need_the_destination(engine: Engine) {
    let f = engine.fixture();
    let nowhere = format!(
        "postgresql://spool@{}/db",
        f.outside("no-server")
            .display()
            .to_string()
            .replace('/', "%2F")
    );
    relay(&f, "nothing", &["--to", &nowhere]).exits(0);
    f.run(&["-q", "empty", "push", "x"]).success();
    f.run(&["-q", "empty", "pop"]).success();
    relay(&f, "empty", &["--to", &nowhere]).exits(0);
}

fn a_source_made_again_is_another_source(engine: Engine) {
    let f = engine.fixture();
    let other = Other::dir(&f);
    let place = other.place();
    let mut running = f
        .cmd()
        .args(["-q", "q", "relay", "--wait", "--to", &place])
        .spawn();
    f.run(&["-q", "q", "push", "first", "second"]).success();
    wait_until("the relay forwarded two", || other.len(&f, "q") == 2);
    // The queue removed and made again: its ids start again at 1, under another identity.
    match f.pg() {
        Some(pg) => {
            pg.psql(pg.db(), "DELETE FROM spool.messages WHERE queue = 'q'");
            pg.psql(pg.db(), "DELETE FROM spool.queues WHERE name = 'q'");
        }
        None => std::fs::remove_dir_all(f.queue_dir("q")).expect("remove the queue"),
    }
    f.run(&["-q", "q", "push", "new"]).success();
    wait_until("the relay forwarded the new message", || {
        other.len(&f, "q") == 3
    });
    send_signal(running.pid(), Signal::TERM);
    assert!(wait_exit(&mut running), "the relay stopped");
    let out = running.finish();
    assert_eq!(out.signal(), Some(Signal::TERM.as_raw()), "{out:?}");
    assert_eq!(other.pop_all(&f, "q"), ["first", "second", "new"]);
}

#[test]
fn a_mistyped_scheme_shows_no_password() {
    let f = Fixture::new();
    let out = relay(
        &f,
        "q",
        &["--to", "postgress://alice:s3cretpw@db.example/q"],
    );
    out.error();
    assert!(!out.stderr.contains("s3cretpw"), "{out:?}");
    out.stderr_has("alice:***@");
}

/// A spool directory's queue keeps its identity in the file `identity`: 32 lowercase hex
/// digits and a newline, made when a relay first needs it and read ever after; the key of
/// each forwarded message carries it. One that is not exactly that is an error, left as it
/// is, and fsck reports it.
#[test]
fn a_directory_queue_keeps_its_identity_in_a_file() {
    let f = Fixture::new();
    let other = Other::dir(&f);
    let file = f.queue_dir("q").join("identity");
    let first = f.push_id("q", "first");
    assert!(!file.exists(), "made when first needed");
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    let content = std::fs::read_to_string(&file).unwrap();
    let identity = content.strip_suffix('\n').expect("a newline at its end");
    assert!(
        identity.len() == 32
            && identity
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{content:?}"
    );
    let second = f.push_id("q", "second");
    relay(&f, "q", &["--to", &other.place()]).exits(0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), content, "kept");
    let out = other.cmd(&f).args(["-q", "q", "list", "--json"]).run();
    out.success();
    let keys: Vec<String> = crate::harness::json_lines(&out.stdout)
        .iter()
        .map(|m| m["key"].as_str().expect("a key").to_string())
        .collect();
    assert_eq!(
        keys,
        [
            format!("relay:{identity}:{first}"),
            format!("relay:{identity}:{second}")
        ]
    );
    f.prints(&["-q", "q", "fsck"], "");
    // Damaged: an error naming the file, and nothing replaced or forwarded.
    std::fs::write(&file, identity.to_uppercase() + "\n").unwrap();
    f.push_id("q", "third");
    let out = relay(&f, "q", &["--to", &other.place()]);
    assert_eq!(out.code, 2, "{out:?}");
    out.stderr_has(&format!(
        "read {}: not an identity (32 lowercase hex digits and a newline): left as it is",
        file.display()
    ));
    assert_eq!(f.len("q"), 1);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        identity.to_uppercase() + "\n"
    );
    let out = f.run(&["-q", "q", "fsck"]);
    out.exits(3);
    assert!(
        out.text().contains(&format!("{}: ", file.display())),
        "{}",
        out.text()
    );
}
