//! `spool push`: messages from the arguments, or from standard input (whole, or one per
//! line or NUL-terminated record), published together.
//!
//! Input is copied into the queue in constant memory. A failure to read standard input
//! publishes nothing: the staged messages are published only once all were read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::time::SystemTime;

use super::failure::{Failure, Outcome};
use super::output::{ms_time, stdout_file};
use crate::cli::PushArgs;
use crate::exit::ExitStatus;
use crate::store::{self, Error, PushOptions, Result, Spool, now_ms};
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

pub(super) fn push(spool: &Spool, name: &str, args: PushArgs) -> Outcome {
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
