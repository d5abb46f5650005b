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
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "spool", &mut buf);
    print(&buf)?;
    Ok(ExitStatus::Success)
}
