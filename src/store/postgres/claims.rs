//! What happens to a claim after the take: ack (deleted), nack or retry (back behind the
//! waiting ones, or delayed), extend (a new lease), fail (a dead letter with a reason),
//! requeue (dead letters back behind the waiting ones), and show.
//!
//! Every change names the claim by id and token (`WHERE id = … AND token = …`), so a
//! token from an earlier claim of the same message changes nothing: fencing is the row's
//! token, as it is the file name's in the local engine. A message goes back behind the
//! waiting ones with a position from the queue's `next_id`, under the queue's row lock
//! (as a push allocates), after due delayed messages are promoted.

use std::io::Cursor;

use postgres::Transaction;
use postgres::types::Type;

use super::Queue;
use super::push::{promote, time};
use super::read::{INFO, info};
use super::take::Taken;
use crate::clock::{after, now_ms};
use crate::store::token::parse_token;
use crate::store::{Error, Info, Payload, Result, Verdict};

/// What becomes of a claim.
enum End<'a> {
    /// Deleted.
    Ack,
    /// Back behind the waiting ones (`None`), or delayed until a time (unix ms).
    Retry(Option<u64>),
    /// A dead letter with this reason.
    Fail(&'a str),
}

impl Queue {
    /// The id of a well-formed token, or the error that says what a token looks like.
    fn token_id(token: &str) -> Result<i64> {
        parse_token(token).map(|(id, _)| id as i64).ok_or_else(|| {
            Error::invalid(
                format!("token {token:?}"),
                None,
                "not a claim token (they look like 42.9f3a0c1d2e4b5a67)",
            )
        })
    }

    /// The error for a token that names no current claim: why, as far as can be told.
    fn ended(&self, token: &str, id: i64) -> Error {
        let again = self
            .conn
            .client()
            .ok()
            .and_then(|mut c| {
                c.query_opt(
                    "SELECT 1 FROM spool.messages WHERE queue = $1 AND id = $2 \
                     AND state = 'claimed' AND token IS DISTINCT FROM $3",
                    &[&self.name, &id, &token],
                )
                .ok()
            })
            .flatten()
            .is_some();
        let why = if again {
            format!("message {id} was claimed again since: this token is no longer valid")
        } else {
            format!(
                "no claim of message {id} has this token: its lease ended, or it was acked or nacked"
            )
        };
        Error::invalid(format!("token {token}"), None, why)
    }

    /// Ends the claim of `token` (of message `id`) as `end` says, in one transaction;
    /// `Ok(false)` when no claim has that token.
    fn end(&self, id: i64, token: &str, end: End<'_>, verb: &str) -> Result<bool> {
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<bool, postgres::Error> {
            let mut tx = client.transaction()?;
            let claim = [
                (
                    &self.name as &(dyn postgres::types::ToSql + Sync),
                    Type::TEXT,
                ),
                (&id, Type::INT8),
                (&token, Type::TEXT),
            ];
            let done =
                match end {
                    End::Ack => tx.execute_typed(
                        "DELETE FROM spool.messages WHERE queue = $1 AND id = $2 AND token = $3 \
                         AND state = 'claimed'",
                        &claim,
                    )? == 1,
                    End::Fail(reason) => tx.execute_typed(
                        "UPDATE spool.messages SET state = 'failed', reason = $4, position = NULL, \
                         token = NULL, holder = NULL, lease_until = NULL \
                         WHERE queue = $1 AND id = $2 AND token = $3 AND state = 'claimed'",
                        &[
                            claim[0].clone(),
                            claim[1].clone(),
                            claim[2].clone(),
                            (&reason, Type::TEXT),
                        ],
                    )? == 1,
                    End::Retry(Some(due)) => {
                        tx.execute_typed(
                            "UPDATE spool.messages SET state = 'delayed', due_at = $4, \
                         position = NULL, token = NULL, holder = NULL, lease_until = NULL \
                         WHERE queue = $1 AND id = $2 AND token = $3 AND state = 'claimed'",
                            &[
                                claim[0].clone(),
                                claim[1].clone(),
                                claim[2].clone(),
                                (&time(due), Type::TIMESTAMPTZ),
                            ],
                        )? == 1
                    }
                    End::Retry(None) => {
                        // The queue's row first, as everything that takes both locks.
                        let position = self.allocate(&mut tx, 1)?;
                        let back = tx.execute_typed(
                            "UPDATE spool.messages SET state = 'ready', position = $4, \
                         token = NULL, holder = NULL, lease_until = NULL \
                         WHERE queue = $1 AND id = $2 AND token = $3 AND state = 'claimed'",
                            &[
                                claim[0].clone(),
                                claim[1].clone(),
                                claim[2].clone(),
                                (&position, Type::INT8),
                            ],
                        )? == 1;
                        if back {
                            self.changed(&mut tx)?;
                        }
                        back
                    }
                };
            if done {
                tx.commit()?;
            }
            Ok(done)
        };
        let done = run().map_err(|e| self.error(verb, &e));
        drop(client);
        let done = done?;
        if done && matches!(end, End::Ack | End::Fail(_)) {
            self.note_consumed(1);
        }
        Ok(done)
    }

    /// Allocates `count` positions at the back of the queue, under its row lock, after
    /// promoting due delayed messages (which fall due before anything placed now).
    pub(crate) fn allocate(
        &self,
        tx: &mut Transaction<'_>,
        count: i64,
    ) -> std::result::Result<i64, postgres::Error> {
        let next = self.lock_counter(tx)?;
        self.set_counter(tx, next + count)?;
        Ok(next)
    }

    /// Locks the queue's row (first of all the locks a change takes, so that no two
    /// changes wait for each other), promotes due delayed messages, and returns the
    /// next position.
    pub(crate) fn lock_counter(
        &self,
        tx: &mut Transaction<'_>,
    ) -> std::result::Result<i64, postgres::Error> {
        let mut next: i64 = tx
            .query_typed(
                "SELECT next_id FROM spool.queues WHERE name = $1 FOR UPDATE",
                &[(&self.name, Type::TEXT)],
            )?
            .first()
            .map_or(1, |row| row.get(0));
        promote(tx, &self.name, now_ms(), &mut next)?;
        Ok(next)
    }

    /// Moves the queue's counter to `next` (its row locked by [`Self::lock_counter`]).
    pub(crate) fn set_counter(
        &self,
        tx: &mut Transaction<'_>,
        next: i64,
    ) -> std::result::Result<(), postgres::Error> {
        tx.execute_typed(
            "UPDATE spool.queues SET next_id = $2 WHERE name = $1",
            &[(&self.name, Type::TEXT), (&next, Type::INT8)],
        )
        .map(drop)
    }

    pub(crate) fn settle(&self, claim: Taken, verdict: Verdict<'_>) -> Result<()> {
        let token = claim.token.as_str();
        let id = claim.id as i64;
        let end = match verdict {
            Verdict::Ack => End::Ack,
            Verdict::Retry { due_ms } => End::Retry(Some(due_ms).filter(|&d| d > now_ms())),
            Verdict::Fail { reason } => End::Fail(reason),
        };
        if self.end(id, token, end, "settle a message of")? {
            Ok(())
        } else {
            Err(self.ended(token, id))
        }
    }

    pub(crate) fn ack(&self, token: &str) -> Result<u64> {
        let id = Self::token_id(token)?;
        if self.end(id, token, End::Ack, "ack a message of")? {
            Ok(id as u64)
        } else {
            Err(self.ended(token, id))
        }
    }

    pub(crate) fn nack(&self, token: &str, delay_ms: Option<u64>) -> Result<u64> {
        let id = Self::token_id(token)?;
        let due = delay_ms.filter(|&d| d > 0).map(|d| after(now_ms(), d));
        if self.end(id, token, End::Retry(due), "nack a message of")? {
            Ok(id as u64)
        } else {
            Err(self.ended(token, id))
        }
    }

    pub(crate) fn extend(&self, token: &str, lease_ms: u64) -> Result<u64> {
        let id = Self::token_id(token)?;
        let until = time(after(now_ms(), lease_ms));
        let row = self
            .conn
            .client()?
            .query_opt(
                "UPDATE spool.messages SET lease_until = CASE WHEN holder IS NULL THEN $4 \
                 ELSE lease_until END \
                 WHERE queue = $1 AND id = $2 AND token = $3 AND state = 'claimed' \
                 RETURNING holder IS NULL",
                &[&self.name, &id, &token, &until],
            )
            .map_err(|e| self.error("extend a claim of", &e))?;
        match row.map(|r| r.get::<_, bool>(0)) {
            Some(true) => Ok(id as u64),
            Some(false) => Err(Error::invalid(
                format!("token {token}"),
                None,
                "held by a running process, not by a lease",
            )),
            None => Err(self.ended(token, id)),
        }
    }

    pub(crate) fn requeue(&self, ids: &[u64]) -> Result<(Vec<u64>, Vec<u64>)> {
        let wanted: Vec<i64> = ids
            .iter()
            .map(|&id| id.min(i64::MAX as u64) as i64)
            .collect();
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<Vec<u64>, postgres::Error> {
            let mut tx = client.transaction()?;
            let first = self.lock_counter(&mut tx)?;
            let sql = if wanted.is_empty() {
                "SELECT id, key FROM spool.messages WHERE queue = $1 AND state = 'failed' \
                 AND cardinality($2::bigint[]) = 0 ORDER BY id FOR UPDATE"
            } else {
                "SELECT id, key FROM spool.messages WHERE queue = $1 AND id = ANY($2) \
                 AND state = 'failed' ORDER BY id FOR UPDATE"
            };
            let rows = tx.query_typed(
                sql,
                &[(&self.name, Type::TEXT), (&wanted, Type::INT8_ARRAY)],
            )?;
            let found: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let keys = self.requeued_keys(&mut tx, &rows)?;
            if !found.is_empty() {
                self.set_counter(&mut tx, first + found.len() as i64)?;
                tx.execute(
                    "UPDATE spool.messages m SET state = 'ready', attempts = 0, reason = NULL, \
                     expires_at = NULL, position = $3 + f.n - 1, key = f.key \
                     FROM unnest($2::bigint[], $4::text[]) WITH ORDINALITY AS f(id, key, n) \
                     WHERE m.queue = $1 AND m.id = f.id",
                    &[&self.name, &found, &first, &keys],
                )?;
                self.changed(&mut tx)?;
            }
            tx.commit()?;
            Ok(found.into_iter().map(|id| id as u64).collect())
        };
        let moved = run().map_err(|e| self.error("requeue messages of", &e))?;
        Ok(crate::store::moved_and_missing(ids, moved))
    }

    /// The keys that dead letters being requeued (`rows` of id and key, in id order)
    /// keep: a dead letter holds no key, and while it was one, another message may have
    /// taken its key. Such a message comes back without its key (`None`), as does a
    /// later one of the same requeue with the key of an earlier one: requeue never fails
    /// for a key, and no two messages in the queue hold one. The queue's row lock, held
    /// by the caller, keeps pushes out meanwhile.
    fn requeued_keys(
        &self,
        tx: &mut Transaction<'_>,
        rows: &[postgres::Row],
    ) -> std::result::Result<Vec<Option<String>>, postgres::Error> {
        let mut keys: Vec<Option<String>> = rows.iter().map(|r| r.get(1)).collect();
        let asked: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
        if asked.is_empty() {
            return Ok(keys);
        }
        let mut held: std::collections::HashSet<String> = tx
            .query_typed(
                "SELECT key FROM spool.messages \
                 WHERE queue = $1 AND key = ANY($2) AND state <> 'failed'",
                &[(&self.name, Type::TEXT), (&asked, Type::TEXT_ARRAY)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for key in &mut keys {
            if key.as_ref().is_some_and(|k| !held.insert(k.clone())) {
                *key = None;
            }
        }
        Ok(keys)
    }

    pub(crate) fn show(&self, what: &str) -> Result<Option<(Info, Payload)>> {
        let row = if what.contains('.') {
            let id = Self::token_id(what)?;
            let row = self.select_one(
                "AND token = $3 AND state = 'claimed'",
                &[&self.name, &id, &what],
            )?;
            if row.is_none() {
                return Err(self.ended(what, id));
            }
            row
        } else {
            let id = crate::store::parse_message_id(what)?.min(i64::MAX as u64) as i64;
            self.select_one("", &[&self.name, &id])?
        };
        Ok(row.map(|row| (info(&row), Payload::Memory(Cursor::new(row.get(10))))))
    }

    /// One message's metadata and payload by id (`$2`), with `more` conditions.
    fn select_one(
        &self,
        more: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>> {
        // `more` is one of the constants of show, never user input.
        let sql = format!(
            "SELECT {INFO}, payload FROM spool.messages WHERE queue = $1 AND id = $2 {more}"
        );
        self.conn
            .client()?
            .query_opt(&sql, params)
            .map_err(|e| self.error("show a message of", &e))
    }

    pub(crate) fn payload_for_child(&self, claim: &Taken) -> Result<Payload> {
        match &claim.payload {
            Payload::Memory(bytes) => Ok(Payload::Memory(Cursor::new(bytes.get_ref().clone()))),
            Payload::File(_) => Err(Error::invalid(
                format!("read message {} of {}", claim.id, self.name),
                None,
                "not held in memory",
            )),
        }
    }
}
