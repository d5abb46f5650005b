//! strace as a fault injector: a system call that fails (EIO, ENOSPC, EDQUOT), a SIGKILL
//! at the Nth call of one system call, or a pause after it, and reading the trace
//! afterwards (did the fault hit? is the process waiting for a lock of its own?).

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{Cmd, tool_works};

/// Whether strace is installed and allowed to trace here.
pub fn strace_usable() -> Result<(), String> {
    tool_works("strace", &["-V"])?;
    tool_works("strace", &["-f", "-qq", "-o", "/dev/null", "true"])
        .map_err(|e| format!("strace cannot trace here: {e}"))
}

impl Cmd {
    /// Runs spool under strace, which kills it at the `n`th call of `syscall`.
    pub fn kill_at(self, syscall: &str, n: u32) -> Cmd {
        self.inject(format!("inject={syscall}:signal=KILL:when={n}"))
    }

    /// Runs spool under strace, which holds it for `seconds` when its `n`th call of
    /// `syscall` returns.
    pub fn pause_after(self, syscall: &str, n: u32, seconds: u32) -> Cmd {
        self.inject(format!("inject={syscall}:delay_exit={seconds}s:when={n}"))
    }

    /// Like [`pause_after`](Self::pause_after), tracing `syscall` into the file `trace`:
    /// the held call's line, marked `(DELAYED)`, is written as the hold begins, so the
    /// test knows when to act.
    pub fn pause_after_traced(self, syscall: &str, n: u32, seconds: u32, trace: &Path) -> Cmd {
        self.wrap([
            "strace".to_string(),
            "-f".into(),
            "-qq".into(),
            "-o".into(),
            trace.to_string_lossy().into_owned(),
            "-e".into(),
            format!("trace={syscall}"),
            "-e".into(),
            format!("inject={syscall}:delay_exit={seconds}s:when={n}"),
        ])
    }

    /// Runs spool under strace, which holds it for `seconds` before its `n`th call of
    /// `syscall` is made.
    pub fn pause_before(self, syscall: &str, n: u32, seconds: u32) -> Cmd {
        self.inject(format!("inject={syscall}:delay_enter={seconds}s:when={n}"))
    }

    fn inject(self, spec: String) -> Cmd {
        self.wrap(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-e"]
                .map(OsString::from)
                .into_iter()
                .chain([spec.into()]),
        )
    }
}

/// How an injected fault hits a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with this errno (EIO, ENOSPC, EDQUOT).
    Error(&'static str),
    /// The process is killed by SIGKILL at the call.
    Kill,
}

impl Fault {
    /// The strace `inject=` value after the syscall name.
    fn spec(self) -> String {
        match self {
            Fault::Error(e) => format!("error={e}"),
            Fault::Kill => "signal=KILL".into(),
        }
    }

    /// What `strerror` says for the errno.
    pub fn strerror(self) -> &'static str {
        match self {
            Fault::Error("EIO") => "Input/output error",
            Fault::Error("ENOSPC") => "No space left on device",
            Fault::Error("EDQUOT") => "Disk quota exceeded",
            Fault::Error(e) => panic!("unknown errno {e}"),
            Fault::Kill => "",
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Error(e) => e,
            Fault::Kill => "KILL",
        }
    }
}

/// Wraps `cmd` in `strace -qq -o TRACE -e trace=SYSCALL -e inject=SYSCALL:...:when=N`;
/// after it ran, the trace says whether the fault hit (see [`fault_hit`]). Without `-f`:
/// the faults go to spool's own calls, not to those of the commands `spool run` starts
/// (spool has no other threads or processes).
pub fn under_strace(cmd: Cmd, syscall: &str, fault: Fault, n: u32, trace: &Path) -> Cmd {
    // A close that fails by injection is not performed, unlike a real one (which always
    // releases the descriptor): its lock stays held. Trace flock too to see the process
    // wait for that lock (see [`waits_for_own_lock`]), and give up sooner.
    let traced = if syscall == "close" {
        "close,flock".to_string()
    } else {
        syscall.to_string()
    };
    let limit = if syscall == "close" { 4 } else { 20 };
    cmd.limit(Duration::from_secs(limit)).may_hang().wrap([
        "strace".to_string(),
        "-qq".into(),
        "-o".into(),
        trace.to_string_lossy().into_owned(),
        "-e".into(),
        format!("trace={traced}"),
        "-e".into(),
        format!("inject={syscall}:{}:when={n}", fault.spec()),
    ])
}

/// Whether a run under [`under_strace`] that hung was waiting for a lock of its own: a
/// `flock(..., LOCK_EX)` that never returned after an injected `close` failure, which
/// left the descriptor holding that lock open. A real `close` releases the descriptor
/// even when it reports an error, so this is the injection's doing, not spool's: such a
/// run counts as a crash at that point (the test kills it), and is judged as one.
pub fn waits_for_own_lock(trace: &Path) -> bool {
    let text = fs::read_to_string(trace).unwrap_or_default();
    text.contains("(INJECTED)")
        && text
            .lines()
            .rev()
            .find(|l| l.contains("flock(") || l.contains("close("))
            .is_some_and(|l| l.contains("flock(") && l.contains("LOCK_EX") && !l.contains("= 0"))
}

/// Whether the fault of a run under [`under_strace`] hit a system call.
pub fn fault_hit(trace: &Path) -> bool {
    let text = fs::read_to_string(trace).unwrap_or_default();
    text.contains("(INJECTED)") || text.contains("killed by SIGKILL")
}

/// How many calls of each system call the C library's start-up (and the dynamic loader,
/// in a dynamically linked build) makes before spool's own code runs: strace counts them
/// too, and failing them tests the loader, not spool. spool's code starts with an `fcntl`
/// (checking the standard descriptors), then `rt_sigaction`; with Rust's runtime start-up
/// (no longer used) it was a `poll`. Counted once, by tracing `spool --version`.
pub fn loader_calls(syscall: &str) -> u32 {
    static COUNTS: std::sync::OnceLock<Vec<(String, u32)>> = std::sync::OnceLock::new();
    let counts = COUNTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = dir.path().join("trace");
        let out = Cmd::bare()
            .arg("--version")
            .wrap([
                "strace",
                "-f",
                "-qq",
                "-o",
                trace.to_str().expect("UTF-8 path"),
            ])
            .run();
        out.check_success().expect("spool --version under strace");
        let text = fs::read_to_string(&trace).expect("trace");
        let mut counts: Vec<(String, u32)> = Vec::new();
        for line in text.lines() {
            let Some(call) = line.split_whitespace().nth(1) else {
                continue;
            };
            let Some(name) = call.split('(').next() else {
                continue;
            };
            if matches!(name, "fcntl" | "poll" | "rt_sigaction") {
                break;
            }
            match counts.iter_mut().find(|(n, _)| n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name.to_string(), 1)),
            }
        }
        counts
    });
    counts
        .iter()
        .find(|(n, _)| n == syscall)
        .map_or(0, |(_, c)| *c)
}
