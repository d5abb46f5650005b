//! The exit statuses of spool, and their one conversion to the process's exit code.
//!
//! "Nothing to return" is an outcome, not an error: it has a status of its own (1), and
//! errors keep 2, so that a script can tell an empty queue from a broken one. A `run`
//! stopped by a signal exits as a shell reports a command killed by it (128 + the
//! signal's number), so that a script sees the interruption.

/// How spool ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked.
    Success,
    /// Nothing to return: pop, peek or claim found no message.
    Empty,
    /// An error, reported on standard error as one `spool: ` line.
    Error,
    /// Some of the work failed: `run` had a message fail, or `fsck` left problems
    /// unrepaired.
    SomeFailed,
    /// `run` was stopped by SIGINT before it drained its queue.
    Interrupted,
    /// `run` was stopped by SIGTERM before it drained its queue.
    Terminated,
}

impl From<ExitStatus> for u8 {
    fn from(status: ExitStatus) -> u8 {
        match status {
            ExitStatus::Success => 0,
            ExitStatus::Empty => 1,
            ExitStatus::Error => 2,
            ExitStatus::SomeFailed => 3,
            ExitStatus::Interrupted => 130,
            ExitStatus::Terminated => 143,
        }
    }
}
