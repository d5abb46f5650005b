//! `spool run`: a command per message, with the payload on standard input and SPOOL_ID,
//! SPOOL_QUEUE, SPOOL_ATTEMPT and SPOOL_DIR in its environment. Exit 0 acks, 100 fails at
//! once, anything else retries with a doubling backoff until --max-attempts; commands
//! past --lease get SIGTERM, then SIGKILL; a killed `spool run` hands its messages on at
//! once; signals stop it gracefully.
//!
//! Commands that outlive the test (a `sleep 30` left behind by a killed `spool run`) write
//! their pid to a file and `exec sleep`, so the test kills exactly them ([`KillOnDrop`]).

use std::path::Path;
use std::time::Duration;

use crate::harness::{
    Cmd, Engine, Fixture, KillOnDrop, Output, Running, engine_tests, now_secs, require, wait_until,
};

engine_tests! {
    the_commands_output_passes_through,
    exit_0_acks_100_fails_at_once_and_others_retry_after_the_backoff,
    every_message_acked_exits_0,
    retries_double_their_backoff_until_max_attempts_then_fail,
    a_zero_backoff_retries_within_the_same_run,
    the_default_max_attempts_is_5,
    a_command_killed_by_a_signal_is_retried_then_failed,
    max_stops_after_n_messages,
    jobs_run_commands_side_by_side,
    one_job_at_a_time_by_default,
    a_command_that_cannot_start_exits_2_and_keeps_the_message,
    an_unknown_option_before_the_command_is_a_usage_error,
    the_command_starts_at_its_first_word_or_after_the_double_dash,
    a_lease_of_0_is_refused_and_spends_no_attempt,
}

/// How long a test waits for something that should happen at once, on a noisy machine.
pub(super) const SOON: Duration = Duration::from_secs(10);

/// `spool run OPTIONS... -- sh -c SCRIPT`, with `$LOG` naming a file outside the spool
/// (read with [`logged`]), `$PIDFILE` another (for [`left_running`]) and `env` set.
pub(super) fn run_cmd(s: &Fixture, options: &[&str], script: &str, env: &[(&str, &Path)]) -> Cmd {
    let mut cmd = s
        .cmd()
        .arg("run")
        .args(options)
        .args(["--", "sh", "-c", script])
        .env("LOG", s.outside("log"))
        .env("PIDFILE", s.outside("pid"));
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd
}

/// Runs [`run_cmd`].
pub(super) fn run_sh(s: &Fixture, options: &[&str], script: &str, env: &[(&str, &Path)]) -> Output {
    run_cmd(s, options, script, env).run()
}

/// Starts [`run_cmd`] in the background.
pub(super) fn spawn_sh(
    s: &Fixture,
    options: &[&str],
    script: &str,
    env: &[(&str, &Path)],
) -> Running {
    run_cmd(s, options, script, env).spawn()
}

/// The line run writes on standard error for a failed attempt of message `id` of the
/// default queue, as [`Output::exits_saying`] compares it (a time written `<time>`):
/// `how` the command ended, `next` [`RETRY`] or [`FAILED`].
pub(super) fn failed_line(id: u64, attempt: u32, max: u32, how: &str, next: &str) -> String {
    format!(
        "spool: run: message {id} (queue default): attempt {attempt} of {max} failed: {how}; {next}\n"
    )
}

/// What [`failed_line`] says of a message retried later.
pub(super) const RETRY: &str = "retry at <time>";

/// What [`failed_line`] says of a message moved to the failed state.
pub(super) const FAILED: &str = "moved to failed";

/// How [`failed_line`] says a command was stopped at the end of its lease.
pub(super) const LEASE_ENDED: &str = "stopped at the end of its lease";

/// A command that outlives its `spool run`: it writes its pid to `$PIDFILE` and sleeps.
pub(super) const SLEEPER: &str = r#"echo $$ > "$PIDFILE"; exec sleep 30"#;

/// The command that wrote its pid to `$PIDFILE` (waiting for it), killed when dropped.
pub(super) fn left_running(s: &Fixture) -> KillOnDrop {
    KillOnDrop(Some(pid_in(&s.outside("pid"))))
}

/// The command that wrote its pid to `$PIDFILE`, if any, killed when dropped.
pub(super) fn maybe_left_running(s: &Fixture) -> KillOnDrop {
    KillOnDrop(read(&s.outside("pid")).trim().parse().ok())
}

/// What the commands wrote to `$LOG`.
pub(super) fn logged(s: &Fixture) -> String {
    read(&s.outside("log"))
}

/// The content of a file, empty when it does not exist.
pub(super) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The pid a command wrote to `path` (waiting for it to be written).
#[track_caller]
pub(super) fn pid_in(path: &Path) -> u32 {
    let mut pid = None;
    wait_until(&format!("a pid in {}", path.display()), SOON, || {
        pid = read(path).trim().parse().ok();
        pid.is_some()
    });
    pid.unwrap()
}

#[test]
fn each_payload_goes_to_the_command_with_its_environment() {
    let s = Fixture::new();
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    s.run(&["-q", "jobs", "push", "first"]).success();
    s.cmd()
        .args(["-q", "jobs", "push"])
        .stdin(binary.clone())
        .run()
        .success();
    s.run(&["-q", "jobs", "push", ""]).success();
    let out = s
        .cmd()
        .args(["-q", "jobs", "run", "--", "sh", "-c"])
        .arg(r#"printf '%s %s %s %s|' "$SPOOL_ID" "$SPOOL_QUEUE" "$SPOOL_ATTEMPT" "$SPOOL_DIR"; cat; echo"#)
        .run();
    out.success();
    let root = s.root().display().to_string();
    let mut expected = format!("1 jobs 1 {root}|first\n").into_bytes();
    expected.extend(format!("2 jobs 1 {root}|").bytes());
    expected.extend(&binary);
    expected.extend(format!("\n3 jobs 1 {root}|\n").bytes());
    out.stdout_is(expected);
    assert_eq!(s.states("jobs"), []);
}

fn the_commands_output_passes_through(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let out = run_sh(&s, &[], "cat; echo; echo \"err $SPOOL_ID\" >&2", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout_is("a\nb\n");
    assert_eq!(out.stderr, "err 1\nerr 2\n");
}

#[test]
fn run_on_an_empty_or_missing_queue_exits_0() {
    let s = Fixture::new();
    s.run(&["run", "--", "sh", "-c", "echo ran"])
        .says_missing("default", 0, "");
    assert!(!s.root().exists(), "run created the root");
    s.push(&["x"]);
    s.run(&["pop"]).success();
    s.prints(&["run", "--", "sh", "-c", "echo ran"], "");
    s.run(&["run", "--max", "3", "-j", "2", "--", "false"])
        .success();
}

fn exit_0_acks_100_fails_at_once_and_others_retry_after_the_backoff(engine: Engine) {
    let s = engine.fixture();
    s.push(&["ok", "permanent", "retry"]);
    let before = now_secs();
    let out = run_sh(
        &s,
        &[],
        r#"read -r m; case $m in ok) exit 0;; permanent) exit 100;; *) exit 3;; esac"#,
        &[],
    );
    let after = now_secs();
    // Each failed attempt is one line on standard error.
    let expected = failed_line(2, 1, 5, "exit status 100", FAILED)
        + &failed_line(3, 1, 5, "exit status 3", RETRY);
    out.exits_saying(3, &expected);
    out.stdout_is("");
    let permanent = s.assert_state(2, "failed", 1);
    assert_eq!(permanent["reason"], "exit-100");
    s.assert_state(3, "delayed", 1);
    // The default backoff is 10 s.
    let due = s.until(3);
    assert!(
        (before + 10 - 1..=after + 10 + 1).contains(&due),
        "due at {due}, not 10 s after {before}..={after}"
    );
    assert_eq!(
        out.stderr_times(),
        [due],
        "the line names the retry's due time"
    );
    assert_eq!(s.states("default").len(), 2, "message 1 was acked");
    // exit 100 fails at once whatever --max-attempts says.
    s.push(&["permanent"]);
    run_sh(&s, &["--max-attempts", "9"], "exit 100", &[])
        .exits_saying(3, &failed_line(4, 1, 9, "exit status 100", FAILED));
    assert_eq!(s.list_json("default", "failed").len(), 2);
}

fn every_message_acked_exits_0(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c"]);
    run_sh(&s, &[], r#"cat >> "$LOG"; echo >> "$LOG""#, &[]).exits(0);
    assert_eq!(logged(&s), "a\nb\nc\n");
    assert_eq!(s.states("default"), []);
}

fn retries_double_their_backoff_until_max_attempts_then_fail(engine: Engine) {
    let s = engine.fixture();
    s.push(&["stubborn"]);
    let script = r#"echo "$SPOOL_ATTEMPT" >> "$LOG"; exit 7"#;
    let options = ["--backoff", "2s", "--max-attempts", "3"];

    // Attempt 1: retried 2 s later.
    let before = now_secs();
    let out = run_sh(&s, &options, script, &[]);
    out.exits_saying(3, &failed_line(1, 1, 3, "exit status 7", RETRY));
    let after = now_secs();
    s.assert_state(1, "delayed", 1);
    let due1 = s.until(1);
    assert_eq!(out.stderr_times(), [due1]);
    assert!(
        (before + 2 - 1..=after + 2 + 1).contains(&due1),
        "first retry due at {due1}, not 2 s after {before}..={after}"
    );
    // Not visible before then: another run finds nothing to do.
    run_sh(&s, &options, script, &[]).exits(0);
    s.run(&["pop"]).nothing();
    assert_eq!(logged(&s), "1\n");

    // One attempt, waiting for the message to be due.
    const RETRY_ONCE_DUE: &[&str] = &[
        "--wait",
        "--max",
        "1",
        "--backoff",
        "2s",
        "--max-attempts",
        "3",
    ];
    // Attempt 2 once due (run --wait --max 1 waits for it): retried 4 s later.
    let out = run_sh(&s, RETRY_ONCE_DUE, script, &[]);
    out.exits_saying(3, &failed_line(1, 2, 3, "exit status 7", RETRY));
    let ran = now_secs();
    assert!(
        ran >= due1,
        "attempt 2 ran at {ran}, before its due time {due1}"
    );
    assert_eq!(logged(&s), "1\n2\n");
    s.assert_state(1, "delayed", 2);
    let due2 = s.until(1);
    assert!(
        (due1 + 4 - 1..=ran + 4 + 1).contains(&due2),
        "second retry due at {due2}: not 4 s after attempt 2 (first due {due1}, ran by {ran})"
    );
    assert_eq!(out.stderr_times(), [due2]);

    // Attempt 3 is the last: failed.
    run_sh(&s, RETRY_ONCE_DUE, script, &[])
        .exits_saying(3, &failed_line(1, 3, 3, "exit status 7", FAILED));
    assert!(now_secs() >= due2, "attempt 3 ran before its due time");
    assert_eq!(logged(&s), "1\n2\n3\n");
    let v = s.assert_state(1, "failed", 3);
    assert_eq!(v["reason"], "attempts-exit-7");
    run_sh(&s, &options, script, &[]).exits(0);
    assert_eq!(logged(&s), "1\n2\n3\n", "a failed message ran again");

    // Requeued, it runs again from attempt 1.
    s.prints(&["requeue", "--all"], "1\n");
    run_sh(&s, &[], r#"echo "$SPOOL_ATTEMPT" >> "$LOG""#, &[]).exits(0);
    assert_eq!(logged(&s), "1\n2\n3\n1\n");
    assert_eq!(s.states("default"), []);
}

fn a_zero_backoff_retries_within_the_same_run(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let out = run_sh(
        &s,
        &["--backoff", "0s", "--max-attempts", "3"],
        r#"read -r m; echo "$m $SPOOL_ATTEMPT" >> "$LOG"; [ "$m" = b ] || [ "$SPOOL_ATTEMPT" = 3 ]"#,
        &[],
    );
    let expected = failed_line(1, 1, 3, "exit status 1", RETRY)
        + &failed_line(1, 2, 3, "exit status 1", RETRY);
    out.exits_saying(3, &expected);
    // Each retry goes behind the waiting messages.
    assert_eq!(logged(&s), "a 1\nb 1\na 2\na 3\n");
    assert_eq!(s.states("default"), []);
}

fn the_default_max_attempts_is_5(engine: Engine) {
    let s = engine.fixture();
    s.push(&["never works"]);
    let out = run_sh(
        &s,
        &["--backoff", "0s"],
        r#"echo "$SPOOL_ATTEMPT" >> "$LOG"; exit 1"#,
        &[],
    );
    let expected: String = (1..=5)
        .map(|n| failed_line(1, n, 5, "exit status 1", if n < 5 { RETRY } else { FAILED }))
        .collect();
    out.exits_saying(3, &expected);
    assert_eq!(logged(&s), "1\n2\n3\n4\n5\n");
    let v = s.assert_state(1, "failed", 5);
    assert_eq!(v["reason"], "attempts-exit-1");
}

fn a_command_killed_by_a_signal_is_retried_then_failed(engine: Engine) {
    let s = engine.fixture();
    s.push(&["crash"]);
    let out = run_sh(
        &s,
        &["--backoff", "0s", "--max-attempts", "2"],
        "kill -9 $$",
        &[],
    );
    let how = "killed by signal 9 (SIGKILL)";
    out.exits_saying(
        3,
        &(failed_line(1, 1, 2, how, RETRY) + &failed_line(1, 2, 2, how, FAILED)),
    );
    let v = s.assert_state(1, "failed", 2);
    assert_eq!(v["reason"], "attempts-signal-9");
}

fn max_stops_after_n_messages(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4", "5"]);
    let out = s.run(&["run", "--max", "2", "--", "sh", "-c", "cat; echo"]);
    out.success().stdout_is("1\n2\n");
    assert_eq!(s.listed_ids("default"), [3, 4, 5]);
    let out = s.run(&[
        "run",
        "--max",
        "2",
        "-j",
        "4",
        "--",
        "sh",
        "-c",
        "cat; echo",
    ]);
    out.success();
    assert_eq!(s.listed_ids("default"), [5]);
    s.run(&["run", "--max", "0", "--", "true"]).error();
    assert_eq!(s.listed_ids("default"), [5]);
}

fn jobs_run_commands_side_by_side(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3", "4"]);
    let script = r#"echo "start $SPOOL_ID" >> "$LOG"; sleep 2; echo "end $SPOOL_ID" >> "$LOG""#;
    run_sh(&s, &["-j", "4"], script, &[]).exits(0);
    let lines: Vec<String> = logged(&s).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert!(
        lines[..4].iter().all(|l| l.starts_with("start")),
        "all four started before any ended: {lines:?}"
    );
    assert_eq!(s.states("default"), []);
    for bad in ["0", "1025", "x"] {
        s.run(&["run", "-j", bad, "--", "true"]).error();
    }
}

/// Pushes `n` messages, `1` to `n`: on a fresh queue, each one's id.
fn push_numbers(s: &Fixture, n: u64) {
    let payloads: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    s.push(&payloads);
}

/// With output captured, each command costs two pipes: with -j in the hundreds, run
/// passed the usual limit of 1024 open descriptors, a command could not start (EMFILE),
/// and run stopped, abandoning the commands still running, whose messages went back to
/// the queue while they ran, to run twice. Where the limit cannot be raised, run now
/// gives the message back and starts it once a command ended.
#[test]
fn out_of_descriptors_run_waits_for_a_command_to_end() {
    if !require(false, &[("prlimit", &["-V"])]) {
        return;
    }
    let s = Fixture::new();
    push_numbers(&s, 40);
    let out = run_cmd(
        &s,
        &["-j", "40"],
        r#"echo "$SPOOL_ID" >> "$LOG"; sleep 0.5"#,
        &[],
    )
    .wrap(["prlimit", "--nofile=64:64"])
    .run();
    out.success();
    let mut ran: Vec<u64> = logged(&s)
        .lines()
        .map(|l| l.parse().expect("an id"))
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, (1..=40).collect::<Vec<u64>>(), "each message ran once");
    assert_eq!(s.states("default"), []);
    // The attempts given back were not counted: each message was acked at its first.
    assert!(s.list_json("default", "all").is_empty());
}

/// run raises its soft limit of open descriptors to what its -j commands need (8 each,
/// and 64), within the hard limit; its commands inherit it.
#[test]
fn run_raises_its_descriptor_limit_to_what_its_jobs_need() {
    if !require(false, &[("prlimit", &["-V"])]) {
        return;
    }
    let s = Fixture::new();
    push_numbers(&s, 40);
    let out = run_cmd(&s, &["-j", "40"], r#"ulimit -n >> "$LOG"; sleep 0.5"#, &[])
        .wrap(["prlimit", "--nofile=64:4096"])
        .run();
    out.success();
    assert_eq!(logged(&s), "384\n".repeat(40));
    // Within the hard limit.
    s.push(&["x"]);
    let out = run_cmd(&s, &["-j", "1000"], r#"ulimit -n >> "$LOG""#, &[])
        .wrap(["prlimit", "--nofile=64:4096"])
        .run();
    out.success();
    assert!(logged(&s).ends_with("384\n4096\n"), "{}", logged(&s));
}

fn one_job_at_a_time_by_default(engine: Engine) {
    let s = engine.fixture();
    s.push(&["1", "2", "3"]);
    let script = r#"echo "start $SPOOL_ID" >> "$LOG"; sleep 0.2; echo "end $SPOOL_ID" >> "$LOG""#;
    run_sh(&s, &[], script, &[]).exits(0);
    assert_eq!(
        logged(&s),
        "start 1\nend 1\nstart 2\nend 2\nstart 3\nend 3\n"
    );
}

fn a_command_that_cannot_start_exits_2_and_keeps_the_message(engine: Engine) {
    let s = engine.fixture();
    s.push(&["kept"]);
    let out = s.run(&["run", "--", "/nonexistent/command"]);
    out.error();
    s.assert_state(1, "ready", 0);
    s.prints(&["pop"], "kept");
}

/// `spool run --bogus cat` took `--bogus` for the command: with messages,
/// each failed with "run --bogus: No such file or directory" and spent an attempt. An
/// unknown option before the command is a usage error, as for every other subcommand.
fn an_unknown_option_before_the_command_is_a_usage_error(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    for args in [
        &["run", "--bogus", "cat"][..],
        &["run", "-x", "cat"],
        &["run", "-w", "--bogus", "cat"],
        &["run", "--bogus"],
    ] {
        let out = s.run(args);
        out.error().stderr_has("unexpected argument '-");
        out.stderr_has("(see spool run --help)");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    s.assert_state(1, "ready", 0);
    s.assert_state(2, "ready", 0);
    // On an empty queue too (it used to exit 0, silently).
    let e = engine.fixture();
    e.run(&["run", "--bogus", "cat"]).error();
}

/// What follows the command's first word is the command's, options
/// included; after `--`, a command whose name starts with `-` runs.
fn the_command_starts_at_its_first_word_or_after_the_double_dash(engine: Engine) {
    let s = engine.fixture();
    s.push(&["one"]);
    // `-n` and `--max` go to sh (as its $0 and $1), not to run.
    let script = r#"printf '%s %s|' "$0" "$1"; cat"#;
    s.prints(&["run", "sh", "-c", script, "-n", "--max"], "-n --max|one");
    s.push(&["two", "three"]);
    s.prints(
        &["run", "--max", "1", "sh", "-c", script, "-j", "--bogus"],
        "-j --bogus|two",
    );
    s.assert_state(3, "ready", 0);
    s.prints(&["pop"], "three");
    // A command named with a leading `-`, after `--`.
    let bin = s.outside("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("-weird-cmd");
    std::fs::write(&script, "#!/bin/sh\nprintf 'weird %s|' \"$1\"; cat\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    s.push(&["four"]);
    s.cmd()
        .env("PATH", format!("{}:{path}", bin.display()))
        .args(["run", "--", "-weird-cmd", "--bogus"])
        .prints("weird --bogus|four");
    assert_eq!(s.states("default"), []);
}

/// `run --lease 0` killed every command at once and spent an attempt of
/// each message (exit 3, nothing on standard error). A lease is at least 1 ms.
fn a_lease_of_0_is_refused_and_spends_no_attempt(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a"]);
    for lease in ["0", "0ms", "0s", "0d0h0m"] {
        let out = run_sh(&s, &["--lease", lease], "cat", &[]);
        out.error()
            .stderr_has("--lease must be at least 1ms (see spool run --help)");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    s.assert_state(1, "ready", 0);
    // The shortest lease there is still runs the command.
    let out = run_sh(
        &s,
        &["--lease", "1ms", "--backoff", "0"],
        "exec sleep 5",
        &[],
    );
    assert_eq!(out.code, 3, "{out:?}");
}
