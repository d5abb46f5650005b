//! The on-disk layout and its permissions.
//!
//! `ROOT/QUEUE/{format,counter,head,tmp/,ready/,claimed/}`; message N at
//! `ready/<N/1000 in 17 digits>/<N in 20 digits>` holding exactly the payload; `format` is
//! "spool-queue 1\n"; the length of `counter` is the next id. Directories are 0700 and
//! files 0600 whatever the umask; read-only commands create nothing.

use std::path::{Path, PathBuf};

use crate::harness::{Cmd, Fixture, Mount, json_lines, missing, mode, names_in, require};

fn counter_len(s: &Fixture, queue: &str) -> u64 {
    std::fs::metadata(s.queue_dir(queue).join("counter"))
        .expect("counter exists")
        .len()
}

#[test]
fn first_push_creates_the_queue_layout() {
    let s = Fixture::new();
    assert!(!s.root().exists());
    s.push(&["hello"]);
    assert_eq!(names_in(s.root()), ["default"]);
    let q = s.queue_dir("default");
    let present = names_in(&q);
    for name in ["claimed", "counter", "format", "head", "ready", "tmp"] {
        assert!(
            present.iter().any(|p| p == name),
            "no {name} in {present:?}"
        );
    }
    for dir in ["tmp", "ready", "claimed"] {
        assert!(q.join(dir).is_dir(), "{dir} is a directory");
    }
    assert_eq!(std::fs::read(q.join("format")).unwrap(), b"spool-queue 1\n");
    assert_eq!(names_in(&q.join("tmp")), Vec::<String>::new());
    assert_eq!(names_in(&q.join("claimed")), Vec::<String>::new());
    assert_eq!(names_in(&q.join("ready")), ["00000000000000000"]);
    assert_eq!(
        names_in(&q.join("ready/00000000000000000")),
        ["00000000000000000001"]
    );
    assert_eq!(
        std::fs::read(s.message_path("default", 1)).unwrap(),
        b"hello"
    );
    assert_eq!(counter_len(&s, "default"), 2);
}

#[test]
fn counter_length_is_the_next_id() {
    let s = Fixture::new();
    s.push(&["a", "b", "c"]);
    assert_eq!(counter_len(&s, "default"), 4);
    s.run(&["pop"]).success();
    assert_eq!(counter_len(&s, "default"), 4);
    assert_eq!(s.push_id("default", "d"), 4);
    assert_eq!(counter_len(&s, "default"), 5);
}

#[test]
fn message_files_are_named_by_id_and_hold_the_payload() {
    let s = Fixture::new();
    let input: String = (1..=42).map(|i| format!("m{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], input).success();
    let bucket = s.queue_dir("default").join("ready/00000000000000000");
    let expected: Vec<String> = (1..=42).map(|i| format!("{i:020}")).collect();
    assert_eq!(names_in(&bucket), expected);
    assert_eq!(
        std::fs::read(
            s.queue_dir("default")
                .join("ready/00000000000000000/00000000000000000042")
        )
        .unwrap(),
        b"m42"
    );
    for i in 1..=42u64 {
        assert_eq!(
            std::fs::read(s.message_path("default", i)).unwrap(),
            format!("m{i}").as_bytes()
        );
    }
}

#[test]
fn buckets_hold_a_thousand_ids() {
    let s = Fixture::new();
    let input: String = (1..=1001).map(|i| format!("{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], input).success();
    let ready = s.queue_dir("default").join("ready");
    assert_eq!(names_in(&ready), ["00000000000000000", "00000000000000001"]);
    assert_eq!(names_in(&ready.join("00000000000000000")).len(), 999);
    assert_eq!(
        names_in(&ready.join("00000000000000001")),
        ["00000000000000001000", "00000000000000001001"]
    );
    assert_eq!(
        std::fs::read(ready.join("00000000000000000/00000000000000000999")).unwrap(),
        b"999"
    );
    assert_eq!(
        std::fs::read(ready.join("00000000000000001/00000000000000001000")).unwrap(),
        b"1000"
    );
    assert_eq!(counter_len(&s, "default"), 1002);
}

/// Asserts 0700 on every directory and 0600 on every file under `path` (and on it).
#[track_caller]
fn assert_private(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        assert_eq!(mode(path), 0o700, "{} is not 0700", path.display());
        for entry in std::fs::read_dir(path).unwrap() {
            assert_private(&entry.unwrap().path());
        }
    } else {
        assert!(meta.is_file(), "{} is not a file", path.display());
        assert_eq!(mode(path), 0o600, "{} is not 0600", path.display());
    }
}

#[test]
fn modes_are_0700_and_0600_whatever_the_umask() {
    for mask in [0o000, 0o022, 0o077, 0o277] {
        let s = Fixture::new();
        s.cmd()
            .umask(mask)
            .args(["-q", "one", "push", "first"])
            .run()
            .success();
        // A batch, a second queue and a second bucket, all under the same umask.
        let lines: String = (1..=1001).map(|i| format!("{i}\n")).collect();
        s.cmd()
            .umask(mask)
            .args(["-q", "one", "push", "--lines"])
            .stdin(lines)
            .run()
            .success();
        s.cmd()
            .umask(mask)
            .args(["-q", "two", "push", "a", "b"])
            .run()
            .success();
        s.cmd().umask(mask).args(["-q", "two", "pop"]).prints("a");
        assert_private(s.root());
        assert!(s.message_path("one", 1002).is_file());
    }
}

#[test]
fn missing_parents_of_the_root_are_created_private() {
    let s = Fixture::new();
    let root = s.outside("a/b/c");
    s.cmd()
        .no_dir()
        .umask(0o000)
        .arg("--dir")
        .arg(&root)
        .args(["push", "m"])
        .run()
        .success();
    assert_private(&root);
    assert_eq!(
        std::fs::read(root.join("default/format")).unwrap(),
        b"spool-queue 1\n"
    );
}

const READ_ONLY: &[&[&str]] = &[
    &["pop"],
    &["pop", "-n", "3", "--lines"],
    &["peek"],
    &["peek", "-n", "2", "-0"],
    &["list"],
    &["list", "--json"],
    &["len"],
    &["stats"],
    &["stats", "--json"],
    &["stats", "--all"],
    &["stats", "--all", "--json"],
    &["queues"],
    &["clear"],
];

#[track_caller]
fn run_read_only(s: &Fixture, queue: &str) {
    for args in READ_ONLY {
        let out = s.cmd().args(["-q", queue]).args(*args).run();
        assert!(out.code == 0 || out.code == 1, "{out:?}");
        // Consumers and clear say that the queue does not exist.
        assert!(
            out.stderr.is_empty() || out.stderr == missing(queue),
            "{out:?}"
        );
    }
}

#[test]
fn read_only_commands_on_a_missing_root_create_nothing() {
    let s = Fixture::new();
    run_read_only(&s, "default");
    run_read_only(&s, "other");
    assert!(!s.root().exists(), "the root was created");
    assert_eq!(names_in(s.tmp()), Vec::<String>::new());
}

#[test]
fn read_only_commands_on_a_missing_queue_create_nothing() {
    let s = Fixture::new();
    std::fs::create_dir(s.root()).unwrap();
    run_read_only(&s, "default");
    assert_eq!(names_in(s.root()), Vec::<String>::new());
    s.run(&["-q", "other", "push", "m"]).success();
    let before = names_in(&s.queue_dir("other"));
    run_read_only(&s, "default");
    assert_eq!(names_in(s.root()), ["other"]);
    assert_eq!(names_in(&s.queue_dir("other")), before);
}

#[test]
fn missing_queue_results() {
    let s = Fixture::new();
    s.run(&["pop"]).says_missing("default", 1, "");
    s.run(&["peek"]).says_missing("default", 1, "");
    s.prints(&["list"], "");
    s.prints(&["list", "--json"], "");
    s.prints(&["len"], "0\n");
    s.run(&["clear"]).says_missing("default", 0, "0\n");
    s.prints(&["queues"], "");
    assert!(!s.root().exists());
}

/// Every path below `dir` with its size and modification time, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p.clone());
            }
            all.push((p, m.size(), m.mtime(), m.mtime_nsec()));
        }
    }
    all.sort();
    all
}

// stats, peek and fsck opened files for writing (`open .../rate: Read-only file system`)
// and failed on a read-only spool, where len, list and show worked: every command that
// changes nothing must work there. On a read-only spool, peek shows the ready lanes as
// they are: returning an abandoned claim or promoting a due message would change them.
#[test]
fn commands_that_change_nothing_work_on_a_read_only_spool() {
    if !require(true, &[("mount", &["--version"])]) {
        return;
    }
    let s = Fixture::new();
    s.push(&["a"]);
    let token = s.claim(&["--lease", "1h"]);
    s.push(&["e"]);
    s.claim(&["--lease", "1ms"]);
    s.push(&["b", "c"]);
    s.push_with(&["--priority", "5"], "p");
    s.push_with(&["--delay", "1h"], "d");
    s.run(&["-q", "other", "push", "z"]).success();
    std::thread::sleep(std::time::Duration::from_millis(50)); // the 1ms lease ends
    let before = snapshot(s.root());
    let ro = s.outside("ro");
    let _mount = Mount::bind_read_only(s.root(), &ro).unwrap_or_else(|e| panic!("{e}"));
    let spool = |args: &[&str]| Cmd::at(&ro).args(args).run();
    let prints = |args: &[&str], expected: &str| {
        let out = spool(args);
        out.success().stdout_is(expected);
    };

    let out = spool(&["stats", "--json"]);
    out.success();
    let stats = &json_lines(&out.stdout)[0];
    assert_eq!(
        (&stats["waiting"], &stats["delayed"], &stats["claimed"]),
        (&3.into(), &1.into(), &2.into()),
        "{out:?}"
    );
    spool(&["stats"]).success();
    let out = spool(&["stats", "--all"]);
    out.success();
    assert_eq!(
        out.text().lines().count(),
        3,
        "a header and two queues: {out:?}"
    );
    prints(&["peek"], "p");
    prints(&["peek", "-n", "10", "--lines"], "p\nb\nc\n");
    prints(&["peek", "--wait", "--timeout", "1s"], "p");
    prints(&["len"], "3\n");
    prints(&["queues"], "default\nother\n");
    prints(&["show", "1"], "a");
    prints(&["show", &token], "a");
    prints(&["-q", "other", "peek"], "z");
    assert_eq!(
        spool(&["list", "--state", "all"])
            .success()
            .text()
            .lines()
            .count(),
        6
    );
    let out = spool(&["fsck"]);
    assert_eq!(out.code, 3, "the ended lease is reported: {out:?}");
    assert!(
        out.text().contains("is a claim whose lease ended"),
        "{out:?}"
    );
    assert_eq!(out.text().lines().count(), 1, "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    // What would change the spool fails, and changes nothing.
    for args in [
        &["pop"][..],
        &["push", "x"],
        &["ack", &token],
        &["fsck", "--repair"],
    ] {
        spool(args).error().stderr_has("Read-only file system");
    }
    assert_eq!(snapshot(s.root()), before, "nothing changed");
}
