//! Bad roots and hostile queue contents.
//!
//! A root that is a regular file or that spool may not read fails cleanly. Entries that
//! spool did not write — a stray file in a bucket, a symlink, a FIFO, a directory or a
//! multiply linked file named like a message — are never read, followed or deleted: they
//! are reported with "spool: warning: skipping ..." and the real messages still come out
//! in order.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::harness::{Fixture, Output, names_in, skip, tool_works};

pub(super) const EVERY_COMMAND: &[&[&str]] = &[
    &["push", "x"],
    &["pop"],
    &["peek"],
    &["list"],
    &["list", "--json"],
    &["len"],
    &["stats"],
    &["stats", "--all", "--json"],
    &["clear"],
    &["queues"],
];

#[test]
fn a_root_that_is_a_regular_file() {
    let s = Fixture::new();
    fs::write(s.root(), "not a directory\n").unwrap();
    let before = fs::metadata(s.root()).unwrap();
    for args in EVERY_COMMAND {
        let out = s.run(args);
        out.error();
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = s.run(&["push", "x"]);
    out.error().stderr_has("Not a directory");
    let after = fs::metadata(s.root()).unwrap();
    assert!(after.is_file());
    assert_eq!(fs::read(s.root()).unwrap(), b"not a directory\n");
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert_eq!(names_in(s.tmp()), ["spool"]);
}

#[test]
fn a_root_below_a_regular_file() {
    let s = Fixture::new();
    let file = s.outside("file");
    fs::write(&file, "x").unwrap();
    let out = s
        .cmd()
        .no_dir()
        .arg("--dir")
        .arg(file.join("spool"))
        .args(["push", "m"])
        .run();
    out.error();
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_root_that_is_a_symlink_to_a_directory_works() {
    let s = Fixture::new();
    let real = s.outside("real");
    fs::create_dir(&real).unwrap();
    symlink(&real, s.root()).unwrap();
    s.push(&["through the link"]);
    assert_eq!(names_in(&real), ["default"]);
    s.prints(&["pop"], "through the link");
}

#[test]
fn a_root_spool_may_not_read() {
    if !rustix::process::geteuid().is_root() {
        return skip("not running as root, cannot drop privileges to test permissions");
    }
    if let Err(why) = tool_works(
        "setpriv",
        &[
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "true",
        ],
    ) {
        return skip(&why);
    }
    let s = Fixture::new();
    // The temporary directory is 0700: let nobody reach the root, which stays 0700.
    fs::set_permissions(s.tmp(), fs::Permissions::from_mode(0o755)).unwrap();
    let version = s.cmd().run_as_nobody().arg("--version").run();
    if version.code != 0 {
        return skip(&format!(
            "nobody cannot run {}: {version:?}",
            crate::harness::BIN
        ));
    }
    s.push(&["private"]);
    assert_eq!(crate::harness::mode(s.root()), 0o700);
    for args in EVERY_COMMAND {
        let out = s.cmd().run_as_nobody().args(*args).run();
        out.error().stderr_has("Permission denied");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // Nothing changed for the owner.
    assert_eq!(names_in(s.root()), ["default"]);
    s.prints(&["pop"], "private");
    s.run(&["pop"]).nothing();
}

/// Every name below `dir`, as paths relative to it, sorted.
pub(super) fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p.clone());
            }
            all.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    all.sort();
    all
}

// A queue directory was accepted as a spool root: `--dir QUEUE -q ready push x` built a
// whole queue inside the real queue's ready/.
#[test]
fn a_root_that_is_a_queue_directory_or_inside_one_is_refused() {
    let s = Fixture::new();
    s.push(&["m"]);
    let queue = s.queue_dir("default");
    let link = s.outside("link");
    symlink(queue.join("tmp"), &link).unwrap();
    let before = tree(s.root());
    let roots: [(PathBuf, &str); 7] = [
        (queue.clone(), "is a queue directory"),
        (queue.join("ready"), "lies inside the queue directory"),
        (
            queue.join("ready/00000000000000000"),
            "lies inside the queue directory",
        ),
        (
            queue.join("claimed/new/spool"),
            "lies inside the queue directory",
        ),
        (queue.join("ready-3"), "lies inside the queue directory"),
        (link.clone(), "lies inside the queue directory"),
        (link.join("new"), "lies inside the queue directory"),
    ];
    for (root, why) in &roots {
        for args in EVERY_COMMAND.iter().copied().chain([
            &["-q", "ready", "push", "x"][..],
            &["fsck"],
            &["fsck", "--repair"],
            &["claim"],
            &["run", "--", "true"],
        ]) {
            let out = s.cmd().no_dir().arg("--dir").arg(root).args(args).run();
            out.error()
                .stderr_has(why)
                .stderr_has(&format!("(its spool directory is {})", s.root().display()));
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }
    assert_eq!(tree(s.root()), before, "nothing created or moved");
    s.prints(&["pop"], "m");
}

/// A queue with real messages at ids 1, 3, 5, 7 and 9 and, in place of the others, a
/// symlink to a file outside the spool (2), a FIFO (4), a file with a second link outside
/// the spool (6), a directory (8); plus a stray file "junk" in the bucket.
pub(super) struct Planted {
    s: Fixture,
    outside: PathBuf,
    linked: PathBuf,
    junk: Vec<PathBuf>,
}

pub(super) const OUTSIDE: &[u8] = b"outside the spool: must never be read or removed\n";
pub(super) const LINKED: &[u8] = b"hard-linked from outside\n";
pub(super) const JUNK: &[u8] = b"junk\n";

pub(super) fn plant() -> Planted {
    let s = Fixture::new();
    s.push(&["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]);
    let at = |id| s.message_path("default", id);
    for id in [2, 4, 6, 8] {
        fs::remove_file(at(id)).unwrap();
    }
    let outside = s.outside("outside.txt");
    fs::write(&outside, OUTSIDE).unwrap();
    symlink(&outside, at(2)).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        at(4),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let linked = s.outside("linked.txt");
    fs::write(&linked, LINKED).unwrap();
    fs::hard_link(&linked, at(6)).unwrap();
    fs::create_dir(at(8)).unwrap();
    let junk_file = at(1).with_file_name("junk");
    fs::write(&junk_file, JUNK).unwrap();
    Planted {
        junk: vec![at(2), at(4), at(6), at(8), junk_file],
        s,
        outside,
        linked,
    }
}

impl Planted {
    /// Asserts that every planted entry is intact.
    #[track_caller]
    fn intact(&self) {
        let [sym, fifo, hard, dir, junk] = &self.junk[..] else {
            unreachable!()
        };
        assert_eq!(fs::read(&self.outside).unwrap(), OUTSIDE);
        assert_eq!(fs::read_link(sym).unwrap(), self.outside);
        assert!(fs::symlink_metadata(fifo).unwrap().file_type().is_fifo());
        assert_eq!(fs::read(&self.linked).unwrap(), LINKED);
        assert_eq!(fs::read(hard).unwrap(), LINKED);
        assert_eq!(fs::metadata(&self.linked).unwrap().nlink(), 2);
        assert!(fs::symlink_metadata(dir).unwrap().is_dir());
        assert_eq!(fs::read(junk).unwrap(), JUNK);
    }

    /// Runs `spool ARGS...` and asserts exit 0, `expected` on standard output, only
    /// warnings on standard error, one about each planted entry, and every entry intact.
    #[track_caller]
    fn run_past_all(&self, args: &[&str], expected: &[u8]) {
        let out = self.s.run(args);
        ok_with_warnings(&out);
        assert_eq!(out.stdout, expected);
        self.warned_about_all(&out.stderr);
        self.intact();
    }

    /// Asserts that stderr holds only warnings, and one about each planted entry.
    #[track_caller]
    fn warned_about_all(&self, stderr: &str) {
        assert_only_warnings(stderr);
        for path in &self.junk {
            let path = path.to_str().unwrap();
            assert!(
                stderr.lines().any(|l| l.contains(path)),
                "no warning naming {path}:\n{stderr}"
            );
        }
    }
}

#[track_caller]
pub(super) fn assert_only_warnings(stderr: &str) {
    for line in stderr.lines() {
        assert!(
            line.starts_with("spool: warning: skipping "),
            "not a warning: {line:?}\n{stderr}"
        );
    }
    assert!(stderr.is_empty() || stderr.ends_with('\n'));
}

pub(super) fn json_ids(out: &Output) -> Vec<u64> {
    crate::harness::json_lines(&out.stdout)
        .iter()
        .map(|o| o["id"].as_u64().expect("id"))
        .collect()
}

#[track_caller]
pub(super) fn ok_with_warnings(out: &Output) {
    assert_eq!(out.code, 0, "{out:?}");
    assert_only_warnings(&out.stderr);
}

#[test]
fn list_skips_planted_entries() {
    let p = plant();
    let out = p.s.run(&["list"]);
    ok_with_warnings(&out);
    let ids: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(ids, ["1", "3", "5", "7", "9"]);
    p.warned_about_all(&out.stderr);
    let out = p.s.run(&["list", "--json"]);
    ok_with_warnings(&out);
    p.warned_about_all(&out.stderr);
    assert_eq!(json_ids(&out), [1, 3, 5, 7, 9]);
    let out = p.s.run(&["len"]);
    ok_with_warnings(&out);
    assert_eq!(out.stdout, b"5\n");
    p.intact();
}

#[test]
fn peek_skips_planted_entries() {
    let p = plant();
    p.run_past_all(&["peek", "-n", "20", "--lines"], b"m1\nm3\nm5\nm7\nm9\n");
}

#[test]
fn pop_skips_planted_entries_and_keeps_the_order() {
    let p = plant();
    let mut stderr = String::new();
    let mut popped = Vec::new();
    loop {
        let out = p.s.run(&["pop"]);
        assert!(out.code == 0 || out.code == 1, "{out:?}");
        assert_only_warnings(&out.stderr);
        stderr.push_str(&out.stderr);
        if out.code == 1 {
            assert!(out.stdout.is_empty(), "{out:?}");
            break;
        }
        popped.push(String::from_utf8(out.stdout).unwrap());
        assert!(popped.len() <= 5, "popped {popped:?}");
    }
    assert_eq!(popped, ["m1", "m3", "m5", "m7", "m9"]);
    p.warned_about_all(&stderr);
    p.intact();
    // The queue still works, with fresh ids.
    assert!(p.s.push_id("default", "m10") >= 10);
    let out = p.s.run(&["pop", "-n", "5", "--lines"]);
    ok_with_warnings(&out);
    assert_eq!(out.stdout, b"m10\n");
    p.intact();
}

#[test]
fn pop_many_skips_planted_entries() {
    let p = plant();
    p.run_past_all(&["pop", "-n", "20", "-0"], b"m1\0m3\0m5\0m7\0m9\0");
}

#[test]
fn clear_removes_only_real_messages() {
    let p = plant();
    p.run_past_all(&["clear"], b"5\n");
    let out = p.s.run(&["list", "--json"]);
    ok_with_warnings(&out);
    assert_eq!(json_ids(&out), Vec::<u64>::new());
    let out = p.s.run(&["clear"]);
    ok_with_warnings(&out);
    assert_eq!(out.stdout, b"0\n");
    p.intact();
}

#[test]
fn stats_counts_only_real_messages() {
    let p = plant();
    let out = p.s.run(&["stats", "--json"]);
    ok_with_warnings(&out);
    let o = &crate::harness::json_lines(&out.stdout)[0];
    assert_eq!(o["waiting"], 5);
    assert_eq!(o["bytes"], 10);
    p.intact();
}

#[test]
fn planted_entries_elsewhere_in_the_queue_are_left_alone() {
    let s = Fixture::new();
    s.push(&["a", "b"]);
    let q = s.queue_dir("default");
    let outside = s.outside("outside.txt");
    fs::write(&outside, OUTSIDE).unwrap();
    let plants: Vec<PathBuf> = vec![
        q.join("ready/not-a-bucket"),
        q.join("claimed/garbage"),
        q.join("claimed/00000000000000000001.zz"),
        q.join("tmp/link-to-outside"),
    ];
    fs::write(&plants[0], JUNK).unwrap();
    fs::write(&plants[1], JUNK).unwrap();
    fs::write(&plants[2], JUNK).unwrap();
    symlink(&outside, &plants[3]).unwrap();
    // A push that creates a bucket sweeps tmp/; pops scan ready/ and claimed/.
    let lines: String = (0..1000).map(|i| format!("{i}\n")).collect();
    let out = s.cmd().args(["push", "--lines"]).stdin(lines).run();
    ok_with_warnings(&out);
    let out = s.run(&["pop", "-n", "2000", "--lines"]);
    ok_with_warnings(&out);
    assert!(out.stdout.starts_with(b"a\nb\n0\n1\n"), "{out:?}");
    let out = s.run(&["pop"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_only_warnings(&out.stderr);
    assert_eq!(fs::read(&outside).unwrap(), OUTSIDE);
    for plant in &plants[..3] {
        assert_eq!(fs::read(plant).unwrap(), JUNK, "{}", plant.display());
    }
    assert_eq!(fs::read_link(&plants[3]).unwrap(), outside);
}

#[test]
fn a_symlink_at_the_head_is_not_followed() {
    let s = Fixture::new();
    s.push(&["first", "second"]);
    let outside = s.outside("outside.txt");
    fs::write(&outside, OUTSIDE).unwrap();
    let head = s.message_path("default", 1);
    fs::remove_file(&head).unwrap();
    symlink(&outside, &head).unwrap();
    let out = s.run(&["pop"]);
    ok_with_warnings(&out);
    assert_eq!(out.stdout, b"second");
    assert!(out.stderr.contains("00000000000000000001"), "{out:?}");
    assert_eq!(fs::read(&outside).unwrap(), OUTSIDE);
    assert_eq!(fs::read_link(&head).unwrap(), outside);
    let out = s.run(&["pop"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_queue_format_is_refused() {
    let s = Fixture::new();
    s.push(&["m"]);
    let format = s.queue_dir("default").join("format");
    fs::write(&format, "spool-queue 99\n").unwrap();
    for args in [
        &["push", "x"][..],
        &["pop"],
        &["peek"],
        &["list"],
        &["len"],
        &["clear"],
    ] {
        s.run(args).error();
    }
    assert_eq!(fs::read(&format).unwrap(), b"spool-queue 99\n");
    assert_eq!(fs::read(s.message_path("default", 1)).unwrap(), b"m");
    assert!(!s.message_path("default", 2).exists());
}

#[test]
fn pop_to_a_full_device_is_an_error_that_keeps_the_message() {
    if !Path::new("/dev/full").exists() {
        return skip("/dev/full does not exist");
    }
    let s = Fixture::new();
    s.push(&["stay"]);
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = s
        .cmd()
        .arg("pop")
        .run_with_stdout(std::process::Stdio::from(full));
    out.error().stderr_has("stays in the queue");
    assert!(out.stderr.starts_with("spool: "));
    s.prints(&["len"], "1\n");
    s.prints(&["peek"], "stay");
}

#[test]
fn a_message_locked_by_another_process_is_skipped_and_taken_once_free() {
    let s = Fixture::new();
    s.push(&["locked", "free"]);
    // Another program (this test) holds an flock on the first message, which spool never
    // does on a waiting one: pop must not take it from under that program, nor forget it.
    let holder = fs::File::open(s.message_path("default", 1)).unwrap();
    holder.lock().unwrap();
    let out = s.run(&["pop"]);
    assert_eq!(
        (out.code, out.stdout.as_slice()),
        (0, &b"free"[..]),
        "{out:?}"
    );
    assert!(out.stderr.contains("locked by another process"), "{out:?}");
    let out = s.run(&["pop"]);
    assert_eq!((out.code, out.stdout.as_slice()), (1, &b""[..]), "{out:?}");
    assert!(out.stderr.contains("locked by another process"), "{out:?}");
    drop(holder);
    s.prints(&["pop"], "locked");
    s.run(&["pop"]).nothing();
}

#[test]
fn a_format_file_that_is_not_exactly_the_format_is_refused() {
    let s = Fixture::new();
    s.push(&["m"]);
    let format = s.queue_dir("default").join("format");
    let long = format!("spool-queue 1\n{}", "x".repeat(100));
    let cases: [(&str, &dyn Fn()); 4] = [
        ("unsupported queue format", &|| {
            fs::write(&format, "spool-queue 1\nmore\n").unwrap()
        }),
        ("unsupported queue format", &|| {
            fs::write(&format, &long).unwrap()
        }),
        ("not a regular file", &|| fs::create_dir(&format).unwrap()),
        ("not a regular file", &|| {
            let status = std::process::Command::new("mkfifo")
                .arg(&format)
                .status()
                .unwrap();
            assert!(status.success());
        }),
    ];
    for (why, plant) in cases {
        let _ = fs::remove_file(&format);
        let _ = fs::remove_dir(&format);
        plant();
        for args in [&["push", "x"][..], &["pop"], &["len"]] {
            s.run(args).error().stderr_has(why);
        }
    }
    assert_eq!(fs::read(s.message_path("default", 1)).unwrap(), b"m");
    assert!(!s.message_path("default", 2).exists());
}

#[test]
fn a_counter_behind_the_messages_hides_none_and_reuses_no_key_below_the_head() {
    let s = Fixture::new();
    s.push(&["a", "b", "c", "d", "e"]);
    s.prints(&["pop", "-n", "2", "--lines"], "a\nb\n");
    // A damaged queue: message 3 gone, the counter set back below the head (3).
    fs::remove_file(s.message_path("default", 3)).unwrap();
    let counter = s.queue_dir("default").join("counter");
    fs::OpenOptions::new()
        .write(true)
        .open(&counter)
        .unwrap()
        .set_len(2)
        .unwrap();
    s.prints(&["pop"], "d");
    // A push must not take a key below the head, where no pop would look.
    let out = s.run(&["push", "f"]);
    assert_eq!(out.code, 0, "{out:?}");
    s.prints(&["pop", "-n", "5", "--lines"], "e\nf\n");
    s.run(&["pop"]).nothing();
    // A missing counter is an error, not an empty queue.
    fs::remove_file(&counter).unwrap();
    s.run(&["pop"]).error().stderr_has("counter");
}
