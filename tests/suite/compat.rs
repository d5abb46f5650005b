//! The on-disk format across versions: a spool written by an earlier version is read by
//! this one, and the other way round. The earlier version's binary is built from git into
//! the test's temporary directory (a minute or so); without git or the commit the test is
//! skipped (a failure under CI=true).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Fixture, skip};

/// The last commit before the storage layer was split into one file per concern: the
/// format it writes is the one every later version must read, and it must read theirs.
const EARLIER: &str = "a5ea040";

/// Runs `cmd`, or says why it failed.
fn sh(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Builds the `spool` of commit [`EARLIER`] under `dir`; `None` (after a skip) when git
/// or the commit is not available here.
fn build_earlier(dir: &Path) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let have = sh(Command::new("git").arg("-C").arg(repo).args([
        "cat-file",
        "-e",
        &format!("{EARLIER}^{{commit}}"),
    ]));
    if let Err(why) = have {
        skip(&format!(
            "commit {EARLIER} is not available from git: {why}"
        ));
        return None;
    }
    let src = dir.join("src");
    std::fs::create_dir(&src).expect("create source directory");
    let archive = format!("git -C \"$0\" archive {EARLIER} | tar -x -C \"$1\"");
    sh(Command::new("sh")
        .args(["-c", &format!("set -e; {archive}")])
        .arg(repo)
        .arg(&src))
    .unwrap_or_else(|e| panic!("extract {EARLIER}: {e}"));
    let target = dir.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    sh(Command::new(cargo)
        .args(["build", "--locked", "--offline", "--quiet"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target))
    .unwrap_or_else(|e| panic!("build {EARLIER}: {e}"));
    let found = ["debug/spool", "x86_64-unknown-linux-gnu/debug/spool"]
        .iter()
        .map(|p| target.join(p))
        .find(|p| p.exists());
    Some(found.unwrap_or_else(|| panic!("no spool binary under {}", target.display())))
}

/// Every byte value, as one message.
fn binary_payload() -> Vec<u8> {
    (0..=255u8).collect()
}

/// `writer` pushes a single message, a `--lines` batch, a delayed one, a priority one and
/// a binary one; `reader` pops, claims, shows, acks and nacks them; then each pushes one
/// that the other pops, with the next id.
fn exchange(writer: &Path, reader: &Path) {
    let s = Fixture::new();
    let w = |args: &[&str]| s.cmd().binary(writer).args(args);
    let r = |args: &[&str]| s.cmd().binary(reader).args(args);
    let ids = |out: crate::harness::Output| out.success().ids();

    assert_eq!(ids(w(&["push", "--print-id", "one"]).run()), [1]);
    let batch = w(&["push", "--print-id", "--lines"]).stdin("two\nthree\n");
    assert_eq!(ids(batch.run()), [2, 3]);
    assert_eq!(
        ids(w(&["push", "--print-id", "--priority", "5", "urgent"]).run()),
        [4]
    );
    let binary = w(&["push", "--print-id"]).stdin(binary_payload());
    assert_eq!(ids(binary.run()), [5]);
    // The delayed message comes last: a push after it, once it is due, would promote it
    // first and give it the next place. Its delay is long enough to be delayed when it is
    // published, and has passed before anything reads it.
    assert_eq!(
        ids(w(&["push", "--print-id", "--delay", "1s", "later"]).run()),
        [6]
    );
    std::thread::sleep(Duration::from_millis(1200));

    assert_eq!(s.states("default").len(), 6, "{:?}", s.states("default"));
    // Due, but not promoted before a take: len counts the five ready ones.
    r(&["len"]).prints("5\n");
    r(&["pop"]).prints("urgent");
    let claim = r(&["claim", "--lease", "1h"]).run();
    let token = claim.success().text().trim_end().to_string();
    assert!(token.starts_with("1."), "the oldest is claimed: {claim:?}");
    r(&["show", &token]).prints("one");
    r(&["ack", &token]).run().success();
    let claim = r(&["claim", "--lease", "1h"]).run();
    let token = claim.success().text().trim_end().to_string();
    assert!(token.starts_with("2."), "the next is claimed: {claim:?}");
    r(&["nack", &token]).run().success();
    let nacked = s.entry("default", 2);
    assert_eq!(nacked["state"], "ready", "{nacked}");
    assert_eq!(nacked["attempts"], 1, "{nacked}");
    r(&["pop"]).prints("three");
    r(&["pop"]).prints(binary_payload());
    r(&["pop"]).prints("later");
    r(&["pop"]).prints("two");
    r(&["pop"]).run().nothing();

    // Ids go on from the counter the other version kept, both ways (the delayed message
    // took 7 for its place when it was promoted, the nack 8).
    assert_eq!(ids(r(&["push", "--print-id", "back"]).run()), [9]);
    w(&["pop"]).prints("back");
    assert_eq!(ids(w(&["push", "--print-id", "again"]).run()), [10]);
    r(&["pop"]).prints("again");
    r(&["pop"]).run().nothing();
    w(&["pop"]).run().nothing();
}

#[test]
fn the_earlier_version_and_this_one_read_each_others_spools() {
    let dir = tempfile::tempdir().expect("create temporary directory");
    let Some(earlier) = build_earlier(dir.path()) else {
        return;
    };
    let this = Path::new(crate::harness::BIN);
    exchange(&earlier, this);
    exchange(this, &earlier);
}
