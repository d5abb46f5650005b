//! The command line itself: help, version, completions, usage errors, global flags.

use crate::harness::{Engine, Fixture, engine_tests, is_one_spool_line, names_in};

engine_tests! {
    completions_for_an_unknown_shell_fail, usage_errors_print_one_spool_line,
    n_above_one_needs_framing, output_that_cannot_be_written_is_an_error,
    help_and_version_that_cannot_be_written_are_errors,
    usage_errors_are_in_the_words_of_the_flag, long_or_invisible_input_is_cut_in_errors,
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

/// Command lines that are usage errors (`spool` alone too, but it prints the short help:
/// see [`spool_alone_prints_the_short_help_and_exits_2`]).
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
    &["completions"],
    &["completions", "tcsh"],
    &["run", "--bogus", "cat"],
    &["run", "--lease", "0", "cat"],
    &["claim", "--lease", "0"],
    &["extend", "1.0123456789abcdef", "--lease", "0"],
    &["push", "--delay", "-1", "x"],
    &["push", "--at", "2026-02-30T00:00:00Z", "x"],
    &["push", "--at", "2026-12-01T22:00:00+25:00", "x"],
    &["push", "--delay", "99999999999999999999", "x"],
    &["ack", "1.0123456789abcde"],
    &["ack", "1.0123456789abcdef0"],
    &["--dir"],
];

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let s = Fixture::new();
    s.push(&["keep"]);
    for args in USAGE_ERRORS.iter().chain([&[][..]].iter()) {
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

/// `spool` alone printed "'spool' requires a subcommand" (or its
/// description) as an error. It prints what `spool -h` prints, on standard error, exits 2
/// and creates nothing.
#[test]
fn spool_alone_prints_the_short_help_and_exits_2() {
    let s = Fixture::new();
    let short = s.run(&["-h"]);
    short.success();
    assert!(short.text().contains("Usage: spool"), "{short:?}");
    let out = s.cmd().no_dir().env("SPOOL_DIR", s.root()).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr, short.text());
    assert!(!s.root().exists(), "spool alone created the root");
}

/// Errors read like Rust (`0 is not in
/// 1..18446744073709551615`, "unexpected argument '-1'" for `--delay -1`, "expected a
/// number and a unit" for a number) and always pointed to `spool --help`. Each is now in
/// the words of the flag, and points to the help of the subcommand it is about.
fn usage_errors_are_in_the_words_of_the_flag(engine: Engine) {
    let s = engine.fixture();
    s.push(&["keep"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["pop", "-n", "0"],
            "-n/--count must be at least 1 (see spool pop --help)",
        ),
        (
            &["peek", "--count", "-1"],
            "-n/--count must be at least 1 (see spool peek --help)",
        ),
        (
            &["pop", "-n", "many"],
            "invalid value 'many' for -n/--count: not a whole number (see spool pop --help)",
        ),
        (
            &["run", "--lease", "0", "cat"],
            "--lease must be at least 1ms (see spool run --help)",
        ),
        (
            &["claim", "--lease", "0"],
            "--lease must be at least 1ms (see spool claim --help)",
        ),
        (
            &["extend", "1.0123456789abcdef", "--lease", "0ms"],
            "--lease must be at least 1ms (see spool extend --help)",
        ),
        (
            &["run", "-j", "0", "cat"],
            "-j/--jobs must be from 1 to 1024 (see spool run --help)",
        ),
        (
            &["run", "--max", "0", "cat"],
            "--max must be at least 1 (see spool run --help)",
        ),
        (
            &["claim", "--max-attempts", "0"],
            "--max-attempts must be at least 1 (see spool claim --help)",
        ),
        (
            &["push", "--priority", "10", "x"],
            "--priority must be from 0 to 9 (see spool push --help)",
        ),
        (
            &["requeue", "0"],
            "ID must be at least 1 (see spool requeue --help)",
        ),
        (
            &["push", "--delay", "-1", "x"],
            "invalid value '-1' for --delay: durations are not negative (see spool push --help)",
        ),
        (
            &["nack", "1.0123456789abcdef", "--delay", "-5m"],
            "invalid value '-5m' for --delay: durations are not negative (see spool nack --help)",
        ),
        (
            &["push", "--ttl", "99999999999999999999", "x"],
            "invalid value '99999999999999999999' for --ttl: too large: durations go up to \
             213503982334d (a bare number is seconds) (see spool push --help)",
        ),
        (
            &["pop", "--wait", "--timeout", "1h30"],
            "invalid value '1h30' for --timeout: a duration needs a unit after each number: \
             20ms, 5s, 1h30m (see spool pop --help)",
        ),
        (
            &["push", "--at", "2026-02-30T00:00:00Z", "x"],
            "invalid value '2026-02-30T00:00:00Z' for --at: no such date: 2026-02 has 28 days \
             (see spool push --help)",
        ),
        (
            &["show", "1.0123456789abcdef0"],
            "invalid value '1.0123456789abcdef0' for TOKEN|ID: not a claim token (they look \
             like 42.9f3a0c1d2e4b5a67) (see spool show --help)",
        ),
        (
            &["pop", "--bogus"],
            "unexpected argument '--bogus' found (see spool pop --help)",
        ),
        (
            &["--queue=jobs", "len", "extra"],
            "unexpected argument 'extra' found (see spool len --help)",
        ),
        (
            &["-qjobs", "len", "-x"],
            "unexpected argument '-x' found (see spool len --help)",
        ),
        (
            &["nosuch"],
            "unrecognized subcommand 'nosuch' (see spool --help)",
        ),
    ];
    let mut wrong = Vec::new();
    for (args, expected) in cases {
        let out = s.run(args);
        if out.code != 2 || out.stderr != format!("spool: {expected}\n") || !out.stdout.is_empty() {
            wrong.push(format!("expected \"spool: {expected}\":\n{out:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // No error of any usage error reads like Rust.
    for args in USAGE_ERRORS {
        let out = s.run(args);
        for rust in [
            "is not in",
            "invalid digit",
            "..=",
            "expected a number and a unit",
        ] {
            assert!(!out.stderr.contains(rust), "{out:?}");
        }
    }
    assert_eq!(s.len("default"), 1);
}

/// A 100 kB token was echoed whole in its error. Every value an error
/// quotes is cut to its first 40 characters and `…`, and what is invisible (a newline, an
/// escape) is escaped, so that the error stays one short line.
fn long_or_invisible_input_is_cut_in_errors(engine: Engine) {
    let s = engine.fixture();
    s.push(&["keep"]);
    let long = "7".repeat(100_000);
    let long_token = format!("1.{}", "a".repeat(100_000));
    let cases: &[&[&str]] = &[
        &["ack", &long_token],
        &["nack", &long_token],
        &["extend", &long_token, "--lease", "1m"],
        &["show", &long_token],
        &["show", &long],
        &["len", &long],
        &[&long],
        &["pop", "-n", &format!("x{long}")],
        &["push", "--delay", &format!("{long}x"), "m"],
        &["push", "--at", &long, "m"],
        &["requeue", &format!("{long}x")],
        &["-q", &long, "len"],
    ];
    for args in cases {
        let out = s.run(args);
        out.error().stderr_has("…");
        assert!(
            out.stderr.len() < 400,
            "{} bytes: {out:?}",
            out.stderr.len()
        );
        assert!(out.stderr.contains(&"7".repeat(30)) || out.stderr.contains(&"a".repeat(30)));
    }
    for (args, shown) in [
        (&["len", "a\nb"][..], "'a\\nb'"),
        (&["pop", "-n", "1\n2"], "'1\\n2'"),
        (&["ack", "1.ab\tc"], "'1.ab\\tc'"),
    ] {
        s.run(args).error().stderr_has(shown);
    }
    assert_eq!(s.len("default"), 1);
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
