//! Network filesystems: spool refuses to create a spool directory or a queue on one
//! (flock locks and inotify wake-ups do not hold across hosts) unless
//! `SPOOL_ALLOW_NETWORK_FS=1`; `stats` warns and `fsck` reports it. A FUSE mount (bindfs)
//! stands for them here: this machine has no NFS or SMB server. The check is one
//! `fstatfs`, made only when something is to be created.

use std::path::Path;

use crate::harness::{Cmd, Fixture, Mount, names_in, require, require_strace};

const ALLOW: &str = "SPOOL_ALLOW_NETWORK_FS";

// Nothing warned a user who put a spool on a network filesystem, where spool's locks and
// wake-ups do not hold across hosts: creating one there must be refused unless the user
// says they know, and stats and fsck must mention it.
#[test]
fn a_spool_on_a_network_filesystem_is_refused_unless_allowed() {
    if !require(true, &[("bindfs", &["--version"])]) {
        return;
    }
    let s = Fixture::new();
    let back = s.outside("back");
    std::fs::create_dir(&back).unwrap();
    let mnt = s.outside("mnt");
    let _mount = Mount::bindfs(&back, &mnt).unwrap_or_else(|e| panic!("{e}"));
    let root = mnt.join("spool");
    let spool = |args: &[&str]| Cmd::at(&root).args(args);
    let caveat =
        "on a network filesystem (fuse): flock locks and inotify wake-ups do not hold across hosts";

    let out = spool(&["push", "a"]).run();
    out.error().stderr_has(&format!(
        "spool: create spool {}: {caveat}; set {ALLOW}=1 to use it anyway",
        root.display()
    ));
    assert_eq!(names_in(&back), Vec::<String>::new(), "nothing created");
    std::fs::create_dir(&root).unwrap();
    let out = spool(&["-q", "jobs", "push", "a"]).run();
    out.error().stderr_has(&format!(
        "spool: create queue {}: {caveat}; set {ALLOW}=1",
        root.join("jobs").display()
    ));
    assert_eq!(names_in(&back.join("spool")), Vec::<String>::new());
    spool(&["-q", "jobs", "push", "a"])
        .env(ALLOW, "0")
        .run()
        .error();

    spool(&["-q", "jobs", "push", "a"])
        .env(ALLOW, "1")
        .run()
        .success();
    assert_eq!(names_in(&back.join("spool")), ["jobs"]);
    // An existing queue needs no leave: the check is made only when creating.
    spool(&["-q", "jobs", "push", "b"]).run().success();

    let warning = format!(
        "spool: warning: {}: {caveat}\n",
        root.join("jobs").display()
    );
    // (bindfs shows the messages, published by link and unlink where FUSE refuses a
    // no-replace rename, with a second link for a while: they are warned about too.)
    let out = spool(&["-q", "jobs", "stats"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.ends_with(&warning), "{out:?}");
    let out = spool(&["-q", "jobs", "fsck"]).run();
    assert_eq!(out.code, 3, "{out:?}");
    let finding = format!(
        "{}: is {caveat} (set {ALLOW}=1 to accept it)\n",
        root.join("jobs").display()
    );
    assert!(out.text().ends_with(&finding), "{out:?}");
    let out = spool(&["-q", "jobs", "fsck"]).env(ALLOW, "1").run();
    assert!(!out.text().contains("network"), "{out:?}");
    assert!(out.stderr.contains(&warning), "{out:?}");
}

/// The `statfs` family calls of `spool ARGS...` on `root`, traced.
fn statfs_calls(root: &Path, trace: &Path, args: &[&str]) -> usize {
    let out = Cmd::at(root)
        .wrap([
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=statfs,fstatfs,statfs64,fstatfs64",
            "-o",
            trace.to_str().expect("UTF-8 path"),
        ])
        .args(args)
        .run();
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    let text = std::fs::read_to_string(trace).unwrap();
    text.lines().filter(|l| l.contains("statfs")).count()
}

// The network filesystem check is made when creating, not on every command: a push to an
// existing queue, a pop, a peek or a claim make no statfs call.
#[test]
fn the_filesystem_is_looked_at_only_when_creating() {
    if !require_strace() {
        return;
    }
    let s = Fixture::new();
    let trace = s.outside("trace");
    assert!(statfs_calls(s.root(), &trace, &["push", "first"]) >= 1);
    assert!(statfs_calls(s.root(), &trace, &["-q", "other", "push", "x"]) >= 1);
    for args in [
        &["push", "second"][..],
        &["pop"],
        &["peek"],
        &["claim"],
        &["len"],
        &["list"],
        &["pop", "--wait", "--timeout", "10ms"],
    ] {
        assert_eq!(statfs_calls(s.root(), &trace, args), 0, "{args:?}");
    }
    // On a local filesystem (ext4 or tmpfs here) nothing is refused or reported.
    s.prints(&["fsck"], "");
    s.run(&["stats"]).success();
}
