//! The one runner for the `spool` binary, and the processes tests start.
//!
//! Every command runs in its own process group with `SPOOL_QUEUE`, `SPOOL_DIR`,
//! `XDG_STATE_HOME` and `LD_LIBRARY_PATH` (set by cargo, it makes the loader search and
//! fail many times) removed unless the test sets them, and `HOME` pointing where a bug
//! cannot touch the real home directory. A command that outlives its time limit is killed
//! with its whole group and the test fails, naming it; a command marked
//! [`Cmd::may_hang`] (a fault may make it hang) records the hang in
//! [`Output::timed_out`] instead, and its group is killed when it ends.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Engine, Output, Store};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spool");

/// How long a command may take before it counts as hung (a debug build on a busy
/// machine pushes 100 MB well within it).
pub const LIMIT: Duration = Duration::from_secs(120);

/// Where a command's standard input comes from.
enum Input {
    Null,
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// A spool command being prepared.
pub struct Cmd {
    bin: PathBuf,
    wrapper: Vec<OsString>,
    global: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Input,
    stdout_file: Option<PathBuf>,
    script: Option<String>,
    limit: Duration,
    may_hang: bool,
    strict: bool,
}

impl Cmd {
    /// `spool GLOBAL...` with `HOME` at `home`; output decoded strictly when `strict`.
    pub(super) fn new(global: Vec<OsString>, home: &Path, strict: bool) -> Cmd {
        Cmd {
            bin: PathBuf::from(BIN),
            wrapper: Vec::new(),
            global,
            args: Vec::new(),
            env: vec![
                ("SPOOL_QUEUE".into(), None),
                ("SPOOL_DIR".into(), None),
                ("SPOOL_URL".into(), None),
                ("XDG_STATE_HOME".into(), None),
                ("LD_LIBRARY_PATH".into(), None),
                ("HOME".into(), Some(home.into())),
            ],
            stdin: Input::Null,
            stdout_file: None,
            script: None,
            limit: LIMIT,
            may_hang: false,
            strict,
        }
    }

    /// `spool --dir ROOT` on a root that no fixture owns (a mount, a hostile tree).
    pub fn at(root: &Path) -> Cmd {
        Cmd::new(
            Engine::args(Store::Dir(root)),
            Path::new("/nonexistent-spool-test-home"),
            false,
        )
    }

    /// `spool` with no global argument.
    pub fn bare() -> Cmd {
        Cmd::new(Vec::new(), Path::new("/nonexistent-spool-test-home"), false)
    }

    /// Runs the spool executable at `bin` instead of the one under test (another version).
    pub fn binary(mut self, bin: &Path) -> Cmd {
        self.bin = bin.to_path_buf();
        self
    }

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

    /// Drops the engine's global arguments (`--dir ROOT`): the test chooses the store
    /// some other way.
    pub fn no_dir(mut self) -> Cmd {
        self.global.clear();
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

    /// Sends standard output into a new regular file at `path` (then
    /// [`Output::stdout`] is empty).
    pub fn stdout_file(mut self, path: &Path) -> Cmd {
        self.stdout_file = Some(path.to_path_buf());
        self
    }

    /// Runs `sh -c SCRIPT` instead of spool (see [`Fixture::sh`](super::Fixture::sh)).
    pub(super) fn script(mut self, script: &str) -> Cmd {
        self.global.clear();
        self.script = Some(script.to_string());
        self
    }

    /// Puts `wrapper...` in front of spool (strace, prlimit, setpriv, sh for a umask).
    pub fn wrap<S: AsRef<OsStr>>(mut self, wrapper: impl IntoIterator<Item = S>) -> Cmd {
        let mut words: Vec<OsString> = wrapper
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        words.append(&mut self.wrapper);
        self.wrapper = words;
        self
    }

    /// Runs spool under `sh -c 'umask MASK; exec "$@"'`.
    pub fn umask(self, mask: u32) -> Cmd {
        let script = format!("umask {mask:03o}; exec \"$@\"");
        self.wrap(["sh", "-c", &script, "sh"])
    }

    /// Runs spool as user `uid` and group `gid` (names or numbers) through `setpriv`
    /// (the caller checks it is available).
    pub fn run_as(self, uid: &str, gid: &str) -> Cmd {
        self.wrap([
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
        ])
    }

    /// Runs spool as `nobody`.
    pub fn run_as_nobody(self) -> Cmd {
        self.run_as("nobody", "nogroup")
    }

    /// Sets the time limit.
    pub fn limit(mut self, limit: Duration) -> Cmd {
        self.limit = limit;
        self
    }

    /// A hang is an outcome to judge, not a failure: recorded in [`Output::timed_out`];
    /// whatever the command leaves in its process group is killed when it ends.
    pub fn may_hang(mut self) -> Cmd {
        self.may_hang = true;
        self.strict = false;
        self
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        if let Some(script) = &self.script {
            return format!("sh -c {script:?}");
        }
        let mut words: Vec<String> = self
            .wrapper
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        words.push(if self.bin == Path::new(BIN) {
            "spool".into()
        } else {
            self.bin.display().to_string()
        });
        words.extend(self.global.iter().map(|a| a.to_string_lossy().into_owned()));
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
                cmd.args(rest).arg(&self.bin);
                cmd
            }
            None => Command::new(&self.bin),
        };
        cmd.args(&self.global).args(&self.args).process_group(0);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Starts the command in the background (output captured); the test waits for it
    /// with [`Running::finish`].
    pub fn spawn(self) -> Running {
        self.start(Stdio::piped())
    }

    fn start(self, stdout: Stdio) -> Running {
        let command = self.describe();
        let mut cmd = self.build();
        let stdout = match &self.stdout_file {
            Some(p) => Stdio::from(File::create(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))),
            None => stdout,
        };
        cmd.stdout(stdout).stderr(Stdio::piped());
        match &self.stdin {
            Input::Null => cmd.stdin(Stdio::null()),
            Input::Bytes(_) => cmd.stdin(Stdio::piped()),
            Input::File(path) => cmd.stdin(File::open(path).expect("open stdin file")),
        };
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
        let feeder = match self.stdin {
            Input::Bytes(bytes) => {
                let mut pipe = child.stdin.take().expect("piped stdin");
                // The child may exit without reading everything: ignore EPIPE.
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                }))
            }
            _ => None,
        };
        Running {
            child,
            command,
            limit: self.limit,
            may_hang: self.may_hang,
            strict: self.strict,
            feeder,
        }
    }

    /// Runs the command, capturing standard output and standard error.
    pub fn run(self) -> Output {
        self.start(Stdio::piped()).finish()
    }

    /// Runs the command and asserts exit 0, an empty standard error and exactly
    /// `expected` on standard output.
    #[track_caller]
    pub fn prints(self, expected: impl AsRef<[u8]>) -> Output {
        let out = self.run();
        out.success().stdout_is(expected);
        out
    }

    /// Runs the command with standard output sent to `stdout` (then [`Output::stdout`] is
    /// empty unless `stdout` is a pipe).
    pub fn run_with_stdout(self, stdout: Stdio) -> Output {
        self.start(stdout).finish()
    }
}

/// A command started with [`Cmd::spawn`].
pub struct Running {
    /// The process (the leader of its own process group).
    pub child: Child,
    command: String,
    limit: Duration,
    may_hang: bool,
    strict: bool,
    feeder: Option<JoinHandle<()>>,
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for it (within its time limit, counted from now) and collects its output.
    pub fn finish(self) -> Output {
        let Running {
            mut child,
            command,
            limit,
            may_hang,
            strict,
            feeder,
        } = self;
        let pgid = child.id() as i32;
        let reader = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out_reader = reader(child.stdout.take().map(|s| Box::new(s) as _));
        let err_reader = reader(child.stderr.take().map(|s| Box::new(s) as _));
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        let timed_out = rx.recv_timeout(limit).is_err();
        if timed_out {
            kill_group(pgid);
        }
        let status = waiter.join().expect("waiter").expect("wait");
        if may_hang {
            // Whatever the command left in its group (strace's tracees) goes too.
            kill_group(pgid);
        }
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let stdout = out_reader.join().expect("stdout reader");
        let stderr = err_reader.join().expect("stderr reader");
        let stderr = if strict {
            String::from_utf8(stderr)
                .unwrap_or_else(|e| panic!("{command}: stderr is not UTF-8: {e}"))
        } else {
            String::from_utf8_lossy(&stderr).into_owned()
        };
        let out = Output {
            command,
            code: status.code().unwrap_or(-1),
            status,
            timed_out,
            stdout,
            stderr,
        };
        if timed_out && !may_hang {
            panic!("hung: killed after {limit:?}:\n{out:?}");
        }
        out
    }
}

/// Starts `bash -c SCRIPT NAME ARGS...` (a workload of many spool commands) in the
/// background, in its own process group, with no input or output and spool's variables
/// removed; the caller kills the group.
pub fn spawn_workload<S: AsRef<OsStr>>(script: &str, args: impl IntoIterator<Item = S>) -> Child {
    Command::new("bash")
        .args(["-c", script, "workload"])
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("SPOOL_DIR")
        .env_remove("SPOOL_QUEUE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn workload")
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

/// Sends SIGKILL to the process group `pgid` (no error when it is gone).
pub fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The processes of the process group `pgid` that are still running (not zombies).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
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

/// Whether the process `pid` catches `signal`: it installed a handler for it (the
/// `SigCgt` mask of /proc/PID/status). A test waits for it before sending a signal that
/// the process must handle rather than die of.
pub fn catches(pid: u32, signal: rustix::process::Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = signal.as_raw() - 1;
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask >> bit & 1 == 1)
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
