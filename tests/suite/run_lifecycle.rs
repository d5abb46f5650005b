//! `spool run` over a command's life: leases (SIGTERM, then SIGKILL), kill -9 of run or of a
//! pop, SIGINT and SIGTERM, `--wait`, and many flaky jobs side by side. The helpers are
//! in [`super::run`].

use crate::harness::{
    Engine, Fixture, KillOnDrop, catches, engine_tests, group_members, require, send_signal,
    wait_until,
};
use rustix::process::Signal;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::run::*;

engine_tests! {
    a_command_past_its_lease_gets_sigterm_and_is_retried,
    a_command_stopped_at_its_lease_is_retried_even_if_it_exits_0,
    a_command_that_ignores_sigterm_gets_sigkill_5_s_later,
    kill_9_of_run_hands_the_message_to_the_next_consumer_at_once,
    kill_9_of_a_pop_that_is_writing_hands_the_message_on,
    sigint_or_sigterm_stops_claiming_lets_the_command_finish_and_ends_killed_by_it,
    a_second_signal_is_passed_on_to_the_commands,
    run_wait_handles_messages_as_they_come,
    run_wait_on_an_idle_queue_ends_killed_by_a_signal,
    a_shell_reports_130_or_143_for_a_stopped_run,
    commands_write_to_nothing_when_run_has_its_output_closed,
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
    out.exits_saying(3, &failed_line(1, 1, 2, LEASE_ENDED, RETRY));
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
    let id = s.push_id("default", "always slow");
    let out = run_sh(&s, &["--lease", "1s", "--max-attempts", "1"], SLEEPER, &[]);
    let _guard = maybe_left_running(&s);
    out.exits_saying(3, &failed_line(id, 1, 1, LEASE_ENDED, FAILED));
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
    out.exits_saying(3, &failed_line(1, 1, 2, LEASE_ENDED, RETRY));
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
    out.exits_saying(3, &failed_line(1, 1, 1, LEASE_ENDED, FAILED));
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

/// SIGINT and SIGTERM both ended run with status 0 (or 3): a script could not tell a
/// stopped run from one that drained its queue. Then run exited with 130 and 143, which
/// a shell script does not take for an interruption (bash goes on after a ^C unless the
/// command died of SIGINT), nor systemd for a clean stop. Now run ends killed by the
/// signal, once its command finished.
fn sigint_or_sigterm_stops_claiming_lets_the_command_finish_and_ends_killed_by_it(engine: Engine) {
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
                out.killed_by(signal);
                // The command finished before run exited, and its message was acked.
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
    // Stopped by a signal, whatever failed: killed by it, and the command's end is
    // reported.
    out.killed_by_saying(
        Signal::TERM,
        &failed_line(1, 1, 5, "killed by signal 15 (SIGTERM)", RETRY),
    );
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
    out.killed_by(Signal::TERM);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(s.states("default"), []);
}

/// With --wait, a signal always stops run before it is done: on an idle queue, or one not
/// made yet, too.
fn run_wait_on_an_idle_queue_ends_killed_by_a_signal(engine: Engine) {
    let s = engine.fixture();
    s.push(&["x"]);
    s.run(&["pop"]).success();
    for queue in ["default", "missing"] {
        for signal in [Signal::INT, Signal::TERM] {
            let run = s
                .cmd()
                .args(["-q", queue, "run", "--wait", "--", "true"])
                .spawn();
            std::thread::sleep(Duration::from_millis(500));
            let signalled = Instant::now();
            send_signal(run.pid(), signal);
            let out = run.finish();
            out.killed_by(signal);
            assert!(signalled.elapsed() < SOON, "{queue}: slow to stop");
        }
    }
}

/// A shell reports a run stopped by SIGINT or SIGTERM as 130 or 143, as for any command
/// the signal killed.
fn a_shell_reports_130_or_143_for_a_stopped_run(engine: Engine) {
    let s = engine.fixture();
    for (signal, status) in [(Signal::INT, 130), (Signal::TERM, 143)] {
        let pid = s.outside("run.pid");
        let _ = std::fs::remove_file(&pid);
        let shell = s
            .sh(&format!(
                "spool run --wait -- true & echo $! > '{}'; wait $!; echo \"status $?\"",
                pid.display()
            ))
            .spawn();
        let run = pid_in(&pid);
        wait_until("run catches the signal", SOON, || catches(run, signal));
        send_signal(run, signal);
        let out = shell.finish();
        // (A shell may say on standard error that its job was killed: `Terminated`.)
        assert_eq!(
            (out.code, out.text()),
            (0, format!("status {status}\n")),
            "{out:?}"
        );
        assert!(!out.stderr.contains("spool"), "{out:?}");
    }
}

/// The first process of a PID namespace (run as a container's entry point) ignores the
/// default action of a signal it sends itself: there run exits with 130 or 143 instead of
/// dying of the signal, rather than hang or abort.
#[test]
fn as_the_first_process_of_a_pid_namespace_a_stopped_run_exits_130_or_143() {
    if !require(true, &[("unshare", &["--pid", "--fork", "true"])]) {
        return;
    }
    let s = Fixture::new();
    for (signal, status) in [(Signal::INT, 130), (Signal::TERM, 143)] {
        let run = s
            .cmd()
            .args(["run", "--wait", "--", "true"])
            .wrap(["unshare", "--pid", "--fork"])
            .spawn();
        // spool is the process unshare started, in unshare's process group.
        let unshare = run.pid() as i32;
        let mut spool = None;
        wait_until("unshare started spool", SOON, || {
            spool = group_members(unshare).into_iter().find(|&p| p != unshare);
            spool.is_some()
        });
        let spool = spool.unwrap() as u32;
        // A signal with its default action would not reach it.
        wait_until("run catches the signal", SOON, || catches(spool, signal));
        send_signal(spool, signal);
        // unshare exits with the exit code of spool, or dies of the signal that killed it.
        run.finish().exits(status);
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
    // The failed attempts that the runs reported.
    let mut reported = 0;
    loop {
        rounds += 1;
        // Two runs at once: each message must still go to only one of them at a time.
        let runs: Vec<_> = (0..2).map(|_| spawn_sh(&s, &options, FLAKY, &[])).collect();
        for run in runs {
            let out = run.finish();
            assert!(
                (out.code == 0 || out.code == 3) && out.stdout.is_empty(),
                "round {rounds}:\n{out:?}"
            );
            for line in out.stderr.lines() {
                assert!(
                    line.starts_with("spool: run: message ")
                        && line.contains(" failed: exit status 1; "),
                    "round {rounds}: {line:?}"
                );
                reported += 1;
            }
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
    let failed_attempts = text.lines().filter(|l| l.ends_with(" fail")).count();
    assert_eq!(reported, failed_attempts, "one line per failed attempt");
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
    // Started with its standard output and error closed (as some daemons are), run must
    // not hand its commands a descriptor they cannot write to: their echo must succeed,
    // whether they write to spool's descriptors or through it.
    let joblog = format!("--joblog '{}'", s.outside("joblog").display());
    for options in ["", "-j 2", "--group", &joblog] {
        s.push(&["job"]);
        s.sh(&format!("spool run {options} --max 1 --max-attempts 1 -- sh -c 'cat >/dev/null && echo done && echo note >&2' >&- 2>&-"))
            .run()
            .success();
        assert_eq!(s.len("default"), 0, "{options}");
        assert!(
            s.list_json("default", "all").is_empty(),
            "{options}: the job was acked"
        );
    }
}
