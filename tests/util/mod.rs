//! The test fixture: a fresh spool root per test, and a runner for the `spool` binary.
//!
//! [`Spool::new`] makes a temporary directory and names a root inside it (`TMP/spool`)
//! without creating it, so tests can check that read-only commands create nothing. Every
//! command runs with `--dir ROOT` (unless [`Cmd::no_dir`]), with `SPOOL_QUEUE`,
//! `SPOOL_DIR` and `XDG_STATE_HOME` removed from its environment unless the test sets
//! them, and with `HOME` pointing into the temporary directory, so that a bug can never
//! touch the real home directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spool");

/// A fresh temporary directory and a spool root inside it.
pub struct Spool {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Spool {
    /// A new fixture; the root `TMP/spool` does not exist yet.
    pub fn new() -> Spool {
        let tmp = tempfile::tempdir().expect("create temporary directory");
        let root = tmp.path().join("spool");
        Spool { tmp, root }
    }

    /// The spool root passed with `--dir`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary directory that holds the root.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// A path in the temporary directory, outside the root.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The directory of queue `queue`.
    pub fn queue_dir(&self, queue: &str) -> PathBuf {
        self.root.join(queue)
    }

    /// Where message `id` of `queue` waits: `ready/<id/1000 in 17 digits>/<id in 20 digits>`.
    pub fn message_path(&self, queue: &str, id: u64) -> PathBuf {
        self.queue_dir(queue)
            .join("ready")
            .join(format!("{:017}", id / 1000))
            .join(format!("{id:020}"))
    }

    /// A command running spool against this root.
    pub fn cmd(&self) -> Cmd {
        Cmd {
            wrapper: Vec::new(),
            args: Vec::new(),
            env: vec![
                ("SPOOL_QUEUE".into(), None),
                ("SPOOL_DIR".into(), None),
                ("XDG_STATE_HOME".into(), None),
                ("HOME".into(), Some(self.outside("home").into_os_string())),
            ],
            stdin: Input::Null,
            dir: Some(self.root.clone()),
            script: None,
        }
    }

    /// A `sh -c SCRIPT` command where `spool` is the binary under test (first in `PATH`)
    /// and `$SPOOL_DIR` is the root.
    pub fn sh(&self, script: &str) -> Cmd {
        let bin_dir = Path::new(BIN).parent().expect("binary directory");
        let mut path = bin_dir.as_os_str().to_os_string();
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        let mut cmd = self.cmd().env("SPOOL_DIR", &self.root).env("PATH", path);
        cmd.dir = None;
        cmd.script = Some(script.to_string());
        cmd
    }

    /// Runs `spool --dir ROOT ARGS...` with an empty standard input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).run()
    }

    /// Runs `spool --dir ROOT ARGS...` with `stdin` as standard input.
    pub fn run_stdin(&self, args: &[&str], stdin: impl Into<Vec<u8>>) -> Output {
        self.cmd().args(args).stdin(stdin).run()
    }

    /// Pushes each of `messages` (one argument each) to the default queue.
    #[track_caller]
    pub fn push(&self, messages: &[&str]) {
        let mut args = vec!["push"];
        args.extend_from_slice(messages);
        self.run(&args).success();
    }

    /// Pushes `message` to `queue` with `--print-id` and returns the new id.
    #[track_caller]
    pub fn push_id(&self, queue: &str, message: &str) -> u64 {
        let out = self.run(&["-q", queue, "push", "--print-id", message]);
        out.success();
        let ids = parse_ids(&out.stdout);
        assert_eq!(ids.len(), 1, "one id for one message:\n{out:?}");
        ids[0]
    }

    /// Pushes `message` to the default queue with `push --print-id OPTIONS... MESSAGE` and
    /// returns its id (ids have gaps once messages were nacked, requeued or delayed).
    #[track_caller]
    pub fn push_with(&self, options: &[&str], message: &str) -> u64 {
        let mut args = vec!["push", "--print-id"];
        args.extend_from_slice(options);
        args.push(message);
        let out = self.run(&args);
        out.success();
        let ids = parse_ids(&out.stdout);
        assert_eq!(ids.len(), 1, "one id for one message:\n{out:?}");
        ids[0]
    }

    /// `spool -q QUEUE len`, parsed.
    #[track_caller]
    pub fn len(&self, queue: &str) -> u64 {
        let out = self.run(&["-q", queue, "len"]);
        out.success();
        out.text()
            .strip_suffix('\n')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("len printed {:?}", out.text()))
    }

    /// Pops from `queue` until it exits 1; returns every message popped, in order.
    #[track_caller]
    pub fn pop_all(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut popped = Vec::new();
        loop {
            let out = self.run(&["-q", queue, "pop"]);
            match out.code {
                0 => {
                    assert!(out.stderr.is_empty(), "pop wrote to stderr:\n{out:?}");
                    popped.push(out.stdout);
                }
                1 => {
                    out.nothing();
                    return popped;
                }
                _ => panic!("pop failed:\n{out:?}"),
            }
        }
    }

    /// Like [`pop_all`](Self::pop_all), as text (readable when an order assertion fails).
    #[track_caller]
    pub fn pop_all_text(&self, queue: &str) -> Vec<String> {
        self.pop_all(queue)
            .into_iter()
            .map(|m| String::from_utf8(m).expect("UTF-8 message"))
            .collect()
    }

    /// The ids of `spool -q QUEUE list --json`.
    #[track_caller]
    pub fn listed_ids(&self, queue: &str) -> Vec<u64> {
        let out = self.run(&["-q", queue, "list", "--json"]);
        out.success();
        json_lines(&out.stdout)
            .iter()
            .map(|v| v["id"].as_u64().expect("id is a number"))
            .collect()
    }

    /// `spool -q QUEUE list --json --state STATE`, parsed.
    #[track_caller]
    pub fn list_json(&self, queue: &str, state: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["-q", queue, "list", "--json", "--state", state]);
        out.success();
        json_lines(&out.stdout)
    }

    /// `(id, state)` of every message of `queue`, as `list --state all` shows them.
    #[track_caller]
    pub fn states(&self, queue: &str) -> Vec<(u64, String)> {
        self.list_json(queue, "all")
            .iter()
            .map(|v| {
                (
                    v["id"].as_u64().expect("id is a number"),
                    v["state"].as_str().expect("state is a string").to_string(),
                )
            })
            .collect()
    }

    /// The one entry of `list --state all --json` with id `id` (panics unless exactly one).
    #[track_caller]
    pub fn entry(&self, queue: &str, id: u64) -> serde_json::Value {
        let mut found: Vec<serde_json::Value> = self
            .list_json(queue, "all")
            .into_iter()
            .filter(|v| v["id"].as_u64() == Some(id))
            .collect();
        assert_eq!(found.len(), 1, "message {id} listed once: {found:?}");
        found.remove(0)
    }
}

/// Where a command's standard input comes from.
enum Input {
    Null,
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// A spool command being prepared.
pub struct Cmd {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Input,
    dir: Option<PathBuf>,
    script: Option<String>,
}

impl Cmd {
    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Cmd {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((key.into(), Some(value.as_ref().to_os_string())));
        self
    }

    /// Does not pass `--dir ROOT`: the test chooses the root some other way.
    pub fn no_dir(mut self) -> Cmd {
        self.dir = None;
        self
    }

    /// Feeds `bytes` on standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Input::Bytes(bytes.into());
        self
    }

    /// Feeds the file at `path` on standard input.
    pub fn stdin_file(mut self, path: &Path) -> Cmd {
        self.stdin = Input::File(path.to_path_buf());
        self
    }

    /// Runs spool under `sh -c 'umask MASK; exec spool ...'`.
    pub fn umask(mut self, mask: u32) -> Cmd {
        self.wrapper = vec![
            "sh".into(),
            "-c".into(),
            format!("umask {mask:03o}; exec \"$@\"").into(),
            "sh".into(),
        ];
        self
    }

    /// Runs spool as `nobody` through `setpriv` (the caller checks it is available).
    pub fn run_as_nobody(mut self) -> Cmd {
        self.wrapper = [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
        ]
        .map(OsString::from)
        .to_vec();
        self
    }

    /// Runs spool under strace, which kills it at the `n`th call of `syscall`.
    pub fn kill_at(self, syscall: &str, n: u32) -> Cmd {
        self.inject(format!("inject={syscall}:signal=KILL:when={n}"))
    }

    /// Runs spool under strace, which holds it for `seconds` when its `n`th call of
    /// `syscall` returns.
    pub fn pause_after(self, syscall: &str, n: u32, seconds: u32) -> Cmd {
        self.inject(format!("inject={syscall}:delay_exit={seconds}s:when={n}"))
    }

    fn inject(mut self, spec: String) -> Cmd {
        self.wrapper = ["strace", "-f", "-qq", "-o", "/dev/null", "-e"]
            .map(OsString::from)
            .into_iter()
            .chain([spec.into()])
            .collect();
        self
    }

    /// The command line, for messages.
    fn describe(&self) -> String {
        if let Some(script) = &self.script {
            return format!("sh -c {script:?}");
        }
        let mut words: Vec<String> = self
            .wrapper
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        words.push("spool".into());
        if let Some(dir) = &self.dir {
            words.push(format!("--dir {}", dir.display()));
        }
        words.extend(self.args.iter().map(|a| format!("{a:?}")));
        words.join(" ")
    }

    fn build(&self) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            _ if self.script.is_some() => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").args(&self.script);
                cmd
            }
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        if let Some(dir) = &self.dir {
            cmd.arg("--dir").arg(dir);
        }
        cmd.args(&self.args);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Starts the command in the background (standard input empty, output captured); the
    /// caller waits for it with [`finish`].
    pub fn spawn(self) -> (std::process::Child, String) {
        let mut cmd = self.build();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.describe()));
        (child, self.describe())
    }

    /// Runs the command, capturing standard output and standard error.
    pub fn run(self) -> Output {
        self.run_with_stdout(Stdio::piped())
    }

    /// Runs the command with standard output sent to `stdout` (then [`Output::stdout`] is
    /// empty unless `stdout` is a pipe).
    pub fn run_with_stdout(self, stdout: Stdio) -> Output {
        let mut cmd = self.build();
        cmd.stdout(stdout).stderr(Stdio::piped());
        match &self.stdin {
            Input::Null => cmd.stdin(Stdio::null()),
            Input::Bytes(_) => cmd.stdin(Stdio::piped()),
            Input::File(path) => cmd.stdin(File::open(path).expect("open stdin file")),
        };
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.describe()));
        let feeder = match &self.stdin {
            Input::Bytes(bytes) => {
                let mut pipe = child.stdin.take().expect("piped stdin");
                let bytes = bytes.clone();
                // The child may exit without reading everything: ignore EPIPE.
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                }))
            }
            _ => None,
        };
        let mut err = child.stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            err.read_to_end(&mut buf).map(|_| buf)
        });
        let mut stdout = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_end(&mut stdout).expect("read stdout");
        }
        let status = child.wait().expect("wait for spool");
        if let Some(feeder) = feeder {
            feeder.join().expect("stdin feeder");
        }
        let stderr = err_reader
            .join()
            .expect("stderr reader")
            .expect("read stderr");
        Output {
            command: self.describe(),
            code: status.code().unwrap_or(-1),
            status,
            stdout,
            stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
        }
    }
}

/// Waits for a command started with [`Cmd::spawn`].
pub fn finish((child, command): (std::process::Child, String)) -> Output {
    let out = child.wait_with_output().expect("wait for spool");
    Output {
        command,
        code: out.status.code().unwrap_or(-1),
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// What a spool run produced.
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code, -1 when killed by a signal.
    pub code: i32,
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output, exactly.
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
            "command: {}\nstatus:  {}\nstdout:  {shown}\nstderr:  {:?}",
            self.command, self.status, self.stderr
        )
    }
}

impl Output {
    /// Standard output as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Whether the process was killed by SIGKILL (directly or through strace, which
    /// re-raises the signal that killed its tracee, or exits 128+9).
    pub fn killed(&self) -> bool {
        self.status.signal() == Some(9) || self.code == 137
    }

    /// Asserts exit 0 and nothing on standard error.
    #[track_caller]
    pub fn success(&self) -> &Output {
        assert!(
            self.code == 0 && self.stderr.is_empty(),
            "expected exit 0 and an empty stderr:\n{self:?}"
        );
        self
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

    /// Asserts exit 2 with exactly one line on standard error, starting "spool: ".
    #[track_caller]
    pub fn error(&self) -> &Output {
        assert!(
            self.code == 2 && is_one_spool_line(&self.stderr),
            "expected exit 2 and exactly one stderr line starting \"spool: \":\n{self:?}"
        );
        self
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

/// The permission bits of `path` (not following a final symlink).
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The names in directory `dir`, sorted; empty when it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("read dir")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    };
    names.sort();
    names
}

/// Whether the suite runs in CI, where a missing tool or privilege is a failure.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips a test visibly: prints "SKIPPED: REASON" to the real standard error (not the
/// captured one), or panics when `CI=true`. Use as `return skip("...")`.
#[track_caller]
pub fn skip(reason: &str) {
    if in_ci() {
        panic!("{reason}, and CI=true forbids skipping this test");
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "SKIPPED: {reason}");
}

/// Whether `program` can be run at all (`program ARGS` spawns and exits 0).
pub fn tool_works(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{program} {}` fails ({s})", args.join(" "))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{program} not installed"))
        }
        Err(e) => Err(format!("{program} cannot run: {e}")),
    }
}

/// Whether strace is installed and allowed to trace here.
pub fn strace_usable() -> Result<(), String> {
    tool_works("strace", &["-V"])?;
    tool_works("strace", &["-f", "-qq", "-o", "/dev/null", "true"])
        .map_err(|e| format!("strace cannot trace here: {e}"))
}

/// Parses an RFC 3339 UTC timestamp with second precision (`2026-11-25T08:40:40Z`) into
/// seconds since the epoch; `None` when it is not exactly that shape.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant), independent of the implementation under test.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Formats seconds since the epoch as RFC 3339 UTC with second precision, the inverse of
/// [`parse_rfc3339`] (independent of the implementation under test).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Polls `done` every 20 ms until it returns true; panics with `what` after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` to the process `pid`.
#[track_caller]
pub fn send_signal(pid: u32, signal: rustix::process::Signal) {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .unwrap_or_else(|| panic!("not a process id: {pid}"));
    rustix::process::kill_process(target, signal)
        .unwrap_or_else(|e| panic!("kill {pid} with {signal:?}: {e}"));
}

/// A process the test started indirectly (a command run by `spool run`, which outlives a
/// killed spool), killed with SIGKILL when dropped, so that no test leaves one behind.
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take()
            && let Some(target) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
        }
    }
}

/// A deterministic pseudo-random byte stream (xorshift64*), for large payloads.
pub struct Noise(u64);

impl Noise {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[test]
fn fixture_parses_rfc3339() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
    assert_eq!(parse_rfc3339("2026-11-25T08:29:18Z"), Some(1_795_595_358));
    assert_eq!(parse_rfc3339("2026-11-25 08:29:18Z"), None);
    assert_eq!(parse_rfc3339("2026-11-25T08:29:18"), None);
    assert_eq!(parse_rfc3339("2026-11-25T08:29:18.5Z"), None);
}

#[test]
fn fixture_formats_rfc3339() {
    for secs in [0, 951_782_400, 1_795_595_358, 4_102_444_799] {
        assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
    }
    assert_eq!(format_rfc3339(1_795_595_358), "2026-11-25T08:29:18Z");
}

#[test]
fn fixture_recognises_one_spool_line() {
    assert!(is_one_spool_line("spool: no\n"));
    assert!(!is_one_spool_line("spool: no"));
    assert!(!is_one_spool_line("spool: a\nspool: b\n"));
    assert!(!is_one_spool_line("error: no\n"));
    assert!(!is_one_spool_line(""));
}
