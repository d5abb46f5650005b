//! `spool pop`, `peek` and `claim`: taking messages, waiting for them with `--wait`.
//!
//! pop removes a message only once standard output holds it (synced when it is a regular
//! file); a message that could not be written, or whose write is not known to be safe,
//! goes back to the queue, and the error names it. Removals are synced once, at the end.

use std::fs::File;
use std::time::Instant;

use super::failure::{Failure, Outcome};
use super::output::{Records, delivery_failure, say_missing, stdout_file, sync_output, try_print};
use super::watch::Watch;
use crate::cli::{ClaimArgs, TakeArgs, WaitArgs};
use crate::exit::ExitStatus;
use crate::store::{Claim, Engine, Hold, Queue, Result, TakeOptions};

/// How pop takes messages.
const POP: TakeOptions = TakeOptions {
    hold: Hold::Process,
    max_attempts: None,
};

/// What follows each message on standard output.
fn framing(command: &str, args: &TakeArgs) -> std::result::Result<Option<u8>, Failure> {
    let frame = match (args.lines, args.null) {
        (true, _) => Some(b'\n'),
        (_, true) => Some(b'\0'),
        _ => None,
    };
    if args.count > 1 && frame.is_none() {
        return Err(Failure::Usage(format!(
            "{command}: -n {} needs --lines or --null to separate the messages",
            args.count
        )));
    }
    Ok(frame)
}

/// Opens the queue and calls `attempt` until it returns something; with `--wait`, sleeps
/// between attempts until the queue changes (or `--timeout` passes). `Ok(None)`: nothing
/// (without `--wait` on a queue that does not exist, after saying so).
fn wait_for<E: Engine, T>(
    engine: &E,
    name: &str,
    wait: &WaitArgs,
    mut attempt: impl FnMut(&E::Queue) -> Result<Option<T>>,
) -> Result<Option<(E::Queue, T)>> {
    let deadline = wait.timeout.map(|t| Instant::now() + t);
    let mut watch = Watch::new(engine, name, wait.wait);
    loop {
        if let Some(found) = watch.attempt(&mut attempt)? {
            let queue = watch.into_queue().expect("looked into above");
            return Ok(Some((queue, found)));
        }
        // Waiting for a queue not made yet is normal; looking into one is a typo.
        if !wait.wait && !watch.is_open() {
            say_missing(name);
            return Ok(None);
        }
        if !wait.wait || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        watch.sleep(deadline, &[], true)?;
    }
}

pub(super) fn pop<E: Engine>(engine: &E, name: &str, args: TakeArgs) -> Outcome {
    let frame = framing("pop", &args)?;
    let first_chunk = args.count.min(64) as usize;
    let Some((queue, mut taken)) = wait_for(engine, name, &args.wait, |q| {
        let taken = q.take(first_chunk, POP)?;
        Ok((!taken.is_empty()).then_some(taken))
    })?
    else {
        return Ok(ExitStatus::Empty);
    };
    let mut out = stdout_file()?;
    let mut remaining = args.count;
    // Removals are synced once, at the end, whichever way it comes.
    let mut removed = 0;
    let delivered = pop_rounds(
        &queue,
        &mut out,
        frame,
        &mut taken,
        &mut remaining,
        &mut removed,
    );
    let synced = queue.sync_removals(removed);
    let status = delivered?; // a failed delivery is the error to report
    synced?;
    Ok(status)
}

/// Delivers what `pop` took, and takes more, until `remaining` reaches 0 or the queue is
/// empty; adds to `removed` the messages delivered and deleted.
fn pop_rounds<Q: Queue>(
    queue: &Q,
    out: &mut File,
    frame: Option<u8>,
    taken: &mut Vec<Q::Claim>,
    remaining: &mut u64,
    removed: &mut u64,
) -> Outcome {
    let mut records = Records::new(frame);
    loop {
        *remaining -= taken.len() as u64;
        let mut done: Vec<Q::Claim> = Vec::with_capacity(taken.len());
        let mut rest = std::mem::take(taken).into_iter();
        let mut failed = None;
        for mut message in rest.by_ref() {
            match records.write(out, message.payload()) {
                Ok(()) => done.push(message),
                Err(e) => {
                    failed = Some((e, message));
                    break;
                }
            }
        }
        let mut undelivered: Vec<Q::Claim> = Vec::new();
        let mut error = None;
        if let Some((e, message)) = failed {
            undelivered.push(message);
            undelivered.extend(rest);
            error = Some(e);
        }
        if let Err(e) = sync_output(out) {
            // Nothing written in this round is known to be safe: keep it all.
            undelivered.splice(0..0, done.drain(..));
            error.get_or_insert(e);
        }
        queue.remove_delivered(done, removed)?;
        if let Some(e) = error {
            let ids: Vec<u64> = undelivered.iter().map(Claim::id).collect();
            queue.give_back(undelivered)?;
            return Err(delivery_failure(&e, &ids));
        }
        if *remaining == 0 {
            return Ok(ExitStatus::Success);
        }
        *taken = queue.take((*remaining).min(64) as usize, POP)?;
        if taken.is_empty() {
            return Ok(ExitStatus::Success);
        }
    }
}

pub(super) fn peek<E: Engine>(engine: &E, name: &str, args: TakeArgs) -> Outcome {
    let frame = framing("peek", &args)?;
    let mut out = stdout_file()?;
    let mut records = Records::new(frame);
    let mut failure = None;
    let found = wait_for(engine, name, &args.wait, |q| {
        let seen = q.peek(args.count as usize, |mut message| {
            if let Err(e) = records.write(&mut out, &mut message.payload) {
                failure = Some(delivery_failure(&e, &[]));
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok((seen > 0).then_some(()))
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    Ok(if found.is_none() {
        ExitStatus::Empty
    } else {
        ExitStatus::Success
    })
}

pub(super) fn claim<E: Engine>(engine: &E, name: &str, args: ClaimArgs) -> Outcome {
    let opts = TakeOptions {
        hold: Hold::Lease {
            lease_ms: args.lease.as_millis() as u64,
        },
        max_attempts: Some(args.max_attempts),
    };
    let Some((queue, taken)) = wait_for(engine, name, &args.wait, |q| {
        let taken = q.take(1, opts)?;
        Ok((!taken.is_empty()).then_some(taken))
    })?
    else {
        return Ok(ExitStatus::Empty);
    };
    // A token nobody could read would hold the message for its whole lease, an attempt
    // spent: give the message back at once, as if never claimed.
    let line = format!("{}\n", taken[0].token());
    if let Err(e) = try_print(line.as_bytes()) {
        let ids: Vec<u64> = taken.iter().map(Claim::id).collect();
        queue.give_back(taken)?;
        return Err(delivery_failure(&e, &ids));
    }
    Ok(ExitStatus::Success)
}
