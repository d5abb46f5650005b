//! What the fault tests share: a runner for the `spool` binary with a clean environment
//! and a time limit (so a hang is a failure, not a stuck suite), strace wrappers, a
//! reader of the queue that does not go through spool, mount guards that always clean
//! up, and checks that every fault test applies.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::util::{BIN, is_one_spool_line, json_lines, skip, strace_usable, tool_works};

/// How long one spool command may take in these tests before it counts as hung.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Whether the tests run as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether the suite runs in CI (a fault test that cannot run is then a failure).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Checks that the test can run: root when `root`, and each tool (`program args` exits 0).
/// Otherwise skips visibly (a failure under CI=true) and returns false.
pub fn require(root: bool, tools: &[(&str, &[&str])]) -> bool {
    if root && !is_root() {
        skip("not running as root: this fault test needs root");
        return false;
    }
    for (program, args) in tools {
        if let Err(why) = tool_works(program, args) {
            skip(&why);
            return false;
        }
    }
    true
}

/// Checks that strace can inject faults here; skips otherwise.
pub fn require_strace() -> bool {
    match strace_usable() {
        Ok(()) => true,
        Err(why) => {
            skip(&why);
            false
        }
    }
}

/// Microseconds since the epoch.
pub fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    (now_us() / 1000) as u64
}

/// A small pseudo-random generator (xorshift64*), seeded per test so runs vary.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id; the seed is printed by the tests.
    pub fn from_clock() -> (Rng, u64) {
        let seed = (now_us() as u64) ^ (u64::from(std::process::id()) << 32);
        (Rng::new(seed), seed)
    }

    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Where a command's standard input comes from.
pub enum Stdin {
    /// /dev/null.
    Null,
    /// These bytes, through a pipe.
    Bytes(Vec<u8>),
}

/// What a command did.
pub struct Out {
    /// The command line, for messages.
    pub desc: String,
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Killed by the test after [`LIMIT`] (or the limit given).
    pub timed_out: bool,
    /// Standard output (empty when it went to a file).
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Out {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Killed by SIGKILL, directly or through strace (which exits 128+9 or re-raises it).
    pub fn killed(&self) -> bool {
        self.signal == Some(9) || self.code == Some(137)
    }

    /// Standard output as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Exit 0 with an empty standard error, or a description of what happened.
    pub fn success(&self) -> Result<&Out, String> {
        if self.ok() && self.stderr.is_empty() {
            Ok(self)
        } else {
            Err(format!("expected exit 0 and no stderr:\n{self:?}"))
        }
    }

    /// Asserts [`Out::success`].
    #[track_caller]
    pub fn expect_success(&self) -> &Out {
        if let Err(e) = self.success() {
            panic!("{e}");
        }
        self
    }

    /// Exit 2 with exactly one "spool: " line on standard error, or a description.
    pub fn error(&self) -> Result<&Out, String> {
        if self.code == Some(2) && is_one_spool_line(&self.stderr) {
            Ok(self)
        } else {
            Err(format!(
                "expected exit 2 and exactly one \"spool: \" line on stderr:\n{self:?}"
            ))
        }
    }

    /// Checks that nothing crashed: no signal (unless `killed_ok`), no time out, no panic
    /// message and only "spool: " lines on standard error.
    pub fn no_crash(&self, killed_ok: bool) -> Result<(), String> {
        if self.timed_out {
            return Err(format!("hung (killed after the time limit):\n{self:?}"));
        }
        if self.signal.is_some() && !(killed_ok && self.killed()) {
            return Err(format!("died of a signal:\n{self:?}"));
        }
        if self.code == Some(101) || self.stderr.contains("internal error") {
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

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.stdout.len() > 400 {
            format!("<{} bytes>", self.stdout.len())
        } else {
            format!("{:?}", String::from_utf8_lossy(&self.stdout))
        };
        let status = match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(s)) => format!("signal {s}"),
            _ => "?".into(),
        };
        write!(
            f,
            "  command: {}\n  status:  {status}{}\n  stdout:  {shown}\n  stderr:  {:?}",
            self.desc,
            if self.timed_out { " (timed out)" } else { "" },
            self.stderr
        )
    }
}

/// A command, ready to run with [`exec`].
pub struct Call {
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// Standard input.
    pub stdin: Stdin,
    /// A file that receives standard output instead of a pipe.
    pub stdout_file: Option<PathBuf>,
    /// Time limit.
    pub limit: Duration,
}

impl Call {
    /// `program args...`.
    pub fn new<S: AsRef<OsStr>>(argv: impl IntoIterator<Item = S>) -> Call {
        Call {
            argv: argv
                .into_iter()
                .map(|a| a.as_ref().to_os_string())
                .collect(),
            stdin: Stdin::Null,
            stdout_file: None,
            limit: LIMIT,
        }
    }

    /// `spool --dir ROOT args...`.
    pub fn spool<S: AsRef<OsStr>>(root: &Path, args: impl IntoIterator<Item = S>) -> Call {
        let mut argv: Vec<OsString> = vec![BIN.into(), "--dir".into(), root.into()];
        argv.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        Call::new(argv)
    }

    /// Puts `wrapper...` in front of the command (strace, prlimit, setpriv).
    pub fn wrap<S: AsRef<OsStr>>(mut self, wrapper: impl IntoIterator<Item = S>) -> Call {
        let mut argv: Vec<OsString> = wrapper
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        argv.append(&mut self.argv);
        self.argv = argv;
        self
    }

    /// Standard input from bytes.
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Call {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Standard output into a new regular file at `path`.
    pub fn output_file(mut self, path: &Path) -> Call {
        self.stdout_file = Some(path.to_path_buf());
        self
    }

    /// Runs it.
    pub fn run(self) -> Out {
        exec(self)
    }
}

/// Runs `call` in its own process group, with spool's variables and `LD_LIBRARY_PATH`
/// (set by cargo, it makes the loader search and fail many times) removed, capturing its
/// output; kills the whole group when it outlives its time limit.
pub fn exec(call: Call) -> Out {
    let desc = call
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(&call.argv[0]);
    cmd.args(&call.argv[1..])
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("SPOOL_DIR")
        .env_remove("SPOOL_QUEUE")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", "/nonexistent-spool-test-home")
        .process_group(0)
        .stderr(Stdio::piped());
    match &call.stdin {
        Stdin::Null => cmd.stdin(Stdio::null()),
        Stdin::Bytes(_) => cmd.stdin(Stdio::piped()),
    };
    match &call.stdout_file {
        Some(p) => cmd.stdout(File::create(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))),
        None => cmd.stdout(Stdio::piped()),
    };
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let pgid = child.id() as i32;
    let feeder = match call.stdin {
        Stdin::Bytes(bytes) => {
            let mut pipe = child.stdin.take().expect("piped stdin");
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes); // the child may not read it all
            }))
        }
        _ => None,
    };
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_reader = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err_reader = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let mut timed_out = false;
    if rx.recv_timeout(call.limit).is_err() {
        timed_out = true;
        kill_group(pgid);
    }
    let status = waiter.join().expect("waiter").expect("wait");
    // Whatever the command left in its group (strace's tracees) goes too.
    kill_group(pgid);
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    Out {
        desc,
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout,
        stderr,
    }
}

/// Sends SIGKILL to the process group `pgid` (no error when it is gone).
pub fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The processes of the process group `pgid` that are still running (not zombies).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
            let Some(rest) = stat.rsplit_once(')').map(|r| r.1) else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 3 && f[0] != "Z" && f[0] != "X" && f[2].parse() == Ok(pgid)
        })
        .collect()
}

/// Whether any process of the group `pgid` is still running.
pub fn group_alive(pgid: i32) -> bool {
    !group_members(pgid).is_empty()
}

/// Kills every process of the group `pgid` and waits until none is left.
pub fn kill_group_and_wait(pgid: i32) {
    let start = Instant::now();
    while group_alive(pgid) {
        kill_group(pgid);
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process group {pgid} does not die"
        );
    }
}

// ----- strace -----

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

/// Wraps `call` in `strace -qq -o TRACE -e trace=SYSCALL -e inject=SYSCALL:...:when=N`;
/// after it ran, the trace says whether the fault hit (see [`fault_hit`]). Without `-f`:
/// the faults go to spool's own calls, not to those of the commands `spool run` starts
/// (spool has no other threads or processes).
pub fn under_strace(call: Call, syscall: &str, fault: Fault, n: u32, trace: &Path) -> Call {
    // A close that fails by injection is not performed, unlike a real one (which always
    // releases the descriptor): its lock stays held. Trace flock too to see the process
    // wait for that lock (see [`waits_for_own_lock`]), and give up sooner.
    let traced = if syscall == "close" {
        "close,flock".to_string()
    } else {
        syscall.to_string()
    };
    let mut call = call;
    if syscall == "close" {
        call.limit = Duration::from_secs(4);
    }
    call.wrap([
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
        let out = Call::new([BIN, "--version"])
            .wrap([
                "strace",
                "-f",
                "-qq",
                "-o",
                trace.to_str().expect("UTF-8 path"),
            ])
            .run();
        out.success().expect("spool --version under strace");
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

// ----- reading a queue -----

/// One message of `list --state all --json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Id.
    pub id: u64,
    /// ready, delayed, claimed or failed.
    pub state: String,
    /// Payload bytes.
    pub size: u64,
    /// Claims made.
    pub attempts: u64,
}

/// `spool -q QUEUE list --state all --json`, which must exit 0 without warnings.
pub fn list_all(root: &Path, queue: &str) -> Result<Vec<Listed>, String> {
    let out = Call::spool(root, ["-q", queue, "list", "--state", "all", "--json"]).run();
    out.success()?;
    Ok(json_lines(&out.stdout)
        .iter()
        .map(|v| Listed {
            id: v["id"].as_u64().expect("id"),
            state: v["state"].as_str().expect("state").to_string(),
            size: v["size"].as_u64().expect("size"),
            attempts: v["attempts"].as_u64().expect("attempts"),
        })
        .collect())
}

/// `(id, state)` pairs, for messages.
pub fn id_states(listed: &[Listed]) -> Vec<(u64, &str)> {
    listed.iter().map(|l| (l.id, l.state.as_str())).collect()
}

/// The lease deadlines (unix ms) of the claims in `claimed/`, read from their names;
/// `None` for a claim held by a process (no `l` field).
pub fn claim_leases(queue_dir: &Path) -> Vec<(String, Option<u64>)> {
    names(&queue_dir.join("claimed"))
        .into_iter()
        .map(|name| {
            let lease = name
                .split('.')
                .skip(1)
                .find_map(|f| f.strip_prefix('l').and_then(|v| v.parse().ok()));
            (name, lease)
        })
        .collect()
}

/// The names in `dir`, sorted; empty when it does not exist.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Pops every message of `queue` (waiting for leases to end, so that claims come back)
/// and returns the payloads in order. Each pop must exit 0 or 1 without warnings; once
/// the queue is empty, no claim may be left that nobody holds.
pub fn drain(root: &Path, queue: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut popped = Vec::new();
    let start = Instant::now();
    loop {
        let out = Call::spool(root, ["-q", queue, "pop"]).run();
        match out.code {
            Some(0) if out.stderr.is_empty() => popped.push(out.stdout),
            Some(1) if out.stderr.is_empty() && out.stdout.is_empty() => {
                let leases = claim_leases(&root.join(queue));
                if leases.is_empty() {
                    return Ok(popped);
                }
                if let Some((name, _)) = leases.iter().find(|(_, l)| l.is_none()) {
                    return Err(format!(
                        "pop found nothing, but the claim {name} of a dead process was not \
                         returned to the queue"
                    ));
                }
                let latest = leases.iter().filter_map(|(_, l)| *l).max().unwrap_or(0);
                if start.elapsed() > Duration::from_secs(30) {
                    return Err(format!("leases never end: {leases:?}"));
                }
                let wait = latest.saturating_sub(now_ms()) + 20;
                std::thread::sleep(Duration::from_millis(wait.min(5000)));
            }
            _ => return Err(format!("pop while draining:\n{out:?}")),
        }
        if popped.len() > 100_000 {
            return Err("pop never ends".into());
        }
    }
}

/// Renders payloads for messages.
pub fn show(messages: &[Vec<u8>]) -> String {
    let shown: Vec<String> = messages
        .iter()
        .map(|m| {
            if m.len() > 40 {
                format!(
                    "<{} bytes {:?}…>",
                    m.len(),
                    String::from_utf8_lossy(&m[..20])
                )
            } else {
                format!("{:?}", String::from_utf8_lossy(m))
            }
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Byte strings from `&str`s.
pub fn bytes(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Pushes `message` with `--print-id` and returns its id.
pub fn push_id(root: &Path, queue: &str, message: &str) -> Result<u64, String> {
    let out = Call::spool(root, ["-q", queue, "push", "--print-id", message]).run();
    out.success()?;
    out.text()
        .trim_end()
        .parse()
        .map_err(|_| format!("push --print-id printed {:?}", out.text()))
}

/// The `next_id` of `stats --json`: the counter.
pub fn next_id(root: &Path, queue: &str) -> Result<u64, String> {
    let out = Call::spool(root, ["-q", queue, "stats", "--json"]).run();
    out.success()?;
    json_lines(&out.stdout)[0]["next_id"]
        .as_u64()
        .ok_or_else(|| format!("stats without next_id: {out:?}"))
}

// ----- files outside the spool that must stay untouched -----

/// A file or directory outside the spool, with what it looked like, to prove that spool
/// never read, wrote or removed it. Its access time is set before its modification time,
/// so that even a `relatime` mount records a read.
pub struct Witness {
    /// Where.
    pub path: PathBuf,
    content: Option<Vec<u8>>,
    atime: (i64, i64),
    mtime: (i64, i64),
    ino: u64,
}

impl Witness {
    /// A new file with `content`.
    pub fn file(path: PathBuf, content: &[u8]) -> Witness {
        fs::write(&path, content).expect("write witness");
        Witness::arm(path, Some(content.to_vec()))
    }

    /// A new directory holding one file.
    pub fn dir(path: PathBuf) -> Witness {
        fs::create_dir(&path).expect("create witness dir");
        fs::write(
            path.join("inside"),
            b"inside a directory outside the spool\n",
        )
        .expect("write witness");
        Witness::arm(path, None)
    }

    fn arm(path: PathBuf, content: Option<Vec<u8>>) -> Witness {
        let past = SystemTime::now() - Duration::from_secs(86_400);
        let later = past + Duration::from_secs(3600);
        let f = File::open(&path).expect("open witness");
        f.set_times(fs::FileTimes::new().set_accessed(past).set_modified(later))
            .expect("set witness times");
        let m = fs::symlink_metadata(&path).expect("stat witness");
        Witness {
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            ino: m.ino(),
            path,
            content,
        }
    }

    /// Whether it is exactly as it was: there, same inode, content, access and
    /// modification times.
    pub fn check(&self) -> Result<(), String> {
        let m = fs::symlink_metadata(&self.path)
            .map_err(|e| format!("{} is gone: {e}", self.path.display()))?;
        if m.ino() != self.ino {
            return Err(format!("{} was replaced", self.path.display()));
        }
        if (m.mtime(), m.mtime_nsec()) != self.mtime {
            return Err(format!("{} was modified", self.path.display()));
        }
        if (m.atime(), m.atime_nsec()) != self.atime {
            return Err(format!(
                "{} was read (its access time changed)",
                self.path.display()
            ));
        }
        match &self.content {
            Some(c) => {
                // Compare without reading through the file's own atime: O_NOATIME as root.
                let got = read_noatime(&self.path);
                if got.as_deref() != Some(c.as_slice()) {
                    return Err(format!("{} changed content", self.path.display()));
                }
            }
            None => {
                // Not read with readdir, which would change the directory's access time.
                let inside = fs::symlink_metadata(self.path.join("inside"));
                if m.nlink() != 2 || !inside.is_ok_and(|i| i.len() == 37) {
                    return Err(format!("{} changed entries", self.path.display()));
                }
            }
        }
        Ok(())
    }
}

/// Reads a file without changing its access time (`O_NOATIME`, allowed to its owner and
/// to root); `None` when that is not possible.
fn read_noatime(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32)
        .open(path)
        .ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

// ----- mounts -----

/// A mount made by a test: unmounted (and its loop device detached, its workload's
/// process group killed first) when dropped, also when the test fails.
pub struct Mount {
    /// The mount point.
    pub dir: PathBuf,
    device: Option<String>,
    fstype: String,
    mounted: bool,
    /// Process groups to kill before unmounting.
    pub groups: Vec<i32>,
}

fn sh(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Mount {
    /// Mounts a tmpfs with `options` (e.g. `size=256k`) on the new directory `dir`.
    pub fn tmpfs(dir: &Path, options: &str) -> Result<Mount, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let d = dir.to_str().expect("UTF-8 path");
        sh(&["mount", "-t", "tmpfs", "-o", options, "tmpfs", d])?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            device: None,
            fstype: "tmpfs".into(),
            mounted: true,
            groups: Vec::new(),
        })
    }

    /// Makes a sparse image of `size` at `image`, formats it as `fstype` (xfs or ext4),
    /// attaches it to a loop device and mounts it on the new directory `dir`.
    pub fn image(image: &Path, size: &str, fstype: &str, dir: &Path) -> Result<Mount, String> {
        let img = image.to_str().expect("UTF-8 path");
        sh(&["truncate", "-s", size, img])?;
        match fstype {
            "xfs" => sh(&["mkfs.xfs", "-q", "-f", img])?,
            "ext4" => sh(&["mkfs.ext4", "-q", "-F", img])?,
            other => return Err(format!("unknown filesystem {other}")),
        };
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let device = sh(&["losetup", "-f", "--show", img])?;
        let mut m = Mount {
            dir: dir.to_path_buf(),
            device: Some(device),
            fstype: fstype.into(),
            mounted: false,
            groups: Vec::new(),
        };
        m.mount()?;
        Ok(m)
    }

    /// Mounts the loop device again (after [`Mount::unmount`]).
    pub fn mount(&mut self) -> Result<(), String> {
        let dev = self.device.clone().expect("a loop device");
        let d = self.dir.to_str().expect("UTF-8 path");
        sh(&["mount", "-t", &self.fstype, &dev, d])?;
        self.mounted = true;
        Ok(())
    }

    /// Kills the registered process groups, then unmounts (retrying while busy).
    pub fn unmount(&mut self) -> Result<(), String> {
        for g in std::mem::take(&mut self.groups) {
            kill_group_and_wait(g);
        }
        if !self.mounted {
            return Ok(());
        }
        let d = self.dir.to_str().expect("UTF-8 path").to_string();
        let mut last = String::new();
        for _ in 0..100 {
            match sh(&["umount", &d]) {
                Ok(_) => {
                    self.mounted = false;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(last)
    }

    /// Simulates a power cut: `xfs_io -x -c shutdown` (no flush) on the mount point.
    pub fn shutdown(&self) -> Result<(), String> {
        let d = self.dir.to_str().expect("UTF-8 path");
        sh(&["xfs_io", "-x", "-c", "shutdown", d]).map(|_| ())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        for g in std::mem::take(&mut self.groups) {
            for _ in 0..200 {
                if !group_alive(g) {
                    break;
                }
                kill_group(g);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.mounted {
            let d = self.dir.to_string_lossy().into_owned();
            let mut done = false;
            for _ in 0..40 {
                if sh(&["umount", &d]).is_ok() {
                    done = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done {
                let _ = sh(&["umount", "-l", &d]);
            }
        }
        if let Some(dev) = self.device.take() {
            let _ = sh(&["losetup", "-d", &dev]);
        }
    }
}

/// Collects the problems one test finds, so that a run reports all of them at once.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// Records `r`'s error, if any, under `context`.
    pub fn note(&mut self, context: &str, r: Result<(), String>) {
        if let Err(e) = r {
            self.0.push(format!("{context}: {e}"));
        }
    }

    /// Panics with every problem recorded.
    #[track_caller]
    pub fn assert_none(&self, what: &str) {
        if !self.0.is_empty() {
            let shown: Vec<&str> = self.0.iter().take(40).map(String::as_str).collect();
            panic!(
                "{what}: {} problem(s):\n\n{}{}",
                self.0.len(),
                shown.join("\n\n"),
                if self.0.len() > 40 { "\n\n..." } else { "" }
            );
        }
    }
}
