//! Processes killed at every step of their protocol, by strace fault injection:
//! `strace -f -qq -o /dev/null -e inject=SYSCALL:signal=KILL:when=N spool ...` for each
//! system call of interest and each N from 1 until the command is no longer killed.
//!
//! After each killed push: a normal `push --print-id` gets an id above every id printed
//! or listed before; `len` and `list` count only complete messages; a pop loop returns
//! exactly the confirmed messages (plus, possibly, the killed push's, whole), in order;
//! and once the queue was drained nothing is left in `tmp/` or `claimed/`.
//! After each killed pop: the message is never lost and never comes out partial.

use std::fs::File;
use std::io::Write;

use crate::harness::{Fixture, Output, Rng, assert_no_leftovers, names_in, skip, strace_usable};

/// System calls of a push, and the other steps of the protocol.
const PUSH_SYSCALLS: &[&str] = &[
    "openat",
    "write",
    "fdatasync",
    "fsync",
    "flock",
    "ftruncate",
    "renameat2",
    "close",
    "openat2",
    "mkdirat",
    "unlinkat",
];

/// A kill point can only be reached a bounded number of times by one push.
const MAX_KILL_POINTS: u32 = 1000;

/// How the killed push gets its messages.
enum Payload {
    /// One message, as an argument.
    Arg(String),
    /// One message, on standard input (written from a file).
    Stdin(Vec<u8>),
    /// Several messages, one per line (a batch).
    Lines(Vec<String>),
}

impl Payload {
    fn messages(&self) -> Vec<Vec<u8>> {
        match self {
            Payload::Arg(m) => vec![m.clone().into_bytes()],
            Payload::Stdin(m) => vec![m.clone()],
            Payload::Lines(ms) => ms.iter().map(|m| m.clone().into_bytes()).collect(),
        }
    }
}

/// A queue under test and what is known about it.
struct Run<'a> {
    s: &'a Fixture,
    /// The highest id printed by a push or shown by list so far.
    max_seen: u64,
}

impl Run<'_> {
    /// Pushes `message` normally; checks its id is above everything seen.
    #[track_caller]
    fn push_confirmed(&mut self, message: &str, context: &str) {
        let id = self.s.push_id("default", message);
        assert!(
            id > self.max_seen,
            "{context}: push got id {id}, but {} was already printed or listed",
            self.max_seen
        );
        self.max_seen = id;
    }

    /// Runs spool push with `payload`, killed at the `n`th `syscall`.
    fn killed_push(&self, syscall: &str, n: u32, payload: &Payload) -> Output {
        let cmd = self.s.cmd().kill_at(syscall, n);
        match payload {
            Payload::Arg(m) => cmd.args(["push", m]).run(),
            Payload::Stdin(bytes) => {
                let path = self.s.outside("stdin");
                File::create(&path).unwrap().write_all(bytes).unwrap();
                cmd.arg("push").stdin_file(&path).run()
            }
            Payload::Lines(ms) => {
                let input: String = ms.iter().map(|m| format!("{m}\n")).collect();
                cmd.args(["push", "--lines"]).stdin(input).run()
            }
        }
    }

    /// Checks the queue after a push of `attempted` that may have been killed, between
    /// the confirmed messages `before` and a new confirmed message; drains the queue.
    #[track_caller]
    fn check(&mut self, before: Option<&str>, attempted: &[Vec<u8>], completed: bool, ctx: &str) {
        let s = self.s;
        // What is listed: complete messages only, with ids in order.
        let list = s.run(&["list", "--json"]);
        list.success();
        let listed = crate::harness::json_lines(&list.stdout);
        let mut last = 0;
        for entry in &listed {
            let id = entry["id"].as_u64().expect("id");
            assert!(id > last, "{ctx}: list not in id order: {listed:?}");
            last = id;
            let size = entry["size"].as_u64().expect("size") as usize;
            let complete = before.is_some_and(|b| b.len() == size)
                || attempted.iter().any(|m| m.len() == size);
            assert!(complete, "{ctx}: listed a message of {size} bytes: {entry}");
        }
        self.max_seen = self.max_seen.max(last);
        let after = format!("after-{ctx}");
        self.push_confirmed(&after, ctx);
        let waiting = s.len("default");

        let popped = s.pop_all("default");
        assert_eq!(
            waiting,
            popped.len() as u64,
            "{ctx}: len said {waiting}, pop returned {} messages",
            popped.len()
        );
        let mut rest: &[Vec<u8>] = &popped;
        if let Some(b) = before {
            assert!(
                rest.first().is_some_and(|m| m == b.as_bytes()),
                "{ctx}: expected {b:?} first, popped {}",
                show(&popped)
            );
            rest = &rest[1..];
        }
        assert!(
            rest.last().is_some_and(|m| m == after.as_bytes()),
            "{ctx}: expected {after:?} last, popped {}",
            show(&popped)
        );
        let middle = &rest[..rest.len() - 1];
        // Whatever of the attempted push got through is a whole prefix of its messages,
        // each whole; all of it when the push was not killed.
        assert!(
            middle.len() <= attempted.len() && middle == &attempted[..middle.len()],
            "{ctx}: popped {} between the confirmed messages",
            show(middle)
        );
        if completed {
            assert_eq!(
                middle.len(),
                attempted.len(),
                "{ctx}: a completed push lost messages"
            );
        }
        assert_eq!(
            listed.len(),
            middle.len() + usize::from(before.is_some()),
            "{ctx}: list showed {listed:?}"
        );

        assert_no_leftovers(&s.queue_dir("default"), &format!("{ctx}: after draining"));
    }
}

fn show(messages: &[Vec<u8>]) -> String {
    let shown: Vec<String> = messages
        .iter()
        .map(|m| {
            if m.len() > 60 {
                format!("<{} bytes>", m.len())
            } else {
                format!("{:?}", String::from_utf8_lossy(m))
            }
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Kills a push at the 1st, 2nd, ... `syscall` until one completes. With `fresh`, every
/// attempt starts from a missing root (so initialization is killed too); otherwise they
/// share one queue that already holds a confirmed message. Returns the kill points.
fn kill_push_at_every_step(syscall: &str, fresh: bool, payload: impl Fn(u32) -> Payload) -> u32 {
    let shared = Fixture::new();
    let mut shared_max = 0;
    for n in 1..=MAX_KILL_POINTS {
        let own;
        let s = if fresh {
            own = Fixture::new();
            &own
        } else {
            &shared
        };
        let mut run = Run {
            s,
            max_seen: if fresh { 0 } else { shared_max },
        };
        let ctx = format!("{syscall}#{n}{}", if fresh { "-fresh" } else { "" });
        let before = (!fresh).then(|| format!("before-{ctx}"));
        if let Some(b) = &before {
            run.push_confirmed(b, &ctx);
        }
        let payload = payload(n);
        let out = run.killed_push(syscall, n, &payload);
        let completed = !out.killed();
        if completed {
            assert!(
                out.code == 0 && out.stderr.is_empty(),
                "{ctx}: push was neither killed nor successful:\n{out:?}"
            );
        }
        run.check(before.as_deref(), &payload.messages(), completed, &ctx);
        shared_max = run.max_seen;
        if completed {
            return n - 1;
        }
    }
    panic!("push still killed at the {MAX_KILL_POINTS}th {syscall}");
}

fn strace_or_skip() -> bool {
    match strace_usable() {
        Ok(()) => true,
        Err(why) => {
            skip(&why);
            false
        }
    }
}

#[track_caller]
fn for_each_syscall(syscalls: &[&str], fresh: bool, payload: impl Fn(u32) -> Payload + Sync) {
    // Two threads: the scenarios are independent.
    let (a, b) = syscalls.split_at(syscalls.len() / 2);
    let kills: Vec<(String, u32)> = std::thread::scope(|scope| {
        let payload = &payload;
        let handles: Vec<_> = [a, b]
            .into_iter()
            .map(|half| {
                scope.spawn(move || {
                    half.iter()
                        .map(|sc| (sc.to_string(), kill_push_at_every_step(sc, fresh, payload)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("scenario thread"))
            .collect()
    });
    // The protocol does write, sync, lock, count and rename: each was killed at least once.
    for must in ["write", "flock", "ftruncate", "renameat2", "fsync", "close"] {
        if let Some((_, k)) = kills.iter().find(|(sc, _)| sc == must) {
            assert!(*k >= 1, "push never called {must}: {kills:?}");
        }
    }
}

#[test]
fn push_killed_at_every_step_of_an_existing_queue() {
    if !strace_or_skip() {
        return;
    }
    for_each_syscall(PUSH_SYSCALLS, false, |n| {
        Payload::Arg(format!("killed-{n}"))
    });
}

#[test]
fn push_killed_at_every_step_of_a_new_queue() {
    if !strace_or_skip() {
        return;
    }
    for_each_syscall(PUSH_SYSCALLS, true, |n| Payload::Arg(format!("killed-{n}")));
}

#[test]
fn push_of_a_large_message_killed_while_writing() {
    if !strace_or_skip() {
        return;
    }
    // Several 64 KiB writes: a kill between them must not publish a prefix.
    for_each_syscall(&["write", "read", "fdatasync"], false, |n| {
        let mut bytes = vec![0u8; 300_000 + n as usize];
        Rng::new(u64::from(n)).fill(&mut bytes);
        Payload::Stdin(bytes)
    });
}

#[test]
fn push_of_a_batch_killed_at_every_step() {
    if !strace_or_skip() {
        return;
    }
    // More than 8 messages: the batch path (one directory, syncfs, renames in order).
    for_each_syscall(
        &[
            "openat",
            "mkdirat",
            "write",
            "syncfs",
            "ftruncate",
            "renameat2",
            "fsync",
            "close",
        ],
        false,
        |n| Payload::Lines((0..12).map(|i| format!("batch-{n}-{i}")).collect()),
    );
}

#[test]
fn ids_are_never_reused_after_killed_pushes() {
    if !strace_or_skip() {
        return;
    }
    let s = Fixture::new();
    let mut printed = vec![s.push_id("default", "first")];
    // Kill between allocating an id (ftruncate) and publishing it (renameat2).
    for _ in 0..3 {
        let out = s.cmd().kill_at("renameat2", 1).args(["push", "lost"]).run();
        assert!(out.killed(), "{out:?}");
        printed.push(s.push_id("default", "next"));
    }
    assert!(printed.windows(2).all(|w| w[0] < w[1]), "{printed:?}");
    s.run(&["clear"]).success();
    let out = s.cmd().kill_at("ftruncate", 1).args(["push", "lost"]).run();
    assert!(out.killed(), "{out:?}");
    let last = s.push_id("default", "last");
    assert!(last > *printed.last().unwrap(), "{last} after {printed:?}");
    assert_eq!(s.pop_all("default"), [b"last".to_vec()]);
}

/// System calls of a pop.
const POP_SYSCALLS: &[&str] = &[
    "openat2",
    "flock",
    "renameat2",
    "ftruncate",
    "read",
    "write",
    "unlinkat",
    "fsync",
    "close",
];

#[test]
fn pop_killed_at_every_step_loses_nothing() {
    if !strace_or_skip() {
        return;
    }
    for syscall in POP_SYSCALLS {
        let s = Fixture::new();
        let mut completed = false;
        for n in 1..=MAX_KILL_POINTS {
            let ctx = format!("pop {syscall}#{n}");
            let (first, second) = (format!("first-{ctx}"), format!("second-{ctx}"));
            s.push(&[&first, &second]);
            let out = s.cmd().kill_at(syscall, n).arg("pop").run();
            let delivered = out.stdout == first.as_bytes();
            if !out.killed() {
                out.success().stdout_is(&first);
                completed = true;
            } else {
                assert!(
                    out.stdout.is_empty() || delivered,
                    "{ctx}: killed pop wrote {:?}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            let rest = s.pop_all("default");
            let expected_all = [first.clone().into_bytes(), second.clone().into_bytes()];
            let expected_second = [second.clone().into_bytes()];
            if completed {
                assert_eq!(rest, expected_second, "{ctx}");
            } else if delivered {
                // Written out, then killed: it may come again (at least once), in front.
                assert!(
                    rest == expected_all || rest == expected_second,
                    "{ctx}: popped {}",
                    show(&rest)
                );
            } else {
                assert_eq!(rest, expected_all, "{ctx}: popped {}", show(&rest));
            }
            let q = s.queue_dir("default");
            assert_eq!(names_in(&q.join("claimed")), Vec::<String>::new(), "{ctx}");
            if completed {
                break;
            }
        }
        assert!(
            completed,
            "pop still killed at the {MAX_KILL_POINTS}th {syscall}"
        );
    }
}
