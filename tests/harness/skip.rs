//! Skipping a test visibly when the machine lacks what it needs (a tool, root, a
//! commit): `SKIPPED: <reason>` on the real standard error and a pass, except when
//! `CI=true`, where a test that cannot run is a failure.

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether the suite runs in CI, where a missing tool or privilege is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips a test visibly: prints "SKIPPED: REASON" to the real standard error (not the
/// captured one), or panics when `CI=true`. Use as `return skip("...")`.
#[track_caller]
pub fn skip(reason: &str) {
    if in_ci() {
        panic!("{reason}, and CI=true forbids skipping this test");
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "SKIPPED: {reason}");
}

/// `Ok` when `program ARGS` spawns and exits 0, otherwise why not.
pub fn tool_works(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{program} {}` fails ({s})", args.join(" "))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{program} not installed"))
        }
        Err(e) => Err(format!("{program} cannot run: {e}")),
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Checks that the test can run: root when `root`, and each tool (`program args` exits 0).
/// Otherwise skips visibly (a failure under CI=true) and returns false.
#[track_caller]
pub fn require(root: bool, tools: &[(&str, &[&str])]) -> bool {
    if root && !is_root() {
        skip("not running as root: this test needs root");
        return false;
    }
    for (program, args) in tools {
        if let Err(why) = tool_works(program, args) {
            skip(&why);
            return false;
        }
    }
    true
}

/// Checks that strace is installed and allowed to trace here; skips otherwise.
#[track_caller]
pub fn require_strace() -> bool {
    match super::strace_usable() {
        Ok(()) => true,
        Err(why) => {
            skip(&why);
            false
        }
    }
}
