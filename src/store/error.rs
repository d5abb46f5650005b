//! The one error type of the storage layer.
//!
//! Every error names the step that failed and the path it failed on, so the command line
//! can print `spool: <step> <path>: <cause>` and nothing else. A note says what the failure
//! means for the queue when that is not obvious ("the message may have been published").

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, where, and what it means for the queue.
#[derive(Debug)]
pub struct Error {
    what: String,
    path: Option<PathBuf>,
    cause: Cause,
    note: Option<String>,
    /// The store refuses this input for good (a message over its size limit): sending it
    /// again fails again.
    refusal: bool,
}

#[derive(Debug)]
enum Cause {
    Io(io::Error),
    Message(String),
}

/// The result type of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure of step `what` on `path`.
    pub fn io(what: impl Into<String>, path: impl AsRef<Path>, err: impl Into<io::Error>) -> Self {
        Error {
            what: what.into(),
            path: Some(path.as_ref().to_path_buf()),
            cause: Cause::Io(err.into()),
            note: None,
            refusal: false,
        }
    }

    /// A failure that is not an I/O error: `what` on `path` because of `message`.
    pub fn invalid(
        what: impl Into<String>,
        path: Option<&Path>,
        message: impl Into<String>,
    ) -> Self {
        Error {
            what: what.into(),
            path: path.map(Path::to_path_buf),
            cause: Cause::Message(message.into()),
            note: None,
            refusal: false,
        }
    }

    /// Adds what the failure means for the queue, printed in parentheses after the cause.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Marks the error as a refusal of the input for good (see [`Self::is_refusal`]).
    pub fn refusal(mut self) -> Self {
        self.refusal = true;
        self
    }

    /// Whether the store refused the input for good: the same input fails again.
    pub fn is_refusal(&self) -> bool {
        self.refusal
    }

    /// Whether the cause is a broken pipe (the reader went away).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(&self.cause, Cause::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The underlying OS error number, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match &self.cause {
            Cause::Io(e) => e.raw_os_error(),
            Cause::Message(_) => None,
        }
    }
}

/// Formats an I/O error the way `strerror` does, without Rust's "(os error N)" suffix.
pub fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if err.raw_os_error().is_some() => text[..at].to_string(),
        _ => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(path) = &self.path {
            write!(f, " {}", path.display())?;
        }
        match &self.cause {
            Cause::Io(e) => write!(f, ": {}", describe(e))?,
            Cause::Message(m) => write!(f, ": {m}")?,
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Io(e) => Some(e),
            Cause::Message(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_step_path_cause_and_note() {
        let err = Error::io("fsync", "/q/tmp/x", io::Error::from_raw_os_error(28))
            .with_note("nothing was pushed");
        assert_eq!(
            err.to_string(),
            "fsync /q/tmp/x: No space left on device (nothing was pushed)"
        );
    }

    #[test]
    fn display_without_path() {
        let err = Error::invalid("queue name \"a/b\"", None, "not allowed");
        assert_eq!(err.to_string(), "queue name \"a/b\": not allowed");
    }
}
