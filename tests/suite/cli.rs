//! The command line itself: help, version, completions, usage errors, global flags.

use crate::harness::{Engine, Fixture, engine_tests, is_one_spool_line, names_in};

engine_tests! {
    completions_for_an_unknown_shell_fail, usage_errors_print_one_spool_line,
    n_above_one_needs_framing, output_that_cannot_be_written_is_an_error,
    help_and_version_that_cannot_be_written_are_errors,
}

const SUBCOMMANDS: [&str; 9] = [
    "push",
    "pop",
    "peek",
    "list",
    "len",
    "stats",
    "clear",
    "queues",
    "completions",
];

/// The subcommands `spool --help` lists under "Commands:" (except `help`).
fn listed_subcommands(s: &Fixture) -> Vec<String> {
    let out = s.run(&["--help"]);
    out.success();
    out.text()
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn help_on_every_subcommand_has_examples() {
    let s = Fixture::new();
    let listed = listed_subcommands(&s);
    for sub in SUBCOMMANDS {
        assert!(
            listed.iter().any(|l| l == sub),
            "--help lists {sub}: {listed:?}"
        );
    }
    for sub in &listed {
        let out = s.run(&[sub, "--help"]);
        out.success();
        assert!(out.text().contains("Example"), "{sub} --help:\n{out:?}");
        assert!(
            out.text().contains("Usage: spool"),
            "{sub} --help:\n{out:?}"
        );
        let out = s.run(&["help", sub]);
        out.success();
        assert!(out.text().contains("Example"), "help {sub}:\n{out:?}");
    }
    let out = s.run(&["--help"]);
    assert!(out.text().contains("Example"), "--help:\n{out:?}");
    assert!(!s.root().exists(), "--help created the root");
}

#[test]
fn version() {
    let s = Fixture::new();
    s.prints(&["--version"], "spool 0.1.0\n");
    s.prints(&["-V"], "spool 0.1.0\n");
    // Needs no root at all.
    s.cmd()
        .no_dir()
        .env("HOME", "")
        .arg("--version")
        .prints("spool 0.1.0\n");
}

#[test]
fn completions_for_each_shell() {
    let s = Fixture::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = s.run(&["completions", shell]);
        out.success();
        assert!(!out.stdout.is_empty(), "{shell}: empty script");
        let script = out.text();
        assert!(script.contains("spool"), "{shell} script names spool");
        for sub in ["push", "pop", "stats"] {
            assert!(script.contains(sub), "{shell} script completes {sub}");
        }
    }
    assert!(!s.root().exists(), "completions created the root");
}

fn completions_for_an_unknown_shell_fail(engine: Engine) {
    let s = engine.fixture();
    let out = s.run(&["completions", "tcsh"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// Command lines that are usage errors.
const USAGE_ERRORS: &[&[&str]] = &[
    &["push", "--lines", "x"],
    &["push", "x", "--lines"],
    &["push", "-0", "x"],
    &["push", "--null", "x", "y"],
    &["pop", "-n", "0"],
    &["pop", "-n", "many"],
    &["peek", "--count", "-1"],
    &["pop", "-n", "2"],
    &["peek", "-n", "3"],
    &["pop", "--bogus"],
    &["len", "extra"],
    &["nosuch"],
    &[],
    &["completions"],
    &["completions", "tcsh"],
];

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let s = Fixture::new();
    s.push(&["keep"]);
    for args in USAGE_ERRORS {
        let out = s.run(args);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(!out.stderr.is_empty(), "{out:?}");
    }
    // Nothing pushed, nothing popped, no other queue created.
    assert_eq!(s.len("default"), 1);
    assert_eq!(names_in(s.root()), ["default"]);
}

/// The contract is "2: any error, with exactly one line on stderr starting `spool: `";
/// errors found while parsing the command line are errors too.
fn usage_errors_print_one_spool_line(engine: Engine) {
    let s = engine.fixture();
    let mut wrong = Vec::new();
    for args in USAGE_ERRORS {
        let out = s.run(args);
        if out.code != 2 || !is_one_spool_line(&out.stderr) {
            wrong.push(format!("{out:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} usage errors do not print one \"spool: \" line:\n\n{}",
        wrong.len(),
        USAGE_ERRORS.len(),
        wrong.join("\n\n")
    );
}

fn n_above_one_needs_framing(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    for cmd in ["pop", "peek"] {
        for n in ["-n2", "--count=2"] {
            let out = s.run(&[cmd, n]);
            out.error().stderr_has("needs --lines or --null");
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }
    assert_eq!(s.len("default"), 2);
}

#[test]
fn global_flags_before_or_after_the_subcommand() {
    let s = Fixture::new();
    let root = s.root().to_str().expect("UTF-8 temp path");
    s.cmd()
        .no_dir()
        .args(["--dir", root, "-q", "a", "push", "1"])
        .run()
        .success();
    s.cmd()
        .no_dir()
        .args(["push", "-q", "a", "--dir", root, "2"])
        .run()
        .success();
    s.cmd()
        .no_dir()
        .args(["push", "3", "--queue", "a", "--dir", root])
        .run()
        .success();
    s.cmd()
        .no_dir()
        .args(["--queue=a", "push", &format!("--dir={root}"), "4"])
        .run()
        .success();
    s.cmd()
        .no_dir()
        .args(["-qa", "push", "--dir", root, "5"])
        .run()
        .success();
    assert_eq!(names_in(s.root()), ["a"]);
    s.cmd()
        .no_dir()
        .args(["pop", "-n", "9", "--lines", "-q", "a", "--dir", root])
        .prints("1\n2\n3\n4\n5\n");
    s.cmd()
        .no_dir()
        .args(["len", "--dir", root, "--queue", "a"])
        .prints("0\n");
}

/// Opens /dev/full for writing, or skips (failing in CI).
fn dev_full() -> Option<std::fs::File> {
    if !std::path::Path::new("/dev/full").exists() {
        crate::harness::skip("/dev/full does not exist");
        return None;
    }
    Some(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

fn output_that_cannot_be_written_is_an_error(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    for args in [
        &["len"][..],
        &["list"],
        &["list", "--json"],
        &["queues"],
        &["stats"],
        &["stats", "--json"],
        &["stats", "--all"],
        &["completions", "bash"],
    ] {
        let Some(full) = dev_full() else { return };
        let out = s
            .cmd()
            .args(args)
            .run_with_stdout(std::process::Stdio::from(full));
        out.error().stderr_has("No space left on device");
    }
    assert_eq!(s.len("default"), 2);
}

fn help_and_version_that_cannot_be_written_are_errors(engine: Engine) {
    let s = engine.fixture();
    for args in [&["--version"][..], &["--help"], &["push", "--help"]] {
        let Some(full) = dev_full() else { return };
        let out = s
            .cmd()
            .args(args)
            .run_with_stdout(std::process::Stdio::from(full));
        out.error();
    }
}
