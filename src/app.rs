//! Parses the command line, runs one subcommand, prints, and maps outcomes to exit codes:
//! 0 success, 1 nothing to return, 2 error. Only this module prints or decides exits.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::{CommandFactory, FromArgMatches};
use serde::Serialize;

use crate::cli::{
    ClaimArgs, ClearArgs, Cli, Command, FsckArgs, ListArgs, PushArgs, RequeueArgs, Shell, StateArg,
    StatsArgs, TakeArgs, WaitArgs,
};
use crate::exit::ExitStatus;
use crate::process;
use crate::store::wait::Waiter;
use crate::store::{
    self, Claimed, Error, Hold, PushOptions, Queue, Result, Spool, State, TakeOptions, describe,
    now_ms,
};
use crate::timefmt;

/// How pop takes messages.
const POP: TakeOptions = TakeOptions {
    hold: Hold::Process,
    max_attempts: None,
};

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
    process::guarded(|| run(args)).into()
}

/// Runs spool with `args` (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
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
    match execute(cli) {
        Ok(code) => code,
        Err(Failure::Store(e)) if e.is_broken_pipe() => ExitStatus::Success,
        Err(Failure::Store(e)) => {
            eprintln!("spool: {e}");
            ExitStatus::Error
        }
        Err(Failure::Usage(m)) => {
            eprintln!("spool: {m}");
            ExitStatus::Error
        }
        Err(Failure::Delivery(m)) => {
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

/// Why a command failed.
pub(crate) enum Failure {
    /// The queue or the spool failed.
    Store(Error),
    /// The command line asked for something impossible.
    Usage(String),
    /// Writing a message out failed (never silenced, even for a broken pipe).
    Delivery(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Store(e)
    }
}

pub(crate) type Outcome = std::result::Result<ExitStatus, Failure>;

fn execute(cli: Cli) -> Outcome {
    if let Command::Completions(args) = &cli.command {
        return completions(args.shell);
    }
    let spool = Spool::new(resolve_root(cli.dir)?, |m| eprintln!("spool: warning: {m}"));
    let queue = resolve_queue(cli.queue)?;
    match cli.command {
        Command::Push(args) => push(&spool, &queue, args),
        Command::Pop(args) => pop(&spool, &queue, args),
        Command::Peek(args) => peek(&spool, &queue, args),
        Command::Claim(args) => claim(&spool, &queue, args),
        Command::Show(args) => show(&spool, &queue, &args.what),
        Command::Ack(args) => settle(&spool, &queue, &args.token, |q, t| q.ack(t)),
        Command::Nack(args) => {
            let delay = args.delay.map(|d| d.as_millis() as u64);
            settle(&spool, &queue, &args.token, |q, t| q.nack(t, delay))
        }
        Command::Extend(args) => {
            let lease = args.lease.as_millis() as u64;
            settle(&spool, &queue, &args.token, |q, t| q.extend(t, lease))
        }
        Command::Requeue(args) => requeue(&spool, &queue, args),
        Command::Run(args) => crate::run::run(&spool, &queue, args),
        Command::List(args) => list(&spool, &queue, args),
        Command::Len => len(&spool, &queue),
        Command::Stats(args) => stats(&spool, &queue, args),
        Command::Clear(args) => clear(&spool, &queue, args),
        Command::Fsck(args) => fsck(&spool, &queue, args),
        Command::Queues => queues(&spool),
        Command::Completions(_) => unreachable!("handled above"),
    }
}

/// `--dir`, else `$SPOOL_DIR`, else `$XDG_STATE_HOME/spool`, else `~/.local/state/spool`.
fn resolve_root(dir: Option<PathBuf>) -> std::result::Result<PathBuf, Failure> {
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
fn resolve_queue(queue: Option<OsString>) -> std::result::Result<String, Failure> {
    let Some(name) = queue.or_else(|| std::env::var_os("SPOOL_QUEUE").filter(|v| !v.is_empty()))
    else {
        return Ok("default".to_string());
    };
    name.into_string().map_err(|name| {
        Failure::Store(Error::invalid(
            format!("invalid queue name {:?}", name.to_string_lossy()),
            None,
            store::names::QUEUE_NAME_RULE,
        ))
    })
}

/// Standard input as a file of its own, which, unlike `io::stdin()`, reports a read from
/// a closed standard input as the error it is rather than as an empty input.
fn stdin_file() -> Result<File> {
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(stdin_error)
}

/// Standard output as a file of its own. Every command writes through one: unlike
/// `io::stdout()`, it reports a write to a closed standard output as the error it is, and
/// keeps nothing in a buffer that would be written again at exit.
fn stdout_file() -> std::result::Result<File, Failure> {
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Failure::Store(Error::io("open", "standard output", e)))
}

// ----- push -----

fn push(spool: &Spool, name: &str, args: PushArgs) -> Outcome {
    let now = now_ms();
    let ms = |t: SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let after = |d: std::time::Duration| {
        now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let due = args.delay.map(after).or(args.at.map(ms));
    if due.is_some_and(|d| d > store::LATEST_MS) {
        return Err(Failure::Usage(format!(
            "push: the message would be due after {}: nothing was pushed",
            timefmt::rfc3339(ms_time(store::LATEST_MS))
        )));
    }
    let opts = PushOptions {
        priority: args.priority,
        due,
        // A time to live past the end of the calendar is no limit at all.
        expires: args.ttl.map(after).filter(|&e| e <= store::LATEST_MS),
    };
    let queue = spool.create(name)?;
    let published = if !args.messages.is_empty() {
        let mut staging = queue.stage(args.messages.len() > 1)?;
        for message in &args.messages {
            let bytes = message.as_encoded_bytes();
            staging.add(|file, path| {
                file.write_all(bytes)
                    .map_err(|e| Error::io("write", path, e))
            })?;
        }
        staging.publish(opts)?
    } else if args.lines || args.null {
        let delimiter = if args.null { b'\0' } else { b'\n' };
        let mut input = BufReader::with_capacity(1 << 16, stdin_file()?);
        let mut staging = queue.stage(true)?;
        while !fill(&mut input)?.is_empty() {
            staging.add(|file, path| copy_record(&mut input, file, delimiter, path))?;
        }
        staging.publish(opts)?
    } else {
        let mut staging = queue.stage(false)?;
        let mut input = stdin_file()?;
        staging.add(|file, path| copy_all(&mut input, file, path))?;
        staging.publish(opts)?
    };
    if args.print_id {
        let pushed = |e: io::Error| {
            let note = match published.len() {
                1 => "the message was pushed".to_string(),
                n => format!("the {n} messages were pushed"),
            };
            Failure::Store(Error::io("write", "standard output", e).with_note(note))
        };
        let mut out = BufWriter::new(stdout_file()?);
        for id in published.ids() {
            writeln!(out, "{id}").map_err(pushed)?;
        }
        out.flush().map_err(pushed)?;
    }
    Ok(ExitStatus::Success)
}

fn stdout_error(e: io::Error) -> Failure {
    Failure::Store(Error::io("write", "standard output", e))
}

fn stdin_error(e: io::Error) -> Error {
    Error::io("read", "standard input", e).with_note("nothing was pushed")
}

fn fill<R: BufRead>(input: &mut R) -> Result<&[u8]> {
    while let Err(e) = input.fill_buf() {
        if e.kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    input.fill_buf().map_err(stdin_error)
}

/// Copies one record (up to `delimiter`, which is consumed, or the end) into `file`.
fn copy_record<R: BufRead>(
    input: &mut R,
    file: &mut File,
    delimiter: u8,
    path: &std::path::Path,
) -> Result<()> {
    loop {
        let buf = fill(input)?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == delimiter) {
            Some(at) => {
                file.write_all(&buf[..at])
                    .map_err(|e| Error::io("write", path, e))?;
                input.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                file.write_all(buf)
                    .map_err(|e| Error::io("write", path, e))?;
                input.consume(n);
            }
        }
    }
}

/// Copies all of `input` into `file` in constant memory.
fn copy_all(input: &mut impl Read, file: &mut File, path: &std::path::Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stdin_error(e)),
        };
        file.write_all(&buf[..n])
            .map_err(|e| Error::io("write", path, e))?;
    }
}

// ----- pop and peek -----

/// What follows each message on standard output.
fn framing(command: &str, args: &TakeArgs) -> std::result::Result<Option<u8>, Failure> {
    let frame = match (args.lines, args.null) {
        (true, _) => Some(b'\n'),
        (_, true) => Some(b'\0'),
        _ => None,
    };
    if args.count > 1 && frame.is_none() {
        return Err(Failure::Usage(format!(
            "{command}: -n {} needs --lines or --null to separate the messages",
            args.count
        )));
    }
    Ok(frame)
}

/// Writes one message and its frame byte to `out`.
fn deliver(out: &mut File, message: &mut File, frame: Option<u8>) -> io::Result<()> {
    io::copy(message, out)?;
    if let Some(b) = frame {
        out.write_all(&[b])?;
    }
    Ok(())
}

/// Makes what was written to standard output durable when it is a regular file, so that
/// `spool pop > job` never loses a message that a power cut would take from `job`.
fn sync_output(out: &File) -> io::Result<()> {
    let meta = out.metadata()?;
    if meta.file_type().is_file() {
        out.sync_data()
    } else {
        Ok(())
    }
}

fn delivery_failure(e: &io::Error, ids: &[u64]) -> Failure {
    let kept = match ids {
        [] => String::new(),
        [id] => format!(" (message {id} stays in the queue)"),
        [first, .., last] => format!(" (messages {first} to {last} stay in the queue)"),
    };
    Failure::Delivery(format!("write standard output: {}{kept}", describe(e)))
}

/// Opens the queue and calls `attempt` until it returns something; with `--wait`, sleeps
/// between attempts until the queue changes (or `--timeout` passes). `Ok(None)`: nothing.
fn wait_for<T>(
    spool: &Spool,
    name: &str,
    wait: &WaitArgs,
    mut attempt: impl FnMut(&Queue) -> Result<Option<T>>,
) -> Result<Option<(Queue, T)>> {
    let deadline = wait.timeout.map(|t| std::time::Instant::now() + t);
    let mut queue: Option<Queue> = None;
    let mut waiter = Waiter::polling();
    loop {
        if queue.is_none() {
            queue = spool.open(name)?;
            if let Some(q) = &queue
                && wait.wait
            {
                // Watch before looking, so that no push between the two is missed.
                waiter = Waiter::new(q.path());
            }
        }
        if let Some(q) = &queue
            && let Some(found) = attempt(q)?
        {
            // Closing an inotify descriptor can take milliseconds in the kernel: leave it
            // to the end of this short-lived process, after the message is delivered.
            std::mem::forget(waiter);
            return Ok(Some((queue.expect("checked above"), found)));
        }
        if !wait.wait {
            return Ok(None);
        }
        let mut sleep = store::wait::POLL_INTERVAL;
        if let Some(deadline) = deadline {
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            sleep = sleep.min(deadline - now);
        }
        if let Some(due) = queue.as_ref().map(Queue::next_due).transpose()?.flatten() {
            sleep = sleep.min(std::time::Duration::from_millis(
                due.saturating_sub(now_ms()).max(1),
            ));
        }
        waiter.wait(sleep);
    }
}

fn pop(spool: &Spool, name: &str, args: TakeArgs) -> Outcome {
    let frame = framing("pop", &args)?;
    let first_chunk = args.count.min(64) as usize;
    let Some((queue, mut taken)) = wait_for(spool, name, &args.wait, |q| {
        let taken = q.take(first_chunk, POP)?;
        Ok((!taken.is_empty()).then_some(taken))
    })?
    else {
        return Ok(ExitStatus::Empty);
    };
    let mut out = stdout_file()?;
    let mut remaining = args.count;
    // Removals are synced once, at the end, whichever way it comes.
    let mut removed = 0;
    let outcome = pop_rounds(
        &queue,
        &mut out,
        frame,
        &mut taken,
        &mut remaining,
        &mut removed,
    );
    let synced = queue.sync_removals(removed);
    let code = outcome?; // a failed delivery is the error to report
    synced?;
    Ok(code)
}

/// Delivers what `pop` took, and takes more, until `remaining` reaches 0 or the queue is
/// empty; adds to `removed` the messages delivered and deleted.
fn pop_rounds(
    queue: &Queue,
    out: &mut File,
    frame: Option<u8>,
    taken: &mut Vec<Claimed>,
    remaining: &mut u64,
    removed: &mut u64,
) -> Outcome {
    loop {
        *remaining -= taken.len() as u64;
        let mut done: Vec<Claimed> = Vec::with_capacity(taken.len());
        let mut rest = std::mem::take(taken).into_iter();
        let mut failed = None;
        for mut message in rest.by_ref() {
            match deliver(out, message.file(), frame) {
                Ok(()) => done.push(message),
                Err(e) => {
                    failed = Some((e, message));
                    break;
                }
            }
        }
        let mut undelivered: Vec<Claimed> = Vec::new();
        let mut error = None;
        if let Some((e, message)) = failed {
            undelivered.push(message);
            undelivered.extend(rest);
            error = Some(e);
        }
        if let Err(e) = sync_output(out) {
            // Nothing written in this round is known to be safe: keep it all.
            undelivered.splice(0..0, done.drain(..));
            error.get_or_insert(e);
        }
        queue.remove_delivered(done, removed)?;
        if let Some(e) = error {
            let ids: Vec<u64> = undelivered.iter().map(Claimed::id).collect();
            queue.give_back(undelivered)?;
            return Err(delivery_failure(&e, &ids));
        }
        if *remaining == 0 {
            return Ok(ExitStatus::Success);
        }
        *taken = queue.take((*remaining).min(64) as usize, POP)?;
        if taken.is_empty() {
            return Ok(ExitStatus::Success);
        }
    }
}

fn peek(spool: &Spool, name: &str, args: TakeArgs) -> Outcome {
    let frame = framing("peek", &args)?;
    let mut out = stdout_file()?;
    let mut failure = None;
    let found = wait_for(spool, name, &args.wait, |q| {
        let seen = q.peek(args.count as usize, |mut message| {
            if let Err(e) = deliver(&mut out, &mut message.file, frame) {
                failure = Some(Failure::Delivery(format!(
                    "write standard output: {}",
                    describe(&e)
                )));
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok((seen > 0).then_some(()))
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    Ok(if found.is_none() {
        ExitStatus::Empty
    } else {
        ExitStatus::Success
    })
}

fn claim(spool: &Spool, name: &str, args: ClaimArgs) -> Outcome {
    let opts = TakeOptions {
        hold: Hold::Lease {
            lease_ms: args.lease.as_millis() as u64,
        },
        max_attempts: Some(args.max_attempts),
    };
    let Some((_queue, taken)) = wait_for(spool, name, &args.wait, |q| {
        let taken = q.take(1, opts)?;
        Ok((!taken.is_empty()).then_some(taken))
    })?
    else {
        return Ok(ExitStatus::Empty);
    };
    // If the token cannot be printed, the lease returns the message: nothing is lost.
    println_checked(&taken[0].token())?;
    Ok(ExitStatus::Success)
}

fn show(spool: &Spool, name: &str, what: &str) -> Outcome {
    let found = match spool.open(name)? {
        Some(queue) => queue.show(what)?,
        None => None,
    };
    let Some((_, mut file)) = found else {
        return Err(Failure::Usage(format!(
            "show {what}: no such message in queue {name}"
        )));
    };
    let mut out = stdout_file()?;
    deliver(&mut out, &mut file, None)
        .map_err(|e| Failure::Delivery(format!("write standard output: {}", describe(&e))))?;
    Ok(ExitStatus::Success)
}

/// ack, nack and extend: act on a claim by its token.
fn settle(
    spool: &Spool,
    name: &str,
    token: &str,
    act: impl FnOnce(&Queue, &str) -> Result<u64>,
) -> Outcome {
    let Some(queue) = spool.open(name)? else {
        return Err(Failure::Usage(format!(
            "token {token}: queue {name} does not exist"
        )));
    };
    act(&queue, token)?;
    Ok(ExitStatus::Success)
}

fn requeue(spool: &Spool, name: &str, args: RequeueArgs) -> Outcome {
    let Some(queue) = spool.open(name)? else {
        return Err(Failure::Usage(format!(
            "requeue: queue {name} does not exist"
        )));
    };
    let (moved, missing) = queue.requeue(&args.ids)?;
    println_checked(&moved.len().to_string())?;
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(u64::to_string).collect();
        return Err(Failure::Usage(format!(
            "requeue: no failed message with id {}",
            ids.join(", ")
        )));
    }
    Ok(ExitStatus::Success)
}

// ----- inspection -----

fn states(arg: StateArg) -> Vec<State> {
    match arg {
        StateArg::Ready => vec![State::Ready],
        StateArg::Delayed => vec![State::Delayed],
        StateArg::Claimed => vec![State::Claimed],
        StateArg::Failed => vec![State::Failed],
        StateArg::All => State::ALL.to_vec(),
    }
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: u64,
    state: &'static str,
    size: u64,
    enqueued: &'a str,
    attempts: u32,
    priority: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    preview: &'a str,
}

const PREVIEW_BYTES: usize = 48;

fn ms_time(ms: u64) -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

fn list(spool: &Spool, name: &str, args: ListArgs) -> Outcome {
    let Some(queue) = spool.open(name)? else {
        return Ok(ExitStatus::Success);
    };
    let mut out = BufWriter::with_capacity(1 << 16, stdout_file()?);
    let mut head = [0u8; PREVIEW_BYTES + 1];
    let show_state = args.state != StateArg::Ready;
    queue.walk(&states(args.state), |info, open| {
        let preview = match open()? {
            Some(mut file) => {
                let n = store::read_full(&mut file, &mut head)
                    .map_err(|e| Error::io("read", format!("message {}", info.id), e))?;
                preview(&head[..n.min(PREVIEW_BYTES)], n > PREVIEW_BYTES)
            }
            None => return Ok(true), // taken meanwhile
        };
        let enqueued = timefmt::rfc3339(info.enqueued);
        let until = info.until.map(|t| timefmt::rfc3339(ms_time(t)));
        let expires = info.expires.map(|t| timefmt::rfc3339(ms_time(t)));
        let written = if args.json {
            let entry = ListEntry {
                id: info.id,
                state: info.state.as_str(),
                size: info.size,
                enqueued: &enqueued,
                attempts: info.attempts,
                priority: info.priority,
                until,
                expires,
                reason: info.reason.as_deref(),
                preview: &preview,
            };
            serde_json::to_writer(&mut out, &entry)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        } else if show_state {
            let mut details = format!("attempts={}", info.attempts);
            if info.priority > 0 {
                details.push_str(&format!(" priority={}", info.priority));
            }
            if let Some(u) = &until {
                details.push_str(if info.state == State::Delayed {
                    " due="
                } else {
                    " lease="
                });
                details.push_str(u);
            }
            if let Some(r) = &info.reason {
                details.push_str(&format!(" reason={r}"));
            }
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                info.id,
                info.state.as_str(),
                info.size,
                enqueued,
                details,
                preview
            )
        } else {
            writeln!(out, "{}\t{}\t{}\t{}", info.id, info.size, enqueued, preview)
        };
        written.map_err(|e| Error::io("write", "standard output", e))?;
        Ok(true)
    })?;
    out.flush().map_err(stdout_error)?;
    Ok(ExitStatus::Success)
}

/// A one-line, printable rendering of the start of a payload: valid UTF-8 is kept,
/// control characters and invalid bytes are escaped, and `…` marks a cut.
fn preview(bytes: &[u8], cut: bool) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.extend(c.escape_default()),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if cut {
        s.push('…');
    }
    s
}

fn len(spool: &Spool, name: &str) -> Outcome {
    let n = match spool.open(name)? {
        Some(queue) => queue.waiting()?,
        None => 0,
    };
    println_checked(&n.to_string())?;
    Ok(ExitStatus::Success)
}

fn println_checked(line: &str) -> std::result::Result<(), Failure> {
    // Straight to the descriptor: a line that failed must not stay in std's buffer, to be
    // written again at exit.
    let mut out = stdout_file()?;
    out.write_all(format!("{line}\n").as_bytes())
        .map_err(stdout_error)
}

#[derive(Serialize)]
struct StatsJson {
    queue: String,
    waiting: u64,
    delayed: u64,
    claimed: u64,
    failed: u64,
    bytes: u64,
    oldest_enqueued: Option<String>,
    oldest_age_seconds: Option<f64>,
    next_id: u64,
    /// Consumption rate R, messages per second over the last minutes.
    rate_per_second: f64,
    /// Expected wait of a new message, L / R; null when nothing was consumed lately.
    expected_wait_seconds: Option<f64>,
}

fn queue_stats(queue: Option<Queue>, name: &str) -> Result<StatsJson> {
    let s = match &queue {
        Some(q) => q.stats()?,
        None => store::Stats {
            next_id: 1,
            window: 1.0,
            ..Default::default()
        },
    };
    let now = SystemTime::now();
    let rate = if s.window > 0.0 {
        s.consumed as f64 / s.window
    } else {
        0.0
    };
    Ok(StatsJson {
        queue: name.to_string(),
        waiting: s.ready,
        delayed: s.delayed,
        claimed: s.claimed,
        failed: s.failed,
        bytes: s.bytes,
        oldest_enqueued: s.oldest.map(timefmt::rfc3339),
        oldest_age_seconds: s.oldest.map(|t| {
            now.duration_since(t)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        }),
        next_id: s.next_id,
        rate_per_second: (rate * 1000.0).round() / 1000.0,
        expected_wait_seconds: (rate > 0.0).then(|| (s.ready as f64 / rate * 10.0).round() / 10.0),
    })
}

fn render_stats(
    spool: &Spool,
    name: &str,
    args: &StatsArgs,
) -> std::result::Result<String, Failure> {
    let names = if args.all {
        spool.queues()?
    } else {
        vec![name.to_string()]
    };
    let mut rows = Vec::new();
    for name in &names {
        rows.push(queue_stats(spool.open(name)?, name)?);
    }
    let mut text = String::new();
    let wait = |r: &StatsJson| {
        r.expected_wait_seconds
            .map_or("-".to_string(), timefmt::age)
    };
    if args.json {
        for row in &rows {
            text.push_str(&serde_json::to_string(row).expect("plain struct serializes"));
            text.push('\n');
        }
    } else if args.all {
        text.push_str("QUEUE\tWAITING\tDELAYED\tCLAIMED\tFAILED\tBYTES\tOLDEST\tRATE/s\tWAIT\n");
        for r in &rows {
            let age = r.oldest_age_seconds.map_or("-".to_string(), timefmt::age);
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                r.queue,
                r.waiting,
                r.delayed,
                r.claimed,
                r.failed,
                r.bytes,
                age,
                r.rate_per_second,
                wait(r)
            ));
        }
    } else if let Some(r) = rows.first() {
        let oldest = match (&r.oldest_enqueued, r.oldest_age_seconds) {
            (Some(t), Some(a)) => format!("{} ({t})", timefmt::age(a)),
            _ => "-".to_string(),
        };
        text = format!(
            "queue:    {}\nwaiting:  {}\ndelayed:  {}\nclaimed:  {}\nfailed:   {}\nbytes:    {}\noldest:   {}\nrate:     {}/s (last 5 minutes)\nwait:     {} (expected, waiting / rate)\nnext id:  {}\n",
            r.queue,
            r.waiting,
            r.delayed,
            r.claimed,
            r.failed,
            r.bytes,
            oldest,
            r.rate_per_second,
            wait(r),
            r.next_id
        );
    }
    Ok(text)
}

fn stats(spool: &Spool, name: &str, args: StatsArgs) -> Outcome {
    use std::io::IsTerminal;
    let mut out = stdout_file()?;
    let tty = out.is_terminal();
    loop {
        let text = render_stats(spool, name, &args)?;
        if args.watch && tty {
            out.write_all(b"\x1b[H\x1b[2J").map_err(stdout_error)?;
        }
        out.write_all(text.as_bytes()).map_err(stdout_error)?;
        if !args.watch {
            return Ok(ExitStatus::Success);
        }
        if !tty {
            out.write_all(b"\n").map_err(stdout_error)?;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn clear(spool: &Spool, name: &str, args: ClearArgs) -> Outcome {
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
    let removed = match spool.open(name)? {
        Some(queue) => queue.clear(&which)?,
        None => 0,
    };
    println_checked(&removed.to_string())?;
    Ok(ExitStatus::Success)
}

fn fsck(spool: &Spool, name: &str, args: FsckArgs) -> Outcome {
    let findings = spool.fsck(name, args.repair)?;
    let mut text = String::new();
    let mut unrepaired = 0;
    for f in &findings {
        text.push_str(&format!("{}: {}", f.path.display(), f.problem));
        match &f.repair {
            Some(r) => text.push_str(&format!(" (repaired: {r})")),
            None => unrepaired += 1,
        }
        text.push('\n');
    }
    stdout_file()?
        .write_all(text.as_bytes())
        .map_err(stdout_error)?;
    Ok(if unrepaired == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::SomeFailed
    })
}

fn queues(spool: &Spool) -> Outcome {
    let mut text = String::new();
    for name in spool.queues()? {
        text.push_str(&name);
        text.push('\n');
    }
    stdout_file()?
        .write_all(text.as_bytes())
        .map_err(stdout_error)?;
    Ok(ExitStatus::Success)
}

fn completions(shell: Shell) -> Outcome {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "spool", &mut buf);
    stdout_file()?.write_all(&buf).map_err(stdout_error)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn previews_are_one_printable_line() {
        assert_eq!(preview(b"hello", false), "hello");
        assert_eq!(preview(b"a\nb\tc\0", false), "a\\nb\\tc\\u{0}");
        assert_eq!(preview(b"caf\xc3\xa9 \xff", true), "café \\xff…");
        assert_eq!(preview(b"back\\slash", false), "back\\\\slash");
    }
}
