//! The commands: one `match` over the subcommands (`dispatch`), one small file per
//! family of commands, each function taking its own arguments and the engine.
//!
//! Dependencies go one way: the entry (`app`) calls [`execute`], which chooses the engine
//! and the queue and dispatches; a command uses the store's seam (generic over
//! [`Engine`]), the output helpers and the wait loop, and never this dispatcher. Only
//! this layer prints; the store returns values and errors.

mod admin;
mod claims;
pub(crate) mod failure;
mod inspect;
mod output;
mod push;
mod relay;
mod run;
mod stats;
mod take;
mod watch;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{Cli, Command};
use crate::store::local::{Spool, netfs};
use crate::store::postgres::Postgres;
use crate::store::{self, Engine, Error};
use failure::{Failure, Outcome};

/// Runs one parsed command line: chooses the engine, then the command.
pub(crate) fn execute(cli: Cli) -> Outcome {
    if let Command::Completions(args) = &cli.command {
        return admin::completions(args.shell);
    }
    let named =
        cli.queue.is_some() || std::env::var_os("SPOOL_QUEUE").is_some_and(|v| !v.is_empty());
    let mut command = cli.command;
    if let Command::Stats(args) = &mut command {
        args.queue_named = named;
    }
    let allow_network_fs = std::env::var_os(netfs::ALLOW_VARIABLE).is_some_and(|v| v == "1");
    if let Some(url) = resolve_url(cli.url, cli.dir.is_some())? {
        let queue = resolve_queue(cli.queue)?;
        if let Command::Relay(args) = command {
            return relay::relay(relay::Place::Url(url), &queue, args);
        }
        return dispatch(&Postgres::new(&url)?, &queue, command);
    }
    if let Command::Relay(args) = command {
        let here = relay::Place::Dir {
            root: resolve_root(cli.dir)?,
            allow_network_fs,
        };
        return relay::relay(here, &resolve_queue(cli.queue)?, args);
    }
    let spool = Spool::new(resolve_root(cli.dir)?, warn_once).allow_network_fs(allow_network_fs);
    let queue = resolve_queue(cli.queue)?;
    dispatch(&spool, &queue, command)
}

/// The database to use: `--url`, else `$SPOOL_URL` unless `--dir` is given; `None`: the
/// spool directory. Only a PostgreSQL URL is taken; errors show it with its password
/// masked.
fn resolve_url(url: Option<OsString>, dir_given: bool) -> Result<Option<String>, Failure> {
    let url = match url {
        Some(url) => url,
        None if dir_given => return Ok(None),
        None => match std::env::var_os("SPOOL_URL").filter(|v| !v.is_empty()) {
            Some(url) => url,
            None => return Ok(None),
        },
    };
    let url = url
        .into_string()
        .map_err(|_| Failure::Usage("--url: not valid UTF-8".into()))?;
    store::postgres::check_url(&url).map_err(|e| Failure::Usage(format!("--url: {e}")))?;
    Ok(Some(url))
}

/// Says a warning on standard error, once per process: a command that looks again and
/// again (`stats --watch`, `run --wait`) does not repeat it.
fn warn_once(message: &str) {
    static SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let new = SAID
        .lock()
        .map_or(true, |mut said| said.insert(message.to_string()));
    if new {
        eprintln!("spool: warning: {message}");
    }
}

/// Runs `command` on the queue `queue` of `engine`: the one `match` over the commands,
/// the same for every engine.
fn dispatch<E: Engine>(engine: &E, queue: &str, command: Command) -> Outcome {
    match command {
        Command::Push(args) => push::push(engine, queue, args),
        Command::Pop(args) => take::pop(engine, queue, args),
        Command::Peek(args) => take::peek(engine, queue, args),
        Command::Claim(args) => take::claim(engine, queue, args),
        Command::Show(args) => claims::show(engine, queue, args),
        Command::Ack(args) => claims::ack(engine, queue, args),
        Command::Nack(args) => claims::nack(engine, queue, args),
        Command::Extend(args) => claims::extend(engine, queue, args),
        Command::Requeue(args) => claims::requeue(engine, queue, args),
        Command::Run(args) => run::run(engine, queue, args),
        Command::List(args) => inspect::list(engine, queue, args),
        Command::Len => inspect::len(engine, queue),
        Command::Stats(args) => stats::stats(engine, queue, args),
        Command::Clear(args) => admin::clear(engine, queue, args),
        Command::Fsck(args) => admin::fsck(engine, queue, args),
        Command::Queues => inspect::queues(engine),
        Command::Completions(_) | Command::Relay(_) => unreachable!("handled above"),
    }
}

/// `--dir`, else `$SPOOL_DIR`, else `$XDG_STATE_HOME/spool`, else `~/.local/state/spool`.
fn resolve_root(dir: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = dir.or_else(|| env("SPOOL_DIR").map(PathBuf::from)) {
        return Ok(dir);
    }
    if let Some(state) = env("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(state.join("spool"));
    }
    match env("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/spool")),
        None => Err(Failure::Usage(
            "no spool directory: set --dir, $SPOOL_DIR, $XDG_STATE_HOME or $HOME".into(),
        )),
    }
}

/// `-q`, else `$SPOOL_QUEUE`, else `default`. Validated by the store.
fn resolve_queue(queue: Option<OsString>) -> Result<String, Failure> {
    let Some(name) = queue.or_else(|| std::env::var_os("SPOOL_QUEUE").filter(|v| !v.is_empty()))
    else {
        return Ok("default".to_string());
    };
    name.into_string().map_err(|name| {
        Failure::Store(Error::invalid(
            format!(
                "invalid queue name {:?}",
                crate::excerpt::cut(&name.to_string_lossy())
            ),
            None,
            store::QUEUE_NAME_RULE,
        ))
    })
}
