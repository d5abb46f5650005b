//! `spool fsck`: a clean queue reports nothing (exit 0); each kind of damage is reported
//! with a line naming the damaged path (exit 3), `fsck --repair` mends it (exit 0, every
//! line says what it did), a second `fsck` reports nothing, and no message was lost:
//! every message there before is still there with the same content, and what fsck moved
//! away is in `corrupt/`, whole.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::harness::{Cmd, Output, Problems, Witness, list_all, names_in, now_ms};

const B0: &str = "00000000000000000";

fn spool(root: &Path, args: &[&str]) -> Output {
    Cmd::at(root).args(args).run()
}

/// A queue with a message in every state: 1 failed, 2 3 4 ready, 5 claimed (by a lease),
/// 6 delayed, 7 ready at priority 7.
fn queue(tmp: &Path) -> PathBuf {
    let root = tmp.join("spool");
    spool(&root, &["push", "f"]).success();
    spool(&root, &["run", "--max", "1", "--", "sh", "-c", "exit 100"]);
    spool(&root, &["push", "a", "b", "c"]).success();
    spool(&root, &["push", "--priority", "5", "p"]).success();
    spool(&root, &["push", "--delay", "1h", "d"]).success();
    spool(&root, &["claim", "--lease", "1h"]).success();
    spool(&root, &["push", "--priority", "7", "q"]).success();
    root
}

fn lengthen(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// The messages and their contents, as `list` and `show` give them.
fn contents(root: &Path) -> Vec<(u64, Vec<u8>)> {
    list_all(root, "default")
        .unwrap()
        .iter()
        .map(|l| (l.id, spool(root, &["show", &l.id.to_string()]).stdout))
        .collect()
}

/// Damages a queue, then checks fsck, fsck --repair and fsck again. `damage` returns the
/// path that the report must name.
fn check(damage: impl FnOnce(&Path, &Path) -> PathBuf) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let root = queue(tmp.path());
    let q = root.join("default");
    let mut before = contents(&root);
    let named = damage(&q, tmp.path());
    let shown = format!("{}: ", named.display());
    let report = spool(&root, &["fsck"]);
    report.no_crash(false)?;
    if report.code != 3 || !report.stderr.is_empty() {
        return Err(format!("fsck should exit 3:\n{report:?}"));
    }
    if !report.text_lossy().lines().any(|l| l.starts_with(&shown)) {
        return Err(format!("fsck does not name {shown}\n{report:?}"));
    }
    let repair = spool(&root, &["fsck", "--repair"]);
    repair.no_crash(false)?;
    if !repair.ok() || !repair.stderr.is_empty() {
        return Err(format!("fsck --repair should exit 0:\n{repair:?}"));
    }
    if let Some(l) = repair
        .text_lossy()
        .lines()
        .find(|l| !l.contains(" (repaired: "))
    {
        return Err(format!("fsck --repair left {l:?}"));
    }
    let again = spool(&root, &["fsck"]);
    if !(again.ok() && again.stdout.is_empty() && again.stderr.is_empty()) {
        return Err(format!("fsck after the repair:\n{again:?}"));
    }
    // Nothing lost. (A claim that fsck returned is ready again, with its content.)
    let mut after = contents(&root);
    before.sort();
    after.sort();
    if before != after {
        return Err(format!(
            "the messages changed:\nbefore {before:?}\nafter  {after:?}"
        ));
    }
    // Ids still go up.
    let max = before.iter().map(|m| m.0).max().unwrap_or(0);
    let id = crate::harness::push_id(&root, "default", "new")?;
    if id <= max {
        return Err(format!(
            "a push after the repair got id {id}, not above {max}"
        ));
    }
    Ok(())
}

#[test]
fn a_clean_queue_reports_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = queue(tmp.path());
    for args in [
        &["fsck"][..],
        &["fsck", "--repair"],
        &["-q", "default", "fsck"],
    ] {
        let out = spool(&root, args);
        assert!(
            out.ok() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{out:?}"
        );
    }
    // A missing queue is an error, not a clean report.
    spool(&root, &["-q", "nosuch", "fsck"])
        .check_error()
        .unwrap();
}

#[test]
fn each_kind_of_damage_is_reported_and_repaired() {
    let mut problems = Problems::default();
    let mut run = |what: &str, damage: &dyn Fn(&Path, &Path) -> PathBuf| {
        problems.note(what, check(damage));
    };
    let msg = |q: &Path, id: u64| q.join(format!("ready/{B0}/{id:020}"));
    run("an orphaned temporary file", &|q, _| {
        let p = q.join("tmp/0123456789abcdef");
        fs::write(&p, b"half a message").unwrap();
        p
    });
    run("an orphaned batch", &|q, _| {
        let p = q.join("tmp/0123456789abcdef.batch");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("0"), b"one").unwrap();
        fs::write(p.join("1"), b"two").unwrap();
        p
    });
    run("a foreign file in the queue directory", &|q, _| {
        let p = q.join("notes.txt");
        fs::write(&p, b"mine").unwrap();
        p
    });
    run("a foreign file in tmp/", &|q, _| {
        let p = q.join("tmp/notes");
        fs::write(&p, b"mine").unwrap();
        p
    });
    run("a foreign name in a bucket", &|q, _| {
        let p = q.join(format!("ready/{B0}/notes"));
        fs::write(&p, b"mine").unwrap();
        p
    });
    run("a foreign entry in a lane", &|q, _| {
        let p = q.join("ready/not-a-bucket");
        fs::write(&p, b"mine").unwrap();
        p
    });
    run("a message name in the wrong bucket", &|q, _| {
        let b = q.join("ready/00000000000000009");
        fs::create_dir(&b).unwrap();
        let p = b.join("00000000000000000950");
        fs::write(&p, b"misplaced").unwrap();
        p
    });
    run("a symbolic link in place of a message", &|q, tmp| {
        let w = Witness::file(tmp.join("outside"), b"outside");
        let p = msg(q, 900);
        symlink(&w.path, &p).unwrap();
        p
    });
    run("a hard link in place of a message", &|q, tmp| {
        let w = Witness::file(tmp.join("outside"), b"outside");
        let p = msg(q, 900);
        fs::hard_link(&w.path, &p).unwrap();
        p
    });
    run("a FIFO in place of a message", &|q, _| {
        let p = msg(q, 900);
        rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        p
    });
    run("a directory in place of a message", &|q, _| {
        let p = msg(q, 900);
        fs::create_dir(&p).unwrap();
        p
    });
    run("a foreign name in delayed/", &|q, _| {
        let p = q.join("delayed/notes");
        fs::write(&p, b"mine").unwrap();
        p
    });
    run("a foreign name in failed/", &|q, _| {
        let p = q.join("failed/notes");
        fs::write(&p, b"mine").unwrap();
        p
    });
    run("a claim without a token", &|q, _| {
        let p = q.join("claimed/00000000000000000950");
        fs::write(&p, b"tokenless").unwrap();
        p
    });
    run("a counter behind the messages", &|q, _| {
        lengthen(&q.join("counter"), 2);
        q.join("counter")
    });
    run("a head above the first message", &|q, _| {
        lengthen(&q.join("head"), 100);
        q.join("head")
    });
    run("lanes that leave out a lane holding messages", &|q, _| {
        lengthen(&q.join("lanes"), 0);
        q.join("lanes")
    });
    run(
        "a due time later than the first delayed message",
        &|q, _| {
            lengthen(&q.join("due"), 4_102_444_800);
            q.join("due")
        },
    );
    run("a claim of a process that died", &|q, _| {
        let p = q.join("claimed/00000000000000000003.a1.t0123456789abcdef");
        fs::rename(msg(q, 3), &p).unwrap();
        p
    });
    run("a claim whose lease ended", &|q, _| {
        let p = q.join(format!(
            "claimed/00000000000000000004.a1.t0123456789abcdef.l{}",
            now_ms() - 1000
        ));
        fs::rename(msg(q, 4), &p).unwrap();
        p
    });
    run("a queue whose format file is missing", &|q, _| {
        fs::remove_file(q.join("format")).unwrap();
        q.join("format")
    });
    problems.assert_none("fsck");
}

/// FORMAT.md: "a missing `counter` or `head` is reported and created (with length 0,
/// which counts as 1)". Without them no push or take works, so fsck is the way back.
#[test]
fn a_missing_counter_or_head_is_reported_and_created() {
    let mut problems = Problems::default();
    for name in ["counter", "head"] {
        let r = check(|q, _| {
            fs::remove_file(q.join(name)).unwrap();
            q.join(name)
        });
        problems.note(&format!("a missing {name}"), r);
    }
    problems.assert_none("fsck");
}

/// What fsck --repair moves into corrupt/ keeps its content, and is never followed.
#[test]
fn repaired_entries_are_kept_whole_in_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let root = queue(tmp.path());
    let q = root.join("default");
    let outside = Witness::file(tmp.path().join("outside"), b"outside");
    fs::write(q.join(format!("ready/{B0}/notes.txt")), b"my notes\n").unwrap();
    symlink(
        &outside.path,
        q.join(format!("ready/{B0}/00000000000000000900")),
    )
    .unwrap();
    let out = spool(&root, &["fsck", "--repair"]);
    assert!(out.ok(), "{out:?}");
    let corrupt = names_in(&q.join("corrupt"));
    assert_eq!(corrupt.len(), 2, "{corrupt:?}");
    let notes = corrupt
        .iter()
        .find(|c| c.starts_with(&format!("ready%{B0}%notes.txt.")))
        .expect("the notes in corrupt/");
    assert_eq!(
        fs::read(q.join("corrupt").join(notes)).unwrap(),
        b"my notes\n"
    );
    let link = corrupt
        .iter()
        .find(|c| c.starts_with(&format!("ready%{B0}%00000000000000000900.")))
        .expect("the link in corrupt/");
    assert_eq!(
        fs::read_link(q.join("corrupt").join(link)).unwrap(),
        outside.path
    );
    outside.check().unwrap();
    for line in out.text_lossy().lines() {
        assert!(line.contains("(repaired: moved to corrupt/"), "{line}");
    }
}
