//! The operations that the fault-injection tests break, each with what the queue must
//! hold afterwards, whatever system call failed or where the process died.
//!
//! Every scenario starts from a fresh queue holding "m1", "m2", "m3" (ids 1, 2, 3) and,
//! for ack and nack, a claim of m1. The operation runs under strace, which makes its Nth
//! call of one system call fail (or kills it there). Then, without faults:
//! `list --state all --json` must succeed without warnings and show the expected states;
//! popping everything (waiting for leases to end) must return exactly the expected
//! messages in order; `tmp/` and `claimed/` must be empty once the queue is drained; and
//! a new push must get an id above every id seen (ids never go back).

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{Cmd, Fault, Output, bytes, drain, id_states, list_all, push_id, show};

/// The system calls broken in each operation: the ones that open, write, sync, rename,
/// link, remove, create, lock, close or truncate.
pub const SYSCALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "read",
    "write",
    "fsync",
    "fdatasync",
    "syncfs",
    "renameat2",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "mkdirat",
    "flock",
    "close",
    "ftruncate",
];

/// The calls that can run out of space or quota (ENOSPC, EDQUOT come only from calls
/// that may allocate): the others get EIO only.
pub const SPACE_SYSCALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "write",
    "fsync",
    "fdatasync",
    "syncfs",
    "renameat2",
    "link",
    "linkat",
    "mkdirat",
    "close",
    "ftruncate",
];

/// The operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `push --print-id new`.
    Push,
    /// `push` of 200 kB on standard input (several reads and writes).
    PushLarge,
    /// `push --lines` of three lines (a batch).
    Batch,
    /// `push --lines` of twelve lines (a batch synced with syncfs).
    BigBatch,
    /// `pop > FILE` (the output is a regular file, which pop syncs).
    Pop,
    /// `peek -n 3 --lines`.
    Peek,
    /// `claim --lease 300ms`.
    Claim,
    /// `ack TOKEN` of a claim of m1.
    Ack,
    /// `nack TOKEN` of a claim of m1.
    Nack,
    /// `extend TOKEN --lease 2h` of a claim of m1.
    Extend,
    /// `run --max 1 --backoff 0 -- true`.
    Run,
    /// `clear`.
    Clear,
    /// `push --key new --print-id new`: a message with a deduplication key.
    PushKey,
    /// `pop > FILE` of m1, pushed with `--key k1`.
    PopKey,
    /// `ack TOKEN` of a claim of m1, pushed with `--key k1`.
    AckKey,
    /// `clear`, m1 pushed with `--key k1`.
    ClearKey,
}

impl Op {
    /// The operation without keys whose outcome this one must have.
    fn base(self) -> Op {
        match self {
            Op::PushKey => Op::Push,
            Op::PopKey => Op::Pop,
            Op::AckKey => Op::Ack,
            Op::ClearKey => Op::Clear,
            other => other,
        }
    }

    /// Whether m1 holds the key k1 before the operation.
    fn m1_keyed(self) -> bool {
        matches!(self, Op::PopKey | Op::AckKey | Op::ClearKey)
    }
}

const LARGE: usize = 200_000;

fn large_payload() -> Vec<u8> {
    let mut v = vec![0u8; LARGE];
    crate::harness::Rng::new(7).fill(&mut v);
    v
}

fn batch(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("b{i}")).collect()
}

/// One run of an operation on its own fresh spool.
pub struct Case {
    dir: tempfile::TempDir,
    /// The spool root.
    pub root: PathBuf,
    token: String,
}

impl Case {
    /// A fresh spool with m1, m2, m3 queued (and m1 claimed, for ack, nack and extend).
    pub fn new(op: Op) -> Result<Case, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().join("spool");
        if op.m1_keyed() {
            for args in [&["push", "--key", "k1", "m1"][..], &["push", "m2", "m3"]] {
                Cmd::at(&root).args(args).run().check_success()?;
            }
        } else {
            Cmd::at(&root)
                .args(["push", "m1", "m2", "m3"])
                .run()
                .check_success()?;
        }
        let mut token = String::new();
        if matches!(op.base(), Op::Ack | Op::Nack | Op::Extend) {
            let out = Cmd::at(&root).args(["claim", "--lease", "1h"]).run();
            out.check_success()?;
            token = out.text_lossy().trim_end().to_string();
        }
        Ok(Case { dir, root, token })
    }

    fn out_file(&self) -> PathBuf {
        self.dir.path().join("popped")
    }

    /// The command for `op`, unwrapped.
    pub fn call(&self, op: Op) -> Cmd {
        let spool = |args: &[&str]| Cmd::at(&self.root).args(args);
        match op {
            Op::Push => spool(&["push", "--print-id", "new"]),
            Op::PushLarge => spool(&["push"]).stdin(large_payload()),
            Op::Batch => spool(&["push", "--lines"]).stdin(lines(&batch(3))),
            Op::BigBatch => spool(&["push", "--lines"]).stdin(lines(&batch(12))),
            Op::Pop => spool(&["pop"]).stdout_file(&self.out_file()),
            Op::Peek => spool(&["peek", "-n", "3", "--lines"]),
            Op::Claim => spool(&["claim", "--lease", "300ms"]),
            Op::Ack => spool(&["ack", &self.token]),
            Op::Nack => spool(&["nack", &self.token]),
            Op::Extend => spool(&["extend", &self.token, "--lease", "2h"]),
            Op::Run => spool(&["run", "--max", "1", "--backoff", "0", "--", "true"]),
            Op::Clear => spool(&["clear"]),
            Op::PushKey => spool(&["push", "--key", "new", "--print-id", "new"]),
            Op::PopKey | Op::AckKey | Op::ClearKey => self.call(op.base()),
        }
    }

    /// No held key file outlives its message: each names a message of the queue, not
    /// failed. A pending one (no write permission: a keyed push cut short before its
    /// message appeared) may name none; the next push of its key settles it.
    fn check_keys(&self, listed: &[crate::harness::Listed]) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let keys = self.root.join("default/keys");
        for name in crate::harness::names_in(&keys) {
            let meta =
                fs::symlink_metadata(keys.join(&name)).map_err(|e| format!("keys/{name}: {e}"))?;
            if meta.permissions().mode() & 0o200 == 0 {
                continue;
            }
            let id = meta.len();
            if !listed.iter().any(|l| l.id == id && l.state != "failed") {
                return Err(format!(
                    "keys/{name} says message {id} holds it, but the queue is {:?}",
                    id_states(listed)
                ));
            }
        }
        Ok(())
    }

    /// Checks the outcome `out` of `op` broken by `fault`, then the queue.
    pub fn judge(&self, op: Op, fault: Fault, out: &Output) -> Result<(), String> {
        out.no_crash(fault == Fault::Kill)?;
        let killed = fault == Fault::Kill && out.killed();
        let failed = !killed && !out.ok();
        if failed && !(op == Op::Run && out.code == 3) {
            out.check_error()?;
            check_error_line(out, fault)?;
        }
        if out.ok() && !out.stderr.is_empty() {
            let wrote = match op {
                Op::Pop => format!(
                    " (it wrote {:?} to standard output)",
                    String::from_utf8_lossy(&fs::read(self.out_file()).unwrap_or_default())
                ),
                _ => String::new(),
            };
            return Err(format!(
                "exit 0, but a warning on stderr{wrote}: a failed call must fail the \
                 command, and a clean queue has nothing to warn about:\n{out:?}"
            ));
        }
        let listed = list_all(&self.root, "default")?;
        self.check_keys(&listed)?;
        let op = op.base();
        let states = id_states(&listed);
        let m = |v: &[&str]| bytes(v);
        let mut ids_seen: Vec<u64> = listed.iter().map(|l| l.id).collect();
        ids_seen.push(3);
        // What popping everything must return: one of these.
        let expected: Vec<Vec<Vec<u8>>> = match op {
            Op::Push | Op::PushLarge => {
                let new = if op == Op::Push {
                    b"new".to_vec()
                } else {
                    large_payload()
                };
                let mut with = m(&["m1", "m2", "m3"]);
                with.push(new);
                if out.ok() {
                    if op == Op::Push {
                        let id = out.text_lossy();
                        if id != "4\n" {
                            return Err(format!("push printed {id:?}, expected id 4"));
                        }
                    }
                    vec![with]
                } else if killed || out.stderr.contains("may have been published") {
                    vec![m(&["m1", "m2", "m3"]), with]
                } else if out.stderr.contains("messages were pushed")
                    || out.stderr.contains("message was pushed")
                    || published_count(&out.stderr, 1) == Some(1)
                {
                    vec![with]
                } else {
                    vec![m(&["m1", "m2", "m3"])]
                }
            }
            Op::Batch | Op::BigBatch => {
                let n = if op == Op::Batch { 3 } else { 12 };
                let lines = batch(n);
                let with = |k: usize| {
                    let mut v = m(&["m1", "m2", "m3"]);
                    v.extend(lines[..k].iter().map(|l| l.as_bytes().to_vec()));
                    v
                };
                if out.ok() {
                    vec![with(n)]
                } else if killed {
                    (0..=n).map(with).collect()
                } else if out.stderr.contains("may have been published") {
                    vec![with(n)]
                } else if let Some(k) = published_count(&out.stderr, n) {
                    vec![with(k)]
                } else {
                    vec![with(0)]
                }
            }
            Op::Pop => {
                let written = fs::read(self.out_file()).unwrap_or_default();
                if written != b"m1" && !written.is_empty() {
                    return Err(format!(
                        "pop wrote {:?}, not m1 or nothing",
                        String::from_utf8_lossy(&written)
                    ));
                }
                if out.ok() {
                    if written != b"m1" {
                        return Err("pop exited 0 without writing m1".into());
                    }
                    vec![m(&["m2", "m3"])]
                } else if written == b"m1" && (killed || out.stderr.contains("may not be durable"))
                {
                    // Delivered; its removal may or may not have happened.
                    vec![m(&["m2", "m3"]), m(&["m1", "m2", "m3"])]
                } else {
                    vec![m(&["m1", "m2", "m3"])]
                }
            }
            Op::Peek => {
                // Peek changes nothing: whatever it printed, the queue is as it was.
                let all = b"m1\nm2\nm3\n";
                if out.ok() && out.stdout != all {
                    return Err(format!("peek printed {:?}", out.text_lossy()));
                }
                if !all.starts_with(&out.stdout) {
                    return Err(format!("a broken peek printed {:?}", out.text_lossy()));
                }
                vec![m(&["m1", "m2", "m3"])]
            }
            Op::Extend => {
                // Extended or not, the claim holds and its token acks it.
                let kept = states == [(2, "ready"), (3, "ready"), (1, "claimed")];
                if !kept {
                    return Err(format!("after extend the queue is {states:?}"));
                }
                if out.ok() {
                    // The lease now ends in about 2 hours, not 1.
                    let leases = crate::harness::claim_leases(&self.root.join("default"));
                    let until = leases.first().and_then(|l| l.1).unwrap_or(0);
                    if until < crate::harness::now_ms() as u64 + 90 * 60_000 {
                        return Err(format!("extend exited 0, but the claims are {leases:?}"));
                    }
                }
                Cmd::at(&self.root)
                    .args(["ack", &self.token])
                    .run()
                    .check_success()?;
                vec![m(&["m2", "m3"])]
            }
            Op::Claim => {
                if out.ok() {
                    let token = out.text_lossy();
                    let token = token.trim_end();
                    if !token.starts_with("1.")
                        || states != [(2, "ready"), (3, "ready"), (1, "claimed")]
                    {
                        return Err(format!("claim printed {token:?}; the queue is {states:?}"));
                    }
                    Cmd::at(&self.root)
                        .args(["ack", token])
                        .run()
                        .check_success()?;
                    vec![m(&["m2", "m3"])]
                } else {
                    // A claim that failed (or died) after its rename holds m1 by its lease
                    // alone: m1 comes back when the lease ends, before or after the others
                    // are popped. (Its token may even have been printed: Rust's buffered
                    // standard output writes it again at exit after a failed write.)
                    let leased = states == [(2, "ready"), (3, "ready"), (1, "claimed")];
                    let printed_token = leased && out.text_lossy().starts_with("1.");
                    if !(out.stdout.is_empty() || printed_token) {
                        return Err(format!(
                            "a failed claim printed {:?}; the queue is {states:?}",
                            out.text_lossy()
                        ));
                    }
                    if leased {
                        vec![m(&["m1", "m2", "m3"]), m(&["m2", "m3", "m1"])]
                    } else {
                        vec![m(&["m1", "m2", "m3"])]
                    }
                }
            }
            Op::Ack => {
                let gone = states == [(2, "ready"), (3, "ready")];
                let kept = states == [(2, "ready"), (3, "ready"), (1, "claimed")];
                if out.ok() {
                    if !gone {
                        return Err(format!("acked, but the queue is {states:?}"));
                    }
                    let again = Cmd::at(&self.root).args(["ack", &self.token]).run();
                    again.check_error()?;
                } else if kept {
                    // The claim is intact: its token still acks it.
                    Cmd::at(&self.root)
                        .args(["ack", &self.token])
                        .run()
                        .check_success()?;
                } else if !(gone && (killed || out.stderr.contains("may not be durable"))) {
                    return Err(format!("after a failed ack the queue is {states:?}"));
                }
                vec![m(&["m2", "m3"])]
            }
            Op::Nack => {
                let back = states == [(2, "ready"), (3, "ready"), (1, "ready")];
                let kept = states == [(2, "ready"), (3, "ready"), (1, "claimed")];
                if out.ok() || (killed && back) {
                    if !back {
                        return Err(format!("nacked, but the queue is {states:?}"));
                    }
                } else if kept {
                    Cmd::at(&self.root)
                        .args(["nack", &self.token])
                        .run()
                        .check_success()?;
                } else {
                    return Err(format!("after a failed nack the queue is {states:?}"));
                }
                vec![m(&["m2", "m3", "m1"])]
            }
            Op::Run => {
                if out.ok() {
                    vec![m(&["m2", "m3"])]
                } else if out.code == 3 {
                    // The command itself was broken (strace follows it): retried, behind.
                    if !out.stderr.is_empty() {
                        return Err(format!("run exited 3 with stderr:\n{out:?}"));
                    }
                    vec![m(&["m2", "m3", "m1"])]
                } else if killed {
                    vec![
                        m(&["m1", "m2", "m3"]),
                        m(&["m2", "m3"]),
                        m(&["m2", "m3", "m1"]),
                    ]
                } else if out.stderr.contains("may not be durable") {
                    vec![m(&["m2", "m3"])]
                } else {
                    vec![m(&["m1", "m2", "m3"])]
                }
            }
            Op::Clear => {
                if out.ok() {
                    if out.stdout != b"3\n" {
                        return Err(format!("clear printed {:?}", out.text_lossy()));
                    }
                    vec![vec![]]
                } else {
                    // Some may be removed before a failure; those left are whole and in
                    // order, as many as the error says.
                    let all = ["m1", "m2", "m3"];
                    let removed = removed_count(&out.stderr);
                    (0u32..8)
                        .map(|mask| {
                            (0..3)
                                .filter(|i| mask & (1 << i) != 0)
                                .map(|i| all[i].as_bytes().to_vec())
                                .collect::<Vec<_>>()
                        })
                        .filter(|v| removed.is_none_or(|r| v.len() + r == 3))
                        .collect()
                }
            }
            Op::PushKey | Op::PopKey | Op::AckKey | Op::ClearKey => {
                return Err(format!("{op:?} is judged as the operation without keys"));
            }
        };
        let popped = drain(&self.root, "default")?;
        if !expected.contains(&popped) {
            let shown: Vec<String> = expected.iter().map(|e| show(e)).collect();
            return Err(format!(
                "the queue held {}; expected one of {}\n(the queue before draining: \
                 {states:?})\n{out:?}",
                show(&popped),
                shown.join(" or ")
            ));
        }
        let q = self.root.join("default");
        // A pending key left by a keyed push cut short is settled by the next push of it:
        // free (its message never appeared), so that push adds its message.
        for name in crate::harness::names_in(&q.join("keys")) {
            use std::os::unix::fs::PermissionsExt;
            let pending = fs::symlink_metadata(q.join("keys").join(&name))
                .is_ok_and(|m| m.permissions().mode() & 0o200 == 0);
            if !pending {
                continue;
            }
            let again = Cmd::at(&self.root)
                .args(["push", "--key", &name, "--print-id", "again"])
                .run();
            if !(again.ok() && again.stderr.is_empty()) {
                return Err(format!(
                    "a push of the pending key {name} after draining added nothing:\n{again:?}\n{out:?}"
                ));
            }
            let popped = drain(&self.root, "default")?;
            if popped != [b"again".to_vec()] {
                return Err(format!(
                    "after the pending key {name} was pushed again, the queue held {}",
                    show(&popped)
                ));
            }
        }
        for sub in ["tmp", "claimed", "keys"] {
            let left = crate::harness::names_in(&q.join(sub));
            if !left.is_empty() {
                return Err(format!(
                    "{sub}/ still holds {left:?} after draining\n{out:?}"
                ));
            }
        }
        let max_seen = ids_seen.into_iter().max().unwrap_or(0);
        let probe = push_id(&self.root, "default", "probe")?;
        if probe <= max_seen {
            return Err(format!(
                "a new push got id {probe}, but id {max_seen} was already used"
            ));
        }
        Ok(())
    }

    /// The temporary directory of the case (for traces).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn lines(v: &[String]) -> Vec<u8> {
    v.iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// "K of N messages were published" in an error: K.
fn published_count(stderr: &str, n: usize) -> Option<usize> {
    let at = stderr.find(&format!(" of {n} messages were published"))?;
    stderr[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// "N messages were removed" in an error: N.
fn removed_count(stderr: &str) -> Option<usize> {
    let at = stderr.find(" messages were removed")?;
    stderr[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The words an error line may start with: the step that failed.
const STEPS: &[&str] = &[
    "open", "create", "write", "read", "fsync", "sync", "rename", "remove", "lock", "unlock",
    "stat", "close", "chmod", "dup", "run", "wait", "token",
];

/// An error line names the step that failed and says what the injected error was.
fn check_error_line(out: &Output, fault: Fault) -> Result<(), String> {
    let line = out.stderr.trim_end();
    let rest = line.strip_prefix("spool: ").unwrap_or(line);
    let step = rest.split(' ').next().unwrap_or("");
    if !STEPS.contains(&step) {
        return Err(format!("the error does not start with a step: {line:?}"));
    }
    if let Fault::Error(_) = fault
        && !line.contains(fault.strerror())
    {
        return Err(format!(
            "the error does not say {:?}: {line:?}",
            fault.strerror()
        ));
    }
    Ok(())
}
