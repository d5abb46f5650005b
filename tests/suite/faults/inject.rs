//! Every system call of every operation fails, or kills the process, in turn.
//!
//! For each operation of [`super::ops`] and each system call of [`super::ops::SYSCALLS`],
//! `strace -qq -o TRACE -e trace=CALL -e inject=CALL:error=ERR:when=N` makes the Nth
//! call fail, for N = 1, 2, ... until the operation no longer makes that many calls (the
//! trace shows no injection). The calls the dynamic loader makes before spool starts are
//! not counted (they test the loader). Each run must either succeed completely or exit 2
//! with one "spool: " line naming the step and the error, and leave the queue exactly as
//! [`super::ops::Case::judge`] says. With `signal=KILL` instead, the process dies at that
//! call, and the next operations must recover: orphaned temporary files removed, claims
//! returned, nothing lost, nothing partial, ids never reused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ops::{Case, Op, SPACE_SYSCALLS, SYSCALLS};
use crate::harness::{
    Fault, Problems, fault_hit, loader_calls, require_strace, under_strace, waits_for_own_lock,
};

/// No operation makes this many calls of one system call.
const MAX_N: u32 = 2000;

/// What one sweep did.
#[derive(Default)]
struct Tally {
    /// (operation, fault) -> runs where the fault hit.
    hits: Vec<(Op, Fault, u32)>,
}

impl Tally {
    fn add(&mut self, op: Op, fault: Fault, n: u32) {
        match self
            .hits
            .iter_mut()
            .find(|(o, f, _)| *o == op && *f == fault)
        {
            Some((_, _, c)) => *c += n,
            None => self.hits.push((op, fault, n)),
        }
    }
}

/// Breaks the Nth `syscall` of `op` with `fault` for every N the operation reaches;
/// returns how many runs the fault hit.
/// `waited` counts the runs that waited for a lock left held by an injected close (see
/// [`waits_for_own_lock`]).
fn sweep(
    op: Op,
    syscall: &str,
    fault: Fault,
    problems: &Mutex<Problems>,
    waited: &AtomicU32,
) -> u32 {
    let first = loader_calls(syscall) + 1;
    let mut hits = 0;
    for n in first..first + MAX_N {
        let ctx = format!("{op:?} with {syscall}#{n} {}", fault.name());
        let case = match Case::new(op) {
            Ok(c) => c,
            Err(e) => {
                problems
                    .lock()
                    .unwrap()
                    .note(&ctx, Err(format!("setup: {e}")));
                return hits;
            }
        };
        let trace = case.path().join("trace");
        let out = under_strace(case.call(op), syscall, fault, n, &trace).run();
        if !fault_hit(&trace) {
            // The operation made fewer calls than N: it ran untouched and must succeed.
            if let Err(e) = out.check_success() {
                problems
                    .lock()
                    .unwrap()
                    .note(&ctx, Err(format!("failed without a fault: {e}")));
            }
            return hits;
        }
        hits += 1;
        let mut out = out;
        let mut judged_as = fault;
        if out.timed_out && syscall == "close" && waits_for_own_lock(&trace) {
            waited.fetch_add(1, Ordering::Relaxed);
            out.timed_out = false;
            judged_as = Fault::Kill;
        }
        let verdict = case.judge(op, judged_as, &out);
        problems.lock().unwrap().note(&ctx, verdict);
    }
    problems.lock().unwrap().note(
        &format!("{op:?} {syscall}"),
        Err(format!("still hit at the {MAX_N}th call")),
    );
    hits
}

/// Runs every (operation of `ops`, system call, fault) on two threads and reports.
fn run_all(ops: &[Op], faults: &[Fault], label: &str) {
    let mut work: Vec<(Op, &str, Fault)> = Vec::new();
    for &op in ops {
        for &sc in SYSCALLS {
            for &f in faults {
                let space = matches!(f, Fault::Error("ENOSPC") | Fault::Error("EDQUOT"));
                if !space || SPACE_SYSCALLS.contains(&sc) {
                    work.push((op, sc, f));
                }
            }
        }
    }
    let work = Mutex::new(work);
    let problems = Mutex::new(Problems::default());
    let tally = Mutex::new(Tally::default());
    let per_call = Mutex::new(Vec::<(Op, String, Fault, u32)>::new());
    let waited = AtomicU32::new(0);
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some((op, sc, f)) = work.lock().unwrap().pop() else {
                        break;
                    };
                    let hits = sweep(op, sc, f, &problems, &waited);
                    tally.lock().unwrap().add(op, f, hits);
                    per_call.lock().unwrap().push((op, sc.to_string(), f, hits));
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    let mut per_call = per_call.into_inner().unwrap();
    per_call.sort_by_key(|(op, sc, f, _)| (format!("{op:?}"), sc.clone(), f.name()));
    let total: u32 = tally.hits.iter().map(|h| h.2).sum();
    eprintln!(
        "faults::inject {label}: {total} faults injected in {:.1}s; {} runs waited for a lock \
         that the injected close left held (judged as crashes)",
        start.elapsed().as_secs_f64(),
        waited.load(Ordering::Relaxed)
    );
    for &op in ops {
        let row: Vec<String> = faults
            .iter()
            .map(|&f| {
                let n = tally
                    .hits
                    .iter()
                    .find(|h| h.0 == op && h.1 == f)
                    .map_or(0, |h| h.2);
                format!("{} {n}", f.name())
            })
            .collect();
        let calls: Vec<String> = per_call
            .iter()
            .filter(|(o, _, _, h)| *o == op && *h > 0)
            .map(|(_, sc, f, h)| format!("{sc}/{}:{h}", f.name()))
            .collect();
        eprintln!("  {op:?}: {} ({})", row.join(", "), calls.join(" "));
    }
    // The protocols sync, rename, lock and truncate: if a sweep never hit them, the
    // injection did not work and the test proves nothing.
    // Every group renames or removes, and syncs: if a sweep never hit those calls, the
    // injection did not work and the test proves nothing.
    for must in [&["renameat2", "unlinkat"][..], &["fsync", "fdatasync"]] {
        let hit: u32 = per_call
            .iter()
            .filter(|(_, sc, _, _)| must.contains(&sc.as_str()))
            .map(|p| p.3)
            .sum();
        assert!(hit > 0, "no operation ever reached a fault in {must:?}");
    }
    assert!(total > 0, "no fault was injected");
    problems.into_inner().unwrap().assert_none(label);
}

const PRODUCERS: &[Op] = &[Op::Push, Op::PushLarge, Op::Batch, Op::BigBatch];
const CONSUMERS: &[Op] = &[Op::Pop, Op::Peek, Op::Claim, Op::Run];
const SETTLERS: &[Op] = &[Op::Ack, Op::Nack, Op::Extend, Op::Clear];
const KEYED: &[Op] = &[Op::PushKey, Op::PopKey, Op::AckKey, Op::ClearKey];
const EIO: &[Fault] = &[Fault::Error("EIO")];
const SPACE: &[Fault] = &[Fault::Error("ENOSPC"), Fault::Error("EDQUOT")];
const KILL: &[Fault] = &[Fault::Kill];

fn sweep_test(ops: &[Op], faults: &[Fault], label: &str) {
    if require_strace() {
        run_all(ops, faults, label);
    }
}

#[test]
fn eio_at_every_call_of_push_and_batch_push() {
    sweep_test(PRODUCERS, EIO, "EIO at every call of push and batch push");
}

#[test]
fn eio_at_every_call_of_pop_peek_claim_and_run() {
    sweep_test(
        CONSUMERS,
        EIO,
        "EIO at every call of pop, peek, claim and run",
    );
}

#[test]
fn eio_at_every_call_of_ack_nack_extend_and_clear() {
    sweep_test(
        SETTLERS,
        EIO,
        "EIO at every call of ack, nack, extend and clear",
    );
}

#[test]
fn enospc_and_edquot_at_every_call_of_push_and_batch_push() {
    sweep_test(
        PRODUCERS,
        SPACE,
        "ENOSPC and EDQUOT at every call of push and batch push",
    );
}

#[test]
fn enospc_and_edquot_at_every_call_of_the_consumers() {
    let ops: Vec<Op> = CONSUMERS.iter().chain(SETTLERS).copied().collect();
    sweep_test(
        &ops,
        SPACE,
        "ENOSPC and EDQUOT at every call of pop, peek, claim, run, ack, nack, extend and clear",
    );
}

#[test]
fn eio_at_every_call_of_keyed_push_pop_ack_and_clear() {
    sweep_test(
        KEYED,
        EIO,
        "EIO at every call of push, pop, ack and clear of keyed messages",
    );
}

#[test]
fn enospc_and_edquot_at_every_call_of_keyed_push_pop_ack_and_clear() {
    sweep_test(
        KEYED,
        SPACE,
        "ENOSPC and EDQUOT at every call of push, pop, ack and clear of keyed messages",
    );
}

#[test]
fn a_crash_at_every_call_of_keyed_push_pop_ack_and_clear_leaves_no_key_without_its_message() {
    sweep_test(
        KEYED,
        KILL,
        "SIGKILL at every call of push, pop, ack and clear of keyed messages",
    );
}

#[test]
fn a_crash_at_every_call_of_push_and_batch_push_loses_nothing() {
    sweep_test(
        PRODUCERS,
        KILL,
        "SIGKILL at every call of push and batch push",
    );
}

#[test]
fn a_crash_at_every_call_of_the_consumers_loses_nothing() {
    let ops: Vec<Op> = CONSUMERS.iter().chain(SETTLERS).copied().collect();
    sweep_test(
        &ops,
        KILL,
        "SIGKILL at every call of pop, peek, claim, run, ack, nack, extend and clear",
    );
}
