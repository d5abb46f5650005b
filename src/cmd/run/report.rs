//! The line `spool run` writes on standard error for each failed attempt, so that a cron
//! mail says which message failed, how, and what became of it:
//!
//! `spool: run: message 17 (queue jobs): attempt 2 of 5 failed: exit status 3; retry at 2026-12-02T01:10:00Z`

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::clock::system_time;
use crate::timefmt::rfc3339;

/// How a command ended, as its message is judged.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ending {
    /// It exited, or a signal killed it.
    Exited(ExitStatus),
    /// It was stopped at the end of its lease, whatever it then exited with.
    LeaseEnded,
}

impl Ending {
    /// The exit code, when the command exited by itself.
    pub(super) fn code(self) -> Option<i32> {
        match self {
            Ending::Exited(status) => status.code(),
            Ending::LeaseEnded => None,
        }
    }

    /// The word a failed message keeps as its reason: `exit-3`, `signal-9`, `lease-ended`.
    pub(super) fn reason(self) -> String {
        match self {
            Ending::LeaseEnded => "lease-ended".to_string(),
            Ending::Exited(status) => match (status.code(), status.signal()) {
                (Some(c), _) => format!("exit-{c}"),
                (None, Some(s)) => format!("signal-{s}"),
                _ => "unknown".to_string(),
            },
        }
    }

    /// How the command ended, in words: `exit status 3`, `killed by signal 9 (SIGKILL)`,
    /// `stopped at the end of its lease`.
    pub(super) fn describe(self) -> String {
        let status = match self {
            Ending::LeaseEnded => return "stopped at the end of its lease".to_string(),
            Ending::Exited(status) => status,
        };
        match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => match signal_hook::low_level::signal_name(s) {
                Some(name) => format!("killed by signal {s} ({name})"),
                None => format!("killed by signal {s}"),
            },
            _ => status.to_string(),
        }
    }
}

/// What became of a message after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// It is retried at this time (unix ms).
    RetryAt(u64),
    /// It moved to the failed state.
    Failed,
}

/// The line for a failed attempt of message `id` of `queue`, newline included.
pub(super) fn failed_attempt(
    id: u64,
    queue: &str,
    attempt: u32,
    max_attempts: u32,
    ending: Ending,
    next: Next,
) -> String {
    let next = match next {
        Next::RetryAt(ms) => format!("retry at {}", rfc3339(system_time(ms))),
        Next::Failed => "moved to failed".to_string(),
    };
    format!(
        "spool: run: message {id} (queue {queue}): attempt {attempt} of {max_attempts} failed: {}; {next}\n",
        ending.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Ending {
        Ending::Exited(ExitStatus::from_raw(code << 8))
    }

    fn killed(signal: i32) -> Ending {
        Ending::Exited(ExitStatus::from_raw(signal))
    }

    #[test]
    fn a_failed_attempt_is_one_line() {
        let due = 1_796_173_800_000; // 2026-12-02T01:10:00Z
        assert_eq!(
            failed_attempt(17, "jobs", 2, 5, exited(3), Next::RetryAt(due)),
            "spool: run: message 17 (queue jobs): attempt 2 of 5 failed: exit status 3; retry at 2026-12-02T01:10:00Z\n"
        );
        assert_eq!(
            failed_attempt(4, "default", 1, 5, exited(100), Next::Failed),
            "spool: run: message 4 (queue default): attempt 1 of 5 failed: exit status 100; moved to failed\n"
        );
        assert_eq!(
            failed_attempt(9, "q", 3, 3, Ending::LeaseEnded, Next::Failed),
            "spool: run: message 9 (queue q): attempt 3 of 3 failed: stopped at the end of its lease; moved to failed\n"
        );
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(killed(9).describe(), "killed by signal 9 (SIGKILL)");
        assert_eq!(killed(15).describe(), "killed by signal 15 (SIGTERM)");
        assert_eq!(killed(13).describe(), "killed by signal 13 (SIGPIPE)");
        assert_eq!(exited(0).describe(), "exit status 0");
    }

    #[test]
    fn reasons_are_words() {
        assert_eq!(exited(7).reason(), "exit-7");
        assert_eq!(killed(9).reason(), "signal-9");
        assert_eq!(Ending::LeaseEnded.reason(), "lease-ended");
        assert_eq!(exited(7).code(), Some(7));
        assert_eq!(killed(9).code(), None);
        assert_eq!(Ending::LeaseEnded.code(), None);
    }
}
