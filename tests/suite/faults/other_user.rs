//! Another user: a spool created by root (mode 0700) can be neither read nor written by
//! the system user `spooltest` (created with `useradd --system` when missing, and left in
//! place), whom `setpriv --reuid --regid --clear-groups` runs spool as. Every command
//! exits 2 with one "spool: " line saying "Permission denied", and the queue is unchanged.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{Cmd, Output, bytes, drain, id_states, list_all, require};

const USER: &str = "spooltest";

/// The uid and gid of `spooltest`, creating the user when missing.
fn user() -> Option<(String, String)> {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if id("-u").is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .output();
        // Another run may have created it meanwhile: only the result matters.
        if id("-u").is_none() {
            crate::harness::skip(&format!("cannot create the user {USER}: {out:?}"));
            return None;
        }
    }
    Some((id("-u")?, id("-g")?))
}

fn as_user(root: &Path, ids: &(String, String), args: &[&str]) -> Output {
    Cmd::at(root).args(args).run_as(&ids.0, &ids.1).run()
}

fn denied(root: &Path, ids: &(String, String), commands: &[&[&str]]) {
    for args in commands {
        let mut call_args = args.to_vec();
        let input = call_args.first() == Some(&"push-lines");
        if input {
            call_args = vec!["push", "--lines"];
        }
        let out = if input {
            Cmd::at(root)
                .args(&call_args)
                .stdin("one\ntwo\n")
                .run_as(&ids.0, &ids.1)
                .run()
        } else {
            as_user(root, ids, &call_args)
        };
        out.no_crash(false).unwrap();
        out.check_error()
            .unwrap_or_else(|e| panic!("{USER} ran {args:?}: {e}"));
        assert!(
            out.stderr.contains("Permission denied"),
            "{args:?}:\n{out:?}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed something:\n{out:?}"
        );
    }
}

const COMMANDS: &[&[&str]] = &[
    &["push", "x"],
    &["push-lines"],
    &["pop"],
    &["peek"],
    &["claim"],
    &["show", "2"],
    &["ack", "1.0123456789abcdef"],
    &["nack", "1.0123456789abcdef"],
    &["list"],
    &["len"],
    &["stats"],
    &["clear"],
    &["requeue", "--all"],
    &["run", "--", "true"],
    &["fsck"],
    &["fsck", "--repair"],
    &["-q", "other", "push", "x"],
];

fn setup() -> Option<(tempfile::TempDir, std::path::PathBuf, (String, String))> {
    if !require(true, &[("setpriv", &["-V"]), ("useradd", &["--help"])]) {
        return None;
    }
    let ids = user()?;
    let tmp = tempfile::tempdir().unwrap();
    // The user may reach the temporary directory, not the spool root (0700) in it.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("spool");
    Cmd::at(&root).args(["push", "a", "b"]).run().success();
    let version = as_user(&root, &ids, &["--version"]);
    if !version.ok() {
        crate::harness::skip(&format!("{USER} cannot run spool: {version:?}"));
        return None;
    }
    Some((tmp, root, ids))
}

#[track_caller]
fn unchanged(root: &Path) {
    assert_eq!(
        id_states(&list_all(root, "default").unwrap()),
        [(1, "ready"), (2, "ready")]
    );
    assert_eq!(crate::harness::names_in(root), ["default"]);
    assert_eq!(drain(root, "default").unwrap(), bytes(&["a", "b"]));
}

#[test]
fn another_user_can_neither_read_nor_write_a_spool_of_root() {
    let Some((_tmp, root, ids)) = setup() else {
        return;
    };
    assert_eq!(crate::harness::mode(&root), 0o700);
    let mut commands = COMMANDS.to_vec();
    commands.push(&["queues"]);
    denied(&root, &ids, &commands);
    unchanged(&root);
}

#[test]
fn another_user_can_neither_read_nor_write_a_queue_of_root_in_an_open_root() {
    let Some((_tmp, root, ids)) = setup() else {
        return;
    };
    // The root is opened to everyone; the queue directory stays 0700.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(crate::harness::mode(&root.join("default")), 0o700);
    let commands: Vec<&[&str]> = COMMANDS
        .iter()
        .copied()
        .filter(|c| c.first() != Some(&"-q"))
        .collect();
    denied(&root, &ids, &commands);
    unchanged(&root);
}
