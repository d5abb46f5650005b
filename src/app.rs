//! Parses the command line, runs one subcommand, prints, and maps outcomes to exit codes:
//! 0 success, 1 nothing to return, 2 error. Only this module prints or decides exits.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{CommandFactory, Parser};
use serde::Serialize;

use crate::cli::{Cli, Command, ListArgs, PushArgs, Shell, StatsArgs, TakeArgs};
use crate::store::{self, Claimed, Error, Queue, Result, Spool, describe};
use crate::timefmt;

/// Exit status: nothing to return.
const EMPTY: u8 = 1;
/// Exit status: error.
const FAILURE: u8 = 2;

/// Runs spool with the process's arguments.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("spool: internal error: {info}");
    }));
    match std::panic::catch_unwind(|| run(std::env::args_os())) {
        Ok(code) => code,
        Err(_) => ExitCode::from(FAILURE),
    }
}

/// Runs spool with `args` (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { FAILURE } else { 0 });
        }
    };
    // A write past RLIMIT_FSIZE must fail with EFBIG, not kill the process: catching
    // SIGXFSZ (rather than ignoring it) also leaves children with the default action.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    match execute(cli) {
        Ok(code) => code,
        Err(Failure::Store(e)) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(Failure::Store(e)) => {
            eprintln!("spool: {e}");
            ExitCode::from(FAILURE)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("spool: {m}");
            ExitCode::from(FAILURE)
        }
        Err(Failure::Delivery(m)) => {
            eprintln!("spool: {m}");
            ExitCode::from(FAILURE)
        }
    }
}

/// Why a command failed.
enum Failure {
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

type Outcome = std::result::Result<ExitCode, Failure>;

fn execute(cli: Cli) -> Outcome {
    if let Command::Completions(args) = &cli.command {
        return completions(args.shell);
    }
    let spool = Spool::new(resolve_root(cli.dir)?, |m| eprintln!("spool: warning: {m}"));
    let queue = resolve_queue(cli.queue);
    match cli.command {
        Command::Push(args) => push(&spool, &queue, args),
        Command::Pop(args) => pop(&spool, &queue, args),
        Command::Peek(args) => peek(&spool, &queue, args),
        Command::List(args) => list(&spool, &queue, args),
        Command::Len => len(&spool, &queue),
        Command::Stats(args) => stats(&spool, &queue, args),
        Command::Clear => clear(&spool, &queue),
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
fn resolve_queue(queue: Option<String>) -> String {
    queue
        .or_else(|| std::env::var("SPOOL_QUEUE").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "default".to_string())
}

fn stdout_file() -> std::result::Result<File, Failure> {
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Failure::Delivery(format!("stdout: {}", describe(&e))))
}

// ----- push -----

fn push(spool: &Spool, name: &str, args: PushArgs) -> Outcome {
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
        staging.publish()?
    } else if args.lines || args.null {
        let delimiter = if args.null { b'\0' } else { b'\n' };
        let mut input = BufReader::with_capacity(1 << 16, io::stdin().lock());
        let mut staging = queue.stage(true)?;
        while !fill(&mut input)?.is_empty() {
            staging.add(|file, path| copy_record(&mut input, file, delimiter, path))?;
        }
        staging.publish()?
    } else {
        let mut staging = queue.stage(false)?;
        staging.add(|file, path| copy_all(&mut io::stdin().lock(), file, path))?;
        staging.publish()?
    };
    if args.print_id {
        let mut out = BufWriter::new(io::stdout().lock());
        for id in published.ids() {
            writeln!(out, "{id}").map_err(stdout_error)?;
        }
        out.flush().map_err(stdout_error)?;
    }
    Ok(ExitCode::SUCCESS)
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

fn pop(spool: &Spool, name: &str, args: TakeArgs) -> Outcome {
    let frame = framing("pop", &args)?;
    let Some(queue) = spool.open(name)? else {
        return Ok(ExitCode::from(EMPTY));
    };
    let mut out = stdout_file()?;
    let mut remaining = args.count;
    let mut delivered = 0u64;
    while remaining > 0 {
        let taken = queue.take(remaining.min(64) as usize)?;
        if taken.is_empty() {
            break;
        }
        remaining -= taken.len() as u64;
        let mut done: Vec<Claimed> = Vec::with_capacity(taken.len());
        let mut rest = taken.into_iter();
        let mut failed = None;
        for mut message in rest.by_ref() {
            match deliver(&mut out, message.file(), frame) {
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
        if let Err(e) = sync_output(&out) {
            // Nothing written in this round is known to be safe: keep it all.
            undelivered.splice(0..0, done.drain(..));
            error.get_or_insert(e);
        }
        delivered += done.len() as u64;
        queue.finish(done)?;
        if let Some(e) = error {
            let ids: Vec<u64> = undelivered.iter().map(Claimed::id).collect();
            queue.give_back(undelivered)?;
            return Err(delivery_failure(&e, &ids));
        }
    }
    Ok(if delivered == 0 {
        ExitCode::from(EMPTY)
    } else {
        ExitCode::SUCCESS
    })
}

fn peek(spool: &Spool, name: &str, args: TakeArgs) -> Outcome {
    let frame = framing("peek", &args)?;
    let Some(queue) = spool.open(name)? else {
        return Ok(ExitCode::from(EMPTY));
    };
    let mut out = stdout_file()?;
    let mut failure = None;
    let seen = queue.peek(args.count as usize, |mut message| {
        if let Err(e) = deliver(&mut out, &mut message.file, frame) {
            failure = Some(Failure::Delivery(format!(
                "write standard output: {}",
                describe(&e)
            )));
            return Ok(false);
        }
        Ok(true)
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    Ok(if seen == 0 {
        ExitCode::from(EMPTY)
    } else {
        ExitCode::SUCCESS
    })
}

// ----- inspection -----

#[derive(Serialize)]
struct ListEntry<'a> {
    id: u64,
    size: u64,
    enqueued: &'a str,
    preview: &'a str,
}

const PREVIEW_BYTES: usize = 48;

fn list(spool: &Spool, name: &str, args: ListArgs) -> Outcome {
    let Some(queue) = spool.open(name)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut head = [0u8; PREVIEW_BYTES + 1];
    queue.walk(|info, open| {
        let preview = match open()? {
            Some(mut file) => {
                let n = read_prefix(&mut file, &mut head).map_err(|e| {
                    Error::io(
                        "read",
                        queue.path().join(store::names::ready_path(info.id)),
                        e,
                    )
                })?;
                preview(&head[..n.min(PREVIEW_BYTES)], n > PREVIEW_BYTES)
            }
            None => return Ok(true), // taken meanwhile
        };
        let enqueued = timefmt::rfc3339(info.enqueued);
        let written = if args.json {
            let entry = ListEntry {
                id: info.id,
                size: info.size,
                enqueued: &enqueued,
                preview: &preview,
            };
            serde_json::to_writer(&mut out, &entry)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        } else {
            writeln!(out, "{}\t{}\t{}\t{}", info.id, info.size, enqueued, preview)
        };
        written.map_err(|e| Error::io("write", "standard output", e))?;
        Ok(true)
    })?;
    out.flush().map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

fn read_prefix(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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
        Some(queue) => queue.stats()?.waiting,
        None => 0,
    };
    println_checked(&n.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn println_checked(line: &str) -> std::result::Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

#[derive(Serialize)]
struct StatsJson {
    queue: String,
    waiting: u64,
    bytes: u64,
    claimed: u64,
    oldest_enqueued: Option<String>,
    oldest_age_seconds: Option<f64>,
    next_id: u64,
}

fn queue_stats(queue: Option<Queue>, name: &str) -> Result<StatsJson> {
    let s = match &queue {
        Some(q) => q.stats()?,
        None => store::Stats {
            next_id: 1,
            ..Default::default()
        },
    };
    let now = SystemTime::now();
    Ok(StatsJson {
        queue: name.to_string(),
        waiting: s.waiting,
        bytes: s.bytes,
        claimed: s.claimed,
        oldest_enqueued: s.oldest.map(timefmt::rfc3339),
        oldest_age_seconds: s.oldest.map(|t| {
            now.duration_since(t)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        }),
        next_id: s.next_id,
    })
}

fn stats(spool: &Spool, name: &str, args: StatsArgs) -> Outcome {
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
    if args.json {
        for row in &rows {
            text.push_str(&serde_json::to_string(row).expect("plain struct serializes"));
            text.push('\n');
        }
    } else if args.all {
        text.push_str("QUEUE\tWAITING\tBYTES\tCLAIMED\tOLDEST\n");
        for r in &rows {
            let age = r.oldest_age_seconds.map_or("-".to_string(), timefmt::age);
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                r.queue, r.waiting, r.bytes, r.claimed, age
            ));
        }
    } else if let Some(r) = rows.first() {
        let oldest = match (&r.oldest_enqueued, r.oldest_age_seconds) {
            (Some(t), Some(a)) => format!("{} ({t})", timefmt::age(a)),
            _ => "-".to_string(),
        };
        text = format!(
            "queue:    {}\nwaiting:  {}\nbytes:    {}\nclaimed:  {}\noldest:   {}\nnext id:  {}\n",
            r.queue, r.waiting, r.bytes, r.claimed, oldest, r.next_id
        );
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

fn clear(spool: &Spool, name: &str) -> Outcome {
    let removed = match spool.open(name)? {
        Some(queue) => queue.clear()?,
        None => 0,
    };
    println_checked(&removed.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn queues(spool: &Spool) -> Outcome {
    let mut text = String::new();
    for name in spool.queues()? {
        text.push_str(&name);
        text.push('\n');
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

fn completions(shell: Shell) -> Outcome {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "spool", &mut buf);
    let mut out = io::stdout().lock();
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
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
