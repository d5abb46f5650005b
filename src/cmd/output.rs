//! Writing to standard output, shared by the commands.
//!
//! Every command writes through a file of its own on a dup of descriptor 1 (never through
//! `io::stdout()`): a write to a closed standard output is then the error it is, and
//! nothing stays in a buffer to be written again at exit. A message written out is only
//! removed from its queue once the output holds it (synced when it is a regular file).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

use super::failure::Failure;
use crate::store::{Error, Payload, describe, read_full};

/// Standard output as a file of its own.
pub(super) fn stdout_file() -> Result<File, Failure> {
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Failure::Store(Error::io("open", "standard output", e)))
}

/// Says on standard error that the queue `name` does not exist, for a command that then
/// does nothing: a mistyped name must not pass for an empty queue. A standard error that
/// cannot be written changes nothing.
pub(super) fn say_missing(name: &str) {
    let line = format!("spool: queue {name} does not exist (see spool queues)\n");
    let _ = io::stderr().write_all(line.as_bytes());
}

/// A failed write of the command's own output (not of a message).
pub(super) fn stdout_error(e: io::Error) -> Failure {
    Failure::Store(Error::io("write", "standard output", e))
}

/// Writes `text` to standard output.
pub(super) fn print(text: &[u8]) -> Result<(), Failure> {
    stdout_file()?.write_all(text).map_err(stdout_error)
}

/// Writes `text` to standard output, for a caller that undoes its work when it fails.
pub(super) fn try_print(text: &[u8]) -> io::Result<()> {
    let mut out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    out.write_all(text)
}

/// Writes one line to standard output. Straight to the descriptor: a line that failed
/// must not stay in std's buffer, to be written again at exit.
pub(super) fn println_checked(line: &str) -> Result<(), Failure> {
    print(format!("{line}\n").as_bytes())
}

/// The largest message that leaves in one write(2) with its frame byte. Appends to one
/// file (`>>`) from any number of consumers then never mix their records; a pipe keeps
/// writes whole only up to PIPE_BUF (4096 bytes). Bigger messages are streamed.
pub(super) const WHOLE_RECORD: usize = 64 * 1024;

/// Writes messages to an output, each with its frame byte (a newline, a NUL, or none).
pub(super) struct Records {
    frame: Option<u8>,
    /// Room for a message of up to [`WHOLE_RECORD`] bytes, a byte more to notice a bigger
    /// one, and the frame byte; allocated at the first message.
    buf: Vec<u8>,
}

impl Records {
    pub(super) fn new(frame: Option<u8>) -> Records {
        Records {
            frame,
            buf: Vec::new(),
        }
    }

    /// Writes one message and its frame byte to `out`: in one write(2) when the message
    /// is at most [`WHOLE_RECORD`] bytes (more only if the kernel writes less), streamed
    /// otherwise.
    pub(super) fn write(&mut self, out: &mut File, message: &mut Payload) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0; WHOLE_RECORD + 2];
        }
        let n = read_full(message, &mut self.buf[..=WHOLE_RECORD])?;
        if n <= WHOLE_RECORD {
            let mut end = n;
            if let Some(b) = self.frame {
                self.buf[end] = b;
                end += 1;
            }
            return out.write_all(&self.buf[..end]);
        }
        out.write_all(&self.buf[..n])?;
        message.copy_to(out)?;
        if let Some(b) = self.frame {
            out.write_all(&[b])?;
        }
        Ok(())
    }
}

/// Writes one message and its frame byte to `out` (see [`Records::write`]).
pub(super) fn deliver(out: &mut File, message: &mut Payload, frame: Option<u8>) -> io::Result<()> {
    Records::new(frame).write(out, message)
}

/// Makes what was written to standard output durable when it is a regular file, so that
/// `spool pop > job` never loses a message that a power cut would take from `job`.
pub(super) fn sync_output(out: &File) -> io::Result<()> {
    let meta = out.metadata()?;
    if meta.file_type().is_file() {
        out.sync_data()
    } else {
        Ok(())
    }
}

/// A failed delivery of messages, naming those that stay in the queue (`ids`, maybe
/// none).
pub(super) fn delivery_failure(e: &io::Error, ids: &[u64]) -> Failure {
    let kept = match ids {
        [] => String::new(),
        [id] => format!(" (message {id} stays in the queue)"),
        [first, .., last] => format!(" (messages {first} to {last} stay in the queue)"),
    };
    Failure::Delivery(format!("write standard output: {}{kept}", describe(e)))
}
