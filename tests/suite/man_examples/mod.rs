//! The examples of the man page and of `--help`, run exactly as printed.
//!
//! The examples come from where a reader sees them: the EXAMPLES section of man/spool.1,
//! and the lines under `Example:` or `Examples:` of `spool --help` and `spool SUB --help`
//! for every subcommand that `spool --help` lists. An example is a line, with the
//! indented lines under it (a loop) and any `#` comment line above it. Each runs in a
//! fresh spool and a bash session of its own, after the prelude (the stand-ins for the
//! programs the examples name) and its case's `given` (the state it presumes), then its
//! case's checks look at what it did. Every example needs a case, matched by its text, and
//! every case an example: an example that changes is looked at again.

mod cases;

use std::path::Path;

use crate::harness::{Fixture, hide_times};
use cases::CASES;

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
    /// What it prints on standard error, each RFC 3339 time written `<time>`: nothing, or
    /// the lines of `run`'s failed attempts.
    stderr: &'static str,
    /// The checks of its effect (standard error is checked before).
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
    if hide_times(&stderr) != case.stderr {
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("spool: "))
            .collect();
        if !errors.is_empty() {
            return Err(format!("spool failed:\n{}", errors.join("\n")));
        }
        return Err(format!(
            "it printed on standard error:\n{stderr}instead of\n{}",
            case.stderr
        ));
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
