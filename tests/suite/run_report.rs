//! What `spool run` tells: a line on standard error for each failed attempt (none with
//! `--quiet`), an exit status that says when a signal stopped it, and the joblog
//! (`--joblog`) in GNU parallel's format, compared with the one parallel writes where it
//! is installed; the status line of `--progress`. The helpers are in [`super::run`].

use std::path::Path;

use rustix::process::Signal;

use crate::harness::{
    Engine, Fixture, Output, engine_tests, now_secs, require, send_signal, wait_until,
};

use super::run::*;

engine_tests! {
    failed_attempts_are_told_one_line_each_on_a_line_of_their_own,
    quiet_tells_no_failed_attempt,
    a_signal_that_stops_nothing_is_no_interruption,
    the_joblog_has_a_line_per_command_in_parallels_columns,
    the_joblog_has_the_signal_that_killed_a_command,
    a_joblog_appended_to_keeps_one_header,
    a_joblog_that_cannot_be_opened_is_an_error_before_anything_runs,
    progress_draws_a_status_line_on_a_terminal_only,
    progress_fits_the_terminals_width,
    progress_stays_while_a_line_of_output_is_held,
}

// The local engine only: the error is made by the command removing its queue's
// directory ($SPOOL_DIR/$SPOOL_QUEUE), which a database does not have.
#[test]
fn progress_ends_its_line_before_an_error_on_a_spool_directory() {
    progress_ends_its_line_before_an_error(Engine::Local);
}

/// The header of a joblog.
const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// One line of a joblog, its columns parsed (and their format checked).
#[derive(Debug)]
struct Logged {
    seq: u64,
    start: f64,
    runtime: f64,
    send: u64,
    receive: u64,
    exitval: i32,
    signal: i32,
    command: String,
}

/// Whether `text` is digits, a point, and three digits: `1796173666.225`.
fn three_decimals(text: &str) -> bool {
    text.split_once('.').is_some_and(|(whole, frac)| {
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && frac.len() == 3
            && frac.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Parses a joblog line, checking each column's format as parallel writes it.
#[track_caller]
fn parse_line(line: &str) -> Logged {
    let f: Vec<&str> = line.splitn(9, '\t').collect();
    assert_eq!(f.len(), 9, "nine columns: {line:?}");
    assert_eq!(f[1], ":", "Host is this machine: {line:?}");
    assert!(three_decimals(f[2]), "Starttime: {line:?}");
    // JobRuntime is right-aligned in ten characters ("%10.3f").
    assert!(
        f[3].len() >= 10 && three_decimals(f[3].trim_start()),
        "JobRuntime: {line:?}"
    );
    let number = |i: usize| {
        f[i].parse()
            .unwrap_or_else(|_| panic!("column {i} is a number: {line:?}"))
    };
    Logged {
        seq: f[0].parse().expect("Seq is a number"),
        start: f[2].parse().unwrap(),
        runtime: f[3].trim_start().parse().unwrap(),
        send: number(4),
        receive: number(5),
        exitval: f[6].parse().expect("Exitval is a number"),
        signal: f[7].parse().expect("Signal is a number"),
        command: f[8].to_string(),
    }
}

/// The lines of the joblog at `path` after its header, which must be its first line and
/// appear once.
#[track_caller]
fn joblog(path: &Path) -> Vec<Logged> {
    let text = std::fs::read_to_string(path).expect("the joblog exists");
    assert!(text.ends_with('\n'), "whole lines: {text:?}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER), "{text}");
    lines
        .map(|line| {
            assert_ne!(line, HEADER, "one header: {text}");
            parse_line(line)
        })
        .collect()
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

/// The columns of each command's line: the message id, the payload's size, the bytes of
/// standard output (not of standard error), the exit status; the same however the output
/// goes through spool.
fn the_joblog_has_a_line_per_command_in_parallels_columns(engine: Engine) {
    let script =
        r#"cat > /dev/null; printf '%s-out' "$SPOOL_ID"; echo err >&2; exit $((SPOOL_ID % 3))"#;
    for options in [&[][..], &["-j", "3"], &["--group"]] {
        let s = engine.fixture();
        let big = "x".repeat(100_000);
        s.push(&["a", "hello world", "", &big]);
        let path = s.outside("jobs.log");
        let mut all = vec!["--joblog", path.to_str().unwrap(), "--max-attempts", "1"];
        all.extend(options);
        let before = now_secs();
        let out = run_sh(&s, &all, script, &[]);
        let after = now_secs();
        assert_eq!(out.code, 3, "{options:?}: {out:?}");
        let mut lines = joblog(&path);
        lines.sort_by_key(|l| l.seq);
        let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4], "{options:?}: one line per command");
        for (l, size) in lines.iter().zip([1, 11, 0, 100_000]) {
            assert_eq!(
                l.send, size,
                "{options:?}: Send is the payload's size: {l:?}"
            );
            let receive = format!("{}-out", l.seq).len() as u64;
            assert_eq!(
                l.receive, receive,
                "{options:?}: Receive is stdout's: {l:?}"
            );
            assert_eq!(l.exitval, (l.seq % 3) as i32, "{options:?}: {l:?}");
            assert_eq!(l.signal, 0, "{options:?}: {l:?}");
            assert_eq!(l.command, format!("sh -c {script}"), "{options:?}");
            assert!(
                (before as f64 - 1.0..=after as f64 + 1.0).contains(&l.start),
                "{options:?}: Starttime {} not in {before}..={after}",
                l.start
            );
            assert!(l.runtime >= 0.0 && l.runtime < 60.0, "{options:?}: {l:?}");
        }
    }
}

fn the_joblog_has_the_signal_that_killed_a_command(engine: Engine) {
    let s = engine.fixture();
    s.push(&["9", "15", "0"]);
    let path = s.outside("jobs.log");
    let out = run_sh(
        &s,
        &["--joblog", path.to_str().unwrap(), "--max-attempts", "1"],
        r#"n=$(cat); [ "$n" = 0 ] || kill -"$n" $$"#,
        &[],
    );
    let expected = failed_line(1, 1, 1, "killed by signal 9 (SIGKILL)", FAILED)
        + &failed_line(2, 1, 1, "killed by signal 15 (SIGTERM)", FAILED);
    out.exits_saying(3, &expected);
    let got: Vec<(u64, i32, i32)> = joblog(&path)
        .iter()
        .map(|l| (l.seq, l.exitval, l.signal))
        .collect();
    // Killed by a signal: Exitval 0 and the signal's number, as parallel writes them.
    assert_eq!(got, [(1, 0, 9), (2, 0, 15), (3, 0, 0)]);
}

fn a_joblog_appended_to_keeps_one_header(engine: Engine) {
    let s = engine.fixture();
    let path = s.outside("jobs.log");
    // An empty file gets the header, as a new one does.
    std::fs::write(&path, "").unwrap();
    let log = ["--joblog", path.to_str().unwrap()];
    for round in 1..=3u64 {
        s.push(&["x"]);
        run_sh(&s, &log, "cat", &[]).success();
        let seqs: Vec<u64> = joblog(&path).iter().map(|l| l.seq).collect();
        assert_eq!(seqs, (1..=round).collect::<Vec<_>>());
    }
    // Nothing to run: the joblog stays as it was.
    let before = std::fs::read(&path).unwrap();
    run_sh(&s, &log, "cat", &[]).success();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

fn a_joblog_that_cannot_be_opened_is_an_error_before_anything_runs(engine: Engine) {
    let s = engine.fixture();
    s.push(&["kept"]);
    let missing = s.outside("no/such/dir/jobs.log");
    let cases = [
        (s.tmp().to_path_buf(), "Is a directory"),
        (missing.clone(), "No such file or directory"),
    ];
    for (path, cause) in cases {
        let out = run_sh(&s, &["--joblog", path.to_str().unwrap()], "cat", &[]);
        out.error();
        assert_eq!(
            out.stderr,
            format!("spool: open joblog {}: {cause}\n", path.display())
        );
        assert!(out.stdout.is_empty(), "{out:?}");
        s.assert_state(1, "ready", 0);
        // Also on a queue with nothing to run.
        let out = s
            .cmd()
            .args([
                "-q",
                "other",
                "run",
                "--joblog",
                path.to_str().unwrap(),
                "--",
                "cat",
            ])
            .run();
        out.error();
    }
    assert!(!missing.parent().unwrap().exists());
}

/// A joblog line that cannot be written (past a file size limit) is told once; run goes
/// on, loses no message, and exits 2.
#[test]
fn a_joblog_that_cannot_be_written_later_loses_no_message() {
    if !require(false, &[("prlimit", &["-V"])]) {
        return;
    }
    let s = Fixture::new();
    s.push(&["a", "b", "c"]);
    let path = s.outside("jobs.log");
    // A joblog with its header and lines already, a little below the limit.
    let mut text = format!("{HEADER}\n");
    while text.len() < 180 {
        text.push_str("0\t:\t0.000\t     0.000\t0\t0\t0\t0\tx\n");
    }
    std::fs::write(&path, &text).unwrap();
    let out = run_cmd(
        &s,
        &["--joblog", path.to_str().unwrap()],
        r#"cat >> "$LOG""#,
        &[],
    )
    .wrap(["prlimit", &format!("--fsize={}", text.len() + 10)])
    .run();
    let told = format!(
        "spool: write joblog {}: File too large (no more lines are written)\n",
        path.display()
    );
    assert!(out.code == 2 && out.stderr == told, "{out:?}");
    assert_eq!(logged(&s), "abc", "every command ran");
    assert_eq!(s.states("default"), [], "every message was acked");
    // The joblog keeps what it held (and the start of the line that did not fit).
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&text) && after.len() <= text.len() + 10);
}

/// Runs `parallel ARGS` with `input`, writing its joblog at `path`; its output does not
/// matter.
fn parallel(s: &Fixture, args: &[&str], input: &str, path: &Path) -> Output {
    let home = s.outside("home");
    std::fs::create_dir_all(&home).unwrap();
    crate::harness::Cmd::bare()
        .binary(Path::new("parallel"))
        .env("HOME", &home)
        .args(["--will-cite", "--joblog", path.to_str().unwrap()])
        .args(args)
        .stdin(input)
        .run()
}

/// The joblog is GNU parallel's: the same header, and the same columns for the same work
/// (a payload on standard input as with `--pipe`, an exit status, a signal).
#[test]
fn the_joblog_is_gnu_parallels() {
    if !require(false, &[("parallel", &["--version"])]) {
        return;
    }
    let s = Fixture::new();
    let script = "cat > /dev/null; printf abc; echo err >&2; exit 3";
    let theirs = s.outside("parallel.log");
    parallel(&s, &["--pipe", "-N1", script], "hello\n", &theirs);
    let killer = s.outside("parallel-killed.log");
    parallel(
        &s,
        &["printf ab; kill -9 $$; : {}", ":::", "x"],
        "",
        &killer,
    );

    s.cmd().arg("push").stdin("hello\n").run().success();
    let ours = s.outside("spool.log");
    let log = ["--joblog", ours.to_str().unwrap(), "--max-attempts", "1"];
    run_sh(&s, &log, script, &[]).exits_saying(
        3,
        &(String::from("err\n") + &failed_line(1, 1, 1, "exit status 3", FAILED)),
    );
    s.push(&["x"]);
    run_sh(&s, &log, "printf ab; kill -9 $$", &[]).exits_saying(
        3,
        &failed_line(2, 1, 1, "killed by signal 9 (SIGKILL)", FAILED),
    );

    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let (theirs, killer, ours) = (read(&theirs), read(&killer), read(&ours));
    let header = |text: &str| text.lines().next().unwrap_or_default().to_string();
    assert_eq!(header(&ours), header(&theirs), "parallel wrote {theirs:?}");
    assert_eq!(header(&ours), HEADER);
    let columns = |l: &Logged| (l.send, l.receive, l.exitval, l.signal);
    let first = |text: &str| parse_line(text.lines().nth(1).expect("a line"));
    let ours: Vec<Logged> = ours.lines().skip(1).map(parse_line).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    // Send 6, Receive 3 (standard output only), Exitval 3, Signal 0.
    assert_eq!(columns(&ours[0]), columns(&first(&theirs)), "{theirs:?}");
    assert_eq!(columns(&ours[0]), (6, 3, 3, 0));
    // Killed by SIGKILL after writing two bytes (parallel sends no payload here).
    let killed = first(&killer);
    assert_eq!(
        (ours[1].receive, ours[1].exitval, ours[1].signal),
        (killed.receive, killed.exitval, killed.signal),
        "{killer:?}"
    );
    assert_eq!(columns(&ours[1]), (1, 2, 0, 9));
}

/// `script -qec 'COMMAND' /dev/null`: COMMAND on a terminal, whose output (standard
/// output and error together, each newline written `\r\n`) `script` prints. `None` where
/// `script` is missing (the test is then skipped).
fn on_a_terminal(s: &Fixture, command: &str) -> Option<Output> {
    if let Err(why) = crate::harness::tool_works("script", &["--version"]) {
        crate::harness::skip(&why);
        return None;
    }
    let quoted = command.replace('\'', r"'\''");
    Some(s.sh(&format!("script -qec '{quoted}' /dev/null")).run())
}

/// What erases the line the cursor is on, from its start: each drawing of the status line
/// starts with it.
const ERASE: &str = "\r\x1b[K";

fn progress_draws_a_status_line_on_a_terminal_only(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b", "c", "d"]);
    // On a terminal: the line, drawn at once, erased before the commands' output passes
    // on and drawn again right after it, and left on the screen at the end.
    let Some(out) = on_a_terminal(
        &s,
        r#"spool run --progress -- sh -c "echo out-\$SPOOL_ID; [ \$SPOOL_ID != 2 ]""#,
    ) else {
        return;
    };
    assert_eq!(out.code, 3, "{out:?}");
    let text = out.text_lossy();
    let first = "0 done, 0 failed attempts, 1 running, 3 waiting";
    assert!(
        text.starts_with(&format!("{ERASE}{first}{ERASE}out-1\r\n{ERASE}{first}")),
        "{text:?}"
    );
    let last = text
        .split(['\r', '\n'])
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    // Then the consumption rate and the trend, which depend on the machine's speed (and
    // may not be known yet).
    let counts = "\x1b[K3 done, 1 failed attempt, 0 running, 0 waiting";
    assert!(
        last == counts || last.starts_with(&format!("{counts}, ")),
        "{text:?}"
    );
    assert!(text.ends_with("\r\n"), "the line is left, ended: {text:?}");
    // Each line of output, and of spool's own, is followed at once by the status line:
    // it does not vanish while the commands print.
    for id in 1..=4 {
        assert!(
            text.contains(&format!("{ERASE}out-{id}\r\n{ERASE}")),
            "{text:?}"
        );
    }
    let report = "spool: run: message 2 (queue default): attempt 1 of 5 failed";
    let (_, after) = text
        .split_once(&format!("{ERASE}{report}"))
        .unwrap_or_else(|| panic!("the report, on a line of its own: {text:?}"));
    let (_, after) = after.split_once("\r\n").unwrap();
    assert!(after.starts_with(ERASE), "{text:?}");
    // In a pipe: nothing but the commands' output. (Fresh messages: message 2 waits for
    // its retry.)
    s.push(&["e", "f"]);
    let out = s
        .cmd()
        .args([
            "run",
            "--quiet",
            "--progress",
            "--",
            "sh",
            "-c",
            "echo out-$SPOOL_ID",
        ])
        .run();
    out.success().stdout_is("out-5\nout-6\n");
}

/// The status line was as long as its text: on a narrow terminal it wrapped, and each
/// drawing left a row behind, since erasing reaches the start of the last row only.
fn progress_fits_the_terminals_width(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    let Some(out) = on_a_terminal(
        &s,
        r#"stty cols 30 && spool run --progress -- sh -c "echo out-\$SPOOL_ID""#,
    ) else {
        return;
    };
    assert_eq!(out.code, 0, "{out:?}");
    let text = out.text_lossy();
    // "0 done, 0 failed attempts, 1 running, 1 waiting", cut where it reaches the last
    // column (29 characters), at a separator.
    assert!(
        text.starts_with(&format!(
            "{ERASE}0 done, 0 failed attempts, 1{ERASE}out-1\r\n"
        )),
        "{text:?}"
    );
    for drawn in text.split(ERASE).skip(1) {
        let line = drawn.split("\r\n").next().unwrap_or_default();
        assert!(line.len() < 30, "{line:?} in {text:?}");
    }
}

/// The status line vanished while a command's line of output was held back: run erased
/// it whenever it read output, even output it did not write yet (with -j above 1, a line
/// waits for its end), and drew it only at its next drawing.
fn progress_stays_while_a_line_of_output_is_held(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a"]);
    // The second half comes after the next reading of the figures (every second).
    let Some(out) = on_a_terminal(
        &s,
        r#"spool run -j 2 --progress -- sh -c "printf half; sleep 1.5; echo -line""#,
    ) else {
        return;
    };
    assert_eq!(out.code, 0, "{out:?}");
    let text = out.text_lossy();
    assert!(
        text.contains(&format!("{ERASE}half-line\r\n{ERASE}")),
        "{text:?}"
    );
    // Each erasing is followed by output or by the line itself, never by another
    // erasing: the line was never left erased.
    assert!(!text.contains(&format!("{ERASE}{ERASE}")), "{text:?}");
}

/// When an error stopped run, its `spool: ` line was written at the end of the status
/// line, on the same row.
fn progress_ends_its_line_before_an_error(engine: Engine) {
    let s = engine.fixture();
    s.push(&["a", "b"]);
    // The command removes the queue: its message cannot be acked.
    let Some(out) = on_a_terminal(
        &s,
        r#"spool run --progress -- sh -c "echo out; rm -rf \"\$SPOOL_DIR/\$SPOOL_QUEUE\"""#,
    ) else {
        return;
    };
    assert_eq!(out.code, 2, "{out:?}");
    let text = out.text_lossy();
    let status = "0 done, 0 failed attempts, 1 running, 1 waiting";
    assert!(
        text.starts_with(&format!(
            "{ERASE}{status}{ERASE}out\r\n{ERASE}{status}\r\nspool: "
        )),
        "{text:?}"
    );
    assert_eq!(text.matches("spool: ").count(), 1, "{text:?}");
    assert!(text.ends_with("\r\n"), "{text:?}");
}
