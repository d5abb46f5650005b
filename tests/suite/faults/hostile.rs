//! A hostile spool: symbolic links and hard links to files and directories outside the
//! spool planted in every directory of a queue, FIFOs and directories where message files
//! belong, foreign names_in, broken state files (a counter that is a directory or a symbolic
//! link, a head that is a FIFO, a truncated counter, a garbage format), a queue directory
//! of mode 0777, a queue directory or a root that is a symbolic link.
//!
//! Every command must run without crashing (no "internal error", no signal), print only
//! "spool: " lines on standard error (warnings naming what it skipped, or one clear
//! error), never read, write or remove anything outside the spool (the targets' content,
//! modification and access times are checked: their access time is set a day back, so
//! even a `relatime` mount records a read), never move or remove what was planted, and
//! keep delivering the real messages. `spool fsck` reports every planted entry (exit 3);
//! `fsck --repair` moves them into `corrupt/`, never deletes a message, and leaves a
//! queue that `fsck` finds clean.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::harness::{
    Cmd, Output, Problems, Witness, bytes, claim_leases, drain, id_states, list_all, names_in,
    now_ms, wait_until,
};

const B0: &str = "00000000000000000";

/// A queue with one message in each state, and junk planted everywhere.
struct Planted {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    q: PathBuf,
    file: Witness,
    linked: Witness,
    dir: Witness,
    /// Every planted entry and what it is.
    plants: Vec<(PathBuf, Kind)>,
    /// The payload of each real message, read before planting.
    contents: Vec<(u64, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    SymlinkToFile,
    SymlinkToDir,
    HardLink,
    Fifo,
    Dir,
    Foreign,
}

fn ok(out: &Output) -> Result<(), String> {
    out.no_crash(false)?;
    if !matches!(out.code, 0 | 1) {
        return Err(format!("expected exit 0 or 1:\n{out:?}"));
    }
    if let Some(l) = out
        .stderr
        .lines()
        .find(|l| !l.starts_with("spool: warning: "))
    {
        return Err(format!("not a warning: {l:?}\n{out:?}"));
    }
    Ok(())
}

fn spool(root: &Path, args: &[&str]) -> Output {
    Cmd::at(root).args(args).run()
}

/// ids 1 (failed), 2 3 4 (ready: a b c), 5 (priority 5, claimed by a lease), 6 (delayed).
fn messages(root: &Path) {
    spool(root, &["push", "f"]).success();
    spool(root, &["run", "--max", "1", "--", "sh", "-c", "exit 100"]);
    spool(root, &["push", "a", "b", "c"]).success();
    spool(root, &["push", "--priority", "5", "p"]).success();
    spool(root, &["push", "--delay", "1h", "d"]).success();
    spool(root, &["claim", "--lease", "1h"]).success();
}

const STATES: [(u64, &str); 6] = [
    (2, "ready"),
    (3, "ready"),
    (4, "ready"),
    (6, "delayed"),
    (5, "claimed"),
    (1, "failed"),
];

fn plant() -> Planted {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    messages(&root);
    let q = root.join("default");
    assert_eq!(id_states(&list_all(&root, "default").unwrap()), STATES);
    let contents = STATES
        .iter()
        .map(|&(id, _)| (id, spool(&root, &["show", &id.to_string()]).stdout))
        .collect();
    let file = Witness::file(tmp.path().join("outside.txt"), b"outside the spool\n");
    let linked = Witness::file(tmp.path().join("linked.txt"), b"hard-linked from outside\n");
    let dir = Witness::dir(tmp.path().join("outside-dir"));
    let mut plants = Vec::new();
    let mut put = |rel: &str, kind: Kind| {
        let p = q.join(rel);
        match kind {
            Kind::SymlinkToFile => symlink(&file.path, &p).unwrap(),
            Kind::SymlinkToDir => symlink(&dir.path, &p).unwrap(),
            Kind::HardLink => fs::hard_link(&linked.path, &p).unwrap(),
            Kind::Fifo => {
                rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::from_raw_mode(0o600))
                    .unwrap()
            }
            Kind::Dir => fs::create_dir(&p).unwrap(),
            Kind::Foreign => fs::write(&p, b"not spool's\n").unwrap(),
        }
        plants.push((p, kind));
    };
    fs::create_dir(q.join("tmp/aaaaaaaaaaaaaaaa.batch")).unwrap();
    for (rel, kind) in [
        ("notes.txt", Kind::Foreign),
        ("linked", Kind::HardLink),
        ("tmp/0123456789abcdef", Kind::SymlinkToFile),
        ("tmp/fedcba9876543210", Kind::HardLink),
        ("tmp/00112233445566aa.batch", Kind::SymlinkToDir),
        ("tmp/aaaaaaaaaaaaaaaa.batch/0", Kind::HardLink),
        ("tmp/aaaaaaaaaaaaaaaa.batch/1", Kind::SymlinkToFile),
        ("tmp/stray", Kind::Foreign),
        ("ready/00000000000000001", Kind::SymlinkToDir),
        ("ready/junk", Kind::Foreign),
        (
            &format!("ready/{B0}/00000000000000000900"),
            Kind::SymlinkToFile,
        ),
        (&format!("ready/{B0}/00000000000000000901"), Kind::HardLink),
        (&format!("ready/{B0}/00000000000000000902"), Kind::Fifo),
        (&format!("ready/{B0}/00000000000000000903"), Kind::Dir),
        (&format!("ready/{B0}/notes"), Kind::Foreign),
        (
            &format!("ready-5/{B0}/00000000000000000904"),
            Kind::SymlinkToFile,
        ),
        (
            &format!("ready-5/{B0}/00000000000000000905"),
            Kind::HardLink,
        ),
        ("delayed/00000000000000001000.i906", Kind::SymlinkToFile),
        ("delayed/00000000000000001000.i907", Kind::HardLink),
        ("delayed/00000000000000001000.i908", Kind::Fifo),
        (
            "claimed/00000000000000000909.a1.t0123456789abcdef",
            Kind::SymlinkToFile,
        ),
        (
            "claimed/00000000000000000910.a1.t0123456789abcdee",
            Kind::HardLink,
        ),
        (
            "claimed/00000000000000000911.a1.t0123456789abcded",
            Kind::Fifo,
        ),
        (
            "claimed/00000000000000000912.a1.t0123456789abcdec",
            Kind::Dir,
        ),
        ("failed/00000000000000000913.rexit-100", Kind::SymlinkToFile),
        ("failed/00000000000000000914.rexit-100", Kind::HardLink),
        ("failed/notes", Kind::Foreign),
    ] {
        put(rel, kind);
    }
    Planted {
        _tmp: tmp,
        root,
        q,
        file,
        linked,
        dir,
        plants,
        contents,
    }
}

impl Planted {
    /// The targets outside the spool are untouched.
    fn outside_intact(&self) -> Result<(), String> {
        self.file.check()?;
        self.linked.check()?;
        self.dir.check()
    }

    /// Every planted entry is still where it was, as it was.
    fn plants_in_place(&self) -> Result<(), String> {
        for (p, kind) in &self.plants {
            let m = fs::symlink_metadata(p)
                .map_err(|e| format!("the planted {kind:?} {} is gone: {e}", p.display()))?;
            let t = m.file_type();
            let same = match kind {
                Kind::SymlinkToFile | Kind::SymlinkToDir => t.is_symlink(),
                Kind::HardLink | Kind::Foreign => t.is_file(),
                Kind::Fifo => t.is_fifo(),
                Kind::Dir => t.is_dir(),
            };
            if !same {
                return Err(format!("the planted {kind:?} {} changed", p.display()));
            }
        }
        Ok(())
    }
}

#[test]
fn every_command_skips_planted_entries_and_touches_nothing_outside() {
    let p = plant();
    let root = &p.root;
    let problems = std::cell::RefCell::new(Problems::default());
    let step = |what: &str, out: Output, check: &dyn Fn(&Output) -> Result<(), String>| {
        let r = ok(&out)
            .and_then(|()| check(&out))
            .and_then(|()| p.outside_intact());
        problems.borrow_mut().note(what, r);
        out
    };
    let text = |want: &'static str| {
        move |o: &Output| {
            if o.stdout == want.as_bytes() {
                Ok(())
            } else {
                Err(format!("expected {want:?}:\n{o:?}"))
            }
        }
    };
    let any = |_: &Output| Ok(());
    step(
        "list --state all --json",
        spool(root, &["list", "--state", "all", "--json"]),
        &|o| {
            let ids: Vec<u64> = crate::harness::json_lines(&o.stdout)
                .iter()
                .map(|v| v["id"].as_u64().unwrap())
                .collect();
            if ids == STATES.map(|s| s.0) {
                Ok(())
            } else {
                Err(format!("listed {ids:?}"))
            }
        },
    );
    step("list", spool(root, &["list"]), &any);
    step("len", spool(root, &["len"]), &text("3\n"));
    step("stats", spool(root, &["stats", "--json"]), &|o| {
        let v = &crate::harness::json_lines(&o.stdout)[0];
        let counts = [&v["waiting"], &v["delayed"], &v["claimed"], &v["failed"]];
        if counts.map(|c| c.as_u64()) == [Some(3), Some(1), Some(1), Some(1)] {
            Ok(())
        } else {
            Err(format!("stats {v}"))
        }
    });
    step("stats --all", spool(root, &["stats", "--all"]), &any);
    step("queues", spool(root, &["queues"]), &text("default\n"));
    step(
        "peek",
        spool(root, &["peek", "-n", "10", "--lines"]),
        &text("a\nb\nc\n"),
    );
    step("show 3", spool(root, &["show", "3"]), &text("b"));
    step("push", spool(root, &["push", "x"]), &any);
    step(
        "push --lines",
        Cmd::at(root)
            .args(["push", "--lines"])
            .stdin("y\nz\n")
            .run(),
        &any,
    );
    step(
        "push --priority",
        spool(root, &["push", "--priority", "5", "pp"]),
        &any,
    );
    step(
        "push --delay",
        spool(root, &["push", "--delay", "1h", "dd"]),
        &any,
    );
    let claim = step("claim", spool(root, &["claim"]), &any);
    let token = claim.text_lossy().trim_end().to_string();
    step(
        "extend",
        spool(root, &["extend", &token, "--lease", "1h"]),
        &any,
    );
    step("nack", spool(root, &["nack", &token]), &any);
    let claim = step("claim again", spool(root, &["claim"]), &any);
    step(
        "ack",
        spool(root, &["ack", claim.text_lossy().trim_end()]),
        &any,
    );
    step(
        "pop",
        spool(root, &["pop", "-n", "3", "--lines"]),
        &text("a\nb\nc\n"),
    );
    step(
        "run",
        spool(
            root,
            &["run", "--max", "1", "--", "sh", "-c", "cat > /dev/null"],
        ),
        &any,
    );
    // Only the real failed message is requeued: the junk in failed/ stays there.
    step(
        "requeue --all",
        spool(root, &["requeue", "--all"]),
        &text("1\n"),
    );
    problems
        .borrow_mut()
        .note("after requeue --all", p.plants_in_place());
    step(
        "pop the rest",
        spool(root, &["pop", "-n", "10", "--lines"]),
        &|o| {
            if o.stdout == b"y\nz\nf\n" {
                Ok(())
            } else {
                Err(format!("popped {:?}", o.text_lossy()))
            }
        },
    );
    step(
        "clear --state all",
        spool(root, &["clear", "--state", "all"]),
        &any,
    );
    step(
        "list after",
        spool(root, &["list", "--state", "all", "--json"]),
        &|o| {
            let states: Vec<String> = crate::harness::json_lines(&o.stdout)
                .iter()
                .map(|v| v["state"].as_str().unwrap().to_string())
                .collect();
            // What is left: the claim of id 5 (held by its lease).
            if states == ["claimed"] {
                Ok(())
            } else {
                Err(format!("left: {states:?}"))
            }
        },
    );
    let fsck = spool(root, &["fsck"]);
    problems.borrow_mut().note("fsck", fsck.no_crash(false));
    if fsck.code != 3 {
        problems
            .borrow_mut()
            .note("fsck", Err(format!("expected exit 3:\n{fsck:?}")));
    }
    problems
        .borrow_mut()
        .note("at the end", p.outside_intact().and(p.plants_in_place()));
    problems.borrow().assert_none("commands on a hostile queue");
}

#[test]
fn fsck_reports_every_planted_entry_and_repair_quarantines_them() {
    let p = plant();
    let root = &p.root;
    let before = &p.contents;
    let mut problems = Problems::default();
    let report = spool(root, &["fsck"]);
    problems.note("fsck", report.no_crash(false));
    if report.code != 3 {
        problems.note("fsck", Err(format!("expected exit 3:\n{report:?}")));
    }
    let lines = report.text_lossy();
    // The entries inside the planted batch directory go with it.
    let top: Vec<&(PathBuf, Kind)> = p
        .plants
        .iter()
        .filter(|(path, _)| !path.to_string_lossy().contains(".batch/"))
        .collect();
    for (path, kind) in &top {
        let shown = format!("{}: ", path.display());
        if !lines.lines().any(|l| l.starts_with(&shown)) {
            problems.note(
                "fsck",
                Err(format!("does not report the planted {kind:?} {shown}")),
            );
        }
    }
    let repair = spool(root, &["fsck", "--repair"]);
    problems.note("fsck --repair", repair.no_crash(false));
    if !repair.ok() {
        problems.note(
            "fsck --repair",
            Err(format!("expected exit 0:\n{repair:?}")),
        );
    }
    problems.note("after repair", p.outside_intact());
    let corrupt = names_in(&p.q.join("corrupt"));
    for (path, kind) in &top {
        if fs::symlink_metadata(path).is_ok() {
            problems.note(
                "fsck --repair",
                Err(format!(
                    "left the planted {kind:?} {} in place",
                    path.display()
                )),
            );
        }
        let rel = path
            .strip_prefix(&p.q)
            .unwrap()
            .to_string_lossy()
            .replace('/', "%");
        if !corrupt.iter().any(|c| c.starts_with(&format!("{rel}."))) {
            problems.note(
                "fsck --repair",
                Err(format!(
                    "did not move {} into corrupt/: {corrupt:?}",
                    path.display()
                )),
            );
        }
    }
    // Moved, not followed: the links still point outside, the hard link is still shared.
    for c in &corrupt {
        let at = p.q.join("corrupt").join(c);
        if let Ok(target) = fs::read_link(&at)
            && target != p.file.path
            && target != p.dir.path
        {
            problems.note("corrupt/", Err(format!("{c} now points to {target:?}")));
        }
    }
    // No message was deleted: each is there with its content (the claim of 5 holds).
    for (id, content) in before {
        let now = spool(root, &["show", &id.to_string()]);
        if now.stdout != *content || !now.ok() {
            problems.note("after repair", Err(format!("message {id}:\n{now:?}")));
        }
    }
    let again = spool(root, &["fsck"]);
    if !(again.ok() && again.stdout.is_empty() && again.stderr.is_empty()) {
        problems.note("fsck after repair", Err(format!("not clean:\n{again:?}")));
    }
    problems.note("at the end", p.outside_intact());
    problems.assert_none("fsck of a hostile queue");
}

/// A queue whose state file `name` was replaced by `damage`; every command must fail
/// cleanly or work, never follow or touch what is outside, and fsck must report it and
/// `fsck --repair` mend it without losing a message.
fn broken_state_file(name: &str, damage: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    spool(&root, &["push", "a", "b", "c"]).success();
    let q = root.join("default");
    let outside = Witness::file(tmp.path().join("outside"), b"keep me\n");
    let dir = Witness::dir(tmp.path().join("outside-dir"));
    let path = q.join(name);
    fs::remove_file(&path).unwrap();
    match damage {
        Kind::SymlinkToFile => symlink(&outside.path, &path).unwrap(),
        Kind::SymlinkToDir => symlink(&dir.path, &path).unwrap(),
        Kind::Fifo => rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap(),
        Kind::Dir => fs::create_dir(&path).unwrap(),
        Kind::HardLink | Kind::Foreign => unreachable!(),
    }
    let mut problems = Problems::default();
    let ctx = format!("{name} replaced by a {damage:?}");
    for args in [
        &["push", "x"][..],
        &["pop"],
        &["peek"],
        &["claim", "--lease", "100ms"],
        &["list", "--state", "all"],
        &["len"],
        &["stats"],
        &["clear"],
        &["run", "--max", "1", "--", "true"],
        &["queues"],
    ] {
        let out = spool(&root, args);
        let r = out.no_crash(false).and_then(|()| {
            if matches!(out.code, 0 | 1) || out.check_error().is_ok() {
                Ok(())
            } else {
                Err(format!("neither a result nor one clear error:\n{out:?}"))
            }
        });
        problems.note(&format!("{ctx}: {args:?}"), r);
        problems.note(&ctx, outside.check().and(dir.check()));
    }
    // The claim above ends before fsck looks: a lease that ended between `fsck --repair`
    // and the check after it made that check report it, on a loaded machine.
    let now = || u64::try_from(now_ms()).unwrap_or(0);
    wait_until("the claim's lease to end", Duration::from_secs(30), || {
        claim_leases(&q)
            .iter()
            .all(|(_, l)| l.is_none_or(|l| l < now()))
    });
    let report = spool(&root, &["fsck"]);
    if report.code != 3
        || !report
            .text_lossy()
            .contains(&format!("{}: ", path.display()))
    {
        problems.note(&ctx, Err(format!("fsck does not report it:\n{report:?}")));
    }
    let repair = spool(&root, &["fsck", "--repair"]);
    if !repair.ok() {
        problems.note(&ctx, Err(format!("fsck --repair fails:\n{repair:?}")));
    } else {
        let again = spool(&root, &["fsck"]);
        if !(again.ok() && again.stdout.is_empty()) {
            problems.note(&ctx, Err(format!("fsck after repair:\n{again:?}")));
        }
        // Whatever was popped above, what is left pops, and a push works again.
        let left = drain(&root, "default");
        problems.note(&ctx, left.map(|_| ()));
        let id = crate::harness::push_id(&root, "default", "after");
        problems.note(&ctx, id.map(|_| ()));
    }
    problems.note(&ctx, outside.check().and(dir.check()));
    problems.assert_none(&ctx);
}

#[test]
fn a_counter_that_is_a_directory() {
    broken_state_file("counter", Kind::Dir);
}

#[test]
fn a_counter_that_is_a_symlink_to_a_file_outside() {
    broken_state_file("counter", Kind::SymlinkToFile);
}

#[test]
fn a_head_that_is_a_fifo() {
    broken_state_file("head", Kind::Fifo);
}

#[test]
fn a_rates_file_that_is_a_symlink_to_a_directory_outside() {
    broken_state_file("rates", Kind::SymlinkToDir);
}

#[test]
fn a_truncated_counter_never_makes_a_push_overwrite_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    spool(&root, &["push", "a", "b", "c"]).success();
    let q = root.join("default");
    fs::OpenOptions::new()
        .write(true)
        .open(q.join("counter"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let report = spool(&root, &["fsck"]);
    assert_eq!(report.code, 3, "{report:?}");
    assert!(report.text_lossy().contains("counter: "), "{report:?}");
    // A push moves past the messages it finds, with a warning, and overwrites nothing.
    let out = spool(&root, &["push", "--print-id", "d"]);
    ok(&out).unwrap();
    assert_eq!(out.text_lossy(), "4\n", "{out:?}");
    assert!(out.stderr.contains("counter was behind"), "{out:?}");
    assert_eq!(
        drain(&root, "default").unwrap(),
        bytes(&["a", "b", "c", "d"])
    );
}

/// (fsck reports it, and repairs it: see `suite::hostile`.)
#[test]
fn a_garbage_format_is_refused_by_every_command_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    spool(&root, &["push", "a"]).success();
    let format = root.join("default/format");
    fs::write(&format, b"\x00\xffgarbage\n").unwrap();
    for args in [
        &["push", "x"][..],
        &["pop"],
        &["claim"],
        &["list"],
        &["len"],
        &["clear"],
        &["run", "--", "true"],
    ] {
        let out = spool(&root, args);
        out.no_crash(false).unwrap();
        out.check_error().unwrap();
        assert!(out.stderr.contains("format"), "{out:?}");
    }
    assert_eq!(fs::read(&format).unwrap(), b"\x00\xffgarbage\n");
    assert_eq!(
        fs::read(root.join(format!("default/ready/{B0}/00000000000000000001"))).unwrap(),
        b"a"
    );
}

#[test]
fn a_queue_directory_that_is_a_symlink_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    spool(&root, &["push", "-q", "real", "a"]).success();
    let elsewhere = tmp.path().join("elsewhere");
    spool(&elsewhere, &["push", "-q", "other", "secret"]).success();
    let witness = Witness::file(tmp.path().join("witness"), b"w\n");
    symlink(elsewhere.join("other"), root.join("default")).unwrap();
    for args in [
        &["push", "x"][..],
        &["pop"],
        &["peek"],
        &["list"],
        &["clear"],
        &["fsck"],
    ] {
        let out = spool(&root, args);
        out.no_crash(false).unwrap();
        out.check_error()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    assert_eq!(spool(&root, &["queues"]).text_lossy(), "real\n");
    assert_eq!(drain(&elsewhere, "other").unwrap(), bytes(&["secret"]));
    witness.check().unwrap();
}

#[test]
fn a_root_that_is_a_symlink_works() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    let root = tmp.path().join("spool");
    symlink(&real, &root).unwrap();
    spool(&root, &["push", "a", "b"]).success();
    assert_eq!(names_in(&real), ["default"]);
    let fsck = spool(&root, &["fsck"]);
    assert!(fsck.ok() && fsck.stdout.is_empty(), "{fsck:?}");
    assert_eq!(drain(&root, "default").unwrap(), bytes(&["a", "b"]));
}

/// A queue directory that anyone may write to lets any user plant entries in it: spool
/// keeps working, and fsck reports the mode.
#[test]
fn a_world_writable_queue_directory_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    spool(&root, &["push", "a"]).success();
    let q = root.join("default");
    fs::set_permissions(&q, fs::Permissions::from_mode(0o777)).unwrap();
    spool(&root, &["push", "b"]).success();
    let report = spool(&root, &["fsck"]);
    report.no_crash(false).unwrap();
    assert_eq!(drain(&root, "default").unwrap(), bytes(&["a", "b"]));
    assert!(
        report.code == 3 && report.text_lossy().contains(&format!("{}: ", q.display())),
        "fsck does not report a queue directory of mode 0777:\n{report:?}"
    );
}

/// A lane directory (`ready-3`) that is a symbolic link to a directory outside: it is
/// never followed. Commands that walk every lane may refuse with one clear error naming
/// it; the others work; fsck reports it and `--repair` moves it into corrupt/.
#[test]
fn a_lane_that_is_a_symlink_to_a_directory_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    spool(&root, &["push", "a", "b"]).success();
    spool(&root, &["push", "--priority", "3", "p"]).success();
    spool(&root, &["pop"]).success();
    let q = root.join("default");
    let dir = Witness::dir(tmp.path().join("outside-dir"));
    fs::rename(q.join("ready-3"), tmp.path().join("moved-lane")).unwrap();
    symlink(&dir.path, q.join("ready-3")).unwrap();
    let lane = q.join("ready-3").display().to_string();
    let mut problems = Problems::default();
    for args in [
        &["list", "--state", "all"][..],
        &["len"],
        &["stats"],
        &["peek"],
        &["show", "2"],
        &["push", "--priority", "3", "q"],
        &["clear"],
    ] {
        let out = spool(&root, args);
        let r = out.no_crash(false).and_then(|()| match out.code {
            0 | 1 => ok(&out),
            _ => {
                let last = out.stderr.lines().last().unwrap_or("");
                let warnings = out.stderr.lines().rev().skip(1);
                if out.code == 2
                    && last.contains(&lane)
                    && warnings
                        .into_iter()
                        .all(|l| l.starts_with("spool: warning: "))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "neither a result nor a clear error naming {lane}:\n{out:?}"
                    ))
                }
            }
        });
        problems.note(&format!("{args:?}"), r.and(dir.check()));
    }
    let report = spool(&root, &["fsck"]);
    if report.code != 3 || !report.text_lossy().contains(&format!("{lane}: ")) {
        problems.note(
            "fsck",
            Err(format!("does not report the lane:\n{report:?}")),
        );
    }
    let repair = spool(&root, &["fsck", "--repair"]);
    if !repair.ok() {
        problems.note("fsck --repair", Err(format!("{repair:?}")));
    }
    let again = spool(&root, &["fsck"]);
    if !(again.ok() && again.stdout.is_empty()) {
        problems.note("fsck after repair", Err(format!("{again:?}")));
    }
    problems.note("the directory outside", dir.check());
    problems.assert_none("a lane that is a symlink");
}
