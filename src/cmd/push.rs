//! `spool push`: messages from the arguments, or from standard input (whole, or one per
//! line or NUL-terminated record), published together.
//!
//! Input is copied into the queue in constant memory. A failure to read standard input
//! publishes nothing: the staged messages are published only once all were read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;

use super::failure::{Failure, Outcome};
use super::output::stdout_file;
use crate::cli::PushArgs;
use crate::clock::{self, LATEST_MS};
use crate::exit::ExitStatus;
use crate::store::{Batch, Engine, Error, Meta, PushOptions, Queue, Result, Sink};
use crate::timefmt;

/// Standard input as a file of its own, which, unlike `io::stdin()`, reports a read from
/// a closed standard input as the error it is rather than as an empty input.
fn stdin_file() -> Result<File> {
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(stdin_error)
}

pub(super) fn push<E: Engine>(engine: &E, name: &str, args: PushArgs) -> Outcome {
    let now = clock::now_ms();
    // `None` inside: past the end of the calendar.
    let due = match (args.delay, args.at) {
        (Some(delay), _) => Some(clock::deadline(now, delay)),
        (None, Some(at)) => Some(Some(clock::ms_of(at)).filter(|&ms| ms <= LATEST_MS)),
        (None, None) => None,
    };
    if due == Some(None) {
        return Err(Failure::Usage(format!(
            "push: the message would be due after {}: nothing was pushed",
            timefmt::rfc3339(clock::system_time(LATEST_MS))
        )));
    }
    let opts = PushOptions {
        priority: args.priority,
        due: due.flatten(),
        // A time to live past the end of the calendar is no limit at all.
        expires: args.ttl.and_then(|ttl| clock::deadline(now, ttl)),
    };
    if args.key.is_some() && args.messages.len() > 1 {
        return Err(Failure::Usage(format!(
            "push: --key names one message, and {} were given: nothing was pushed",
            args.messages.len()
        )));
    }
    let queue = engine.create(name)?;
    let published = if let Some(key) = args.key {
        // One message, from the argument or all of standard input.
        let mut batch = queue.stage(false)?;
        let meta = Meta {
            opts,
            key: Some(key.clone()),
        };
        match args.messages.first() {
            Some(message) => {
                batch.add_with(meta, |sink| sink.write_all(message.as_encoded_bytes()))?
            }
            None => {
                let mut input = stdin_file()?;
                batch.add_with(meta, |sink| copy_all(&mut input, sink))?;
            }
        }
        let published = batch.publish(opts)?;
        if let Some(dup) = published.duplicates.first() {
            eprintln!(
                "spool: push to {name}: message {} holds the key {key}: nothing was pushed",
                dup.id
            );
        }
        published
    } else if !args.messages.is_empty() {
        let mut batch = queue.stage(args.messages.len() > 1)?;
        for message in &args.messages {
            batch.add(|sink| sink.write_all(message.as_encoded_bytes()))?;
        }
        batch.publish(opts)?
    } else if args.lines || args.null {
        let delimiter = if args.null { b'\0' } else { b'\n' };
        let mut input = BufReader::with_capacity(1 << 16, stdin_file()?);
        let mut batch = queue.stage(true)?;
        while !fill(&mut input)?.is_empty() {
            batch.add(|sink| copy_record(&mut input, sink, delimiter))?;
        }
        batch.publish(opts)?
    } else {
        let mut batch = queue.stage(false)?;
        let mut input = stdin_file()?;
        batch.add(|sink| copy_all(&mut input, sink))?;
        batch.publish(opts)?
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
        // A duplicate prints the id of the message that holds its key.
        let held = published.duplicates.iter().map(|d| d.id);
        for id in published.ids().chain(held) {
            writeln!(out, "{id}").map_err(pushed)?;
        }
        out.flush().map_err(pushed)?;
    }
    Ok(ExitStatus::Success)
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

/// Copies one record (up to `delimiter`, which is consumed, or the end) into `sink`.
fn copy_record<R: BufRead>(input: &mut R, sink: &mut Sink<'_>, delimiter: u8) -> Result<()> {
    loop {
        let buf = fill(input)?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == delimiter) {
            Some(at) => {
                sink.write_all(&buf[..at])?;
                input.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                sink.write_all(buf)?;
                input.consume(n);
            }
        }
    }
}

/// Copies all of `input` into `sink` in constant memory.
fn copy_all(input: &mut impl Read, sink: &mut Sink<'_>) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stdin_error(e)),
        };
        sink.write_all(&buf[..n])?;
    }
}
