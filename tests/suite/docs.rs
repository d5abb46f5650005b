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
//!
//! The examples of the man page and of `--help` are run by `man_examples`.

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
