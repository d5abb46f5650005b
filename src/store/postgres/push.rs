//! Push: the messages of one push in memory, inserted in one transaction.
//!
//! The transaction locks the queue's row of `spool.queues` first (`FOR UPDATE`), then
//! promotes due delayed messages, then inserts the new ones with ids from the row's
//! `next_id` (one statement from arrays for up to 1,000 messages and 16 MiB, a binary
//! COPY beyond), moves `next_id` past them and records them in the rate of publishing,
//! and notifies the queue's waiters (delivered at the commit): producers of one queue are
//! serialised until they commit, so ids commit in increasing order (strict FIFO within a
//! priority). A payload is sent whole (bytea), so a message is held in memory and
//! limited to [`MAX_PAYLOAD`].
//!
//! A batch whose messages all have the options of `publish` goes by statements with
//! those options as single values. One with messages of their own options (`add_with`)
//! carries each row's priority, due time, expiry and key. Keys: under the same row lock
//! (which every push and every requeue of the queue takes, the only changes that make a
//! message hold a key), one query finds which of the batch's keys are held by messages
//! in the queue (not by dead letters); a message whose key is held, or was taken by an
//! earlier one of the batch, is not inserted, and takes no id. The partial unique index
//! `messages_key` is the net under this.

use std::collections::HashMap;
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
use crate::store::{Duplicate, Error, Meta, Published, PushOptions, Result, Sink};

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

/// A message's bytes, kept up to [`MAX_PAYLOAD`] and counted beyond.
struct Capped {
    bytes: Vec<u8>,
    total: u64,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_PAYLOAD.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        self.total += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Messages being pushed, in memory until published.
pub struct Staged<'q> {
    queue: &'q Queue,
    messages: Vec<Vec<u8>>,
    /// The messages added with options of their own (`add_with`), by index, in order;
    /// the others are published with the options of `publish`. Empty for a uniform
    /// batch, which goes by the statement it always did.
    own: Vec<(usize, Meta)>,
}

impl Queue {
    pub(crate) fn stage(&self) -> Staged<'_> {
        Staged {
            queue: self,
            messages: Vec::new(),
            own: Vec::new(),
        }
    }
}

/// One message as inserted: where it is in the batch, and its own options.
struct Row<'a> {
    index: usize,
    priority: i16,
    /// Set when delayed (due after now).
    due: Option<SystemTime>,
    expires: Option<SystemTime>,
    key: Option<&'a str>,
}

impl Staged<'_> {
    pub(crate) fn add(&mut self, write: impl FnOnce(&mut Sink<'_>) -> Result<()>) -> Result<()> {
        // Bytes past the limit are counted, not kept: a message too large costs no more
        // memory than the largest one taken.
        let mut held = Capped {
            bytes: Vec::new(),
            total: 0,
        };
        write(&mut Sink::new(&mut held, Path::new("message")))?;
        if held.total > MAX_PAYLOAD as u64 {
            return Err(Error::invalid(
                format!("push to {}", self.queue.name),
                None,
                format!(
                    "a message of {} bytes is over the PostgreSQL engine's limit of {MAX_PAYLOAD} bytes",
                    held.total
                ),
            )
            .refusal());
        }
        let bytes = held.bytes;
        self.messages.push(bytes);
        Ok(())
    }

    pub(crate) fn add_with(
        &mut self,
        meta: Meta,
        write: impl FnOnce(&mut Sink<'_>) -> Result<()>,
    ) -> Result<()> {
        self.add(write)?;
        self.own.push((self.messages.len() - 1, meta));
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
            let enqueued = time(now);
            let mut published = Published::default();
            if self.own.is_empty() {
                self.insert_uniform(&mut tx, opts, now, &enqueued, next)?;
                for _ in &self.messages {
                    published.add(next as u64);
                    next += 1;
                }
            } else {
                let rows = self.rows(opts, now);
                let rows = self.without_duplicates(&mut tx, rows, next, &mut published)?;
                self.insert_rows(&mut tx, &rows, &enqueued, next)?;
                next += rows.len() as i64;
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

    /// Inserts every message with the options of `publish` (no message has options of its
    /// own, nor a key), ids from `first` on.
    fn insert_uniform(
        &self,
        tx: &mut Transaction<'_>,
        opts: PushOptions,
        now: u64,
        enqueued: &SystemTime,
        first: i64,
    ) -> std::result::Result<(), postgres::Error> {
        let name = &self.queue.name;
        let delayed = opts.due.is_some_and(|due| due > now);
        let state = if delayed { "delayed" } else { "ready" };
        let due = opts.due.filter(|_| delayed).map(time);
        let expires = opts.expires.map(time);
        let priority = i16::from(opts.priority);
        // Ids first, first + 1, … in order.
        const INSERT: &str = "INSERT INTO spool.messages \
             (queue, id, position, priority, state, payload, enqueued_at, due_at, expires_at) \
             SELECT $1, $2 + t.n - 1, CASE WHEN $4 = 'ready' THEN $2 + t.n - 1 END, \
                    $3, $4, t.p, $5, $6, $7 \
             FROM unnest($8::bytea[]) WITH ORDINALITY AS t(p, n)";
        match chunks(&self.messages)[..] {
            [] => Ok(()),
            [chunk] => {
                // One statement, typed (no statement prepared first).
                let payloads: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                tx.execute_typed(
                    INSERT,
                    &[
                        (name, Type::TEXT),
                        (&first, Type::INT8),
                        (&priority, Type::INT2),
                        (&state, Type::TEXT),
                        (enqueued, Type::TIMESTAMPTZ),
                        (&due, Type::TIMESTAMPTZ),
                        (&expires, Type::TIMESTAMPTZ),
                        (&payloads, Type::BYTEA_ARRAY),
                    ],
                )
                .map(drop)
            }
            _ => copy_in(
                tx,
                name,
                enqueued,
                first,
                false,
                self.messages
                    .iter()
                    .map(|p| (p.as_slice(), priority, due, expires, None)),
            ),
        }
    }

    /// Each message with its own options: those of `add_with`, else `opts`.
    fn rows(&self, opts: PushOptions, now: u64) -> Vec<Row<'_>> {
        let mut own = self.own.iter().peekable();
        (0..self.messages.len())
            .map(|index| {
                let (opts, key) = match own.next_if(|(i, _)| *i == index) {
                    Some((_, meta)) => (meta.opts, meta.key.as_deref()),
                    None => (opts, None),
                };
                Row {
                    index,
                    priority: i16::from(opts.priority),
                    due: opts.due.filter(|&due| due > now).map(time),
                    expires: opts.expires.map(time),
                    key,
                }
            })
            .collect()
    }

    /// The rows whose key no message holds (in the queue, ready, delayed or claimed; or
    /// kept earlier in this batch), counted in `published` with ids from `first` on; the
    /// others listed in its duplicates. The queue's row lock, held by the caller, keeps
    /// every other push and requeue out until this one commits: what the query finds
    /// stays true. (The unique index `messages_key` is the net under it.) A batch
    /// without keys asks nothing.
    fn without_duplicates<'r>(
        &self,
        tx: &mut Transaction<'_>,
        rows: Vec<Row<'r>>,
        first: i64,
        published: &mut Published,
    ) -> std::result::Result<Vec<Row<'r>>, postgres::Error> {
        let keys: Vec<&str> = rows.iter().filter_map(|r| r.key).collect();
        let mut held: HashMap<String, i64> = HashMap::new();
        if !keys.is_empty() {
            for row in tx.query_typed(
                "SELECT key, id FROM spool.messages \
                 WHERE queue = $1 AND key = ANY($2) AND state <> 'failed'",
                &[(&self.queue.name, Type::TEXT), (&keys, Type::TEXT_ARRAY)],
            )? {
                held.insert(row.get(0), row.get(1));
            }
        }
        let mut next = first;
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(key) = row.key {
                if let Some(&id) = held.get(key) {
                    published.duplicates.push(Duplicate {
                        index: row.index,
                        id: id as u64,
                    });
                    continue;
                }
                held.insert(key.to_string(), next);
            }
            published.add(next as u64);
            next += 1;
            kept.push(row);
        }
        Ok(kept)
    }

    /// Inserts `rows`, each with its own options and key, ids from `first` on.
    fn insert_rows(
        &self,
        tx: &mut Transaction<'_>,
        rows: &[Row<'_>],
        enqueued: &SystemTime,
        first: i64,
    ) -> std::result::Result<(), postgres::Error> {
        let name = &self.queue.name;
        let payloads: Vec<&[u8]> = rows
            .iter()
            .map(|r| self.messages[r.index].as_slice())
            .collect();
        match chunks(&payloads).len() {
            0 => Ok(()),
            1 => {
                // Delayed when it has a due time; in its place (position = id) when not.
                const INSERT: &str = "INSERT INTO spool.messages \
                     (queue, id, position, priority, state, payload, enqueued_at, due_at, \
                      expires_at, key) \
                     SELECT $1, $2 + t.n - 1, CASE WHEN t.d IS NULL THEN $2 + t.n - 1 END, t.r, \
                            CASE WHEN t.d IS NULL THEN 'ready' ELSE 'delayed' END, \
                            t.p, $3, t.d, t.e, t.k \
                     FROM unnest($4::smallint[], $5::timestamptz[], $6::timestamptz[], \
                                 $7::text[], $8::bytea[]) WITH ORDINALITY AS t(r, d, e, k, p, n)";
                let priorities: Vec<i16> = rows.iter().map(|r| r.priority).collect();
                let dues: Vec<Option<SystemTime>> = rows.iter().map(|r| r.due).collect();
                let expiries: Vec<Option<SystemTime>> = rows.iter().map(|r| r.expires).collect();
                let keys: Vec<Option<&str>> = rows.iter().map(|r| r.key).collect();
                tx.execute_typed(
                    INSERT,
                    &[
                        (name, Type::TEXT),
                        (&first, Type::INT8),
                        (enqueued, Type::TIMESTAMPTZ),
                        (&priorities, Type::INT2_ARRAY),
                        (&dues, Type::TIMESTAMPTZ_ARRAY),
                        (&expiries, Type::TIMESTAMPTZ_ARRAY),
                        (&keys, Type::TEXT_ARRAY),
                        (&payloads, Type::BYTEA_ARRAY),
                    ],
                )
                .map(drop)
            }
            _ => copy_in(
                tx,
                name,
                enqueued,
                first,
                true,
                rows.iter()
                    .zip(&payloads)
                    .map(|(r, p)| (*p, r.priority, r.due, r.expires, r.key)),
            ),
        }
    }
}

/// Inserts rows (payload, priority, due time when delayed, expiry, key) by COPY, in
/// binary, ids from `first` on: a third of the time of the statements, the rows streamed
/// as they are encoded. The column `key` only when `keyed`.
fn copy_in<'a>(
    tx: &mut Transaction<'_>,
    queue: &str,
    enqueued: &SystemTime,
    first: i64,
    keyed: bool,
    rows: impl Iterator<
        Item = (
            &'a [u8],
            i16,
            Option<SystemTime>,
            Option<SystemTime>,
            Option<&'a str>,
        ),
    >,
) -> std::result::Result<(), postgres::Error> {
    let columns = "queue, id, position, priority, state, payload, enqueued_at, due_at, expires_at";
    let writer = tx.copy_in(&if keyed {
        format!("COPY spool.messages ({columns}, key) FROM STDIN (FORMAT binary)")
    } else {
        format!("COPY spool.messages ({columns}) FROM STDIN (FORMAT binary)")
    })?;
    let mut types = vec![
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT2,
        Type::TEXT,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    if keyed {
        types.push(Type::TEXT);
    }
    let mut writer = BinaryCopyInWriter::new(writer, &types);
    for (n, (payload, priority, due, expires, key)) in rows.enumerate() {
        let id = first + n as i64;
        let position = due.is_none().then_some(id);
        let state = if due.is_some() { "delayed" } else { "ready" };
        let values: [&(dyn postgres::types::ToSql + Sync); 10] = [
            &queue, &id, &position, &priority, &state, &payload, enqueued, &due, &expires, &key,
        ];
        writer.write(&values[..types.len()])?;
    }
    writer.finish().map(drop)
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
fn chunks<T: AsRef<[u8]>>(messages: &[T]) -> Vec<&[T]> {
    const MESSAGES: usize = 1000;
    const BYTES: usize = 16 << 20;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let len = m.as_ref().len();
        if i > start && (i - start == MESSAGES || bytes + len > BYTES) {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
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
        assert!(chunks::<Vec<u8>>(&[]).is_empty());
    }
}
