//! Why a command failed: the error half of a command's [`Outcome`].
//!
//! Each failure is reported once, by the entry, as one `spool: ` line on standard error,
//! and ends in exit status 2; the store's errors already carry their operation and path.

use crate::exit::ExitStatus;
use crate::store::Error;

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

/// What a command ends with: an exit status, or why it failed.
pub(crate) type Outcome = Result<ExitStatus, Failure>;
