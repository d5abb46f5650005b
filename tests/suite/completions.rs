//! The completion scripts at work, in the shells themselves: queue names after `-q` and
//! `--queue` (from `spool queues`, in the spool of a `--dir` on the line or of
//! `$SPOOL_DIR`), and run's COMMAND completed as a command line of its own. Each test
//! loads the script that `spool completions SHELL` prints and asks the shell what it
//! offers for a line ending at the cursor.

use std::path::Path;

use crate::harness::{Fixture, skip, tool_works};

/// Asks bash: sources the script (and bash-completion first, with `with`), splits LINE
/// into COMP_WORDS (a trailing space starts an empty word) and calls the function that
/// `complete -p spool` names; prints COMPREPLY, one per line.
const BASH_DRIVER: &str = r#"
[ -n "$2" ] && . "$2"
. ./spool.bash
line="$1"
read -ra COMP_WORDS <<< "$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$line"
COMP_POINT=${#line}
spec=$(complete -p spool)
fn=${spec#*-F }
fn=${fn%% *}
"$fn" spool "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

/// Asks zsh: an interactive zsh on a pseudo-terminal with the script in its `fpath`
/// types LINE and a TAB (no newline: the line is not run). TAB is bound to a completion
/// widget that writes `<done>` after the candidates that `compadd` was given; the driver
/// waits for it (the harness's time limit bounds the wait) and prints the candidates.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1= ; fpath=($PWD/zsh \$fpath); autoload -U compinit; compinit -u -D; setopt nobeep"
zpty -w z 'compadd() { builtin compadd "$@"; local -a a; builtin compadd -O a "$@"; print -rl -- $a >> '"$PWD/offered"' }'
zpty -w z 'offer() { _main_complete; print "<done>" >> '"$PWD/offered"' }; zle -C offer complete-word offer; bindkey "^I" offer'
zpty -n -w z "$1"$'\t'
until grep -qx '<done>' offered 2>/dev/null; do sleep 0.1; done
zpty -d z
grep -vx '<done>' offered || true
"#;

/// A spool with queues `jobs` and `mail`, another spool at `TMP/other` with queue `alt`,
/// a file `notes.txt`, and the scripts in `TMP/spool.bash`, `TMP/zsh/_spool` and
/// `TMP/spool.fish`.
fn setup() -> Fixture {
    let s = Fixture::new();
    s.run(&["-q", "jobs", "push", "x"]).success();
    s.run(&["-q", "mail", "push", "x"]).success();
    let other = s.outside("other");
    s.cmd()
        .no_dir()
        .args(["--dir".as_ref(), other.as_os_str()])
        .args(["-q", "alt", "push", "x"])
        .run()
        .success();
    std::fs::write(s.outside("notes.txt"), "").unwrap();
    std::fs::create_dir(s.outside("zsh")).unwrap();
    for (shell, file) in [
        ("bash", "spool.bash"),
        ("zsh", "zsh/_spool"),
        ("fish", "spool.fish"),
    ] {
        let out = s.run(&["completions", shell]);
        out.success();
        std::fs::write(s.outside(file), &out.stdout).unwrap();
    }
    std::fs::write(s.outside("bash-driver"), BASH_DRIVER).unwrap();
    std::fs::write(s.outside("zsh-driver"), ZSH_DRIVER).unwrap();
    s
}

/// What `shell` offers for `line` (the cursor at its end), sorted and without repeats.
#[track_caller]
fn offered(s: &Fixture, shell: &str, line: &str) -> Vec<String> {
    let quoted = format!("'{}'", line.replace('\'', r"'\''"));
    let script = match shell {
        "bash" => format!("bash ./bash-driver {quoted}"),
        "zsh" => {
            let _ = std::fs::remove_file(s.outside("offered"));
            format!("zsh -f ./zsh-driver {quoted}")
        }
        _ => format!("fish -c \". ./spool.fish; complete -C {}\"", quoted),
    };
    let script = format!("cd '{}' && {script}", s.tmp().display());
    let out = s.sh(&script).run();
    assert_eq!(out.code, 0, "{shell} on {line:?}:\n{out:?}");
    let mut words: Vec<String> = out
        .text()
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").trim_end_matches('\r'))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Whether `shell` is installed; skips visibly when not.
#[track_caller]
fn have(shell: &str) -> bool {
    match tool_works(shell, &["-c", "true"]) {
        Ok(()) => true,
        Err(why) => {
            skip(&why);
            false
        }
    }
}

/// The checks every shell must pass. `-q` and `--queue` completed file names (the
/// generators know nothing of queues), and run's COMMAND completed spool's own options
/// (bash) or file names (zsh, fish) instead of commands.
#[track_caller]
fn check_shell(shell: &str) {
    let s = setup();
    let other = s.outside("other");
    let queues = ["jobs", "mail"];
    assert_eq!(offered(&s, shell, "spool -q "), queues, "{shell}: -q");
    assert_eq!(offered(&s, shell, "spool --queue m"), ["mail"], "{shell}");
    assert_eq!(offered(&s, shell, "spool pop -q "), queues, "{shell}");
    assert_eq!(offered(&s, shell, "spool run -q "), queues, "{shell}");
    let line = format!("spool --dir {} -q ", other.display());
    assert_eq!(offered(&s, shell, &line), ["alt"], "{shell}: --dir");
    let line = format!("spool pop --dir {} --queue ", other.display());
    assert_eq!(offered(&s, shell, &line), ["alt"], "{shell}: --dir");
    for line in [
        "spool run -- ech",
        "spool run ech",
        "spool -q jobs run -j 2 --lease 5m ech",
        "spool run --wait -- ech",
    ] {
        let words = offered(&s, shell, line);
        assert!(
            words.contains(&"echo".to_string()),
            "{shell}: {line}: {words:?}"
        );
        assert!(
            words.iter().all(|w| w.starts_with("ech")),
            "{shell}: {line}: {words:?}"
        );
    }
    // After the command, its arguments: here files.
    assert_eq!(
        offered(&s, shell, "spool run -- cat note"),
        ["notes.txt"],
        "{shell}"
    );
    // The rest is as generated: subcommands, and run's options after a dash.
    assert_eq!(
        offered(&s, shell, "spool p"),
        ["peek", "pop", "push"],
        "{shell}"
    );
    let words = offered(&s, shell, "spool run --w");
    assert!(words.contains(&"--wait".to_string()), "{shell}: {words:?}");
}

#[test]
fn bash_completes_queue_names_and_run_s_command() {
    check_shell("bash");
}

#[test]
fn zsh_completes_queue_names_and_run_s_command() {
    if have("zsh") {
        check_shell("zsh");
    }
}

#[test]
fn fish_completes_queue_names_and_run_s_command() {
    if have("fish") {
        check_shell("fish");
    }
}

/// With bash-completion loaded, the words after run's COMMAND are completed as that
/// command's own (here `cat`'s: files).
#[test]
fn bash_run_command_uses_the_command_s_own_completion() {
    let main = Path::new("/usr/share/bash-completion/bash_completion");
    if !main.exists() {
        return skip("bash-completion not installed");
    }
    let s = setup();
    let out = s
        .sh(&format!(
            "cd '{}' && bash ./bash-driver 'spool run -- cat note' {}",
            s.tmp().display(),
            main.display()
        ))
        .run();
    out.success().stdout_is("notes.txt\n");
}
