//! `spool show`, `ack`, `nack`, `extend` and `requeue`: acting on one message, by its
//! claim's token or its id.
//!
//! A queue that does not exist is a usage error here: a token or an id can only come from
//! a queue that does.

use super::failure::{Failure, Outcome};
use super::output::{deliver, delivery_failure, println_checked, stdout_file};
use crate::cli::{ExtendArgs, NackArgs, RequeueArgs, ShowArgs, TokenArgs};
use crate::exit::ExitStatus;
use crate::store::{Engine, Queue, Result};

pub(super) fn show<E: Engine>(engine: &E, name: &str, args: ShowArgs) -> Outcome {
    let what = &args.what;
    let found = match engine.open(name)? {
        Some(queue) => queue.show(what)?,
        None => None,
    };
    let Some((_, mut file)) = found else {
        return Err(Failure::Usage(format!(
            "show {what}: no such message in queue {name}"
        )));
    };
    let mut out = stdout_file()?;
    deliver(&mut out, &mut file, None).map_err(|e| delivery_failure(&e, &[]))?;
    Ok(ExitStatus::Success)
}

pub(super) fn ack<E: Engine>(engine: &E, name: &str, args: TokenArgs) -> Outcome {
    by_token(engine, name, &args.token, |q, t| q.ack(t))
}

pub(super) fn nack<E: Engine>(engine: &E, name: &str, args: NackArgs) -> Outcome {
    let delay = args.delay.map(|d| d.as_millis() as u64);
    by_token(engine, name, &args.token, |q, t| q.nack(t, delay))
}

pub(super) fn extend<E: Engine>(engine: &E, name: &str, args: ExtendArgs) -> Outcome {
    let lease = args.lease.as_millis() as u64;
    by_token(engine, name, &args.token, |q, t| q.extend(t, lease))
}

/// Acts on a claim by its token, in the queue `name` (which must exist).
fn by_token<E: Engine>(
    engine: &E,
    name: &str,
    token: &str,
    act: impl FnOnce(&E::Queue, &str) -> Result<u64>,
) -> Outcome {
    let Some(queue) = engine.open(name)? else {
        return Err(Failure::Usage(format!(
            "token {token}: queue {name} does not exist"
        )));
    };
    act(&queue, token)?;
    Ok(ExitStatus::Success)
}

pub(super) fn requeue<E: Engine>(engine: &E, name: &str, args: RequeueArgs) -> Outcome {
    let Some(queue) = engine.open(name)? else {
        return Err(Failure::Usage(format!(
            "requeue: queue {name} does not exist"
        )));
    };
    let (moved, missing) = queue.requeue(&args.ids)?;
    println_checked(&moved.len().to_string())?;
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(u64::to_string).collect();
        return Err(Failure::Usage(format!(
            "requeue: no failed message with id {}",
            ids.join(", ")
        )));
    }
    Ok(ExitStatus::Success)
}
