//! `spool clear`, `fsck` and `completions`: removing messages in bulk, checking and
//! mending a queue, and the shell completions.
//!
//! clear never removes claimed messages: they belong to their consumers.

use clap::CommandFactory;

use super::failure::{Failure, Outcome};
use super::inspect::states;
use super::output::{print, println_checked, say_missing};
use crate::cli::{ClearArgs, Cli, FsckArgs, Shell, StateArg};
use crate::exit::ExitStatus;
use crate::store::{Engine, Queue, State};

pub(super) fn clear<E: Engine>(engine: &E, name: &str, args: ClearArgs) -> Outcome {
    let which = match args.state {
        None => vec![State::Ready, State::Delayed],
        Some(StateArg::Claimed) => {
            return Err(Failure::Usage(
                "clear: claimed messages belong to their consumers: ack or nack them, or let their lease end".into(),
            ));
        }
        Some(StateArg::All) => vec![State::Ready, State::Delayed, State::Failed],
        Some(s) => states(s),
    };
    let removed = match engine.open(name)? {
        Some(queue) => queue.clear(&which)?,
        None => {
            say_missing(name);
            0
        }
    };
    println_checked(&removed.to_string())?;
    Ok(ExitStatus::Success)
}

pub(super) fn fsck<E: Engine>(engine: &E, name: &str, args: FsckArgs) -> Outcome {
    let findings = engine.fsck(name, args.repair)?;
    let mut text = String::new();
    let mut unrepaired = 0;
    for f in &findings {
        text.push_str(&format!("{}: {}", f.place, f.problem));
        match &f.repair {
            Some(r) => text.push_str(&format!(" (repaired: {r})")),
            None => unrepaired += 1,
        }
        text.push('\n');
    }
    print(text.as_bytes())?;
    Ok(if unrepaired == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::SomeFailed
    })
}

pub(super) fn completions(shell: Shell) -> Outcome {
    print(completion_script(shell).as_bytes())?;
    Ok(ExitStatus::Success)
}

/// The script clap_complete generates, with what a static generator cannot know added
/// per shell: queue names for `-q`/`--queue` come from `spool queues` (in the spool that
/// a `--dir` on the line, else `$SPOOL_DIR`, names), and run's COMMAND is completed as a
/// command line of its own (a command name, then that command's arguments). The options
/// that take a value are listed from the definition, so that the added code finds run's
/// COMMAND among them.
fn completion_script(shell: Shell) -> String {
    let mut cli = Cli::command();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(generator, &mut cli, "spool", &mut buf);
    let script = String::from_utf8(buf).expect("clap_complete writes UTF-8");
    let run = cli.find_subcommand("run").expect("spool has a run command");
    let queue_help = cli
        .get_arguments()
        .find(|a| a.get_id() == "queue")
        .and_then(|a| a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let fill = |template: &str| {
        template
            .replace("@GLOBAL_VALUES@", &value_options(&cli))
            .replace("@RUN_VALUES@", &value_options(run))
            .replace("@QUEUE_HELP@", &fish_quoted(&queue_help))
    };
    match shell {
        Shell::Bash => script + &fill(BASH),
        Shell::Zsh => {
            let queue = ":NAME:_default'";
            debug_assert!(script.contains(queue), "the zsh action of -q and --queue");
            let script = script.replace(queue, ":NAME:_spool_queues'");
            match script.split_once('\n') {
                Some((first, rest)) => format!("{first}\n{}{rest}", fill(ZSH)),
                None => script,
            }
        }
        Shell::Fish => {
            let mut out = String::new();
            for line in script.lines() {
                out.push_str(line);
                if line.contains(" -s q -l queue ") {
                    out.push_str(" -f");
                }
                out.push('\n');
            }
            out + &fill(FISH)
        }
    }
}

/// `-x --xyz ...`: the options of `cmd` (its own and the global ones) that take a value.
fn value_options(cmd: &clap::Command) -> String {
    let mut words = Vec::new();
    for arg in cmd.get_arguments() {
        if arg.is_positional() || !arg.get_action().takes_values() {
            continue;
        }
        words.extend(arg.get_short().map(|s| format!("-{s}")));
        words.extend(arg.get_long().map(|l| format!("--{l}")));
    }
    words.join(" ")
}

/// `text` for the inside of a fish string in single quotes.
fn fish_quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

const BASH: &str = r#"
# Queue names for -q and --queue, and run's COMMAND as a command line of its own.
_spool_queues() {
    local i dir=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --) break ;;
            --dir)
                [[ "${COMP_WORDS[i+1]}" == = ]] && ((i++))
                ((i + 1 < COMP_CWORD)) && dir=(--dir "${COMP_WORDS[i+1]/#\~/$HOME}")
                ;;
        esac
    done
    COMPREPLY=($(compgen -W "$("$1" "${dir[@]}" queues 2>/dev/null)" -- "$2"))
}

_spool_with_queues_and_commands() {
    local cur="$2" prev="$3" i word sub="" start=""
    [[ "$prev" == = ]] && ((COMP_CWORD >= 2)) && prev="${COMP_WORDS[COMP_CWORD-2]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ -z "$sub" ]]; then
            case " @GLOBAL_VALUES@ " in
                *" $word "*)
                    [[ "${COMP_WORDS[i+1]}" == = ]] && ((i++))
                    ((i++))
                    continue
                    ;;
            esac
            [[ "$word" == -* ]] || sub="$word"
        elif [[ "$sub" == run ]]; then
            [[ "$word" == -- ]] && { start=$((i + 1)); break; }
            case " @RUN_VALUES@ " in
                *" $word "*)
                    [[ "${COMP_WORDS[i+1]}" == = ]] && ((i++))
                    ((i++))
                    continue
                    ;;
            esac
            [[ "$word" == -* ]] || { start=$i; break; }
        else
            break
        fi
    done
    # Past run's options, at the cursor (not an option's value): the COMMAND starts here.
    [[ "$sub" == run && -z "$start" && "$i" == "$COMP_CWORD" && "$cur" != -* ]] && start=$i
    if [[ -n "$start" ]]; then
        if ((COMP_CWORD == start)); then
            COMPREPLY=($(compgen -c -- "$cur"))
        elif declare -F _command_offset >/dev/null; then
            _command_offset "$start"
        else
            local IFS=$'\n'
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return 0
    fi
    case "$prev" in
        -q | --queue)
            _spool_queues "$1" "$cur"
            return 0
            ;;
    esac
    _spool "$@"
}

complete -F _spool_with_queues_and_commands -o bashdefault -o default spool
"#;

const ZSH: &str = r#"
# Queue names for -q and --queue, from `spool queues` in the spool of a --dir on the line.
(( $+functions[_spool_queues] )) ||
_spool_queues() {
    local -a dir queues
    local word value=
    for word in ${(z)LBUFFER}; do
        if [[ -n $value ]]; then
            dir=(--dir "${${(Q)word}/#\~/$HOME}")
            value=
            continue
        fi
        case $word in
            (';'|'&&'|'||'|'|'|'&') dir=() ;;
            (--dir) value=1 ;;
            (--dir=*) dir=(--dir "${${(Q)word#--dir=}/#\~/$HOME}") ;;
        esac
    done
    queues=(${(f)"$(spool "${dir[@]}" queues 2>/dev/null)"})
    local expl
    _wanted queues expl queue compadd -a queues
}
"#;

const FISH: &str = r#"
# Queue names for -q and --queue, from `spool queues` in the spool of a --dir on the line.
function __fish_spool_queues
    set -l words (commandline -opc)
    set -l dir
    for i in (seq 2 (count $words))
        switch $words[$i]
            case --dir
                set -q words[(math $i + 1)]
                and set dir --dir (string replace -r '^~' $HOME -- $words[(math $i + 1)])
            case '--dir=*'
                set dir --dir (string replace -r '^--dir=~?' '' -- $words[$i])
        end
    end
    spool $dir queues 2>/dev/null
end

complete -c spool -s q -l queue -d '@QUEUE_HELP@' -x -a '(__fish_spool_queues)'

# The words of run's COMMAND before the cursor, when the cursor is in it; else fails.
function __fish_spool_run_command
    set -l words (commandline -opc)
    set -l sub
    set -l i 2
    while test $i -le (count $words)
        set -l word $words[$i]
        if test -z "$sub"
            if contains -- $word @GLOBAL_VALUES@
                set i (math $i + 2)
                continue
            end
            string match -q -- '-*' $word
            or set sub $word
        else if test "$sub" = run
            if test "$word" = --
                set i (math $i + 1)
                break
            end
            if contains -- $word @RUN_VALUES@
                set i (math $i + 2)
                continue
            end
            string match -q -- '-*' $word
            or break
        else
            return 1
        end
        set i (math $i + 1)
    end
    test "$sub" = run
    and test $i -le (math (count $words) + 1)
    or return 1
    if test $i -gt (count $words)
        string match -q -- '-*' (commandline -ct)
        and return 1
    end
    if test $i -le (count $words)
        printf '%s\n' $words[$i..-1]
    end
end

function __fish_spool_complete_run_command
    set -l words (__fish_spool_run_command)
    complete -C (string join ' ' -- (string escape -- $words) (commandline -ct))
end

complete -c spool -n '__fish_spool_run_command >/dev/null' -x -a '(__fish_spool_complete_run_command)'
"#;
