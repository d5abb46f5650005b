//! Where the root and the queue come from.
//!
//! Root: `--dir DIR`, else `$SPOOL_DIR`, else `$XDG_STATE_HOME/spool`, else
//! `$HOME/.local/state/spool`. Queue: `-q/--queue`, else `$SPOOL_QUEUE`, else `default`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::harness::{Fixture, names_in};

/// Asserts that exactly one of `candidates` holds the queue `default` with `message`.
#[track_caller]
fn only_in(chosen: &Path, others: &[&Path], message: &str) {
    let file = chosen.join("default/ready/00000000000000000/00000000000000000001");
    assert_eq!(
        std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
        message.as_bytes()
    );
    for other in others {
        assert!(!other.exists(), "{} was created", other.display());
    }
}

#[test]
fn dir_flag_wins_over_every_variable() {
    let s = Fixture::new();
    let (env_dir, xdg, home) = (s.outside("env"), s.outside("xdg"), s.outside("home"));
    s.cmd()
        .env("SPOOL_DIR", &env_dir)
        .env("XDG_STATE_HOME", &xdg)
        .args(["push", "m"])
        .run()
        .success();
    only_in(s.root(), &[&env_dir, &xdg, &home], "m");
    s.cmd()
        .env("SPOOL_DIR", &env_dir)
        .env("XDG_STATE_HOME", &xdg)
        .arg("pop")
        .prints("m");
}

#[test]
fn spool_dir_variable_wins_over_xdg_and_home() {
    let s = Fixture::new();
    let (env_dir, xdg, home) = (s.outside("env"), s.outside("xdg"), s.outside("home"));
    s.cmd()
        .no_dir()
        .env("SPOOL_DIR", &env_dir)
        .env("XDG_STATE_HOME", &xdg)
        .args(["push", "m"])
        .run()
        .success();
    only_in(&env_dir, &[s.root(), &xdg, &home], "m");
    s.cmd()
        .no_dir()
        .env("SPOOL_DIR", &env_dir)
        .arg("len")
        .prints("1\n");
}

#[test]
fn xdg_state_home_when_no_dir_is_given() {
    let s = Fixture::new();
    let (xdg, home) = (s.outside("xdg"), s.outside("home"));
    s.cmd()
        .no_dir()
        .env("XDG_STATE_HOME", &xdg)
        .args(["push", "m"])
        .run()
        .success();
    only_in(&xdg.join("spool"), &[s.root(), &home], "m");
    assert_eq!(names_in(&xdg), ["spool"]);
    s.cmd()
        .no_dir()
        .env("XDG_STATE_HOME", &xdg)
        .arg("pop")
        .prints("m");
}

#[test]
fn home_when_nothing_else_is_set() {
    let s = Fixture::new();
    let home = s.outside("home");
    s.cmd().no_dir().args(["push", "m"]).run().success();
    only_in(&home.join(".local/state/spool"), &[s.root()], "m");
    s.cmd().no_dir().args(["pop"]).prints("m");
}

#[test]
fn queue_defaults_to_default() {
    let s = Fixture::new();
    s.push(&["m"]);
    assert_eq!(names_in(s.root()), ["default"]);
    s.prints(&["-q", "default", "pop"], "m");
}

#[test]
fn spool_queue_variable_names_the_queue() {
    let s = Fixture::new();
    s.cmd()
        .env("SPOOL_QUEUE", "jobs")
        .args(["push", "m"])
        .run()
        .success();
    assert_eq!(names_in(s.root()), ["jobs"]);
    assert_eq!(s.len("default"), 0);
    s.cmd().env("SPOOL_QUEUE", "jobs").arg("pop").prints("m");
}

#[test]
fn queue_flag_wins_over_the_variable() {
    let s = Fixture::new();
    s.cmd()
        .env("SPOOL_QUEUE", "fromenv")
        .args(["-q", "fromflag", "push", "m"])
        .run()
        .success();
    s.cmd()
        .env("SPOOL_QUEUE", "fromenv")
        .args(["push", "--queue", "fromflag", "n"])
        .run()
        .success();
    assert_eq!(names_in(s.root()), ["fromflag"]);
    s.prints(&["-q", "fromflag", "pop", "-n", "5", "--lines"], "m\nn\n");
}

#[test]
fn queues_are_independent() {
    let s = Fixture::new();
    s.run(&["-q", "a", "push", "a1", "a2"]).success();
    s.run(&["-q", "b", "push", "b1"]).success();
    assert_eq!(s.len("a"), 2);
    assert_eq!(s.len("b"), 1);
    s.prints(&["-q", "b", "pop"], "b1");
    s.run(&["-q", "b", "pop"]).nothing();
    s.prints(&["-q", "a", "pop"], "a1");
    // Ids are per queue.
    assert_eq!(s.push_id("b", "b2"), 2);
    assert_eq!(s.push_id("a", "a3"), 3);
}

/// `spool --dir ROOT ARGS...` run from the directory `cwd`, ROOT as given (relative).
fn spool_in(s: &Fixture, cwd: &Path, root: &OsStr) -> crate::harness::Cmd {
    let script = format!("cd '{}' && exec \"$@\"", cwd.display());
    s.cmd()
        .no_dir()
        .wrap(["sh", "-c", &script, "sh"])
        .arg("--dir")
        .arg(root)
}

// run gave its commands SPOOL_DIR as typed: a relative --dir was wrong once a command
// changed directory.
#[test]
fn run_gives_its_commands_the_root_as_an_absolute_path() {
    let s = Fixture::new();
    let relative = OsStr::new("spool");
    spool_in(&s, s.tmp(), relative)
        .args(["push", "m"])
        .run()
        .success();
    let out = spool_in(&s, s.tmp(), relative)
        .args(["run", "--", "sh", "-c", "cd / && printf %s \"$SPOOL_DIR\""])
        .run();
    out.success();
    out.stdout_is(s.root().as_os_str().as_bytes());
    assert_eq!(s.states("default"), []);
}

// A --dir that is not UTF-8 was refused ("path is not UTF-8"): paths are bytes.
#[test]
fn a_root_whose_name_is_not_utf8_works() {
    let s = Fixture::new();
    let root = s.tmp().join(OsStr::from_bytes(b"r\xff\xfe spool"));
    let spool = |args: &[&str]| s.cmd().no_dir().arg("--dir").arg(&root).args(args).run();
    spool(&["push", "m", "n"]).success();
    assert_eq!(names_in(&root), ["default"]);
    spool(&["pop"]).success().stdout_is("m");
    spool(&["len"]).success().stdout_is("1\n");
    spool(&["queues"]).success().stdout_is("default\n");
    let out = spool(&["run", "--", "sh", "-c", "printf %s \"$SPOOL_DIR\"; cat"]);
    out.success();
    let mut expected = root.as_os_str().as_bytes().to_vec();
    expected.extend(b"n");
    out.stdout_is(expected);
}
