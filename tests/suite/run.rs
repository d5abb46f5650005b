//! `spool run`: a command per message, with the payload on standard input and SPOOL_ID,
//! SPOOL_QUEUE, SPOOL_ATTEMPT and SPOOL_DIR in its environment. Exit 0 acks, 100 fails at
//! once, anything else retries with a doubling backoff until --max-attempts; commands
//! past --lease get SIGTERM, then SIGKILL; a killed `spool run` hands its messages on at
//! once; signals stop it gracefully.
//!
//! Commands that outlive the test (a `sleep 30` left behind by a killed `spool run`) write
//! their pid to a file and `exec sleep`, so the test kills exactly them ([`KillOnDrop`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{
    Cmd, Engine, Fixture, KillOnDrop, Output, Running, engine_tests, now_secs, send_signal,
    wait_until,
};

engine_tests! {
    the_commands_output_passes_through,
    exit_0_acks_100_fails_at_once_and_others_retry_after_the_backoff,
    every_message_acked_exits_0, retries_double_their_backoff_until_max_attempts_then_fail,
    a_zero_backoff_retries_within_the_same_run, the_default_max_attempts_is_5,
    a_command_killed_by_a_signal_is_retried_then_failed, max_stops_after_n_messages,
    jobs_run_commands_side_by_side, one_job_at_a_time_by_default,
    a_command_that_cannot_start_exits_2_and_keeps_the_message,
    a_command_past_its_lease_gets_sigterm_and_is_retried,
    a_command_stopped_at_its_lease_is_retried_even_if_it_exits_0,
    a_command_that_ignores_sigterm_gets_sigkill_5_s_later,
    kill_9_of_run_hands_the_message_to_the_next_consumer_at_once,
    kill_9_of_a_pop_that_is_writing_hands_the_message_on,
    sigint_or_sigterm_stops_claiming_and_lets_the_running_command_finish,
    a_second_signal_is_passed_on_to_the_commands, run_wait_handles_messages_as_they_come,
    run_wait_on_an_idle_queue_exits_0_at_a_signal,
    commands_write_to_nothing_when_run_has_its_output_closed,
    an_unknown_option_before_the_command_is_a_usage_error,
    the_command_starts_at_its_first_word_or_after_the_double_dash,
    a_lease_of_0_is_refused_and_spends_no_attempt,
}

/// How long a test waits for something that should happen at once, on a noisy machine.
const SOON: Duration = Duration::from_secs(10);

/// `spool run OPTIONS... -- sh -c SCRIPT`, with `$LOG` naming a file outside the spool
/// (read with [`logged`]), `$PIDFILE` another (for [`left_running`]) and `env` set.
fn run_cmd(s: &Fixture, options: &[&str], script: &str, env: &[(&str, &Path)]) -> Cmd {
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
fn run_sh(s: &Fixture, options: &[&str], script: &str, env: &[(&str, &Path)]) -> Output {
    run_cmd(s, options, script, env).run()
}

/// Starts [`run_cmd`] in the background.
fn spawn_sh(s: &Fixture, options: &[&str], script: &str, env: &[(&str, &Path)]) -> Running {
    run_cmd(s, options, script, env).spawn()
}

/// A command that outlives its `spool run`: it writes its pid to `$PIDFILE` and sleeps.
const SLEEPER: &str = r#"echo $$ > "$PIDFILE"; exec sleep 30"#;

/// The command that wrote its pid to `$PIDFILE` (waiting for it), killed when dropped.
fn left_running(s: &Fixture) -> KillOnDrop {
    KillOnDrop(Some(pid_in(&s.outside("pid"))))
}

/// The command that wrote its pid to `$PIDFILE`, if any, killed when dropped.
fn maybe_left_running(s: &Fixture) -> KillOnDrop {
    KillOnDrop(read(&s.outside("pid")).trim().parse().ok())
}

/// What the commands wrote to `$LOG`.
fn logged(s: &Fixture) -> String {
    read(&s.outside("log"))
}

/// The content of a file, empty when it does not exist.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The pid a command wrote to `path` (waiting for it to be written).
#[track_caller]
fn pid_in(path: &Path) -> u32 {
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
    out.exits(3);
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
    assert_eq!(s.states("default").len(), 2, "message 1 was acked");
    // exit 100 fails at once whatever --max-attempts says.
    s.push(&["permanent"]);
    run_sh(&s, &["--max-attempts", "9"], "exit 100", &[]).exits(3);
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
    run_sh(&s, &options, script, &[]).exits(3);
    let after = now_secs();
    s.assert_state(1, "delayed", 1);
    let due1 = s.until(1);
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
    run_sh(&s, RETRY_ONCE_DUE, script, &[]).exits(3);
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

    // Attempt 3 is the last: failed.
    run_sh(&s, RETRY_ONCE_DUE, script, &[]).exits(3);
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
    out.exits(3);
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
    out.exits(3);
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
    out.exits(3);
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

fn a_command_past_its_lease_gets_sigterm_and_is_retried(engine: Engine) {
    let s = engine.fixture();
    s.push(&["slow once"]);
    let started = Instant::now();
    let out = run_sh(
        &s,
        &["--lease", "1s", "--backoff", "0s", "--max-attempts", "2"],
        r#"echo "$SPOOL_ATTEMPT" >> "$LOG"; if [ "$SPOOL_ATTEMPT" = 1 ]; then echo $$ > "$PIDFILE"; exec sleep 30; fi"#,
        &[],
    );
    let _guard = maybe_left_running(&s);
    let took = started.elapsed();
    out.exits(3);
    assert_eq!(logged(&s), "1\n2\n");
    assert_eq!(s.states("default"), []);
    assert!(
        took >= Duration::from_millis(900),
        "the command was stopped before its lease ended: {took:?}"
    );
    assert!(
        took < Duration::from_secs(20),
        "not stopped at its lease: {took:?}"
    );

    // With no attempt left, it fails.
    s.push(&["always slow"]);
    let out = run_sh(&s, &["--lease", "1s", "--max-attempts", "1"], SLEEPER, &[]);
    let _guard = maybe_left_running(&s);
    out.exits(3);
    let failed = s.list_json("default", "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["attempts"], 1);
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("attempts-"), "reason {reason}");
}

fn a_command_stopped_at_its_lease_is_retried_even_if_it_exits_0(engine: Engine) {
    let s = engine.fixture();
    s.push(&["graceful"]);
    let out = run_sh(
        &s,
        &["--lease", "1s", "--backoff", "0s", "--max-attempts", "2"],
        r#"trap 'exit 0' TERM
echo "$SPOOL_ATTEMPT" >> "$LOG"
if [ "$SPOOL_ATTEMPT" = 1 ]; then sleep 30 & echo $! > "$PIDFILE"; wait; fi"#,
        &[],
    );
    let _guard = maybe_left_running(&s);
    out.exits(3);
    assert_eq!(logged(&s), "1\n2\n", "the stopped attempt was not retried");
    assert_eq!(s.states("default"), []);
}

fn a_command_that_ignores_sigterm_gets_sigkill_5_s_later(engine: Engine) {
    let s = engine.fixture();
    s.push(&["stubborn"]);
    let started = Instant::now();
    let out = run_sh(
        &s,
        &["--lease", "1s", "--max-attempts", "1"],
        r#"trap '' TERM; echo $$ > "$PIDFILE"; exec sleep 30"#,
        &[],
    );
    let _guard = maybe_left_running(&s);
    let took = started.elapsed();
    out.exits(3);
    let v = s.entry("default", 1);
    assert_eq!(v["state"], "failed");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.starts_with("attempts-"), "reason {reason}");
    assert!(
        took >= Duration::from_millis(5800),
        "SIGKILL came before lease + 5 s: {took:?}"
    );
    assert!(took < Duration::from_secs(25), "never killed: {took:?}");
}

fn kill_9_of_run_hands_the_message_to_the_next_consumer_at_once(engine: Engine) {
    let s = engine.fixture();
    s.push(&["held by run", "second"]);
    let mut run = spawn_sh(&s, &[], SLEEPER, &[]);
    let _command = left_running(&s);
    s.assert_state(1, "claimed", 1);
    // A live run's message is not handed out.
    s.run(&["claim", "--lease", "1m"]).success();
    s.run(&["claim"]).nothing();

    run.child.kill().expect("kill -9 spool run");
    let status = run.child.wait().expect("wait for spool run");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // Its command still runs, but the message is free: the very next claim gets it.
    let died = Instant::now();
    let out = s.run(&["claim"]);
    out.success();
    assert!(
        out.text().starts_with("1."),
        "the next claim gets message 1: {out:?}"
    );
    assert!(
        died.elapsed() < Duration::from_secs(1),
        "not at once: {:?}",
        died.elapsed()
    );
    let v = s.entry("default", 1);
    assert_eq!(v["state"], "claimed");
    assert_eq!(v["attempts"], 2, "the killed run's attempt counts: {v}");
    let token = out.text().trim_end().to_string();
    s.prints(&["show", &token], "held by run");
}

#[test]
fn kill_9_of_run_with_jobs_returns_every_message_to_its_place() {
    let s = Fixture::new();
    s.push(&["1", "2", "3", "4"]);
    let pids = s.outside("pids");
    std::fs::create_dir(&pids).unwrap();
    let mut run = spawn_sh(
        &s,
        &["-j", "3"],
        r#"echo $$ > "$PIDS/$SPOOL_ID"; exec sleep 30"#,
        &[("PIDS", &pids)],
    );
    let _commands: Vec<KillOnDrop> = ["1", "2", "3"]
        .iter()
        .map(|id| KillOnDrop(Some(pid_in(&pids.join(id)))))
        .collect();
    run.child.kill().expect("kill -9 spool run");
    run.child.wait().expect("wait for spool run");
    let out = run_sh(&s, &[], r#"echo "$SPOOL_ID $SPOOL_ATTEMPT $(cat)""#, &[]);
    out.success().stdout_is("1 2 1\n2 2 2\n3 2 3\n4 1 4\n");
    assert_eq!(s.states("default"), []);
}

fn kill_9_of_a_pop_that_is_writing_hands_the_message_on(engine: Engine) {
    let s = engine.fixture();
    let mut big = vec![0u8; 1 << 20];
    crate::harness::Rng::new(7).fill(&mut big);
    s.cmd().arg("push").stdin(big.clone()).run().success();
    s.push(&["second"]);
    // Nobody reads this pop's output: it blocks writing, holding the message.
    let mut pop = s.cmd().arg("pop").spawn();
    wait_until("the pop holds the message", SOON, || {
        s.list_json("default", "claimed").len() == 1
    });
    s.run(&["claim"]).success(); // the second message, not the held one
    pop.child.kill().expect("kill -9 spool pop");
    pop.child.wait().expect("wait for spool pop");
    let out = s.run(&["pop"]);
    out.success();
    assert!(
        out.stdout == big,
        "the held message comes back whole: {out:?}"
    );
}

fn sigint_or_sigterm_stops_claiming_and_lets_the_running_command_finish(engine: Engine) {
    std::thread::scope(|scope| {
        for signal in [Signal::INT, Signal::TERM] {
            scope.spawn(move || {
                let s = engine.fixture();
                s.push(&["1", "2", "3"]);
                let run = spawn_sh(
                    &s,
                    &[],
                    r#"echo "start $SPOOL_ID" >> "$LOG"; sleep 1; echo "end $SPOOL_ID" >> "$LOG""#,
                    &[],
                );
                wait_until("the first command started", SOON, || {
                    logged(&s) == "start 1\n"
                });
                send_signal(run.pid(), signal);
                let out = run.finish();
                out.exits(0);
                assert_eq!(logged(&s), "start 1\nend 1\n", "after {signal:?}");
                assert_eq!(s.listed_ids("default"), [2, 3], "after {signal:?}");
                assert_eq!(s.states("default").len(), 2);
            });
        }
    });
}

fn a_second_signal_is_passed_on_to_the_commands(engine: Engine) {
    let s = engine.fixture();
    s.push(&["interrupted"]);
    let mut run = spawn_sh(&s, &[], SLEEPER, &[]);
    let _command = left_running(&s);
    send_signal(run.pid(), Signal::TERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "run exited at the first signal, before its command finished"
    );
    let second = Instant::now();
    send_signal(run.pid(), Signal::TERM);
    let out = run.finish();
    assert!(
        second.elapsed() < SOON,
        "the command did not get the signal: {:?}",
        second.elapsed()
    );
    out.exits(3);
    let v = s.entry("default", 1);
    assert_eq!(v["state"], "delayed", "retried: {v}");
    assert_eq!(v["attempts"], 1);
}

fn run_wait_handles_messages_as_they_come(engine: Engine) {
    let s = engine.fixture();
    let out_file = s.outside("out");
    let started = Instant::now();
    let run = spawn_sh(
        &s,
        &["--wait"],
        r#"cat >> "$OUT"; echo >> "$OUT""#,
        &[("OUT", &out_file)],
    );
    std::thread::sleep(Duration::from_millis(300));
    s.push(&["a"]);
    wait_until("a was handled", SOON, || read(&out_file) == "a\n");
    s.push(&["b", "c"]);
    wait_until("b and c were handled", SOON, || {
        read(&out_file) == "a\nb\nc\n"
    });
    let pushed = Instant::now();
    s.run(&["push", "--delay", "1s", "d"]).success();
    wait_until("the delayed d was handled", SOON, || {
        read(&out_file) == "a\nb\nc\nd\n"
    });
    assert!(
        pushed.elapsed() >= Duration::from_millis(900),
        "d ran before it was due"
    );
    send_signal(run.pid(), Signal::TERM);
    let out = run.finish();
    out.exits(0);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(s.states("default"), []);
}

fn run_wait_on_an_idle_queue_exits_0_at_a_signal(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x"]);
    s.run(&["pop"]).success();
    for queue in ["default", "missing"] {
        let run = s
            .cmd()
            .args(["-q", queue, "run", "--wait", "--", "true"])
            .spawn();
        std::thread::sleep(Duration::from_millis(500));
        let signalled = Instant::now();
        send_signal(run.pid(), Signal::TERM);
        let out = run.finish();
        out.exits(0);
        assert!(signalled.elapsed() < SOON, "{queue}: slow to stop");
    }
}

/// Whether the stress command fails attempt `attempt` of message `id`: the same
/// arithmetic as [`FLAKY`], a hash that fails about one attempt in four.
fn flaky_fails(id: u64, attempt: u64) -> bool {
    const M: u64 = 1 << 32;
    let mut x = (id * 7919 + attempt) * 1_540_483_477 % M;
    x = (x ^ (x >> 15)) * 1_540_483_477 % M;
    x ^= x >> 13;
    x.is_multiple_of(4)
}

/// The stress command: logs its start and end with O_APPEND writes (one line each, in
/// real order) and fails when [`flaky_fails`] says so.
const FLAKY: &str = r#"read -r p || true
echo "start $SPOOL_ID $SPOOL_ATTEMPT $p" >> "$LOG"
x=$(( (SPOOL_ID * 7919 + SPOOL_ATTEMPT) * 1540483477 % 4294967296 ))
x=$(( (x ^ (x >> 15)) * 1540483477 % 4294967296 ))
x=$(( x ^ (x >> 13) ))
if [ $(( x % 4 )) -eq 0 ]; then echo "end $SPOOL_ID $SPOOL_ATTEMPT fail" >> "$LOG"; exit 1; fi
echo "end $SPOOL_ID $SPOOL_ATTEMPT ok" >> "$LOG""#;

#[test]
fn a_thousand_flaky_messages_are_each_acked_once_or_failed() {
    const MESSAGES: u64 = 1000;
    const MAX_ATTEMPTS: u64 = 3;
    // What must happen to each message: the attempt that succeeds, or None (failed).
    let expected: HashMap<u64, Option<u64>> = (1..=MESSAGES)
        .map(|id| (id, (1..=MAX_ATTEMPTS).find(|&a| !flaky_fails(id, a))))
        .collect();
    let expected_failed: Vec<u64> = {
        let mut v: Vec<u64> = expected
            .iter()
            .filter(|(_, ok)| ok.is_none())
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    };
    let retried = expected.values().filter(|ok| **ok != Some(1)).count();
    assert!(
        expected_failed.len() >= 5 && retried >= 150,
        "the command should fail often enough: {} failed, {retried} retried",
        expected_failed.len()
    );

    let s = Fixture::new();
    let input: String = (1..=MESSAGES).map(|i| format!("payload-{i}\n")).collect();
    s.run_stdin(&["push", "--lines"], input).success();
    let options = [
        "-j",
        "4",
        "--backoff",
        "100ms",
        "--max-attempts",
        "3",
        "--lease",
        "1m",
    ];
    let started = Instant::now();
    let mut rounds = 0;
    loop {
        rounds += 1;
        // Two runs at once: each message must still go to only one of them at a time.
        let runs: Vec<_> = (0..2).map(|_| spawn_sh(&s, &options, FLAKY, &[])).collect();
        for run in runs {
            let out = run.finish();
            assert!(
                (out.code == 0 || out.code == 3) && out.stderr.is_empty() && out.stdout.is_empty(),
                "round {rounds}:\n{out:?}"
            );
        }
        let pending = s
            .states("default")
            .into_iter()
            .filter(|(_, state)| state != "failed")
            .count();
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{pending} messages still pending after {rounds} rounds"
        );
        std::thread::sleep(Duration::from_millis(150));
    }

    // The log, in the order things happened.
    let text = logged(&s);
    let mut running: HashSet<u64> = HashSet::new();
    let mut attempts: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut oks: HashMap<u64, Vec<u64>> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let id: u64 = f[1].parse().unwrap_or_else(|_| panic!("log line {line:?}"));
        let attempt: u64 = f[2].parse().unwrap_or_else(|_| panic!("log line {line:?}"));
        match (f[0], f.len()) {
            ("start", 4) => {
                assert_eq!(f[3], format!("payload-{id}"), "payload of {line:?}");
                assert!(
                    running.insert(id),
                    "message {id} started while already running: {line:?}"
                );
                attempts.entry(id).or_default().push(attempt);
            }
            ("end", 4) => {
                assert!(running.remove(&id), "end without a start: {line:?}");
                assert_eq!(
                    f[3] == "fail",
                    flaky_fails(id, attempt),
                    "outcome of {line:?}"
                );
                if f[3] == "ok" {
                    oks.entry(id).or_default().push(attempt);
                }
            }
            _ => panic!("unexpected log line {line:?}"),
        }
    }
    assert!(running.is_empty(), "commands never ended: {running:?}");
    for id in 1..=MESSAGES {
        let tries = attempts.get(&id).cloned().unwrap_or_default();
        match expected[&id] {
            Some(ok) => {
                assert_eq!(
                    tries,
                    (1..=ok).collect::<Vec<_>>(),
                    "attempts of message {id}"
                );
                assert_eq!(oks.get(&id), Some(&vec![ok]), "message {id} succeeded once");
            }
            None => {
                assert_eq!(tries, [1, 2, 3], "attempts of failed message {id}");
                assert!(!oks.contains_key(&id), "failed message {id} succeeded");
            }
        }
    }
    // What is left: exactly the failed ones, each after its last attempt.
    let failed = s.list_json("default", "failed");
    let failed_ids: Vec<u64> = failed.iter().map(|v| v["id"].as_u64().unwrap()).collect();
    assert_eq!(failed_ids, expected_failed);
    for v in &failed {
        assert_eq!(v["attempts"], MAX_ATTEMPTS, "{v}");
        assert_eq!(v["reason"], "attempts-exit-1", "{v}");
    }
    assert_eq!(
        s.states("default").len(),
        expected_failed.len(),
        "only failed messages are left"
    );
    let q = s.queue_dir("default");
    assert_eq!(
        crate::harness::names_in(&q.join("claimed")),
        Vec::<String>::new()
    );
}

fn commands_write_to_nothing_when_run_has_its_output_closed(engine: Engine) {
    let s = engine.fixture();
    s.push(&["job"]);
    // Started with its standard output and error closed (as some daemons are), run must
    // not hand its commands a descriptor they cannot write to: their echo must succeed.
    s.sh("spool run --max 1 --max-attempts 1 -- sh -c 'cat >/dev/null && echo done && echo note >&2' >&- 2>&-")
        .run()
        .success();
    assert_eq!(s.len("default"), 0);
    assert!(
        s.list_json("default", "all").is_empty(),
        "the job was acked"
    );
}
