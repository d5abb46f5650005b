//! Take, delivery and give-back, and the upkeep a take does first: due delayed messages
//! promoted, expired ones made dead letters, claims whose holder is gone given back.
//!
//! Two ways to take, as the caller holds the messages:
//!
//! - **Until delivered** (pop, [`Hold::Delivery`]): the next ready messages in order
//!   (priority, then position) are locked `FOR UPDATE SKIP LOCKED` in a transaction that
//!   stays open while pop writes them out, and nothing else is written: the delivered ones
//!   are deleted in it, and it commits at the next round or at the end
//!   ([`Queue::sync_removals`]). Other consumers skip the locked rows; if the process
//!   dies, the server rolls back and the messages are as they were. A row is written once
//!   (its deletion), so churn leaves one dead tuple per message.
//! - **Claimed** (run, [`Hold::Process`]; claim, [`Hold::Lease`]): the same choice marks
//!   the rows `claimed` with a fresh token (`ID.HEX`: a token from an earlier claim of the
//!   same message finds nothing) and commits at once. A run's claims name its session's
//!   advisory lock in `holder`; a claim's carry `lease_until`. The upkeep of any take
//!   gives back claims whose lease ended and those whose holder's lock is free (its
//!   connection ended: the server released the lock), to their place in the queue.

use std::io::Cursor;

use postgres::GenericClient;
use postgres::types::Type;

use super::connect::db_error;
use super::push::{promote, time};
use super::{Queue, random_hex};
use crate::clock::{after, now_ms};
use crate::store::{Error, Hold, Payload, Result, TakeOptions};

/// A message taken by this process: held by its open transaction (pop), or claimed with
/// a token (run, claim).
pub struct Taken {
    pub(crate) id: u64,
    pub(crate) attempts: u32,
    pub(crate) payload: Payload,
    /// `ID.HEX` for a committed claim; `None` for pop's, held by the open transaction.
    pub(crate) token: Option<String>,
}

/// What the upkeep of a take changed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Upkept {
    /// Claims given back (lease ended, holder gone).
    pub(crate) returned: u64,
    /// Messages made dead letters (expired).
    pub(crate) expired: u64,
}

impl Queue {
    pub(crate) fn error(&self, verb: &str, e: &postgres::Error) -> Error {
        db_error(format!("{verb} {} in {}", self.name, self.conn.shown), e)
    }

    /// Gives back claims whose holder is gone, fails expired ready messages (in one
    /// statement), and promotes due delayed ones under the queue's row lock. Each is
    /// committed on its own, before a take's transaction begins, so that it holds no
    /// producer waiting.
    pub(crate) fn upkeep(&self, verb: &str) -> Result<Upkept> {
        let now = time(now_ms());
        let holder = self.holder.get();
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<Upkept, postgres::Error> {
            // A lease ends at its time; a run's claims when the lock of its session is
            // free (pg_try_advisory_xact_lock takes it until this statement commits,
            // harmlessly: the key was the dead session's alone).
            let row = client.query_typed(
                "WITH back AS ( \
                   UPDATE spool.messages SET state = 'ready', token = NULL, holder = NULL, \
                          lease_until = NULL \
                   WHERE queue = $1 AND state = 'claimed' \
                     AND ((holder IS NULL AND lease_until <= $2) \
                          OR (holder IS NOT NULL AND holder IS DISTINCT FROM $3 \
                              AND pg_try_advisory_xact_lock(holder))) \
                   RETURNING 1), \
                 expired AS ( \
                   UPDATE spool.messages SET state = 'failed', reason = 'expired', position = NULL \
                   WHERE queue = $1 AND state = 'ready' AND expires_at <= $2 \
                   RETURNING 1) \
                 SELECT (SELECT count(*) FROM back), (SELECT count(*) FROM expired), \
                        EXISTS (SELECT 1 FROM spool.messages \
                                WHERE queue = $1 AND state = 'delayed' AND due_at <= $2)",
                &[
                    (&self.name, Type::TEXT),
                    (&now, Type::TIMESTAMPTZ),
                    (&holder, Type::INT8),
                ],
            )?;
            let Some(row) = row.first() else {
                return Ok(Upkept::default()); // a SELECT without FROM has its one row
            };
            let upkept = Upkept {
                returned: row.get::<_, i64>(0) as u64,
                expired: row.get::<_, i64>(1) as u64,
            };
            if upkept.returned > 0 {
                self.changed(&mut *client)?;
            }
            if row.get::<_, bool>(2) {
                let mut tx = client.transaction()?;
                let row = tx.query_opt(
                    "SELECT next_id FROM spool.queues WHERE name = $1 FOR UPDATE",
                    &[&self.name],
                )?;
                if let Some(row) = row {
                    let mut next: i64 = row.get(0);
                    promote(&mut tx, &self.name, now_ms(), &mut next)?;
                    tx.execute(
                        "UPDATE spool.queues SET next_id = $2 WHERE name = $1",
                        &[&self.name, &next],
                    )?;
                }
                tx.commit()?;
            }
            Ok(upkept)
        };
        let upkept = run().map_err(|e| self.error(verb, &e));
        drop(client);
        let upkept = upkept?;
        if upkept.expired > 0 {
            self.note_consumed(upkept.expired);
        }
        Ok(upkept)
    }

    pub(crate) fn take(&self, n: usize, opts: TakeOptions) -> Result<Vec<Taken>> {
        // The round before (pop takes up to 64 at a time) is settled: its removals
        // commit now. A transaction per round keeps a long pop linear: the rows it
        // deleted become dead to every scan, instead of being walked past again by
        // each later take of the same transaction.
        self.sync_removals()?;
        self.upkeep("take from")?;
        let n = n.min(i64::MAX as usize) as i64;
        match opts.hold {
            Hold::Delivery => self.take_for_delivery(n),
            Hold::Process => {
                let holder = self.hold_session()?;
                self.claim(n, opts.max_attempts, Some(holder), None)
            }
            Hold::Lease { lease_ms } => {
                let until = time(after(now_ms(), lease_ms));
                self.claim(n, opts.max_attempts, None, Some(until))
            }
        }
    }

    /// Pop's take: the messages locked in a transaction left open for their delivery.
    fn take_for_delivery(&self, n: i64) -> Result<Vec<Taken>> {
        let mut client = self.conn.client()?;
        client
            .batch_execute("BEGIN")
            .map_err(|e| self.error("take from", &e))?;
        self.in_take.set(true);
        let rows = client
            .query_typed(
                "SELECT id, attempts, payload FROM spool.messages \
                 WHERE queue = $1 AND state = 'ready' AND (expires_at IS NULL OR expires_at > $3) \
                 ORDER BY priority DESC, position LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[
                    (&self.name, Type::TEXT),
                    (&n, Type::INT8),
                    (&time(now_ms()), Type::TIMESTAMPTZ),
                ],
            )
            .map_err(|e| self.error("take from", &e))?;
        Ok(rows
            .into_iter()
            .map(|row| Taken {
                id: row.get::<_, i64>(0) as u64,
                attempts: row.get::<_, i32>(1) as u32 + 1,
                payload: Payload::Memory(Cursor::new(row.get(2))),
                token: None,
            })
            .collect())
    }

    /// The key of this session's advisory lock, which marks a run's claims as held by a
    /// live process: taken on first use, held until the connection ends.
    fn hold_session(&self) -> Result<i64> {
        if let Some(key) = self.holder.get() {
            return Ok(key);
        }
        let mut client = self.conn.client()?;
        loop {
            let key = u64::from_str_radix(&random_hex(), 16).unwrap_or(1) as i64;
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .map_err(|e| self.error("take from", &e))?
                .get(0);
            if got {
                self.holder.set(Some(key));
                return Ok(key);
            }
        }
    }

    /// Claims up to `n` messages, committed with tokens: held by this session's lock
    /// (`holder`) or until `lease`. Messages already claimed `max_attempts` times on the
    /// way become dead letters, and more are looked for in their place.
    fn claim(
        &self,
        n: i64,
        max_attempts: Option<u32>,
        holder: Option<i64>,
        lease: Option<std::time::SystemTime>,
    ) -> Result<Vec<Taken>> {
        let max = max_attempts.map(|m| m.min(i32::MAX as u32) as i32);
        let mut client = self.conn.client()?;
        let mut taken = Vec::new();
        let mut dead = 0;
        let result = loop {
            let want = n - taken.len() as i64;
            let step = claim_round(
                &mut *client,
                &self.name,
                want,
                max,
                holder,
                lease,
                &random_hex(),
            );
            match step {
                Ok((got, failed)) => {
                    let short = (got.len() as i64) < want;
                    taken.extend(got);
                    dead += failed;
                    if failed == 0 || !short {
                        break Ok(());
                    }
                }
                Err(e) => break Err(self.error("take from", &e)),
            }
        };
        drop(client);
        if dead > 0 {
            self.note_consumed(dead);
        }
        result.map(|()| taken)
    }

    fn ids(claims: &[Taken]) -> Vec<i64> {
        claims.iter().map(|c| c.id as i64).collect()
    }

    pub(crate) fn remove_delivered(&self, done: Vec<Taken>, removed: &mut u64) -> Result<()> {
        let (held, claimed): (Vec<Taken>, Vec<Taken>) =
            done.into_iter().partition(|c| c.token.is_none());
        if !held.is_empty() {
            let mut client = self.conn.client()?;
            let n = client
                .execute_typed(
                    "DELETE FROM spool.messages WHERE queue = $1 AND id = ANY($2)",
                    &[
                        (&self.name, Type::TEXT),
                        (&Self::ids(&held), Type::INT8_ARRAY),
                    ],
                )
                .map_err(|e| self.error("remove delivered messages from", &e))?;
            *removed += n;
            self.delivered.set(self.delivered.get() + n);
        }
        for claim in claimed {
            self.ack_claim(&claim)?;
            *removed += 1;
        }
        Ok(())
    }

    pub(crate) fn sync_removals(&self) -> Result<()> {
        if !self.in_take.replace(false) {
            return Ok(());
        }
        let mut client = self.conn.client()?;
        client.batch_execute("COMMIT").map_err(|e| {
            self.error("commit the removals from", &e)
                .with_note("the messages delivered may be in the queue still")
        })?;
        drop(client);
        let delivered = self.delivered.replace(0);
        if delivered > 0 {
            self.note_consumed(delivered);
        }
        Ok(())
    }

    pub(crate) fn give_back(&self, undelivered: Vec<Taken>) -> Result<()> {
        // Pop's messages were only locked: the commit frees them as they were.
        let claimed: Vec<Taken> = undelivered
            .into_iter()
            .filter(|c| c.token.is_some())
            .collect();
        if claimed.is_empty() {
            return Ok(());
        }
        let tokens: Vec<&str> = claimed.iter().filter_map(|c| c.token.as_deref()).collect();
        let mut client = self.conn.client()?;
        let mut tx = client
            .transaction()
            .map_err(|e| self.error("give back messages to", &e))?;
        tx.execute(
            "UPDATE spool.messages SET state = 'ready', attempts = attempts - 1, token = NULL, \
             holder = NULL, lease_until = NULL \
             WHERE queue = $1 AND id = ANY($2) AND token = ANY($3) AND state = 'claimed'",
            &[&self.name, &Self::ids(&claimed), &tokens],
        )
        .map_err(|e| self.error("give back messages to", &e))?;
        self.changed(&mut tx)
            .map_err(|e| self.error("give back messages to", &e))?;
        tx.commit()
            .map_err(|e| self.error("give back messages to", &e))
    }
}

/// One round of a claim, in one transaction: the next `n` ready messages locked; those
/// out of attempts made dead letters; the others claimed with tokens `ID.hex`. Returns
/// the claimed ones, in order, and how many died.
fn claim_round(
    client: &mut impl GenericClient,
    queue: &str,
    n: i64,
    max: Option<i32>,
    holder: Option<i64>,
    lease: Option<std::time::SystemTime>,
    hex: &str,
) -> std::result::Result<(Vec<Taken>, u64), postgres::Error> {
    let mut tx = client.transaction()?;
    let rows = tx.query(
        "SELECT id, attempts FROM spool.messages \
         WHERE queue = $1 AND state = 'ready' AND (expires_at IS NULL OR expires_at > $3) \
         ORDER BY priority DESC, position LIMIT $2 FOR UPDATE SKIP LOCKED",
        &[&queue, &n, &time(now_ms())],
    )?;
    let (dead, live): (Vec<_>, Vec<_>) = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i32>(1)))
        .partition(|&(_, attempts)| max.is_some_and(|m| attempts >= m));
    let dead: Vec<i64> = dead.into_iter().map(|(id, _)| id).collect();
    let live: Vec<i64> = live.into_iter().map(|(id, _)| id).collect();
    if !dead.is_empty() {
        tx.execute(
            "UPDATE spool.messages SET state = 'failed', reason = 'max-attempts', position = NULL \
             WHERE queue = $1 AND id = ANY($2)",
            &[&queue, &dead],
        )?;
    }
    let mut taken = Vec::new();
    if !live.is_empty() {
        let rows = tx.query(
            "UPDATE spool.messages m SET state = 'claimed', attempts = m.attempts + 1, \
                    token = m.id::text || '.' || $3, holder = $4, lease_until = $5 \
             WHERE m.queue = $1 AND m.id = ANY($2) \
             RETURNING m.id, m.attempts, m.token, m.payload",
            &[&queue, &live, &hex, &holder, &lease],
        )?;
        let mut by_id: std::collections::HashMap<i64, Taken> = rows
            .into_iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let taken = Taken {
                    id: id as u64,
                    attempts: row.get::<_, i32>(1) as u32,
                    token: Some(row.get(2)),
                    payload: Payload::Memory(Cursor::new(row.get(3))),
                };
                (id, taken)
            })
            .collect();
        // In the order the SELECT chose them (priority, then position).
        taken = live.iter().filter_map(|id| by_id.remove(id)).collect();
    }
    tx.commit()?;
    Ok((taken, dead.len() as u64))
}
