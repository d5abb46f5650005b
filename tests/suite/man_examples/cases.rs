//! What each example of the man page and of `--help` needs, and what it must do: one
//! case per example, matched by its text.

use super::{Case, Ran};

/// Pushes "job 1", "bad job" and "job 2": process and ./job.sh succeed, then fail, then
/// succeed.
const THREE_JOBS_ONE_BAD: &str = "spool push 'job 1' 'bad job' 'job 2'";

/// Every example of the man page and of `--help`, by its text.
pub(super) const CASES: &[Case] = &[
    // The man page.
    Case {
        example: "echo hello | spool push && spool pop",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "hello\n");
            assert_eq!(r.states("default"), []);
        },
    },
    Case {
        example: "producer | spool -q jobs push --lines",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.s.pop_all_text("jobs"), ["job 1", "job 2", "job 3"]),
    },
    Case {
        example: "spool -q jobs pop --wait -n 100 --lines | consumer",
        given: "producer | spool -q jobs push --lines",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.got("consumer"), "job 1\njob 2\njob 3\n");
            assert_eq!(r.states("jobs"), []);
        },
    },
    Case {
        example: "while token=$(spool claim --wait --lease 10m); do
                  if spool show \"$token\" | process; then spool ack \"$token\"
                  else spool nack \"$token\" --delay 1m; fi
                  done",
        given: THREE_JOBS_ONE_BAD,
        waits: true,
        status: 124,
        stderr: "",
        then: |r| {
            assert_eq!(r.got("process"), "|job 1\n|bad job\n|job 2\n");
            // Acked, but for the bad job: nacked, back in a minute.
            assert_eq!(r.states("default"), Ran::all(&[2], "delayed"));
            r.s.assert_state(2, "delayed", 1);
        },
    },
    Case {
        example: "spool -q nightly run -j 4 -- ./job.sh || echo \"some jobs failed\"",
        given: "spool -q nightly push 'job 1' 'job 2' 'job 3'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "", "no job failed");
            assert_eq!(r.got_sorted("job.sh"), ["1|job 1", "2|job 2", "3|job 3"]);
            assert_eq!(r.states("nightly"), []);
        },
    },
    Case {
        example: "spool push --delay 1h --priority 9 \"remind me\"",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let v = r.s.assert_state(1, "delayed", 0);
            assert_eq!(v["priority"], 9, "{v}");
            assert_eq!(v["preview"], "remind me", "{v}");
            let enqueued = crate::harness::parse_rfc3339(v["enqueued"].as_str().unwrap());
            let delay = crate::harness::until_of(&v) - enqueued.unwrap();
            assert!((3599..=3601).contains(&delay), "due an hour later: {v}");
        },
    },
    Case {
        example: "spool list --state failed; spool requeue --all",
        given: "spool push 'broken job'; spool run -- sh -c 'exit 100' || [ $? = 3 ]",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let lines: Vec<&str> = r.stdout.lines().collect();
            assert_eq!(lines.len(), 2, "the failed message, then the count");
            assert!(lines[0].starts_with("1\tfailed\t"), "{}", lines[0]);
            assert!(lines[0].ends_with("\tbroken job"), "{}", lines[0]);
            assert_eq!(lines[1], "1");
            r.s.assert_state(1, "ready", 0);
        },
    },
    // spool --help.
    Case {
        example: "echo hello | spool push",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.s.pop_all_text("default"), ["hello\n"]),
    },
    Case {
        example: "spool pop",
        given: "echo hello | spool push",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "hello\n");
            assert_eq!(r.states("default"), []);
        },
    },
    Case {
        example: "spool -q jobs pop -n 10 --lines | consumer",
        given: "producer | spool -q jobs push --lines",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.got("consumer"), "job 1\njob 2\njob 3\n");
            assert_eq!(r.states("jobs"), []);
        },
    },
    // push.
    Case {
        example: "spool push 'first job' 'second job'",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.s.pop_all_text("default"), ["first job", "second job"]),
    },
    Case {
        example: "tar c dir | spool -q backups push",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert!(r.s.pop_all("backups") == [r.output_of("tar", &["c", "dir"])]),
    },
    Case {
        example: "find . -name '*.log' | spool push --lines",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let mut logs = r.s.pop_all_text("default");
            logs.sort();
            assert_eq!(logs, ["./app.log", "./logs/old.log"]);
        },
    },
    Case {
        example: "find . -print0 | spool push -0 --print-id",
        given: "",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let found = r.output_of("find", &[".", "-print0"]);
            let paths: Vec<&[u8]> = found
                .strip_suffix(b"\0")
                .unwrap()
                .split(|b| *b == 0)
                .collect();
            let ids: Vec<String> = (1..=paths.len()).map(|id| format!("{id}\n")).collect();
            assert_eq!(r.stdout, ids.concat(), "one id a path");
            assert!(r.s.pop_all("default") == paths);
        },
    },
    Case {
        example: "spool push --key report:2026-12-02 'build the report'  # once, while it waits",
        given: "spool push --key report:2026-12-02 'build the report'",
        waits: false,
        status: 0,
        stderr: "spool: push to default: message 1 holds the key report:2026-12-02: nothing was pushed\n",
        then: |r| {
            assert_eq!(r.stdout, "");
            assert_eq!(r.s.pop_all_text("default"), ["build the report"]);
        },
    },
    // pop.
    Case {
        example: "spool pop > job.txt",
        given: "spool push 'first job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(
                std::fs::read_to_string(r.work("job.txt")).unwrap(),
                "first job"
            );
            assert_eq!(r.states("default"), []);
        },
    },
    Case {
        example: "spool -q jobs pop -n 100 --lines | xargs -n1 process",
        given: "spool -q jobs push report-1 report-2 report-3",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            // xargs gives each its argument, and /dev/null as input.
            assert_eq!(r.got("process"), "report-1|\nreport-2|\nreport-3|\n");
            assert_eq!(r.states("jobs"), []);
        },
    },
    Case {
        example: "while msg=$(spool pop); do echo \"got $msg\"; done",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "got first job\ngot second job\n");
            assert_eq!(r.states("default"), []);
        },
    },
    // peek.
    Case {
        example: "spool peek",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "first job");
            assert_eq!(r.states("default"), Ran::all(&[1, 2], "ready"));
        },
    },
    Case {
        example: "spool peek -n 5 --lines",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "first job\nsecond job\n");
            assert_eq!(r.states("default"), Ran::all(&[1, 2], "ready"));
        },
    },
    // claim: its worker loop is the man page's, above. show.
    Case {
        example: "spool show 42",
        given: "seq 42 | spool push --lines",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.stdout, "42"),
    },
    // The examples of show, ack, nack and extend use a `$token`: a message is claimed
    // first.
    Case {
        example: "spool show \"$token\" | process",
        given: "spool push 'first job'; token=$(spool claim)",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.got("process"), "|first job\n");
            r.s.assert_state(1, "claimed", 1);
        },
    },
    // ack, nack, extend.
    Case {
        example: "spool ack \"$token\"",
        given: "spool push 'first job'; token=$(spool claim)",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.states("default"), []),
    },
    Case {
        example: "spool nack \"$token\" --delay 30s",
        given: "spool push 'first job'; token=$(spool claim)",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let v = r.s.assert_state(1, "delayed", 1);
            let due = crate::harness::until_of(&v) - crate::harness::now_secs();
            assert!((0..=30).contains(&due), "due within 30s: {v}");
        },
    },
    Case {
        example: "spool extend \"$token\" --lease 10m",
        given: "spool push 'first job'; token=$(spool claim --lease 1m)",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let v = r.s.assert_state(1, "claimed", 1);
            let left = crate::harness::until_of(&v) - crate::harness::now_secs();
            assert!((300..=600).contains(&left), "held 10 minutes, not 1: {v}");
        },
    },
    // requeue.
    Case {
        example: "spool requeue 42 43",
        given: "seq 43 | spool push --lines
                spool run -- sh -c 'case $SPOOL_ID in 42|43) exit 100;; esac' || [ $? = 3 ]",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "2\n");
            assert_eq!(r.states("default"), Ran::all(&[42, 43], "ready"));
            r.s.assert_state(42, "ready", 0);
            r.s.assert_state(43, "ready", 0);
        },
    },
    Case {
        example: "spool requeue --all",
        given: "spool push 'job 1' 'job 2'; spool run -- sh -c 'exit 100' || [ $? = 3 ]",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "2\n");
            assert_eq!(r.states("default"), Ran::all(&[1, 2], "ready"));
        },
    },
    // run.
    Case {
        example: "spool -q mail run -- sendmail -t",
        given: "printf 'To: ops@example.com\\nSubject: report\\n\\nAll done.\\n' | spool -q mail push",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(
                r.got("sendmail"),
                "args: -t\nTo: ops@example.com\nSubject: report\n\nAll done.\n"
            );
            assert_eq!(r.states("mail"), []);
        },
    },
    Case {
        example: "spool -q jobs run --wait -j 4 --lease 10m -- sh -c 'process \"$SPOOL_ID\"'",
        given: "producer | spool -q jobs push --lines",
        waits: true,
        status: 124,
        stderr: "",
        then: |r| {
            assert_eq!(r.got_sorted("process"), ["1|job 1", "2|job 2", "3|job 3"]);
            assert_eq!(r.states("jobs"), []);
        },
    },
    Case {
        example: "spool -q nightly run -j 4 --joblog nightly.log -- ./job.sh",
        given: "spool -q nightly push 'job 1' 'job 2' 'job 3'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.got_sorted("job.sh"), ["1|job 1", "2|job 2", "3|job 3"]);
            let log = std::fs::read_to_string(r.work("nightly.log")).unwrap();
            let mut lines: Vec<&str> = log.lines().collect();
            assert_eq!(
                lines.remove(0),
                "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
            );
            let mut jobs: Vec<String> = lines
                .iter()
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    assert_eq!(f.len(), 9, "{l}");
                    format!("{} {} {} {}", f[0], f[4], f[6], f[8])
                })
                .collect();
            jobs.sort();
            assert_eq!(jobs, ["1 5 0 ./job.sh", "2 5 0 ./job.sh", "3 5 0 ./job.sh"]);
        },
    },
    // A crontab line runs as cron runs it: its command, after the five time fields, by sh.
    Case {
        example: "# crontab: mails you which job failed, and why
                  */5 * * * * spool -q nightly run -- ./job.sh || echo \"spool run: failures\"",
        given: "spool -q nightly push 'job 1' 'bad job'",
        waits: false,
        status: 0,
        stderr: "spool: run: message 2 (queue nightly): attempt 1 of 5 failed: exit status 1; retry at <time>\n",
        then: |r| {
            assert_eq!(r.stdout, "spool run: failures\n", "the mail cron sends");
            assert_eq!(r.got("job.sh"), "1|job 1\n2|bad job\n");
            // The bad job waits for its retry.
            assert_eq!(r.states("nightly"), Ran::all(&[2], "delayed"));
        },
    },
    // list.
    Case {
        example: "spool list",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let lines: Vec<&str> = r.stdout.lines().collect();
            assert_eq!(lines.len(), 2, "{}", r.stdout);
            assert!(lines[0].starts_with("1\t") && lines[0].ends_with("\tfirst job"));
            assert!(lines[1].starts_with("2\t") && lines[1].ends_with("\tsecond job"));
        },
    },
    Case {
        example: "spool list --state failed",
        given: "spool push 'broken job'; spool run -- sh -c 'exit 100' || [ $? = 3 ]
                spool push 'job 2'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let lines: Vec<&str> = r.stdout.lines().collect();
            assert_eq!(lines.len(), 1, "{}", r.stdout);
            assert!(lines[0].starts_with("1\tfailed\t"), "{}", lines[0]);
            assert!(lines[0].ends_with("\tbroken job"), "{}", lines[0]);
        },
    },
    Case {
        example: "spool list --json | jq -r .id",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.stdout, "1\n2\n"),
    },
    // len.
    Case {
        example: "[ \"$(spool -q jobs len)\" -gt 100 ] && echo backlog",
        given: "seq 101 | spool -q jobs push --lines",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.stdout, "backlog\n"),
    },
    // stats.
    Case {
        example: "spool stats",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert!(r.stdout.contains("\nwaiting:  2\n"), "{}", r.stdout),
    },
    Case {
        example: "spool stats --all --json",
        given: "spool push 'first job' 'second job'; spool -q jobs push 'job 1'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let stats = crate::harness::json_lines(r.stdout.as_bytes());
            let waiting: Vec<_> = stats.iter().map(|v| (&v["queue"], &v["waiting"])).collect();
            assert_eq!(
                waiting,
                [(&"default".into(), &2.into()), (&"jobs".into(), &1.into())]
            );
        },
    },
    Case {
        example: "spool stats --format openmetrics > spool.prom.tmp && mv spool.prom.tmp spool.prom",
        given: "spool push 'first job' 'second job'; spool -q jobs push 'job 1'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let text = std::fs::read_to_string(r.work("spool.prom")).unwrap();
            assert!(!r.work("spool.prom.tmp").exists());
            for line in [
                "spool_messages{queue=\"default\",state=\"waiting\"} 2",
                "spool_messages{queue=\"jobs\",state=\"waiting\"} 1",
                "# EOF",
            ] {
                assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
            }
        },
    },
    // clear.
    Case {
        example: "spool -q scratch clear",
        given: "spool -q scratch push a b c",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "3\n");
            assert_eq!(r.states("scratch"), []);
        },
    },
    Case {
        example: "spool clear --state failed",
        given: "spool push 'broken job'; spool run -- sh -c 'exit 100' || [ $? = 3 ]
                spool push 'job 2'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert_eq!(r.stdout, "1\n");
            assert_eq!(r.states("default"), Ran::all(&[2], "ready"));
        },
    },
    // fsck.
    Case {
        example: "spool fsck",
        given: "spool push 'first job'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.stdout, ""),
    },
    Case {
        example: "spool -q jobs fsck --repair",
        // A claim whose lease ended, which --repair returns to the queue.
        given: "spool -q jobs push 'job 1'; spool -q jobs claim --lease 1ms; sleep 0.1",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            assert!(
                r.stdout.contains("lease ended (repaired: returned"),
                "{}",
                r.stdout
            );
            assert_eq!(r.states("jobs"), Ran::all(&[1], "ready"));
        },
    },
    // queues.
    Case {
        example: "for q in $(spool queues); do echo \"$q $(spool -q \"$q\" len)\"; done",
        given: "spool push 'first job'; spool -q jobs push 'job 1' 'job 2'",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| assert_eq!(r.stdout, "default 1\njobs 2\n"),
    },
    // completions: the directories each shell reads, made by the user.
    Case {
        example: "spool completions bash > ~/.local/share/bash-completion/completions/spool",
        given: "mkdir -p ~/.local/share/bash-completion/completions",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let path =
                r.s.outside("home/.local/share/bash-completion/completions/spool");
            assert_eq!(
                std::fs::read_to_string(path).unwrap(),
                r.completions("bash")
            );
        },
    },
    Case {
        example: "spool completions zsh > ~/.zfunc/_spool  # with fpath=(~/.zfunc $fpath) in ~/.zshrc",
        given: "mkdir -p ~/.zfunc",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let path = r.s.outside("home/.zfunc/_spool");
            assert_eq!(std::fs::read_to_string(path).unwrap(), r.completions("zsh"));
        },
    },
    Case {
        example: "spool completions fish > ~/.config/fish/completions/spool.fish",
        given: "mkdir -p ~/.config/fish/completions",
        waits: false,
        status: 0,
        stderr: "",
        then: |r| {
            let path = r.s.outside("home/.config/fish/completions/spool.fish");
            assert_eq!(
                std::fs::read_to_string(path).unwrap(),
                r.completions("fish")
            );
        },
    },
];
