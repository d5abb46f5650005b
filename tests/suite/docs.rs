//! The examples of the README, the man page and `--help`, run exactly as printed. The
//! second half of this file is the man page's and `--help`'s (see
//! `man_and_help_examples_run_as_printed`); the README's come first.
//!
//! The README's examples, run exactly as printed. Each ```console block holds commands
//! (lines starting with `$ `) and, under each, the output it prints (standard output and
//! standard error together). The blocks of one `## ` section run in order in one bash
//! session, as a reader would type them, with `spool` the binary under test and a home
//! directory of their own (so the default spool starts empty); each section starts fresh.
//!
//! A few values differ from run to run, and are compared by their shape only: an RFC 3339
//! time (`2026-11-25T09:03:01Z`), 16 hexadecimal digits (a claim token's, a temporary
//! file's name), a duration (`112ms`, `8m34s`) and a decimal number (`0.778`). And the
//! README shows tables as a terminal does, aligned with spaces, where the test's pipe
//! gets tab-separated values (`stats --all`): a run of two or more spaces, or of blanks
//! with a tab, separates columns alike.

use std::path::Path;

use crate::harness::Fixture;

/// One command of a block and the output printed under it.
struct Example {
    /// Where the command is, for messages: `README.md:LINE`.
    place: String,
    command: String,
    expected: String,
}

/// The console examples of `text`, grouped by `## ` section, in order.
fn sections(text: &str, file: &str) -> Vec<(String, Vec<Example>)> {
    let mut sections: Vec<(String, Vec<Example>)> = vec![("(top)".into(), Vec::new())];
    let mut in_console = false;
    for (n, line) in text.lines().enumerate() {
        if !in_console {
            if let Some(title) = line.strip_prefix("## ") {
                sections.push((title.to_string(), Vec::new()));
            }
            in_console = line.trim() == "```console";
            continue;
        }
        if line.trim() == "```" {
            in_console = false;
            continue;
        }
        let examples = &mut sections.last_mut().expect("a section").1;
        if let Some(command) = line.strip_prefix("$ ") {
            examples.push(Example {
                place: format!("{file}:{}", n + 1),
                command: command.to_string(),
                expected: String::new(),
            });
        } else {
            let example = examples
                .last_mut()
                .unwrap_or_else(|| panic!("{file}:{}: output before any command", n + 1));
            example.expected.push_str(line);
            example.expected.push('\n');
        }
    }
    sections.retain(|(_, examples)| !examples.is_empty());
    sections
}

/// `text` with the values that vary from run to run replaced by their kind: `<time>`,
/// `<hex>`, `<duration>`, `<number>`.
fn shape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let word = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
    let digits = |from: usize| {
        let mut i = from;
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !word(i - 1);
        let rest: String = chars[i..chars.len().min(i + 20)].iter().collect();
        if boundary && is_time(&rest) {
            out.push_str("<time>");
            i += 20;
            continue;
        }
        let hex = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || ('a'..='f').contains(c))
            .count();
        if boundary && hex == 16 && !word(i + 16) {
            out.push_str("<hex>");
            i += 16;
            continue;
        }
        if boundary && chars[i].is_ascii_digit() {
            let end = digits(i);
            let fraction = digits(end + 1);
            if chars.get(end) == Some(&'.') && fraction > end + 1 && !word(fraction) {
                out.push_str("<number>");
                i = fraction;
                continue;
            }
            // A duration: groups of digits and a unit, as in 112ms, 8m34s, 2h.
            let mut j = i;
            while chars.get(j).is_some_and(char::is_ascii_digit) {
                j = digits(j);
                let unit: String = chars[j..chars.len().min(j + 2)].iter().collect();
                if unit == "ms" {
                    j += 2;
                } else if chars.get(j).is_some_and(|c| "smhd".contains(*c)) {
                    j += 1;
                } else {
                    break;
                }
            }
            if j > end && !word(j) {
                out.push_str("<duration>");
                i = j;
                continue;
            }
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// `text` with every column separator (two or more spaces, or blanks with a tab) made one
/// tab, so that aligned columns and tab-separated ones compare alike.
fn columns(text: &str) -> String {
    let mut out = String::new();
    let mut blanks = String::new();
    for c in text.chars() {
        if c == ' ' || c == '\t' {
            blanks.push(c);
            continue;
        }
        if blanks.len() >= 2 || blanks.contains('\t') {
            out.push('\t');
        } else {
            out.push_str(&blanks);
        }
        blanks.clear();
        out.push(c);
    }
    out.push_str(&blanks);
    out
}

/// Whether `s` is an RFC 3339 UTC time to the second: `2026-11-25T09:03:01Z`.
fn is_time(s: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:ddZ";
    s.len() == pattern.len()
        && s.chars().zip(pattern.chars()).all(|(c, p)| match p {
            'd' => c.is_ascii_digit(),
            p => c == p,
        })
}

/// Runs the examples of each section in one bash session and compares what each command
/// printed with what the file shows under it.
fn check_examples(file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let sections = sections(&text, file);
    assert!(!sections.is_empty(), "{file} has console examples");
    let mut wrong = Vec::new();
    for (title, examples) in sections {
        let s = Fixture::new();
        let work = s.outside("work");
        std::fs::create_dir_all(&work).unwrap();
        // Each command is preceded by a marker line that splits the session's output.
        let mut script = String::from("exec 2>&1\nunset SPOOL_DIR\n");
        for (i, e) in examples.iter().enumerate() {
            script.push_str(&format!("printf '\\n\\036%d\\n' {i}\n{}\n", e.command));
        }
        std::fs::write(s.outside("session"), &script).unwrap();
        let out = s
            .sh(&format!(
                "cd '{}' && HOME='{}' TMPDIR='{}' exec bash ../session",
                work.display(),
                s.outside("home").display(),
                s.tmp().display()
            ))
            .run();
        let printed = out.text_lossy();
        let mut outputs = printed.split("\n\u{1e}").skip(1);
        for (i, e) in examples.iter().enumerate() {
            let got = outputs
                .next()
                .and_then(|o| o.strip_prefix(&format!("{i}\n")))
                .unwrap_or_else(|| panic!("{}: no output for `{}`:\n{out:?}", e.place, e.command));
            if columns(&shape(got)) != columns(&shape(&e.expected)) {
                wrong.push(format!(
                    "{} ({title}): `{}` printed\n{got}instead of\n{}",
                    e.place, e.command, e.expected
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The README's examples printed what they no longer print: a delay to a date that had
/// passed, ids that did not follow from the examples before them, output that depended on
/// a spool the reader could not have.
#[test]
fn readme_examples_print_what_the_readme_shows() {
    check_examples("README.md");
}

#[test]
fn shapes_hide_only_what_varies() {
    assert_eq!(
        shape(
            "1.deaf05b0c5241d6a 1.700674abd4e4c7cf 2026-11-25T09:03:01Z oldest: 112ms 8m34s 0.778/s id 601 exit-100 5 minutes"
        ),
        "1.<hex> 1.<hex> <time> oldest: <duration> <duration> <number>/s id 601 exit-100 5 minutes"
    );
    assert_eq!(columns("jobs   4  a b"), columns("jobs\t4\ta b"));
    assert_eq!(columns("jobs   4  a b\tc"), "jobs\t4\ta b\tc");
    assert_ne!(columns("a b"), columns("a\tb"));
}

/// The help and the man page called the queues first-in, first-out, saying nothing of
/// priorities and delays, which change the order.
#[test]
fn help_describes_the_order_with_priorities_and_delays() {
    let s = Fixture::new();
    let out = s.run(&["--help"]);
    out.success();
    let help = out.text();
    assert!(help.contains("highest priority"), "{help}");
    assert!(help.contains("delayed messages"), "{help}");
}

// The examples of the man page and of `--help`, run exactly as printed.
//
// The examples come from where a reader sees them: the EXAMPLES section of man/spool.1,
// and the lines under `Example:` or `Examples:` of `spool --help` and `spool SUB --help`
// for every subcommand that `spool --help` lists. An example is a line, with the
// indented lines under it (a loop) and any `#` comment line above it. Each runs in a
// fresh spool and a bash session of its own, after the prelude (the stand-ins for the
// programs the examples name) and its case's `given` (the state it presumes), then its
// case's checks look at what it did. Every example needs a case, matched by its text, and
// every case an example: an example that changes is looked at again.

/// An example and where it is printed.
struct Printed {
    /// `man/spool.1 EXAMPLES`, `spool --help`, `spool push --help`...
    source: String,
    text: String,
}

/// Whether bash reads `text` as a whole command, not one that goes on (an open loop).
fn is_whole(text: &str) -> bool {
    let out = std::process::Command::new("bash")
        .args(["-n", "-c", text])
        .output()
        .expect("run bash -n");
    !String::from_utf8_lossy(&out.stderr).contains("unexpected end of file")
}

/// Splits the lines of an examples block into examples: a line starts one, the lines of
/// a command that goes on (a loop, to its `done`) continue it, and a comment line goes
/// with the example after it.
fn split_examples(source: &str, lines: &[&str]) -> Vec<Printed> {
    let mut examples: Vec<Printed> = Vec::new();
    let mut comment = String::new();
    for line in lines {
        let goes_on = examples.last().is_some_and(|e| !is_whole(&e.text));
        if goes_on || line.starts_with(' ') {
            let last = examples
                .last_mut()
                .unwrap_or_else(|| panic!("{source}: an indented line starts the examples"));
            last.text.push('\n');
            last.text.push_str(line);
        } else if line.starts_with('#') {
            comment.push_str(line);
            comment.push('\n');
        } else {
            examples.push(Printed {
                source: source.to_string(),
                text: std::mem::take(&mut comment) + line,
            });
        }
    }
    assert!(comment.is_empty(), "{source}: a comment ends the examples");
    examples
}

/// The examples of the man page: the lines between `.nf` and `.fi` of its EXAMPLES
/// section, with roff's escapes undone.
fn man_examples() -> Vec<Printed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/spool.1");
    let page = std::fs::read_to_string(path).unwrap();
    let section = page
        .split_once(".SH EXAMPLES\n")
        .expect("the man page has an EXAMPLES section")
        .1;
    let block = section
        .split_once(".nf\n")
        .and_then(|(_, rest)| rest.split_once("\n.fi\n"))
        .expect("the EXAMPLES section is a .nf ... .fi block")
        .0;
    let lines: Vec<String> = block.lines().map(unroff).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    split_examples("man/spool.1 EXAMPLES", &lines)
}

/// `line` of a roff page as printed: `\-` is `-`, `\e` and `\\` are `\`; any other escape
/// (a font change) would be printed differently, so it fails the test.
fn unroff(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e' | '\\') => out.push('\\'),
            other => panic!("man/spool.1 EXAMPLES: unexpected escape \\{other:?} in {line:?}"),
        }
    }
    out
}

/// The examples of `spool --help` and of `spool SUB --help` for every subcommand listed
/// there (help itself aside): the lines after `Example:` or `Examples:` up to a blank line,
/// without their two-space indent.
fn help_examples() -> Vec<Printed> {
    let help = |args: &[&str]| {
        let out = crate::harness::Cmd::bare().args(args).run();
        out.success();
        out.text()
    };
    let top = help(&["--help"]);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|name| name != "help")
        .collect();
    assert!(
        commands.len() > 10,
        "spool --help lists the commands:\n{top}"
    );
    let mut examples = Vec::new();
    let mut sources = vec![(String::from("spool --help"), top)];
    for name in &commands {
        sources.push((format!("spool {name} --help"), help(&[name, "--help"])));
    }
    for (source, text) in sources {
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !(l.starts_with("Example:") || l.starts_with("Examples:")))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| {
                l.strip_prefix("  ")
                    .unwrap_or_else(|| panic!("{source}: an example not indented: {l:?}"))
            })
            .collect();
        assert!(!lines.is_empty(), "{source} has examples:\n{text}");
        examples.extend(split_examples(&source, &lines));
    }
    examples
}

/// The text of an example with each line's indent removed, to match it with its case (the
/// man page and `--help` indent loops differently).
fn unindented(text: &str) -> String {
    text.lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs first in each session, in the working directory `work`, next to `bin`, `got` and
/// the session's files. The examples name programs that stand for the reader's own; they
/// are small scripts first in PATH, each recording what it got in `../got/NAME`.
const PRELUDE: &str = r#"
mkdir -p "$HOME" ../bin ../got
export PATH="$PWD/../bin:$PATH" GOT="$PWD/../got"

# producer: prints three lines, one job each.
cat > ../bin/producer <<'END'
#!/bin/sh
printf '%s\n' 'job 1' 'job 2' 'job 3'
END

# consumer: reads its input to the end, recording it.
cat > ../bin/consumer <<'END'
#!/bin/sh
cat >> "$GOT/consumer"
END

# process: reads its input; records one line, "ARGUMENTS|INPUT"; fails (exit 1) when the
# input holds "bad".
cat > ../bin/process <<'END'
#!/bin/sh
input=$(cat)
printf '%s|%s\n' "$*" "$input" >> "$GOT/process"
case $input in *bad*) exit 1 ;; esac
END

# sendmail: records its arguments ("args: -t") and then the mail on its input.
cat > ../bin/sendmail <<'END'
#!/bin/sh
{ echo "args: $*"; cat; } >> "$GOT/sendmail"
END

# ./job.sh, in the working directory: reads its input; records "SPOOL_ID|INPUT"; fails
# (exit 1) when the input holds "bad".
cat > job.sh <<'END'
#!/bin/sh
input=$(cat)
printf '%s|%s\n' "$SPOOL_ID" "$input" >> "$GOT/job.sh"
case $input in *bad*) exit 1 ;; esac
END
chmod +x ../bin/* job.sh

# A directory to tar, and log files to find.
mkdir dir logs
echo 'notes' > dir/notes.txt
echo 'started' > app.log
echo 'rotated' > logs/old.log
"#;

/// How long an example that waits forever by design (a `--wait` loop) runs before
/// `timeout` stops it; then its effect is checked. Its messages are a few, at hand when it
/// starts: this only ends a loop that never ends, it measures nothing.
const WAIT_BOUND: &str = "5s";

/// How long any other example may run: it ends by itself, this only turns a hang (an
/// example that waits on the wrong queue) into a failure that names it.
const HANG_BOUND: &str = "60s";

/// What an example needs and what it does.
struct Case {
    /// The example as printed (indents aside).
    example: &'static str,
    /// Bash run before it, after the prelude, in the session that starts it: the variables
    /// it sets are exported to the example (`token=$(spool claim)` gives it `$token`). It
    /// must succeed.
    given: &'static str,
    /// It waits for messages forever by design: it is stopped after [`WAIT_BOUND`], and
    /// exit 124 (timeout's) means "still waiting, as documented".
    waits: bool,
    /// Its exit status: 0 success, 1 nothing; 124 when `waits`.
    status: i32,
    /// The checks of its effect (standard error is checked to be empty before).
    then: fn(&Ran),
}

/// What an example did.
struct Ran<'a> {
    s: &'a Fixture,
    stdout: String,
}

impl Ran<'_> {
    /// What stand-in `name` recorded (empty when it never ran).
    fn got(&self, name: &str) -> String {
        std::fs::read_to_string(self.s.outside("got").join(name)).unwrap_or_default()
    }

    /// The lines stand-in `name` recorded, sorted (for commands run in parallel).
    fn got_sorted(&self, name: &str) -> Vec<String> {
        let mut lines: Vec<String> = self.got(name).lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    /// A path in the working directory.
    fn work(&self, name: &str) -> std::path::PathBuf {
        self.s.outside("work").join(name)
    }

    /// What `program ARGS` prints, run in the working directory.
    fn output_of(&self, program: &str, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(self.work("."))
            .output()
            .unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
        out.stdout
    }

    /// What `spool completions SHELL` prints.
    fn completions(&self, shell: &str) -> String {
        self.s.run(&["completions", shell]).success().text()
    }

    /// `(id, state)` of every message of `queue`.
    fn states(&self, queue: &str) -> Vec<(u64, String)> {
        self.s.states(queue)
    }

    /// The `(id, state)` pairs of `ids` all in `state`.
    fn all(ids: &[u64], state: &str) -> Vec<(u64, String)> {
        ids.iter().map(|&id| (id, state.to_string())).collect()
    }
}

/// Pushes "job 1", "bad job" and "job 2": process and ./job.sh succeed, then fail, then
/// succeed.
const THREE_JOBS_ONE_BAD: &str = "spool push 'job 1' 'bad job' 'job 2'";

/// Every example of the man page and of `--help`, by its text.
const CASES: &[Case] = &[
    // The man page.
    Case {
        example: "echo hello | spool push && spool pop",
        given: "",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.s.pop_all_text("jobs"), ["job 1", "job 2", "job 3"]),
    },
    Case {
        example: "spool -q jobs pop --wait -n 100 --lines | consumer",
        given: "producer | spool -q jobs push --lines",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.s.pop_all_text("default"), ["hello\n"]),
    },
    Case {
        example: "spool pop",
        given: "echo hello | spool push",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.s.pop_all_text("default"), ["first job", "second job"]),
    },
    Case {
        example: "tar c dir | spool -q backups push",
        given: "",
        waits: false,
        status: 0,
        then: |r| assert!(r.s.pop_all("backups") == [r.output_of("tar", &["c", "dir"])]),
    },
    Case {
        example: "find . -name '*.log' | spool push --lines",
        given: "",
        waits: false,
        status: 0,
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
    // pop.
    Case {
        example: "spool pop > job.txt",
        given: "spool push 'first job'",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.stdout, "42"),
    },
    // The examples of show, ack, nack and extend use a `$token`: a message is claimed
    // first.
    Case {
        example: "spool show \"$token\" | process",
        given: "spool push 'first job'; token=$(spool claim)",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.states("default"), []),
    },
    Case {
        example: "spool nack \"$token\" --delay 30s",
        given: "spool push 'first job'; token=$(spool claim)",
        waits: false,
        status: 0,
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
        then: |r| {
            assert_eq!(r.got_sorted("process"), ["1|job 1", "2|job 2", "3|job 3"]);
            assert_eq!(r.states("jobs"), []);
        },
    },
    // A crontab line runs as cron runs it: its command, after the five time fields, by sh.
    Case {
        example: "# crontab: mails you when a job failed
                  */5 * * * * spool -q nightly run -- ./job.sh || echo \"spool run: failures\"",
        given: "spool -q nightly push 'job 1' 'bad job'",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.stdout, "1\n2\n"),
    },
    // len.
    Case {
        example: "[ \"$(spool -q jobs len)\" -gt 100 ] && echo backlog",
        given: "seq 101 | spool -q jobs push --lines",
        waits: false,
        status: 0,
        then: |r| assert_eq!(r.stdout, "backlog\n"),
    },
    // stats.
    Case {
        example: "spool stats",
        given: "spool push 'first job' 'second job'",
        waits: false,
        status: 0,
        then: |r| assert!(r.stdout.contains("\nwaiting:  2\n"), "{}", r.stdout),
    },
    Case {
        example: "spool stats --all --json",
        given: "spool push 'first job' 'second job'; spool -q jobs push 'job 1'",
        waits: false,
        status: 0,
        then: |r| {
            let stats = crate::harness::json_lines(r.stdout.as_bytes());
            let waiting: Vec<_> = stats.iter().map(|v| (&v["queue"], &v["waiting"])).collect();
            assert_eq!(
                waiting,
                [(&"default".into(), &2.into()), (&"jobs".into(), &1.into())]
            );
        },
    },
    // clear.
    Case {
        example: "spool -q scratch clear",
        given: "spool -q scratch push a b c",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.stdout, ""),
    },
    Case {
        example: "spool -q jobs fsck --repair",
        // A claim whose lease ended, which --repair returns to the queue.
        given: "spool -q jobs push 'job 1'; spool -q jobs claim --lease 1ms; sleep 0.1",
        waits: false,
        status: 0,
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
        then: |r| assert_eq!(r.stdout, "default 1\njobs 2\n"),
    },
    // completions: the directories each shell reads, made by the user.
    Case {
        example: "spool completions bash > ~/.local/share/bash-completion/completions/spool",
        given: "mkdir -p ~/.local/share/bash-completion/completions",
        waits: false,
        status: 0,
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
        then: |r| {
            let path = r.s.outside("home/.config/fish/completions/spool.fish");
            assert_eq!(
                std::fs::read_to_string(path).unwrap(),
                r.completions("fish")
            );
        },
    },
];

/// The command of a crontab line (after its five time fields), if `text` is one.
fn crontab_command(text: &str) -> Option<&str> {
    let line = text.lines().find(|l| !l.starts_with('#'))?;
    let mut rest = line;
    for _ in 0..5 {
        let (field, tail) = rest.split_once(' ')?;
        if field.is_empty() || !field.chars().all(|c| "0123456789*/,-".contains(c)) {
            return None;
        }
        rest = tail.trim_start();
    }
    Some(rest)
}

/// Runs `printed` in a fresh spool as its case says, and checks what it did.
fn run_example(printed: &Printed, case: &Case) -> Result<(), String> {
    let s = Fixture::new();
    let work = s.outside("work");
    std::fs::create_dir_all(&work).unwrap();
    // The example runs from a file of its own, by bash (by sh when it is a crontab line),
    // under `timeout`; the variables the setup sets ($token) are exported to it.
    let (text, shell) = match crontab_command(&printed.text) {
        Some(command) => (command, "sh"),
        None => (printed.text.as_str(), "bash"),
    };
    let bound = if case.waits { WAIT_BOUND } else { HANG_BOUND };
    std::fs::write(s.outside("example"), format!("{text}\n")).unwrap();
    let session = format!(
        "set -e\n{PRELUDE}\nset -a\n{{\n:\n{}\n}} > ../given.out 2>&1\nset +ea\n\
         timeout {bound} {shell} ../example > ../stdout 2> ../stderr\necho $? > ../status\n",
        case.given
    );
    std::fs::write(s.outside("session"), session).unwrap();
    let out = s
        .sh(&format!("cd '{}' && exec bash ../session", work.display()))
        .run();
    let read = |name: &str| std::fs::read_to_string(s.outside(name)).unwrap_or_default();
    if out.code != 0 || !out.stderr.is_empty() {
        return Err(format!(
            "its setup failed: `{}` printed\n{}{out:?}",
            case.given,
            read("given.out")
        ));
    }
    let (stdout, stderr, status) = (read("stdout"), read("stderr"), read("status"));
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("spool: "))
        .collect();
    if !errors.is_empty() {
        return Err(format!("spool failed:\n{}", errors.join("\n")));
    }
    if !stderr.is_empty() {
        return Err(format!("it printed on standard error:\n{stderr}"));
    }
    let status: i32 = status.trim().parse().unwrap();
    if status != case.status {
        let what = match (case.waits, status) {
            (true, _) => "it waits for messages forever, as documented, but stopped by itself",
            (false, 124) => "it was still running, stopped by timeout",
            _ => "its exit status is wrong",
        };
        return Err(format!(
            "{what}: exit {status}, not {}; standard output:\n{stdout}",
            case.status
        ));
    }
    let ran = Ran { s: &s, stdout };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.then)(&ran))).map_err(|e| {
        format!(
            "its effect is not the documented one: {}",
            panic_message(&*e)
        )
    })
}

/// The message of a panic (a failed assertion).
fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a check failed".into())
}

/// The examples of the man page and of `--help` did not all run: the completions examples
/// wrote where only root can, and none was run by a test, so a changed option could leave
/// them broken.
#[test]
fn man_and_help_examples_run_as_printed() {
    let mut examples = man_examples();
    examples.extend(help_examples());
    let case_of = |printed: &Printed| {
        CASES
            .iter()
            .find(|c| unindented(c.example) == unindented(&printed.text))
    };
    let mut wrong: Vec<String> = examples
        .iter()
        .filter(|p| case_of(p).is_none())
        .map(|p| {
            format!(
                "{}: `{}` has no case in tests/suite/docs.rs: add one",
                p.source, p.text
            )
        })
        .collect();
    for case in CASES {
        if !examples
            .iter()
            .any(|p| unindented(&p.text) == unindented(case.example))
        {
            wrong.push(format!(
                "no example is `{}` any more: remove its case",
                case.example
            ));
        }
    }
    // Each example in a thread of its own: those that wait forever wait together.
    std::thread::scope(|scope| {
        let runs: Vec<_> = examples
            .iter()
            .filter_map(|p| Some((p, case_of(p)?)))
            .map(|(p, case)| (p, scope.spawn(move || run_example(p, case))))
            .collect();
        for (p, run) in runs {
            if let Err(why) = run.join().unwrap_or_else(|e| Err(panic_message(&*e))) {
                wrong.push(format!("{}: `{}`: {why}", p.source, p.text));
            }
        }
    });
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
