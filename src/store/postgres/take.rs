//! Take, delivery and give-back, and the upkeep a take does first: due delayed messages
//! promoted, expired ones made dead letters, claims whose holder is gone given back.
//!
//! A take is one statement, committed at once: the next ready messages in order
//! (priority, then position) are chosen `FOR UPDATE SKIP LOCKED` in a materialised CTE
//! (evaluated once, whatever the plan: a sub-select in an UPDATE's FROM may be run again
//! for each row, and would take more than it was asked for) and updated by primary key
//! (`id = ANY (ARRAY(…))`: a join with the CTE may scan the whole queue when the
//! statistics say it is small), those out of attempts
//! become dead letters, and the others are marked `claimed` with a fresh token (`ID.HEX`:
//! a token from an earlier claim of the same message finds nothing). pop and run claim
//! for their session ([`Hold::Process`]): `holder` names an advisory lock the session
//! holds until it ends; claim for a lease ([`Hold::Lease`]): `lease_until`. No
//! transaction stays open while a message is delivered: pop deletes what it delivered
//! afterwards, by id and token.
//!
//! The upkeep of every take gives back the claims whose lease ended and those whose
//! holder's lock is free (its connection ended, whatever ended it: the server released
//! the lock), to their place in the queue, their attempt counted; rows another session
//! has locked are skipped, never waited for.

use std::io::Cursor;
use std::time::SystemTime;

use postgres::types::Type;

use super::connect::db_error;
use super::push::{millis, promote, time};
use super::{Queue, random_hex};
use crate::clock::{after, now_ms};
use crate::store::{Error, Hold, Payload, Result, TakeOptions};

/// A message claimed by this process, with its token.
pub struct Taken {
    pub(crate) id: u64,
    pub(crate) attempts: u32,
    pub(crate) payload: Payload,
    /// `ID.HEX`.
    pub(crate) token: String,
    /// 0-9.
    pub(crate) priority: u8,
    /// Unix milliseconds.
    pub(crate) expires: Option<u64>,
    /// Its deduplication key, if it has one.
    pub(crate) key: Option<String>,
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
        let holder = self.conn.holder.get();
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<Upkept, postgres::Error> {
            // A lease ends at its time. The sessions of pop and run are registered in spool.holders; one whose
            // lock is free ended, and its claims (in any queue) go back. Scanning that
            // small table, not the claims, keeps a take's cost apart from the dead rows
            // that every claim leaves until vacuum. (pg_try_advisory_xact_lock holds a
            // dead session's key until this statement commits, harmlessly; this
            // session's own key is left out: its lock is re-entrant.)
            let row = client.query_typed(
                "WITH gone AS ( \
                   DELETE FROM spool.holders WHERE key IN ( \
                     SELECT key FROM spool.holders \
                     WHERE key IS DISTINCT FROM $3 AND pg_try_advisory_xact_lock(key) \
                     FOR UPDATE SKIP LOCKED) \
                   RETURNING key), \
                 orphans AS ( \
                   UPDATE spool.messages SET state = 'ready', token = NULL, holder = NULL \
                   WHERE state = 'claimed' AND holder IN (SELECT key FROM gone) \
                   RETURNING queue), \
                 lapsed AS ( \
                   UPDATE spool.messages SET state = 'ready', token = NULL, lease_until = NULL \
                   WHERE queue = $1 AND id IN ( \
                     SELECT id FROM spool.messages \
                     WHERE queue = $1 AND state = 'claimed' AND holder IS NULL \
                       AND lease_until <= $2 \
                     FOR UPDATE SKIP LOCKED) \
                   RETURNING 1), \
                 expired AS ( \
                   UPDATE spool.messages SET state = 'failed', reason = 'expired', position = NULL \
                   WHERE queue = $1 AND id IN ( \
                     SELECT id FROM spool.messages \
                     WHERE queue = $1 AND state = 'ready' AND expires_at <= $2 \
                     FOR UPDATE SKIP LOCKED) \
                   RETURNING 1) \
                 SELECT (SELECT count(*) FROM orphans WHERE queue = $1) \
                          + (SELECT count(*) FROM lapsed), \
                        (SELECT count(*) FROM expired), \
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
        self.upkeep("take from")?;
        let n = n.min(i64::MAX as usize) as i64;
        let (holder, lease) = match opts.hold {
            Hold::Process => (Some(self.hold_session()?), None),
            Hold::Lease { lease_ms } => (None, Some(time(after(now_ms(), lease_ms)))),
        };
        let max = opts.max_attempts.map(|m| m.min(i32::MAX as u32) as i32);
        let mut taken = Vec::new();
        let mut dead = 0;
        let result = loop {
            let want = n - taken.len() as i64;
            match self.claim_round(want, max, holder, lease) {
                Ok((got, died)) => {
                    let short = (got.len() as i64) < want;
                    taken.extend(got);
                    dead += died;
                    // Messages that died made room: look again for the ones behind them.
                    if died == 0 || !short {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if dead > 0 {
            self.note_consumed(dead);
        }
        result.map(|()| taken)
    }

    /// The key of this session's advisory lock, which marks the claims of pop and run as
    /// held by a live process: taken on first use, held until the connection ends, and
    /// registered in `spool.holders` for the upkeep to find.
    fn hold_session(&self) -> Result<i64> {
        if let Some(key) = self.conn.holder.get() {
            return Ok(key);
        }
        let mut client = self.conn.client()?;
        loop {
            let key = u64::from_str_radix(&random_hex(), 16).unwrap_or(1) as i64;
            // Locked and registered in one statement: a take that sees the row sees
            // the lock held.
            let got = !client
                .query_typed(
                    "INSERT INTO spool.holders (key) SELECT $1 WHERE pg_try_advisory_lock($1) \
                     ON CONFLICT DO NOTHING RETURNING key",
                    &[(&key, Type::INT8)],
                )
                .map_err(|e| self.error("take from", &e))?
                .is_empty();
            if got {
                self.conn.holder.set(Some(key));
                return Ok(key);
            }
        }
    }

    /// One statement: up to `n` ready messages locked; those claimed `max` times already
    /// made dead letters; the others claimed with tokens `ID.HEX`, for `holder` or until
    /// `lease`. Returns the claimed ones in take order, and how many died.
    fn claim_round(
        &self,
        n: i64,
        max: Option<i32>,
        holder: Option<i64>,
        lease: Option<std::time::SystemTime>,
    ) -> Result<(Vec<Taken>, u64)> {
        let rows = self.conn.client()?.query_typed(
            "WITH chosen AS MATERIALIZED ( \
               SELECT id, attempts, coalesce(attempts >= $4, false) AS spent \
               FROM spool.messages \
               WHERE queue = $1 AND state = 'ready' \
                 AND (expires_at IS NULL OR expires_at > $3) \
               ORDER BY priority DESC, position LIMIT $2 FOR UPDATE SKIP LOCKED), \
             dead AS ( \
               UPDATE spool.messages m SET state = 'failed', reason = 'max-attempts', \
                      position = NULL \
               WHERE m.queue = $1 AND m.id = ANY (ARRAY(SELECT id FROM chosen WHERE spent)) \
               RETURNING m.id), \
             live AS ( \
               UPDATE spool.messages m SET state = 'claimed', attempts = m.attempts + 1, \
                      token = m.id::text || '.' || $5, holder = $6, lease_until = $7 \
               WHERE m.queue = $1 \
                 AND m.id = ANY (ARRAY(SELECT id FROM chosen WHERE NOT spent)) \
               RETURNING m.id, m.attempts, m.token, m.payload, m.priority, m.position, \
                         m.expires_at, m.key) \
             SELECT id, attempts, token, payload, priority, position, expires_at, key \
             FROM live \
             UNION ALL SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM dead",
            &[
                (&self.name, Type::TEXT),
                (&n, Type::INT8),
                (&time(now_ms()), Type::TIMESTAMPTZ),
                (&max, Type::INT4),
                (&random_hex(), Type::TEXT),
                (&holder, Type::INT8),
                (&lease, Type::TIMESTAMPTZ),
            ],
        );
        let rows = rows.map_err(|e| self.error("take from", &e))?;
        let mut dead = 0;
        let mut taken = Vec::new();
        for row in rows {
            let Some(token) = row.get::<_, Option<String>>(2) else {
                dead += 1;
                continue;
            };
            let place = (row.get::<_, i16>(4), row.get::<_, Option<i64>>(5));
            let claim = Taken {
                id: row.get::<_, i64>(0) as u64,
                attempts: row.get::<_, i32>(1) as u32,
                token,
                payload: Payload::Memory(Cursor::new(row.get(3))),
                priority: place.0.clamp(0, 9) as u8,
                expires: row.get::<_, Option<SystemTime>>(6).map(millis),
                key: row.get::<_, Option<String>>(7),
            };
            taken.push((place, claim));
        }
        // Take order: the highest priority first, then by position.
        taken.sort_by(|(a, _), (b, _)| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok((taken.into_iter().map(|(_, c)| c).collect(), dead))
    }

    fn ids(claims: &[Taken]) -> Vec<i64> {
        claims.iter().map(|c| c.id as i64).collect()
    }

    pub(crate) fn remove_delivered(&self, done: Vec<Taken>, removed: &mut u64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let tokens: Vec<&str> = done.iter().map(|c| c.token.as_str()).collect();
        let deleted = self
            .conn
            .client()?
            .query_typed(
                "DELETE FROM spool.messages \
                 WHERE queue = $1 AND id = ANY($2) AND token = ANY($3) AND state = 'claimed' \
                 RETURNING id",
                &[
                    (&self.name, Type::TEXT),
                    (&Self::ids(&done), Type::INT8_ARRAY),
                    (&tokens, Type::TEXT_ARRAY),
                ],
            )
            .map_err(|e| {
                self.error("remove delivered messages from", &e)
                    .with_note("the messages delivered may be in the queue still")
            })?;
        *removed += deleted.len() as u64;
        self.note_consumed(deleted.len() as u64);
        if deleted.len() < done.len() {
            let gone: Vec<i64> = deleted.iter().map(|r| r.get(0)).collect();
            if let Some(claim) = done.iter().find(|c| !gone.contains(&(c.id as i64))) {
                return Err(Error::invalid(
                    format!("remove message {} from {}", claim.id, self.name),
                    None,
                    "its claim ended before it was removed (fsck gave it back?): it may be delivered again",
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn sync_removals(&self) -> Result<()> {
        Ok(()) // every removal committed on its own
    }

    pub(crate) fn give_back(&self, undelivered: Vec<Taken>) -> Result<()> {
        let claimed = undelivered;
        if claimed.is_empty() {
            return Ok(());
        }
        let tokens: Vec<&str> = claimed.iter().map(|c| c.token.as_str()).collect();
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
