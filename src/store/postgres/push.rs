//! Push: the messages of one push in memory, inserted in one transaction.
//!
//! The transaction locks the queue's row of `spool.queues` first (`FOR UPDATE`), then
//! promotes due delayed messages, then inserts the new ones with ids from the row's
//! `next_id` (a statement per chunk of up to 1,000 messages, from an array), moves
//! `next_id` past them and records them in the rate of publishing, and notifies the
//! queue's waiters (delivered at the commit): producers of one queue are serialised until
//! they commit, so ids commit in increasing order (strict FIFO within a priority). A
//! payload is sent whole (bytea), so a message is held in memory and limited to
//! [`MAX_PAYLOAD`].

use std::path::Path;
use std::time::SystemTime;

use postgres::Transaction;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::Queue;
use super::connect::db_error;
use super::listen::CHANNEL;
use super::rates::recorded;
use crate::clock::now_ms;
use crate::store::{Error, Published, PushOptions, Result, Sink};

/// The largest payload a message may have: bytea holds up to 1 GB.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// Unix milliseconds as a time of the database.
pub(crate) fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// Unix milliseconds of a time of the database (0 before 1970).
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

/// Messages being pushed, in memory until published.
pub struct Staged<'q> {
    queue: &'q Queue,
    messages: Vec<Vec<u8>>,
}

impl Queue {
    pub(crate) fn stage(&self) -> Staged<'_> {
        Staged {
            queue: self,
            messages: Vec::new(),
        }
    }
}

impl Staged<'_> {
    pub(crate) fn add(&mut self, write: impl FnOnce(&mut Sink<'_>) -> Result<()>) -> Result<()> {
        let mut bytes = Vec::new();
        write(&mut Sink::new(&mut bytes, Path::new("message")))?;
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::invalid(
                format!("push to {}", self.queue.name),
                None,
                format!(
                    "a message of {} bytes is over the PostgreSQL engine's limit of {MAX_PAYLOAD} bytes",
                    bytes.len()
                ),
            ));
        }
        self.messages.push(bytes);
        Ok(())
    }

    pub(crate) fn publish(self, opts: PushOptions) -> Result<Published> {
        let queue = self.queue;
        let what = || format!("push to {} in {}", queue.name, queue.conn.shown);
        let note = "nothing was pushed";
        let now = now_ms();
        let mut client = queue.conn.client()?;
        let mut run = || -> std::result::Result<Published, Failed> {
            let mut tx = client.transaction()?;
            // Typed statements where a statement runs once: one round trip each, none
            // spent preparing.
            let rows = tx.query_typed(
                "SELECT next_id, published FROM spool.queues WHERE name = $1 FOR UPDATE",
                &[(&queue.name, Type::TEXT)],
            )?;
            let Some(row) = rows.first() else {
                return Err(Failed::Gone);
            };
            let mut next: i64 = row.get(0);
            promote(&mut tx, &queue.name, now, &mut next)?;
            let delayed = opts.due.is_some_and(|due| due > now);
            let state = if delayed { "delayed" } else { "ready" };
            let due = opts.due.filter(|_| delayed).map(time);
            let expires = opts.expires.map(time);
            let priority = i16::from(opts.priority);
            // Ids first_id, first_id + 1, … in order.
            const INSERT: &str = "INSERT INTO spool.messages \
                 (queue, id, position, priority, state, payload, enqueued_at, due_at, expires_at) \
                 SELECT $1, $2 + t.n - 1, CASE WHEN $4 = 'ready' THEN $2 + t.n - 1 END, \
                        $3, $4, t.p, $5, $6, $7 \
                 FROM unnest($8::bytea[]) WITH ORDINALITY AS t(p, n)";
            let enqueued = time(now);
            let mut published = Published::default();
            let chunks = chunks(&self.messages);
            if chunks.len() == 1 {
                // One statement, typed (no statement prepared first).
                let payloads: Vec<&[u8]> = chunks[0].iter().map(Vec::as_slice).collect();
                tx.execute_typed(
                    INSERT,
                    &[
                        (&queue.name, Type::TEXT),
                        (&next, Type::INT8),
                        (&priority, Type::INT2),
                        (&state, Type::TEXT),
                        (&enqueued, Type::TIMESTAMPTZ),
                        (&due, Type::TIMESTAMPTZ),
                        (&expires, Type::TIMESTAMPTZ),
                        (&payloads, Type::BYTEA_ARRAY),
                    ],
                )?;
            } else {
                // A larger batch by COPY, in binary: a third of the time of the
                // statements, the rows streamed as they are encoded.
                let writer = tx.copy_in(
                    "COPY spool.messages (queue, id, position, priority, state, payload, \
                     enqueued_at, due_at, expires_at) FROM STDIN (FORMAT binary)",
                )?;
                let mut writer = BinaryCopyInWriter::new(
                    writer,
                    &[
                        Type::TEXT,
                        Type::INT8,
                        Type::INT8,
                        Type::INT2,
                        Type::TEXT,
                        Type::BYTEA,
                        Type::TIMESTAMPTZ,
                        Type::TIMESTAMPTZ,
                        Type::TIMESTAMPTZ,
                    ],
                );
                for (n, payload) in self.messages.iter().enumerate() {
                    let id = next + n as i64;
                    let position = (!delayed).then_some(id);
                    writer.write(&[
                        &queue.name,
                        &id,
                        &position,
                        &priority,
                        &state,
                        &payload.as_slice(),
                        &enqueued,
                        &due,
                        &expires,
                    ])?;
                }
                writer.finish()?;
            }
            for _ in &self.messages {
                published.add(next as u64);
                next += 1;
            }
            // The rate of publishing, under the row lock held since the start.
            let rate = recorded(row.get(1), published.len());
            // The same statement notifies the queue's waiters (listen.rs's `notify`, without
            // a round trip of its own): they wake when this commits.
            tx.execute_typed(
                "UPDATE spool.queues SET next_id = $2, published = coalesce($3, published) \
                 WHERE name = $1 RETURNING pg_notify($4, $1)",
                &[
                    (&queue.name, Type::TEXT),
                    (&next, Type::INT8),
                    (&rate, Type::BYTEA),
                    (&CHANNEL, Type::TEXT),
                ],
            )?;
            tx.commit().map_err(Failed::Commit)?;
            Ok(published)
        };
        run().map_err(|e| match e {
            Failed::Db(e) => db_error(what(), &e).with_note(note),
            // The server may have committed before the answer was lost.
            Failed::Commit(e) => db_error(what(), &e)
                .with_note("the push may have been committed: check before pushing again"),
            Failed::Gone => Error::invalid(what(), None, "the queue was removed").with_note(note),
        })
    }
}

/// Why a push failed.
enum Failed {
    Db(postgres::Error),
    /// At the commit: whether it took effect is not known.
    Commit(postgres::Error),
    /// The queue's row is not there (removed by hand since the push made it).
    Gone,
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Failed {
        Failed::Db(e)
    }
}

/// The messages cut into chunks of at most 1,000 messages and about 16 MiB, each sent
/// in one statement.
fn chunks(messages: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    const MESSAGES: usize = 1000;
    const BYTES: usize = 16 << 20;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        if i > start && (i - start == MESSAGES || bytes + m.len() > BYTES) {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.len();
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

/// Moves the queue's due delayed messages to the back of their priority, in order of due
/// time then id, with positions from `next` (the queue's row is locked by the caller).
pub(crate) fn promote(
    tx: &mut Transaction<'_>,
    queue: &str,
    now: u64,
    next: &mut i64,
) -> std::result::Result<(), postgres::Error> {
    let due: Vec<i64> = tx
        .query_typed(
            "SELECT id FROM spool.messages \
             WHERE queue = $1 AND state = 'delayed' AND due_at <= $2 ORDER BY due_at, id",
            &[(&queue, Type::TEXT), (&time(now), Type::TIMESTAMPTZ)],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    tx.execute(
        "UPDATE spool.messages m SET state = 'ready', due_at = NULL, position = $3 + d.n - 1 \
         FROM unnest($2::bigint[]) WITH ORDINALITY AS d(id, n) \
         WHERE m.queue = $1 AND m.id = d.id",
        &[&queue, &due, &*next],
    )?;
    *next += due.len() as i64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_every_message_in_order() {
        let small: Vec<Vec<u8>> = (0..2500u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let big = vec![vec![0u8; 10 << 20], vec![1u8; 10 << 20], vec![2u8; 1]];
        let sizes: Vec<usize> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 2]);
        assert!(chunks(&[]).is_empty());
    }
}
