//! The exit statuses of spool, and their one conversion to the process's exit code.
//!
//! "Nothing to return" is an outcome, not an error: it has a status of its own (1), and
//! errors keep 2, so that a script can tell an empty queue from a broken one. A `run`
//! stopped by SIGINT or SIGTERM ends as killed by that signal, once its commands finished
//! and its joblog was closed (see [`crate::app::main`]): the shell reports 130 or 143
//! (128 + the signal's number), a shell script stops at a ^C as it does when any command
//! is interrupted, and a service manager sees a clean stop. Where the signal cannot kill
//! spool (the first process of a PID namespace ignores the default action of the signals
//! it sends itself), the exit code is 128 + the signal's number.

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
    /// `relay` could not reach the other place, or it failed: try again later (75,
    /// `EX_TEMPFAIL` of sysexits.h, which mail transfer agents answer the same way).
    Unreachable,
    /// `run` was stopped by SIGINT before it drained its queue: spool ends killed by
    /// SIGINT.
    Interrupted,
    /// `run` was stopped by SIGTERM before it drained its queue: spool ends killed by
    /// SIGTERM.
    Terminated,
}

impl ExitStatus {
    /// The signal that the process ends killed by, for a run a signal stopped.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Interrupted => Some(signal_hook::consts::SIGINT),
            ExitStatus::Terminated => Some(signal_hook::consts::SIGTERM),
            _ => None,
        }
    }
}

impl From<ExitStatus> for u8 {
    /// The exit code; for a signal, the code a shell reports for a process it killed,
    /// used when the signal could not kill spool.
    fn from(status: ExitStatus) -> u8 {
        match status {
            ExitStatus::Success => 0,
            ExitStatus::Empty => 1,
            ExitStatus::Error => 2,
            ExitStatus::SomeFailed => 3,
            ExitStatus::Unreachable => 75,
            ExitStatus::Interrupted => 130,
            ExitStatus::Terminated => 143,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_run_ends_by_its_signal_or_128_plus_its_number() {
        for (status, signal) in [(ExitStatus::Interrupted, 2), (ExitStatus::Terminated, 15)] {
            assert_eq!(status.signal(), Some(signal));
            assert_eq!(i32::from(u8::from(status)), 128 + signal);
        }
        for status in [
            ExitStatus::Success,
            ExitStatus::Empty,
            ExitStatus::Error,
            ExitStatus::SomeFailed,
        ] {
            assert_eq!(status.signal(), None);
        }
    }
}
