//! `spool push --key KEY`: deduplication keys. While a message with a key is ready,
//! delayed or claimed, another push with that key adds nothing; a dead letter or a
//! deleted message holds no key.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use crate::harness::{Engine, Fixture, engine_tests, parse_ids, skip, strace_usable};

engine_tests! {
    a_second_push_with_the_key_adds_nothing, the_key_is_free_again_after_pop,
    the_key_is_free_again_after_ack, a_dead_letter_holds_no_key,
    an_expired_message_holds_no_key, the_key_is_free_again_after_clear,
    the_key_is_kept_through_nack_and_a_delay, a_requeued_message_takes_its_free_key_again,
    list_shows_the_key, concurrent_pushers_with_one_key_add_one_message,
    invalid_keys_are_refused_naming_the_rule, key_names_one_message,
    key_is_not_for_lines_or_null, a_key_from_standard_input,
}

const DUPLICATE: &str =
    "spool: push to default: message 1 holds the key job.1: nothing was pushed\n";

/// Pushes `message` with `key` and asserts that it was not added, message `id` holding
/// the key.
#[track_caller]
fn held(s: &Fixture, key: &str, message: &str, id: u64) {
    s.run(&["push", "--key", key, "--print-id", message])
        .exits_saying(
            0,
            &format!(
                "spool: push to default: message {id} holds the key {key}: nothing was pushed\n"
            ),
        )
        .stdout_is(format!("{id}\n"));
}

/// Pushes `message` with `key`, asserts that it was added, and returns its id.
#[track_caller]
fn added(s: &Fixture, key: &str, message: &str) -> u64 {
    s.push_with(&["--key", key], message)
}

fn a_second_push_with_the_key_adds_nothing(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "job.1", "--print-id", "first"], "1\n");
    let out = s.run(&["push", "--key", "job.1", "--print-id", "second"]);
    out.exits_saying(0, DUPLICATE).stdout_is("1\n");
    // Without --print-id: the same line, nothing on standard output.
    s.run(&["push", "--key", "job.1", "third"])
        .exits_saying(0, DUPLICATE)
        .stdout_is("");
    // Other keys, and messages without one, are not held back.
    s.prints(&["push", "--key", "job.2", "--print-id", "other"], "2\n");
    s.prints(&["push", "--print-id", "plain"], "3\n");
    assert_eq!(s.pop_all_text("default"), ["first", "other", "plain"]);
}

fn the_key_is_free_again_after_pop(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    s.prints(&["pop"], "a");
    s.prints(&["push", "--key", "k", "--print-id", "b"], "2\n");
    // pop -n takes many keyed messages at once.
    s.prints(&["push", "--key", "k2", "--print-id", "c"], "3\n");
    s.prints(&["pop", "-n", "10", "--lines"], "b\nc\n");
    s.prints(&["push", "--key", "k", "--print-id", "d"], "4\n");
    s.prints(&["push", "--key", "k2", "--print-id", "e"], "5\n");
}

fn the_key_is_free_again_after_ack(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    let token = s.claim(&[]);
    // Claimed, it still holds the key.
    held(&s, "k", "b", 1);
    assert_eq!(s.states("default"), [(1, "claimed".to_string())]);
    s.prints(&["ack", &token], "");
    s.prints(&["push", "--key", "k", "--print-id", "c"], "2\n");
}

fn a_dead_letter_holds_no_key(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    let token = s.claim(&[]);
    s.prints(&["nack", &token], "");
    s.run(&["claim", "--max-attempts", "1"]).nothing();
    assert_eq!(s.states("default"), [(1, "failed".to_string())]);
    let b = added(&s, "k", "b");
    held(&s, "k", "again", b);
    // And one failed by run (exit 100) frees it too.
    s.run(&["run", "--", "sh", "-c", "exit 100"]).exits_saying(3, &format!(
        "spool: run: message {b} (queue default): attempt 1 of 5 failed: exit status 100; moved to failed\n"
    ));
    added(&s, "k", "c");
}

fn an_expired_message_holds_no_key(engine: Engine) {
    let s = engine.fixture();
    s.prints(
        &["push", "--key", "k", "--ttl", "100ms", "--print-id", "a"],
        "1\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    s.run(&["pop"]).nothing();
    assert_eq!(s.states("default"), [(1, "failed".to_string())]);
    s.prints(&["push", "--key", "k", "--print-id", "b"], "2\n");
}

fn the_key_is_free_again_after_clear(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    s.prints(
        &["push", "--key", "d", "--delay", "1h", "--print-id", "b"],
        "2\n",
    );
    held(&s, "d", "c", 2);
    s.prints(&["clear"], "2\n");
    s.prints(&["push", "--key", "k", "--print-id", "a"], "3\n");
    s.prints(&["push", "--key", "d", "--print-id", "b"], "4\n");
}

fn the_key_is_kept_through_nack_and_a_delay(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    let token = s.claim(&[]);
    s.prints(&["nack", &token], "");
    held(&s, "k", "b", 1);
    let token = s.claim(&["--lease", "1m"]);
    s.prints(&["extend", &token, "--lease", "2m"], "");
    held(&s, "k", "b", 1);
    s.prints(&["nack", &token, "--delay", "1h"], "");
    assert_eq!(s.states("default"), [(1, "delayed".to_string())]);
    held(&s, "k", "b", 1);
    assert_eq!(s.entry("default", 1)["key"], "k");
}

fn a_requeued_message_takes_its_free_key_again(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    run_fails_one(&s);
    s.prints(&["requeue", "1"], "1\n");
    held(&s, "k", "b", 1);
    assert_eq!(s.pop_all_text("default"), ["a"]);
}

fn list_shows_the_key(engine: Engine) {
    let s = engine.fixture();
    s.prints(&["push", "--key", "a.b:c@d", "--print-id", "x"], "1\n");
    s.prints(&["push", "--print-id", "y"], "2\n");
    let out = s.run(&["list", "--state", "all"]);
    out.success();
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert!(lines[0].contains(" key=a.b:c@d\t"), "{lines:?}");
    assert!(!lines[1].contains("key="), "{lines:?}");
    let listed = s.list_json("default", "all");
    assert_eq!(listed[0]["key"], "a.b:c@d");
    assert!(listed[1].get("key").is_none(), "{}", listed[1]);
}

fn concurrent_pushers_with_one_key_add_one_message(engine: Engine) {
    let s = engine.fixture();
    s.push(&["the queue exists"]);
    s.prints(&["pop"], "the queue exists");
    let running: Vec<_> = (0..8)
        .map(|i| {
            s.cmd()
                .args([
                    "push",
                    "--key",
                    "same",
                    "--print-id",
                    &format!("pusher {i}"),
                ])
                .spawn()
        })
        .collect();
    let outs: Vec<_> = running.into_iter().map(|r| r.finish()).collect();
    let mut ids = Vec::new();
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
        ids.extend(parse_ids(&out.stdout));
    }
    assert_eq!(ids.len(), 8, "{outs:?}");
    assert!(ids.iter().all(|&id| id == ids[0]), "{ids:?}");
    let added = outs.iter().filter(|o| o.stderr.is_empty()).count();
    assert_eq!(added, 1, "{outs:?}");
    assert_eq!(s.len("default"), 1);
}

fn invalid_keys_are_refused_naming_the_rule(engine: Engine) {
    let s = engine.fixture();
    let long = "x".repeat(65);
    for key in ["", ".x", "a b", "a/b", long.as_str()] {
        s.run(&["push", "--key", key, "m"])
            .error()
            .stderr_has("a key is 1 to 64 characters of A-Z a-z 0-9 . _ - : @ + = , and does not start with '.'");
    }
    s.run(&["len"]).exits(0);
    assert!(s.states("default").is_empty());
    s.prints(
        &["push", "--key", &"x".repeat(64), "--print-id", "m"],
        "1\n",
    );
}

fn key_names_one_message(engine: Engine) {
    let s = engine.fixture();
    s.run(&["push", "--key", "k", "a", "b"])
        .error()
        .stderr_has("--key names one message");
    s.run(&["push", "--print-id", "x"]).success();
    assert_eq!(s.listed_ids("default"), [1]);
}

fn key_is_not_for_lines_or_null(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "--key", "k", "--lines"], "a\nb\n")
        .error();
    s.run_stdin(&["push", "--key", "k", "--null"], "a\0b\0")
        .error();
    s.run(&["push", "--print-id", "x"]).success();
    assert_eq!(s.listed_ids("default"), [1]);
}

fn a_key_from_standard_input(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push", "--key", "k", "--print-id"], "all\nof it\n")
        .success()
        .stdout_is("1\n");
    s.run_stdin(&["push", "--key", "k", "--print-id"], "again")
        .exits_saying(
            0,
            "spool: push to default: message 1 holds the key k: nothing was pushed\n",
        )
        .stdout_is("1\n");
    s.prints(&["pop"], "all\nof it\n");
}

/// `spool run` fails message 1 for good (exit 100).
#[track_caller]
fn run_fails_one(s: &Fixture) {
    s.run(&["run", "--", "sh", "-c", "exit 100"]).exits_saying(
        3,
        "spool: run: message 1 (queue default): attempt 1 of 5 failed: exit status 100; moved to failed\n",
    );
}

// The local engine's files.

#[test]
fn keys_are_length_files_in_keys() {
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(&["push", "--print-id", "plain"], "1\n");
    assert!(!q.join("keys").exists(), "no key, no keys/");
    s.prints(&["push", "--key", "job.k7", "--print-id", "keyed"], "2\n");
    let keys = std::fs::metadata(q.join("keys")).unwrap();
    assert!(keys.is_dir());
    assert_eq!(keys.permissions().mode() & 0o7777, 0o700);
    let file = std::fs::symlink_metadata(q.join("keys/job.k7")).unwrap();
    assert!(file.is_file());
    assert_eq!(file.permissions().mode() & 0o7777, 0o600);
    assert_eq!(file.len(), 2, "its length is the id");
    assert!(file.blocks() == 0, "never written");
    let name = std::fs::read_dir(q.join("ready/00000000000000000"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("00000000000000000002"))
        .unwrap();
    assert_eq!(name, "00000000000000000002.kjob.k7");
    // Claimed, the name keeps the key; acked, the key file goes.
    let token = s.claim(&[]);
    assert_eq!(token.split('.').next(), Some("1"));
    let token = s.claim(&[]);
    let claimed: Vec<String> = std::fs::read_dir(q.join("claimed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        claimed
            .iter()
            .any(|n| n.starts_with("00000000000000000002.") && n.ends_with(".kjob.k7")),
        "{claimed:?}"
    );
    s.prints(&["ack", &token], "");
    assert!(!q.join("keys/job.k7").exists());
    assert!(s.states("default").len() == 1);
}

#[test]
fn a_key_held_by_another_message_stays_when_a_requeued_one_goes() {
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(&["push", "--key", "k", "--print-id", "a"], "1\n");
    run_fails_one(&s);
    s.prints(&["push", "--key", "k", "--print-id", "b"], "2\n");
    // The key is held by 2: 1 comes back holding none, and without its key.
    s.prints(&["requeue", "1"], "1\n");
    assert_eq!(std::fs::metadata(q.join("keys/k")).unwrap().len(), 2);
    assert!(s.entry("default", 1)["key"].is_null());
    s.prints(&["pop"], "b"); // 2 went before 1, requeued behind it
    assert!(!q.join("keys/k").exists());
    let c = added(&s, "k", "c");
    s.prints(&["pop"], "a");
    assert_eq!(
        std::fs::metadata(q.join("keys/k")).unwrap().len(),
        c,
        "1 released nothing of c's"
    );
}

/// A dead letter requeued while another message holds its key goes back without the key
/// (its name loses the `k` field): fsck finds nothing to mend, now or once the other one
/// is gone.
#[test]
fn a_message_requeued_while_another_holds_its_key_goes_back_without_it() {
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(
        &["push", "--key", "k", "--ttl", "100ms", "--print-id", "a"],
        "1\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    s.run(&["pop"]).nothing();
    assert_eq!(s.states("default"), [(1, "failed".to_string())]);
    s.prints(&["push", "--key", "k", "--print-id", "b"], "2\n");
    s.prints(&["requeue", "--all"], "1\n");
    assert!(s.entry("default", 1)["key"].is_null());
    s.prints(&["fsck"], "");
    s.prints(&["pop"], "b");
    assert!(!q.join("keys/k").exists());
    s.prints(&["fsck"], "");
    let c = added(&s, "k", "c");
    s.prints(&["pop"], "a");
    assert_eq!(std::fs::metadata(q.join("keys/k")).unwrap().len(), c);
    s.prints(&["fsck"], "");
}

#[test]
fn fsck_removes_a_stale_key_file_and_makes_a_missing_one() {
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(&["push", "--key", "a", "--print-id", "x"], "1\n");
    s.prints(&["push", "--key", "b", "--print-id", "y"], "2\n");
    std::fs::remove_file(q.join("keys/b")).unwrap();
    let stale = std::fs::OpenOptions::new()
        .write(true)
        .open(q.join("keys/a"))
        .unwrap();
    stale.set_len(7).unwrap();
    std::fs::File::create(q.join("keys/gone"))
        .unwrap()
        .set_len(1)
        .unwrap();
    std::fs::create_dir(q.join("keys/dir")).unwrap();
    let keys = q.join("keys").display().to_string();
    let out = s.run(&["fsck"]);
    out.exits(3);
    let text = out.text();
    for finding in [
        format!("{keys}/a: holds the key for message 7, which is not in the queue with it\n"),
        format!("{keys}/gone: holds the key for message 1, which is not in the queue with it\n"),
        format!("{keys}/b: is missing: message 2 has the key, and no message holds it\n"),
        format!("{keys}/dir: is a directory, not a key file\n"),
    ] {
        assert!(text.contains(&finding), "{finding:?} in\n{text}");
    }
    s.run(&["fsck", "--repair"]).exits(0);
    s.prints(&["fsck"], "");
    assert_eq!(std::fs::metadata(q.join("keys/a")).unwrap().len(), 1);
    assert_eq!(std::fs::metadata(q.join("keys/b")).unwrap().len(), 2);
    assert!(!q.join("keys/gone").exists());
    held(&s, "b", "z", 2);
    assert_eq!(s.len("default"), 2);
}

/// An ack held up until the claim's lease ended, the message taken and deleted by a pop
/// meanwhile: the ack finds the claim gone and leaves keys/ alone, so the key is free.
#[test]
fn an_ack_after_the_lease_ended_makes_no_key_for_a_gone_message() {
    if let Err(why) = strace_usable() {
        return skip(&why);
    }
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(&["push", "--key", "nightly", "--print-id", "job"], "1\n");
    let token = s.claim(&["--lease", "1s"]);
    // The ack waits 3 s before its first flock: that of the producer lock.
    let ack = s
        .cmd()
        .pause_before("flock", 1, 3)
        .args(["ack", &token])
        .spawn();
    std::thread::sleep(Duration::from_millis(1500));
    s.prints(&["pop"], "job");
    ack.finish().exits_saying(
        2,
        &format!("spool: token {token}: the claim ended while acking: nothing was acked\n"),
    );
    assert!(
        !q.join("keys/nightly").exists(),
        "no key for a gone message"
    );
    s.prints(&["fsck"], "");
    s.prints(&["push", "--key", "nightly", "--print-id", "again"], "2\n");
}

/// A keyed push makes its key file pending (no write permission), renames it into keys/
/// and syncs keys/ before its message appears; once the message's directory is synced it
/// makes the key held (mode 0600), all under the producer lock: no message of it is ever
/// in place without its key, and a held key names a message that is durable.
#[test]
fn a_keyed_push_makes_its_key_before_its_message_appears() {
    if let Err(why) = strace_usable() {
        return skip(&why);
    }
    let s = Fixture::new();
    s.push(&["first"]); // the queue and its bucket exist
    let lines = traced(
        &s,
        &["push", "--key", "nightly", "--print-id", "job"],
        "2\n",
    );
    let key = at(&lines, "rename of the key", |l| {
        l.starts_with("renameat2(") && l.contains("/keys>, \"nightly\"")
    });
    let keys_synced = at(&lines, "fsync of keys/", |l| {
        l.starts_with("fsync(") && l.contains("/keys>")
    });
    let message = at(&lines, "rename of the message", |l| {
        l.starts_with("renameat2(") && l.contains("\"00000000000000000002.knightly\"")
    });
    let bucket = at(&lines, "fsync of the bucket", is_bucket_sync);
    // The last change of mode (the first ones make the file in tmp/ pending).
    let held = lines
        .iter()
        .rposition(|l| l.starts_with("fchmod(") && l.contains("/keys/nightly>"))
        .unwrap_or_else(|| panic!("no change of the key's mode in\n{lines:#?}"));
    let unlock = at(&lines, "release of the producer lock", is_unlock);
    assert!(
        key < keys_synced
            && keys_synced < message
            && message < bucket
            && bucket < held
            && held < unlock,
        "key {key}, keys/ synced {keys_synced}, message {message}, bucket synced {bucket}, \
         held {held}, unlock {unlock}:\n{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| is_bucket_sync(l)).count(),
        1,
        "synced once"
    );
    let mode = std::fs::metadata(s.queue_dir("default").join("keys/nightly"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "held");
    // Without a key: the bucket is synced once the producer lock is released, as before.
    let lines = traced(&s, &["push", "--print-id", "plain"], "3\n");
    let unlock = at(&lines, "release of the producer lock", is_unlock);
    let bucket = at(&lines, "fsync of the bucket", is_bucket_sync);
    assert!(unlock < bucket, "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| is_bucket_sync(l)).count(),
        1,
        "synced once"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("fsync(")).count(),
        1,
        "{lines:#?}"
    );
}

/// Runs spool with `args` under strace (fsync, renameat2, close, with the paths of
/// descriptors), asserts its success and output, and returns the trace's lines.
fn traced(s: &Fixture, args: &[&str], stdout: &str) -> Vec<String> {
    let trace = s.outside("push.trace");
    s.cmd()
        .wrap([
            "strace".as_ref(),
            "-qq".as_ref(),
            "-y".as_ref(),
            "-o".as_ref(),
            trace.as_os_str(),
            "-e".as_ref(),
            "trace=fsync,renameat2,close,fchmod".as_ref(),
        ] as [&std::ffi::OsStr; 7])
        .args(args)
        .run()
        .success()
        .stdout_is(stdout);
    let text = std::fs::read_to_string(&trace).unwrap();
    text.lines().map(str::to_string).collect()
}

/// The index of the first line of `lines` that `found` accepts.
#[track_caller]
fn at(lines: &[String], what: &str, found: impl Fn(&str) -> bool) -> usize {
    lines
        .iter()
        .position(|l| found(l))
        .unwrap_or_else(|| panic!("no {what} in\n{lines:#?}"))
}

fn is_bucket_sync(line: &str) -> bool {
    line.starts_with("fsync(") && line.contains("/ready/00000000000000000>")
}

fn is_unlock(line: &str) -> bool {
    line.starts_with("close(") && line.contains("/counter>")
}

/// A keyed push that fails after its key file was made pending (here keys/ cannot be
/// synced) removes that key before it releases the producer lock: its id was planned but
/// not yet allocated, so the next push may be given it, and a key of the same name made
/// for that push must not be the one removed.
#[test]
fn a_failed_keyed_push_removes_its_pending_key_under_the_lock() {
    if let Err(why) = strace_usable() {
        return skip(&why);
    }
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(&["push", "--key", "first", "--print-id", "a"], "1\n");
    // Which fsync syncs keys/ in a push like the one to fail.
    let lines = traced(&s, &["push", "--key", "second", "--print-id", "b"], "2\n");
    let syncs: Vec<&String> = lines.iter().filter(|l| l.starts_with("fsync(")).collect();
    let n = 1 + syncs
        .iter()
        .position(|l| l.contains("/keys>"))
        .unwrap_or_else(|| panic!("no fsync of keys/ in\n{lines:#?}"));
    let trace = s.outside("failed.trace");
    s.cmd()
        .wrap([
            "strace".to_string(),
            "-qq".into(),
            "-y".into(),
            "-o".into(),
            trace.to_string_lossy().into_owned(),
            "-e".into(),
            "trace=fsync,unlinkat,close".into(),
            "-e".into(),
            format!("inject=fsync:error=EIO:when={n}"),
        ])
        .args(["push", "--key", "nightly", "--print-id", "job"])
        .run()
        .exits_saying(
            2,
            &format!(
                "spool: fsync {}: Input/output error (nothing was pushed)\n",
                q.join("keys").display()
            ),
        );
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let removed = at(&lines, "removal of the pending key", |l| {
        l.starts_with("unlinkat(") && l.contains("/keys>, \"nightly\"")
    });
    let unlock = at(&lines, "release of the producer lock", is_unlock);
    assert!(
        removed < unlock,
        "removed {removed}, unlock {unlock}:\n{lines:#?}"
    );
    assert!(!q.join("keys/nightly").exists());
    s.prints(&["push", "--key", "nightly", "--print-id", "job"], "3\n");
    assert_eq!(s.len("default"), 3);
}

/// A pending key file (no write permission: its push was cut short) naming a message in
/// the queue with its key is nothing wrong: fsck reports nothing, and a repair makes it
/// held. One naming no such message is stale: reported and removed.
#[test]
fn fsck_makes_a_pending_key_of_a_live_message_held_and_removes_a_stale_one() {
    let s = Fixture::new();
    let q = s.queue_dir("default");
    s.prints(&["push", "--key", "live", "--print-id", "x"], "1\n");
    let pend = |name: &str| {
        std::fs::set_permissions(q.join("keys").join(name), PermissionsExt::from_mode(0o400))
            .unwrap()
    };
    let mode = |name: &str| {
        std::fs::metadata(q.join("keys").join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    pend("live");
    s.prints(&["fsck"], "");
    assert_eq!(mode("live"), 0o400, "reporting changes nothing");
    std::fs::File::create(q.join("keys/gone"))
        .unwrap()
        .set_len(2)
        .unwrap();
    pend("gone");
    let out = s.run(&["fsck"]);
    out.exits(3);
    let keys = q.join("keys").display().to_string();
    assert_eq!(
        out.text(),
        format!(
            "{keys}/gone: is pending for message 2, which is not in the queue with it: its \
             push was cut short\n"
        )
    );
    s.run(&["fsck", "--repair"]).exits(0);
    s.prints(&["fsck"], "");
    assert_eq!(mode("live"), 0o600, "held");
    assert!(!q.join("keys/gone").exists());
    held(&s, "live", "y", 1);
    s.prints(&["push", "--key", "gone", "--print-id", "z"], "2\n");
}
