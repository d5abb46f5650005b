//! The entry: parses the command line, runs one command, and reports how it ended, as
//! an exit status (see [`crate::exit`]) and, for an error, one `spool: ` line on standard
//! error. Only the command layer (this module and `cmd`) prints or decides exits.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::cmd::{self, failure::Failure};
use crate::exit::ExitStatus;
use crate::process;
use crate::store::describe;

/// Runs spool with the process's arguments (the first is the program name) and returns
/// its exit code.
///
/// The binary enters here without Rust's runtime start-up (see src/main.rs), so this
/// first does the part of it that spool needs.
pub fn main(args: Vec<OsString>) -> u8 {
    if let Err(e) = process::start() {
        eprintln!("spool: open /dev/null: {}", describe(&e));
        return ExitStatus::Error.into();
    }
    process::guarded(|| invoke(args)).into()
}

/// Runs spool with `args` (the first is the program name) in a process already started:
/// parses them, runs the command and reports its end. Callable from tests.
pub fn invoke(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    // As Cli::try_parse_from, but the command definition and the matches are not freed:
    // the process ends soon, and freeing them is a tenth of a short command's work.
    let mut command = Cli::command();
    let parsed = command
        .try_get_matches_from_mut(args)
        .and_then(|mut matches| {
            let cli = Cli::from_arg_matches_mut(&mut matches);
            std::mem::forget(matches);
            cli
        })
        .map_err(|e| e.format(&mut command));
    std::mem::forget(command);
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
        Err(e) => {
            eprintln!("spool: {}", usage_error(&e));
            return ExitStatus::Error;
        }
    };
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

/// Renders a clap error as one line: its first line without the "error: " prefix, and
/// where to find help.
fn usage_error(e: &clap::Error) -> String {
    // clap's message is a first line, maybe indented details (the missing arguments),
    // then a blank line and the usage: keep what comes before the blank line, as one line.
    let text = e.render().to_string();
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
    format!("{message} (see spool --help)")
}
