//! `spool run --joblog FILE`: a line for each command that finished, in GNU parallel's
//! joblog format, so that the tools that read parallel's joblogs read spool's.
//!
//! The header `Seq Host Starttime JobRuntime Send Receive Exitval Signal Command` (tab
//! separated) is written only into an empty file; every line is appended (`O_APPEND`) in
//! one write, so runs sharing a joblog never mix their lines. The columns are parallel's:
//! Seq is the message id; Host is `:` (this machine); Starttime is unix seconds with
//! three decimals; JobRuntime seconds, with three decimals, right-aligned in ten
//! characters; Send the bytes of the payload given on standard input; Receive the bytes
//! the command wrote to its standard output (as parallel counts for `--pipe`); Exitval
//! the exit status (0 when a signal killed it); Signal the signal's number (0 for none);
//! Command the command's words joined by spaces, with a newline written as a NUL byte,
//! as parallel writes it, so that each command stays on one line.
//!
//! A joblog that cannot be opened is an error before anything runs. When a line cannot be
//! written later, the joblog ends there (with the start of that line, if the write failed
//! half way): the error is said once, run goes on (the messages matter more than their
//! log) and exits with status 2.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use crate::store::Error;

/// The first line of a joblog, as parallel writes it.
pub(super) const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// One finished command, as the joblog records it.
pub(super) struct Entry {
    /// The message id.
    pub(super) seq: u64,
    pub(super) start: SystemTime,
    pub(super) runtime: Duration,
    /// Bytes of payload given on standard input.
    pub(super) send: u64,
    /// Bytes the command wrote to its standard output.
    pub(super) receive: u64,
    pub(super) status: ExitStatus,
}

/// An open joblog.
pub(super) struct Joblog {
    file: File,
    path: PathBuf,
    /// The Command column, the same on every line.
    command: Vec<u8>,
    /// A write failed: no more lines are written.
    ended: bool,
}

impl Joblog {
    /// Opens (creating) the joblog at `path` for appending, and writes the header when the
    /// file is empty. `command` is the command that run runs.
    pub(super) fn open(path: &Path, command: &[OsString]) -> Result<Joblog, Error> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io("open joblog", path, e))?;
        // Two runs starting on the same new joblog must not both write the header. A file
        // that cannot be locked (some network filesystems) is written unlocked.
        let locked = flock(&file, FlockOperation::LockExclusive).is_ok();
        let empty = file
            .metadata()
            .map_err(|e| Error::io("open joblog", path, e))?
            .len()
            == 0;
        if empty {
            (&file)
                .write_all(HEADER.as_bytes())
                .map_err(|e| Error::io("write joblog", path, e))?;
        }
        if locked {
            let _ = flock(&file, FlockOperation::Unlock); // closing the file unlocks it too
        }
        Ok(Joblog {
            file,
            path: path.to_path_buf(),
            command: command_column(command),
            ended: false,
        })
    }

    /// Appends the line of `entry`. Returns the error the first time a write fails; from
    /// then on, nothing more is written.
    pub(super) fn record(&mut self, entry: &Entry) -> Option<Error> {
        if self.ended {
            return None;
        }
        let line = format_line(entry, &self.command);
        match self.file.write_all(&line) {
            Ok(()) => None,
            Err(e) => {
                self.ended = true;
                Some(
                    Error::io("write joblog", &self.path, e).with_note("no more lines are written"),
                )
            }
        }
    }

    /// Closes the joblog, syncing it first when it is a regular file, so that a write
    /// error the filesystem deferred (NFS) is reported rather than lost in `close`.
    pub(super) fn close(self) -> Result<(), Error> {
        if self.ended {
            return Ok(());
        }
        crate::cmd::output::sync_output(&self.file)
            .map_err(|e| Error::io("sync joblog", &self.path, e))
    }
}

/// The Command column: the words joined by spaces, each newline a NUL (as parallel).
fn command_column(words: &[OsString]) -> Vec<u8> {
    let mut column = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            column.push(b' ');
        }
        column.extend(
            word.as_bytes()
                .iter()
                .map(|&b| if b == b'\n' { 0 } else { b }),
        );
    }
    column
}

/// Seconds with three decimals, rounded to the millisecond: `1796173666.225`.
fn seconds(d: Duration) -> String {
    let ms = (d.as_nanos() + 500_000) / 1_000_000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// One line of the joblog, newline included.
fn format_line(entry: &Entry, command: &[u8]) -> Vec<u8> {
    let start = entry.start.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (exitval, signal) = match (entry.status.code(), entry.status.signal()) {
        (Some(code), _) => (code, 0),
        (None, Some(signal)) => (0, signal),
        (None, None) => (0, 0),
    };
    let mut line = format!(
        "{}\t:\t{}\t{:>10}\t{}\t{}\t{exitval}\t{signal}\t",
        entry.seq,
        seconds(start),
        seconds(entry.runtime),
        entry.send,
        entry.receive,
    )
    .into_bytes();
    line.extend_from_slice(command);
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: ExitStatus) -> Entry {
        Entry {
            seq: 17,
            start: UNIX_EPOCH + Duration::from_nanos(1_796_173_666_225_400_000),
            runtime: Duration::from_micros(12_345),
            send: 4,
            receive: 9,
            status,
        }
    }

    #[test]
    fn lines_have_parallels_columns() {
        let command = command_column(&["sh".into(), "-c".into(), "exit 3".into()]);
        let line = format_line(&entry(ExitStatus::from_raw(3 << 8)), &command);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "17\t:\t1796173666.225\t     0.012\t4\t9\t3\t0\tsh -c exit 3\n"
        );
        // Killed by a signal: Exitval 0, and the signal's number.
        let line = format_line(&entry(ExitStatus::from_raw(9)), b"x");
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "17\t:\t1796173666.225\t     0.012\t4\t9\t0\t9\tx\n"
        );
        assert_eq!(HEADER.split('\t').count(), 9);
    }

    #[test]
    fn times_round_to_the_millisecond() {
        assert_eq!(seconds(Duration::ZERO), "0.000");
        assert_eq!(seconds(Duration::from_micros(1_999_500)), "2.000");
        assert_eq!(seconds(Duration::from_micros(1_999_499)), "1.999");
        assert_eq!(seconds(Duration::from_secs(123_456)), "123456.000");
        let long = format_line(
            &Entry {
                runtime: Duration::from_secs(1_234_567),
                ..entry(ExitStatus::from_raw(0))
            },
            b"",
        );
        assert!(String::from_utf8(long).unwrap().contains("\t1234567.000\t"));
    }

    #[test]
    fn the_command_stays_on_one_line() {
        let words: Vec<OsString> = vec!["sh".into(), "-c".into(), "a\nb\tc".into()];
        assert_eq!(command_column(&words), b"sh -c a\0b\tc");
        use std::os::unix::ffi::OsStringExt;
        let bytes = OsString::from_vec(vec![0xff, b'x']);
        assert_eq!(command_column(&[bytes]), [0xff, b'x']);
    }
}
