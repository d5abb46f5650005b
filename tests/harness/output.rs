//! What a command did, and the assertions on it: exit 0 with an empty standard error,
//! exit 1 with no output ("nothing to return"), exit 2 with exactly one line starting
//! "spool: ". The fault tests judge outcomes without panicking, through the `check_`
//! forms, which return what went wrong.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// What a command produced.
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code, -1 when killed by a signal.
    pub code: i32,
    /// The exit status.
    pub status: ExitStatus,
    /// Killed after its time limit (only for a command that [may hang](super::Cmd::may_hang)).
    pub timed_out: bool,
    /// Standard output, exactly (empty when it went elsewhere).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.stdout.len() > 2000 {
            format!("<{} bytes>", self.stdout.len())
        } else {
            format!("{:?}", String::from_utf8_lossy(&self.stdout))
        };
        write!(
            f,
            "command: {}\nstatus:  {}{}\nstdout:  {shown}\nstderr:  {:?}",
            self.command,
            self.status,
            if self.timed_out { " (timed out)" } else { "" },
            self.stderr
        )
    }
}

impl Output {
    /// Standard output as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Standard output as text, invalid UTF-8 replaced.
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// The signal that killed it, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Whether the process was killed by SIGKILL (directly or through strace, which
    /// re-raises the signal that killed its tracee, or exits 128+9).
    pub fn killed(&self) -> bool {
        self.signal() == Some(9) || self.code == 137
    }

    /// Exit 0 with an empty standard error, or a description of what happened.
    pub fn check_success(&self) -> Result<&Output, String> {
        if self.code == 0 && self.stderr.is_empty() {
            Ok(self)
        } else {
            Err(format!("expected exit 0 and an empty stderr:\n{self:?}"))
        }
    }

    /// Exit 2 with exactly one "spool: " line on standard error, or a description.
    pub fn check_error(&self) -> Result<&Output, String> {
        if self.code == 2 && is_one_spool_line(&self.stderr) {
            Ok(self)
        } else {
            Err(format!(
                "expected exit 2 and exactly one stderr line starting \"spool: \":\n{self:?}"
            ))
        }
    }

    /// Asserts exit 0 and nothing on standard error.
    #[track_caller]
    pub fn success(&self) -> &Output {
        self.check_success().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts exit 1 ("nothing to return") with no output at all.
    #[track_caller]
    pub fn nothing(&self) -> &Output {
        assert!(
            self.code == 1 && self.stdout.is_empty() && self.stderr.is_empty(),
            "expected exit 1 and no output:\n{self:?}"
        );
        self
    }

    /// Asserts exit status `code`, `stdout` on standard output, and on standard error the
    /// one line that says the queue `queue` does not exist.
    #[track_caller]
    pub fn says_missing(&self, queue: &str, code: i32, stdout: &str) -> &Output {
        assert!(
            self.code == code && self.stdout == stdout.as_bytes() && self.stderr == missing(queue),
            "expected exit {code}, {stdout:?} and {:?} on stderr:\n{self:?}",
            missing(queue)
        );
        self
    }

    /// Asserts exit 2 with exactly one line on standard error, starting "spool: ".
    #[track_caller]
    pub fn error(&self) -> &Output {
        self.check_error().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts exit status `code` and an empty standard error.
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Output {
        assert!(
            self.code == code && self.stderr.is_empty(),
            "expected exit {code} and an empty stderr:\n{self:?}"
        );
        self
    }

    /// Asserts exit status `code` and exactly `stderr` on standard error, where each RFC
    /// 3339 time is written `<time>` (see [`hide_times`]).
    #[track_caller]
    pub fn exits_saying(&self, code: i32, stderr: &str) -> &Output {
        assert!(
            self.code == code && hide_times(&self.stderr) == stderr,
            "expected exit {code} and stderr {stderr:?} (times as <time>):\n{self:?}"
        );
        self
    }

    /// Asserts that the process was killed by `signal` (it has no exit code: a shell
    /// reports 128 + the signal's number) and wrote exactly `stderr` on standard error,
    /// where each RFC 3339 time is written `<time>` (see [`hide_times`]).
    #[track_caller]
    pub fn killed_by_saying(&self, signal: rustix::process::Signal, stderr: &str) -> &Output {
        assert!(
            self.signal() == Some(signal.as_raw()) && hide_times(&self.stderr) == stderr,
            "expected death by {signal:?} and stderr {stderr:?} (times as <time>):\n{self:?}"
        );
        self
    }

    /// Asserts that the process was killed by `signal`, with an empty standard error.
    #[track_caller]
    pub fn killed_by(&self, signal: rustix::process::Signal) -> &Output {
        self.killed_by_saying(signal, "")
    }

    /// The RFC 3339 times on standard error, in unix seconds, in order.
    pub fn stderr_times(&self) -> Vec<i64> {
        let b = self.stderr.as_bytes();
        (0..b.len().saturating_sub(TIME_SHAPE.len() - 1))
            .filter(|&i| is_time_at(b, i))
            .filter_map(|i| super::parse_rfc3339(&self.stderr[i..i + TIME_SHAPE.len()]))
            .collect()
    }

    /// Asserts that standard error contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Output {
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} on stderr:\n{self:?}"
        );
        self
    }

    /// Asserts that standard output is exactly `expected`.
    #[track_caller]
    pub fn stdout_is(&self, expected: impl AsRef<[u8]>) -> &Output {
        let expected = expected.as_ref();
        assert!(
            self.stdout == expected,
            "expected stdout {:?}:\n{self:?}",
            String::from_utf8_lossy(expected)
        );
        self
    }

    /// The token printed by a successful claim: one line, `ID.HEX`.
    #[track_caller]
    pub fn token(&self) -> String {
        let out = self;
        let text = out.text();
        let token = text
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("the token ends with a newline:\n{out:?}"));
        assert!(!token.contains('\n'), "one line:\n{out:?}");
        let (id, hex) = token
            .split_once('.')
            .unwrap_or_else(|| panic!("token is ID.HEX:\n{out:?}"));
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'),
            "token id is a decimal number:\n{out:?}"
        );
        assert!(
            !hex.is_empty()
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "token ends in lowercase hex:\n{out:?}"
        );
        token.to_string()
    }

    /// The ids printed by `--print-id`, one per line.
    #[track_caller]
    pub fn ids(&self) -> Vec<u64> {
        parse_ids(&self.stdout)
    }

    /// Checks that nothing crashed: no signal (unless `killed_ok`), no time out, no panic
    /// message and only "spool: " lines on standard error.
    pub fn no_crash(&self, killed_ok: bool) -> Result<(), String> {
        if self.timed_out {
            return Err(format!("hung (killed after the time limit):\n{self:?}"));
        }
        if self.signal().is_some() && !(killed_ok && self.killed()) {
            return Err(format!("died of a signal:\n{self:?}"));
        }
        if self.code == 101 || self.stderr.contains("internal error") {
            return Err(format!("internal error:\n{self:?}"));
        }
        if self.stderr.contains("panicked") {
            return Err(format!("panicked:\n{self:?}"));
        }
        if let Some(bad) = self.stderr.lines().find(|l| !l.starts_with("spool: ")) {
            return Err(format!("a stderr line not from spool: {bad:?}\n{self:?}"));
        }
        Ok(())
    }
}

/// The shape of an RFC 3339 UTC time to the second, `d` a digit: `2026-12-02T01:10:00Z`.
const TIME_SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:ddZ";

/// Whether an RFC 3339 UTC time to the second starts at `b[i]`.
fn is_time_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + TIME_SHAPE.len()
        && TIME_SHAPE.iter().zip(&b[i..]).all(|(&p, &c)| match p {
            b'd' => c.is_ascii_digit(),
            p => c == p,
        })
}

/// `text` with each RFC 3339 UTC time to the second replaced by `<time>`, for comparing
/// messages that name the time something happens.
pub fn hide_times(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if is_time_at(b, i) {
            out.push_str("<time>");
            i += TIME_SHAPE.len();
        } else {
            let c = text[i..].chars().next().expect("within the text");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// What a command that finds no queue `queue` (and waits for none) says on standard
/// error.
pub fn missing(queue: &str) -> String {
    format!("spool: queue {queue} does not exist (see spool queues)\n")
}

/// Whether `stderr` is exactly one newline-terminated line starting with "spool: ".
pub fn is_one_spool_line(stderr: &str) -> bool {
    stderr.starts_with("spool: ")
        && stderr.ends_with('\n')
        && stderr.matches('\n').count() == 1
        && stderr.len() > "spool: \n".len()
}

/// Parses `--print-id` output: one decimal id per line.
#[track_caller]
pub fn parse_ids(stdout: &[u8]) -> Vec<u64> {
    let text = std::str::from_utf8(stdout).expect("ids are UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "ids end with a newline: {text:?}"
    );
    text.lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not an id: {l:?}")))
        .collect()
}

/// Parses output with one JSON object per line.
#[track_caller]
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(stdout).expect("JSON is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "JSON lines end with a newline: {text:?}"
    );
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}"));
            assert!(v.is_object(), "not a JSON object: {l}");
            v
        })
        .collect()
}

#[test]
fn harness_hides_times() {
    assert_eq!(
        hide_times("at 2026-12-02T01:10:00Z; é 1970-01-01T00:00:00Z"),
        "at <time>; é <time>"
    );
    assert_eq!(hide_times("2026-12-02T01:10:00"), "2026-12-02T01:10:00");
}

#[test]
fn harness_recognises_one_spool_line() {
    assert!(is_one_spool_line("spool: no\n"));
    assert!(!is_one_spool_line("spool: no"));
    assert!(!is_one_spool_line("spool: a\nspool: b\n"));
    assert!(!is_one_spool_line("error: no\n"));
    assert!(!is_one_spool_line(""));
}
