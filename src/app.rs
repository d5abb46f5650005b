//! The entry: parses the command line, runs one command, and reports how it ended, as
//! an exit status (see [`crate::exit`]) and, for an error, one `spool: ` line on standard
//! error. Only the command layer (this module and `cmd`) prints or decides exits.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

use clap::error::{ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::cmd::{self, failure::Failure};
use crate::excerpt::excerpt;
use crate::exit::ExitStatus;
use crate::process;
use crate::store::describe;

/// Runs spool with the process's arguments (the first is the program name) and returns
/// its exit code; a run that SIGINT or SIGTERM stopped does not return, but ends killed
/// by that signal once its work is done (see [`crate::exit`]).
///
/// The binary enters here without Rust's runtime start-up (see src/main.rs), so this
/// first does the part of it that spool needs.
pub fn main(args: Vec<OsString>) -> u8 {
    if let Err(e) = process::start() {
        eprintln!("spool: open /dev/null: {}", describe(&e));
        return ExitStatus::Error.into();
    }
    let status = process::guarded(|| invoke(args));
    if let Some(signal) = status.signal() {
        process::die_of(signal);
    }
    // Also when the signal did not kill spool: 128 + its number.
    status.into()
}

/// Runs spool with `args` (the first is the program name) in a process already started:
/// parses them, runs the command and reports its end. Callable from tests.
pub fn invoke(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    let args: Vec<OsString> = args.into_iter().collect();
    // As Cli::try_parse_from, but the command definition and the matches are not freed:
    // the process ends soon, and freeing them is a tenth of a short command's work.
    let mut command = Cli::command();
    let parsed = command
        .try_get_matches_from_mut(&args)
        .and_then(|mut matches| {
            let cli = Cli::from_arg_matches_mut(&mut matches);
            std::mem::forget(matches);
            cli
        })
        .map_err(|e| e.format(&mut command));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: a failure to write them is an error too.
            let text = e.render().to_string();
            let written = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .and_then(|fd| File::from(fd).write_all(text.as_bytes()));
            return match written {
                Ok(()) => ExitStatus::Success,
                Err(e) => {
                    eprintln!("spool: write standard output: {}", describe(&e));
                    ExitStatus::Error
                }
            };
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `spool` alone: what `spool -h` prints, on standard error, as a usage error.
            eprint!("{}", command.render_help());
            return ExitStatus::Error;
        }
        Err(e) => {
            eprintln!("spool: {}", usage_error(&e, subcommand(&command, &args)));
            return ExitStatus::Error;
        }
    };
    std::mem::forget(command);
    match cmd::execute(cli) {
        Ok(status) => status,
        // The reader went away: not a crash (a pop keeps what it could not deliver, and
        // says so: its failure is a Delivery).
        Err(Failure::Store(e)) if e.is_broken_pipe() => ExitStatus::Success,
        Err(Failure::Store(e)) => {
            eprintln!("spool: {e}");
            ExitStatus::Error
        }
        Err(Failure::Usage(m) | Failure::Delivery(m)) => {
            eprintln!("spool: {m}");
            ExitStatus::Error
        }
    }
}

/// The subcommand a command line names, if it names one: the first word that is not a
/// global option (`--dir DIR`, `--url URL`, `-q NAME`) or its value, when it is a
/// subcommand's name.
/// For errors only, which point to the subcommand's help.
fn subcommand<'a>(command: &'a clap::Command, args: &[OsString]) -> Option<&'a str> {
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        match word? {
            "--dir" | "--url" | "--queue" | "-q" => {
                words.next();
            }
            w if w.starts_with("--dir=")
                || w.starts_with("--url=")
                || w.starts_with("--queue=")
                || w.starts_with("-q") => {}
            w if w.starts_with('-') => return None,
            w => {
                return command
                    .find_subcommand(w)
                    .map(clap::Command::get_name)
                    .filter(|&name| name != "help");
            }
        }
    }
    None
}

/// Renders a clap error as one line: its first line without the "error: " prefix, any
/// long or invisible value it quotes cut and escaped, and where to find help: the help of
/// `subcommand` when the command line names one.
fn usage_error(e: &clap::Error, subcommand: Option<&str>) -> String {
    let mut text = e.render().to_string();
    // The values clap quotes (an unexpected argument, an invalid value) are as given: a
    // 100 kB token, or one with a newline, is shown by its start, on the one line.
    for (_, value) in e.context() {
        let quoted: &[String] = match value {
            ContextValue::String(v) => std::slice::from_ref(v),
            ContextValue::Strings(vs) => vs,
            _ => &[],
        };
        for v in quoted {
            let shown = excerpt(v);
            if shown != *v && !v.is_empty() {
                text = text.replace(v.as_str(), &shown);
            }
        }
    }
    // clap's message is a first line, maybe indented details (the missing arguments),
    // then a blank line and the usage: keep what comes before the blank line, as one line.
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("Usage:") {
            break;
        }
        parts.push(line.trim());
    }
    let message = parts.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let message = if message.is_empty() {
        "invalid usage"
    } else {
        message
    };
    match subcommand {
        Some(name) => format!("{message} (see spool {name} --help)"),
        None => format!("{message} (see spool --help)"),
    }
}
