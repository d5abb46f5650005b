//! Take (pop), delivery and give-back, and the upkeep a take does first: due delayed
//! messages promoted, expired ones made dead letters.
//!
//! The take is one statement: the next ready messages in order (priority, then position)
//! are chosen `FOR UPDATE SKIP LOCKED` and marked `claimed` (attempts + 1) by the same
//! UPDATE. Its transaction stays open while pop delivers them: delivered ones are deleted
//! in it, undelivered ones set back as they were, and it commits when the round is
//! settled, at the next take or at the end ([`Queue::sync_removals`]). Until then other
//! consumers skip the locked rows and see them as ready; if the process dies, the server
//! rolls the transaction back, and the round's messages are ready again.

use std::io::Cursor;

use super::connect::db_error;
use super::push::{promote, time};
use super::{Queue, unsupported};
use crate::clock::now_ms;
use crate::store::{Error, Hold, Payload, Result, TakeOptions};

/// A message taken by this process (held by its open transaction).
pub struct Taken {
    pub(crate) id: u64,
    pub(crate) attempts: u32,
    pub(crate) payload: Payload,
}

impl Queue {
    fn error(&self, verb: &str, e: &postgres::Error) -> Error {
        db_error(format!("{verb} {} in {}", self.name, self.conn.shown), e)
    }

    /// Promotes due delayed messages and fails expired ready ones, each committed on its
    /// own (before a take's transaction begins, so that it holds no producer waiting).
    pub(crate) fn upkeep(&self, verb: &str) -> Result<()> {
        let now = now_ms();
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<(), postgres::Error> {
            let due: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM spool.messages \
                     WHERE queue = $1 AND state = 'delayed' AND due_at <= $2)",
                    &[&self.name, &time(now)],
                )?
                .get(0);
            if due {
                let mut tx = client.transaction()?;
                let row = tx.query_opt(
                    "SELECT next_id FROM spool.queues WHERE name = $1 FOR UPDATE",
                    &[&self.name],
                )?;
                if let Some(row) = row {
                    let mut next: i64 = row.get(0);
                    promote(&mut tx, &self.name, now, &mut next)?;
                    tx.execute(
                        "UPDATE spool.queues SET next_id = $2 WHERE name = $1",
                        &[&self.name, &next],
                    )?;
                }
                tx.commit()?;
            }
            client.execute(
                "UPDATE spool.messages SET state = 'failed', reason = 'expired', position = NULL \
                 WHERE queue = $1 AND state = 'ready' AND expires_at <= $2",
                &[&self.name, &time(now)],
            )?;
            Ok(())
        };
        run().map_err(|e| self.error(verb, &e))
    }

    pub(crate) fn take(&self, n: usize, opts: TakeOptions) -> Result<Vec<Taken>> {
        if let Hold::Lease { .. } = opts.hold {
            return Err(unsupported("claim"));
        }
        // The round before (pop takes up to 64 at a time) is settled: its removals
        // commit now. A transaction per round keeps a long pop linear: the rows it
        // deleted become dead to every scan, instead of being walked past again by
        // each later take of the same transaction.
        self.sync_removals()?;
        self.upkeep("take from")?;
        let mut client = self.conn.client()?;
        client
            .batch_execute("BEGIN")
            .map_err(|e| self.error("take from", &e))?;
        self.in_take.set(true);
        let rows = client
            .query(
                "UPDATE spool.messages m SET state = 'claimed', attempts = m.attempts + 1 \
                 FROM (SELECT id FROM spool.messages WHERE queue = $1 AND state = 'ready' \
                       ORDER BY priority DESC, position LIMIT $2 FOR UPDATE SKIP LOCKED) t \
                 WHERE m.queue = $1 AND m.id = t.id \
                 RETURNING m.id, m.attempts, m.priority, m.position, m.payload",
                &[&self.name, &(n.min(i64::MAX as usize) as i64)],
            )
            .map_err(|e| self.error("take from", &e))?;
        let mut taken: Vec<(i16, i64, Taken)> = rows
            .into_iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let attempts: i32 = row.get(1);
                (
                    row.get(2),
                    row.get::<_, Option<i64>>(3).unwrap_or(id),
                    Taken {
                        id: id as u64,
                        attempts: attempts as u32,
                        payload: Payload::Memory(Cursor::new(row.get(4))),
                    },
                )
            })
            .collect();
        taken.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(taken.into_iter().map(|t| t.2).collect())
    }

    fn ids(claims: &[Taken]) -> Vec<i64> {
        claims.iter().map(|c| c.id as i64).collect()
    }

    pub(crate) fn remove_delivered(&self, done: Vec<Taken>, removed: &mut u64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut client = self.conn.client()?;
        let n = client
            .execute(
                "DELETE FROM spool.messages WHERE queue = $1 AND id = ANY($2)",
                &[&self.name, &Self::ids(&done)],
            )
            .map_err(|e| self.error("remove delivered messages from", &e))?;
        *removed += n;
        super::rates::count_consumed_in(&mut *client, &self.name, n)
            .map_err(|e| self.error("count the messages consumed from", &e))
    }

    pub(crate) fn sync_removals(&self) -> Result<()> {
        if !self.in_take.replace(false) {
            return Ok(());
        }
        let mut client = self.conn.client()?;
        client.batch_execute("COMMIT").map_err(|e| {
            self.error("commit the removals from", &e)
                .with_note("the messages delivered may be in the queue still")
        })
    }

    pub(crate) fn give_back(&self, undelivered: Vec<Taken>) -> Result<()> {
        if undelivered.is_empty() {
            return Ok(());
        }
        let mut client = self.conn.client()?;
        client
            .execute(
                "UPDATE spool.messages SET state = 'ready', attempts = attempts - 1 \
                 WHERE queue = $1 AND id = ANY($2)",
                &[&self.name, &Self::ids(&undelivered)],
            )
            .map(drop)
            .map_err(|e| self.error("give back messages to", &e))
    }
}
