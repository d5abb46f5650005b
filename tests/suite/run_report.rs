//! What `spool run` tells: a line on standard error for each failed attempt (none with
//! `--quiet`), and an exit status that says when a signal stopped it. The helpers are in
//! [`super::run`].

use rustix::process::Signal;

use crate::harness::{Engine, engine_tests, now_secs, send_signal, wait_until};

use super::run::*;

engine_tests! {
    failed_attempts_are_told_one_line_each_on_a_line_of_their_own,
    quiet_tells_no_failed_attempt,
    a_signal_that_stops_nothing_is_no_interruption,
}

/// Failed attempts were told by the exit status alone: a cron mail could not say which
/// message failed, nor why.
fn failed_attempts_are_told_one_line_each_on_a_line_of_their_own(engine: Engine) {
    let s = engine.fixture();
    for message in ["ok", "permanent", "crash", "three"] {
        s.run(&["-q", "jobs", "push", message]).success();
    }
    let before = now_secs();
    let out = s
        .cmd()
        .args(["-q", "jobs", "run", "--backoff", "0s", "--max-attempts", "2"])
        .args(["--", "sh", "-c"])
        .arg(r#"read -r m; case $m in ok) ;; permanent) exit 100;; crash) kill -9 $$;; *) exit 3;; esac"#)
        .run();
    let after = now_secs();
    let line = |id, attempt, how: &str, next: &str| {
        failed_line(id, attempt, 2, how, next).replace("(queue default)", "(queue jobs)")
    };
    let sigkill = "killed by signal 9 (SIGKILL)";
    // A zero backoff puts a retried message behind the waiting ones.
    let expected = [
        line(2, 1, "exit status 100", FAILED),
        line(3, 1, sigkill, RETRY),
        line(4, 1, "exit status 3", RETRY),
        line(3, 2, sigkill, FAILED),
        line(4, 2, "exit status 3", FAILED),
    ];
    out.exits_saying(3, &expected.concat());
    for t in out.stderr_times() {
        assert!((before..=after).contains(&t), "retried at once, not at {t}");
    }
    assert_eq!(s.list_json("jobs", "failed").len(), 3);

    // A command's unfinished last line (through spool, with -j above 1) does not take the
    // report into it.
    s.push(&["x"]);
    let out = run_sh(&s, &["-j", "2"], "printf oops >&2; exit 3", &[]);
    let expected = format!("oops\n{}", failed_line(1, 1, 5, "exit status 3", RETRY));
    out.exits_saying(3, &expected);
}

fn quiet_tells_no_failed_attempt(engine: Engine) {
    for options in [&["--quiet"][..], &["--quiet", "-j", "2"]] {
        let s = engine.fixture();
        s.push(&["a", "b"]);
        let out = run_sh(&s, options, "cat; echo note >&2; exit 3", &[]);
        assert_eq!(out.code, 3, "{out:?}");
        // The commands' own output still passes.
        assert_eq!(out.stderr, "note\nnote\n", "{out:?}");
        let mut stdout = out.stdout.clone();
        stdout.sort_unstable();
        assert_eq!(stdout, b"ab", "{out:?}");
        let mut delayed: Vec<u64> = s
            .list_json("default", "delayed")
            .iter()
            .map(|v| v["id"].as_u64().unwrap())
            .collect();
        delayed.sort_unstable();
        assert_eq!(delayed, [1, 2], "{options:?}: retried");
    }
}

/// Without --wait, a signal that came while the last message ran, or once --max was
/// reached, stopped nothing: run exits as it would have.
fn a_signal_that_stops_nothing_is_no_interruption(engine: Engine) {
    let script = r#"echo "start $SPOOL_ID" >> "$LOG"; sleep 1; exit 3"#;
    for (options, messages) in [(&[][..], &["last"][..]), (&["--max", "1"], &["1", "2"])] {
        let s = engine.fixture();
        s.push(messages);
        let run = spawn_sh(&s, options, script, &[]);
        wait_until("the command started", SOON, || logged(&s) == "start 1\n");
        send_signal(run.pid(), Signal::INT);
        let out = run.finish();
        out.exits_saying(3, &failed_line(1, 1, 5, "exit status 3", RETRY));
    }
}
